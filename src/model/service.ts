/**
 * Services of type LoadBalancer: their IPs (spec.loadBalancerIP, status.loadBalancer.ingress[].ip),
 * ports and source ranges. Other Service types get no firewall rule.
 */
import { IpAddress, Prefix, formatPrefix, parseAddress, parsePrefix } from './address';
import { Obj, Problem, Reader, index, join, quote } from './fields';
import { ObjectRef } from './names';
import { PortSpec, isPort, parseProtocol } from './ports';
import { displayRef, objectRef } from './cwnp';

/** Kubernetes honours this annotation when spec.loadBalancerSourceRanges is empty. */
export const SOURCE_RANGES_ANNOTATION = 'service.beta.kubernetes.io/load-balancer-source-ranges';

export interface LoadBalancerService {
  readonly ref: ObjectRef;
  readonly ips: readonly IpAddress[];
  readonly ports: readonly PortSpec[];
  /** Empty means every source. */
  readonly sourceRanges: readonly Prefix[];
  readonly warnings: readonly Problem[];
}

export type ServiceResult =
  | { readonly ok: true; readonly service: LoadBalancerService | undefined }
  | { readonly ok: false; readonly ref: ObjectRef; readonly problems: readonly Problem[] };

export function parseService(obj: Obj): ServiceResult {
  const r = new Reader();
  const warnings: Problem[] = [];
  const ref = objectRef(obj, r);
  const spec = r.object(obj.spec, 'spec') ?? {};
  const type = r.string(spec.type, 'spec.type', 64);
  if (type !== 'LoadBalancer') {
    return r.ok && ref ? { ok: true, service: undefined } : { ok: false, ref: ref ?? displayRef(obj), problems: r.problems };
  }

  const ips: IpAddress[] = [];
  const addIp = (value: unknown, path: string): void => {
    if (value === undefined || value === null || value === '') return;
    const a = parseAddress(value);
    // A bad IP only ever removes a destination; it can never widen the rule.
    if (!a.ok) warnings.push({ path, message: `${a.error}; skipped` });
    else if (!ips.some((x) => x.family === a.value.family && x.value === a.value.value)) ips.push(a.value);
  };
  addIp(spec.loadBalancerIP, 'spec.loadBalancerIP');
  const status = r.object(obj.status, 'status');
  const lb = r.object(status?.loadBalancer, 'status.loadBalancer');
  r.array(lb?.ingress, 'status.loadBalancer.ingress').forEach((ing, i) => {
    const o = r.object(ing, index('status.loadBalancer.ingress', i));
    addIp(o?.ip, join(index('status.loadBalancer.ingress', i), 'ip'));
  });

  const ports: PortSpec[] = [];
  r.array(spec.ports, 'spec.ports').forEach((p, i) => {
    const path = index('spec.ports', i);
    const o = r.item(p, path);
    if (!o) return;
    if (typeof o.protocol === 'string' && o.protocol.toUpperCase() === 'SCTP') {
      warnings.push({ path: join(path, 'protocol'), message: 'SCTP is not supported; this port gets no rule' });
      return;
    }
    const proto = parseProtocol(o.protocol);
    if (!proto.ok) return r.fail(join(path, 'protocol'), proto.error);
    if (!isPort(o.port)) return r.fail(join(path, 'port'), `${quote(o.port)} is not a port between 1 and 65535`);
    ports.push({ protocol: proto.value, range: { lo: o.port, hi: o.port } });
  });

  // Source ranges are all-or-nothing: dropping a bad one could leave the list empty = open to all.
  const sourceRanges: Prefix[] = [];
  let rangeValues = r.array(spec.loadBalancerSourceRanges, 'spec.loadBalancerSourceRanges');
  let rangePath = 'spec.loadBalancerSourceRanges';
  if (rangeValues.length === 0) {
    const meta = r.object(obj.metadata, 'metadata');
    const ann = r.object(meta?.annotations, 'metadata.annotations');
    const text = ann?.[SOURCE_RANGES_ANNOTATION];
    if (typeof text === 'string' && text.trim() !== '') {
      rangeValues = text.split(',').map((s) => s.trim());
      rangePath = `metadata.annotations[${SOURCE_RANGES_ANNOTATION}]`;
    }
  }
  rangeValues.forEach((v, i) => {
    const p = parsePrefix(v);
    if (!p.ok) return r.fail(index(rangePath, i), p.error);
    if (p.hostBitsMasked) {
      warnings.push({ path: index(rangePath, i), message: `${quote(v)} has host bits set; using ${formatPrefix(p.value)}` });
    }
    sourceRanges.push(p.value);
  });

  if (!r.ok || !ref) return { ok: false, ref: ref ?? displayRef(obj), problems: r.problems };
  if (ips.length === 0) warnings.push({ path: '', message: 'has no load balancer IP yet; no rule' });
  return { ok: true, service: { ref, ips, ports, sourceRanges, warnings } };
}
