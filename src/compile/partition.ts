/**
 * Disjoint partition of overlapping boxes.
 *
 * Policies overlap (two policies may both allow 198.51.100.53 tcp/53), but the elements of an nft
 * interval map must not. Each box carries an owner (lower number = wins); the partition assigns
 * every covered point to exactly one owner and returns non-overlapping cells, joining neighbours of
 * the same owner so the element count stays close to the input size. The union of the cells is
 * exactly the union of the boxes, so no address, protocol or port is added or lost.
 *
 * How: each dimension's endpoints are first compressed to small integers (only order and adjacency
 * matter), so the work runs on plain numbers even for 128-bit addresses. Then a sweep over the
 * first dimension's elementary intervals partitions the rest recursively (memoised by the set of
 * active boxes) and extends every sub-cell along the first dimension for as long as it repeats.
 */

export interface Interval {
  readonly lo: bigint;
  readonly hi: bigint;
}

export interface Box {
  readonly owner: number;
  /** One interval per dimension; all boxes have the same number of dimensions. */
  readonly dims: readonly Interval[];
}

export type Cell = Box;

/** Compressed interval: indices into the dimension's sorted endpoint list, inclusive. */
interface NBox {
  readonly owner: number;
  readonly lo: Int32Array;
  readonly hi: Int32Array;
}

interface NCell {
  owner: number;
  /** [lo0, hi0, lo1, hi1, …] for the dimensions from the current depth on. */
  iv: number[];
  key?: string;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Min-heap of (owner, hi) with lazy removal of entries that ended. */
class OwnerHeap {
  private owners: number[] = [];
  private his: number[] = [];

  push(owner: number, hi: number): void {
    const o = this.owners;
    const h = this.his;
    o.push(owner);
    h.push(hi);
    let i = o.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (o[p]! <= o[i]!) break;
      [o[p], o[i]] = [o[i]!, o[p]!];
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  private pop(): void {
    const o = this.owners;
    const h = this.his;
    const lastO = o.pop()!;
    const lastH = h.pop()!;
    if (o.length === 0) return;
    o[0] = lastO;
    h[0] = lastH;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < o.length && o[l]! < o[m]!) m = l;
      if (r < o.length && o[r]! < o[m]!) m = r;
      if (m === i) break;
      [o[m], o[i]] = [o[i]!, o[m]!];
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }

  /** The winning owner still active at `at`, or -1. */
  top(at: number): number {
    while (this.owners.length > 0 && this.his[0]! < at) this.pop();
    return this.owners.length > 0 ? this.owners[0]! : -1;
  }
}

function boundaries(boxes: readonly NBox[], d: number): number[] {
  const pts = new Array<number>(boxes.length * 2);
  let k = 0;
  for (const b of boxes) {
    pts[k++] = b.lo[d]!;
    pts[k++] = b.hi[d]! + 1;
  }
  pts.sort((a, b) => a - b);
  const out: number[] = [];
  for (const p of pts) if (out.length === 0 || out[out.length - 1] !== p) out.push(p);
  return out;
}

function byLo(boxes: readonly NBox[], d: number): NBox[] {
  return [...boxes].sort((a, b) => a.lo[d]! - b.lo[d]!);
}

/** Last dimension: sweep with a heap, emit owner segments, join equal neighbours. */
function partitionLast(boxes: readonly NBox[], d: number): NCell[] {
  const pts = boundaries(boxes, d);
  const sorted = byLo(boxes, d);
  const heap = new OwnerHeap();
  const out: NCell[] = [];
  let next = 0;
  for (let i = 0; i + 1 < pts.length; i++) {
    const lo = pts[i]!;
    const hi = pts[i + 1]! - 1;
    while (next < sorted.length && sorted[next]!.lo[d]! <= lo) {
      heap.push(sorted[next]!.owner, sorted[next]!.hi[d]!);
      next++;
    }
    const owner = heap.top(lo);
    if (owner < 0) continue;
    const prev = out[out.length - 1];
    if (prev && prev.owner === owner && prev.iv[1]! + 1 === lo) prev.iv[1] = hi;
    else out.push({ owner, iv: [lo, hi] });
  }
  return out;
}

function cellKey(c: NCell): string {
  return (c.key ??= `${c.owner}:${c.iv.join(',')}`);
}

function partitionFrom(boxes: readonly NBox[], d: number, ndims: number): NCell[] {
  if (boxes.length === 0) return [];
  if (d === ndims - 1) return partitionLast(boxes, d);
  const pts = boundaries(boxes, d);
  const sorted = byLo(boxes, d);
  const ids = new Map<NBox, number>(boxes.map((b, i) => [b, i]));
  const memo = new Map<string, NCell[]>();
  let active: NBox[] = [];
  let next = 0;
  const out: NCell[] = [];
  // Sub-cells extended along this dimension while they repeat in consecutive segments.
  let open = new Map<string, NCell>();
  let lastHi = Number.NaN;
  for (let i = 0; i + 1 < pts.length; i++) {
    const lo = pts[i]!;
    const hi = pts[i + 1]! - 1;
    let removed = false;
    for (const b of active) if (b.hi[d]! < lo) removed = true;
    if (removed) active = active.filter((b) => b.hi[d]! >= lo);
    while (next < sorted.length && sorted[next]!.lo[d]! <= lo) active.push(sorted[next++]!);
    if (active.length === 0) continue;
    const memoKey = active
      .map((b) => ids.get(b)!)
      .sort((a, b) => a - b)
      .join(',');
    let sub = memo.get(memoKey);
    if (!sub) {
      sub = partitionFrom(active, d + 1, ndims);
      memo.set(memoKey, sub);
    }
    const contiguous = lastHi + 1 === lo;
    const nextOpen = new Map<string, NCell>();
    for (const c of sub) {
      const key = cellKey(c);
      const prev = contiguous ? open.get(key) : undefined;
      if (prev) {
        prev.iv[1] = hi;
        nextOpen.set(key, prev);
      } else {
        const cell: NCell = { owner: c.owner, iv: [lo, hi, ...c.iv] };
        out.push(cell);
        nextOpen.set(key, cell);
      }
    }
    open = nextOpen;
    lastHi = hi;
  }
  return out;
}

export function partition(boxes: readonly Box[]): Cell[] {
  if (boxes.length === 0) return [];
  const ndims = boxes[0]!.dims.length;
  for (const b of boxes) {
    if (b.dims.length !== ndims) throw new Error('partition: boxes differ in dimensions');
    for (const iv of b.dims) if (iv.lo > iv.hi) throw new Error('partition: empty interval');
  }
  // Compress each dimension: endpoints lo and hi+1 become indices; [lo, hi] ↦ [idx(lo), idx(hi+1)-1].
  // Dimensions whose values fit a double (ports, protocols, IPv4) are compressed as numbers, which
  // is much cheaper than bigint keys; 128-bit dimensions keep bigints.
  const points: bigint[][] = [];
  const lo = boxes.map(() => new Int32Array(ndims));
  const hi = boxes.map(() => new Int32Array(ndims));
  for (let d = 0; d < ndims; d++) {
    let small = true;
    for (const b of boxes) if (b.dims[d]!.hi >= SAFE) small = false;
    if (small) {
      const all = new Float64Array(boxes.length * 2);
      boxes.forEach((b, i) => {
        all[2 * i] = Number(b.dims[d]!.lo);
        all[2 * i + 1] = Number(b.dims[d]!.hi) + 1;
      });
      all.sort();
      const uniq: number[] = [];
      for (const p of all) if (uniq.length === 0 || uniq[uniq.length - 1] !== p) uniq.push(p);
      const index = new Map<number, number>(uniq.map((p, i) => [p, i]));
      boxes.forEach((b, i) => {
        lo[i]![d] = index.get(Number(b.dims[d]!.lo))!;
        hi[i]![d] = index.get(Number(b.dims[d]!.hi) + 1)! - 1;
      });
      points.push(uniq.map((p) => BigInt(p)));
    } else {
      const all: bigint[] = [];
      for (const b of boxes) all.push(b.dims[d]!.lo, b.dims[d]!.hi + 1n);
      all.sort(cmp);
      const uniq: bigint[] = [];
      for (const p of all) if (uniq.length === 0 || uniq[uniq.length - 1] !== p) uniq.push(p);
      const index = new Map<bigint, number>(uniq.map((p, i) => [p, i]));
      boxes.forEach((b, i) => {
        lo[i]![d] = index.get(b.dims[d]!.lo)!;
        hi[i]![d] = index.get(b.dims[d]!.hi + 1n)! - 1;
      });
      points.push(uniq);
    }
  }
  const nboxes: NBox[] = boxes.map((b, i) => ({ owner: b.owner, lo: lo[i]!, hi: hi[i]! }));
  const cells = partitionFrom(nboxes, 0, ndims);
  // Deterministic order, dimension by dimension, so renders are stable and diffs readable.
  cells.sort((a, b) => {
    for (let k = 0; k < a.iv.length; k += 2) {
      const c = a.iv[k]! - b.iv[k]!;
      if (c !== 0) return c;
    }
    return 0;
  });
  return cells.map((c) => ({
    owner: c.owner,
    dims: Array.from({ length: ndims }, (_, d) => ({ lo: points[d]![c.iv[2 * d]!]!, hi: points[d]![c.iv[2 * d + 1]! + 1]! - 1n })),
  }));
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
  let hi = -1n;
  for (const b of order) {
    // Touching intervals stay in one group, so cells can still be joined across them: the result
    // equals partition(boxes) exactly.
    if (groups.length === 0 || b.dims[dim]!.lo > hi + 1n) {
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
