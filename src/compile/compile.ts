/**
 * The compiler: Firewall + policies + Services + state + mode → the `inet firewall` table, a
 * report per object (deployed, ignored, rejected, with reasons) and which accept chain counts
 * traffic for which object. Pure: no I/O.
 *
 * Packet path: the forward chain does a fixed number of verdict-map lookups whatever the number of
 * policies (chains.ts). Policy items become elements of interval maps whose verdict is a jump to a
 * small per-policy chain (counter + accept, comment naming the policy), so per-policy accounting
 * stays while the cost of a new connection does not grow with the rules (maps.ts).
 */
import { Family, Prefix } from '../model/address';
import { PolicyResult } from '../model/cwnp';
import { FirewallConfig } from '../model/firewall';
import { ObjectRef, formatRef } from '../model/names';
import { fromPrefixes } from '../model/rangeset';
import { ServiceResult } from '../model/service';
import { NftChain, NftSet, NftTable } from '../nft/ruleset';
import { addrType, range } from '../nft/syntax';
import { acceptChain, baseTable, disconnectedTable, forwardBaseChain, metricsInputChain, postroutingBaseChain } from './chains';
import { allowedSets } from './forbidden';
import { DnsProxyAddress, FqdnTarget, fqdnChain, fqdnSets, interceptChain, policyTargets } from './fqdn';
import { PolicyItems, addServiceBoxes, serviceChain } from './items';
import { policyMaps } from './maps';
import { Mode, State, resolveMode } from './mode';
import { emptyTable } from './boxes';
import { LazyMap } from './accounting';
import { DeployedCache, acceptChain as policyAccept } from './deployed';
import { PartitionCache } from './partition';
import { ObjectKind, ObjectReport, serviceReports } from './reports';
import { SHARD_MAX } from './shard';
import { Part, ShardedMap } from './shardmap';

export { COUNTERS, FORWARD_PRIORITY, POSTROUTING_PRIORITY, TABLE_NAME, disconnectedTable } from './chains';
export { peerRanges } from './items';
export type { PolicyItems } from './items';
export type { DnsProxyAddress, FqdnTarget } from './fqdn';
export type { ObjectKind, ObjectReport, Outcome } from './reports';

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
  /**
   * Where the DNS proxy listens, when it does: the node network's DNS is intercepted only then
   * (and only while some deployed policy has toFQDNs), so DNS never points at a closed port.
   */
  readonly dnsProxy?: DnsProxyAddress;
  /** The published metrics port: accepted from the node network only (chains.metricsInputChain). */
  readonly metricsPort?: number;
}

/**
 * What a daemon keeps between compiles so a change costs about what it touches: per parsed policy
 * its boxes, chain names and accept chains; per policy result its report; the policies' sharded
 * maps, updated with only the policies that came and went (shardmap.ts: a changed shard, at most
 * a few thousand boxes, is partitioned afresh, the others keep their elements); and partition
 * results of the unsharded address maps.
 */
export class CompileCache {
  readonly deployed = new DeployedCache();
  readonly partitions = new Map<string, PartitionCache>();
  readonly shardMaps = new Map<string, ShardedMap>();
  /** False from taking the deployed policies' changes until the maps have them. */
  consistent = true;
}

/**
 * Whose traffic an accept chain counts. Metrics label by this, never by the rule's comment: nft
 * keeps only 128 bytes of a comment, and names may be longer.
 */
export interface PolicyAccount {
  readonly kind: ObjectKind;
  readonly ref: ObjectRef;
  readonly direction: 'egress' | 'ingress' | 'service';
  /** The metrics label: the policy's name, or `namespace/name` of a Service; never cut. */
  readonly policy: string;
}

export interface Compiled {
  readonly state: State;
  readonly mode: Mode | undefined;
  readonly table: NftTable;
  readonly reports: readonly ObjectReport[];
  /** Accept chain name → the object and direction it counts for. */
  readonly accounting: ReadonlyMap<string, PolicyAccount>;
  /** The deployed toFQDNs rules: which dynamic sets the DNS proxy fills for which names. */
  readonly fqdn: readonly FqdnTarget[];
  /** The node network's DNS goes to the proxy (some policy has toFQDNs and the proxy listens). */
  readonly dnsIntercepted: boolean;
}

function intervalSet(name: string, fam: Family, prefixes: readonly Prefix[]): NftSet {
  return { name, type: addrType(fam), flags: ['interval'], elements: fromPrefixes(prefixes, fam).map((r) => ({ key: [range(r)] })) };
}

export function compile(input: CompileInput): Compiled {
  if (input.state === 'disconnected') {
    return { state: 'disconnected', mode: input.mode, table: disconnectedTable(), reports: [], accounting: new Map(), fqdn: [], dnsIntercepted: false };
  }
  const fw = input.firewall;
  if (!fw) throw new Error('compile: the connected state needs a Firewall');
  const mode = resolveMode(input.mode, fw);
  const logAccepted = fw.logAcceptedConnections;
  const chains: NftChain[] = [];
  const accounting: (readonly [string, PolicyAccount])[] = [];
  const counted = (a: { chain: NftChain; pair: readonly [string, PolicyAccount] }): void => {
    chains.push(a.chain);
    accounting.push(a.pair);
  };
  const accept = (name: string, text: string, account: PolicyAccount): void => counted({ chain: acceptChain(name, text, logAccepted), pair: [name, account] });

  const cache = input.cache;
  const pol = (cache?.deployed ?? new DeployedCache(false)).select(input.policies, mode, fw);
  const items = pol.deployed.map((e) => e.items);
  const anyPolicies: PolicyItems[] = [];
  const fqdnAllowed = mode === 'forbidden' ? allowedSets(fw).egress : undefined;
  const fqdnPolicies: Parameters<typeof fqdnChain>[0][number][] = [];
  for (const e of pol.deployed) {
    const targets = e.fqdn ? policyTargets(e.policy, fqdnAllowed) : [];
    if (targets.length > 0) fqdnPolicies.push({ policy: e.policy, egressChain: e.items.egressChain, targets });
    if (e.anyBoxes) anyPolicies.push(e.items);
    if (e.egressBoxes || targets.length > 0) counted(policyAccept(e, 'egress', logAccepted));
    if (e.ingressBoxes) counted(policyAccept(e, 'ingress', logAccepted));
  }

  const svc = serviceReports(input.services, mode, fw);
  const svcParts: Record<Family, Part[]> = { 4: [], 6: [] };
  svc.services.forEach((s) => {
    const chain = serviceChain(s);
    const key = formatRef(s.svc.ref);
    const boxes = { 4: emptyTable(4), 6: emptyTable(4) };
    if (addServiceBoxes(boxes, 0, s) === 0) return;
    accept(chain, `accept traffic for k8s service ${key}`, { kind: 'Service', ref: s.svc.ref, direction: 'service', policy: key });
    const verdict = { kind: 'goto', chain } as const;
    for (const fam of [4, 6] as const) if (boxes[fam].owners.length > 0) svcParts[fam].push({ name: key, verdict, coords: boxes[fam].coords });
  });

  // A compile that failed between selecting the policies and updating the maps left them behind:
  // they are made afresh (changes undefined).
  const changes = cache?.consistent ? pol.changes : undefined;
  if (cache) cache.consistent = false;
  const { maps, lookupChains } = policyMaps(
    { policies: items, anyPolicies, changes, services: svcParts },
    cache,
    input.shardMax ?? SHARD_MAX,
  );
  if (cache) cache.consistent = true;
  chains.push(...lookupChains);

  const sets: NftSet[] = [
    intervalSet('cluster_prefixes', 4, fw.nodeNetwork.prefixes),
    intervalSet('cluster_prefixes_v6', 6, fw.nodeNetwork.prefixes),
    intervalSet('internal_prefixes', 4, fw.internalPrefixes),
    intervalSet('internal_prefixes_v6', 6, fw.internalPrefixes),
  ];
  const fqdn = fqdnPolicies.flatMap((f) => f.targets);
  const fqdnJump = fqdn.length > 0;
  if (fqdnJump) {
    sets.push(...fqdnSets(fqdn));
    chains.push(fqdnChain(fqdnPolicies));
  }
  const intercept = fqdnJump && input.dnsProxy ? interceptChain(fw, input.dnsProxy) : undefined;
  chains.push(forwardBaseChain(fw, fqdnJump), postroutingBaseChain(fw));
  if (intercept) chains.push(intercept);
  if (input.metricsPort !== undefined) chains.push(metricsInputChain(fw, input.metricsPort));
  return {
    state: 'connected',
    mode,
    table: baseTable(sets, maps, chains),
    reports: [...pol.reports, ...svc.reports],
    accounting: new LazyMap(accounting),
    fqdn,
    dnsIntercepted: intercept !== undefined,
  };
}
