/**
 * Atomicity under traffic (issue 13, point 2): the daemon (`run --source-dir`, inside the lab's
 * firewall namespace) switches between two landscapes 500 times, incrementally (A and B differ in
 * policies) and every tenth time fully (the Firewall changes too), while one generator per side
 * opens new connections all the time to targets both landscapes allow, one of them allows, and
 * neither allows, and long-lived TCP flows echo a line every 100 ms.
 *
 * Asserted (invariants, not timings):
 * - nothing neither landscape allows is ever forwarded: no such connection succeeds, and the
 *   ground-truth counters at the receivers (SYNs and datagrams, retransmits included) stay at 0;
 * - nothing both landscapes allow is ever dropped: no such connection fails, and every SYN or
 *   datagram the senders counted arrived (a single dropped SYN would show, even when the
 *   retransmit a second later got through);
 * - a connection to a target one landscape allows, made entirely while the other one is in the
 *   kernel, never succeeds; at checkpoints (every 50 switches) probes see exactly the landscape;
 * - the long-lived flows are never broken and every line is echoed;
 * - the kernel counters (named counters, every rule's counter) never go backwards between samples
 *   taken while the agent is idle (every 5 switches);
 * - the agent logged each switch as one apply of the expected kind (full/incremental), no failure.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { EXAMPLES, cwnp } from '../helpers';
import { AgentProcess, LogLine } from '../kube/agent-process';
import { Attempt, CountedPath, FlowResult, Traffic, TrafficTarget, groundTruth, kernelCounters, metricValue, metrics, percentile } from './churn';
import { Lab, Target, tcp, udp } from './lab';

jest.setTimeout(600_000);

/** FWA_ATOMICITY_SWITCHES: fewer for a quick look (a multiple of 50). */
const SWITCHES = Number(process.env.FWA_ATOMICITY_SWITCHES ?? 500);
const FULL_EVERY = 10;
const SAMPLE_EVERY = 5;
const CHECKPOINT_EVERY = 50;
const METRICS_PORT = 9638;
/**
 * The agent reads a changed file only once its mtime is 100 ms old (README "The daemon"), so the
 * kernel cannot change before write + 100 ms; half of that (mtime is a coarse clock) closes a
 * landscape's stable window for judging the generator's attempts.
 */
const SETTLE_MARGIN_MS = 50;

type Landscape = 'A' | 'B';
type Klass = 'both' | 'A' | 'B' | 'neither';

interface ClassedTarget extends TrafficTarget {
  klass: Klass;
  from: 'worker' | 'internet';
}

const V4 = '203.0.113.10';
const V6 = '2001:db8:203::10';
const SVC = '198.51.100.10';
const WORKER = '192.0.2.10';

function t(klass: Klass, from: 'worker' | 'internet', id: string, proto: 'tcp' | 'udp', host: string, port: number): ClassedTarget {
  // A connection both landscapes allow gets time for a SYN retransmit (1 s): a drop shows in the
  // ground truth, a failure only if it persists. The others are expected to fail often: short.
  const timeoutMs = klass === 'both' ? 3000 : 400;
  const pauseMs = klass === 'neither' ? 40 : 25;
  return { id, klass, from, proto, host, port, timeoutMs, pauseMs };
}

/** Every target, by class: egress from the worker, ingress from the internet. */
const TARGETS: ClassedTarget[] = [
  t('both', 'worker', 'both-https-v4', 'tcp', V4, 443),
  t('both', 'worker', 'both-https-v6', 'tcp', V6, 443),
  t('both', 'worker', 'both-https-30', 'tcp', '203.0.113.30', 443),
  t('both', 'worker', 'both-ntp', 'udp', V4, 123),
  t('both', 'internet', 'both-ssh-in', 'tcp', WORKER, 22),
  t('A', 'worker', 'a-8000', 'tcp', V4, 8000),
  t('A', 'worker', 'a-udp-5000', 'udp', V4, 5000),
  t('A', 'internet', 'a-in-8010', 'tcp', WORKER, 8010),
  t('B', 'worker', 'b-8005-v4', 'tcp', V4, 8005),
  t('B', 'worker', 'b-8005-v6', 'tcp', V6, 8005),
  t('B', 'worker', 'b-svc-8000', 'tcp', SVC, 8000),
  t('B', 'internet', 'b-in-8011', 'tcp', WORKER, 8011),
  t('neither', 'worker', 'no-80-v4', 'tcp', V4, 80),
  t('neither', 'worker', 'no-22-v4', 'tcp', V4, 22),
  t('neither', 'worker', 'no-80-v6', 'tcp', V6, 80),
  t('neither', 'worker', 'no-8000-v6', 'tcp', V6, 8000),
  t('neither', 'worker', 'no-8000-20', 'tcp', '203.0.113.20', 8000),
  t('neither', 'worker', 'no-udp-53', 'udp', V4, 53),
  t('neither', 'worker', 'no-svc-80', 'tcp', SVC, 80),
  t('neither', 'internet', 'no-in-80', 'tcp', WORKER, 80),
  t('neither', 'internet', 'no-in-9000', 'tcp', WORKER, 9000),
];

function allows(l: Landscape, k: Klass): boolean {
  return k === 'both' || k === l;
}

const BOTH_POLICIES = [
  cwnp('both-https', { egress: [{ to: [{ cidr: '203.0.113.0/24' }, { cidr: '2001:db8:203::/64' }], ports: [{ protocol: 'TCP', port: 443 }] }] }),
  cwnp('both-ntp', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol: 'UDP', port: 123 }] }] }),
  cwnp('both-ssh-in', { ingress: [{ from: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol: 'TCP', port: 22 }] }] }),
];
/** `swing` changes between the landscapes (same name, same chain: map elements only); `b-extra` comes and goes (a chain added, later cleaned up). */
const ONLY: Record<Landscape, ReturnType<typeof cwnp>[]> = {
  A: [
    cwnp('swing', {
      egress: [{ to: [{ cidr: `${V4}/32` }], ports: [{ protocol: 'TCP', port: 8000 }, { protocol: 'UDP', port: 5000 }] }],
      ingress: [{ from: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol: 'TCP', port: 8010 }] }],
    }),
  ],
  B: [
    cwnp('swing', {
      egress: [{ to: [{ cidr: `${V4}/32` }, { cidr: `${V6}/128` }], ports: [{ protocol: 'TCP', port: 8005 }] }],
      ingress: [{ from: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol: 'TCP', port: 8011 }] }],
    }),
    cwnp('b-extra', { egress: [{ to: [{ cidr: `${SVC}/32` }], ports: [{ protocol: 'TCP', port: 8000 }] }] }),
  ],
};
/** The marker the agent's "applied ruleset" log line carries: policies deployed. */
const DEPLOYED: Record<Landscape, number> = { A: BOTH_POLICIES.length + ONLY.A.length, B: BOTH_POLICIES.length + ONLY.B.length };

/** One file holds the Firewall and the policies: one write, one apply. `rate` changes the forward chain (full apply). */
function landscapeText(l: Landscape, rate: number): string {
  const fw = parse(readFileSync(path.join(EXAMPLES, 'baseline', 'firewall.yaml'), 'utf8')) as { spec: { rateLimits: { rate: number }[] } };
  fw.spec.rateLimits[0]!.rate = rate;
  return [fw, ...BOTH_POLICIES, ...ONLY[l]].map((o) => stringify(o)).join('---\n');
}

let lab: Lab;
let base: string;
let agent: AgentProcess | undefined;
const generators: Traffic[] = [];

beforeAll(async () => {
  lab = await Lab.create();
  base = mkdtempSync(path.join(tmpdir(), 'fwa-atomicity-'));
});

afterAll(async () => {
  for (const g of generators) g.kill();
  await agent?.stop();
  await lab?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

test(`${SWITCHES} alternating applies (full and incremental) under traffic: nothing leaks, nothing allowed breaks, counters only grow`, async () => {
  const t0 = Date.now();
  const dir = path.join(base, 'input');
  mkdirSync(dir);
  const file = path.join(dir, 'landscape.yaml');
  // Written in place (the agent reads a file once it has been left alone for 100 ms). Not by an
  // atomic rename: Node 22's recursive fs.watch on Linux stops reporting a file once it has been
  // replaced by a rename, and the agent would see every change only by its 1 s polling.
  const write = (text: string): void => writeFileSync(file, text);

  /** Waits for the agent's next "applied ruleset" line (after log index `since`) for landscape `l`. */
  const applied = async (l: Landscape, since: number): Promise<{ line: LogLine; index: number }> => {
    const until = Date.now() + 30_000;
    for (let i = since; ; ) {
      for (; i < agent!.logs.length; i++) {
        const line = agent!.logs[i]!;
        if (line.msg === 'applied ruleset' && line.deployed === DEPLOYED[l]) return { line, index: i + 1 };
      }
      if (agent!.exited) throw new Error(`agent exited: ${agent!.stderrText}\n${agent!.dump()}`);
      if (Date.now() > until) throw new Error(`no apply of landscape ${l} within 30 s:\n${agent!.dump()}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  let rate = 100;
  write(landscapeText('A', rate));
  agent = new AgentProcess(
    ['--source-dir', dir, '--state-dir', path.join(base, 'state'), '--firewall-name', 'atomicity', '--metrics-address', `127.0.0.1:${METRICS_PORT}`],
    [],
    ['ip', 'netns', 'exec', lab.ns.fw],
  );
  let logIndex = (await applied('A', 0)).index;

  // ground truth at both ends of every path (the long-lived flows' SYNs included: both sides see them)
  const paths = (side: 'sender' | 'receiver', host: 'worker' | 'internet' | 'services'): CountedPath[] =>
    TARGETS.filter((x) => (side === 'sender' ? x.from === host : x.host === WORKER ? host === 'worker' : x.host === SVC ? host === 'services' : host === 'internet')).map((x) => ({
      id: x.id,
      proto: x.proto,
      daddr: x.host,
      port: x.port,
      hook: side === 'sender' ? 'output' : 'input',
    }));
  const readWorker = await groundTruth(lab, 'worker', [...paths('sender', 'worker'), ...paths('receiver', 'worker')]);
  const readInternet = await groundTruth(lab, 'internet', [...paths('sender', 'internet'), ...paths('receiver', 'internet')]);
  const readServices = await groundTruth(lab, 'services', paths('receiver', 'services'));
  const sentBy = async (): Promise<Record<string, number>> => {
    const [w, i] = await Promise.all([readWorker(), readInternet()]);
    return Object.fromEntries(TARGETS.map((x) => [x.id, (x.from === 'worker' ? w : i)[x.id]!]));
  };
  const receivedBy = async (): Promise<Record<string, number>> => {
    const [w, i, s] = await Promise.all([readWorker(), readInternet(), readServices()]);
    return Object.fromEntries(TARGETS.map((x) => [x.id, (x.host === WORKER ? w : x.host === SVC ? s : i)[x.id]!]));
  };

  // before any traffic: the baselines of the ground truth and of drop_total
  const sent0 = await sentBy();
  const received0 = await receivedBy();
  const drop0 = (await kernelCounters(lab)).get('counter drop_total') ?? 0;
  const strip = ({ klass: _k, from: _f, ...rest }: ClassedTarget): TrafficTarget => rest;
  generators.push(
    await Traffic.start(lab, 'worker', TARGETS.filter((x) => x.from === 'worker').map(strip), [
      { id: 'flow-v4', host: V4, port: 443, intervalMs: 100 },
      { id: 'flow-v6', host: V6, port: 443, intervalMs: 100 },
    ]),
  );
  generators.push(await Traffic.start(lab, 'internet', TARGETS.filter((x) => x.from === 'internet').map(strip), [{ id: 'flow-ingress', host: WORKER, port: 22, intervalMs: 100 }]));

  const firstCounters = await kernelCounters(lab);
  let prevCounters = firstCounters;
  const counterSamples: number[] = [];
  const backwards: string[] = [];
  const sample = async (afterSwitch: number): Promise<void> => {
    const now = await kernelCounters(lab);
    counterSamples.push(now.size);
    for (const [key, v] of now) {
      const before = prevCounters.get(key);
      // b-extra's chain goes away and comes back (a new chain starts at 0): not a carried-over counter
      if (before === undefined || key.includes('b-extra')) continue;
      if (v >= before) continue;
      // with the chain's other rules, as they were: shows where a wrong carried-over value came from
      const chain = key.includes('#') ? key.slice(0, key.lastIndexOf('#')) : undefined;
      const siblings = chain ? [...prevCounters].filter(([k]) => k.startsWith(`${chain}#`)).map(([k, n]) => `${k}=${n}`) : [];
      backwards.push(`${key}: ${before} -> ${v} (after switch ${afterSwitch}${siblings.length > 1 ? `; before: ${siblings.join(' ')}` : ''})`);
    }
    prevCounters = now;
  };

  const checkpointMismatches: string[] = [];
  const checkpoint = async (l: Landscape, afterSwitch: number): Promise<void> => {
    const probeTarget = (x: ClassedTarget): Target => (x.proto === 'tcp' ? tcp(x.host, x.port, { timeoutMs: 1000 }) : udp(x.host, x.port, { timeoutMs: 1000 }));
    const fromWorker = TARGETS.filter((x) => x.from === 'worker');
    const fromInternet = TARGETS.filter((x) => x.from === 'internet');
    const [w, i] = await Promise.all([lab.reachable('worker', fromWorker.map(probeTarget)), lab.reachable('internet', fromInternet.map(probeTarget))]);
    [...fromWorker.map((x, k) => [x, w[k]] as const), ...fromInternet.map((x, k) => [x, i[k]] as const)].forEach(([x, ok]) => {
      if (ok !== allows(l, x.klass)) checkpointMismatches.push(`after switch ${afterSwitch} (${l}): ${x.id} ${ok ? 'open' : 'closed'}`);
    });
  };

  // the switches
  const writes: number[] = [];
  const seen: number[] = [Date.now()];
  const landscapes: Landscape[] = ['A'];
  const how: string[] = [];
  const unexpectedKind: string[] = [];
  const churnStart = Date.now();
  for (let i = 1; i <= SWITCHES; i++) {
    const l: Landscape = i % 2 === 1 ? 'B' : 'A';
    const full = i % FULL_EVERY === 0;
    if (full) rate = rate === 100 ? 200 : 100;
    const since = logIndex;
    writes.push(Date.now());
    write(landscapeText(l, rate));
    const r = await applied(l, since);
    seen.push(Date.now());
    landscapes.push(l);
    logIndex = r.index;
    how.push(String(r.line.how));
    if (r.line.how !== (full ? 'full' : 'incremental')) unexpectedKind.push(`switch ${i}: ${String(r.line.how)}, expected ${full ? 'full' : 'incremental'}`);
    if (i % SAMPLE_EVERY === 0) await sample(i);
    if (i % CHECKPOINT_EVERY === 0) await checkpoint(l, i);
    if (i % 50 === 0) {
      const recent = seen.slice(-50).map((v, k) => v - writes[writes.length - 50 + k]!);
      console.log(`switch ${i}: ${Math.round((Date.now() - churnStart) / 1000)} s; write to applied median ${percentile(recent, 50)} ms, max ${Math.max(...recent)} ms; agent applyMs median ${percentile(agent!.logs.slice(-200).filter((x) => x.msg === 'applied ruleset').map((x) => Number(x.applyMs)), 50)}`);
    }
  }
  const churnMs = Date.now() - churnStart;
  // the last landscape's stable window runs until the traffic stops
  await new Promise((r) => setTimeout(r, 1000));
  const stoppedAt = Date.now();
  const results = await Promise.all(generators.map((g) => g.stop()));
  await new Promise((r) => setTimeout(r, 500)); // the last packets arrive
  const attempts: Attempt[] = results.flatMap((r) => r.attempts);
  const flows: FlowResult[] = results.flatMap((r) => r.flows);
  await sample(SWITCHES);
  const lastCounters = prevCounters;
  const sent = await sentBy();
  const received = await receivedBy();
  const m = await metrics(lab, METRICS_PORT);

  // --- judging the attempts
  const byId = new Map(TARGETS.map((x) => [x.id, x]));
  /** The landscape whose stable window holds [s, e] entirely, if any. */
  const windowOf = (s: number, e: number): Landscape | undefined => {
    // window k: from the apply of switch k being seen until the next write (+ margin)
    let lo = 0;
    let hi = seen.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (seen[mid]! <= s) lo = mid;
      else hi = mid - 1;
    }
    if (seen[lo]! > s) return undefined;
    const end = lo < writes.length ? writes[lo]! + SETTLE_MARGIN_MS : stoppedAt;
    return e <= end ? landscapes[lo] : undefined;
  };
  const tally: Record<Klass, { tried: number; ok: number; failed: number }> = {
    both: { tried: 0, ok: 0, failed: 0 },
    A: { tried: 0, ok: 0, failed: 0 },
    B: { tried: 0, ok: 0, failed: 0 },
    neither: { tried: 0, ok: 0, failed: 0 },
  };
  const leaks: Attempt[] = [];
  const bothFailed: Attempt[] = [];
  const wrongWindow: string[] = [];
  let judged = 0;
  let failedWhileAllowed = 0;
  let bothSlow = 0;
  let udpReuse = 0;
  /** UDP: the last answered datagram per target and source port (see traffic.js on source ports). */
  const answered = new Map<string, number>();
  attempts.sort((a, b) => a.s - b.s);
  for (const a of attempts) {
    const x = byId.get(a.id)!;
    const c = tally[x.klass];
    c.tried++;
    if (a.ok) c.ok++;
    else c.failed++;
    if (x.klass === 'neither' && a.ok) leaks.push(a);
    if (x.klass === 'both' && !a.ok) bothFailed.push(a);
    if (x.klass === 'both' && a.ok && a.e - a.s > 900) bothSlow++;
    if (x.klass === 'A' || x.klass === 'B') {
      const key = `${a.id}:${a.port}`;
      const before = answered.get(key);
      if (x.proto === 'udp' && a.ok) answered.set(key, a.e);
      // part of a flow conntrack still knows (forwarded as established, rightly): not judged
      if (x.proto === 'udp' && before !== undefined && a.s - before < 180_000) {
        udpReuse++;
        continue;
      }
      const l = windowOf(a.s, a.e);
      if (l === undefined) continue;
      judged++;
      if (a.ok && !allows(l, x.klass)) wrongWindow.push(`${a.id} connected at ${a.s}..${a.e} while ${l} was in the kernel`);
      if (!a.ok && allows(l, x.klass)) failedWhileAllowed++;
    }
  }
  const sentRecv = (k: Klass): { sent: number; received: number; dropped: string[] } => {
    const ids = TARGETS.filter((x) => x.klass === k).map((x) => x.id);
    return {
      sent: ids.reduce((s, id) => s + sent[id]! - sent0[id]!, 0),
      received: ids.reduce((s, id) => s + received[id]! - received0[id]!, 0),
      dropped: ids.filter((id) => sent[id]! - sent0[id]! !== received[id]! - received0[id]!).map((id) => `${id}: sent ${sent[id]! - sent0[id]!}, received ${received[id]! - received0[id]!}`),
    };
  };
  const truth = { both: sentRecv('both'), A: sentRecv('A'), B: sentRecv('B'), neither: sentRecv('neither') };
  const droppedByTruth = (['both', 'A', 'B', 'neither'] as const).reduce((s, k) => s + truth[k].sent - truth[k].received, 0);
  const dropTotalDelta = (lastCounters.get('counter drop_total') ?? 0) - drop0;
  const applyMs = seen.slice(1).map((v, k) => v - writes[k]!);
  const appliesLogged = agent!.logs.filter((l) => l.msg === 'applied ruleset').length;
  const trouble = agent!.logs.filter((l) => l.level === 'error' || l.level === 'warn' || /repair|no longer holds|failed/.test(l.msg));

  const figures = {
    switches: SWITCHES,
    applies: { full: how.filter((h) => h === 'full').length, incremental: how.filter((h) => h === 'incremental').length, loggedInTotal: appliesLogged },
    appliesMetric: {
      full: metricValue(m, 'firewall_agent_applies_total', '{sync="full"}'),
      incremental: metricValue(m, 'firewall_agent_applies_total', '{sync="incremental"}'),
    },
    writeToAppliedMs: { median: percentile(applyMs, 50), p95: percentile(applyMs, 95), max: Math.max(...applyMs) },
    connections: tally,
    groundTruth: {
      both: { sent: truth.both.sent, received: truth.both.received },
      aOnly: { sent: truth.A.sent, received: truth.A.received },
      bOnly: { sent: truth.B.sent, received: truth.B.received },
      neither: { sent: truth.neither.sent, received: truth.neither.received },
    },
    leaks: { neitherConnected: leaks.length, neitherReceived: truth.neither.received, wrongWindow: wrongWindow.length },
    oneLandscapeJudged: { attempts: judged, failedWhileAllowed, udpSourcePortReused: udpReuse },
    bothSlowOver900ms: bothSlow,
    flows: flows.map((f) => ({ id: f.id, sent: f.sent, echoed: f.echoed, broken: f.broken, longestGapMs: f.maxGapMs, maxRttMs: f.maxRttMs })),
    counters: { samples: counterSamples.length, keysPerSample: counterSamples[0], backwards: backwards.length, firstBackwards: backwards.slice(0, 10) },
    dropTotal: { counted: dropTotalDelta, droppedNewConnectionPackets: droppedByTruth },
    checkpoints: SWITCHES / CHECKPOINT_EVERY,
    churnSeconds: Math.round(churnMs / 100) / 10,
    testSeconds: Math.round((Date.now() - t0) / 100) / 10,
  };
  console.log(`atomicity figures:\n${JSON.stringify(figures, null, 1)}`);

  expect(leaks).toEqual([]);
  expect(truth.neither.received).toBe(0);
  expect(wrongWindow).toEqual([]);
  expect(bothFailed).toEqual([]);
  expect(truth.both.dropped).toEqual([]);
  expect(checkpointMismatches).toEqual([]);
  for (const f of flows) {
    expect(f).toMatchObject({ connected: true, broken: null, outOfOrder: 0 });
    expect(f.echoed).toBe(f.sent);
    expect(f.sent).toBeGreaterThan(0);
  }
  expect(unexpectedKind).toEqual([]);
  expect(figures.applies.full).toBe(SWITCHES / FULL_EVERY);
  expect(figures.applies.incremental).toBe(SWITCHES - SWITCHES / FULL_EVERY);
  expect(appliesLogged).toBe(SWITCHES + 1); // one per switch and the first; nothing else applied
  expect(trouble).toEqual([]);
  // every class was exercised
  for (const k of ['both', 'A', 'B', 'neither'] as const) expect(tally[k].tried).toBeGreaterThan(50);
  expect(backwards).toEqual([]);
});
