/**
 * Services: where a Service means something else here than upstream (NodePort source ranges, the
 * source-ranges annotation, IPv6, load balancer IPs filtered by forbidden mode). Pure.
 */
import { allowedSets, filterServiceIps } from '../compile/forbidden';
import { IpAddress, formatAddress, formatPrefix, hostPrefix, prefixRange } from '../model/address';
import { Obj } from '../model/fields';
import { covers, fromPrefixes } from '../model/rangeset';
import { SOURCE_RANGES_ANNOTATION, ServiceResult } from '../model/service';
import { Difference } from './findings';
import type { Context } from './policy';
import { arr, obj } from './raw';

function servicePorts(spec: Obj | undefined): string[] {
  const out: string[] = [];
  for (const p of arr(spec?.ports)) {
    const o = obj(p);
    if (!o || typeof o.port !== 'number') continue;
    // Upstream lower-cases the protocol and keeps tcp and udp (the API server defaults it to TCP).
    const proto = typeof o.protocol === 'string' ? o.protocol.toLowerCase() : 'tcp';
    if (proto === 'tcp' || proto === 'udp') out.push(`${o.port}/${proto}`);
  }
  return out;
}

function ipsText(ips: readonly IpAddress[]): string {
  return ips.length === 0 ? 'no IP' : ips.map(formatAddress).join(', ');
}

export function serviceDifferences(raw: Obj, res: ServiceResult, ctx: Context): Difference[] {
  const out: Difference[] = [];
  const spec = obj(raw.spec);
  const type = spec?.type;
  const ranges = arr(spec?.loadBalancerSourceRanges).filter((r): r is string => typeof r === 'string');
  const ports = servicePorts(spec);
  if (type === 'NodePort') {
    if (ranges.length > 0 && ports.length > 0) {
      out.push({
        code: 'no-destination',
        path: 'spec.loadBalancerSourceRanges',
        input: `on a NodePort Service`,
        upstream: `accepted ${ranges.join(', ')} to any destination on ${ports.join(', ')}`,
        here: 'no rule (only LoadBalancer Services get rules)',
      });
    }
    return out;
  }
  if (type !== 'LoadBalancer' || !res.ok || !res.service) return out;
  const svc = res.service;
  if (ranges.length === 0 && svc.sourceRanges.length > 0) {
    out.push({
      code: 'source-ranges-annotation',
      path: `metadata.annotations[${SOURCE_RANGES_ANNOTATION}]`,
      input: '',
      upstream: 'the annotation was not read: open to every source',
      here: `only from ${svc.sourceRanges.map(formatPrefix).join(', ')}`,
    });
  }
  for (const [j, p] of svc.sourceRanges.entries()) {
    if (p.family === 6 && ranges.length > 0) {
      out.push({
        code: 'ipv6',
        path: `spec.loadBalancerSourceRanges[${j}]`,
        input: formatPrefix(p),
        upstream: 'rules were rendered for IPv4 only',
        here: 'enforced for IPv6 sources',
      });
    }
  }
  for (const ip of svc.ips.filter((a) => a.family === 6)) {
    out.push({ code: 'ipv6', path: '', input: `load balancer IP ${formatAddress(ip)}`, upstream: 'rules were rendered for IPv4 only', here: 'enforced for IPv6' });
  }
  if (ports.length === 0) return out;
  // Upstream's destinations: the IPs, filtered by allowedNetworks.ingress (only when that list is
  // non-empty, and without the node network); all filtered away with source ranges left = no destination.
  let upstreamIps = svc.ips;
  let hereIps = svc.ips;
  const fw = ctx.mode === 'forbidden' ? ctx.firewall : undefined;
  if (fw) {
    const ingress = fw.allowedNetworks?.ingress ?? [];
    if (ingress.length > 0) upstreamIps = svc.ips.filter((a) => covers(fromPrefixes(ingress, a.family), prefixRange(hostPrefix(a))));
    hereIps = filterServiceIps(svc, allowedSets(fw)).inside;
  }
  if (upstreamIps.length === 0 && ranges.length > 0) {
    out.push({
      code: 'no-destination',
      path: '',
      input: svc.ips.length === 0 ? 'has no load balancer IP' : `has no load balancer IP inside allowedNetworks.ingress`,
      upstream: `the rule lost its destination: accepted ${ranges.join(', ')} to any destination on ${ports.join(', ')}`,
      here: hereIps.length === 0 ? 'no rule' : `only to ${ipsText(hereIps)}`,
    });
  } else if (fw && ipsText(upstreamIps) !== ipsText(hereIps)) {
    const why = (fw.allowedNetworks?.ingress ?? []).length === 0 ? 'allowedNetworks.ingress is empty, so upstream did not filter' : 'the node network is always allowed here';
    out.push({
      code: 'load-balancer-ips',
      path: '',
      input: `load balancer IPs ${ipsText(svc.ips)} (${why})`,
      upstream: upstreamIps.length === 0 ? 'no rule' : `rule for ${ipsText(upstreamIps)}`,
      here: hereIps.length === 0 ? 'no rule' : `rule for ${ipsText(hereIps)}`,
    });
  }
  return out;
}
