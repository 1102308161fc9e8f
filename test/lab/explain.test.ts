/**
 * `explain` against real traffic: every case of the baseline and forbidden lab matrices
 * (baseline.test.ts, forbidden.test.ts; plus a few of state.test.ts's disconnected ones) is
 * explained from the model and probed through the same ruleset in the lab's kernel; the verdicts
 * must agree on every case. The expected values of those tests are kept as a third witness.
 */
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { Compiled, compile } from '../../src/compile/compile';
import { State } from '../../src/compile/mode';
import { ExplainSource, explain, parsePacket } from '../../src/explain';
import { compileLandscape, loadLandscape } from '../../src/landscape';
import { Obj } from '../../src/model/fields';
import { classify } from '../../src/model/inventory';
import { renderTransaction } from '../../src/nft/render';
import { EXAMPLES, ROOT, cwnp, exampleFirewall, lbService } from '../helpers';
import { Host, Lab, Target } from './lab';

interface Case {
  readonly host: Exclude<Host, 'fw'> | 'fw';
  readonly src: string;
  readonly dst: string;
  /** `443/tcp`, `53/udp` or `icmp` (one ping). */
  readonly port: string;
  /** What the existing lab test expects. */
  readonly expect: boolean;
}

const W4 = '192.0.2.10';
const W6 = '2001:db8:1::10';

function c(host: Case['host'], src: string, dst: string, port: string, expect: boolean): Case {
  return { host, src, dst, port, expect };
}

/** baseline.test.ts, case by case (the sources the probes use, made explicit). */
const BASELINE_CASES: Case[] = [
  // a listed destination and port is open, others on the same host are not
  c('worker', W4, '203.0.113.10', '443/tcp', true),
  c('worker', W4, '203.0.113.10', '80/tcp', false),
  c('worker', W4, '203.0.113.10', '22/tcp', false),
  // except carves a hole out of the allowed cidr
  c('worker', W4, '203.0.113.30', '443/tcp', true),
  c('worker', W4, '203.0.113.20', '443/tcp', false),
  // port ranges include both ends and nothing beyond
  c('worker', W4, '203.0.113.10', '8000/tcp', true),
  c('worker', W4, '203.0.113.10', '8005/tcp', true),
  c('worker', W4, '203.0.113.10', '8010/tcp', true),
  c('worker', W4, '203.0.113.10', '8011/tcp', false),
  // UDP and TCP are told apart
  c('worker', W4, '198.51.100.53', '53/udp', true),
  c('worker', W4, '198.51.100.53', '53/tcp', true),
  c('worker', W4, '198.51.100.53', '5000/udp', false),
  c('worker', W4, '198.51.100.10', '53/udp', false),
  // no ports means every port and protocol
  c('worker', W4, '198.51.100.5', '22/tcp', true),
  c('worker', W4, '198.51.100.5', '9000/tcp', true),
  c('worker', W4, '198.51.100.5', '5000/udp', true),
  c('worker', W4, '198.51.100.5', 'icmp', true),
  // no destination means every destination, on the listed port only
  c('worker', W4, '203.0.113.200', '123/udp', true),
  c('worker', W4, '198.51.100.10', '123/udp', true),
  c('worker', W4, '203.0.113.200', '5000/udp', false),
  // an unlisted destination is dropped
  c('worker', W4, '198.51.100.10', '443/tcp', false),
  c('worker', W4, '203.0.113.100', '53/udp', false),
  c('worker', W4, '203.0.113.10', 'icmp', false),
  // sources outside the node network are not the cluster
  c('worker', '192.0.2.150', '203.0.113.10', '443/tcp', false),
  // IPv6 egress
  c('worker', W6, '2001:db8:203::10', '443/tcp', true),
  c('worker', W6, '2001:db8:203::10', '80/tcp', false),
  c('worker', W6, '2001:db8:198::53', '53/udp', true),
  c('worker', W6, '2001:db8:198::10', '53/udp', false),
  c('worker', W6, '2001:db8:198::10', '123/udp', true),
  // ingress: a policy opens a port from listed sources only
  c('internet', '203.0.113.100', W4, '22/tcp', true),
  c('internet', '203.0.113.200', W4, '22/tcp', false),
  c('internet', '203.0.113.100', W4, '443/tcp', false),
  c('internet', '2001:db8:203::20', W6, '22/tcp', true),
  c('internet', '2001:db8:203::ff:10', W6, '22/tcp', false),
  // a LoadBalancer Service on its ports from its source ranges only
  c('internet', '203.0.113.10', '192.0.2.200', '443/tcp', true),
  c('internet', '203.0.113.10', '192.0.2.200', '80/tcp', true),
  c('internet', '203.0.113.100', '192.0.2.200', '443/tcp', false),
  c('internet', '203.0.113.10', '192.0.2.200', '8000/tcp', false),
  c('internet', '203.0.113.10', W4, '443/tcp', false),
  // the firewall itself is not filtered
  c('fw', '203.0.113.1', '203.0.113.10', '9000/tcp', true),
  c('fw', '198.51.100.1', '198.51.100.10', '5000/udp', true),
];

/** forbidden.test.ts's objects and cases. */
const FORBIDDEN_OBJECTS: Obj[] = [
  exampleFirewall('forbidden'),
  cwnp('allow-to-dns', { egress: [{ to: [{ cidr: '198.51.100.53/32' }], ports: [{ protocol: 'UDP', port: 53 }] }] }),
  cwnp('allow-ssh-from-ops', { ingress: [{ from: [{ cidr: '203.0.113.0/28' }], ports: [{ port: 22 }] }] }),
  cwnp('to-everything', { egress: [{ to: [{ cidr: '0.0.0.0/0' }], ports: [{ port: 443 }] }] }),
  cwnp('no-to', { egress: [{ ports: [{ protocol: 'UDP', port: 123 }] }] }),
  cwnp('except-trick', { egress: [{ to: [{ cidr: '0.0.0.0/0', except: ['0.0.0.0/1', '128.0.0.0/2', '192.0.0.0/3'] }], ports: [{ port: 443 }] }] }),
  cwnp('v6-everything', { egress: [{ to: [{ cidr: '::/0' }], ports: [{ port: 443 }] }] }),
  cwnp('half-inside', { egress: [{ to: [{ cidr: '198.51.100.0/24' }] }, { to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] }),
  cwnp('ingress-anywhere', { ingress: [{ ports: [{ port: 8000 }] }] }),
  cwnp('ingress-wider', { ingress: [{ from: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 8005 }] }] }),
  lbService('inside', { loadBalancerIP: '192.0.2.200', ports: [{ port: 443, protocol: 'TCP' }] }),
  lbService('outside', { loadBalancerIP: '203.0.113.99', ports: [{ port: 80 }], loadBalancerSourceRanges: ['203.0.113.0/28'] }),
  lbService('mixed', { loadBalancerIP: '203.0.113.98', ports: [{ port: 8010 }], loadBalancerSourceRanges: ['203.0.113.0/28'] }, 'default', {
    loadBalancer: { ingress: [{ ip: '192.0.2.200' }] },
  }),
];

const FORBIDDEN_CASES: Case[] = [
  // deployed policies work
  c('worker', W4, '198.51.100.53', '53/udp', true),
  c('internet', '203.0.113.10', W4, '22/tcp', true),
  // ignored policies open nothing, not even the parts inside the allowed networks
  c('worker', W4, '203.0.113.10', '443/tcp', false),
  c('worker', W6, '2001:db8:203::10', '443/tcp', false),
  c('worker', W4, '198.51.100.123', '123/udp', false),
  c('worker', W4, '198.51.100.10', '9000/tcp', false),
  c('worker', W4, '198.51.100.10', '5000/udp', false),
  c('internet', '203.0.113.10', W4, '8000/tcp', false),
  c('internet', '203.0.113.10', W4, '8005/tcp', false),
  // LoadBalancer IPs outside allowedNetworks.ingress get no rule, and the rule never widens
  c('internet', '203.0.113.100', '192.0.2.200', '443/tcp', true),
  c('internet', '203.0.113.10', '192.0.2.200', '8010/tcp', true),
  c('internet', '203.0.113.30', '192.0.2.200', '8010/tcp', false),
  c('internet', '203.0.113.10', W4, '8010/tcp', false),
  c('internet', '203.0.113.100', W4, '443/tcp', false),
];

/** state.test.ts: disconnected forwards nothing new; the firewall's own traffic keeps working. */
const DISCONNECTED_CASES: Case[] = [
  c('worker', W4, '203.0.113.10', '443/tcp', false),
  c('worker', W4, '198.51.100.53', '53/udp', false),
  c('worker', W6, '2001:db8:203::10', '443/tcp', false),
  c('internet', '203.0.113.10', '192.0.2.200', '443/tcp', false),
  c('internet', '203.0.113.100', W4, '22/tcp', false),
  c('fw', '203.0.113.1', '203.0.113.10', '443/tcp', true),
  c('fw', '198.51.100.1', '198.51.100.53', '53/udp', true),
];

/**
 * As `render` (and the daemon) compile the baseline example: its toFQDNs policy turns on DNS
 * interception to the proxy on the node network's addresses. A stand-in listens there.
 */
const INTERCEPTED_CASES: Case[] = [
  c('worker', W4, '198.51.100.10', '53/udp', true),
  c('worker', W4, '203.0.113.100', '53/tcp', true),
  c('worker', W6, '2001:db8:198::10', '53/udp', true),
  c('worker', W4, '198.51.100.53', '53/udp', true),
  c('worker', W4, '203.0.113.10', '443/tcp', true),
  c('worker', W4, '203.0.113.10', '80/tcp', false),
  c('worker', '192.0.2.150', '198.51.100.10', '53/udp', false),
  c('internet', '203.0.113.10', W4, '53/udp', false),
];

/** Probes every case from its host at once (bounded by short timeouts); pings run beside them. */
async function probeAll(lab: Lab, cases: readonly Case[]): Promise<boolean[]> {
  const out: boolean[] = new Array<boolean>(cases.length);
  const hosts = [...new Set(cases.map((k) => k.host))];
  await Promise.all(
    hosts.map(async (host) => {
      const idx = cases.map((k, i) => (k.host === host && k.port !== 'icmp' ? i : -1)).filter((i) => i >= 0);
      const targets: Target[] = idx.map((i) => {
        const k = cases[i]!;
        const [port, proto] = k.port.split('/');
        return { proto: proto as 'tcp' | 'udp', host: k.dst, port: Number(port), source: k.src, timeoutMs: 800 };
      });
      const results = targets.length > 0 ? await lab.probe(host, targets) : [];
      idx.forEach((i, j) => (out[i] = results[j]!.ok));
    }),
  );
  await Promise.all(
    cases.map(async (k, i) => {
      if (k.port !== 'icmp') return;
      const r = await lab.run(k.host, ['ping', '-c', '1', '-W', '1', '-I', k.src, k.dst]);
      out[i] = r.code === 0;
    }),
  );
  return out;
}

function explainAll(source: ExplainSource, cases: readonly Case[]): boolean[] {
  return cases.map((k) => {
    const p = parsePacket(k.src, k.dst, k.port);
    if (!p.ok) throw new Error(p.error);
    const e = explain(source, p.value);
    if (e.compiled && !e.compiled.agrees) throw new Error(`explain's model and the compiled maps disagree on ${k.src} → ${k.dst} ${k.port}`);
    return e.verdict === 'allowed';
  });
}

function label(k: Case): string {
  return `${k.host} ${k.src} → ${k.dst} ${k.port}`;
}

/** Applies the compiled ruleset, probes every case and compares the three answers per case. */
async function compare(lab: Lab, source: ExplainSource & { compiled: Compiled }, cases: readonly Case[]): Promise<void> {
  await lab.apply(renderTransaction([source.compiled.table]));
  const predicted = explainAll(source, cases);
  const observed = await probeAll(lab, cases);
  const rows = cases.map((k, i) => ({ case: label(k), explain: predicted[i], traffic: observed[i], expected: k.expect }));
  expect(rows.filter((r) => r.explain !== r.traffic)).toEqual([]);
  expect(rows.filter((r) => r.traffic !== r.expected)).toEqual([]);
}

function sourceOf(objects: Obj[], state: State): ExplainSource & { compiled: Compiled } {
  const inv = classify(objects.map((object) => ({ origin: 'test', object })));
  const fw = inv.firewalls[0]!.result;
  if (!fw.ok) throw new Error('invalid Firewall');
  const input = { firewall: fw.firewall, policies: inv.policies, services: inv.services, state };
  return { input, compiled: compile(input) };
}

/** Every address of the lab's peers (lab.ts). */
const LAB_ADDRESSES = [
  '192.0.2.10',
  '2001:db8:1::10',
  ...['10', '20', '30', '100', '200'].map((h) => `203.0.113.${h}`),
  '2001:db8:203::10',
  '2001:db8:203::20',
  '2001:db8:203::ff:10',
  ...['10', '5', '53', '123'].map((h) => `198.51.100.${h}`),
  '2001:db8:198::10',
  '2001:db8:198::53',
];

/**
 * Resolves the firewall's neighbours (and the peers' entry for the firewall) before the matrix: the
 * kernel queues only a few packets per unresolved IPv6 neighbour, so dozens of first packets at
 * once could lose some and a short probe would read that as a drop. The firewall's own pings are
 * not filtered.
 */
async function warmNeighbours(lab: Lab): Promise<void> {
  await Promise.all(LAB_ADDRESSES.map((a) => lab.run('fw', ['ping', a.includes(':') ? '-6' : '-4', '-c', '1', '-W', '1', a])));
}

let lab: Lab;

beforeAll(async () => {
  lab = await Lab.create();
  await warmNeighbours(lab);
});

afterAll(async () => {
  await lab?.destroy();
});

test('baseline: explain agrees with real traffic on every case of the baseline matrix', async () => {
  // as baseline.test.ts renders it: the example landscape, no DNS proxy (so no DNS interception)
  const l = await loadLandscape([path.join(EXAMPLES, 'baseline')], 'connected', undefined);
  await compare(lab, { input: l.input, compiled: compile(l.input) }, BASELINE_CASES);
});

test('forbidden: explain agrees with real traffic on every case of the forbidden matrix', async () => {
  await compare(lab, sourceOf(FORBIDDEN_OBJECTS, 'connected'), FORBIDDEN_CASES);
});

test('as render prints it: DNS from the node network is answered by the proxy, as explain says', async () => {
  // a stand-in for the DNS proxy: answers on port 53 of every firewall address
  const proxy: ChildProcess = spawn('ip', ['netns', 'exec', lab.ns.fw, process.execPath, path.join(ROOT, 'test', 'lab', 'peer.js'), JSON.stringify({ tcp: [53], udp: [53] })], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the stand-in proxy did not start')), 10_000);
      proxy.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proxy.on('exit', (code) => reject(new Error(`the stand-in proxy exited (${code})`)));
    });
    const l = await loadLandscape([path.join(EXAMPLES, 'baseline')], 'connected', undefined);
    const compiled = compileLandscape(l);
    expect(compiled.dnsIntercepted).toBe(true);
    await compare(lab, { input: l.input, compiled }, INTERCEPTED_CASES);
  } finally {
    proxy.kill('SIGKILL');
  }
});

test('disconnected: explain agrees with real traffic', async () => {
  const l = await loadLandscape([path.join(EXAMPLES, 'baseline')], 'disconnected', undefined);
  await compare(lab, { input: l.input, compiled: compile(l.input) }, DISCONNECTED_CASES);
});
