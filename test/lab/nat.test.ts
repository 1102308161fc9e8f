/**
 * Source NAT in a real kernel: spec.egressRules SNAT wins over masquerade, one IP or several
 * (hashed per node), IPv4 and IPv6.
 */
import { compileObjects, cwnp, exampleFirewall } from '../helpers';
import { Obj } from '../../src/model/fields';
import { Lab, tcp } from './lab';

let lab: Lab;

const allowHttps = cwnp('allow-to-https', {
  egress: [{ to: [{ cidr: '203.0.113.0/24' }, { cidr: '2001:db8:203::/64' }], ports: [{ port: 443 }] }],
});

function firewallWithSnat(ips: string[]): Obj {
  const fw = exampleFirewall();
  (fw.spec as Obj).egressRules = [{ networkID: 'internet', ips }];
  return fw;
}

beforeAll(async () => {
  lab = await Lab.create();
  // The SNAT addresses live on the firewall's interface, as the agent's address reconciliation would put them.
  for (const a of ['203.0.113.50/32', '203.0.113.51/32']) await lab.run('fw', ['ip', 'addr', 'add', a, 'dev', 'vlan104009']);
  await lab.run('fw', ['ip', '-6', 'addr', 'add', '2001:db8:203::50/128', 'dev', 'vlan104009', 'nodad']);
});

afterAll(async () => {
  await lab?.destroy();
});

test('egressRules SNAT replaces masquerade on that network', async () => {
  const { text } = compileObjects([firewallWithSnat(['203.0.113.50', '2001:db8:203::50']), allowHttps]);
  await lab.apply(text);
  const [v4, v6] = await lab.probe('worker', [tcp('203.0.113.10', 443), tcp('2001:db8:203::10', 443)]);
  expect(v4).toEqual({ ok: true, peer: '203.0.113.50' });
  expect(v6).toEqual({ ok: true, peer: '2001:db8:203::50' });
});

test('several SNAT IPs: each node consistently gets one of them', async () => {
  const { text } = compileObjects([firewallWithSnat(['203.0.113.50', '203.0.113.51']), allowHttps]);
  expect(text).toContain('jhash ip saddr mod 2');
  await lab.apply(text);
  const results = await lab.probe('worker', [tcp('203.0.113.10', 443), tcp('203.0.113.30', 443), tcp('203.0.113.10', 443)]);
  const peers = new Set(results.map((r) => r.peer));
  expect(results.every((r) => r.ok)).toBe(true);
  expect(peers.size).toBe(1);
  expect(['203.0.113.50', '203.0.113.51']).toContain([...peers][0]);
});

test('a rate limit caps what enters from that network; without it the same transfer completes', async () => {
  const bulk = { bytes: 4 * 1024 * 1024, durationMs: 1500 };
  const limited = exampleFirewall();
  (limited.spec as Obj).rateLimits = [{ networkID: 'internet', rate: 1 }];
  await lab.apply(compileObjects([limited, allowHttps]).text);
  const [slow] = await lab.probe('worker', [tcp('203.0.113.10', 443, { bulk })]);
  const limitedListing = (await lab.nft.listTable('inet', 'firewall'))!;
  expect(Number(/counter drop_ratelimit \{\s*packets (\d+)/.exec(limitedListing)![1])).toBeGreaterThan(0);
  const open = exampleFirewall();
  (open.spec as Obj).rateLimits = [];
  await lab.apply(compileObjects([open, allowHttps]).text);
  const [fast] = await lab.probe('worker', [tcp('203.0.113.10', 443, { bulk })]);
  expect(fast!.received).toBe(bulk.bytes);
  // 1 MiB/s for 1.5 s, plus the limiter's burst: far below the 4 MiB sent
  expect(slow!.ok).toBe(true);
  expect(slow!.received!).toBeLessThan(3 * 1024 * 1024);
});

test('without egressRules the nat network masquerades to the interface address', async () => {
  const { text } = compileObjects([exampleFirewall(), allowHttps]);
  await lab.apply(text);
  const [v4] = await lab.probe('worker', [tcp('203.0.113.10', 443)]);
  expect(v4).toEqual({ ok: true, peer: '203.0.113.1' });
});
