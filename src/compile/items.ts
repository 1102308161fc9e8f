/**
 * What each policy and Service contributes to the maps: boxes (one interval per dimension) with
 * the index of their owner, and the names of the owners' accept chains. A policy's part does not
 * depend on the other policies, so a daemon keeps it per parsed policy (CompileCache). Pure.
 */
import { createHash } from 'node:crypto';
import { AddrRange, FAMILY_BITS, Family } from '../model/address';
import { EgressRule, Peers, Policy, PolicyRule } from '../model/cwnp';
import { formatRef } from '../model/names';
import { PROTOCOL_NUMBER, PortSpec } from '../model/ports';
import { RangeSet, fromPrefixes, normalize, subtract } from '../model/rangeset';
import { NAME_MAX } from '../nft/syntax';
import { FAMILIES } from './chains';
import { Box } from './partition';
import { DeployedService } from './reports';

type Dims = Box['dims'];

export function fullRange(family: Family): AddrRange {
  return { family, lo: 0n, hi: (1n << BigInt(FAMILY_BITS[family])) - 1n };
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/** Unique by the hash of the full key, readable by the (possibly cut) name. */
export function chainName(prefix: string, key: string, readable: string): string {
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

export function iv(lo: bigint | number, hi: bigint | number): { lo: bigint; hi: bigint } {
  return { lo: BigInt(lo), hi: BigInt(hi) };
}

/** dims [proto, port, addr]: the partition splits the address last, which keeps cells few. */
function portDims(p: PortSpec, r: AddrRange): Dims {
  const proto = PROTOCOL_NUMBER[p.protocol];
  return [iv(proto, proto), iv(p.range.lo, p.range.hi), iv(r.lo, r.hi)];
}

/** Boxes of one direction's maps, per family. */
export interface DirectionBoxes {
  readonly any: Record<Family, Box[]>;
  readonly ports: Record<Family, Box[]>;
}

export function emptyDirection(): DirectionBoxes {
  return { any: { 4: [], 6: [] }, ports: { 4: [], 6: [] } };
}

/** A direction's box dimensions of one policy, per map and family (owners are set per compile). */
export interface DirectionDims {
  readonly any: Record<Family, Dims[]>;
  readonly ports: Record<Family, Dims[]>;
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

export function countDims(d: DirectionDims): number {
  return FAMILIES.reduce((n, f) => n + d.any[f].length + d.ports[f].length, 0);
}

/** What a policy contributes, independent of the other policies: worth keeping per parsed policy. */
export interface PolicyItems {
  readonly egressChain: string;
  readonly ingressChain: string;
  readonly egress: DirectionDims;
  readonly ingress: DirectionDims;
}

export function policyItems(p: Policy): PolicyItems {
  const key = formatRef(p.ref);
  return {
    egressChain: chainName('cwnp-e', key, p.ref.name),
    ingressChain: chainName('cwnp-i', key, p.ref.name),
    // toFQDNs rules open the addresses DNS answers name, through dynamic sets (fqdn.ts), not maps
    egress: ruleDims(p.egress.filter((r: EgressRule) => !r.toFqdns)),
    ingress: ruleDims(p.ingress),
  };
}

export function addDims(target: DirectionBoxes, owner: number, d: DirectionDims): void {
  for (const fam of FAMILIES) {
    for (const dims of d.any[fam]) target.any[fam].push({ owner, dims });
    for (const dims of d.ports[fam]) target.ports[fam].push({ owner, dims });
  }
}

export function serviceChain(s: DeployedService): string {
  return chainName('svc', formatRef(s.svc.ref), `${s.svc.ref.namespace}/${s.svc.ref.name}`);
}

/**
 * A Service's boxes [proto, port, daddr, saddr] into `target`; the count added. Without source
 * ranges the source is the whole family of the IP (never the other family's ranges).
 */
export function addServiceBoxes(target: Record<Family, Box[]>, owner: number, { svc, ips }: DeployedService): number {
  let n = 0;
  for (const ip of ips) {
    const sources: AddrRange[] = svc.sourceRanges.length === 0 ? [fullRange(ip.family)] : [...fromPrefixes(svc.sourceRanges, ip.family)];
    for (const p of svc.ports) {
      const proto = PROTOCOL_NUMBER[p.protocol];
      for (const src of sources) {
        target[ip.family].push({ owner, dims: [iv(proto, proto), iv(p.range.lo, p.range.hi), iv(ip.value, ip.value), iv(src.lo, src.hi)] });
        n++;
      }
    }
  }
  return n;
}
