/**
 * Disjoint partition of overlapping boxes.
 *
 * Policies overlap (two policies may both allow 198.51.100.53 tcp/53), but the elements of an nft
 * interval map must not. Each box carries an owner (lower number = wins); the partition assigns
 * every covered point to exactly one owner and returns non-overlapping cells, merging neighbours
 * that have the same owner so the element count stays close to the input size. The union of the
 * cells is exactly the union of the boxes, so no address, protocol or port is added or lost.
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

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Min-heap of [owner, hi] with lazy removal of entries that ended. */
class OwnerHeap {
  private items: { owner: number; hi: bigint }[] = [];

  push(owner: number, hi: bigint): void {
    const a = this.items;
    a.push({ owner, hi });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.owner <= a[i]!.owner) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }

  private pop(): void {
    const a = this.items;
    const last = a.pop()!;
    if (a.length === 0) return;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && a[l]!.owner < a[m]!.owner) m = l;
      if (r < a.length && a[r]!.owner < a[m]!.owner) m = r;
      if (m === i) break;
      [a[m], a[i]] = [a[i]!, a[m]!];
      i = m;
    }
  }

  /** The winning owner still active at `at`, or undefined. */
  top(at: bigint): number | undefined {
    while (this.items.length > 0 && this.items[0]!.hi < at) this.pop();
    return this.items[0]?.owner;
  }
}

function boundaries(boxes: readonly Box[], d: number): bigint[] {
  const pts: bigint[] = [];
  for (const b of boxes) {
    pts.push(b.dims[d]!.lo, b.dims[d]!.hi + 1n);
  }
  pts.sort(cmp);
  const out: bigint[] = [];
  for (const p of pts) if (out.length === 0 || out[out.length - 1] !== p) out.push(p);
  return out;
}

/** One dimension: sweep with a heap, emit owner segments, merge equal neighbours. */
function partition1(boxes: readonly Box[], d: number): Cell[] {
  const pts = boundaries(boxes, d);
  const sorted = [...boxes].sort((a, b) => cmp(a.dims[d]!.lo, b.dims[d]!.lo));
  const heap = new OwnerHeap();
  const out: { owner: number; lo: bigint; hi: bigint }[] = [];
  let next = 0;
  for (let i = 0; i + 1 < pts.length; i++) {
    const lo = pts[i]!;
    const hi = pts[i + 1]! - 1n;
    while (next < sorted.length && sorted[next]!.dims[d]!.lo <= lo) {
      heap.push(sorted[next]!.owner, sorted[next]!.dims[d]!.hi);
      next++;
    }
    const owner = heap.top(lo);
    if (owner === undefined) continue;
    const prev = out[out.length - 1];
    if (prev && prev.owner === owner && prev.hi + 1n === lo) prev.hi = hi;
    else out.push({ owner, lo, hi });
  }
  return out.map((s) => ({ owner: s.owner, dims: [{ lo: s.lo, hi: s.hi }] }));
}

function cellsKey(cells: readonly Cell[]): string {
  return cells.map((c) => `${c.owner}:${c.dims.map((iv) => `${iv.lo}-${iv.hi}`).join(',')}`).join('|');
}

function partitionFrom(boxes: readonly Box[], d: number, ndims: number): Cell[] {
  if (boxes.length === 0) return [];
  if (d === ndims - 1) return partition1(boxes, d);
  const pts = boundaries(boxes, d);
  const sorted = [...boxes].sort((a, b) => cmp(a.dims[d]!.lo, b.dims[d]!.lo));
  const memo = new Map<string, { cells: Cell[]; key: string }>();
  const position = new Map<Box, number>(boxes.map((b, i) => [b, i]));
  let active: Box[] = [];
  let next = 0;
  const segments: { lo: bigint; hi: bigint; cells: Cell[]; key: string }[] = [];
  for (let i = 0; i + 1 < pts.length; i++) {
    const lo = pts[i]!;
    const hi = pts[i + 1]! - 1n;
    active = active.filter((b) => b.dims[d]!.hi >= lo);
    while (next < sorted.length && sorted[next]!.dims[d]!.lo <= lo) active.push(sorted[next++]!);
    if (active.length === 0) continue;
    const ids = active.map((b) => position.get(b)!);
    const memoKey = ids.sort((a, b) => a - b).join(',');
    let sub = memo.get(memoKey);
    if (!sub) {
      const cells = partitionFrom(active, d + 1, ndims);
      sub = { cells, key: cellsKey(cells) };
      memo.set(memoKey, sub);
    }
    const prev = segments[segments.length - 1];
    if (prev && prev.key === sub.key && prev.hi + 1n === lo) prev.hi = hi;
    else segments.push({ lo, hi, cells: sub.cells, key: sub.key });
  }
  const out: Cell[] = [];
  for (const s of segments) {
    for (const c of s.cells) out.push({ owner: c.owner, dims: [{ lo: s.lo, hi: s.hi }, ...c.dims] });
  }
  return out;
}

function ivKey(iv: Interval): string {
  return `${iv.lo}-${iv.hi}`;
}

/**
 * Joins cells of one owner that touch along one dimension and agree on all others. The recursive
 * partition only merges whole sub-partitions, so overlapping ranges in an early dimension (port
 * ranges 2000-2010, 2001-2011, …) would otherwise leave one cell per elementary interval. The
 * union of two such cells is exactly their box, so the result stays disjoint.
 */
function coalesce(cells: Cell[]): Cell[] {
  if (cells.length === 0) return cells;
  const ndims = cells[0]!.dims.length;
  let current = cells;
  for (let changed = true, rounds = 0; changed && rounds < 4; rounds++) {
    changed = false;
    for (let d = 0; d < ndims; d++) {
      const groups = new Map<string, Cell[]>();
      for (const c of current) {
        const key = `${c.owner}|${c.dims.map((iv, i) => (i === d ? '*' : ivKey(iv))).join('|')}`;
        const g = groups.get(key);
        if (g) g.push(c);
        else groups.set(key, [c]);
      }
      const next: Cell[] = [];
      for (const g of groups.values()) {
        if (g.length === 1) {
          next.push(g[0]!);
          continue;
        }
        g.sort((a, b) => cmp(a.dims[d]!.lo, b.dims[d]!.lo));
        let run = g[0]!;
        for (let i = 1; i < g.length; i++) {
          const c = g[i]!;
          if (run.dims[d]!.hi + 1n === c.dims[d]!.lo) {
            const dims = [...run.dims];
            dims[d] = { lo: run.dims[d]!.lo, hi: c.dims[d]!.hi };
            run = { owner: run.owner, dims };
            changed = true;
          } else {
            next.push(run);
            run = c;
          }
        }
        next.push(run);
      }
      current = next;
    }
  }
  return current;
}

export function partition(boxes: readonly Box[]): Cell[] {
  if (boxes.length === 0) return [];
  const ndims = boxes[0]!.dims.length;
  for (const b of boxes) {
    if (b.dims.length !== ndims) throw new Error('partition: boxes differ in dimensions');
    for (const iv of b.dims) if (iv.lo > iv.hi) throw new Error('partition: empty interval');
  }
  const cells = coalesce(partitionFrom(boxes, 0, ndims));
  // Deterministic order, dimension by dimension, so renders are stable and diffs readable.
  return cells.sort((a, b) => {
    for (let d = 0; d < ndims; d++) {
      const c = cmp(a.dims[d]!.lo, b.dims[d]!.lo);
      if (c !== 0) return c;
    }
    return 0;
  });
}
