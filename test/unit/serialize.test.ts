/**
 * The serializer writes rules the way nft lists them back: quoted counter names, no default limit
 * burst. Everything else is as the string-based renderer wrote it: these lines are the examples'
 * table as rendered before the typed IR, with only those two canonical changes.
 */
import path from 'node:path';
import { ruleText } from '../../src/nft/serialize';
import { EXAMPLES, compileObjects, cwnp, exampleFirewall, renderPaths } from '../helpers';
import { counterCarry, parseTableStats } from '../../src/nft/stats';
import { renderTransaction } from '../../src/nft/render';

function chain(text: string, name: string): string[] {
  const body = new RegExp(`\\n\\tchain ${name} \\{\\n([\\s\\S]*?)\\n\\t\\}`).exec(text)![1]!;
  return body.split('\n').map((l) => l.replace(/^\t\t/, ''));
}

test('examples/baseline: the base chains as before, in canonical form', async () => {
  const { text } = await renderPaths([path.join(EXAMPLES, 'baseline')]);
  expect(text.startsWith('add table inet firewall\ndelete table inet firewall\ntable inet firewall {\n\tset cluster_prefixes {\n')).toBe(true);
  const priv = '{ "vlan3981", "vrf3981" }';
  expect(chain(text, 'forward')).toEqual([
    'type filter hook forward priority 1; policy drop;',
    `oifname ${priv} ip saddr != @internal_prefixes counter name "external_in"`,
    `oifname ${priv} ip saddr @internal_prefixes counter name "internal_in"`,
    `oifname ${priv} ip6 saddr != @internal_prefixes_v6 counter name "external_in"`,
    `oifname ${priv} ip6 saddr @internal_prefixes_v6 counter name "internal_in"`,
    `iifname ${priv} ip daddr != @internal_prefixes counter name "external_out"`,
    `iifname ${priv} ip daddr @internal_prefixes counter name "internal_out"`,
    `iifname ${priv} ip6 daddr != @internal_prefixes_v6 counter name "external_out"`,
    `iifname ${priv} ip6 daddr @internal_prefixes_v6 counter name "internal_out"`,
    'iifname { "vlan104009", "vrf104009" } limit rate over 100 mbytes/second counter name "drop_ratelimit" drop comment "rate limit internet"',
    'ct state established,related counter accept comment "accept established connections"',
    'ct state invalid counter name "drop_invalid" drop comment "drop packets with invalid ct state"',
    'icmp type echo-request limit rate over 10/second burst 4 packets counter name "drop_pingflood" drop comment "drop ping floods"',
    'icmpv6 type echo-request limit rate over 10/second burst 4 packets counter name "drop_pingflood" drop comment "drop ping floods"',
    'icmp type { destination-unreachable, time-exceeded, parameter-problem } counter accept comment "accept icmp errors"',
    'icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } counter accept comment "accept icmpv6 errors"',
    `iifname ${priv} ip saddr @cluster_prefixes ip daddr vmap @egress_any_v4`,
    `iifname ${priv} ip saddr @cluster_prefixes ip daddr vmap @egress_ports_v4`,
    `oifname ${priv} ip saddr vmap @ingress_any_v4`,
    `oifname ${priv} ip saddr vmap @ingress_ports_v4`,
    `oifname ${priv} ip daddr vmap @services_v4`,
    `iifname ${priv} ip6 saddr @cluster_prefixes_v6 ip6 daddr vmap @egress_any_v6`,
    `iifname ${priv} ip6 saddr @cluster_prefixes_v6 ip6 daddr vmap @egress_ports_v6`,
    `oifname ${priv} ip6 saddr vmap @ingress_any_v6`,
    `oifname ${priv} ip6 saddr vmap @ingress_ports_v6`,
    `oifname ${priv} ip6 daddr vmap @services_v6`,
    `iifname ${priv} jump fqdn_egress`, // the example has a toFQDNs policy
    'counter name "drop_total" comment "count dropped packets"',
    'limit rate 10/second log prefix "nftables-firewall-dropped: "',
  ]);
  expect(chain(text, 'postrouting')).toEqual([
    'type nat hook postrouting priority -1; policy accept;',
    'oifname "vlan104009" ip saddr @cluster_prefixes counter masquerade random comment "masquerade for internet"',
    'oifname "vlan104009" ip6 saddr @cluster_prefixes_v6 counter masquerade random comment "masquerade for internet"',
  ]);
  // a policy chain, a shard lookup chain and map elements with their verdicts
  expect(text).toMatch(/\n\tchain cwnp-e-[0-9a-f]{8}-allow-to-https \{\n\t\tcounter accept comment "accept traffic for np allow-to-https"\n\t\}\n/);
  expect(text).toMatch(/\n\tchain egress_ports_v4-00000000-0 \{\n\t\tip daddr \. meta l4proto \. th dport vmap @egress_ports_v4-00000000-0\n\t\}\n/);
  expect(text).toMatch(/\n\t\t\t203\.0\.113\.0-203\.0\.113\.19 \. tcp \. 443 : goto cwnp-e-[0-9a-f]{8}-allow-to-https,\n/);
  expect(text).toMatch(/\n\t\t\t0\.0\.0\.0\/0 : jump egress_ports_v4-00000000-0\n/);
});

test('rule parts in nft order: matches, counter, statement, comment', () => {
  expect(
    ruleText({
      match: ['iifname "eth0"', { kind: 'set', expr: 'ip saddr', set: 'cluster_prefixes', negate: true }],
      counter: { kind: 'named', name: 'drop_total' },
      statement: { kind: 'drop' },
      comment: 'why',
    }),
  ).toBe('iifname "eth0" ip saddr != @cluster_prefixes counter name "drop_total" drop comment "why"');
  expect(ruleText({ match: [], statement: { kind: 'vmap', expr: 'ip daddr', map: 'm' } })).toBe('ip daddr vmap @m');
  expect(ruleText({ match: [], counter: { kind: 'anonymous' }, statement: { kind: 'goto', chain: 'c' } }, { packets: 3, bytes: 120 })).toBe(
    'counter packets 3 bytes 120 goto c',
  );
});

test('rule counters that share a comment in one chain keep their own values across a full apply', () => {
  const { compiled } = compileObjects([exampleFirewall(), cwnp('a', { egress: [{ to: [{ cidr: '203.0.113.0/24' }] }] })]);
  const post = compiled.table.chains.find((c) => c.name === 'postrouting')!;
  const masq = post.rules.filter((r) => r.comment === 'masquerade for internet');
  expect(masq).toHaveLength(2); // IPv4 and IPv6
  const stats = parseTableStats(
    JSON.stringify({
      nftables: [
        { rule: { family: 'inet', table: 'firewall', chain: 'postrouting', handle: 1, comment: 'masquerade for internet', expr: [{ counter: { packets: 653, bytes: 60000 } }, { masquerade: null }] } },
        { rule: { family: 'inet', table: 'firewall', chain: 'postrouting', handle: 2, comment: 'masquerade for internet', expr: [{ counter: { packets: 411, bytes: 40000 } }, { masquerade: null }] } },
      ],
    }),
  );
  const text = renderTransaction([compiled.table], { counters: counterCarry(stats) });
  const lines = text.split('\n').filter((l) => l.includes('masquerade for internet'));
  expect(lines[0]).toContain('counter packets 653 bytes 60000');
  expect(lines[1]).toContain('counter packets 411 bytes 40000');
});
