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
import { Policy, PolicyResult } from '../model/cwnp';
import { FirewallConfig } from '../model/firewall';
import { ObjectRef, formatRef } from '../model/names';
import { fromPrefixes } from '../model/rangeset';
import { ServiceResult } from '../model/service';
import { NftChain, NftElement, NftSet, NftTable } from '../nft/ruleset';
import { addrType, range } from '../nft/syntax';
import { acceptChain, baseTable, disconnectedTable, forwardBaseChain, metricsInputChain, postroutingBaseChain } from './chains';
import { allowedSets } from './forbidden';
import { DnsProxyAddress, FqdnTarget, fqdnChain, fqdnSets, interceptChain, policyTargets } from './fqdn';
import { DirectionDims, PolicyItems, addServiceBoxes, countDims, directionBoxes, policyItems, serviceChain } from './items';
import { policyMaps } from './maps';
import { Mode, State, resolveMode } from './mode';
import { BoxTable, emptyTable } from './boxes';
import { PartitionCache } from './partition';
import { ObjectKind, ObjectReport, policyReports, serviceReports } from './reports';
import { SHARD_MAX } from './shard';

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
 * its boxes and chain names; per address shard the policy objects it was built from with the
 * elements they gave (a shard built from the very same objects in the same order has the same
 * elements, so they are reused without partitioning or formatting; a changed shard, at most a few
 * thousand boxes, is partitioned afresh); and partition results of the unsharded address maps.
 */
export class CompileCache {
  /** Per parsed policy object (unchanged while its resourceVersion is). */
  readonly policies = new WeakMap<Policy, PolicyItems>();
  readonly partitions = new Map<string, PartitionCache>();
  readonly shards = new Map<string, { readonly sources: readonly object[]; readonly elements: readonly NftElement[] }>();
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
  const accounting = new Map<string, PolicyAccount>();
  const accept = (name: string, text: string, account: PolicyAccount): void => {
    chains.push(acceptChain(name, text, logAccepted));
    accounting.set(name, account);
  };

  const pol = policyReports(input.policies, mode, fw);
  const egressDims: DirectionDims[] = [];
  const ingressDims: DirectionDims[] = [];
  const egressChains: string[] = [];
  const ingressChains: string[] = [];
  const fqdnAllowed = mode === 'forbidden' ? allowedSets(fw).egress : undefined;
  const fqdnPolicies: Parameters<typeof fqdnChain>[0][number][] = [];
  pol.deployed.forEach((p, owner) => {
    let items = input.cache?.policies.get(p);
    if (!items) {
      items = policyItems(p);
      input.cache?.policies.set(p, items);
    }
    egressChains[owner] = items.egressChain;
    ingressChains[owner] = items.ingressChain;
    egressDims[owner] = items.egress;
    ingressDims[owner] = items.ingress;
    const account = { kind: 'ClusterwideNetworkPolicy', ref: p.ref, policy: p.ref.name } as const;
    const targets = policyTargets(p, fqdnAllowed);
    if (targets.length > 0) fqdnPolicies.push({ policy: p, egressChain: items.egressChain, targets });
    // Comments keep the upstream firewall-controller's wording: tools grep for them.
    if (countDims(items.egress) > 0 || targets.length > 0) accept(items.egressChain, `accept traffic for np ${p.ref.name}`, { ...account, direction: 'egress' });
    if (countDims(items.ingress) > 0) {
      accept(items.ingressChain, `accept traffic for k8s network policy ${p.ref.name}`, { ...account, direction: 'ingress' });
    }
  });

  const svc = serviceReports(input.services, mode, fw);
  const svcBoxes: Record<Family, BoxTable> = { 4: emptyTable(4), 6: emptyTable(4) };
  const svcChains: string[] = [];
  svc.services.forEach((s, owner) => {
    svcChains[owner] = serviceChain(s);
    const key = formatRef(s.svc.ref);
    if (addServiceBoxes(svcBoxes, owner, s) > 0) {
      accept(svcChains[owner]!, `accept traffic for k8s service ${key}`, { kind: 'Service', ref: s.svc.ref, direction: 'service', policy: key });
    }
  });

  const { maps, lookupChains } = policyMaps(
    { egress: directionBoxes(egressDims), ingress: directionBoxes(ingressDims), services: svcBoxes, egressChains, ingressChains, serviceChains: svcChains, policies: pol.deployed },
    input.cache,
    input.shardMax ?? SHARD_MAX,
  );
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
    accounting,
    fqdn,
    dnsIntercepted: intercept !== undefined,
  };
}
