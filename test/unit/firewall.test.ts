import { formatAddress, formatPrefix } from '../../src/model/address';
import { Obj, formatProblem } from '../../src/model/fields';
import { interfaceNames, parseFirewall, parseGoDuration } from '../../src/model/firewall';
import { exampleFirewall } from '../helpers';

function withSpec(patch: Obj): Obj {
  const fw = exampleFirewall();
  fw.spec = { ...(fw.spec as Obj), ...patch };
  return fw;
}

function problems(fw: Obj): string[] {
  const r = parseFirewall(fw);
  return r.ok ? [] : r.problems.map(formatProblem);
}

test('the example Firewall parses into typed networks and settings', () => {
  const r = parseFirewall(exampleFirewall());
  expect(r.ok).toBe(true);
  if (!r.ok) return;
  const fw = r.firewall;
  expect(fw.nodeNetwork.id).toBe('node-network');
  expect(interfaceNames(fw.nodeNetwork)).toEqual(['vlan3981', 'vrf3981']);
  expect(fw.nodeNetwork.prefixes.map(formatPrefix)).toEqual(['192.0.2.0/25', '2001:db8:1::/64']);
  expect(fw.networks.find((n) => n.id === 'internet')!.role).toBe('external');
  expect(fw.rateLimits.map((l) => [l.network.id, l.mibPerSecond])).toEqual([['internet', 100]]);
  expect(fw.intervalMs).toBe(10_000);
  expect(fw.allowedNetworks).toBeUndefined();
});

test('egressRules IPs must lie in an external network of the firewall', () => {
  expect(problems(withSpec({ egressRules: [{ networkID: 'internet', ips: ['198.51.100.9'] }] }))).toEqual([
    'spec.egressRules[0].ips[0] 198.51.100.9 is not inside the prefixes of network "internet"',
  ]);
  expect(problems(withSpec({ egressRules: [{ networkID: 'node-network', ips: ['192.0.2.5'] }] }))).toEqual([
    'spec.egressRules[0].networkID "node-network" is not an external network',
  ]);
  expect(problems(withSpec({ egressRules: [{ networkID: 'nope', ips: ['192.0.2.5'] }] }))).toEqual([
    'spec.egressRules[0].networkID "nope" is not one of the firewall\'s networks',
  ]);
  const ok = parseFirewall(withSpec({ egressRules: [{ networkID: 'internet', ips: ['203.0.113.50', '2001:db8:203::50'] }] }));
  expect(ok.ok && ok.firewall.egressRules[0]!.ips.map(formatAddress)).toEqual(['203.0.113.50', '2001:db8:203::50']);
});

test('rate limits on unknown networks are skipped with a warning', () => {
  const r = parseFirewall(withSpec({ rateLimits: [{ networkID: 'gone', rate: 5 }] }));
  expect(r.ok && r.firewall.rateLimits).toEqual([]);
  expect(r.ok && r.firewall.warnings.map(formatProblem).join()).toContain('network "gone" is unknown');
});

test('bad settings are reported with their paths', () => {
  expect(
    problems(withSpec({ interval: 'soon', allowedNetworks: { egress: ['x'] }, dnsServerAddress: 'dns', dnsPort: 0, internalPrefixes: ['1.2.3.4'] })),
  ).toEqual([
    'spec.allowedNetworks.egress[0] "x" is not a CIDR (address/length)',
    'spec.internalPrefixes[0] "1.2.3.4" is not a CIDR (address/length)',
    'spec.interval "soon" is not a duration like 10s',
    'spec.dnsServerAddress "dns" is not an IP address',
    'spec.dnsPort 0 is outside 1..65535',
  ]);
});

test('exactly one node network is required', () => {
  const fw = exampleFirewall();
  const nets = (fw.status as Obj).firewallNetworks as Obj[];
  nets.push({ ...nets[0], networkID: 'second', vrf: 5 });
  expect(problems(fw)).toEqual(['status.firewallNetworks has 2 private primary networks; exactly one is the node network']);
  (fw.status as Obj).firewallNetworks = [];
  expect(problems(fw)).toEqual(['status.firewallNetworks has no private primary network (the node network)']);
});

test('Go durations', () => {
  expect(parseGoDuration('10s')).toBe(10_000);
  expect(parseGoDuration('1m30s')).toBe(90_000);
  expect(parseGoDuration('250ms')).toBe(250);
  expect(parseGoDuration('10')).toBeUndefined();
});

test('spec.interval is clamped to 1s..1h with a warning (Node timers overflow past 24.8 days)', () => {
  for (const [interval, ms, warning] of [
    ['720h', 3_600_000, 'spec.interval "720h" is above the maximum 1h; using 1h'],
    ['1ns', 1000, 'spec.interval "1ns" is below the minimum 1s; using 1s'],
    ['1m30s', 90_000, undefined],
  ] as const) {
    const r = parseFirewall(withSpec({ interval }));
    expect(r.ok && r.firewall.intervalMs).toBe(ms);
    expect(r.ok && r.firewall.warnings.map(formatProblem).find((w) => w.startsWith('spec.interval'))).toBe(warning);
  }
});
