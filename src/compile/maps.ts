/**
 * The verdict maps of the packet path and their elements. Policy and Service boxes are
 * partitioned into disjoint cells; each cell becomes an element whose verdict is a `goto` to its
 * owner's accept chain. The concatenated maps (address . protocol . port) are sharded by address
 * block (shard.ts, shardmap.ts): a dispatch map on the address jumps to one small lookup chain and
 * map per block, which keeps load time and lookups small at tens of thousands of elements.
 */
import { Family } from '../model/address';
import { NftChain, NftChainVerdict, NftElement, NftMap } from '../nft/ruleset';
import { addrRange, addrType, ipKeyword } from '../nft/syntax';
import type { CompileCache } from './compile';
import { FAMILIES } from './chains';
import { PolicyChanges } from './deployed';
import { PolicyItems, anyBoxes } from './items';
import { BoxTable, toBoxes } from './boxes';
import { Cell, partitionCached } from './partition';
import { Part, ShardedMap } from './shardmap';

export interface MapInputs {
  /** The deployed policies' items in name order. */
  readonly policies: readonly PolicyItems[];
  /** Those with rules without ports (boxes in the *_any maps), in name order. */
  readonly anyPolicies: readonly PolicyItems[];
  /** What came and went since the cache's maps were made; undefined: make them from `policies`. */
  readonly changes: PolicyChanges | undefined;
  readonly services: Record<Family, readonly Part[]>;
}

export interface Maps {
  /** In dependency order: each shard before the dispatch map that jumps to its lookup chain. */
  readonly maps: NftMap[];
  /** One per shard, named like its map. */
  readonly lookupChains: NftChain[];
}

function anyElements(family: Family, cells: Cell[], verdicts: readonly NftChainVerdict[]): NftElement[] {
  return cells.map((c) => ({ key: [addrRange(family, c.dims[0]!.lo, c.dims[0]!.hi)], verdict: verdicts[c.owner]! }));
}

const partsOf = (items: readonly PolicyItems[], dir: 'egress' | 'ingress', fam: Family): Part[] =>
  items.map((i) => i.ports[dir][fam]).filter((p): p is Part => p !== undefined);

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
  /** The map's shards (pushed) and its dispatch map (returned). */
  const sharded = (map: ShardedMap, update: (m: ShardedMap) => void): NftMap => {
    update(map);
    const { maps: shards, chains } = map.render();
    maps.push(...shards.slice(0, -1));
    lookupChains.push(...chains);
    return shards[shards.length - 1]!;
  };
  /** A policy ports map: kept in the cache and updated with the changes, or made afresh. */
  const policyPorts = (name: string, fam: Family, keyType: string, lookup: string, dir: 'egress' | 'ingress'): NftMap => {
    const kept = cache?.shardMaps.get(name);
    const { changes } = input;
    if (kept && kept.max === shardMax && changes) {
      return sharded(kept, (m) => m.update(partsOf(changes.removed, dir, fam), partsOf(changes.added, dir, fam)));
    }
    const fresh = new ShardedMap(name, fam, keyType, lookup, 3, shardMax, cache !== undefined);
    cache?.shardMaps.set(name, fresh);
    return sharded(fresh, (m) => m.update([], partsOf(input.policies, dir, fam)));
  };
  for (const fam of FAMILIES) {
    const sfx = fam === 4 ? 'v4' : 'v6';
    const t = addrType(fam);
    const ip = ipKeyword(fam);
    const portKey = `${t} . inet_proto . inet_service`;
    // Owners are indices into anyPolicies: only the order between them matters.
    const any = (name: string, dir: 'egress' | 'ingress'): NftMap => {
      const pols = input.anyPolicies;
      const names = pols.map((i) => i.verdicts[dir].chain);
      const boxes = anyBoxes(pols.map((i) => i[dir]), fam);
      return { name, keyType: t, flags: ['interval'], elements: anyElements(fam, cells(name, boxes, 0, names), pols.map((i) => i.verdicts[dir])) };
    };
    // The *_any maps are plain interval maps (rbtrees), partitioned in groups along the address
    // (a cache keeps the groups a change does not touch); the concatenated maps are sharded.
    // Services are few: their map is made afresh every time.
    const services = new ShardedMap(`services_${sfx}`, fam, `${portKey} . ${t}`, `${ip} daddr . meta l4proto . th dport . ${ip} saddr`, 4, shardMax, false);
    maps.push(
      any(`egress_any_${sfx}`, 'egress'),
      policyPorts(`egress_ports_${sfx}`, fam, portKey, `${ip} daddr . meta l4proto . th dport`, 'egress'),
      any(`ingress_any_${sfx}`, 'ingress'),
      policyPorts(`ingress_ports_${sfx}`, fam, portKey, `${ip} saddr . meta l4proto . th dport`, 'ingress'),
      sharded(services, (m) => m.update([], input.services[fam])),
    );
  }
  // Shards that no longer exist leave the cache with their map.
  if (cache) {
    const live = new Set(maps.map((m) => m.name));
    for (const k of cache.partitions.keys()) if (!live.has(k)) cache.partitions.delete(k);
  }
  return { maps, lookupChains };
}
