/**
 * Disjoint partition of overlapping boxes.
 *
 * Policies overlap (two policies may both allow 198.51.100.53 tcp/53), but the elements of an nft
 * interval map must not. Each box carries an owner (lower number = wins); the partition assigns
 * every covered point to exactly one owner and returns non-overlapping cells, joining neighbours of
 * the same owner so the element count stays close to the input size. The union of the cells is
 * exactly the union of the boxes, so no address, protocol or port is added or lost.
 *
 * How: the work runs on plain numbers (sweep.ts): the values themselves where they fit a double
 * (ports, IPv4), indices for 128-bit addresses, whose endpoints are first compressed to small
 * integers (only order and adjacency matter).
 */

import { Box, BoxTable, Cell, Coord, Interval, cmp, succ, toTable } from './boxes';
import { Sweep } from './sweep';

export type { Box, BoxTable, Cell, Coord, Interval } from './boxes';

/** Index of `v` in the sorted array `pts` (present by construction). */
function indexOf(pts: readonly bigint[], v: bigint): number {
  let a = 0;
  let b = pts.length - 1;
  while (a < b) {
    const m = (a + b) >> 1;
    if (pts[m]! < v) a = m + 1;
    else b = m;
  }
  return a;
}

/**
 * Puts dimension d of every box into lo/hi. Numbers go in as they are; bigints (IPv6) are
 * compressed: the endpoints lo and hi+1 become indices, [lo, hi] ↦ [idx(lo), idx(hi+1)-1], and
 * the value of each index's first and last point is returned to map cells back.
 */
function load(t: BoxTable, d: number, lo: Float64Array, hi: Float64Array): { los: bigint[]; his: bigint[] } | undefined {
  const { coords, dims: nd } = t;
  const n = t.owners.length;
  const at = (i: number, k: 0 | 1): Coord => coords[2 * (i * nd + d) + k]!;
  let big = false;
  for (let i = 0; i < n; i++) if (typeof at(i, 0) === 'bigint' || typeof at(i, 1) === 'bigint') big = true;
  if (!big) {
    for (let i = 0; i < n; i++) {
      lo[i * nd + d] = at(i, 0) as number;
      hi[i * nd + d] = at(i, 1) as number;
    }
    return undefined;
  }
  const all: bigint[] = [];
  for (let i = 0; i < n; i++) all.push(BigInt(at(i, 0)), BigInt(at(i, 1)) + 1n);
  all.sort(cmp);
  const uniq = all.filter((p, k) => k === 0 || all[k - 1] !== p);
  for (let i = 0; i < n; i++) {
    lo[i * nd + d] = indexOf(uniq, BigInt(at(i, 0)));
    hi[i * nd + d] = indexOf(uniq, BigInt(at(i, 1)) + 1n) - 1;
  }
  return { los: uniq, his: uniq.slice(1).map((p) => p - 1n) };
}

/** A partition's cells, read by index; values have the type their dimension had in the boxes. */
export class Cells {
  private readonly stride: number;

  constructor(
    private readonly flat: readonly number[],
    /** Dimensions per cell. */
    readonly dims: number,
    /** Per dimension, the values of compressed indices; undefined: the cells hold the values. */
    private readonly los: readonly (bigint[] | undefined)[],
    private readonly his: readonly (bigint[] | undefined)[],
  ) {
    this.stride = 1 + 2 * dims;
  }

  get length(): number {
    return this.flat.length / this.stride;
  }

  owner(i: number): number {
    return this.flat[i * this.stride]!;
  }

  lo(i: number, d: number): Coord {
    const v = this.flat[i * this.stride + 1 + 2 * d]!;
    return this.los[d]?.[v] ?? v;
  }

  hi(i: number, d: number): Coord {
    const v = this.flat[i * this.stride + 2 + 2 * d]!;
    return this.his[d]?.[v] ?? v;
  }

  toArray(): Cell[] {
    return Array.from({ length: this.length }, (_, i) => ({
      owner: this.owner(i),
      dims: Array.from({ length: this.dims }, (_, d) => ({ lo: this.lo(i, d), hi: this.hi(i, d) })),
    }));
  }
}

/** The partition in compact form, cells ordered by their low corner (dimension by dimension). */
export function partitionCells(t: BoxTable): Cells {
  const nd = t.dims;
  const n = t.owners.length;
  for (let k = 0; k < t.coords.length; k += 2) if (t.coords[k]! > t.coords[k + 1]!) throw new Error('partition: empty interval');
  const lo = new Float64Array(n * nd);
  const hi = new Float64Array(n * nd);
  const los: (bigint[] | undefined)[] = [];
  const his: (bigint[] | undefined)[] = [];
  for (let d = 0; d < nd; d++) {
    const c = load(t, d, lo, hi);
    los.push(c?.los);
    his.push(c?.his);
  }
  const ids = Array.from({ length: n }, (_, i) => i);
  const flat = new Sweep(nd, lo, hi, Int32Array.from(t.owners)).cells(ids, 0);
  return new Cells(flat, nd, los, his);
}

/** Deterministic order, dimension by dimension, so renders are stable and diffs readable. */
export function partition(boxes: readonly Box[]): Cell[] {
  if (boxes.length === 0) return [];
  return partitionCells(toTable(boxes)).toArray();
}

/**
 * Memo of partitioned components across compiles, keyed by their content (owners by stable name).
 * Owned by the caller (the agent keeps one); results do not depend on it.
 */
export type PartitionCache = Map<string, { readonly owner: string; readonly dims: readonly Interval[] }[]>;

/**
 * Partitions boxes that overlap on dimension `dim` together and independent groups separately
 * (their cells cannot overlap), reusing the cached result of every group whose content did not
 * change. A change to one policy then only re-partitions the groups its ports touch. `names[o]`
 * is the stable name of owner `o`: only the order between owners matters, and names keep that
 * order across compiles while indices shift.
 */
export function partitionCached(boxes: readonly Box[], dim: number, names: readonly string[], cache: PartitionCache | undefined): Cell[] {
  if (!cache || boxes.length === 0) return partition(boxes);
  const order = [...boxes].sort((a, b) => cmp(a.dims[dim]!.lo, b.dims[dim]!.lo));
  const groups: Box[][] = [];
  let hi: Coord = 0;
  for (const b of order) {
    // Touching intervals stay in one group, so cells can still be joined across them: the result
    // equals partition(boxes) exactly.
    if (groups.length === 0 || b.dims[dim]!.lo > succ(hi)) {
      groups.push([b]);
      hi = b.dims[dim]!.hi;
    } else {
      groups[groups.length - 1]!.push(b);
      if (b.dims[dim]!.hi > hi) hi = b.dims[dim]!.hi;
    }
  }
  const byName = new Map(names.map((n, i) => [n, i]));
  const out: Cell[] = [];
  const used = new Set<string>();
  for (const g of groups) {
    const key = g
      .map((b) => `${names[b.owner]!}|${b.dims.map((iv) => `${iv.lo}-${iv.hi}`).join('|')}`)
      .sort()
      .join('\n');
    used.add(key);
    let cells = cache.get(key);
    if (!cells) {
      cells = partition(g).map((c) => ({ owner: names[c.owner]!, dims: c.dims }));
      cache.set(key, cells);
    }
    for (const c of cells) out.push({ owner: byName.get(c.owner)!, dims: c.dims });
  }
  // Keep the cache to what the last compile used, per map the caller passes a cache for.
  for (const k of cache.keys()) if (!used.has(k)) cache.delete(k);
  out.sort((a, b) => {
    for (let d = 0; d < a.dims.length; d++) {
      const c = cmp(a.dims[d]!.lo, b.dims[d]!.lo);
      if (c !== 0) return c;
    }
    return 0;
  });
  return out;
}
