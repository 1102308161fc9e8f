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
export const SHARD_MAX = 1024;

function clip(b: Box, dim: number, lo: bigint, hi: bigint): Box | undefined {
  const iv = b.dims[dim]!;
  if (iv.hi < lo || iv.lo > hi) return undefined;
  if (iv.lo >= lo && iv.hi <= hi) return b;
  const dims = [...b.dims];
  dims[dim] = { lo: iv.lo > lo ? iv.lo : lo, hi: iv.hi < hi ? iv.hi : hi };
  return { owner: b.owner, dims };
}

/**
 * Splits `boxes` into shards by their address dimension `dim` (`bits` wide). A block is halved
 * while it holds more than `max` boxes, unless most of its boxes cover all of it (halving would
 * only copy them). Shards are returned in address order; empty blocks are left out.
 */
export function shardBoxes(boxes: readonly Box[], dim: number, bits: number, max = SHARD_MAX): Shard[] {
  const out: Shard[] = [];
  const visit = (lo: bigint, len: number, inside: readonly Box[]): void => {
    if (inside.length === 0) return;
    const size = 1n << BigInt(bits - len);
    const hi = lo + size - 1n;
    let spanning = 0;
    for (const b of inside) if (b.dims[dim]!.lo <= lo && b.dims[dim]!.hi >= hi) spanning++;
    if (inside.length <= max || len === bits || spanning * 2 > inside.length) {
      out.push({ block: { lo, len, hi }, boxes: inside });
      return;
    }
    const mid = lo + size / 2n;
    const left: Box[] = [];
    const right: Box[] = [];
    for (const b of inside) {
      const l = clip(b, dim, lo, mid - 1n);
      if (l) left.push(l);
      const r = clip(b, dim, mid, hi);
      if (r) right.push(r);
    }
    visit(lo, len + 1, left);
    visit(mid, len + 1, right);
  };
  visit(0n, 0, boxes);
  return out;
}

/** A stable name for a block: the map's name, the block's first address in hex, its length. */
export function shardName(map: string, block: Block, bits: number): string {
  return `${map}-${block.lo.toString(16).padStart(bits / 4, '0')}-${block.len}`;
}
