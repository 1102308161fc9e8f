/**
 * FQDN policies end to end in the lab, without API servers (`run --source-dir`): the agent runs in
 * the firewall namespace, a real dnsmasq in the partition-services namespace is the Firewall's
 * dnsServerAddress, and the worker resolves (through the interception) and connects at once.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { Dnsmasq } from '../dns/dnsmasq';
import { EXAMPLES, cwnp } from '../helpers';
import { AgentProcess } from '../kube/agent-process';
import { eventually } from '../kube/rest';
import { Host, Lab, ResolveTry, Resolved, tcp } from './lab';

jest.setTimeout(180_000);

const RACE = 200;
/** Race names: 90 IPv4 (203.0.113.101…190), the rest IPv6 (2001:db8:203::1:…). */
const race = (i: number): { name: string; address: string; type: 'A' | 'AAAA' } =>
  i < 90 ? { name: `race-${i}.fqdn.test`, address: `203.0.113.${101 + i}`, type: 'A' } : { name: `race-${i}.fqdn.test`, address: `2001:db8:203::1:${i}`, type: 'AAAA' };

const ZONE = {
  a: [
    ['github.com', '203.0.113.10', 300],
    ['api.github.com', '203.0.113.20', 300],
    ['deep.api.github.com', '203.0.113.30', 300],
    ['edge.github.com', '203.0.113.30', 300],
    ['other.example', '203.0.113.100', 300],
    ['short.fqdn.test', '203.0.113.200', 1],
    ['svc.fqdn.test', '198.51.100.10', 300],
    ...Array.from({ length: RACE }, (_, i) => race(i)).filter((r) => r.type === 'A').map((r) => [r.name, r.address, 300] as const),
  ],
  aaaa: [
    ['v6.github.com', '2001:db8:203::20', 300],
    ...Array.from({ length: RACE }, (_, i) => race(i)).filter((r) => r.type === 'AAAA').map((r) => [r.name, r.address, 300] as const),
  ],
  cname: [
    ['alias.corp.test', 'api.github.com', 300],
    ['www.corp.test', 'edge.github.com', 300],
  ],
} as const;

const POLICIES = [
  cwnp('allow-github', { egress: [{ toFQDNs: [{ matchPattern: '*.github.com' }, { matchName: 'GitHub.com' }], ports: [{ protocol: 'TCP', port: 443 }] }] }),
  cwnp('allow-fqdn-test', { egress: [{ toFQDNs: [{ matchPattern: '*.fqdn.test.' }], ports: [{ protocol: 'TCP', port: 443 }] }] }),
  cwnp('allow-alias', { egress: [{ toFQDNs: [{ matchName: 'alias.corp.test' }], ports: [{ protocol: 'TCP', port: 8000 }] }] }),
];

let lab: Lab;
let dnsmasq: Dnsmasq;

function resolve(tries: ResolveTry[], server = '198.51.100.53', from: Host = 'worker'): Promise<Resolved[]> {
  return lab.resolve(from, server, tries);
}

async function open(host: string, port: number): Promise<boolean> {
  return (await lab.reachable('worker', [tcp(host, port, { timeoutMs: 500 })]))[0]!;
}

function firewall(variant: 'baseline' | 'forbidden'): string {
  const fw = parse(readFileSync(path.join(EXAMPLES, variant, 'firewall.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  fw.spec.dnsServerAddress = '198.51.100.53'; // restricted (baseline example) / already so (forbidden)
  fw.spec.dnsPort = 5353;
  fw.spec.interval = '2s';
  return stringify(fw);
}

async function kernel(): Promise<string> {
  return (await lab.run('fw', ['nft', 'list', 'table', 'inet', 'firewall'])).stdout;
}

async function metric(port: number, name: string): Promise<number> {
  const r = await lab.run('fw', [process.execPath, '-e', `fetch('http://127.0.0.1:${port}/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.stdout);
  return m ? Number(m[1]) : NaN;
}

beforeAll(async () => {
  lab = await Lab.create();
  // addresses for the race: each name its own address, so every try needs a new set element
  // on eth0: IPv6 neighbour discovery answers only for the interface's own addresses
  const cmds = Array.from({ length: RACE }, (_, i) => race(i)).map((r) => `addr add ${r.address}/${r.type === 'A' ? 32 : 128} dev eth0${r.type === 'AAAA' ? ' nodad' : ''}`);
  const batch = await lab.run('internet', ['ip', '-batch', '-'], `${cmds.join('\n')}\n`);
  if (batch.code !== 0) throw new Error(batch.stderr);
  // port 5353: the lab's echo peers hold port 53 everywhere; spec.dnsPort says where the resolver is
  dnsmasq = await Dnsmasq.start({ zone: ZONE as never, host: '198.51.100.53', port: 5353, prefix: ['ip', 'netns', 'exec', lab.ns.services], domains: ['test', 'com', 'example'] });
});

afterAll(async () => {
  await dnsmasq?.stop();
  await lab?.destroy();
});

describe.each([['restricted', 'baseline'] as const, ['forbidden', 'forbidden'] as const])('FQDN policies, %s mode', (mode, variant) => {
  let dir: string;
  let state: string;
  let agent: AgentProcess;
  const metricsPort = 9700 + (mode === 'restricted' ? 1 : 2);

  const start = (): AgentProcess =>
    new AgentProcess(
      ['--source-dir', dir, '--state-dir', state, '--firewall-name', 'lab', '--metrics-address', `127.0.0.1:${metricsPort}`, '--fqdn-min-ttl', '2', '--fqdn-max-ttl', '600'],
      [],
      ['ip', 'netns', 'exec', lab.ns.fw],
    );

  beforeAll(async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'fwa-fqdn-'));
    dir = path.join(base, 'input');
    state = path.join(base, 'state');
    mkdirSync(dir);
    await lab.run('fw', ['nft', 'delete table inet firewall']);
    writeFileSync(path.join(dir, 'firewall.yaml'), firewall(variant));
    // a plain policy only: no FQDN policy yet
    writeFileSync(path.join(dir, 'plain.yaml'), stringify(cwnp('plain', { egress: [{ to: [{ cidr: '198.51.100.0/24' }], ports: [{ protocol: 'TCP', port: 80 }] }] })));
    agent = start();
    await agent.waitForLog(/^connected/);
  });

  afterAll(async () => {
    await agent?.stop();
  });

  test('no policy uses toFQDNs: no interception, no proxy', async () => {
    const k = await kernel();
    expect(k).not.toMatch(/dnat|prerouting|fqdn/);
    const [r] = await resolve([{ name: 'github.com' }], '192.0.2.1');
    expect(r!.rcode).toBeNull(); // nothing listens on the firewall's port 53
  });

  test('with FQDN policies: DNS is intercepted, and answers open exactly their addresses on their ports', async () => {
    writeFileSync(path.join(dir, 'fqdn.yaml'), POLICIES.map((p) => stringify(p)).join('---\n'));
    await eventually('interception', async () => ((await kernel()).includes('dnat ip to 192.0.2.1:53') ? true : undefined), 15_000, 100);
    expect(await open('203.0.113.10', 443)).toBe(false); // nobody asked yet
    if (mode === 'forbidden') {
      // 203.0.113.0/24 is outside allowedNetworks.egress: answered, never opened
      const [r] = await resolve([{ name: 'github.com', connect: { port: 443 } }]);
      expect(r).toMatchObject({ rcode: 'NOERROR', addresses: ['203.0.113.10'], connected: false });
      const [svc] = await resolve([{ name: 'svc.fqdn.test', connect: { port: 443 } }]);
      expect(svc).toMatchObject({ rcode: 'NOERROR', connected: true });
      expect(await metric(metricsPort, 'firewall_agent_fqdn_forbidden_addresses_total')).toBeGreaterThan(0);
      expect(await kernel()).not.toContain('203.0.113.10');
      return;
    }
    const [gh, upper, dotted] = await resolve([
      { name: 'github.com', connect: { port: 443 } },
      { name: 'GiThUb.CoM', connect: { port: 443 } },
      { name: 'api.github.com.', connect: { port: 443 } },
    ]);
    expect(gh).toMatchObject({ rcode: 'NOERROR', addresses: ['203.0.113.10'], connected: true });
    expect(upper!.connected).toBe(true);
    expect(dotted).toMatchObject({ addresses: ['203.0.113.20'], connected: true });
    expect(await open('203.0.113.10', 80)).toBe(false); // the policy's port only
    // one label only: deep.api.github.com is answered, not opened
    const [deep, other] = await resolve([
      { name: 'deep.api.github.com', connect: { port: 443 } },
      { name: 'other.example', connect: { port: 443 } },
    ]);
    expect(deep).toMatchObject({ rcode: 'NOERROR', addresses: ['203.0.113.30'], connected: false });
    expect(other).toMatchObject({ rcode: 'NOERROR', connected: false });
    expect(await open('203.0.113.20', 8000)).toBe(false); // resolved, but under another policy's port
    // the firewall's own DNS is not intercepted: it goes to the lab's echo peer on port 53, which
    // is no resolver (no answer); the proxy would have answered github.com at once
    const [own] = await resolve([{ name: 'github.com' }], '198.51.100.53', 'fw');
    expect(own!.addresses).toEqual([]);
    expect(own!.rcode).not.toBe('SERVFAIL');
  });

  test('CNAME chains: the alias or any name in the chain selects', async () => {
    if (mode === 'forbidden') return;
    const [alias, www] = await resolve([
      { name: 'alias.corp.test', connect: { port: 8000 } },
      { name: 'www.corp.test', connect: { port: 443 } },
    ]);
    expect(alias).toMatchObject({ rcode: 'NOERROR', addresses: ['203.0.113.20'], connected: true });
    expect(www).toMatchObject({ addresses: ['203.0.113.30'], connected: true }); // via edge.github.com
  });

  test(`${RACE} resolve-then-connect tries in a row, UDP and TCP DNS, IPv4 and IPv6: no connect ever races the set`, async () => {
    if (mode === 'forbidden') return;
    const tries = Array.from({ length: RACE }, (_, i) => {
      const r = race(i);
      return { name: r.name, type: r.type, tcp: i % 3 === 0, connect: { port: 443, timeoutMs: 800 } };
    });
    const results: Resolved[] = [];
    for (let i = 0; i < tries.length; i += 50) results.push(...(await resolve(tries.slice(i, i + 50), '198.51.100.53')));
    const failed = results.map((r, i) => ({ ...r, name: tries[i]!.name })).filter((r) => r.connected !== true);
    console.log(`fqdn race: ${RACE - failed.length}/${RACE} connected at once; dns median ${median(results.map((r) => r.dnsMs))} ms`);
    expect(failed).toEqual([]);
  });

  test('AAAA over IPv6 DNS: an IPv6 client is intercepted too', async () => {
    if (mode === 'forbidden') return;
    const [r] = await resolve([{ name: 'v6.github.com', type: 'AAAA', connect: { port: 443 } }], '2001:db8:198::53');
    expect(r).toMatchObject({ rcode: 'NOERROR', addresses: ['2001:db8:203::20'], connected: true });
  });

  test('after the TTL (clamped to 2 s here) a new connection is blocked; an established one lives on', async () => {
    if (mode === 'forbidden') return;
    const [r] = await resolve([{ name: 'short.fqdn.test', connect: { port: 443 } }]);
    expect(r).toMatchObject({ addresses: ['203.0.113.200'], connected: true });
    const held = lab.probe('worker', [tcp('203.0.113.200', 443, { hold: { durationMs: 5000, intervalMs: 250 }, timeoutMs: 1000 })]);
    await new Promise((res) => setTimeout(res, 3500));
    expect(await open('203.0.113.200', 443)).toBe(false);
    const [h] = await held;
    expect(h!.ok).toBe(true);
    expect(h!.echoes).toBeGreaterThanOrEqual(h!.sent! - 1);
  });

  test('a full apply keeps the resolved addresses', async () => {
    if (mode === 'forbidden') return;
    const since = agent.logs.length;
    const fw = parse(firewall(variant)) as { spec: Record<string, unknown> };
    fw.spec.logAcceptedConnections = true; // changes every accept chain: a full apply
    writeFileSync(path.join(dir, 'firewall.yaml'), stringify(fw));
    await agent.waitForLog((line) => line.msg === 'applied ruleset' && line.how === 'full', 15_000, since);
    expect(await open('203.0.113.10', 443)).toBe(true);
    expect(await open('2001:db8:203::20', 443)).toBe(true);
    // dynamic elements are not drift: no repair happened all along (checked every 2 s here)
    expect(agent.logs.filter((l) => /no longer holds|repairing/.test(l.msg))).toEqual([]);
  });

  test('a restart restores the resolved addresses from the state directory, not from DNS', async () => {
    if (mode === 'forbidden') return;
    await new Promise((res) => setTimeout(res, 5500)); // the state file is written at most every 5 s
    await agent.kill();
    await lab.run('fw', ['nft', 'delete table inet firewall']); // nothing left in the kernel to keep
    agent = start();
    await agent.waitForLog(/^connected/);
    expect(await open('203.0.113.10', 443)).toBe(true);
    expect(await open('203.0.113.20', 443)).toBe(true);
    expect(await open('203.0.113.100', 443)).toBe(false);
    const status = await lab.run('fw', [process.execPath, '-e', `fetch('http://127.0.0.1:${metricsPort}/status').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
    expect(JSON.parse(status.stdout).dns).toMatchObject({ listening: { addresses: ['192.0.2.1', '2001:db8:1::1'], port: 53 }, upstream: '198.51.100.53:5353' });
  });
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}
