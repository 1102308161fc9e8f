import { Obj } from '../../src/model/fields';
import { compileObjects, cwnp, exampleFirewall, lbService } from '../helpers';

function fwWith(patch: Obj): Obj {
  const fw = exampleFirewall();
  fw.spec = { ...(fw.spec as Obj), ...patch };
  return fw;
}

/** The elements of a map, or of all the address shards of a sharded map, in order. */
function mapElements(text: string, name: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(new RegExp(`map (${name}(?:-[0-9a-f]+-\\d+)?) \\{[^}]*?elements = \\{\\n([^}]*)\\n\\t\\t\\}`, 'gs'))) {
    if (m[1] === name && /: jump /.test(m[2]!)) continue; // the dispatch map of a sharded one
    out.push(...m[2]!.split('\n').map((l) => l.trim().replace(/,$/, '')));
  }
  return out;
}

function forwardChain(text: string): string {
  return /chain forward \{([\s\S]*?)\n\t\}/.exec(text)![1]!;
}

describe('mode', () => {
  test('inferred: baseline, restricted with a partition DNS server, forbidden with allowedNetworks', () => {
    expect(compileObjects([exampleFirewall()]).compiled.mode).toBe('baseline');
    expect(compileObjects([fwWith({ dnsServerAddress: '198.51.100.53' })]).compiled.mode).toBe('restricted');
    expect(compileObjects([fwWith({ allowedNetworks: { ingress: ['203.0.113.0/28'] } })]).compiled.mode).toBe('forbidden');
  });

  test('an explicit mode wins', () => {
    const r = compileObjects([exampleFirewall(), cwnp('any', { egress: [{ ports: [{ port: 443 }] }] })], { mode: 'forbidden' });
    expect(r.compiled.mode).toBe('forbidden');
    expect(r.compiled.reports[0]!.outcome).toBe('ignored');
    // the node network is always allowed, even with no allowedNetworks at all
    const node = compileObjects([exampleFirewall(), cwnp('n', { ingress: [{ from: [{ cidr: '192.0.2.0/26' }] }] })], { mode: 'forbidden' });
    expect(node.compiled.reports[0]!.outcome).toBe('deployed');
  });
});

describe('policies', () => {
  test('only namespace firewall takes effect', () => {
    const r = compileObjects([exampleFirewall(), cwnp('elsewhere', { egress: [{}] }, 'default')]);
    expect(r.compiled.reports[0]).toMatchObject({ outcome: 'ignored', reason: 'only policies in namespace firewall take effect' });
    expect(r.text).not.toContain('elsewhere');
  });

  test('a policy given twice is rejected the second time', () => {
    const p = cwnp('twice', { egress: [{ to: [{ cidr: '203.0.113.0/24' }] }] });
    const r = compileObjects([exampleFirewall(), p, p]);
    expect(r.compiled.reports.map((x) => x.outcome)).toEqual(['deployed', 'rejected']);
  });

  test('one broken policy does not affect the others', () => {
    const good = cwnp('good', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] });
    const bad = cwnp('bad', { egress: [{ to: [{ cidr: 'nope' }] }] });
    const alone = compileObjects([exampleFirewall(), good]).text;
    expect(compileObjects([exampleFirewall(), bad, good]).text).toBe(alone);
  });

  test('overlapping policies become disjoint elements; the first name owns the overlap', () => {
    const r = compileObjects([
      exampleFirewall(),
      cwnp('b-wide', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] }),
      cwnp('a-narrow', { egress: [{ to: [{ cidr: '203.0.113.64/26' }], ports: [{ port: 443 }, { port: 80 }] }] }),
    ]);
    const el = mapElements(r.text, 'egress_ports_v4');
    expect(el).toEqual([
      expect.stringMatching(/^203\.0\.113\.64\/26 \. tcp \. 80 : goto cwnp-e-[0-9a-f]{8}-a-narrow$/),
      expect.stringMatching(/^203\.0\.113\.0\/26 \. tcp \. 443 : goto cwnp-e-[0-9a-f]{8}-b-wide$/),
      expect.stringMatching(/^203\.0\.113\.64\/26 \. tcp \. 443 : goto cwnp-e-[0-9a-f]{8}-a-narrow$/),
      expect.stringMatching(/^203\.0\.113\.128\/25 \. tcp \. 443 : goto cwnp-e-[0-9a-f]{8}-b-wide$/),
    ]);
  });

  test('the packet path does not grow with the number of policies', () => {
    const one = compileObjects([exampleFirewall(), cwnp('p0', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] })]);
    const many = compileObjects([
      exampleFirewall(),
      ...Array.from({ length: 500 }, (_, i) =>
        cwnp(`p${i}`, { egress: [{ to: [{ cidr: `100.${64 + (i >> 8)}.${i & 255}.0/24` }], ports: [{ port: 1000 + i }] }] }),
      ),
    ]);
    expect(forwardChain(many.text)).toBe(forwardChain(one.text));
    expect(mapElements(many.text, 'egress_ports_v4')).toHaveLength(500);
    expect(many.text).not.toContain('auto-merge');
  });

  test('ingress and egress get their own chains and upstream-compatible comments', () => {
    const r = compileObjects([
      exampleFirewall(),
      cwnp('both', { egress: [{ to: [{ cidr: '203.0.113.0/24' }] }], ingress: [{ from: [{ cidr: '203.0.113.0/24' }] }] }),
    ]);
    expect(r.text).toContain('counter accept comment "accept traffic for np both"');
    expect(r.text).toContain('counter accept comment "accept traffic for k8s network policy both"');
    expect(mapElements(r.text, 'egress_any_v4')).toEqual([expect.stringMatching(/^203\.0\.113\.0\/24 : goto cwnp-e-/)]);
    expect(mapElements(r.text, 'ingress_any_v4')).toEqual([expect.stringMatching(/^203\.0\.113\.0\/24 : goto cwnp-i-/)]);
    expect(mapElements(r.text, 'egress_any_v6')).toEqual([]);
  });

  test('no destination covers both families', () => {
    const r = compileObjects([exampleFirewall(), cwnp('ntp', { egress: [{ ports: [{ protocol: 'UDP', port: 123 }] }] })]);
    expect(mapElements(r.text, 'egress_ports_v4')).toEqual([expect.stringMatching(/^0\.0\.0\.0\/0 \. udp \. 123 : goto/)]);
    expect(mapElements(r.text, 'egress_ports_v6')).toEqual([expect.stringMatching(/^::\/0 \. udp \. 123 : goto/)]);
  });

  test('logAcceptedConnections logs, rate-limited, before the accept', () => {
    const r = compileObjects([fwWith({ logAcceptedConnections: true }), cwnp('p', { egress: [{ to: [{ cidr: '203.0.113.0/24' }] }] })]);
    // nft's default burst (5 packets) is left out, as nft lists the rule
    expect(r.text).toMatch(/limit rate 10\/second log prefix "nftables-firewall-accepted: "\n\t\tcounter accept comment "accept traffic for np p"/);
  });
});

describe('services', () => {
  test('source ranges of the other family never widen a rule', () => {
    const r = compileObjects([
      exampleFirewall(),
      lbService('dual', { loadBalancerIP: '2001:db8:1:ff::200', loadBalancerSourceRanges: ['203.0.113.0/28'], ports: [{ port: 443 }] }, 'default', {
        loadBalancer: { ingress: [{ ip: '192.0.2.200' }] },
      }),
    ]);
    expect(mapElements(r.text, 'services_v4')).toEqual([expect.stringMatching(/^192\.0\.2\.200 \. tcp \. 443 \. 203\.0\.113\.0\/28 : goto svc-/)]);
    expect(mapElements(r.text, 'services_v6')).toEqual([]);
  });

  test('a Service without an IP gets no rule; other types are not reported', () => {
    const r = compileObjects([
      exampleFirewall(),
      lbService('pending', { ports: [{ port: 443 }] }),
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'np', namespace: 'default' }, spec: { type: 'NodePort', ports: [{ port: 80 }] } },
    ]);
    expect(r.compiled.reports.map((x) => [x.ref.name, x.outcome, x.warnings])).toEqual([['pending', 'deployed', ['has no load balancer IP yet; no rule']]]);
    expect(mapElements(r.text, 'services_v4')).toEqual([]);
  });

  test('bad source ranges reject the Service instead of opening it to everyone', () => {
    const r = compileObjects([exampleFirewall(), lbService('s', { loadBalancerIP: '192.0.2.200', loadBalancerSourceRanges: ['any'], ports: [{ port: 443 }] })]);
    expect(r.compiled.reports[0]).toMatchObject({ outcome: 'rejected' });
    expect(r.compiled.reports[0]!.reason).toContain('spec.loadBalancerSourceRanges[0] "any" is not a CIDR');
    expect(mapElements(r.text, 'services_v4')).toEqual([]);
  });

  test('the source-ranges annotation applies when the field is empty', () => {
    const svc = lbService('a', { loadBalancerIP: '192.0.2.200', ports: [{ port: 443 }] });
    (svc.metadata as Obj).annotations = { 'service.beta.kubernetes.io/load-balancer-source-ranges': '203.0.113.0/28, 203.0.113.64/28' };
    const el = mapElements(compileObjects([exampleFirewall(), svc]).text, 'services_v4');
    expect(el.map((e) => e.split(' : ')[0])).toEqual(['192.0.2.200 . tcp . 443 . 203.0.113.0/28', '192.0.2.200 . tcp . 443 . 203.0.113.64/28']);
  });
});

describe('firewall settings', () => {
  test('rate limits, underlay and NAT', () => {
    const fw = fwWith({ egressRules: [{ networkID: 'internet', ips: ['203.0.113.50'] }] });
    ((fw.status as Obj).firewallNetworks as Obj[]).push({ networkID: 'underlay', networkType: 'underlay', vrf: 9, asn: 1, nat: false, prefixes: ['192.0.2.240/28'] });
    const t = compileObjects([fw]).text;
    expect(t).toContain('iifname { "vlan104009", "vrf104009" } limit rate over 100 mbytes/second counter name "drop_ratelimit" drop');
    expect(t).toContain('oifname { "vlan9", "vrf9" } counter drop comment "never forward to the underlay underlay"');
    expect(t).toContain('oifname "vlan104009" ip saddr @cluster_prefixes counter snat ip to 203.0.113.50 comment "snat for internet"');
    expect(t).toContain('oifname "vlan104009" ip6 saddr @cluster_prefixes_v6 counter masquerade random');
    expect(t).not.toMatch(/oifname "vlan104009" ip saddr @cluster_prefixes counter masquerade/);
    expect(t).not.toContain('vlan104010" ip saddr @cluster_prefixes counter masquerade');
  });

  test('disconnected needs no Firewall and forwards only established flows', () => {
    const r = compileObjects([], { state: 'disconnected' });
    expect(forwardChain(r.text).trim().split('\n').map((l) => l.trim())).toEqual([
      'type filter hook forward priority 1; policy drop;',
      'ct state established,related counter accept comment "accept established connections"',
      'counter name "drop_total" comment "count dropped packets"',
      'limit rate 10/second log prefix "nftables-firewall-dropped: "',
    ]);
  });
});

describe('accounting', () => {
  test('each accept chain is mapped to its object and direction, with names never cut', () => {
    // 185 bytes (a DNS subdomain of 63-byte labels): longer than the 128 bytes nft keeps of a comment
    const long = ['a', 'b', 'c'].map((l) => `p${l.repeat(60)}`).join('.');
    const r = compileObjects([
      exampleFirewall(),
      cwnp(long, { egress: [{ to: [{ cidr: '203.0.113.0/24' }] }], ingress: [{ from: [{ cidr: '203.0.113.0/24' }] }] }),
      cwnp('only-out', { egress: [{ to: [{ cidr: '198.51.100.0/24' }], ports: [{ port: 443 }] }] }),
      lbService('web', { loadBalancerIP: '192.0.2.200', ports: [{ port: 443 }] }),
    ]);
    const accounts = [...r.compiled.accounting.entries()].map(([chain, a]) => ({ chain, ...a }));
    expect(accounts).toEqual([
      { chain: expect.stringMatching(/^cwnp-e-[0-9a-f]{8}-only-out$/), kind: 'ClusterwideNetworkPolicy', ref: { namespace: 'firewall', name: 'only-out' }, direction: 'egress', policy: 'only-out' },
      { chain: expect.stringMatching(/^cwnp-e-[0-9a-f]{8}-pa+\.pb+\.pc+$/), kind: 'ClusterwideNetworkPolicy', ref: { namespace: 'firewall', name: long }, direction: 'egress', policy: long },
      { chain: expect.stringMatching(/^cwnp-i-[0-9a-f]{8}-pa+\.pb+\.pc+$/), kind: 'ClusterwideNetworkPolicy', ref: { namespace: 'firewall', name: long }, direction: 'ingress', policy: long },
      { chain: expect.stringMatching(/^svc-[0-9a-f]{8}-default\/web$/), kind: 'Service', ref: { namespace: 'default', name: 'web' }, direction: 'service', policy: 'default/web' },
    ]);
    // every accounted chain is in the table and ends with the counted accept; the comment is cut
    for (const [chain, a] of r.compiled.accounting) {
      const c = r.compiled.table.chains.find((x) => x.name === chain)!;
      expect(c.rules.at(-1)).toMatchObject({ counter: { kind: 'anonymous' }, statement: { kind: 'accept' } });
      if (a.policy === long) expect(c.rules.at(-1)!.comment!.length).toBe(128);
    }
    expect(compileObjects([], { state: 'disconnected' }).compiled.accounting.size).toBe(0);
  });
});
