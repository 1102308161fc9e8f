/**
 * Boxes: one interval per dimension and an owner, what the policies and Services contribute to the
 * verdict maps (items.ts) and what the partition and the address shards work on.
 */

/**
 * A value on one dimension: a number when every value of the dimension fits a double exactly
 * (protocols, ports, IPv4 addresses), a bigint otherwise (IPv6 addresses). Numbers keep the hot
 * path free of bigint allocations; one dimension uses one type.
 */
export type Coord = number | bigint;

export interface Interval {
  readonly lo: Coord;
  readonly hi: Coord;
}

export interface Box {
  readonly owner: number;
  /** One interval per dimension; all boxes have the same number of dimensions. */
  readonly dims: readonly Interval[];
}

export type Cell = Box;

/**
 * Boxes in flat arrays, the compiler's working form: a box is a few numbers rather than a handful
 * of objects, which keeps 100k+ boxes small and cheap for the garbage collector. Box i's interval
 * on dimension d is [coords[2 * (i * dims + d)], coords[2 * (i * dims + d) + 1]].
 */
export interface BoxTable {
  readonly dims: number;
  readonly owners: number[];
  readonly coords: Coord[];
}

export function emptyTable(dims: number): BoxTable {
  return { dims, owners: [], coords: [] };
}

/** Appends boxes given as flat coords (2 per dimension) to `t`, all owned by `owner`. */
export function appendBoxes(t: BoxTable, owner: number, coords: readonly Coord[]): void {
  for (let k = 0; k < coords.length; k++) t.coords.push(coords[k]!);
  for (let n = coords.length / (2 * t.dims); n > 0; n--) t.owners.push(owner);
}

export function toTable(boxes: readonly Box[]): BoxTable {
  const t = emptyTable(boxes[0]?.dims.length ?? 0);
  for (const b of boxes) {
    if (b.dims.length !== t.dims) throw new Error('partition: boxes differ in dimensions');
    t.owners.push(b.owner);
    for (const iv of b.dims) t.coords.push(iv.lo, iv.hi);
  }
  return t;
}

export function toBoxes(t: BoxTable): Box[] {
  return t.owners.map((owner, i) => ({
    owner,
    dims: Array.from({ length: t.dims }, (_, d) => ({ lo: t.coords[2 * (i * t.dims + d)]!, hi: t.coords[2 * (i * t.dims + d) + 1]! })),
  }));
}

export function succ(v: Coord): Coord {
  return typeof v === 'bigint' ? v + 1n : v + 1;
}

export function cmp(a: Coord, b: Coord): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
