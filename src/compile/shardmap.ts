/**
 * A sharded concatenated map (shard.ts) kept across compiles: its shard tree with, per shard, the
 * boxes inside it and the elements they gave. A change takes out the boxes of the parts (policies)
 * that went and puts in those that came, walking down only the blocks their addresses touch: a
 * block's split depends only on the boxes inside it, so every other shard keeps its boxes and
 * its element list (the very same array, which the incremental diff skips). Blocks are split and
 * merged as counts cross the limit, exactly as shardTree would on the whole input.
 */
import { FAMILY_BITS, Family } from '../model/address';
import { PROTOCOL_NUMBER, Protocol } from '../model/ports';
import { NftChain, NftChainVerdict, NftElement, NftMap } from '../nft/ruleset';
import { addrRange, addrType, ports, protocol, range } from '../nft/syntax';
import { BoxTable, Coord } from './boxes';
import { Cells, partitionCells } from './partition';
import { Block, ShardNode, isShard, shardContent, shardName, shardTree } from './shard';

/** What one owner puts into a map: boxes with its verdict. */
export interface Part {
  /** Orders the parts: the first name owns overlaps (as owner indices do in an uncached compile). */
  readonly name: string;
  readonly verdict: NftChainVerdict;
  /** Boxes as flat coords, `dims` dimensions each: [proto, port, addr, …more addresses]. */
  readonly coords: readonly Coord[];
}

/** The address dimension of the boxes. */
const ADDR = 2;

/**
 * Box `ks[i]` of `parts[i]` for each i in `at` (all when undefined), ordered by part name, then
 * box. The shards built together share one pair of arrays, each with its own `at`.
 */
interface Entries {
  readonly parts: readonly Part[];
  readonly ks: readonly number[];
  readonly at?: readonly number[];
}

/** Boxes with their owners in a table (owner numbers ascend with the part names) for shardTree. */
interface Flat {
  readonly table: BoxTable;
  /** Per box. */
  readonly parts: Part[];
  readonly ks: number[];
  /** Per owner number. */
  readonly verdicts: NftChainVerdict[];
}

interface Leaf {
  readonly block: Block;
  readonly count: number;
  readonly spanning: number;
  readonly entries: Entries;
  readonly map: NftMap;
  readonly chain: NftChain;
  readonly dispatch: NftElement;
}

interface Split {
  readonly block: Block;
  readonly count: number;
  readonly spanning: number;
  readonly left?: Node;
  readonly right?: Node;
}

type Node = Leaf | Split;

const isLeaf = (n: Node): n is Leaf => 'entries' in n;

/** Boxes of changed parts that intersect a block, with their address bounds. */
interface Changes extends Entries {
  readonly los: readonly Coord[];
  readonly his: readonly Coord[];
}

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp'];

/**
 * The elements of a concatenated map, one per cell and protocol: dims [proto, port, addr, …more
 * addresses], key order addr . proto . port . more. A cell may span tcp..udp (both present with
 * nothing between); it becomes one element per protocol.
 */
function concatElements(family: Family, cells: Cells, verdicts: readonly NftChainVerdict[]): NftElement[] {
  const out: NftElement[] = [];
  // Few distinct port ranges, many cells: their text is shared.
  const portTexts = new Map<number, string>();
  for (let i = 0; i < cells.length; i++) {
    const lo = Number(cells.lo(i, 1));
    const hi = Number(cells.hi(i, 1));
    let port = portTexts.get(lo * 65536 + hi);
    if (port === undefined) portTexts.set(lo * 65536 + hi, (port = ports({ lo, hi })));
    const addr = addrRange(family, cells.lo(i, ADDR), cells.hi(i, ADDR));
    for (const proto of PROTOCOLS) {
      const n = PROTOCOL_NUMBER[proto];
      if (cells.lo(i, 0) > n || n > cells.hi(i, 0)) continue;
      const key = [addr, protocol(proto), port];
      for (let d = 3; d < cells.dims; d++) key.push(addrRange(family, cells.lo(i, d), cells.hi(i, d)));
      out.push({ key, verdict: verdicts[cells.owner(i)]! });
    }
  }
  return out;
}

function compareEntry(pa: Part, ka: number, pb: Part, kb: number): number {
  if (pa !== pb) return pa.name < pb.name ? -1 : 1;
  return ka - kb;
}

/** The entries as plain arrays (no `at`). */
function plain(e: Entries): Entries {
  const at = e.at;
  return at ? { parts: at.map((i) => e.parts[i]!), ks: at.map((i) => e.ks[i]!) } : e;
}

/**
 * The boxes of `entries` (all `count` of them, or of `parts` when given) in one table; with
 * `perBox` false, without their parts and indices (a map that is never updated needs none).
 */
function flatten(dims: number, count: number, entries: Entries | undefined, parts?: readonly Part[], perBox = true): Flat {
  const stride = 2 * dims;
  const f: Flat = {
    table: { dims, owners: new Array<number>(count), coords: new Array<Coord>(count * stride) },
    parts: perBox ? new Array<Part>(count) : [],
    ks: perBox ? new Array<number>(count) : [],
    verdicts: [],
  };
  const { owners, coords } = f.table;
  let last: Part | undefined;
  // Plain loops, no closure per box: this copies every box of a fresh map (300,000+).
  for (let j = 0, p = 0; j < count; p++) {
    const part = parts ? parts[p]! : entries!.parts[j]!;
    const n = parts ? part.coords.length / stride : 1;
    for (let b = 0; b < n; b++, j++) {
      if (part !== last) f.verdicts.push(part.verdict);
      last = part;
      const k = parts ? b : entries!.ks[j]!;
      owners[j] = f.verdicts.length - 1;
      if (perBox) {
        f.parts[j] = part;
        f.ks[j] = k;
      }
      const pc = part.coords;
      for (let d = 0, from = k * stride; d < stride; d++) coords[j * stride + d] = pc[from + d]!;
    }
  }
  return f;
}

/** `a` without the boxes of `gone`, merged with `b` (disjoint from `a`, both ordered). */
function mergeEntries(from: Entries, gone: ReadonlySet<Part>, b: Entries): Entries {
  const a = plain(from);
  const parts: Part[] = [];
  const ks: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.parts.length || j < b.parts.length) {
    if (i < a.parts.length && gone.has(a.parts[i]!)) {
      i++;
    } else if (j >= b.parts.length || (i < a.parts.length && compareEntry(a.parts[i]!, a.ks[i]!, b.parts[j]!, b.ks[j]!) < 0)) {
      parts.push(a.parts[i]!);
      ks.push(a.ks[i++]!);
    } else {
      parts.push(b.parts[j]!);
      ks.push(b.ks[j++]!);
    }
  }
  return { parts, ks };
}

/** The boxes of every shard below a split block, once each (a box may cross shards), ordered. */
function collect(node: Node): Entries {
  const all: { part: Part; k: number }[] = [];
  const walk = (n: Node | undefined): void => {
    if (!n) return;
    if (!isLeaf(n)) return (walk(n.left), walk(n.right));
    const e = plain(n.entries);
    e.parts.forEach((part, j) => all.push({ part, k: e.ks[j]! }));
  };
  walk(node);
  all.sort((a, b) => compareEntry(a.part, a.k, b.part, b.k));
  const out = all.filter((e, j) => j === 0 || e.part !== all[j - 1]!.part || e.k !== all[j - 1]!.k);
  return { parts: out.map((e) => e.part), ks: out.map((e) => e.k) };
}

export class ShardedMap {
  private readonly bits: number;
  private readonly stride: number;
  private root: Node | undefined;
  private rendered: { root: Node | undefined; maps: NftMap[]; chains: NftChain[] } | undefined;

  constructor(
    readonly name: string,
    readonly family: Family,
    /** Key type of the shards, e.g. `ipv4_addr . inet_proto . inet_service`. */
    private readonly keyType: string,
    /** What a shard's lookup chain looks up, e.g. `ip daddr . meta l4proto . th dport`. */
    private readonly lookup: string,
    /** Dimensions of a box. */
    private readonly dims: number,
    readonly max: number,
    /** False: made once and never updated (no cache), so the shards need not keep their boxes. */
    private readonly keep = true,
  ) {
    this.bits = FAMILY_BITS[family];
    this.stride = 2 * dims;
  }

  /**
   * Takes out the boxes of `removed` (parts put in before) and puts in those of `added` (new
   * parts, ordered by name).
   */
  update(removed: readonly Part[], added: readonly Part[]): void {
    if (removed.length === 0 && added.length === 0) return;
    const root: Block = { lo: 0n, len: 0, hi: (1n << BigInt(this.bits)) - 1n };
    if (!this.root && removed.length === 0) {
      // Made afresh: all boxes in one table, the shards' contents clipped from it.
      const count = added.reduce((n, p) => n + p.coords.length / this.stride, 0);
      this.root = this.build(root, flatten(this.dims, count, undefined, added, this.keep));
      return;
    }
    if (!this.keep) throw new Error(`shard map ${this.name}: made to be thrown away, cannot be updated`);
    this.root = this.visit(this.root, root, new Set(removed), this.changes(removed), this.changes(added));
  }

  /** The shard maps in address order, then the dispatch map; a lookup chain per shard. */
  render(): { maps: NftMap[]; chains: NftChain[] } {
    if (this.rendered && this.rendered.root === this.root) return this.rendered;
    const leaves: Leaf[] = [];
    const walk = (n: Node | undefined): void => {
      if (!n) return;
      if (isLeaf(n)) leaves.push(n);
      else (walk(n.left), walk(n.right));
    };
    walk(this.root);
    const dispatch: NftMap = { name: this.name, keyType: addrType(this.family), flags: ['interval'], elements: leaves.map((l) => l.dispatch) };
    this.rendered = { root: this.root, maps: [...leaves.map((l) => l.map), dispatch], chains: leaves.map((l) => l.chain) };
    return this.rendered;
  }

  private coord(v: bigint): Coord {
    return this.family === 4 ? Number(v) : v;
  }

  private changes(parts: readonly Part[]): Changes {
    const out = { parts: [] as Part[], ks: [] as number[], los: [] as Coord[], his: [] as Coord[] };
    for (const part of parts) {
      for (let k = 0, at = ADDR * 2; at < part.coords.length; k++, at += this.stride) {
        out.parts.push(part);
        out.ks.push(k);
        out.los.push(part.coords[at]!);
        out.his.push(part.coords[at + 1]!);
      }
    }
    return out;
  }

  /** The changes inside [lo, hi]. */
  private within(c: Changes, lo: Coord, hi: Coord): Changes {
    const out = { parts: [] as Part[], ks: [] as number[], los: [] as Coord[], his: [] as Coord[] };
    for (let j = 0; j < c.parts.length; j++) {
      if (c.los[j]! > hi || c.his[j]! < lo) continue;
      out.parts.push(c.parts[j]!);
      out.ks.push(c.ks[j]!);
      out.los.push(c.los[j]!);
      out.his.push(c.his[j]!);
    }
    return out;
  }

  private spanning(c: Changes, block: Block): number {
    const lo = this.coord(block.lo);
    const hi = this.coord(block.hi);
    let n = 0;
    for (let j = 0; j < c.parts.length; j++) if (c.los[j]! <= lo && c.his[j]! >= hi) n++;
    return n;
  }

  /** `node` (the block's subtree, if any) after the changes, all of which intersect the block. */
  private visit(node: Node | undefined, block: Block, gone: ReadonlySet<Part>, rem: Changes, add: Changes): Node | undefined {
    if (rem.parts.length === 0 && add.parts.length === 0) return node;
    if (!node) return this.build(block, flatten(this.dims, add.parts.length, add));
    const count = node.count - rem.parts.length + add.parts.length;
    if (count === 0) return undefined;
    const spanning = node.spanning - this.spanning(rem, block) + this.spanning(add, block);
    if (isShard(count, spanning, block.len, this.bits, this.max)) {
      const e = mergeEntries(isLeaf(node) ? node.entries : collect(node), gone, add);
      const f = flatten(this.dims, e.parts.length, e);
      const content = shardContent(f.table, { block, indices: f.ks.map((_, i) => i) }, ADDR);
      return this.leaf(block, count, spanning, { parts: f.parts, ks: f.ks }, content, f.verdicts);
    }
    if (isLeaf(node)) {
      const e = mergeEntries(node.entries, gone, add);
      return this.build(block, flatten(this.dims, e.parts.length, e));
    }
    const half = 1n << BigInt(this.bits - block.len - 1);
    const lb: Block = { lo: block.lo, len: block.len + 1, hi: block.lo + half - 1n };
    const rb: Block = { lo: block.lo + half, len: block.len + 1, hi: block.hi };
    const [llo, lhi, rlo, rhi] = [this.coord(lb.lo), this.coord(lb.hi), this.coord(rb.lo), this.coord(rb.hi)];
    const left = this.visit(node.left, lb, gone, this.within(rem, llo, lhi), this.within(add, llo, lhi));
    const right = this.visit(node.right, rb, gone, this.within(rem, rlo, rhi), this.within(add, rlo, rhi));
    return { block, count, spanning, left, right };
  }

  /** The subtree of a block from its boxes (all intersecting it), as shardTree splits it. */
  private build(block: Block, flat: Flat): Node | undefined {
    const convert = (s: ShardNode | undefined): Node | undefined => {
      if (!s) return undefined;
      if (!s.indices) return { block: s.block, count: s.count, spanning: s.spanning, left: convert(s.left), right: convert(s.right) };
      const content = shardContent(flat.table, { block: s.block, indices: s.indices }, ADDR);
      return this.leaf(s.block, s.count, s.spanning, { parts: flat.parts, ks: flat.ks, at: s.indices }, content, flat.verdicts);
    };
    return convert(shardTree(flat.table, ADDR, this.bits, this.max, block));
  }

  /** A shard with its elements: `content` (its boxes clipped to the block, owners in name order) partitioned. */
  private leaf(block: Block, count: number, spanning: number, entries: Entries, content: BoxTable, verdicts: readonly NftChainVerdict[]): Leaf {
    const name = shardName(this.name, block, this.bits);
    return {
      block,
      count,
      spanning,
      entries,
      map: { name, keyType: this.keyType, flags: ['interval'], elements: concatElements(this.family, partitionCells(content), verdicts) },
      chain: { name, rules: [{ match: [], statement: { kind: 'vmap', expr: this.lookup, map: name } }] },
      dispatch: { key: [range({ family: this.family, lo: block.lo, hi: block.hi })], verdict: { kind: 'jump', chain: name } },
    };
  }
}
