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
  /** The boxes inside the block, clipped to it on the address dimension. */
  readonly boxes: readonly Box[];
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

/**
 * Splits `boxes` into shards by their address dimension `dim` (`bits` wide). A block is halved
 * while it holds more than `max` boxes, unless a quarter of its boxes cover all of it (halving
 * would copy them into both halves). Shards are returned in address order; empty blocks are left out.
 */
export function shardBoxes(boxes: readonly Box[], dim: number, bits: number, max = SHARD_MAX): Shard[] {
  // IPv4 bounds compare as plain numbers (much cheaper than bigints); IPv6 keeps bigints.
  const small = bits <= 52;
  const conv = (x: bigint): number | bigint => (small ? Number(x) : x);
  const los = boxes.map((b) => conv(b.dims[dim]!.lo));
  const his = boxes.map((b) => conv(b.dims[dim]!.hi));
  const out: Shard[] = [];
  const visit = (lo: bigint, len: number, inside: readonly number[]): void => {
    if (inside.length === 0) return;
    const size = 1n << BigInt(bits - len);
    const hi = lo + size - 1n;
    const L = conv(lo);
    const H = conv(hi);
    let spanning = 0;
    for (const i of inside) if (los[i]! <= L && his[i]! >= H) spanning++;
    if (inside.length <= max || len === bits || spanning * 4 > inside.length) {
      // Each box here intersects the block: clipping to it once equals clipping at every level.
      out.push({ block: { lo, len, hi }, boxes: inside.map((i) => clip(boxes[i]!, dim, lo, hi)) });
      return;
    }
    const mid = lo + size / 2n;
    const M = conv(mid);
    const left: number[] = [];
    const right: number[] = [];
    for (const i of inside) {
      if (los[i]! < M) left.push(i);
      if (his[i]! >= M) right.push(i);
    }
    visit(lo, len + 1, left);
    visit(mid, len + 1, right);
  };
  visit(0n, 0, boxes.map((_, i) => i));
  return out;
}

/** A stable name for a block: the map's name, the block's first address in hex, its length. */
export function shardName(map: string, block: Block, bits: number): string {
  return `${map}-${block.lo.toString(16).padStart(bits / 4, '0')}-${block.len}`;
}
