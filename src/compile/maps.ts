/**
 * The verdict maps of the packet path and their elements. Policy and Service boxes are
 * partitioned into disjoint cells; each cell becomes an element whose verdict is a `goto` to its
 * owner's accept chain. The concatenated maps (address . protocol . port) are sharded by address
 * block (shard.ts): a dispatch map on the address jumps to one small lookup chain and map per
 * block, which keeps load time and lookups small at tens of thousands of elements.
 */
import { FAMILY_BITS, Family } from '../model/address';
import { PROTOCOL_NUMBER, Protocol } from '../model/ports';
import { NftChain, NftChainVerdict, NftElement, NftMap } from '../nft/ruleset';
import { addrRange, addrType, ipKeyword, ports, protocol, range } from '../nft/syntax';
import type { CompileCache } from './compile';
import { FAMILIES } from './chains';
import { DirectionBoxes } from './items';
import { BoxTable, toBoxes } from './boxes';
import { Cell, Cells, partitionCached, partitionCells } from './partition';
import { shardBoxes, shardContent, shardName } from './shard';

export interface MapInputs {
  readonly egress: DirectionBoxes;
  readonly ingress: DirectionBoxes;
  readonly services: Record<Family, BoxTable>;
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

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp'];

/** One verdict object per owner: maps can hold 100k+ elements and share them. */
function gotos(chains: readonly string[]): NftChainVerdict[] {
  return chains.map((chain) => ({ kind: 'goto', chain }));
}

function anyElements(family: Family, cells: Cell[], verdicts: readonly NftChainVerdict[]): NftElement[] {
  return cells.map((c) => ({ key: [addrRange(family, c.dims[0]!.lo, c.dims[0]!.hi)], verdict: verdicts[c.owner]! }));
}

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
    const addr = addrRange(family, cells.lo(i, 2), cells.hi(i, 2));
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

/** All verdict maps and shard lookup chains; the cache afterwards holds only the maps returned. */
export function policyMaps(input: MapInputs, cache: CompileCache | undefined, shardMax: number): Maps {
  const maps: NftMap[] = [];
  const lookupChains: NftChain[] = [];
  const cells = (name: string, boxes: BoxTable, dim: number, names: readonly string[]): Cell[] => {
    const parts = cache?.partitions;
    let c = parts?.get(name);
    if (parts && !c) parts.set(name, (c = new Map()));
    return partitionCached(toBoxes(boxes), dim, names, c);
  };
  const sharded = (
    name: string,
    fam: Family,
    keyType: string,
    lookup: string,
    boxes: BoxTable,
    verdicts: readonly NftChainVerdict[],
    sources?: readonly object[],
  ): NftMap => {
    const bits = FAMILY_BITS[fam];
    const dispatch: NftElement[] = [];
    for (const s of shardBoxes(boxes, 2, bits, shardMax)) {
      const shard = shardName(name, s.block, bits);
      // Boxes come in owner order: the shard's sources are the owners' objects as they change.
      const memoize = sources !== undefined && cache !== undefined;
      const from: object[] = [];
      if (memoize) for (const i of s.indices) if (from[from.length - 1] !== sources[boxes.owners[i]!]) from.push(sources[boxes.owners[i]!]!);
      const memo = memoize ? cache.shards.get(shard) : undefined;
      let elements = memo && memo.sources.length === from.length && memo.sources.every((o, i) => o === from[i]) ? memo.elements : undefined;
      if (!elements) {
        elements = concatElements(fam, partitionCells(shardContent(boxes, s, 2)), verdicts);
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
    const any = (name: string, boxes: BoxTable, names: readonly string[], verdicts: NftChainVerdict[]): NftMap => ({
      name,
      keyType: t,
      flags: ['interval'],
      elements: anyElements(fam, cells(name, boxes, 0, names), verdicts),
    });
    // The *_any maps are plain interval maps (rbtrees), partitioned in groups along the address
    // (a cache keeps the groups a change does not touch); the concatenated maps are sharded.
    maps.push(
      any(`egress_any_${sfx}`, input.egress.any[fam], input.egressChains, egress),
      sharded(`egress_ports_${sfx}`, fam, portKey, `${ip} daddr . meta l4proto . th dport`, input.egress.ports[fam], egress, input.policies),
      any(`ingress_any_${sfx}`, input.ingress.any[fam], input.ingressChains, ingress),
      sharded(`ingress_ports_${sfx}`, fam, portKey, `${ip} saddr . meta l4proto . th dport`, input.ingress.ports[fam], ingress, input.policies),
      sharded(`services_${sfx}`, fam, `${portKey} . ${t}`, `${ip} daddr . meta l4proto . th dport . ${ip} saddr`, input.services[fam], services),
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
