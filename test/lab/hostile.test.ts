/**
 * Hostile input through every string field: no such string reaches nft text, the ruleset still
 * loads, each bad object is rejected on its own, and nothing opens beyond the valid policies.
 */
import { compileObjects, cwnp, exampleFirewall, lbService } from '../helpers';
import { Obj } from '../../src/model/fields';
import { parseFirewall } from '../../src/model/firewall';
import { Lab, tcp, udp } from './lab';

const MARK = 'PWNED';
const INJECT = [
  `0.0.0.0/0 } accept comment "${MARK}" #`,
  `1.2.3.4/32\n}\nadd rule inet firewall forward accept # ${MARK}`,
  `"; flush ruleset; # ${MARK}`,
  `10.0.0.0/8, 0.0.0.0/0 ${MARK}`,
  `$(${MARK})`,
  `0.0.0.0/0\u0000${MARK}`,
  `${MARK}/33`,
];

const valid = cwnp('allow-to-dns', { egress: [{ to: [{ cidr: '198.51.100.53/32' }], ports: [{ protocol: 'UDP', port: 53 }] }] });

function hostilePolicies(): Obj[] {
  const out: Obj[] = [];
  INJECT.forEach((s, i) => {
    out.push(cwnp(`bad-cidr-${i}`, { egress: [{ to: [{ cidr: s }], ports: [{ port: 443 }] }] }));
    out.push(cwnp(`bad-except-${i}`, { egress: [{ to: [{ cidr: '203.0.113.0/24', except: [s] }], ports: [{ port: 443 }] }] }));
    out.push(cwnp(`bad-from-${i}`, { ingress: [{ from: [{ cidr: '203.0.113.0/24', except: [s] }] }] }));
    out.push(cwnp(`bad-proto-${i}`, { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol: s, port: 443 }] }] }));
    out.push(cwnp(`bad-port-${i}`, { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: s }] }] }));
    out.push(cwnp(`bad-endport-${i}`, { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 1, endPort: s }] }] }));
    out.push(cwnp(`bad-fqdn-${i}`, { egress: [{ toFQDNs: [{ matchName: s }] }] }));
    out.push(cwnp(`bad-pattern-${i}`, { egress: [{ toFQDNs: [{ matchPattern: s }] }] }));
    out.push(cwnp(s, { egress: [{ to: [{ cidr: '203.0.113.0/24' }] }] }));
    out.push(cwnp('bad-namespace', { egress: [{ to: [{ cidr: '203.0.113.0/24' }] }] }, s));
    out.push(cwnp(`bad-field-${i}`, { egress: [{ to: [{ cidr: '203.0.113.0/24' }], [s]: 1 }] }));
    out.push(lbService(`bad-lbip-${i}`, { loadBalancerIP: s, ports: [{ port: 443 }] }));
    out.push(lbService(`bad-range-${i}`, { loadBalancerIP: '192.0.2.200', loadBalancerSourceRanges: [s], ports: [{ port: 8000 }] }));
    out.push(lbService(`bad-svcproto-${i}`, { loadBalancerIP: '192.0.2.200', ports: [{ port: 8005, protocol: s }] }));
    out.push(lbService(s, { loadBalancerIP: '192.0.2.200', ports: [{ port: 8010 }] }));
    const ann = lbService(`bad-annotation-${i}`, { loadBalancerIP: '192.0.2.200', ports: [{ port: 8011 }] });
    (ann.metadata as Obj).annotations = { 'service.beta.kubernetes.io/load-balancer-source-ranges': s };
    out.push(ann);
  });
  // A description is free text: it never reaches nft, so the policy itself stays valid.
  out.push(cwnp('free-text', { description: INJECT.join('\n'), egress: [{ to: [{ cidr: '198.51.100.10/32' }], ports: [{ port: 9000 }] }] }));
  return out;
}

function hostileFirewall(s: string): Obj {
  const fw = exampleFirewall();
  const nets = (fw.status as Obj).firewallNetworks as Obj[];
  nets.push({ networkID: s, networkType: 'external', vrf: 104099, asn: 1, nat: true, prefixes: ['192.0.2.248/29'] });
  return fw;
}

let lab: Lab;
let text: string;
let reports: ReturnType<typeof compileObjects>['compiled']['reports'];

beforeAll(async () => {
  lab = await Lab.create();
  const r = compileObjects([exampleFirewall(), valid, ...hostilePolicies()]);
  text = r.text;
  reports = r.compiled.reports;
  await lab.apply(text);
});

afterAll(async () => {
  await lab?.destroy();
});

test('no hostile string reaches the nft text', () => {
  expect(text).not.toContain(MARK);
  expect(text).not.toContain('flush ruleset');
  expect(text).not.toMatch(/\u0000/);
  // every comment is from the safe character set
  for (const m of text.matchAll(/comment "([^"]*)"/g)) expect(m[1]).toMatch(/^[A-Za-z0-9 ._/:,()=+?~-]*$/);
});

test('a Firewall with a hostile network id is unusable as a whole', () => {
  for (const s of INJECT) {
    const res = parseFirewall(hostileFirewall(s));
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.problems.map((p) => p.path).join()).toContain('status.firewallNetworks[3].networkID');
  }
});

test('hostile strings in any Firewall field make it unusable or stay out of the nft text', () => {
  const setters: ((fw: Obj, s: string) => void)[] = [
    (fw, s) => (((fw.status as Obj).firewallNetworks as Obj[])[1]!.networkType = s),
    (fw, s) => (((fw.status as Obj).firewallNetworks as Obj[])[1]!.prefixes = [s]),
    (fw, s) => (((fw.status as Obj).firewallNetworks as Obj[])[1]!.ips = [s]),
    (fw, s) => (((fw.status as Obj).firewallNetworks as Obj[])[1]!.destinationPrefixes = [s]),
    (fw, s) => ((fw.spec as Obj).internalPrefixes = [s]),
    (fw, s) => ((fw.spec as Obj).allowedNetworks = { egress: [s] }),
    (fw, s) => ((fw.spec as Obj).allowedNetworks = { ingress: [s] }),
    (fw, s) => ((fw.spec as Obj).egressRules = [{ networkID: 'internet', ips: [s] }]),
    (fw, s) => ((fw.spec as Obj).egressRules = [{ networkID: s, ips: ['203.0.113.50'] }]),
    (fw, s) => ((fw.spec as Obj).rateLimits = [{ networkID: s, rate: 10 }]),
    (fw, s) => ((fw.spec as Obj).interval = s),
    (fw, s) => ((fw.spec as Obj).dnsServerAddress = s),
    (fw, s) => ((fw.metadata as Obj).name = s),
  ];
  let rejected = 0;
  for (const set of setters) {
    for (const s of INJECT) {
      const fw = exampleFirewall();
      set(fw, s);
      const res = parseFirewall(fw);
      if (!res.ok) {
        rejected++;
        continue;
      }
      expect(compileObjects([fw, valid]).text).not.toContain(MARK);
    }
  }
  expect(rejected).toBeGreaterThan(INJECT.length * 10);
});

test('each hostile object is rejected on its own, with a reason; the valid ones are deployed', () => {
  const byName = new Map(reports.map((r) => [`${r.ref.namespace}/${r.ref.name}`, r]));
  expect(byName.get('firewall/allow-to-dns')!.outcome).toBe('deployed');
  expect(byName.get('firewall/free-text')!.outcome).toBe('deployed');
  const rejected = reports.filter((r) => r.outcome === 'rejected');
  for (const r of rejected) {
    expect(r.reason!.length).toBeGreaterThan(5);
    // the name in a report is printable: hostile names are shown with ? in place of odd characters
    expect(`${r.ref.namespace}/${r.ref.name}`).toMatch(/^[A-Za-z0-9_.?<>/…-]+$/);
  }
  const fqdnPolicies = reports.filter((r) => r.ref.name.startsWith('bad-fqdn') || r.ref.name.startsWith('bad-pattern'));
  expect(fqdnPolicies.every((r) => r.outcome === 'rejected')).toBe(true);
  expect(reports.filter((r) => r.ref.name.startsWith('bad-cidr')).every((r) => r.outcome === 'rejected')).toBe(true);
  expect(reports.filter((r) => r.ref.name.startsWith('bad-except')).every((r) => r.outcome === 'rejected')).toBe(true);
});

test('nothing opens beyond the valid policies', async () => {
  const out = await lab.reachable('worker', [
    udp('198.51.100.53', 53), // allow-to-dns
    tcp('198.51.100.10', 9000), // free-text
    tcp('203.0.113.10', 443),
    tcp('203.0.113.10', 80),
    udp('203.0.113.10', 5000),
    tcp('198.51.100.10', 443),
  ]);
  expect(out).toEqual([true, true, false, false, false, false]);
  const inbound = await lab.reachable('internet', [
    tcp('192.0.2.200', 443, { source: '203.0.113.10' }),
    tcp('192.0.2.200', 8000, { source: '203.0.113.10' }),
    tcp('192.0.2.200', 8005, { source: '203.0.113.10' }),
    tcp('192.0.2.200', 8011, { source: '203.0.113.10' }),
    tcp('192.0.2.10', 22, { source: '203.0.113.10' }),
  ]);
  expect(inbound).toEqual([false, false, false, false, false]);
});
