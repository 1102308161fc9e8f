/**
 * Deterministic (seeded) policy sets for the benchmarks. Addresses come from 100.64.0.0/10, a range
 * that is never routed here: they only ever appear inside rules.
 */
import { Obj } from '../../src/model/fields';

/** A small LCG so every run generates the same policies. */
export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

const COMMON_PORTS = [22, 53, 80, 123, 443, 5432, 6379, 6443, 8080, 8443, 9090, 9200];

function prefix(r: (n: number) => number): string {
  const len = 16 + r(13); // /16 .. /28 inside 100.64.0.0/10 (second octet 64..127)
  const addr = ((100 << 24) | ((64 + r(64)) << 16) | (r(256) << 8) | r(256)) >>> 0;
  const net = (addr & ((0xffffffff << (32 - len)) >>> 0)) >>> 0;
  return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}/${len}`;
}

function ports(r: (n: number) => number): Obj[] {
  const out: Obj[] = [];
  const n = 1 + r(3);
  for (let i = 0; i < n; i++) {
    const proto = r(4) === 0 ? 'UDP' : 'TCP';
    if (r(6) === 0) {
      const lo = 10000 + r(20000);
      out.push({ protocol: proto, port: lo, endPort: lo + r(100) });
    } else {
      out.push({ protocol: proto, port: r(3) === 0 ? 1024 + r(30000) : COMMON_PORTS[r(COMMON_PORTS.length)]! });
    }
  }
  return out;
}

export function policy(name: string, spec: Obj): Obj {
  return { apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name, namespace: 'firewall' }, spec };
}

/** `count` policies with 1–3 egress rules of 1–4 prefixes and 1–3 ports each; some with ingress. */
export function generatePolicies(count: number, seed = 42): Obj[] {
  const r = rng(seed);
  const out: Obj[] = [];
  for (let i = 0; i < count; i++) {
    const egress: Obj[] = [];
    for (let e = 1 + r(3); e > 0; e--) {
      const to: Obj[] = [];
      for (let t = 1 + r(4); t > 0; t--) to.push({ cidr: prefix(r) });
      egress.push({ to, ports: ports(r) });
    }
    const spec: Obj = { egress };
    if (r(10) < 3) spec.ingress = [{ from: [{ cidr: prefix(r) }], ports: ports(r) }];
    out.push(policy(`bench-${String(i).padStart(5, '0')}`, spec));
  }
  return out;
}
