/**
 * Lenient matching of rejected objects: would they have matched if they were valid? Read from the
 * raw objects, which the parser refused, so every field may be missing or of the wrong type. Pure.
 */
import { IpAddress, addressInPrefix, parseAddress, parsePrefix } from '../model/address';
import { Obj } from '../model/fields';
import { parseProtocol } from '../model/ports';
import { SOURCE_RANGES_ANNOTATION } from '../model/service';
import { Packet, sameAddress } from './packet';

export type Tri = 'yes' | 'maybe' | 'no';

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function emptyList(v: unknown): boolean {
  return v === undefined || v === null || (Array.isArray(v) && v.length === 0);
}

function rawBlock(b: unknown, a: IpAddress): Tri {
  if (!isObj(b)) return 'maybe';
  const cidr = parsePrefix(b.cidr);
  if (!cidr.ok) return 'maybe';
  if (!addressInPrefix(cidr.value, a)) return 'no';
  if (emptyList(b.except)) return 'yes';
  if (!Array.isArray(b.except)) return 'maybe';
  let unsure = false;
  for (const e of b.except) {
    const p = parsePrefix(e);
    if (!p.ok || p.value.family !== cidr.value.family) unsure = true;
    else if (addressInPrefix(p.value, a)) return 'no';
  }
  return unsure ? 'maybe' : 'yes';
}

function rawPeers(v: unknown, a: IpAddress): { r: Tri; path: string } {
  if (emptyList(v)) return { r: 'yes', path: '' };
  if (!Array.isArray(v)) return { r: 'maybe', path: '' };
  let best: { r: Tri; path: string } = { r: 'no', path: '' };
  v.forEach((b, j) => {
    const r = rawBlock(b, a);
    if (r === 'yes' && best.r !== 'yes') best = { r, path: `[${j}]` };
    else if (r === 'maybe' && best.r === 'no') best = { r, path: `[${j}]` };
  });
  return best;
}

function rawPorts(v: unknown, pkt: Packet): { r: Tri; path: string } {
  if (emptyList(v)) return { r: 'yes', path: '' };
  if (!Array.isArray(v)) return { r: 'maybe', path: '' };
  let best: { r: Tri; path: string } = { r: 'no', path: '' };
  v.forEach((p, k) => {
    let r: Tri;
    if (!isObj(p)) r = 'maybe';
    else {
      const proto = parseProtocol(p.protocol);
      // a named protocol other than TCP/UDP (SCTP) is another protocol: it never matches this packet
      if (!proto.ok) r = typeof p.protocol === 'string' ? 'no' : 'maybe';
      else if (proto.value !== pkt.protocol || pkt.port === undefined) r = 'no';
      else if (p.port === undefined || p.port === null) r = p.endPort === undefined || p.endPort === null ? 'yes' : 'maybe';
      else if (typeof p.port !== 'number') r = 'maybe';
      else if (p.endPort === undefined || p.endPort === null) r = p.port === pkt.port ? 'yes' : 'no';
      else if (typeof p.endPort !== 'number') r = p.port === pkt.port ? 'maybe' : 'no';
      else {
        const lo = Math.min(p.port, p.endPort);
        const hi = Math.max(p.port, p.endPort);
        r = pkt.port < lo || pkt.port > hi ? 'no' : p.endPort >= p.port ? 'yes' : 'maybe';
      }
    }
    if (r === 'yes' && best.r !== 'yes') best = { r, path: ` ports[${k}]` };
    else if (r === 'maybe' && best.r === 'no') best = { r, path: ` ports[${k}]` };
  });
  return best;
}

/** The rules of a raw (rejected) policy that would or might match. */
export function rawPolicyMatch(obj: Obj, pkt: Packet, egressSide: boolean, ingressSide: boolean): { r: Tri; path: string }[] {
  const spec = isObj(obj.spec) ? obj.spec : {};
  const out: { r: Tri; path: string }[] = [];
  const sides: [boolean, 'egress' | 'ingress', 'to' | 'from', IpAddress][] = [
    [egressSide, 'egress', 'to', pkt.dst],
    [ingressSide, 'ingress', 'from', pkt.src],
  ];
  for (const [on, field, peerField, peer] of sides) {
    if (!on || !Array.isArray(spec[field])) continue;
    (spec[field] as unknown[]).forEach((rule, i) => {
      if (!isObj(rule)) return;
      // a toFQDNs rule opens only what DNS answers: not a static match
      if (field === 'egress' && !emptyList(rule.toFQDNs) && emptyList(rule.to)) return;
      const peers = rawPeers(rule[peerField], peer);
      if (peers.r === 'no') return;
      const ports = rawPorts(rule.ports, pkt);
      if (ports.r === 'no') return;
      const r: Tri = peers.r === 'yes' && ports.r === 'yes' ? 'yes' : 'maybe';
      out.push({ r, path: `${field}[${i}]${peers.path ? `.${peerField}${peers.path}` : ''}${ports.path}` });
    });
  }
  return out;
}

/** The load balancer IPs a raw LoadBalancer Service names (the ones that parse). */
export function rawServiceIps(obj: Obj | undefined): IpAddress[] {
  const spec = obj && isObj(obj.spec) ? obj.spec : {};
  if (!obj || spec.type !== 'LoadBalancer') return [];
  const ips: unknown[] = [spec.loadBalancerIP];
  const lb = isObj(obj.status) && isObj(obj.status.loadBalancer) ? obj.status.loadBalancer : undefined;
  if (lb && Array.isArray(lb.ingress)) for (const i of lb.ingress) if (isObj(i)) ips.push(i.ip);
  return ips.flatMap((v) => {
    const a = parseAddress(v);
    return a.ok ? [a.value] : [];
  });
}

export function rawServiceMatch(obj: Obj, pkt: Packet): Tri {
  const spec = isObj(obj.spec) ? obj.spec : {};
  if (!rawServiceIps(obj).some((a) => sameAddress(a, pkt.dst))) return 'no';
  let port: Tri = 'no';
  if (Array.isArray(spec.ports)) {
    for (const p of spec.ports) {
      if (!isObj(p)) { if (port === 'no') port = 'maybe'; continue; }
      const proto = parseProtocol(p.protocol);
      if (!proto.ok || typeof p.port !== 'number') { if (port === 'no') port = 'maybe'; continue; }
      if (proto.value === pkt.protocol && p.port === pkt.port) port = 'yes';
    }
  }
  if (port === 'no') return 'no';
  let ranges: unknown[] = Array.isArray(spec.loadBalancerSourceRanges) ? spec.loadBalancerSourceRanges : [];
  if (ranges.length === 0) {
    const ann = isObj(obj.metadata) && isObj(obj.metadata.annotations) ? obj.metadata.annotations[SOURCE_RANGES_ANNOTATION] : undefined;
    if (typeof ann === 'string' && ann.trim() !== '') ranges = ann.split(',').map((s) => s.trim());
  }
  let source: Tri = ranges.length === 0 ? 'yes' : 'no';
  for (const v of ranges) {
    const p = parsePrefix(v);
    if (!p.ok) { if (source === 'no') source = 'maybe'; }
    else if (addressInPrefix(p.value, pkt.src)) source = 'yes';
  }
  if (source === 'no') return 'no';
  return port === 'yes' && source === 'yes' ? 'yes' : 'maybe';
}

