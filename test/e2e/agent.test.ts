/**
 * The agent end to end: real seed and shoot kube-apiservers (with etcd), the project's CRDs and
 * production RBAC, the lab namespaces with the real kernel, and `firewall-agent run` as a process.
 *
 * The control planes listen on the host's loopback; the agent runs on the host too and applies its
 * ruleset inside the lab's firewall namespace (`--netns`), so traffic is tested through the real
 * rules while the agent reaches the API servers without any route through the lab.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { exec } from '../../src/nft/runner';
import { ROOT } from '../helpers';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { seedRbac } from '../../src/kube/rbac';
import { EXAMPLES, cwnp } from '../helpers';
import { Lab, tcp } from '../lab/lab';
import { AgentProcess } from '../kube/agent-process';
import { ControlPlane } from '../kube/controlplane';
import { eventually } from '../kube/rest';
import { applyAll, boundToken, ensureNamespace, installLandscape, kubeconfig } from '../kube/setup';
import { NetnsRelay } from '../kube/relay';
import { Dnsmasq } from '../dns/dnsmasq';

jest.setTimeout(240_000);

type Json = Record<string, unknown>;

const SEED_NS = 'shoot--demo';
const FW_NAME = 'shoot--demo-firewall-e2e';
const FIREWALLS = `/apis/firewall.metal-stack.io/v2/namespaces/${SEED_NS}/firewalls`;
const CWNPS = '/apis/metal-stack.io/v1/namespaces/firewall/clusterwidenetworkpolicies';
/** promtool, extracted from Debian's prometheus package by scripts/test-deps.sh. */
const PROMTOOL = path.join(process.env.XDG_CACHE_HOME ?? path.join(process.env.HOME ?? '/root', '.cache'), 'firewall-agent', 'promtool', 'promtool');
const MONITOR = `/apis/firewall.metal-stack.io/v2/namespaces/firewall/firewallmonitors/${FW_NAME}`;

let seed: ControlPlane;
let shoot: ControlPlane;
let lab: Lab;
let agent: AgentProcess;
let dir: string;
let shootTokenFile: string;
let metricsPort: number;

/** The agent's flags common to every run here (the shoot kubeconfig is given or not). */
function agentArgs(): string[] {
  return [
    ...['--seed-kubeconfig', path.join(dir, 'seed.kubeconfig'), '--firewall-name', FW_NAME, '--netns', lab.ns.fw],
    ...['--state-dir', path.join(dir, 'state'), '--metrics-address', `127.0.0.1:${metricsPort}`],
  ];
}

async function scrape(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').pop()) : 0;
}

function firewallObject(): Json {
  const fw = parse(readFileSync(path.join(EXAMPLES, 'baseline', 'firewall.yaml'), 'utf8')) as Json;
  (fw.metadata as Json).name = FW_NAME;
  (fw.metadata as Json).namespace = SEED_NS;
  return fw;
}

async function createFirewall(fw: Json = firewallObject()): Promise<void> {
  await seed.admin.post(FIREWALLS, { ...fw, status: undefined });
  await seed.admin.patch(`${FIREWALLS}/${FW_NAME}/status`, { status: fw.status });
}

async function allowed(port: number, host = '203.0.113.10'): Promise<boolean> {
  return (await lab.reachable('worker', [tcp(host, port, { timeoutMs: 400 })]))[0]!;
}

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  await eventually(what, async () => (await cond()) || undefined, timeoutMs, 30).catch((e: Error) => {
    throw new Error(`${e.message}\nagent log:\n${agent.dump()}`);
  });
}

function policy(name: string, port: number, to = '203.0.113.0/24'): Json {
  return cwnp(name, { egress: [{ to: [{ cidr: to }], ports: [{ protocol: 'TCP', port }] }] });
}

async function policyStatus(name: string): Promise<Json | undefined> {
  const p = await shoot.admin.getOrUndefined(`${CWNPS}/${name}`);
  return p?.status as Json | undefined;
}

async function events(ns: string, reason: string): Promise<Json[]> {
  const list = await shoot.admin.get(`/api/v1/namespaces/${ns}/events`);
  return (list.items as Json[]).filter((e) => e.reason === reason);
}

beforeAll(async () => {
  [seed, shoot] = await Promise.all([ControlPlane.start({ name: 'seed', audit: true }), ControlPlane.start({ name: 'shoot' })]);
  await installLandscape(seed, shoot, SEED_NS);
  const seedToken = await boundToken(seed.admin, SEED_NS, 'firewall-agent', 'agent-token-1');
  const shootToken = await boundToken(shoot.admin, 'firewall', 'firewall-agent', 'agent-token-1');
  dir = mkdtempSync(path.join(tmpdir(), 'fwa-e2e-'));
  shootTokenFile = path.join(dir, 'shoot-token');
  writeFileSync(shootTokenFile, shootToken);
  writeFileSync(path.join(dir, 'seed.kubeconfig'), kubeconfig(seed, SEED_NS, { token: seedToken }));
  writeFileSync(path.join(dir, 'shoot.kubeconfig'), kubeconfig(shoot, 'shoot', { tokenFile: shootTokenFile }));
  lab = await Lab.create();
  metricsPort = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
  agent = new AgentProcess(['--shoot-kubeconfig', path.join(dir, 'shoot.kubeconfig'), ...agentArgs()]);
});

afterAll(async () => {
  await agent?.stop();
  await lab?.destroy();
  await Promise.all([seed?.stop(), shoot?.stop()]);
});

test('forwarding is dropped until the agent has connected', async () => {
  await agent.waitForLog(/applied the disconnected ruleset|disconnected ruleset is already loaded/);
  await shoot.admin.post(CWNPS, policy('allow-https', 443));
  // a policy exists, but without its Firewall the agent is not connected: nothing opens
  await new Promise((r) => setTimeout(r, 1500));
  expect(await allowed(443)).toBe(false);
  expect(agent.logs.some((l) => l.msg.startsWith('connected'))).toBe(false);
  const listing = (await lab.nft.listTable('inet', 'firewall'))!;
  expect(listing).not.toContain('vmap');
  expect((await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status).toBe(200);
  expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(503);
  expect(metric(await scrape(), 'firewall_agent_state', { state: 'disconnected' })).toBe(1);
});

test('after reading the Firewall and listing the shoot, policies are enforced and status is written', async () => {
  await createFirewall();
  await until('https allowed', () => allowed(443));
  expect(await allowed(80)).toBe(false);
  await agent.waitForLog(/^connected/);
  await until('status deployed', async () => (await policyStatus('allow-https'))?.state === 'deployed');
  expect((await policyStatus('allow-https'))!.message).toBe('');
});

test('changes and deletions are followed', async () => {
  const p = await shoot.admin.get(`${CWNPS}/allow-https`);
  await shoot.admin.put(`${CWNPS}/allow-https`, { ...p, spec: (policy('allow-https', 80).spec as Json) });
  await until('port 80 open, 443 closed', async () => (await allowed(80)) && !(await allowed(443)));
  await shoot.admin.delete(`${CWNPS}/allow-https`);
  await until('80 closed after delete', async () => !(await allowed(80)));
});

test('create-to-enforced latency (20 policies) and agent memory', async () => {
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    // the probe starts first and retries every 5 ms with a 20 ms connect timeout
    const probe = lab.probe('worker', [tcp('203.0.113.10', 9000, { timeoutMs: 20, retry: { everyMs: 5, forMs: 10_000 } })]);
    await new Promise((r) => setTimeout(r, 150));
    const t0 = Date.now();
    await shoot.admin.post(CWNPS, policy(`latency-${i}`, 9000, '203.0.113.10/32'));
    const [r] = await probe;
    times.push(Date.now() - t0);
    expect(r!.ok).toBe(true);
    await shoot.admin.delete(`${CWNPS}/latency-${i}`);
    await until(`latency-${i} removed`, async () => !(await allowed(9000)));
  }
  times.sort((a, b) => a - b);
  const median = (times[9]! + times[10]!) / 2;
  const rss = agent.rssMiB();
  // Figures for the record: from the API write until a connection through the firewall succeeds.
  console.log(`create-to-enforced ms: median ${median}, worst ${times[19]}, all ${times.join(',')}; agent RSS ${rss.toFixed(1)} MiB`);
  expect(times[19]).toBeLessThan(10_000);
});

test('forbidden mode ignores policies outside allowedNetworks, with a ForbiddenCIDR event', async () => {
  await shoot.admin.post(CWNPS, policy('to-internet', 443));
  await until('443 open', () => allowed(443));
  await seed.admin.patch(`${FIREWALLS}/${FW_NAME}`, { spec: { allowedNetworks: { egress: ['198.51.100.0/24'], ingress: ['203.0.113.0/28'] } } });
  await until('443 closed in forbidden mode', async () => !(await allowed(443)));
  await until('status ignored', async () => (await policyStatus('to-internet'))?.state === 'ignored');
  expect((await policyStatus('to-internet'))!.message).toBe('egress[0].to[0].cidr 203.0.113.0/24 is outside allowedNetworks.egress');
  await until('ForbiddenCIDR event', async () => (await events('firewall', 'ForbiddenCIDR')).some((e) => (e.involvedObject as Json).name === 'to-internet'));
  await seed.admin.patch(`${FIREWALLS}/${FW_NAME}`, { spec: { allowedNetworks: null } });
  await until('443 open again in baseline', () => allowed(443));
  await until('status deployed again', async () => (await policyStatus('to-internet'))?.state === 'deployed');
});

test('metrics count what flows, by policy, and the state; status summarises for humans', async () => {
  expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);
  // The policy's counter counts the packets of new connections that pass its chain: one SYN per
  // connection, plus any retransmitted SYN (still ct state new). The SYNs that arrive at
  // 203.0.113.10:443 are exactly those: the counter must move by as many, at least one per connection.
  const syns = await lab.synCounter('internet', 443);
  try {
    // The kernel counters are cached for 2 s (scrapes, and the agent's FirewallMonitor refresh fill
    // the cache): wait that long without traffic so `before` is read after the previous test's.
    await new Promise((r) => setTimeout(r, 2500));
    const before = await scrape();
    const syns0 = await syns.read();
    const accepted0 = metric(before, 'firewall_agent_policy_accepted_connections_total', { policy: 'to-internet', direction: 'egress' });
    const dropped0 = metric(before, 'firewall_agent_dropped_packets_total', { reason: 'policy' });
    const n = 5;
    for (let i = 0; i < n; i++) expect(await allowed(443)).toBe(true);
    for (let i = 0; i < n; i++) expect(await allowed(22)).toBe(false);
    await new Promise((r) => setTimeout(r, 2500)); // the same cache: `after` must be read after this traffic
    const after = await scrape();
    const arrived = (await syns.read()) - syns0;
    expect(metric(after, 'firewall_agent_policy_accepted_connections_total', { policy: 'to-internet', direction: 'egress' }) - accepted0).toBe(arrived);
    expect(arrived).toBeGreaterThanOrEqual(n);
    expect(metric(after, 'firewall_agent_dropped_packets_total', { reason: 'policy' }) - dropped0).toBeGreaterThanOrEqual(n);
    expect(metric(after, 'firewall_agent_state', { state: 'connected' })).toBe(1);
    expect(metric(after, 'firewall_agent_objects', { kind: 'ClusterwideNetworkPolicy', outcome: 'deployed' })).toBeGreaterThanOrEqual(1);
    expect(metric(after, 'firewall_agent_watch_up', { watch: 'shoot/clusterwidenetworkpolicies' })).toBe(1);
    expect(metric(after, 'firewall_agent_applies_total', { sync: 'incremental' })).toBeGreaterThan(0);
    expect(metric(after, 'firewall_agent_sync_duration_seconds_count', { sync: 'full' })).toBeGreaterThan(0);
    // changes were made (policies created above): change-to-kernel latency observed, in kube-proxy's manner
    expect(metric(after, 'firewall_agent_network_programming_duration_seconds_count', {})).toBeGreaterThan(0);
    expect(metric(after, 'firewall_agent_compile_duration_seconds_count', {})).toBeGreaterThan(0);
    expect(metric(after, 'firewall_agent_last_queued_timestamp_seconds', {})).toBeGreaterThan(0);
    expect(after).toMatch(/^firewall_agent_last_apply_success_timestamp_seconds \d/m);
    expect(after).toMatch(/^firewall_agent_network_bytes_total\{network="external",direction="out"\} [1-9]/m);
    // a real scrape passes Prometheus' own linter
    const lint = await exec([PROMTOOL, 'check', 'metrics'], after);
    expect(`${lint.stdout}${lint.stderr}`).toBe('');
    expect(lint.code).toBe(0);
    expect(after).not.toMatch(/203\.0\.113|192\.0\.2/); // no addresses in labels
  } finally {
    await syns.remove();
  }
  const status = await exec([process.execPath, path.join(ROOT, 'dist', 'cli.js'), 'status', '--address', `127.0.0.1:${metricsPort}`]);
  expect(status.code).toBe(0);
  expect(status.stdout).toMatch(/^state\s+connected/m);
  expect(status.stdout).toMatch(/^mode\s+baseline/m);
  expect(status.stdout).toMatch(/egress to-internet/);
});

test('invalid and misplaced policies are reported, the rest keeps working', async () => {
  await shoot.admin.post(CWNPS, cwnp('broken', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 8010, endPort: 8000 }] }] }));
  await ensureNamespace(shoot.admin, 'default');
  await shoot.admin.post('/apis/metal-stack.io/v1/namespaces/default/clusterwidenetworkpolicies', {
    ...policy('elsewhere', 22),
    metadata: { name: 'elsewhere', namespace: 'default' },
  });
  await until('broken ignored', async () => (await policyStatus('broken'))?.state === 'ignored');
  expect((await policyStatus('broken'))!.message).toBe('rejected: egress[0].ports[0].endPort 8000 is below port 8010');
  await until('Inapplicable event', async () => (await events('firewall', 'Inapplicable')).some((e) => (e.involvedObject as Json).name === 'broken'));
  await until('event for the misplaced policy', async () => (await events('default', 'Inapplicable')).some((e) => String(e.message).includes('namespace firewall')));
  expect(await allowed(443)).toBe(true);
  expect(await allowed(22)).toBe(false);
});

test('the FirewallMonitor is created and kept up to date with counters', async () => {
  const mon = await eventually('FirewallMonitor', () => shoot.admin.getOrUndefined(MONITOR), 30_000, 200);
  expect(mon.image).toBe('firewall-ubuntu-3.0');
  await allowed(443);
  const status = await eventually(
    'monitor stats',
    async () => {
      const m = await shoot.admin.get(MONITOR);
      const cs = m.controllerStatus as Json | undefined;
      const accept = ((cs?.stats as Json | undefined)?.rules as Json | undefined)?.accept as Json | undefined;
      const c = (accept?.['accept traffic for np to-internet'] as Json | undefined)?.counter as Json | undefined;
      return c && Number(c.packets) > 0 ? cs : undefined;
    },
    30_000,
    500,
  );
  expect(status.controllerVersion).toMatch(/^\d+\.\d+\.\d+/);
  expect(Date.parse(String(status.lastRun))).toBeGreaterThan(Date.now() - 60_000);
  expect(Date.parse(String(status.lastRunAgainstSeed))).toBeGreaterThan(Date.now() - 60_000);
  expect(((status.stats as Json).devices as Json).external).toEqual({ in: expect.any(Number), out: expect.any(Number) });
});

test('drift in the kernel is repaired within spec.interval', async () => {
  await seed.admin.patch(`${FIREWALLS}/${FW_NAME}`, { spec: { interval: '2s' } });
  await new Promise((r) => setTimeout(r, 1000));
  await lab.run('fw', ['nft', 'delete table inet firewall']);
  const t0 = Date.now();
  await until('table restored', async () => ((await lab.nft.listTable('inet', 'firewall')) ?? '').includes('vmap @egress_ports_v4'), 15_000);
  console.log(`drift repaired after ${Date.now() - t0} ms`);
  expect(await allowed(22)).toBe(false);
  expect(await allowed(443)).toBe(true);
  expect(agent.logs.some((l) => l.msg === 'the kernel no longer holds the applied ruleset; repairing')).toBe(true);
  expect(metric(await scrape(), 'firewall_agent_drift_repairs_total', {})).toBeGreaterThanOrEqual(1);
});

test('spec.dryRun renders and checks but never changes the kernel', async () => {
  const before = agent.logs.length;
  await seed.admin.patch(`${FIREWALLS}/${FW_NAME}`, { spec: { dryRun: true } });
  // seed and shoot are two API servers: nothing orders their events, so let the agent see the
  // Firewall's dryRun before the policy is created
  await agent.waitForLog('dry run: ruleset rendered and checked, not applied', 15_000, before);
  const mark = agent.logs.length;
  await shoot.admin.post(CWNPS, policy('during-dry-run', 8010, '203.0.113.10/32'));
  await agent.waitForLog('dry run: ruleset rendered and checked, not applied', 15_000, mark);
  await new Promise((r) => setTimeout(r, 500));
  expect(await allowed(8010)).toBe(false);
  await seed.admin.patch(`${FIREWALLS}/${FW_NAME}`, { spec: { dryRun: false } });
  await until('applied once dry run is off', () => allowed(8010));
});

test('a rotated shoot token is picked up without a restart', async () => {
  const newToken = await boundToken(shoot.admin, 'firewall', 'firewall-agent', 'agent-token-2');
  const mark = agent.logs.length;
  writeFileSync(shootTokenFile, newToken);
  await agent.waitForLog('shoot credentials changed; reconnecting', 15_000, mark);
  await shoot.admin.delete('/api/v1/namespaces/firewall/secrets/agent-token-1'); // revokes the old token
  await shoot.admin.post(CWNPS, policy('after-rotation', 8000, '203.0.113.10/32'));
  await until('policy created after rotation enforced', () => allowed(8000), 30_000);
});

test('a shoot API server outage keeps the last ruleset; after it returns, changes apply again', async () => {
  await shoot.stopApiserver();
  await new Promise((r) => setTimeout(r, 2500));
  expect(await allowed(8000)).toBe(true); // still enforcing what was applied
  expect(await allowed(8011)).toBe(false); // and never opening anything
  await shoot.startApiserver();
  await shoot.admin.post(CWNPS, policy('after-outage', 8011, '203.0.113.10/32'));
  await until('policy created after the outage enforced', () => allowed(8011), 60_000);
});

test('a seed outage and a deleted Firewall never open anything', async () => {
  await seed.stopApiserver();
  await new Promise((r) => setTimeout(r, 2000));
  expect(await allowed(8011)).toBe(true);
  expect(await allowed(8005)).toBe(false);
  await seed.startApiserver();
  await seed.admin.delete(`${FIREWALLS}/${FW_NAME}`);
  await agent.waitForLog('Firewall not found; keeping the current ruleset', 30_000);
  expect(await allowed(8011)).toBe(true);
  expect(await allowed(8005)).toBe(false);
  const listing = (await lab.nft.listTable('inet', 'firewall'))!;
  expect(listing).toMatch(/hook forward priority (1|filter \+ 1); policy drop;/);
});

test('the agent never writes to the seed', () => {
  const writes = seed
    .auditLog()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Json)
    .filter((e) => String((e.user as Json).username).startsWith('system:serviceaccount:'))
    .filter((e) => !['get', 'list', 'watch'].includes(String(e.verb)));
  const reads = seed.auditLog().split('\n').filter((l) => l.includes('system:serviceaccount:shoot--demo:firewall-agent'));
  expect(reads.length).toBeGreaterThan(0);
  expect(writes).toEqual([]);
});

test('shoot access can come from the Firewall status, through the seed secrets', async () => {
  await agent.stop();
  // the shoot-access secrets, as the firewall-controller-manager deploys them into the seed namespace
  const token = await boundToken(shoot.admin, 'firewall', 'firewall-agent', 'agent-token-3');
  const generic = kubeconfig(shoot, 'shoot', { tokenFile: '/var/run/secrets/gardener.cloud/shoot/generic-kubeconfig/token' });
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  await seed.admin.post(`/api/v1/namespaces/${SEED_NS}/secrets`, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'generic-token-kubeconfig', namespace: SEED_NS },
    data: { kubeconfig: b64(generic) },
  });
  await seed.admin.post(`/api/v1/namespaces/${SEED_NS}/secrets`, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'shoot-access-firewall-agent', namespace: SEED_NS },
    data: { token: b64(token) },
  });
  await applyAll(
    seed.admin,
    seedRbac({
      namespace: SEED_NS,
      subject: { kind: 'ServiceAccount', name: 'firewall-agent', namespace: SEED_NS },
      secretNames: ['generic-token-kubeconfig', 'shoot-access-firewall-agent'],
    }) as Json[],
  );
  const fw = firewallObject();
  (fw.status as Json).shootAccess = {
    apiServerURL: shoot.server,
    genericKubeconfigSecretName: 'generic-token-kubeconfig',
    namespace: SEED_NS,
    tokenSecretName: 'shoot-access-firewall-agent',
  };
  await createFirewall(fw);
  agent = new AgentProcess(agentArgs());
  // a restart with the kernel still holding what was applied keeps it: no drop in between
  await agent.waitForLog('the kernel holds the ruleset applied before the restart; keeping it', 15_000);
  await agent.waitForLog('connecting to the shoot', 30_000);
  await shoot.admin.post(CWNPS, policy('via-shoot-access', 8005, '203.0.113.10/32'));
  await until('policy enforced with shoot access from the seed', () => allowed(8005), 30_000);

  // rotation through the seed secret: a new token is written, the old one revoked
  const rotated = await boundToken(shoot.admin, 'firewall', 'firewall-agent', 'agent-token-4');
  const mark = agent.logs.length;
  await seed.admin.patch(`/api/v1/namespaces/${SEED_NS}/secrets/shoot-access-firewall-agent`, { data: { token: b64(rotated) } });
  await agent.waitForLog('shoot credentials changed; reconnecting', 15_000, mark);
  await shoot.admin.delete('/api/v1/namespaces/firewall/secrets/agent-token-3');
  await shoot.admin.delete(`${CWNPS}/via-shoot-access`);
  await until('deletion followed with the rotated token', async () => !(await allowed(8005)), 30_000);
});

test('inside the firewall namespace: DNS answered and addresses opened (fqdn_state written); metrics published to the cluster', async () => {
  await agent.stop();
  // as on a real firewall: the agent runs where the node network's address is, to serve DNS there
  const relay = await NetnsRelay.start(lab.ns.fw, [new URL(seed.server).port, new URL(shoot.server).port].map(Number));
  const dnsmasq = await Dnsmasq.start({
    zone: { a: [['fqdn.e2e.test', '203.0.113.30', 300]] },
    host: '198.51.100.53',
    port: 5353,
    prefix: ['ip', 'netns', 'exec', lab.ns.services],
  });
  try {
    await seed.admin.patch(`${FIREWALLS}/${FW_NAME}`, { spec: { dnsServerAddress: '198.51.100.53', dnsPort: 5353 } });
    agent = new AgentProcess(
      [
        ...['--shoot-kubeconfig', path.join(dir, 'shoot.kubeconfig'), '--seed-kubeconfig', path.join(dir, 'seed.kubeconfig')],
        ...['--firewall-name', FW_NAME, '--state-dir', path.join(dir, 'state'), '--metrics-address', ''],
      ],
      [],
      ['ip', 'netns', 'exec', lab.ns.fw],
    );
    await agent.waitForLog(/^connected|kernel holds the ruleset/, 30_000);
    expect(await allowed(8011, '203.0.113.30')).toBe(false);
    await shoot.admin.post(CWNPS, cwnp('allow-fqdn', { egress: [{ toFQDNs: [{ matchName: 'FQDN.e2e.test' }], ports: [{ protocol: 'TCP', port: 8011 }] }] }));
    await agent.waitForLog('DNS proxy listening', 30_000);
    const answer = await eventually(
      'an intercepted answer that opens the address',
      async () => {
        const [r] = await lab.resolve('worker', '198.51.100.53', [{ name: 'fqdn.e2e.test', connect: { port: 8011 } }]);
        return r!.connected ? r : undefined;
      },
      30_000,
      200,
    );
    expect(answer.addresses).toEqual(['203.0.113.30']);
    // written at once with the selector (nothing resolved yet), then within seconds of the answer
    const status = await eventually(
      'fqdn_state in the policy status',
      async () => {
        const entries = ((await policyStatus('allow-fqdn'))?.fqdn_state as Json | undefined)?.['fqdn.e2e.test'] as Json[] | undefined;
        return entries && entries.length > 0 ? entries : undefined;
      },
      20_000,
      200,
    );
    expect(status).toEqual([
      expect.objectContaining({ fqdn: 'fqdn.e2e.test.', version: 'ip', ips: ['203.0.113.30'], setName: expect.stringMatching(/^fqdn4-[0-9a-f]{8}-allow-fqdn$/) }),
    ]);
    expect((await policyStatus('allow-fqdn'))?.state).toBe('deployed');
    await shoot.admin.delete(`${CWNPS}/allow-fqdn`);
    await until('closed again with the policy gone', async () => !(await allowed(8011, '203.0.113.30')));

    // metrics for the cluster: served on the node network's address, published as a headless Service
    const scrapeFrom = async (host: 'worker' | 'internet', url: string): Promise<string> =>
      (await lab.run(host, [process.execPath, '-e', `fetch(${JSON.stringify(url)},{signal:AbortSignal.timeout(2000)}).then(r=>r.text()).then(t=>process.stdout.write(t),e=>process.stdout.write('failed: '+e.message))`])).stdout;
    const fromNodes = await eventually('metrics from the worker through 192.0.2.1:9630', async () => {
      const t = await scrapeFrom('worker', 'http://192.0.2.1:9630/metrics');
      return t.includes('firewall_agent_state') ? t : undefined;
    }, 20_000, 200);
    expect(fromNodes).toMatch(/^firewall_agent_dns_proxy_up 0$/m); // the FQDN policy is gone: the proxy stopped
    expect(await scrapeFrom('worker', 'http://[2001:db8:1::1]:9630/metrics')).toContain('firewall_agent_state');
    expect(await scrapeFrom('worker', 'http://192.0.2.1:9630/status')).not.toContain('policies'); // /status stays local
    // from outside the node network the port is dropped by our input chain
    expect(await scrapeFrom('internet', 'http://203.0.113.1:9630/metrics')).toMatch(/^failed/);
    const svc = await eventually('the metrics Service', () => shoot.admin.getOrUndefined('/api/v1/namespaces/firewall/services/firewall-agent'), 20_000, 200);
    expect(svc.spec).toMatchObject({ clusterIP: 'None', ports: [{ name: 'metrics', port: 9630 }] });
    expect((svc.metadata as Json).labels).toMatchObject({ app: 'firewall-agent' });
    const ep = (await shoot.admin.get('/api/v1/namespaces/firewall/endpoints/firewall-agent')) as Json;
    expect(ep.subsets).toEqual([expect.objectContaining({ addresses: [expect.objectContaining({ ip: '192.0.2.1' }), expect.objectContaining({ ip: '2001:db8:1::1' })] })]);
    const slice = (await shoot.admin.get('/apis/discovery.k8s.io/v1/namespaces/firewall/endpointslices/firewall-agent-ipv4')) as Json;
    expect(slice).toMatchObject({ addressType: 'IPv4', endpoints: [expect.objectContaining({ addresses: ['192.0.2.1'] })] });
    // drift is corrected: someone points the Endpoints elsewhere
    await shoot.admin.patch('/api/v1/namespaces/firewall/endpoints/firewall-agent', { subsets: [{ addresses: [{ ip: '192.0.2.99' }], ports: [{ name: 'metrics', port: 9630 }] }] });
    await eventually('Endpoints corrected', async () => {
      const e = (await shoot.admin.get('/api/v1/namespaces/firewall/endpoints/firewall-agent')) as { subsets: { addresses: { ip: string }[] }[] };
      return e.subsets[0]!.addresses[0]!.ip === '192.0.2.1' || undefined;
    }, 30_000, 200);
  } finally {
    await agent.stop();
    await dnsmasq.stop();
    await relay.stop();
  }
});
