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

/** A block and the boxes that intersect it: a shard (leaf) or split into its non-empty halves. */
export interface ShardNode {
  readonly block: Block;
  /** Boxes intersecting the block. */
  readonly count: number;
  /** Boxes covering all of it. */
  readonly spanning: number;
  /** A shard's boxes (indices in input order); undefined when the block is split. */
  readonly indices?: readonly number[];
  readonly left?: ShardNode;
  readonly right?: ShardNode;
}

/**
 * Whether a block is a shard rather than halved: it holds at most `max` boxes, cannot be halved,
 * or a quarter of its boxes cover all of it (halving would copy them into both halves).
 */
export function isShard(count: number, spanning: number, len: number, bits: number, max: number): boolean {
  return count <= max || len === bits || spanning * 4 > count;
}

/** The aligned block of prefix length `len` holding address `at`. */
export function blockAt(at: bigint, len: number, bits: number): Block {
  const size = 1n << BigInt(bits - len);
  const lo = at - (at % size);
  return { lo, len, hi: lo + size - 1n };
}

/** A split block with one non-empty half. */
function oneHalf(block: Block, count: number, spanning: number, half: ShardNode): ShardNode {
  const mid = block.lo + (block.hi - block.lo + 1n) / 2n;
  return half.block.lo < mid ? { block, count, spanning, left: half } : { block, count, spanning, right: half };
}

/**
 * The shard tree of `boxes` by their address dimension `dim` (`bits` wide), from block `start`
 * (the whole space unless given; every box must intersect it). A block is halved while isShard
 * says no; empty halves are left out. Only indices are passed around: a caller that can reuse a
 * shard never pays for clipping it.
 */
export function shardTree(boxes: BoxTable | readonly Box[], dim: number, bits: number, max = SHARD_MAX, start?: Block): ShardNode | undefined {
  const { owners, coords, dims } = table(boxes);
  if (owners.length === 0) return undefined;
  const root = start ?? { lo: 0n, len: 0, hi: (1n << BigInt(bits)) - 1n };
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
    const visit = (from: number, len: number, inside: number[]): ShardNode => {
      const to = from + 2 ** (bits - len) - 1;
      const mid = from + 2 ** (bits - len - 1);
      countBlock(inside, los, his, from, to, mid, c);
      const block = { lo: BigInt(from), len, hi: BigInt(to) };
      const spanning = c[SPANNING]!;
      if (isShard(inside.length, spanning, len, bits, max)) return { block, count: inside.length, spanning, indices: inside };
      // Halving while every box lies in one half only repeats the same boxes one level down: go
      // straight to the smallest block holding all of them (the same shards, fewer passes). The
      // levels skipped hold the same boxes, none covering them whole.
      const first = c[FIRST]!;
      const last = c[LAST]!;
      let common = len;
      while (common < bits && Math.floor(first / 2 ** (bits - common - 1)) === Math.floor(last / 2 ** (bits - common - 1))) common++;
      if (common > len) {
        let node = visit(first - (first % 2 ** (bits - common)), common, inside);
        for (let l = common - 1; l > len; l--) node = oneHalf(blockAt(node.block.lo, l, bits), inside.length, 0, node);
        return oneHalf(block, inside.length, spanning, node);
      }
      const left = new Array<number>(c[LEFT]!);
      const right = new Array<number>(c[RIGHT]!);
      splitBlock(inside, los, his, mid, left, right);
      return {
        block,
        count: inside.length,
        spanning,
        left: left.length > 0 ? visit(from, len + 1, left) : undefined,
        right: right.length > 0 ? visit(mid, len + 1, right) : undefined,
      };
    };
    // Made like the halves' arrays (new Array, then filled): one array shape for the JIT.
    const all = new Array<number>(owners.length);
    for (let i = 0; i < owners.length; i++) all[i] = i;
    return visit(Number(root.lo), root.len, all);
  }
  const visit = (from: bigint, len: number, inside: number[]): ShardNode => {
    const size = 1n << BigInt(bits - len);
    const block = { lo: from, len, hi: from + size - 1n };
    let spanning = 0;
    for (const i of inside) if (lo(i) <= from && hi(i) >= block.hi) spanning++;
    if (isShard(inside.length, spanning, len, bits, max)) return { block, count: inside.length, spanning, indices: inside };
    const mid = from + size / 2n;
    const left = inside.filter((i) => lo(i) < mid);
    const right = inside.filter((i) => hi(i) >= mid);
    return {
      block,
      count: inside.length,
      spanning,
      left: left.length > 0 ? visit(from, len + 1, left) : undefined,
      right: right.length > 0 ? visit(mid, len + 1, right) : undefined,
    };
  };
  return visit(root.lo, root.len, owners.map((_, i) => i));
}

/** The shards of a tree in address order. */
export function shardLeaves<T extends ShardNode>(node: T | undefined, out: T[] = []): T[] {
  if (!node) return out;
  if (!node.left && !node.right) out.push(node);
  shardLeaves(node.left as T | undefined, out);
  shardLeaves(node.right as T | undefined, out);
  return out;
}

/** The shards of `boxes` (shardTree's leaves), in address order. */
export function shardBoxes(boxes: BoxTable | readonly Box[], dim: number, bits: number, max = SHARD_MAX): Shard[] {
  return shardLeaves(shardTree(boxes, dim, bits, max)).map((n) => ({ block: n.block, indices: n.indices! }));
}

/** A stable name for a block: the map's name, the block's first address in hex, its length. */
export function shardName(map: string, block: Block, bits: number): string {
  return `${map}-${block.lo.toString(16).padStart(bits / 4, '0')}-${block.len}`;
}
