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
import { Box } from './partition';

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

function clip(b: Box, dim: number, lo: bigint, hi: bigint): Box {
  const iv = b.dims[dim]!;
  if (iv.lo >= lo && iv.hi <= hi) return b;
  const dims = [...b.dims];
  dims[dim] = { lo: iv.lo > lo ? iv.lo : lo, hi: iv.hi < hi ? iv.hi : hi };
  return { owner: b.owner, dims };
}

/** The boxes of a shard, clipped to its block on the address dimension. */
export function shardContent(boxes: readonly Box[], shard: Shard, dim: number): Box[] {
  return shard.indices.map((i) => clip(boxes[i]!, dim, shard.block.lo, shard.block.hi));
}

/**
 * Splits `boxes` into shards by their address dimension `dim` (`bits` wide). A block is halved
 * while it holds more than `max` boxes, unless a quarter of its boxes cover all of it (halving
 * would copy them into both halves). Shards are returned in address order; empty blocks are left
 * out. Only indices are passed around: a caller that can reuse a shard never pays for clipping it.
 */
export function shardBoxes(boxes: readonly Box[], dim: number, bits: number, max = SHARD_MAX): Shard[] {
  const out: Shard[] = [];
  if (boxes.length === 0) return out;
  if (bits <= 52) {
    // IPv4: bounds compare as plain numbers, much cheaper than bigints.
    const los = new Float64Array(boxes.length);
    const his = new Float64Array(boxes.length);
    boxes.forEach((b, i) => {
      los[i] = Number(b.dims[dim]!.lo);
      his[i] = Number(b.dims[dim]!.hi);
    });
    const visit = (lo: number, len: number, inside: number[]): void => {
      const hi = lo + 2 ** (bits - len) - 1;
      let spanning = 0;
      for (const i of inside) if (los[i]! <= lo && his[i]! >= hi) spanning++;
      if (inside.length <= max || len === bits || spanning * 4 > inside.length) {
        out.push({ block: { lo: BigInt(lo), len, hi: BigInt(hi) }, indices: inside });
        return;
      }
      const mid = lo + 2 ** (bits - len - 1);
      const left = inside.filter((i) => los[i]! < mid);
      const right = inside.filter((i) => his[i]! >= mid);
      if (left.length > 0) visit(lo, len + 1, left);
      if (right.length > 0) visit(mid, len + 1, right);
    };
    visit(0, 0, boxes.map((_, i) => i));
    return out;
  }
  const visit = (lo: bigint, len: number, inside: number[]): void => {
    const size = 1n << BigInt(bits - len);
    const hi = lo + size - 1n;
    let spanning = 0;
    for (const i of inside) if (boxes[i]!.dims[dim]!.lo <= lo && boxes[i]!.dims[dim]!.hi >= hi) spanning++;
    if (inside.length <= max || len === bits || spanning * 4 > inside.length) {
      out.push({ block: { lo, len, hi }, indices: inside });
      return;
    }
    const mid = lo + size / 2n;
    const left = inside.filter((i) => boxes[i]!.dims[dim]!.lo < mid);
    const right = inside.filter((i) => boxes[i]!.dims[dim]!.hi >= mid);
    if (left.length > 0) visit(lo, len + 1, left);
    if (right.length > 0) visit(mid, len + 1, right);
  };
  visit(0n, 0, boxes.map((_, i) => i));
  return out;
}

/** A stable name for a block: the map's name, the block's first address in hex, its length. */
export function shardName(map: string, block: Block, bits: number): string {
  return `${map}-${block.lo.toString(16).padStart(bits / 4, '0')}-${block.len}`;
}
