/**
 * Source NAT in a real kernel: spec.egressRules SNAT wins over masquerade, one IP or several
 * (hashed per node), IPv4 and IPv6; and the SNAT addresses are on the interface only because the
 * agent put them there (its address reconciliation), with traffic to prove it.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { compileObjects, cwnp, exampleFirewall } from '../helpers';
import { Obj } from '../../src/model/fields';
import { parseFirewall } from '../../src/model/firewall';
import { IpRoute } from '../../src/host/iproute';
import { AddressReconciler } from '../../src/host/reconcile';
import { jsonLogger } from '../../src/report/log';
import { AgentProcess } from '../kube/agent-process';
import { eventually } from '../kube/rest';
import { Lab, tcp } from './lab';

jest.setTimeout(120_000);

let lab: Lab;

const allowHttps = cwnp('allow-to-https', {
  egress: [{ to: [{ cidr: '203.0.113.0/24' }, { cidr: '2001:db8:203::/64' }], ports: [{ port: 443 }] }],
});

function firewallWithSnat(ips: string[]): Obj {
  const fw = exampleFirewall();
  (fw.spec as Obj).egressRules = [{ networkID: 'internet', ips }];
  return fw;
}

async function interfaceAddresses(): Promise<string[]> {
  const r = await lab.run('fw', ['ip', '-j', 'addr', 'show', 'dev', 'vlan104009']);
  const [link] = JSON.parse(r.stdout) as { addr_info: { local: string }[] }[];
  return link!.addr_info.map((a) => a.local);
}

beforeAll(async () => {
  lab = await Lab.create();
});

afterAll(async () => {
  await lab?.destroy();
});

describe('the agent puts the SNAT addresses on the interface', () => {
  let agent: AgentProcess | undefined;
  let dir: string;

  afterAll(async () => {
    await agent?.stop();
    await lab.run('fw', ['nft', 'delete table inet firewall']);
  });

  test('without the address on the interface the SNAT goes nowhere; with the agent it works, and follows egressRules', async () => {
    // the ruleset alone, no address: the far side's neighbour lookup for 203.0.113.60 is never answered
    await lab.apply(compileObjects([firewallWithSnat(['203.0.113.60']), allowHttps]).text);
    expect(await interfaceAddresses()).not.toContain('203.0.113.60');
    expect((await lab.probe('worker', [tcp('203.0.113.10', 443, { timeoutMs: 1500 })]))[0]!.ok).toBe(false);

    await lab.run('fw', ['ip', 'addr', 'add', '203.0.113.77/32', 'dev', 'vlan104009']); // someone else's
    dir = mkdtempSync(path.join(tmpdir(), 'fwa-nat-'));
    mkdirSync(path.join(dir, 'input'));
    writeFileSync(path.join(dir, 'input', 'firewall.yaml'), stringify(firewallWithSnat(['203.0.113.60', '2001:db8:203::60'])));
    writeFileSync(path.join(dir, 'input', 'policy.yaml'), stringify(allowHttps));
    agent = new AgentProcess(
      // an address the namespace does not have (as 127.0.0.1 inside a VRF): reporting fails, enforcement goes on
      ['--source-dir', path.join(dir, 'input'), '--state-dir', path.join(dir, 'state'), '--metrics-address', '192.0.2.250:9638', '--published-metrics-address', ''],
      [],
      ['ip', 'netns', 'exec', lab.ns.fw],
    );
    await agent.waitForLog(/^connected/);
    expect(agent.logs.some((l) => l.msg.startsWith('cannot serve /metrics'))).toBe(true);
    await eventually('the agent added the SNAT addresses', async () => ((await interfaceAddresses()).includes('2001:db8:203::60') ? true : undefined), 15_000, 100);
    // the far side marked 203.0.113.60 unreachable during the first try: its next lookup comes after
    // a retransmit interval, so this connect may take a second
    const [v4, v6] = await lab.probe('worker', [tcp('203.0.113.10', 443, { timeoutMs: 4000 }), tcp('2001:db8:203::10', 443, { timeoutMs: 4000 })]);
    expect(v4).toEqual({ ok: true, peer: '203.0.113.60' });
    expect(v6).toEqual({ ok: true, peer: '2001:db8:203::60' });

    // egressRules change: ours follow, someone else's and the network's own address stay
    writeFileSync(path.join(dir, 'input', 'firewall.yaml'), stringify(firewallWithSnat(['203.0.113.61'])));
    await eventually('the old SNAT addresses removed', async () => {
      const a = await interfaceAddresses();
      return a.includes('203.0.113.61') && !a.includes('203.0.113.60') && !a.includes('2001:db8:203::60') ? a : undefined;
    }, 15_000, 100);
    const now = await interfaceAddresses();
    expect(now).toContain('203.0.113.77');
    expect(now).toContain('203.0.113.1');
    const [moved] = await lab.probe('worker', [tcp('203.0.113.10', 443)]);
    expect(moved).toEqual({ ok: true, peer: '203.0.113.61' });
  });
});

describe('SNAT shapes (addresses placed by the agent\'s reconciliation)', () => {
  beforeAll(async () => {
    const fw = parseFirewall(firewallWithSnat(['203.0.113.50', '203.0.113.51', '2001:db8:203::50']));
    if (!fw.ok) throw new Error(JSON.stringify(fw.problems));
    const r = await new AddressReconciler({ ip: new IpRoute(['ip', 'netns', 'exec', lab.ns.fw]), log: jsonLogger(() => undefined, 'error') }).reconcile(fw.firewall);
    expect(r.errors).toEqual([]);
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
});
