/**
 * The compiler: Firewall + policies + Services + state + mode → the `inet firewall` table, and a
 * report per object (deployed, ignored, rejected, with reasons). Pure: no I/O.
 *
 * Packet path: the forward chain does a fixed number of verdict-map lookups whatever the number of
 * policies. Policy items become elements of interval maps whose verdict is a jump to a small
 * per-policy chain (counter + accept, comment naming the policy), so per-policy accounting stays
 * while the cost of a new connection does not grow with the rules. Concatenated maps (address .
 * protocol . port) are sharded by address block behind a plain address map (shard.ts), which keeps
 * both their load time and their lookups small at tens of thousands of elements.
 */
import { createHash } from 'node:crypto';
import { AddrRange, FAMILY_BITS, Family, IpAddress } from '../model/address';
import { EgressRule, POLICY_NAMESPACE, Peers, Policy, PolicyResult, PolicyRule } from '../model/cwnp';
import { formatProblem } from '../model/fields';
import { FirewallConfig, interfaceNames } from '../model/firewall';
import { ObjectRef, formatRef } from '../model/names';
import { PROTOCOL_NUMBER, PortSpec, protocolFromNumber } from '../model/ports';
import { RangeSet, fromPrefixes, normalize, subtract } from '../model/rangeset';
import { LoadBalancerService, ServiceResult } from '../model/service';
import { NftChain, NftMap, NftMapElement, NftSet, NftTable } from '../nft/ruleset';
import { NAME_MAX, addrType, comment, identifier, ifname, ifnameSet, ipKeyword, logPrefix, ports, protocol, range } from '../nft/syntax';
import { allowedSets, filterServiceIps, forbiddenReason } from './forbidden';
import { Mode, State, resolveMode } from './mode';
import { Box, Cell, PartitionCache, partition, partitionCached } from './partition';
import { SHARD_MAX, shardBoxes, shardContent, shardName } from './shard';

export const TABLE_NAME = 'firewall';
export const FORWARD_PRIORITY = 1;
/** Before the legacy base table's masquerade at priority 0, so egressRules SNAT wins. */
export const POSTROUTING_PRIORITY = -1;

export const COUNTERS = [
  'internal_in',
  'internal_out',
  'external_in',
  'external_out',
  'drop_total',
  'drop_ratelimit',
  'drop_invalid',
  'drop_pingflood',
] as const;

export type ObjectKind = 'ClusterwideNetworkPolicy' | 'Service';
export type Outcome = 'deployed' | 'ignored' | 'rejected';

export interface ObjectReport {
  readonly kind: ObjectKind;
  readonly ref: ObjectRef;
  readonly outcome: Outcome;
  /** Why it is ignored or rejected. */
  readonly reason?: string;
  /** Ignored by forbidden mode (a `ForbiddenCIDR` event in the daemon). */
  readonly forbidden?: boolean;
  readonly warnings: readonly string[];
  /** Valid parts that are not enforced (they open nothing). */
  readonly unenforced: readonly string[];
}

export interface CompileInput {
  readonly firewall: FirewallConfig | undefined;
  readonly policies: readonly PolicyResult[];
  readonly services: readonly ServiceResult[];
  readonly state: State;
  readonly mode?: Mode;
  /** Results to reuse across compiles; the output does not depend on it. */
  readonly cache?: CompileCache;
  /** Boxes per address shard before it is halved (shard.ts); tests make it small. */
  readonly shardMax?: number;
}

/**
 * What a daemon keeps between compiles so a change costs about what it touches: per parsed policy
 * its boxes and chain names; per address shard the policy objects it was built from with the
 * elements they gave (a shard built from the very same objects in the same order has the same
 * elements, so they are reused without partitioning or formatting; a changed shard, at most a few
 * thousand boxes, is partitioned afresh); and partition results of the unsharded address maps.
 */
export class CompileCache {
  /** Per parsed policy object (unchanged while its resourceVersion is). */
  readonly policies = new WeakMap<Policy, PolicyItems>();
  readonly partitions = new Map<string, PartitionCache>();
  readonly shards = new Map<string, { readonly sources: readonly object[]; readonly elements: readonly NftMapElement[] }>();
}

export interface Compiled {
  readonly state: State;
  readonly mode: Mode | undefined;
  readonly table: NftTable;
  readonly reports: readonly ObjectReport[];
}

const FAMILIES: readonly Family[] = [4, 6];

function fullRange(family: Family): AddrRange {
  return { family, lo: 0n, hi: (1n << BigInt(FAMILY_BITS[family])) - 1n };
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

function chainName(prefix: string, key: string, readable: string): string {
  return `${prefix}-${shortHash(key)}-${readable}`.slice(0, NAME_MAX);
}

/** Addresses a rule's peers cover, per family (except removed, overlaps merged). */
export function peerRanges(peers: Peers): Record<Family, RangeSet> {
  if (peers.kind === 'any') return { 4: [fullRange(4)], 6: [fullRange(6)] };
  const out: Record<Family, AddrRange[]> = { 4: [], 6: [] };
  for (const b of peers.blocks) {
    const allowed = subtract(fromPrefixes([b.cidr], b.cidr.family), fromPrefixes(b.except, b.cidr.family));
    out[b.cidr.family].push(...allowed);
  }
  return { 4: normalize(out[4]), 6: normalize(out[6]) };
}

function iv(lo: bigint | number, hi: bigint | number): { lo: bigint; hi: bigint } {
  return { lo: BigInt(lo), hi: BigInt(hi) };
}

function portDims(p: PortSpec, r: AddrRange): Box['dims'] {
  const proto = PROTOCOL_NUMBER[p.protocol];
  return [iv(proto, proto), iv(p.range.lo, p.range.hi), iv(r.lo, r.hi)];
}

/** Boxes of one direction's maps, per family. */
interface DirectionBoxes {
  any: Record<Family, Box[]>;
  ports: Record<Family, Box[]>;
}

function emptyDirection(): DirectionBoxes {
  return { any: { 4: [], 6: [] }, ports: { 4: [], 6: [] } };
}

/** A direction's box dimensions of one policy, per map and family (owners are set per compile). */
interface DirectionDims {
  any: Record<Family, Box['dims'][]>;
  ports: Record<Family, Box['dims'][]>;
}

function ruleDims(rules: readonly PolicyRule[]): DirectionDims {
  const out: DirectionDims = { any: { 4: [], 6: [] }, ports: { 4: [], 6: [] } };
  for (const rule of rules) {
    const ranges = peerRanges(rule.peers);
    for (const fam of FAMILIES) {
      for (const r of ranges[fam]) {
        if (rule.ports.kind === 'any') out.any[fam].push([iv(r.lo, r.hi)]);
        else for (const p of rule.ports.ports) out.ports[fam].push(portDims(p, r));
      }
    }
  }
  return out;
}

function countDims(d: DirectionDims): number {
  return FAMILIES.reduce((n, f) => n + d.any[f].length + d.ports[f].length, 0);
}

/** What a policy contributes, independent of the other policies: worth keeping per parsed policy. */
export interface PolicyItems {
  readonly egressChain: string;
  readonly ingressChain: string;
  readonly egress: DirectionDims;
  readonly ingress: DirectionDims;
}

function policyItems(p: Policy): PolicyItems {
  const key = formatRef(p.ref);
  return {
    egressChain: chainName('cwnp-e', key, p.ref.name),
    ingressChain: chainName('cwnp-i', key, p.ref.name),
    egress: ruleDims(p.egress.filter((r: EgressRule) => !r.toFqdns)),
    ingress: ruleDims(p.ingress),
  };
}

function addDims(target: DirectionBoxes, owner: number, d: DirectionDims): void {
  for (const fam of FAMILIES) {
    for (const dims of d.any[fam]) target.any[fam].push({ owner, dims });
    for (const dims of d.ports[fam]) target.ports[fam].push({ owner, dims });
  }
}

function cellRange(family: Family, c: Cell, d: number): AddrRange {
  return { family, lo: c.dims[d]!.lo, hi: c.dims[d]!.hi };
}

function anyElements(family: Family, cells: Cell[], chains: string[]): NftMapElement[] {
  return cells.map((c) => ({ key: range(cellRange(family, c, 0)), verdict: `goto ${chains[c.owner]!}` }));
}

function portElements(family: Family, cells: Cell[], chains: string[]): NftMapElement[] {
  // dims: [proto, port, addr]; key order: addr . proto . port
  return cells.map((c) => ({
    key: `${range(cellRange(family, c, 2))} . ${protocol(protocolFromNumber(Number(c.dims[0]!.lo)))} . ${ports({
      lo: Number(c.dims[1]!.lo),
      hi: Number(c.dims[1]!.hi),
    })}`,
    verdict: `goto ${chains[c.owner]!}`,
  }));
}

/** Protocol cells may span tcp..udp only if both are present with nothing between; split them. */
function splitProtocols(cells: Cell[]): Cell[] {
  const out: Cell[] = [];
  for (const c of cells) {
    const p = c.dims[0]!;
    for (const n of [6n, 17n]) {
      if (p.lo <= n && n <= p.hi) out.push({ owner: c.owner, dims: [iv(n, n), ...c.dims.slice(1)] });
    }
  }
  return out;
}

function serviceElements(family: Family, cells: Cell[], chains: string[]): NftMapElement[] {
  // dims: [proto, port, daddr, saddr]; key order: daddr . proto . port . saddr
  return cells.map((c) => ({
    key: `${range(cellRange(family, c, 2))} . ${protocol(protocolFromNumber(Number(c.dims[0]!.lo)))} . ${ports({
      lo: Number(c.dims[1]!.lo),
      hi: Number(c.dims[1]!.hi),
    })} . ${range(cellRange(family, c, 3))}`,
    verdict: `goto ${chains[c.owner]!}`,
  }));
}

function policyChainRules(text: string, logAccepted: boolean): string[] {
  const rules: string[] = [];
  if (logAccepted) rules.push(`limit rate 10/second burst 5 packets ${logPrefix('nftables-firewall-accepted: ')}`);
  rules.push(`counter accept ${comment(text)}`);
  return rules;
}

function baseTable(sets: NftSet[], maps: NftMap[], chains: NftChain[]): NftTable {
  return { family: 'inet', name: TABLE_NAME, sets, counters: [...COUNTERS], maps, chains };
}

function dropTail(): string[] {
  return [
    `counter name drop_total ${comment('count dropped packets')}`,
    `limit rate 10/second burst 5 packets ${logPrefix('nftables-firewall-dropped: ')}`,
  ];
}

/**
 * The nat chain is always present, even empty: when the last nat hook of a namespace goes away the
 * kernel drops the NAT bindings of existing connections, which would cut established (masqueraded)
 * flows on a switch to disconnected. Measured in the lab: 4 of 14 echoes without it, 14 of 14 with.
 */
function postroutingChain(rules: string[]): NftChain {
  return { name: 'postrouting', base: { type: 'nat', hook: 'postrouting', priority: POSTROUTING_PRIORITY, policy: 'accept' }, rules };
}

/** Disconnected: forward nothing new; keep established flows; the firewall's own traffic is not touched. */
export function disconnectedTable(): NftTable {
  const forward: NftChain = {
    name: 'forward',
    base: { type: 'filter', hook: 'forward', priority: FORWARD_PRIORITY, policy: 'drop' },
    rules: [`ct state established,related counter accept ${comment('accept established connections')}`, ...dropTail()],
  };
  return baseTable([], [], [forward, postroutingChain([])]);
}

function policyReports(
  inputs: readonly PolicyResult[],
  mode: Mode,
  fw: FirewallConfig,
): { deployed: Policy[]; reports: ObjectReport[] } {
  const reports: ObjectReport[] = [];
  const deployed: Policy[] = [];
  const seen = new Set<string>();
  const allowed = mode === 'forbidden' ? allowedSets(fw) : undefined;
  for (const res of inputs) {
    const base = { kind: 'ClusterwideNetworkPolicy' as const };
    if (!res.ok) {
      reports.push({ ...base, ref: res.ref, outcome: 'rejected', reason: res.problems.map(formatProblem).join('; '), warnings: [], unenforced: [] });
      continue;
    }
    const p = res.policy;
    const key = formatRef(p.ref);
    const warnings = p.warnings.map(formatProblem);
    const unenforced = p.unenforced.map(formatProblem);
    const common = { ...base, ref: p.ref, warnings, unenforced };
    if (seen.has(key)) {
      reports.push({ ...common, outcome: 'rejected', reason: 'is defined more than once in the input' });
      continue;
    }
    seen.add(key);
    if (p.ref.namespace !== POLICY_NAMESPACE) {
      reports.push({ ...common, outcome: 'ignored', reason: `only policies in namespace ${POLICY_NAMESPACE} take effect` });
      continue;
    }
    const why = allowed ? forbiddenReason(p, allowed) : undefined;
    if (why) {
      reports.push({ ...common, outcome: 'ignored', forbidden: true, reason: why });
      continue;
    }
    reports.push({ ...common, outcome: 'deployed' });
    deployed.push(p);
  }
  deployed.sort((a, b) => (a.ref.name < b.ref.name ? -1 : a.ref.name > b.ref.name ? 1 : 0));
  return { deployed, reports };
}

function serviceReports(
  inputs: readonly ServiceResult[],
  mode: Mode,
  fw: FirewallConfig,
): { services: { svc: LoadBalancerService; ips: IpAddress[] }[]; reports: ObjectReport[] } {
  const reports: ObjectReport[] = [];
  const services: { svc: LoadBalancerService; ips: IpAddress[] }[] = [];
  const allowed = mode === 'forbidden' ? allowedSets(fw) : undefined;
  const seen = new Set<string>();
  for (const res of inputs) {
    const base = { kind: 'Service' as const };
    if (!res.ok) {
      reports.push({ ...base, ref: res.ref, outcome: 'rejected', reason: res.problems.map(formatProblem).join('; '), warnings: [], unenforced: [] });
      continue;
    }
    const svc = res.service;
    if (!svc) continue; // not a LoadBalancer: nothing to do, nothing to report
    const key = formatRef(svc.ref);
    const warnings = svc.warnings.map(formatProblem);
    if (seen.has(key)) {
      reports.push({ ...base, ref: svc.ref, outcome: 'rejected', reason: 'is defined more than once in the input', warnings, unenforced: [] });
      continue;
    }
    seen.add(key);
    let ips = [...svc.ips];
    if (allowed) {
      const split = filterServiceIps(svc, allowed);
      ips = split.inside;
      if (split.outside.length > 0 && ips.length === 0) {
        reports.push({
          ...base,
          ref: svc.ref,
          outcome: 'ignored',
          forbidden: true,
          reason: `load balancer IP ${split.outside.join(', ')} is outside allowedNetworks.ingress; no rule`,
          warnings,
          unenforced: [],
        });
        continue;
      }
      if (split.outside.length > 0) {
        warnings.push(`load balancer IP ${split.outside.join(', ')} is outside allowedNetworks.ingress; no rule for it`);
      }
    }
    reports.push({ ...base, ref: svc.ref, outcome: 'deployed', warnings, unenforced: [] });
    if (ips.length > 0 && svc.ports.length > 0) services.push({ svc, ips });
  }
  services.sort((a, b) => (formatRef(a.svc.ref) < formatRef(b.svc.ref) ? -1 : 1));
  return { services, reports };
}

function forwardRules(fw: FirewallConfig): string[] {
  const priv = ifnameSet(interfaceNames(fw.nodeNetwork));
  const rules: string[] = [];
  // Traffic accounting: "in" = towards the cluster, "out" = from it.
  for (const [dir, ifkw, addrkw] of [
    ['in', 'oifname', 'saddr'],
    ['out', 'iifname', 'daddr'],
  ] as const) {
    for (const fam of FAMILIES) {
      const set = fam === 4 ? '@internal_prefixes' : '@internal_prefixes_v6';
      const ip = ipKeyword(fam);
      rules.push(`${ifkw} ${priv} ${ip} ${addrkw} != ${set} counter name external_${dir}`);
      rules.push(`${ifkw} ${priv} ${ip} ${addrkw} ${set} counter name internal_${dir}`);
    }
  }
  for (const net of fw.networks) {
    if (net.role === 'underlay' && net.vrf !== undefined) {
      rules.push(`oifname ${ifnameSet(interfaceNames(net))} counter drop ${comment(`never forward to the underlay ${net.id}`)}`);
    }
  }
  for (const rl of fw.rateLimits) {
    rules.push(
      `iifname ${ifnameSet(interfaceNames(rl.network))} limit rate over ${rl.mibPerSecond} mbytes/second counter name drop_ratelimit drop ${comment(
        `rate limit ${rl.network.id}`,
      )}`,
    );
  }
  rules.push(
    `ct state established,related counter accept ${comment('accept established connections')}`,
    `ct state invalid counter name drop_invalid drop ${comment('drop packets with invalid ct state')}`,
    `icmp type echo-request limit rate over 10/second burst 4 packets counter name drop_pingflood drop ${comment('drop ping floods')}`,
    `icmpv6 type echo-request limit rate over 10/second burst 4 packets counter name drop_pingflood drop ${comment('drop ping floods')}`,
    `icmp type { destination-unreachable, time-exceeded, parameter-problem } counter accept ${comment('accept icmp errors')}`,
    `icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } counter accept ${comment('accept icmpv6 errors')}`,
  );
  for (const fam of FAMILIES) {
    const ip = ipKeyword(fam);
    const sfx = fam === 4 ? 'v4' : 'v6';
    const cluster = fam === 4 ? '@cluster_prefixes' : '@cluster_prefixes_v6';
    rules.push(
      `iifname ${priv} ${ip} saddr ${cluster} ${ip} daddr vmap @egress_any_${sfx}`,
      `iifname ${priv} ${ip} saddr ${cluster} ${ip} daddr vmap @egress_ports_${sfx}`,
      `oifname ${priv} ${ip} saddr vmap @ingress_any_${sfx}`,
      `oifname ${priv} ${ip} saddr vmap @ingress_ports_${sfx}`,
      `oifname ${priv} ${ip} daddr vmap @services_${sfx}`,
    );
  }
  rules.push(...dropTail());
  return rules;
}

function postroutingRules(fw: FirewallConfig): string[] {
  const rules: string[] = [];
  const snatNetworks = new Set<string>();
  for (const e of fw.egressRules) {
    const out = ifname(`vlan${e.network.vrf!}`);
    for (const fam of FAMILIES) {
      const ips = e.ips.filter((a) => a.family === fam);
      if (ips.length === 0) continue;
      const ip = ipKeyword(fam);
      const cluster = fam === 4 ? '@cluster_prefixes' : '@cluster_prefixes_v6';
      const target =
        ips.length === 1
          ? range({ family: fam, lo: ips[0]!.value, hi: ips[0]!.value })
          : `jhash ${ip} saddr mod ${ips.length} map { ${ips
              .map((a, i) => `${i} : ${range({ family: fam, lo: a.value, hi: a.value })}`)
              .join(', ')} }`;
      rules.push(`oifname ${out} ${ip} saddr ${cluster} counter snat ${ip} to ${target} ${comment(`snat for ${e.network.id}`)}`);
      snatNetworks.add(`${e.network.id}/${fam}`);
    }
  }
  for (const net of fw.networks) {
    if (net.role !== 'external' || !net.nat || net.vrf === undefined) continue;
    for (const fam of FAMILIES) {
      if (snatNetworks.has(`${net.id}/${fam}`)) continue;
      const ip = ipKeyword(fam);
      const cluster = fam === 4 ? '@cluster_prefixes' : '@cluster_prefixes_v6';
      rules.push(`oifname ${ifname(`vlan${net.vrf}`)} ${ip} saddr ${cluster} counter masquerade random ${comment(`masquerade for ${net.id}`)}`);
    }
  }
  return rules;
}

function intervalSet(name: string, fam: Family, ranges: RangeSet): NftSet {
  return { name, type: addrType(fam), flags: ['interval'], elements: ranges.map(range) };
}

export function compile(input: CompileInput): Compiled {
  if (input.state === 'disconnected') {
    return { state: 'disconnected', mode: input.mode, table: disconnectedTable(), reports: [] };
  }
  const fw = input.firewall;
  if (!fw) throw new Error('compile: the connected state needs a Firewall');
  const mode = resolveMode(input.mode, fw);
  const logAccepted = fw.logAcceptedConnections;

  const pol = policyReports(input.policies, mode, fw);
  const egress = emptyDirection();
  const ingress = emptyDirection();
  const egressChains: string[] = [];
  const ingressChains: string[] = [];
  const chains: NftChain[] = [];
  pol.deployed.forEach((p, owner) => {
    let items = input.cache?.policies.get(p);
    if (!items) {
      items = policyItems(p);
      input.cache?.policies.set(p, items);
    }
    egressChains[owner] = items.egressChain;
    ingressChains[owner] = items.ingressChain;
    addDims(egress, owner, items.egress);
    addDims(ingress, owner, items.ingress);
    const e = countDims(items.egress);
    const i = countDims(items.ingress);
    if (e > 0) chains.push({ name: egressChains[owner]!, rules: policyChainRules(`accept traffic for np ${p.ref.name}`, logAccepted) });
    if (i > 0) {
      chains.push({ name: ingressChains[owner]!, rules: policyChainRules(`accept traffic for k8s network policy ${p.ref.name}`, logAccepted) });
    }
  });

  const svc = serviceReports(input.services, mode, fw);
  const svcBoxes: Record<Family, Box[]> = { 4: [], 6: [] };
  const svcChains: string[] = [];
  svc.services.forEach(({ svc: s, ips }, owner) => {
    const key = formatRef(s.ref);
    svcChains[owner] = chainName('svc', key, `${s.ref.namespace}/${s.ref.name}`);
    let n = 0;
    for (const ip of ips) {
      const sources: AddrRange[] =
        s.sourceRanges.length === 0 ? [fullRange(ip.family)] : [...fromPrefixes(s.sourceRanges, ip.family)];
      for (const p of s.ports) {
        const proto = PROTOCOL_NUMBER[p.protocol];
        for (const src of sources) {
          svcBoxes[ip.family].push({
            owner,
            dims: [iv(proto, proto), iv(p.range.lo, p.range.hi), iv(ip.value, ip.value), iv(src.lo, src.hi)],
          });
          n++;
        }
      }
    }
    if (n > 0) chains.push({ name: svcChains[owner]!, rules: policyChainRules(`accept traffic for k8s service ${key}`, logAccepted) });
  });

  const cached = (name: string, boxes: Box[], dim: number, names: string[]): Cell[] => {
    const parts = input.cache?.partitions;
    let c = parts?.get(name);
    if (parts && !c) parts.set(name, (c = new Map()));
    return partitionCached(boxes, dim, names, c);
  };
  const maps: NftMap[] = [];
  const lookupChains: NftChain[] = [];
  const sharded = (
    name: string,
    fam: Family,
    keyType: string,
    lookup: string,
    boxes: Box[],
    toElements: (cells: Cell[]) => NftMapElement[],
    sources?: readonly object[],
  ): NftMap => {
    const bits = FAMILY_BITS[fam];
    const dispatch: NftMapElement[] = [];
    for (const s of shardBoxes(boxes, 2, bits, input.shardMax ?? SHARD_MAX)) {
      const shard = shardName(name, s.block, bits);
      // Boxes come in owner order: the shard's sources are the owners' objects as they change.
      const memoize = sources !== undefined && input.cache !== undefined;
      const from: object[] = [];
      if (memoize) for (const i of s.indices) if (from[from.length - 1] !== sources[boxes[i]!.owner]) from.push(sources[boxes[i]!.owner]!);
      const memo = memoize ? input.cache!.shards.get(shard) : undefined;
      let elements = memo && memo.sources.length === from.length && memo.sources.every((o, i) => o === from[i]) ? memo.elements : undefined;
      if (!elements) {
        elements = toElements(splitProtocols(partition(shardContent(boxes, s, 2))));
        if (memoize) input.cache!.shards.set(shard, { sources: from, elements });
      }
      maps.push({ name: shard, keyType, flags: ['interval'], elements });
      lookupChains.push({ name: shard, rules: [`${lookup} vmap @${identifier(shard)}`] });
      dispatch.push({ key: range({ family: fam, lo: s.block.lo, hi: s.block.hi }), verdict: `jump ${shard}` });
    }
    return { name, keyType: addrType(fam), flags: ['interval'], elements: dispatch };
  };
  for (const fam of FAMILIES) {
    const sfx = fam === 4 ? 'v4' : 'v6';
    const t = addrType(fam);
    const ip = ipKeyword(fam);
    const portKey = `${t} . inet_proto . inet_service`;
    // The *_any maps are plain interval maps (rbtrees), partitioned in groups along the address
    // (a cache keeps the groups a change does not touch); the concatenated maps are sharded by
    // address block (see shard.ts) behind a dispatch map.
    maps.push(
      { name: `egress_any_${sfx}`, keyType: t, flags: ['interval'], elements: anyElements(fam, cached(`egress_any_${sfx}`, egress.any[fam], 0, egressChains), egressChains) },
      sharded(`egress_ports_${sfx}`, fam, portKey, `${ip} daddr . meta l4proto . th dport`, egress.ports[fam], (c) => portElements(fam, c, egressChains), pol.deployed),
      { name: `ingress_any_${sfx}`, keyType: t, flags: ['interval'], elements: anyElements(fam, cached(`ingress_any_${sfx}`, ingress.any[fam], 0, ingressChains), ingressChains) },
      sharded(`ingress_ports_${sfx}`, fam, portKey, `${ip} saddr . meta l4proto . th dport`, ingress.ports[fam], (c) => portElements(fam, c, ingressChains), pol.deployed),
      sharded(`services_${sfx}`, fam, `${portKey} . ${t}`, `${ip} daddr . meta l4proto . th dport . ${ip} saddr`, svcBoxes[fam], (c) => serviceElements(fam, c, svcChains)),
    );
  }
  chains.push(...lookupChains);
  // Shards that no longer exist leave the cache with their map.
  if (input.cache) {
    const live = new Set(maps.map((m) => m.name));
    for (const k of input.cache.partitions.keys()) if (!live.has(k)) input.cache.partitions.delete(k);
    for (const k of input.cache.shards.keys()) if (!live.has(k)) input.cache.shards.delete(k);
  }

  const sets: NftSet[] = [
    intervalSet('cluster_prefixes', 4, fromPrefixes(fw.nodeNetwork.prefixes, 4)),
    intervalSet('cluster_prefixes_v6', 6, fromPrefixes(fw.nodeNetwork.prefixes, 6)),
    intervalSet('internal_prefixes', 4, fromPrefixes(fw.internalPrefixes, 4)),
    intervalSet('internal_prefixes_v6', 6, fromPrefixes(fw.internalPrefixes, 6)),
  ];
  chains.push({
    name: 'forward',
    base: { type: 'filter', hook: 'forward', priority: FORWARD_PRIORITY, policy: 'drop' },
    rules: forwardRules(fw),
  });
  chains.push(postroutingChain(postroutingRules(fw)));
  return { state: 'connected', mode, table: baseTable(sets, maps, chains), reports: [...pol.reports, ...svc.reports] };
}
