/**
 * Forbidden mode: a policy is ignored as a whole when any egress destination lies outside
 * allowedNetworks.egress or any ingress source outside allowedNetworks.ingress. The node network
 * is always allowed. A rule without `to`/`from` means "anywhere" and is therefore outside.
 */
import { Family, Prefix, formatAddress, formatPrefix, hostPrefix, prefixRange } from '../model/address';
import { Policy } from '../model/cwnp';
import { FirewallConfig } from '../model/firewall';
import { RangeSet, covers, fromPrefixes } from '../model/rangeset';
import { LoadBalancerService } from '../model/service';
import { IpAddress } from '../model/address';

export interface AllowedSets {
  readonly egress: Record<Family, RangeSet>;
  readonly ingress: Record<Family, RangeSet>;
}

export function allowedSets(fw: FirewallConfig): AllowedSets {
  const node = fw.nodeNetwork.prefixes;
  const egress = [...(fw.allowedNetworks?.egress ?? []), ...node];
  const ingress = [...(fw.allowedNetworks?.ingress ?? []), ...node];
  return {
    egress: { 4: fromPrefixes(egress, 4), 6: fromPrefixes(egress, 6) },
    ingress: { 4: fromPrefixes(ingress, 4), 6: fromPrefixes(ingress, 6) },
  };
}

function inside(sets: Record<Family, RangeSet>, p: Prefix): boolean {
  return covers(sets[p.family], prefixRange(p));
}

/** The reason the policy is ignored, naming the first offending prefix, or undefined. */
export function forbiddenReason(policy: Policy, allowed: AllowedSets): string | undefined {
  for (const rule of policy.egress) {
    if (rule.toFqdns) continue; // answers outside allowedNetworks.egress are never added (FqdnTarget.allowed)
    if (rule.peers.kind === 'any') {
      return `${rule.path}.to is empty, which means every destination: outside allowedNetworks.egress`;
    }
    for (const [j, b] of rule.peers.blocks.entries()) {
      if (!inside(allowed.egress, b.cidr)) {
        return `${rule.path}.to[${j}].cidr ${formatPrefix(b.cidr)} is outside allowedNetworks.egress`;
      }
    }
  }
  for (const rule of policy.ingress) {
    if (rule.peers.kind === 'any') {
      return `${rule.path}.from is empty, which means every source: outside allowedNetworks.ingress`;
    }
    for (const [j, b] of rule.peers.blocks.entries()) {
      if (!inside(allowed.ingress, b.cidr)) {
        return `${rule.path}.from[${j}].cidr ${formatPrefix(b.cidr)} is outside allowedNetworks.ingress`;
      }
    }
  }
  return undefined;
}

/** Splits a Service's IPs into those inside allowedNetworks.ingress and those outside. */
export function filterServiceIps(
  svc: LoadBalancerService,
  allowed: AllowedSets,
): { inside: IpAddress[]; outside: string[] } {
  const ok: IpAddress[] = [];
  const outside: string[] = [];
  for (const ip of svc.ips) {
    if (inside(allowed.ingress, hostPrefix(ip))) ok.push(ip);
    else outside.push(formatAddress(ip));
  }
  return { inside: ok, outside };
}
