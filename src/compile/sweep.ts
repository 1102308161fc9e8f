/**
 * The sweep at the heart of the partition (partition.ts), on numbers: each box's interval on each
 * dimension is a pair of numbers (the values themselves, or compressed indices for 128-bit
 * addresses). A sweep over the first dimension's elementary intervals partitions the rest
 * recursively (memoised by the set of active boxes) and extends every sub-cell along the first
 * dimension for as long as it repeats. Cells are flat number arrays, sorted by their low corner at
 * every level, so repeating sub-cells are found by a merge and the result needs no final sort.
 */

function swap(a: number[], i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
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
      swap(o, p, i);
      swap(h, p, i);
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
      swap(o, m, i);
      swap(h, m, i);
      i = m;
    }
  }

  /** The winning owner still active at `at`, or -1. */
  top(at: number): number {
    while (this.owners.length > 0 && this.his[0]! < at) this.pop();
    return this.owners.length > 0 ? this.owners[0]! : -1;
  }
}

/** Box counts up to which a scan beats a heap and recomputing beats a memo key. */
const FEW = 8;

/**
 * Box ids below this pack with a value into one double for sorting (value * ID_LIMIT + id stays
 * below 2^53 for values up to 2^33: IPv4 addresses and compressed indices).
 */
const ID_LIMIT = 2 ** 20;

/**
 * The sweep on numbers: box i's interval on dimension d is [lo[i*nd+d], hi[i*nd+d]] (the values
 * themselves, or indices for a compressed dimension).
 * A level's cells are flat: [owner, lo_d, hi_d, lo_d+1, hi_d+1, …] per cell.
 */
export class Sweep {
  /** Whether (lo, id) pairs pack into one double (byLo). */
  private readonly packable: boolean;

  constructor(
    private readonly nd: number,
    private readonly lo: Float64Array,
    private readonly hi: Float64Array,
    private readonly owner: Int32Array,
  ) {
    let min = 0;
    let max = 0;
    for (let k = 0; k < lo.length; k++) {
      min = Math.min(min, lo[k]!);
      max = Math.max(max, lo[k]!);
    }
    this.packable = owner.length <= ID_LIMIT && min >= 0 && max < 2 ** 33;
  }

  /** Sorted, unique endpoints (lo and hi+1) of `ids` on dimension d. */
  private boundaries(ids: readonly number[], d: number): ArrayLike<number> {
    const { lo, hi, nd } = this;
    if (ids.length <= FEW) {
      // Insertion into a short array: cheaper than a typed-array sort for the many tiny sets.
      const pts: number[] = [];
      for (const b of ids) {
        insertUnique(pts, lo[b * nd + d]!);
        insertUnique(pts, hi[b * nd + d]! + 1);
      }
      return pts;
    }
    const pts = new Float64Array(ids.length * 2);
    for (let k = 0; k < ids.length; k++) {
      pts[2 * k] = lo[ids[k]! * nd + d]!;
      pts[2 * k + 1] = hi[ids[k]! * nd + d]! + 1;
    }
    pts.sort();
    let n = 0;
    for (let k = 0; k < pts.length; k++) if (n === 0 || pts[n - 1] !== pts[k]) pts[n++] = pts[k]!;
    return pts.subarray(0, n);
  }

  /** `ids` ordered by lo, ties by id. */
  private byLo(ids: readonly number[], d: number): number[] {
    const { lo, nd } = this;
    if (!this.packable) return [...ids].sort((a, b) => lo[a * nd + d]! - lo[b * nd + d]! || a - b);
    // (lo, id) packed into one double: a typed-array sort is several times faster than a comparator.
    const keys = new Float64Array(ids.length);
    for (let k = 0; k < ids.length; k++) keys[k] = lo[ids[k]! * nd + d]! * ID_LIMIT + ids[k]!;
    keys.sort();
    const out = new Array<number>(keys.length);
    for (let k = 0; k < keys.length; k++) out[k] = keys[k]! % ID_LIMIT;
    return out;
  }

  /**
   * Last dimension: emit each elementary segment's winner, joining equal neighbours. Most calls
   * get a few boxes (those of one port); they are scanned, larger sets go through a heap.
   */
  private last(ids: readonly number[], d: number): number[] {
    const { lo, hi, nd, owner } = this;
    if (ids.length === 1) return [owner[ids[0]!]!, lo[ids[0]! * nd + d]!, hi[ids[0]! * nd + d]!];
    const pts = this.boundaries(ids, d);
    const out: number[] = [];
    if (ids.length <= FEW) {
      for (let i = 0; i + 1 < pts.length; i++) {
        const from = pts[i]!;
        let win = -1;
        for (const b of ids) if (lo[b * nd + d]! <= from && hi[b * nd + d]! >= from && (win < 0 || owner[b]! < win)) win = owner[b]!;
        if (win >= 0) emit(out, win, from, pts[i + 1]! - 1);
      }
      return out;
    }
    const sorted = this.byLo(ids, d);
    const heap = new OwnerHeap();
    let next = 0;
    for (let i = 0; i + 1 < pts.length; i++) {
      const from = pts[i]!;
      while (next < sorted.length && lo[sorted[next]! * nd + d]! <= from) {
        heap.push(owner[sorted[next]!]!, hi[sorted[next]! * nd + d]!);
        next++;
      }
      const win = heap.top(from);
      if (win >= 0) emit(out, win, from, pts[i + 1]! - 1);
    }
    return out;
  }

  /** Cells of `ids` from dimension d on, sorted by their low corner. */
  cells(ids: readonly number[], d: number): number[] {
    if (ids.length === 0) return [];
    if (d === this.nd - 1) return this.last(ids, d);
    const { lo, hi, nd } = this;
    const pts = this.boundaries(ids, d);
    const sorted = this.byLo(ids, d);
    const s = 1 + 2 * (this.nd - d - 1); // a sub-cell's length
    const memo = new Map<string, number[]>();
    const out: number[] = [];
    const active: number[] = [];
    let next = 0;
    // The previous segment's sub-cells and where each one's cell is in `out`, to extend them.
    const single = [new Array<number>(s), new Array<number>(s)];
    let flip = 0;
    let prevSub: number[] = [];
    let prevAt: number[] = [];
    let at: number[] = [];
    let lastTo = Number.NaN;
    for (let i = 0; i + 1 < pts.length; i++) {
      const from = pts[i]!;
      const to = pts[i + 1]! - 1;
      // Boxes that ended leave `active` in place (sub-partitions do not keep it).
      let kept = 0;
      for (let k = 0; k < active.length; k++) if (hi[active[k]! * nd + d]! >= from) active[kept++] = active[k]!;
      active.length = kept;
      while (next < sorted.length && lo[sorted[next]! * nd + d]! <= from) active.push(sorted[next++]!);
      if (active.length === 0) continue;
      let sub: number[] | undefined;
      if (active.length === 1) {
        // One box is its own partition (the usual case: one port's box). It goes into the two
        // scratch lists by turns, so the previous segment's stays intact for the merge below.
        sub = single[(flip ^= 1)]!;
        const b = active[0]!;
        sub[0] = this.owner[b]!;
        for (let e = d + 1; e < nd; e++) {
          sub[1 + 2 * (e - d - 1)] = lo[b * nd + e]!;
          sub[2 + 2 * (e - d - 1)] = hi[b * nd + e]!;
        }
      } else {
        // `active` is always in `sorted` order, so the same set always gives the same key. A few
        // boxes cost less to partition again than to key.
        const key = active.length > FEW ? active.join(',') : undefined;
        sub = key === undefined ? undefined : memo.get(key);
        if (!sub) {
          sub = this.cells(active, d + 1);
          if (key !== undefined) memo.set(key, sub);
        }
      }
      const contiguous = lastTo + 1 === from;
      at.length = 0;
      let j = 0;
      for (let k = 0; k * s < sub.length; k++) {
        let cell = -1;
        if (contiguous && prevSub === sub) cell = prevAt[k]!;
        else if (contiguous) {
          // Both lists are sorted by low corner: a merge finds the same sub-cell, if it repeats.
          while (j * s < prevSub.length && cornerCmp(prevSub, j * s, sub, k * s, s) < 0) j++;
          if (j * s < prevSub.length && sameCell(prevSub, j * s, sub, k * s, s)) cell = prevAt[j]!;
        }
        if (cell >= 0) out[cell + 2] = to;
        else {
          cell = out.length;
          out.push(sub[k * s]!, from, to);
          for (let t = 1; t < s; t++) out.push(sub[k * s + t]!);
        }
        at.push(cell);
      }
      prevSub = sub;
      [prevAt, at] = [at, prevAt];
      lastTo = to;
    }
    return out;
  }
}

/** Appends a last-dimension cell, joined to the previous one when it continues it with the same owner. */
function emit(out: number[], owner: number, from: number, to: number): void {
  const n = out.length;
  if (n > 0 && out[n - 3] === owner && out[n - 1]! + 1 === from) out[n - 1] = to;
  else out.push(owner, from, to);
}

function insertUnique(sorted: number[], v: number): void {
  let k = sorted.length;
  while (k > 0 && sorted[k - 1]! > v) k--;
  if (k > 0 && sorted[k - 1] === v) return;
  for (let j = sorted.length; j > k; j--) sorted[j] = sorted[j - 1]!;
  sorted[k] = v;
}

/** Compares the low corners (lo of every dimension) of two cells of length s. */
function cornerCmp(a: readonly number[], i: number, b: readonly number[], j: number, s: number): number {
  for (let t = 1; t < s; t += 2) {
    const c = a[i + t]! - b[j + t]!;
    if (c !== 0) return c;
  }
  return 0;
}

function sameCell(a: readonly number[], i: number, b: readonly number[], j: number, s: number): boolean {
  for (let t = 0; t < s; t++) if (a[i + t] !== b[j + t]) return false;
  return true;
}
