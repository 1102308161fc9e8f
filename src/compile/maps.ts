/**
 * The verdict maps of the packet path and their elements. Policy and Service boxes are
 * partitioned into disjoint cells; each cell becomes an element whose verdict is a `goto` to its
 * owner's accept chain. The concatenated maps (address . protocol . port) are sharded by address
 * block (shard.ts): a dispatch map on the address jumps to one small lookup chain and map per
 * block, which keeps load time and lookups small at tens of thousands of elements.
 */
import { AddrRange, FAMILY_BITS, Family } from '../model/address';
import { protocolFromNumber } from '../model/ports';
import { NftChain, NftChainVerdict, NftElement, NftMap } from '../nft/ruleset';
import { addrType, ipKeyword, ports, protocol, range } from '../nft/syntax';
import type { CompileCache } from './compile';
import { FAMILIES } from './chains';
import { DirectionBoxes } from './items';
import { Box, Cell, partition, partitionCached } from './partition';
import { shardBoxes, shardContent, shardName } from './shard';

export interface MapInputs {
  readonly egress: DirectionBoxes;
  readonly ingress: DirectionBoxes;
  readonly services: Record<Family, Box[]>;
  /** Accept chain per owner index. */
  readonly egressChains: readonly string[];
  readonly ingressChains: readonly string[];
  readonly serviceChains: readonly string[];
  /** The deployed policies by owner index: a shard's elements are reused while these are the same objects. */
  readonly policies: readonly object[];
}

export interface Maps {
  /** In dependency order: each shard before the dispatch map that jumps to its lookup chain. */
  readonly maps: NftMap[];
  /** One per shard, named like its map. */
  readonly lookupChains: NftChain[];
}

/** One verdict object per owner: maps can hold 100k+ elements and share them. */
function gotos(chains: readonly string[]): NftChainVerdict[] {
  return chains.map((chain) => ({ kind: 'goto', chain }));
}

function cellRange(family: Family, c: Cell, d: number): AddrRange {
  return { family, lo: c.dims[d]!.lo, hi: c.dims[d]!.hi };
}

function protoPort(c: Cell): string[] {
  return [protocol(protocolFromNumber(Number(c.dims[0]!.lo))), ports({ lo: Number(c.dims[1]!.lo), hi: Number(c.dims[1]!.hi) })];
}

function anyElements(family: Family, cells: Cell[], verdicts: readonly NftChainVerdict[]): NftElement[] {
  return cells.map((c) => ({ key: [range(cellRange(family, c, 0))], verdict: verdicts[c.owner]! }));
}

/** dims: [proto, port, addr]; key order: addr . proto . port */
function portElements(family: Family, cells: Cell[], verdicts: readonly NftChainVerdict[]): NftElement[] {
  return cells.map((c) => ({ key: [range(cellRange(family, c, 2)), ...protoPort(c)], verdict: verdicts[c.owner]! }));
}

/** dims: [proto, port, daddr, saddr]; key order: daddr . proto . port . saddr */
function serviceElements(family: Family, cells: Cell[], verdicts: readonly NftChainVerdict[]): NftElement[] {
  return cells.map((c) => ({ key: [range(cellRange(family, c, 2)), ...protoPort(c), range(cellRange(family, c, 3))], verdict: verdicts[c.owner]! }));
}

/** Protocol cells may span tcp..udp only if both are present with nothing between; split them. */
function splitProtocols(cells: Cell[]): Cell[] {
  const out: Cell[] = [];
  for (const c of cells) {
    const p = c.dims[0]!;
    for (const n of [6n, 17n]) {
      if (p.lo <= n && n <= p.hi) out.push({ owner: c.owner, dims: [{ lo: n, hi: n }, ...c.dims.slice(1)] });
    }
  }
  return out;
}

/** All verdict maps and shard lookup chains; the cache afterwards holds only the maps returned. */
export function policyMaps(input: MapInputs, cache: CompileCache | undefined, shardMax: number): Maps {
  const maps: NftMap[] = [];
  const lookupChains: NftChain[] = [];
  const cells = (name: string, boxes: Box[], dim: number, names: readonly string[]): Cell[] => {
    const parts = cache?.partitions;
    let c = parts?.get(name);
    if (parts && !c) parts.set(name, (c = new Map()));
    return partitionCached(boxes, dim, names, c);
  };
  const sharded = (
    name: string,
    fam: Family,
    keyType: string,
    lookup: string,
    boxes: Box[],
    toElements: (cells: Cell[]) => NftElement[],
    sources?: readonly object[],
  ): NftMap => {
    const bits = FAMILY_BITS[fam];
    const dispatch: NftElement[] = [];
    for (const s of shardBoxes(boxes, 2, bits, shardMax)) {
      const shard = shardName(name, s.block, bits);
      // Boxes come in owner order: the shard's sources are the owners' objects as they change.
      const memoize = sources !== undefined && cache !== undefined;
      const from: object[] = [];
      if (memoize) for (const i of s.indices) if (from[from.length - 1] !== sources[boxes[i]!.owner]) from.push(sources[boxes[i]!.owner]!);
      const memo = memoize ? cache.shards.get(shard) : undefined;
      let elements = memo && memo.sources.length === from.length && memo.sources.every((o, i) => o === from[i]) ? memo.elements : undefined;
      if (!elements) {
        elements = toElements(splitProtocols(partition(shardContent(boxes, s, 2))));
        if (memoize) cache.shards.set(shard, { sources: from, elements });
      }
      maps.push({ name: shard, keyType, flags: ['interval'], elements });
      lookupChains.push({ name: shard, rules: [{ match: [], statement: { kind: 'vmap', expr: lookup, map: shard } }] });
      dispatch.push({ key: [range({ family: fam, lo: s.block.lo, hi: s.block.hi })], verdict: { kind: 'jump', chain: shard } });
    }
    return { name, keyType: addrType(fam), flags: ['interval'], elements: dispatch };
  };
  const egress = gotos(input.egressChains);
  const ingress = gotos(input.ingressChains);
  const services = gotos(input.serviceChains);
  for (const fam of FAMILIES) {
    const sfx = fam === 4 ? 'v4' : 'v6';
    const t = addrType(fam);
    const ip = ipKeyword(fam);
    const portKey = `${t} . inet_proto . inet_service`;
    const any = (name: string, boxes: Box[], names: readonly string[], verdicts: NftChainVerdict[]): NftMap => ({
      name,
      keyType: t,
      flags: ['interval'],
      elements: anyElements(fam, cells(name, boxes, 0, names), verdicts),
    });
    // The *_any maps are plain interval maps (rbtrees), partitioned in groups along the address
    // (a cache keeps the groups a change does not touch); the concatenated maps are sharded.
    maps.push(
      any(`egress_any_${sfx}`, input.egress.any[fam], input.egressChains, egress),
      sharded(`egress_ports_${sfx}`, fam, portKey, `${ip} daddr . meta l4proto . th dport`, input.egress.ports[fam], (c) => portElements(fam, c, egress), input.policies),
      any(`ingress_any_${sfx}`, input.ingress.any[fam], input.ingressChains, ingress),
      sharded(`ingress_ports_${sfx}`, fam, portKey, `${ip} saddr . meta l4proto . th dport`, input.ingress.ports[fam], (c) => portElements(fam, c, ingress), input.policies),
      sharded(`services_${sfx}`, fam, `${portKey} . ${t}`, `${ip} daddr . meta l4proto . th dport . ${ip} saddr`, input.services[fam], (c) => serviceElements(fam, c, services)),
    );
  }
  // Shards that no longer exist leave the cache with their map.
  if (cache) {
    const live = new Set(maps.map((m) => m.name));
    for (const k of cache.partitions.keys()) if (!live.has(k)) cache.partitions.delete(k);
    for (const k of cache.shards.keys()) if (!live.has(k)) cache.shards.delete(k);
  }
  return { maps, lookupChains };
}
