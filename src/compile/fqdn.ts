/**
 * FQDN egress (`toFQDNs`): per rule a pair of dynamic sets (IPv4, IPv6) that the DNS proxy fills
 * with the addresses of matching answers, a chain that sends traffic to those sets on the rule's
 * ports into the policy's accept chain, and the interception that sends the node network's DNS to
 * the proxy. Pure: which sets exist and which names feed them is data for the proxy (FqdnTarget).
 */
import { Family, IpAddress, formatAddress } from '../model/address';
import { FqdnSelector, Policy } from '../model/cwnp';
import { FirewallConfig, interfaceNames } from '../model/firewall';
import { ObjectRef, formatRef } from '../model/names';
import { RangeSet } from '../model/rangeset';
import { NftChain, NftMatch, NftRule, NftSet } from '../nft/ruleset';
import { addrType, ifnameSet, ipKeyword, ports as portText, safeComment } from '../nft/syntax';
import { FAMILIES, clusterSaddr } from './chains';
import { chainName } from './items';

export const FQDN_CHAIN = 'fqdn_egress';
export const DNS_INTERCEPT_CHAIN = 'dns_intercept';
/** dstnat: before routing decides the packet is to be forwarded. */
export const DNS_INTERCEPT_PRIORITY = -100;

/** One `toFQDNs` rule of a deployed policy: the sets its answers go to, and who feeds them. */
export interface FqdnTarget {
  readonly policy: ObjectRef;
  /** e.g. `egress[2]` */
  readonly path: string;
  readonly selectors: readonly FqdnSelector[];
  readonly sets: Readonly<Record<Family, string>>;
  /** Forbidden mode: only addresses inside these ranges may be added (undefined: any). */
  readonly allowed: Readonly<Record<Family, RangeSet>> | undefined;
}

/** Where the proxy listens, when it does: the DNAT target of the interception. */
export interface DnsProxyAddress {
  readonly addresses: readonly IpAddress[];
  readonly port: number;
}

export function fqdnSetName(policy: ObjectRef, path: string, family: Family): string {
  return chainName(`fqdn${family}`, `${formatRef(policy)}#${path}`, policy.name);
}

/** The FQDN rules of a deployed policy. */
export function policyTargets(p: Policy, allowed: FqdnTarget['allowed']): FqdnTarget[] {
  return p.egress
    .filter((r) => r.toFqdns && r.fqdns.length > 0)
    .map((r) => ({ policy: p.ref, path: r.path, selectors: r.fqdns, sets: { 4: fqdnSetName(p.ref, r.path, 4), 6: fqdnSetName(p.ref, r.path, 6) }, allowed }));
}

export function fqdnSets(targets: readonly FqdnTarget[]): NftSet[] {
  return targets.flatMap((t) => FAMILIES.map((fam): NftSet => ({ name: t.sets[fam], type: addrType(fam), flags: ['timeout'], elements: [] })));
}

/**
 * The chain the forward chain jumps to for the node network's egress: destination in a rule's set,
 * on the rule's ports, jumps to the policy's accept chain (which counts it for the policy).
 */
export function fqdnChain(policies: readonly { readonly policy: Policy; readonly egressChain: string; readonly targets: readonly FqdnTarget[] }[]): NftChain {
  const rules: NftRule[] = [];
  for (const { policy, egressChain, targets } of policies) {
    for (const t of targets) {
      const rule = policy.egress.find((r) => r.path === t.path)!;
      for (const fam of FAMILIES) {
        const base: NftMatch[] = [clusterSaddr(fam), { kind: 'set', expr: `${ipKeyword(fam)} daddr`, set: t.sets[fam] }];
        const jump = { kind: 'jump', chain: egressChain } as const;
        if (rule.ports.kind === 'any') rules.push({ match: base, statement: jump });
        else for (const p of rule.ports.ports) rules.push({ match: [...base, `${p.protocol} dport ${portText(p.range)}`], statement: jump });
      }
    }
  }
  return { name: FQDN_CHAIN, rules };
}

/**
 * DNS (UDP and TCP port 53) from the node network to any address goes to the proxy on the
 * firewall's node-network address. Only forwarded traffic passes prerouting: the firewall's own
 * DNS (output) is untouched.
 */
export function interceptChain(fw: FirewallConfig, proxy: DnsProxyAddress): NftChain | undefined {
  const priv = ifnameSet(interfaceNames(fw.nodeNetwork));
  const rules: NftRule[] = [];
  for (const fam of FAMILIES) {
    const addr = proxy.addresses.find((a) => a.family === fam);
    if (!addr) continue;
    const ip = ipKeyword(fam);
    const to = fam === 4 ? `${formatAddress(addr)}:${proxy.port}` : `[${formatAddress(addr)}]:${proxy.port}`;
    rules.push({
      match: [`iifname ${priv}`, clusterSaddr(fam), 'meta l4proto { tcp, udp }', 'th dport 53'],
      counter: { kind: 'anonymous' },
      statement: { kind: 'text', text: `dnat ${ip} to ${to}` },
      comment: safeComment('dns to the fqdn proxy'),
    });
  }
  if (rules.length === 0) return undefined;
  return { name: DNS_INTERCEPT_CHAIN, base: { type: 'nat', hook: 'prerouting', priority: DNS_INTERCEPT_PRIORITY, policy: 'accept' }, rules };
}
