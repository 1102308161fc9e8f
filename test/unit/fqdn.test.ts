/**
 * FQDN policies, pure parts: which names a selector means, what the compiler makes of toFQDNs
 * rules, and the record of opened addresses (plan before the answer, commit after the kernel took
 * it, timeouts, caps, forbidden mode, persistence).
 */
import { FqdnTarget } from '../../src/compile/fqdn';
import { ConfigError, loadConfig, parseConfig, parseUpstream } from '../../src/daemon/config';
import { resolvConfUpstream } from '../../src/daemon/dns';
import { FqdnState } from '../../src/dns/fqdn-state';
import { canonicalName, selectorMatcher } from '../../src/dns/selector';
import { parseAddress } from '../../src/model/address';
import { FakeClock } from '../../src/sync/clock';
import { compileObjects, cwnp, exampleFirewall } from '../helpers';

function matches(kind: 'matchName' | 'matchPattern', value: string, name: string): boolean {
  return selectorMatcher({ kind, value })(canonicalName(name));
}

describe('selectors', () => {
  test('matchName: exact, case-insensitive, trailing dot optional', () => {
    expect(matches('matchName', 'example.com.', 'Example.COM')).toBe(true);
    expect(matches('matchName', 'example.com.', 'example.com.')).toBe(true);
    expect(matches('matchName', 'example.com.', 'www.example.com')).toBe(false);
    expect(matches('matchName', 'example.com.', 'example.co')).toBe(false);
  });

  test('matchPattern: * stays within one label', () => {
    expect(matches('matchPattern', '*.example.com.', 'a.example.com')).toBe(true);
    expect(matches('matchPattern', '*.example.com.', 'A.Example.Com.')).toBe(true);
    expect(matches('matchPattern', '*.example.com.', 'a.b.example.com')).toBe(false);
    expect(matches('matchPattern', '*.example.com.', 'example.com')).toBe(false);
    expect(matches('matchPattern', 'api-*.example.com.', 'api-7.example.com')).toBe(true);
    expect(matches('matchPattern', 'api-*.example.com.', 'web.example.com')).toBe(false);
    expect(matches('matchPattern', '*.*.example.com.', 'a.b.example.com')).toBe(true);
    expect(matches('matchPattern', '*.', 'anything.at.all')).toBe(true);
    expect(matches('matchPattern', '*.xn--bcher-kva.example.', 'www.xn--bcher-kva.example')).toBe(true);
  });
});

const FQDN_POLICY = cwnp('allow-github', {
  egress: [
    { toFQDNs: [{ matchPattern: '*.github.com' }, { matchName: 'GitHub.com' }], ports: [{ protocol: 'TCP', port: 443 }] },
    { toFQDNs: [{ matchName: 'ntp.example' }], ports: [{ protocol: 'UDP', port: 123 }] },
  ],
});
const PROXY = { addresses: [parseAddress('192.0.2.1'), parseAddress('2001:db8:1::1')].map((r) => (r.ok ? r.value : undefined)!), port: 53 };

describe('compile', () => {
  test('toFQDNs rules: dynamic sets per rule and family, a chain into the policy accept chain, no "not enforced" note', () => {
    const { compiled, text } = compileObjects([exampleFirewall(), FQDN_POLICY]);
    expect(compiled.fqdn).toHaveLength(2);
    expect(compiled.reports[0]).toMatchObject({ outcome: 'deployed', unenforced: [] });
    const dynamic = compiled.table.sets.filter((s) => s.flags.includes('timeout'));
    expect(dynamic.map((s) => s.type).sort()).toEqual(['ipv4_addr', 'ipv4_addr', 'ipv6_addr', 'ipv6_addr']);
    expect(text).toMatch(/ip daddr @fqdn4-[0-9a-f]{8}-allow-github tcp dport 443 jump cwnp-e-/);
    expect(text).toMatch(/ip6 daddr @fqdn6-[0-9a-f]{8}-allow-github udp dport 123 jump cwnp-e-/);
    expect(text).toContain('iifname { "vlan3981", "vrf3981" } jump fqdn_egress');
    expect(text).toContain('comment "accept traffic for np allow-github"');
    // no proxy address given: no interception
    expect(compiled.dnsIntercepted).toBe(false);
    expect(text).not.toContain('dnat');
  });

  test('interception only with FQDN policies and a listening proxy; both families', () => {
    const withProxy = compileObjects([exampleFirewall(), FQDN_POLICY], { dnsProxy: PROXY });
    expect(withProxy.compiled.dnsIntercepted).toBe(true);
    expect(withProxy.text).toContain('type nat hook prerouting priority -100; policy accept;');
    expect(withProxy.text).toContain('meta l4proto { tcp, udp } th dport 53 counter dnat ip to 192.0.2.1:53');
    expect(withProxy.text).toContain('dnat ip6 to [2001:db8:1::1]:53');
    const none = compileObjects([exampleFirewall(), cwnp('plain', { egress: [{ to: [{ cidr: '203.0.113.0/24' }] }] })], { dnsProxy: PROXY });
    expect(none.compiled.dnsIntercepted).toBe(false);
    expect(none.compiled.fqdn).toEqual([]);
    expect(none.text).not.toMatch(/fqdn|dnat|prerouting/);
  });

  test('an empty toFQDNs opens nothing and says so', () => {
    const { compiled } = compileObjects([exampleFirewall(), cwnp('empty', { egress: [{ toFQDNs: [], ports: [{ port: 443 }] }] })]);
    expect(compiled.fqdn).toEqual([]);
    expect(compiled.reports[0]!.unenforced.join()).toContain('toFQDNs is empty');
  });

  test('forbidden mode: the targets carry allowedNetworks.egress (plus the node network)', () => {
    const { compiled } = compileObjects([exampleFirewall('forbidden'), FQDN_POLICY]);
    expect(compiled.mode).toBe('forbidden');
    expect(compiled.reports[0]!.outcome).toBe('deployed');
    expect(compiled.fqdn[0]!.allowed?.[4].length).toBeGreaterThan(0);
  });
});

function targets(mode: 'baseline' | 'forbidden' = 'baseline'): readonly FqdnTarget[] {
  return compileObjects([exampleFirewall(mode), FQDN_POLICY]).compiled.fqdn;
}

const A = (address: string, ttl = 300) => ({ address, family: (address.includes(':') ? 6 : 4) as 4 | 6, ttl });

describe('FqdnState', () => {
  test('a matching answer plans writes to the rule sets of its family; commit records them', () => {
    const clock = new FakeClock(1_700_000_000_000);
    const st = new FqdnState(clock);
    const t = targets();
    st.setTargets(t);
    const plan = st.plan(['api.github.com'], [A('203.0.113.10'), A('2001:db8:203::10')]);
    expect(plan.matched).toBe(1);
    expect(plan.writes).toEqual([
      { set: t[0]!.sets[4], address: '203.0.113.10', timeoutS: 375 },
      { set: t[0]!.sets[6], address: '2001:db8:203::10', timeoutS: 375 },
    ]);
    st.commit(plan);
    expect(st.elements(t[0]!.sets[4])).toEqual([{ key: ['203.0.113.10'], timeout: 375 }]);
    expect(st.plan(['nothing.example'], [A('203.0.113.20')]).writes).toEqual([]);
    expect(st.plan(['a.b.github.com'], [A('203.0.113.20')]).writes).toEqual([]);
  });

  test('a CNAME chain matches by any of its names', () => {
    const st = new FqdnState(new FakeClock());
    st.setTargets(targets());
    expect(st.plan(['www.corp.example', 'edge.github.com', 'cdn.example.net'], [A('203.0.113.30')]).writes).toHaveLength(1);
  });

  test('TTL clamps; no write while the element outlives the answer; a refresh when it would not', async () => {
    const clock = new FakeClock(1_000_000);
    const st = new FqdnState(clock, { minTtlS: 60, maxTtlS: 3600, maxPerSet: 100, maxNames: 100 });
    st.setTargets(targets());
    const first = st.plan(['github.com'], [A('203.0.113.10', 5)]);
    expect(first.writes[0]!.timeoutS).toBe(60); // 5 s clamped up
    st.commit(first);
    await clock.advance(30_000);
    expect(st.plan(['github.com'], [A('203.0.113.10', 5)]).writes).toEqual([]); // 30 s left >= 5 s TTL
    expect(st.plan(['github.com'], [A('203.0.113.10', 45)]).writes).toHaveLength(1); // 30 s left < 45 s
    expect(st.plan(['github.com'], [A('203.0.113.11', 999_999)]).writes[0]!.timeoutS).toBe(3600);
    await clock.advance(31_000);
    expect(st.elements(targets()[0]!.sets[4])).toEqual([]); // expired
  });

  test('forbidden mode: addresses outside allowedNetworks.egress are refused, never written', () => {
    const st = new FqdnState(new FakeClock());
    st.setTargets(targets('forbidden'));
    // the forbidden example allows 198.51.100.0/24 (partition services) but not the internet
    const plan = st.plan(['github.com'], [A('203.0.113.10'), A('198.51.100.10')]);
    expect(plan.forbidden.map((f) => f.address)).toEqual(['203.0.113.10']);
    expect(plan.writes.map((w) => w.address)).toEqual(['198.51.100.10']);
  });

  test('the per-set cap removes the addresses expiring first', async () => {
    const clock = new FakeClock();
    const st = new FqdnState(clock, { minTtlS: 60, maxTtlS: 3600, maxPerSet: 2, maxNames: 100 });
    st.setTargets(targets());
    st.commit(st.plan(['github.com'], [A('203.0.113.1', 100)]));
    await clock.advance(5000);
    st.commit(st.plan(['github.com'], [A('203.0.113.2', 1000)]));
    const plan = st.plan(['github.com'], [A('203.0.113.3', 500)]);
    expect(plan.evicted).toBe(1);
    expect(plan.writes).toContainEqual({ set: targets()[0]!.sets[4], address: '203.0.113.1' });
    st.commit(plan);
    expect(st.elements(targets()[0]!.sets[4]).map((e) => e.key[0]).sort()).toEqual(['203.0.113.2', '203.0.113.3']);
    // an answer larger than the cap alone keeps its first addresses
    const big = st.plan(['github.com'], ['203.0.113.4', '203.0.113.5', '203.0.113.6'].map((a) => A(a)));
    expect(big.writes.filter((w) => w.timeoutS !== undefined).map((w) => w.address)).toEqual(['203.0.113.4', '203.0.113.5']);
  });

  test('sets of removed policies are forgotten; status has the upstream shape; names are bounded', () => {
    const clock = new FakeClock(1_700_000_000_000);
    const st = new FqdnState(clock, { minTtlS: 60, maxTtlS: 3600, maxPerSet: 100, maxNames: 2 });
    const t = targets();
    st.setTargets(t);
    for (const n of ['a.github.com', 'b.github.com', 'c.github.com']) st.commit(st.plan([n], [A('203.0.113.9')]));
    expect(st.nameCount).toBe(2); // a.github.com forgotten first
    const status = st.status(t[0]!.policy);
    expect(Object.keys(status).sort()).toEqual(['*.github.com', 'github.com', 'ntp.example']); // every selector, as upstream
    expect(status['ntp.example']).toEqual([]);
    expect(status['*.github.com']!.map((e) => e.fqdn)).toEqual(['b.github.com.', 'c.github.com.']);
    expect(status['*.github.com']![0]).toEqual({
      fqdn: 'b.github.com.',
      setName: t[0]!.sets[4],
      version: 'ip',
      ips: ['203.0.113.9'],
      ipExpirationTimes: { '203.0.113.9': new Date(1_700_000_000_000 + 375_000).toISOString() },
    });
    st.setTargets([]);
    expect(st.addressCount).toBe(0);
    expect(st.status(t[0]!.policy)).toEqual({});
  });

  test('persistence: a round trip keeps live entries; malformed or expired ones are dropped', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const st = new FqdnState(clock);
    const t = targets();
    st.setTargets(t);
    st.commit(st.plan(['github.com'], [A('203.0.113.10', 100), A('2001:db8:203::10', 1000)]));
    const saved = JSON.parse(JSON.stringify(st.toJSON())) as { sets: Record<string, unknown[]> };
    saved.sets['fqdn4-deadbeef-x'] = [['not-an-ip', 2e12], ['203.0.113.1', 1]];
    saved.sets['bogus; flush ruleset'] = [['203.0.113.1', 2e12]];
    saved.sets[t[0]!.sets[4]]!.push(['2001:db8::1', 2e12]); // wrong family for the set
    const again = new FqdnState(clock);
    expect(again.restore(saved)).toBe(2);
    expect(again.restore({ version: 99 })).toBe(0);
    expect(again.restore('garbage')).toBe(0);
    await clock.advance(200_000);
    expect(again.elements(t[0]!.sets[4])).toEqual([]); // 125 s had passed
    expect(again.elements(t[0]!.sets[6])).toEqual([{ key: ['2001:db8:203::10'], timeout: 1050 }]);
  });
});

describe('upstream and settings', () => {
  test('the first nameserver of resolv.conf, port 53', () => {
    expect(resolvConfUpstream('# comment\nsearch example\nnameserver 198.51.100.53\nnameserver 192.0.2.2\n')).toEqual({ host: '198.51.100.53', port: 53 });
    expect(resolvConfUpstream('nameserver fe80::1%eth0\n')).toEqual({ host: 'fe80::1', port: 53 });
    expect(resolvConfUpstream('search example\n')).toBeUndefined();
  });

  test('--dns-upstream is an address (with an optional port), never a name; TTL bounds are checked', () => {
    expect(parseUpstream('198.51.100.53')).toEqual({ host: '198.51.100.53', port: 53 });
    expect(parseUpstream('198.51.100.53:5353')).toEqual({ host: '198.51.100.53', port: 5353 });
    expect(parseUpstream('[2001:db8::53]:5353')).toEqual({ host: '2001:db8::53', port: 5353 });
    expect(parseUpstream('dns.example:53')).toBeUndefined();
    expect(loadConfig(undefined, {})).toMatchObject({ dnsPort: 53, fqdnMinTtl: 60, fqdnMaxTtl: 86_400, fqdnMaxAddresses: 4096 });
    expect(() => loadConfig(undefined, { dnsUpstream: 'resolver.example' })).toThrow(ConfigError);
    expect(() => loadConfig(undefined, { fqdnMinTtl: 600, fqdnMaxTtl: 60 })).toThrow('fqdnMinTtl 600 is above fqdnMaxTtl 60');
    expect(() => loadConfig(undefined, { dnsPort: Number('x') })).toThrow('--dns-port NaN: must be an integer from 1 to 65535');
    expect(() => parseConfig({ fqdnMaxAddresses: 0 }, 'c.yaml')).toThrow('c.yaml: fqdnMaxAddresses must be an integer from 1 to 1000000');
  });
});
