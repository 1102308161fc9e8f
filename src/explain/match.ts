/**
 * The model: which rules of a parsed policy or Service allow the packet, and which match only part
 * of it (near misses). Pure.
 */
import { peerRanges } from '../compile/compile';
import { IpAddress, addressInPrefix, formatAddress, formatPrefix } from '../model/address';
import { Policy, PolicyRule } from '../model/cwnp';
import { LoadBalancerService } from '../model/service';
import { Side } from './explanation';
import { Packet, inRanges, portMatches, sameAddress } from './packet';
import { blockText, list, packetText, portSpecText } from './text';

export interface RuleResult {
  readonly hits: { path: string; detail: string }[];
  readonly near: string[];
}

/**
 * The rules of one direction that allow the packet, with their paths, and near misses. `peer` is
 * the address the rule's peers are about (egress: destination, ingress: source).
 */
function matchRules(rules: readonly PolicyRule[], peer: IpAddress, pkt: Packet, peerField: 'to' | 'from'): RuleResult {
  const out: RuleResult = { hits: [], near: [] };
  for (const rule of rules) {
    // The authority on the addresses is peerRanges, the same function the compiler partitions.
    const inside = inRanges(peerRanges(rule.peers)[peer.family], peer);
    const peerParts: { path: string; detail: string }[] = [];
    const excepted: string[] = [];
    if (rule.peers.kind === 'any') {
      if (inside) peerParts.push({ path: rule.path, detail: `no ${peerField}: every ${peerField === 'to' ? 'destination' : 'source'}` });
    } else {
      rule.peers.blocks.forEach((b, j) => {
        if (!addressInPrefix(b.cidr, peer)) return;
        const k = b.except.findIndex((e) => addressInPrefix(e, peer));
        if (k >= 0) {
          excepted.push(`${rule.path}.${peerField}[${j}] ${formatPrefix(b.cidr)} contains ${formatAddress(peer)}, but its except[${k}] ${formatPrefix(b.except[k]!)} excludes it`);
          return;
        }
        peerParts.push({ path: `${rule.path}.${peerField}[${j}]`, detail: blockText(b) });
      });
      if (inside && peerParts.length === 0) peerParts.push({ path: rule.path, detail: formatAddress(peer) });
      if (!inside) peerParts.length = 0;
    }
    if (peerParts.length === 0) {
      out.near.push(...excepted);
      continue;
    }
    const portParts: { path: string; detail: string }[] = [];
    if (rule.ports.kind === 'any') portParts.push({ path: '', detail: 'no ports: every port and protocol' });
    else {
      rule.ports.ports.forEach((p, k) => {
        if (portMatches(p, pkt)) portParts.push({ path: `ports[${k}]`, detail: portSpecText(p) });
      });
    }
    if (portParts.length === 0) {
      const ports = rule.ports.kind === 'list' ? rule.ports.ports.map(portSpecText) : [];
      out.near.push(`${peerParts[0]!.path} (${peerParts[0]!.detail}) matches ${formatAddress(peer)}, but not ${packetText(pkt)} (ports: ${list(ports)})`);
      continue;
    }
    for (const a of peerParts) {
      for (const p of portParts) {
        out.hits.push({ path: p.path ? `${a.path} ${p.path}` : a.path, detail: `${a.detail}; ${p.detail}` });
      }
    }
  }
  return out;
}

export function policyHits(p: Policy, pkt: Packet, egressSide: boolean, ingressSide: boolean): { side: Side; hits: RuleResult } [] {
  const out: { side: Side; hits: RuleResult }[] = [];
  if (egressSide) out.push({ side: 'egress', hits: matchRules(p.egress.filter((r) => !r.toFqdns), pkt.dst, pkt, 'to') });
  if (ingressSide) out.push({ side: 'ingress', hits: matchRules(p.ingress, pkt.src, pkt, 'from') });
  return out;
}

/** A LoadBalancer Service's rule for the packet: its IP (among `ips`), port and source range. */
export function serviceHit(svc: LoadBalancerService, ips: readonly IpAddress[], pkt: Packet): RuleResult {
  const out: RuleResult = { hits: [], near: [] };
  const ip = ips.find((a) => sameAddress(a, pkt.dst));
  if (!ip) return out;
  const ipText = formatAddress(ip);
  const ports = svc.ports.filter((p) => portMatches(p, pkt));
  if (ports.length === 0) {
    out.near.push(`${ipText} is its load balancer IP, but ${packetText(pkt)} is not one of its ports (${list(svc.ports.map(portSpecText))})`);
    return out;
  }
  let source: string | undefined;
  if (svc.sourceRanges.length === 0) source = 'no source ranges: every source';
  else {
    const r = svc.sourceRanges.find((s) => addressInPrefix(s, pkt.src));
    if (r) source = `source range ${formatPrefix(r)}`;
  }
  if (!source) {
    out.near.push(`${ipText} ${packetText(pkt)} is its IP and port, but ${formatAddress(pkt.src)} is not in its source ranges (${list(svc.sourceRanges.map(formatPrefix))})`);
    return out;
  }
  for (const p of ports) out.hits.push({ path: `${ipText} port ${portSpecText(p)}`, detail: source });
  return out;
}

