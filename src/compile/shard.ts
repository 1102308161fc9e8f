/**
 * Address shards for the concatenated maps.
 *
 * The kernel keeps a concatenated interval map (`daddr . l4proto . dport`) in a pipapo set, whose
 * load time and per-packet lookup grow faster than its element count. So each such map is split
 * into shards by address block: a small plain interval map (an rbtree) dispatches on the address
 * to the shard of its block, and each shard holds only the elements inside that block.
 *
 * Blocks are aligned prefixes found by halving the address space while a block holds more than
 * `max` boxes. The split of a block depends only on the boxes inside it, so a change to one policy
 * moves at most the blocks it touches and the rest keep their names and elements (incremental
 * updates stay small). Pure.
 */
import { Box, BoxTable, Coord, toBoxes, toTable } from './boxes';

export interface Block {
  /** First address of the block. */
  readonly lo: bigint;
  /** Prefix length. */
  readonly len: number;
  /** Last address of the block. */
  readonly hi: bigint;
}

export interface Shard {
  readonly block: Block;
  /** Indices of the boxes that intersect the block, in input order. */
  readonly indices: readonly number[];
}

/** Boxes per shard before a block is halved: measured best between load time and map count. */
export const SHARD_MAX = 2048;

function table(boxes: BoxTable | readonly Box[]): BoxTable {
  return Array.isArray(boxes) ? toTable(boxes as readonly Box[]) : (boxes as BoxTable);
}

/** The boxes of a shard, clipped to its block on the address dimension. */
export function shardContent(boxes: BoxTable, shard: Shard, dim: number): BoxTable;
export function shardContent(boxes: readonly Box[], shard: Shard, dim: number): Box[];
export function shardContent(boxes: BoxTable | readonly Box[], shard: Shard, dim: number): BoxTable | Box[] {
  if (Array.isArray(boxes)) return toBoxes(shardContent(table(boxes), shard, dim));
  const { dims, owners, coords } = boxes as BoxTable;
  const { indices } = shard;
  const stride = 2 * dims;
  const out: BoxTable = { dims, owners: new Array<number>(indices.length), coords: new Array<Coord>(indices.length * stride) };
  // The block's bounds in the type of the dimension (numbers for IPv4).
  const big = indices.length > 0 && typeof coords[stride * indices[0]! + 2 * dim] === 'bigint';
  const lo = big ? shard.block.lo : Number(shard.block.lo);
  const hi = big ? shard.block.hi : Number(shard.block.hi);
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j]!;
    out.owners[j] = owners[i]!;
    for (let k = 0; k < stride; k++) out.coords[j * stride + k] = coords[i * stride + k]!;
    const at = j * stride + 2 * dim;
    if (out.coords[at]! < lo) out.coords[at] = lo;
    if (out.coords[at + 1]! > hi) out.coords[at + 1] = hi;
  }
  return out;
}

// The loops over a block's boxes are functions of their own, and write into arrays they are
// given: a loop inside the recursion runs a few times only, and its optimised code would be thrown
// away whenever the code after it (a closure's next line, a literal to return) is reached first.

/** Where countBlock writes: boxes covering the whole block, its first and last covered address, boxes per half. */
const SPANNING = 0;
const FIRST = 1;
const LAST = 2;
const LEFT = 3;
const RIGHT = 4;

function countBlock(inside: readonly number[], los: Float64Array, his: Float64Array, from: number, to: number, mid: number, out: Float64Array): void {
  let spanning = 0;
  let first = to;
  let last = from;
  let left = 0;
  let right = 0;
  for (let k = 0; k < inside.length; k++) {
    const i = inside[k]!;
    if (los[i]! <= from && his[i]! >= to) spanning++;
    first = Math.min(first, Math.max(los[i]!, from));
    last = Math.max(last, Math.min(his[i]!, to));
    if (los[i]! < mid) left++;
    if (his[i]! >= mid) right++;
  }
  out[SPANNING] = spanning;
  out[FIRST] = first;
  out[LAST] = last;
  out[LEFT] = left;
  out[RIGHT] = right;
}

/** Fills `left` and `right` (sized by countBlock) with the boxes of each half, in input order. */
function splitBlock(inside: readonly number[], los: Float64Array, his: Float64Array, mid: number, left: number[], right: number[]): void {
  let l = 0;
  let r = 0;
  for (let k = 0; k < inside.length; k++) {
    const i = inside[k]!;
    if (los[i]! < mid) left[l++] = i;
    if (his[i]! >= mid) right[r++] = i;
  }
}

/**
 * Splits `boxes` into shards by their address dimension `dim` (`bits` wide). A block is halved
 * while it holds more than `max` boxes, unless a quarter of its boxes cover all of it (halving
 * would copy them into both halves). Shards are returned in address order; empty blocks are left
 * out. Only indices are passed around: a caller that can reuse a shard never pays for clipping it.
 */
export function shardBoxes(boxes: BoxTable | readonly Box[], dim: number, bits: number, max = SHARD_MAX): Shard[] {
  const { owners, coords, dims } = table(boxes);
  const out: Shard[] = [];
  if (owners.length === 0) return out;
  const lo = (i: number) => coords[2 * (i * dims + dim)]!;
  const hi = (i: number) => coords[2 * (i * dims + dim) + 1]!;
  if (bits <= 52) {
    // IPv4: bounds compare as plain numbers, much cheaper than bigints.
    const los = new Float64Array(owners.length);
    const his = new Float64Array(owners.length);
    for (let i = 0; i < owners.length; i++) {
      los[i] = Number(lo(i));
      his[i] = Number(hi(i));
    }
    // Indexed loops: this runs once per map, mostly before the JIT has optimised it, and for-of
    // would allocate per iteration there.
    const c = new Float64Array(5);
    const visit = (from: number, len: number, inside: number[]): void => {
      const to = from + 2 ** (bits - len) - 1;
      const mid = from + 2 ** (bits - len - 1);
      countBlock(inside, los, his, from, to, mid, c);
      if (inside.length <= max || len === bits || c[SPANNING]! * 4 > inside.length) {
        out.push({ block: { lo: BigInt(from), len, hi: BigInt(to) }, indices: inside });
        return;
      }
      // Halving while every box lies in one half only repeats the same boxes one level down: go
      // straight to the smallest block holding all of them (the same shards, fewer passes).
      const first = c[FIRST]!;
      const last = c[LAST]!;
      let common = len;
      while (common < bits && Math.floor(first / 2 ** (bits - common - 1)) === Math.floor(last / 2 ** (bits - common - 1))) common++;
      if (common > len) {
        visit(first - (first % 2 ** (bits - common)), common, inside);
        return;
      }
      const left = new Array<number>(c[LEFT]!);
      const right = new Array<number>(c[RIGHT]!);
      splitBlock(inside, los, his, mid, left, right);
      if (left.length > 0) visit(from, len + 1, left);
      if (right.length > 0) visit(mid, len + 1, right);
    };
    // Made like the halves' arrays (new Array, then filled): one array shape for the JIT.
    const all = new Array<number>(owners.length);
    for (let i = 0; i < owners.length; i++) all[i] = i;
    visit(0, 0, all);
    return out;
  }
  const visit = (from: bigint, len: number, inside: number[]): void => {
    const size = 1n << BigInt(bits - len);
    const to = from + size - 1n;
    let spanning = 0;
    for (const i of inside) if (lo(i) <= from && hi(i) >= to) spanning++;
    if (inside.length <= max || len === bits || spanning * 4 > inside.length) {
      out.push({ block: { lo: from, len, hi: to }, indices: inside });
      return;
    }
    const mid = from + size / 2n;
    const left = inside.filter((i) => lo(i) < mid);
    const right = inside.filter((i) => hi(i) >= mid);
    if (left.length > 0) visit(from, len + 1, left);
    if (right.length > 0) visit(mid, len + 1, right);
  };
  visit(0n, 0, owners.map((_, i) => i));
  return out;
}

/** A stable name for a block: the map's name, the block's first address in hex, its length. */
export function shardName(map: string, block: Block, bits: number): string {
  return `${map}-${block.lo.toString(16).padStart(bits / 4, '0')}-${block.len}`;
}
