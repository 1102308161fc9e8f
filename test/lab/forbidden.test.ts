/**
 * Forbidden mode in a real kernel: only policies wholly inside allowedNetworks are deployed, every
 * escape attempt is ignored as a whole, and LoadBalancer IPs outside the allowed ingress get no
 * rule without the rule ever widening.
 */
import { Compiled } from '../../src/compile/compile';
import { compileObjects, cwnp, exampleFirewall, lbService } from '../helpers';
import { Lab, tcp, udp } from './lab';

let lab: Lab;
let compiled: Compiled;

const policies = [
  cwnp('allow-to-dns', { egress: [{ to: [{ cidr: '198.51.100.53/32' }], ports: [{ protocol: 'UDP', port: 53 }] }] }),
  cwnp('allow-ssh-from-ops', { ingress: [{ from: [{ cidr: '203.0.113.0/28' }], ports: [{ port: 22 }] }] }),
  // escape attempts
  cwnp('to-everything', { egress: [{ to: [{ cidr: '0.0.0.0/0' }], ports: [{ port: 443 }] }] }),
  cwnp('no-to', { egress: [{ ports: [{ protocol: 'UDP', port: 123 }] }] }),
  cwnp('except-trick', {
    egress: [{ to: [{ cidr: '0.0.0.0/0', except: ['0.0.0.0/1', '128.0.0.0/2', '192.0.0.0/3'] }], ports: [{ port: 443 }] }],
  }),
  cwnp('v6-everything', { egress: [{ to: [{ cidr: '::/0' }], ports: [{ port: 443 }] }] }),
  cwnp('half-inside', {
    egress: [{ to: [{ cidr: '198.51.100.0/24' }] }, { to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }],
  }),
  cwnp('ingress-anywhere', { ingress: [{ ports: [{ port: 8000 }] }] }),
  cwnp('ingress-wider', { ingress: [{ from: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 8005 }] }] }),
];

const services = [
  lbService('inside', { loadBalancerIP: '192.0.2.200', ports: [{ port: 443, protocol: 'TCP' }] }),
  lbService('outside', { loadBalancerIP: '203.0.113.99', ports: [{ port: 80 }], loadBalancerSourceRanges: ['203.0.113.0/28'] }),
  lbService(
    'mixed',
    { loadBalancerIP: '203.0.113.98', ports: [{ port: 8010 }], loadBalancerSourceRanges: ['203.0.113.0/28'] },
    'default',
    { loadBalancer: { ingress: [{ ip: '192.0.2.200' }] } },
  ),
];

beforeAll(async () => {
  lab = await Lab.create();
  const r = compileObjects([exampleFirewall('forbidden'), ...policies, ...services]);
  compiled = r.compiled;
  await lab.apply(r.text);
});

afterAll(async () => {
  await lab?.destroy();
});

function report(name: string) {
  return compiled.reports.find((r) => r.ref.name === name)!;
}

test('the mode is inferred from allowedNetworks', () => {
  expect(compiled.mode).toBe('forbidden');
});

test('every escape attempt is ignored with the offending prefix named', () => {
  expect(report('allow-to-dns').outcome).toBe('deployed');
  expect(report('allow-ssh-from-ops').outcome).toBe('deployed');
  const expectIgnored: Record<string, string> = {
    'to-everything': 'egress[0].to[0].cidr 0.0.0.0/0 is outside allowedNetworks.egress',
    'no-to': 'egress[0].to is empty, which means every destination',
    'except-trick': 'egress[0].to[0].cidr 0.0.0.0/0 is outside',
    'v6-everything': 'egress[0].to[0].cidr ::/0 is outside',
    'half-inside': 'egress[1].to[0].cidr 203.0.113.0/24 is outside',
    'ingress-anywhere': 'ingress[0].from is empty, which means every source',
    'ingress-wider': 'ingress[0].from[0].cidr 203.0.113.0/24 is outside allowedNetworks.ingress',
  };
  for (const [name, reason] of Object.entries(expectIgnored)) {
    const r = report(name);
    expect({ name, outcome: r.outcome, forbidden: r.forbidden }).toEqual({ name, outcome: 'ignored', forbidden: true });
    expect(r.reason).toContain(reason);
  }
});

test('deployed policies work', async () => {
  expect(await lab.reachable('worker', [udp('198.51.100.53', 53)])).toEqual([true]);
  expect(await lab.reachable('internet', [tcp('192.0.2.10', 22, { source: '203.0.113.10' })])).toEqual([true]);
});

test('ignored policies open nothing, not even the parts inside the allowed networks', async () => {
  const r = await lab.reachable('worker', [
    tcp('203.0.113.10', 443),
    tcp('2001:db8:203::10', 443),
    udp('198.51.100.123', 123),
    tcp('198.51.100.10', 9000),
    udp('198.51.100.10', 5000),
  ]);
  expect(r).toEqual([false, false, false, false, false]);
  const inbound = await lab.reachable('internet', [
    tcp('192.0.2.10', 8000, { source: '203.0.113.10' }),
    tcp('192.0.2.10', 8005, { source: '203.0.113.10' }),
  ]);
  expect(inbound).toEqual([false, false]);
});

test('LoadBalancer IPs outside allowedNetworks.ingress get no rule, and the rule never widens', async () => {
  expect(report('outside').outcome).toBe('ignored');
  expect(report('outside').reason).toContain('203.0.113.99 is outside allowedNetworks.ingress');
  expect(report('mixed').outcome).toBe('deployed');
  expect(report('mixed').warnings.join()).toContain('203.0.113.98');
  const r = await lab.reachable('internet', [
    tcp('192.0.2.200', 443, { source: '203.0.113.100' }), // inside, no source ranges: any source
    tcp('192.0.2.200', 8010, { source: '203.0.113.10' }), // mixed: the inside IP from its source range
    tcp('192.0.2.200', 8010, { source: '203.0.113.30' }), // mixed: outside its source ranges
    tcp('192.0.2.10', 8010, { source: '203.0.113.10' }), // mixed: never to other destinations
    tcp('192.0.2.10', 443, { source: '203.0.113.100' }), // inside: never to other destinations
  ]);
  expect(r).toEqual([true, true, false, false, false]);
});
