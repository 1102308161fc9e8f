/**
 * `firewall-agent preflight` against real kube-apiservers: a seed holding the Firewall and a shoot
 * holding policies and Services of the kinds that differ from the upstream agent, read with the
 * agent's own least-privilege credentials. Asserts the printed lines and the exit codes.
 *
 * The command runs from dist/ (build first: `npm run build`) through a tiny commander program,
 * so it does not depend on the main CLI having registered it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cwnp, exampleFirewall, lbService, ROOT } from '../helpers';
import { ControlPlane } from './controlplane';
import { boundToken, installLandscape, kubeconfig } from './setup';

jest.setTimeout(120_000);

type Json = Record<string, unknown>;

const SEED_NS = 'shoot--pre';
const FW = 'shoot--pre-firewall';
const FW_FORBIDDEN = 'shoot--pre-firewall-forbidden';
const FIREWALLS = `/apis/firewall.metal-stack.io/v2/namespaces/${SEED_NS}/firewalls`;
const CWNPS = (ns: string): string => `/apis/metal-stack.io/v1/namespaces/${ns}/clusterwidenetworkpolicies`;
const PORT_443 = [{ protocol: 'TCP', port: 443 }];

/** Runs `preflight ARGS` as a process (as the CLI would), from the built dist/. */
const PROGRAM =
  'const {Command}=require("commander");const {registerPreflight}=require("./dist/commands/preflight");' +
  'const p=new Command("firewall-agent");registerPreflight(p);p.parseAsync()';

async function preflight(...args: string[]): Promise<{ code: number; stdout: string; stderr: string; lines: string[] }> {
  const child = spawn(process.execPath, ['-e', PROGRAM, '--', 'preflight', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
  return { code, stdout, stderr, lines: stdout.split('\n').filter(Boolean) };
}

let seed: ControlPlane;
let shoot: ControlPlane;
let dir: string;
let seedKc: string;
let seedAdminKc: string;
let shootKc: string;

function firewall(name: string, variant: 'baseline' | 'forbidden'): Json {
  const fw = exampleFirewall(variant);
  (fw.metadata as Json).name = name;
  (fw.metadata as Json).namespace = SEED_NS;
  return fw;
}

async function createFirewall(fw: Json): Promise<void> {
  const name = (fw.metadata as Json).name as string;
  await seed.admin.post(FIREWALLS, { ...fw, status: undefined });
  await seed.admin.patch(`${FIREWALLS}/${name}/status`, { status: fw.status });
}

async function createService(svc: Json): Promise<void> {
  const meta = svc.metadata as Json;
  const base = `/api/v1/namespaces/${meta.namespace as string}/services`;
  await shoot.admin.post(base, { ...svc, status: undefined });
  if (svc.status) await shoot.admin.patch(`${base}/${meta.name as string}/status`, { status: svc.status });
}

/** Policies that differ from upstream in one way each (and one that does not). */
const POLICIES: Json[] = [
  cwnp('clean', { egress: [{ to: [{ cidr: '203.0.113.0/24', except: ['203.0.113.20/32'] }], ports: PORT_443 }] }),
  cwnp('no-ports', { egress: [{ to: [{ cidr: '198.51.100.5/32' }] }] }),
  cwnp('no-to', { egress: [{ ports: [{ protocol: 'UDP', port: 123 }] }] }),
  cwnp('pooled', { egress: [{ to: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }, { cidr: '10.1.0.0/16' }], ports: PORT_443 }] }),
  cwnp('ssh-in', { ingress: [{ from: [{ cidr: '203.0.113.0/25' }], ports: [{ protocol: 'TCP', port: 22 }] }] }),
  cwnp('wildcard', { egress: [{ toFQDNs: [{ matchPattern: '*.example.com' }], ports: PORT_443 }] }),
  cwnp('mixed-case', { egress: [{ toFQDNs: [{ matchName: 'Example.COM' }], ports: PORT_443 }] }),
  cwnp('sctp', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol: 'SCTP', port: 9 }] }] }),
  cwnp('bad-range', { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ protocol: 'TCP', port: 8010, endPort: 8000 }] }] }),
  cwnp('no-port', { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ protocol: 'UDP' }] }] }),
  cwnp('both', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], toFQDNs: [{ matchName: 'example.com' }], ports: PORT_443 }] }),
  cwnp('elsewhere', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: PORT_443 }] }, 'default'),
];

beforeAll(async () => {
  [seed, shoot] = await Promise.all([ControlPlane.start({ name: 'pre-seed' }), ControlPlane.start({ name: 'pre-shoot' })]);
  await installLandscape(seed, shoot, SEED_NS);
  dir = mkdtempSync(path.join(tmpdir(), 'fwa-preflight-'));
  // The agent's own credentials: what it may read is all preflight needs.
  const [seedToken, shootToken] = await Promise.all([
    boundToken(seed.admin, SEED_NS, 'firewall-agent', 'agent-token'),
    boundToken(shoot.admin, 'firewall', 'firewall-agent', 'agent-token'),
  ]);
  seedKc = path.join(dir, 'seed.kubeconfig');
  seedAdminKc = path.join(dir, 'seed-admin.kubeconfig');
  shootKc = path.join(dir, 'shoot.kubeconfig');
  writeFileSync(seedKc, kubeconfig(seed, SEED_NS, { token: seedToken }));
  writeFileSync(seedAdminKc, kubeconfig(seed, SEED_NS, { token: seed.adminToken }));
  writeFileSync(shootKc, kubeconfig(shoot, 'shoot', { token: shootToken }));

  await createFirewall(firewall(FW, 'baseline'));
  await createFirewall(firewall(FW_FORBIDDEN, 'forbidden'));
  for (const p of POLICIES) await shoot.admin.post(CWNPS((p.metadata as Json).namespace as string), p);
  const lbStatus = (ip: string): Json => ({ loadBalancer: { ingress: [{ ip }] } });
  await createService(lbService('web', { loadBalancerSourceRanges: ['203.0.113.0/28'], ports: [{ name: 'https', port: 443, protocol: 'TCP' }] }, 'default', lbStatus('192.0.2.200')));
  await createService(lbService('outside', { loadBalancerSourceRanges: ['203.0.113.0/28'], ports: [{ name: 'https', port: 443, protocol: 'TCP' }] }, 'default', lbStatus('203.0.113.99')));
  await createService(lbService('pending', { loadBalancerSourceRanges: ['203.0.113.0/28'], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }));
}, 120_000);

afterAll(async () => {
  await Promise.all([seed?.stop(), shoot?.stop()]);
});

test('baseline Firewall: every object with its verdict and differences, the count line, exit 1', async () => {
  const r = await preflight('--shoot-kubeconfig', shootKc, '--seed-kubeconfig', seedKc, '--firewall-name', FW);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(1);
  const expected = [
    'firewall/clean: unchanged',
    'firewall/no-ports: differs: egress[0].ports is missing: upstream: this rule opened nothing; firewall-agent: every port and protocol to its destinations',
    'firewall/no-to: differs: egress[0].to is missing: upstream: this rule opened nothing; firewall-agent: every destination (IPv4 and IPv6)',
    "firewall/pooled: differs: egress[0].to[0].except[0] 10.1.0.0/16: upstream: pooled with the rule's other excepts and cut out of every block; firewall-agent: cut out of to[0] only: 10.1.0.0/16 through to[1] 10.1.0.0/16 stays open",
    'firewall/ssh-in: differs: ingress[0]: upstream: accepted matching traffic to any destination, in either direction; firewall-agent: only traffic leaving towards the node network',
    'firewall/wildcard: differs: egress[0].toFQDNs[0].matchPattern "*.example.com": upstream: * also crossed dots (matched e.g. a.b.example.com); firewall-agent: * matches within one label: a.b.example.com and other names with more labels no longer match',
    'firewall/mixed-case: differs: egress[0].toFQDNs[0].matchName "Example.COM": upstream: compared case-sensitively with lower-case answers: never matched, this selector opened nothing; firewall-agent: matches example.com in any case',
    'firewall/sctp: rejected: egress[0].ports[0].protocol "SCTP" is not supported (TCP or UDP)',
    'firewall/sctp: differs: egress[0].ports[0].protocol "SCTP": upstream: treated as TCP (anything but UDP meant TCP); firewall-agent: not supported (TCP or UDP): the policy is rejected',
    'firewall/bad-range: rejected: egress[0].ports[0].endPort 8000 is below port 8010',
    'firewall/no-port: differs: egress[0].ports[0].port is missing: upstream: invalid (a port between 1 and 65535 is required): the whole policy was skipped; firewall-agent: every UDP port (as in Kubernetes)',
    'firewall/both: rejected: egress[0] sets both to and toFQDNs; a rule takes one of them',
    'firewall/both: differs: egress[0] sets both to and toFQDNs: upstream: to was used and toFQDNs silently ignored; firewall-agent: a rule takes one of them: the policy is rejected',
    'default/elsewhere: ignored: only policies in namespace firewall take effect (upstream ignores it too)',
    'default/web: Service unchanged',
    'default/outside: Service unchanged',
    'default/pending: Service differs: has no load balancer IP: upstream: the rule lost its destination: accepted 203.0.113.0/28 to any destination on 80/tcp; firewall-agent: no rule',
    'default/pending: Service warning: has no load balancer IP yet; no rule',
    `note: firewall ${SEED_NS}/${FW}: mode baseline`,
  ];
  // The API server lists in its own order (namespace, name): compare as sets, then the count line last.
  for (const line of expected) expect(r.lines).toContain(line);
  expect(r.lines).toContain(
    'firewall/bad-range: differs: egress[0].ports[0].endPort 8000 is below port 8010: upstream: not checked: nft refused the whole ruleset, so no policy change was applied any more; firewall-agent: the policy is rejected; the others are unaffected',
  );
  expect(r.lines.at(-1)).toBe('preflight: 15 objects read: 3 would be rejected, 1 ignored, 8 differ in semantics, 3 unchanged; 1 other Service gets no rule either way');
});

test('forbidden Firewall: forbidden-mode differences; --json for machines', async () => {
  const r = await preflight('--shoot-kubeconfig', shootKc, '--seed-kubeconfig', seedKc, '--firewall-name', FW_FORBIDDEN, '--json');
  expect(r.code).toBe(1);
  const report = JSON.parse(r.stdout) as {
    mode: string;
    exitCode: number;
    counts: Json;
    objects: { kind: string; ref: { namespace: string; name: string }; verdict: string; upstreamIgnores?: boolean; differences: { code: string; upstream: string }[] }[];
  };
  expect(report.mode).toBe('forbidden');
  expect(report.exitCode).toBe(1);
  const byName = (name: string): (typeof report.objects)[number] => report.objects.find((o) => o.ref.name === name)!;
  // no `to`: ignored here as a whole, deployed upstream (its check saw no prefix)
  expect(byName('no-to')).toMatchObject({ verdict: 'ignored', upstreamIgnores: false, differences: [{ code: 'forbidden' }] });
  // outside allowedNetworks for both
  expect(byName('clean')).toMatchObject({ verdict: 'ignored', upstreamIgnores: true, differences: [] });
  expect(byName('wildcard').differences.map((d) => d.code)).toEqual(['pattern-crosses-dots', 'fqdn-forbidden']);
  expect(byName('outside')).toMatchObject({ kind: 'Service', verdict: 'ignored', differences: [{ code: 'no-destination' }] });
  expect(byName('web').verdict).toBe('unchanged');
  expect(report.counts).toEqual({ read: 15, rejected: 3, ignored: 7, differ: 4, unchanged: 1, otherServices: 1 });
});

test('shoot only: compiled without a Firewall, the checks that need one are named', async () => {
  const r = await preflight('--shoot-kubeconfig', shootKc);
  expect(r.code).toBe(1);
  expect(r.lines).toContain(
    'note: no Firewall given (--seed-kubeconfig with --firewall-name, or a Firewall among the files): compiled without one; not checked: forbidden mode (policies and load balancer IPs outside spec.allowedNetworks, toFQDNs answers) and the egress source (node network vs upstream 10.0.0.0/8)',
  );
  expect(r.lines.at(-1)).toBe('preflight: 15 objects read: 3 would be rejected, 1 ignored, 8 differ in semantics, 3 unchanged; 1 other Service gets no rule either way');
});

test('shoot access from the Firewall status when no shoot kubeconfig is given', async () => {
  const token = await boundToken(shoot.admin, 'firewall', 'firewall-agent', 'agent-token-access');
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const generic = kubeconfig(shoot, 'shoot', { tokenFile: '/var/run/secrets/gardener.cloud/shoot/generic-kubeconfig/token' });
  await seed.admin.post(`/api/v1/namespaces/${SEED_NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'generic', namespace: SEED_NS }, data: { kubeconfig: b64(generic) } });
  await seed.admin.post(`/api/v1/namespaces/${SEED_NS}/secrets`, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'access', namespace: SEED_NS }, data: { token: b64(token) } });
  const shootAccess = { apiServerURL: shoot.server, genericKubeconfigSecretName: 'generic', namespace: SEED_NS, tokenSecretName: 'access' };
  await seed.admin.patch(`${FIREWALLS}/${FW}/status`, { status: { shootAccess } });
  const r = await preflight('--seed-kubeconfig', seedAdminKc, '--firewall-name', FW);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(1);
  expect(r.lines).toContain(`note: shoot access from the Firewall's status.shootAccess (${shoot.server})`);
  expect(r.lines.at(-1)).toMatch(/^preflight: 15 objects read: /);
});

test('unusable input exits 2, an unreachable or refusing API server 3: one line, no stack trace', async () => {
  // A port nobody listens on: bound once, then closed.
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const closed = path.join(dir, 'closed.kubeconfig');
  writeFileSync(closed, kubeconfig({ server: `https://127.0.0.1:${port}`, ca: shoot.ca } as unknown as ControlPlane, 'shoot', { token: 'x' }));
  const forbidden = path.join(dir, 'forbidden.kubeconfig');
  writeFileSync(forbidden, kubeconfig(shoot, 'shoot', { token: await boundToken(shoot.admin, 'default', 'nobody', 'nobody-token') }));
  const cases: [string[], number, RegExp][] = [
    [['--shoot-kubeconfig', closed], 3, new RegExp(`^error: cannot reach the shoot API server https://127\\.0\\.0\\.1:${port}: fetch failed: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`)],
    [['--shoot-kubeconfig', forbidden], 3, /^error: cannot list ClusterwideNetworkPolicies in the shoot \(https:\/\/127\.0\.0\.1:\d+\): HTTP 403: .*forbidden/],
    [['--shoot-kubeconfig', shootKc, '--seed-kubeconfig', seedKc, '--firewall-name', 'nope'], 2, new RegExp(`^error: Firewall ${SEED_NS}/nope not found in the seed \\(https://127\\.0\\.0\\.1:\\d+\\)$`)],
    [['--shoot-kubeconfig', path.join(dir, 'missing')], 2, /^error: cannot use the shoot kubeconfig .*missing: ENOENT/],
    [['--seed-kubeconfig', seedKc], 2, /^error: --seed-kubeconfig needs --firewall-name NAME$/],
    [[], 2, /^error: preflight needs --shoot-kubeconfig FILE/],
    [['--bogus'], 2, /^error: unknown option '--bogus'/],
  ];
  for (const [args, code, message] of cases) {
    const r = await preflight(...args);
    expect([args, r.code]).toEqual([args, code]);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(message)]);
  }
});

test('offline from files (-f): the same analysis without any API server', async () => {
  const r = await preflight('-f', path.join(ROOT, 'examples', 'forbidden'));
  expect(r.code).toBe(1);
  expect(r.lines).toContain('firewall/allow-ntp-anywhere: ignored: egress[0].to is empty, which means every destination: outside allowedNetworks.egress');
  expect(r.lines).toContain(
    'default/outside: Service differs: has no load balancer IP inside allowedNetworks.ingress: upstream: the rule lost its destination: accepted 203.0.113.0/28 to any destination on 443/tcp; firewall-agent: no rule',
  );
  expect(r.lines.at(-1)).toBe('preflight: 7 objects read: 1 would be rejected, 3 ignored, 0 differ in semantics, 3 unchanged');
});

test('once the differing objects are gone: only unchanged objects, exit 0', async () => {
  for (const p of POLICIES.slice(1)) {
    const meta = p.metadata as Json;
    await shoot.admin.delete(`${CWNPS(meta.namespace as string)}/${meta.name as string}`);
  }
  await shoot.admin.delete('/api/v1/namespaces/default/services/pending');
  const r = await preflight('--shoot-kubeconfig', shootKc, '--seed-kubeconfig', seedKc, '--firewall-name', FW);
  expect(r.lines).toEqual([
    'firewall/clean: unchanged',
    'default/outside: Service unchanged',
    'default/web: Service unchanged',
    `note: firewall ${SEED_NS}/${FW}: mode baseline`,
    'note: egress source: upstream accepted egress from 10.0.0.0/8 (hard-coded); firewall-agent from the node network 192.0.2.0/25, 2001:db8:1::/64 only',
    'preflight: 3 objects read: 0 would be rejected, 0 ignored, 0 differ in semantics, 3 unchanged; 1 other Service gets no rule either way',
  ]);
  expect(r.code).toBe(0);
});
