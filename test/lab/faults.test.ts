/**
 * Faults (issue 13, point 3), each with its outcome asserted, with the daemon standalone
 * (`run --source-dir`) inside the lab's firewall namespace:
 *
 * - forwarding is never open: background probes try, the whole time, new connections that no
 *   policy allows (worker → 203.0.113.10:22 and :9000 and [2001:db8:203::10]:22, internet →
 *   192.0.2.10:22), and nft counters in the far namespaces count every SYN that arrives there
 *   (the ground truth for "packets leaked"); the kernel keeps the last (or the disconnected)
 *   ruleset while the fault lasts. Where someone else removes or opens the ruleset (a flush, our
 *   table deleted, an accept rule inserted) forwarding is open until the repair: those SYNs are
 *   reported apart as the tampering's exposure, and the last test checks that no probe got
 *   through outside such a window;
 * - enforcement recovers by itself once the fault is gone: a policy change made during the fault
 *   becomes effective, timed from the moment the fault ends;
 * - the fault shows in `/status` (`problems`), the metrics and the log.
 *
 * The agent finds `nft` through a wrapper first in its PATH (faults/nft-wrapper.sh; a control file
 * switches it between pass-through, fail, hang, refuse and the SIGKILL points; renaming it away is
 * "nft missing"). The state directory is a 64 KiB tmpfs of the test's own (filled, remounted
 * read-only). A clock jump moves Date.now() in the agent alone (faults/clock.js, preloaded with
 * `node --require`; faketime is not installed, and a time namespace cannot move the wall clock).
 * One lab for the file; the agent is restarted per group. The figures for RELIABILITY.md are
 * printed at the end (and written as JSON to $FWA_FAULTS_FIGURES when set).
 *
 * Tests marked `test.failing` document faults the agent does not survive yet (see the BUG
 * comments): they fail once the product is fixed, and the mark goes then.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { generatePolicies } from '../../scripts/bench/generate';
import { disconnectedTable } from '../../src/compile/compile';
import { hex, listingDigest } from '../../src/nft/fingerprint';
import { renderTransaction } from '../../src/nft/render';
import { exec } from '../../src/nft/runner';
import { ROOT, cwnp, exampleFirewall } from '../helpers';
import { AgentProcess, LogLine } from '../kube/agent-process';
import { eventually } from '../kube/rest';
import { FakeClock, Timer } from '../../src/sync/clock';
import { RUNNER_DEFAULTS } from '../../src/sync/loop';
import { SyncRunner } from '../../src/sync/runner';
import { Host, Lab, SynCounter, tcp } from './lab';

jest.setTimeout(120_000);

const FAULTS = path.join(ROOT, 'test', 'lab', 'faults');
/** /metrics and /status inside the firewall namespace (its own loopback). */
const METRICS_PORT = 9711;
/** Allowed by the base policy in every group. */
const ALLOWED = 443;
/** Ports the lab's peers listen on that the tests open and close with policy changes. */
const CHANGE_PORTS = [8000, 8005, 8010, 8011, 80, 53];
const INTERVAL_MS = 2000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let lab: Lab;
let base: string;
/** The directory first in the agent's PATH: the nft wrapper, its control file and call log, `ip`. */
let bin: string;
let counters: SynCounter[] = [];
let leakProbes: LeakProbe[] = [];
/** Periods in which someone else opened the firewall on purpose (flushed it): leaks there are theirs. */
const exposureWindows: { fault: string; from: number; to: number }[] = [];

// ---------------------------------------------------------------------------------------------
// figures

interface Figure {
  fault: string;
  injected: number;
  survived: number;
  /** SYNs of never-allowed connections that arrived behind the firewall while the fault lasted. */
  leaked: number;
  /** The same, while someone else had removed or opened the ruleset (not the agent's doing). */
  exposure?: number;
  /** From the end of the fault (or the tampering) to enforcement being right again. */
  recoverMs?: number;
  note?: string;
}

const figures: Figure[] = [];

async function leakCount(): Promise<number> {
  let n = 0;
  for (const c of counters) n += await c.read();
  return n;
}

/**
 * Runs one fault: counts the SYNs that leaked meanwhile (must be 0 unless `exposure`: then they are
 * reported as the tampering's own exposure), and records the figure (survived only if `body` passed).
 */
async function fault(name: string, body: (fig: Figure) => Promise<{ recoverMs?: number; note?: string } | void>, opts: { exposure?: boolean } = {}): Promise<void> {
  const fig: Figure = { fault: name, injected: 1, survived: 0, leaked: 0 };
  figures.push(fig);
  const before = await leakCount();
  let ok = false;
  try {
    const out = await body(fig);
    if (out?.recoverMs !== undefined) fig.recoverMs = out.recoverMs;
    if (out?.note) fig.note = out.note;
    ok = true;
  } finally {
    const leaked = (await leakCount()) - before;
    if (opts.exposure) fig.exposure = leaked;
    else fig.leaked = leaked;
    if (ok && !opts.exposure) expect(leaked).toBe(0);
    if (ok) fig.survived = 1;
  }
}

// ---------------------------------------------------------------------------------------------
// background probes: new connections no policy allows, all the time

interface LeakResult {
  host: string;
  port: number;
  attempts: number;
  connected: number;
  leakedAt: number[];
}

interface LeakProbe {
  stop(): Promise<LeakResult[]>;
}

async function startLeakProbe(from: Host, targets: { host: string; port: number }[]): Promise<LeakProbe> {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', lab.ns[from], process.execPath, path.join(FAULTS, 'leak-probe.js'), JSON.stringify({ targets, everyMs: 100, timeoutMs: 300 })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const kill = (): void => void child.kill('SIGKILL');
  process.on('exit', kill);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await eventually(`leak probe in ${from}`, async () => (child.exitCode !== null ? Promise.reject(new Error('exited')) : out.includes('ready')), 10_000, 20);
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        if (child.exitCode !== null) return reject(new Error(`leak probe in ${from} exited early`));
        child.once('exit', () => {
          process.off('exit', kill);
          const line = out.split('\n').find((l) => l.startsWith('['));
          line ? resolve(JSON.parse(line) as LeakResult[]) : reject(new Error(`leak probe in ${from}: no result (${out})`));
        });
        child.kill('SIGTERM');
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// the nft wrapper

type WrapperMode = 'pass' | 'fail' | 'hang' | 'refuse' | 'kill-early' | 'kill-mid' | 'kill-after';

function setMode(mode: WrapperMode | 'missing'): void {
  const wrapper = path.join(bin, 'nft');
  const away = path.join(bin, 'nft.away');
  if (mode === 'missing') {
    if (existsSync(wrapper)) renameSync(wrapper, away);
    return;
  }
  if (!existsSync(wrapper)) renameSync(away, wrapper);
  writeFileSync(path.join(bin, 'mode'), `${mode}\n`);
}

function wrapperCalls(): string[] {
  try {
    return readFileSync(path.join(bin, 'calls.log'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------
// input files, the agent, the kernel, status and metrics

interface Group {
  root: string;
  input: string;
  state: string;
}

function group(name: string, state?: string): Group {
  const root = path.join(base, name);
  const g = { root, input: path.join(root, 'input'), state: state ?? path.join(root, 'state') };
  mkdirSync(path.join(g.input, 'policies'), { recursive: true });
  return g;
}

function firewallYaml(spec: Record<string, unknown> = {}): string {
  const fw = exampleFirewall() as { spec: Record<string, unknown> };
  fw.spec.interval = `${INTERVAL_MS / 1000}s`;
  Object.assign(fw.spec, spec);
  return stringify(fw);
}

function egress(name: string, cidr: string, port: number): string {
  return stringify(cwnp(name, { egress: [{ to: [{ cidr }], ports: [{ protocol: 'TCP', port }] }] }));
}

/** The Firewall (interval 2 s) and the base policy (443 to the internet's /24). */
function writeBase(g: Group): void {
  writeFileSync(path.join(g.input, 'firewall.yaml'), firewallYaml());
  writeFileSync(path.join(g.input, 'policies', 'base.yaml'), egress('base-https', '203.0.113.0/24', ALLOWED));
}

let portTurn = 0;
/** The next port to open; the policy `change` holds one port at a time. */
function nextPort(): number {
  return CHANGE_PORTS[portTurn++ % CHANGE_PORTS.length]!;
}

function writeChange(g: Group, port: number): void {
  writeFileSync(path.join(g.input, 'policies', 'change.yaml'), egress('change', '203.0.113.10/32', port));
}

function startAgent(g: Group, opts: { args?: string[]; nodeArgs?: string[]; env?: string[] } = {}): AgentProcess {
  return new AgentProcess(
    ['--source-dir', g.input, '--state-dir', g.state, '--firewall-name', 'faults', '--metrics-address', `127.0.0.1:${METRICS_PORT}`, ...(opts.args ?? [])],
    opts.nodeArgs ?? [],
    ['ip', 'netns', 'exec', lab.ns.fw, 'env', `PATH=${bin}:/usr/local/bin:/usr/bin:/bin`, ...(opts.env ?? [])],
  );
}

/** The kernel's `inet firewall` as the agent fingerprints it (undefined when absent); real nft, not the wrapper. */
async function kernelFp(): Promise<string | undefined> {
  const listing = await lab.nft.list({ family: 'inet', name: 'firewall' });
  return listing === undefined ? undefined : hex(listingDigest(listing));
}

interface StateFile {
  state: string;
  fingerprint?: string;
  pending?: string;
}

function stateFile(g: Group): StateFile | undefined {
  try {
    return JSON.parse(readFileSync(path.join(g.state, 'state.json'), 'utf8')) as StateFile;
  } catch {
    return undefined;
  }
}

/** Waits until the background persistence recorded what the kernel holds. */
async function persisted(g: Group, timeoutMs = 15_000): Promise<string> {
  return eventually(
    'state.json to record the kernel table',
    async () => {
      const fp = await kernelFp();
      const s = stateFile(g);
      return fp !== undefined && s?.fingerprint === fp && s.pending === undefined ? fp : undefined;
    },
    timeoutMs,
    100,
  );
}

/** TCP from the worker to 203.0.113.10, all ports at once. */
async function reach(ports: number[], timeoutMs = 400): Promise<boolean[]> {
  return lab.reachable(
    'worker',
    ports.map((p) => tcp('203.0.113.10', p, { timeoutMs })),
  );
}

/**
 * Milliseconds from `act` until a connection to `port` succeeds (a probe retrying every 50 ms,
 * started before, so it is failing when `act` runs).
 */
async function timeToOpen(port: number, act: () => unknown, forMs = 40_000): Promise<number> {
  const probe = lab.probe('worker', [tcp('203.0.113.10', port, { timeoutMs: 100, retry: { everyMs: 50, forMs } })]);
  await sleep(300);
  const t0 = Date.now();
  await act();
  const [r] = await probe;
  if (!r!.ok) throw new Error(`port ${port} did not open within ${forMs} ms`);
  return Date.now() - t0;
}

/** Milliseconds from `act` until a connection to `port` fails (polling). */
async function timeToClose(port: number, act: () => unknown, forMs = 40_000): Promise<number> {
  const t0 = Date.now();
  await act();
  await eventually(`port ${port} closed`, async () => !(await reach([port], 300))[0], forMs, 50);
  return Date.now() - t0;
}

interface HttpAnswer {
  status: number;
  body: string;
  ms: number;
}

/** GET inside the firewall namespace (where the agent listens). */
async function http(pathname: string, timeoutMs = 5000): Promise<HttpAnswer> {
  const script =
    `const t=Date.now();fetch('http://127.0.0.1:${METRICS_PORT}${pathname}',{signal:AbortSignal.timeout(${timeoutMs})})` +
    `.then(async r=>process.stdout.write(JSON.stringify({status:r.status,body:await r.text(),ms:Date.now()-t})))` +
    `.catch(e=>process.stdout.write(JSON.stringify({status:0,body:String(e),ms:Date.now()-t})))`;
  const r = await lab.run('fw', [process.execPath, '-e', script]);
  return JSON.parse(r.stdout) as HttpAnswer;
}

interface Status {
  state: string;
  stale: boolean;
  lastApply?: string;
  syncs: { full: number; incremental: number; failuresInARow: number };
  problems: { source: string; error: string; since: string }[];
  inputProblems: { origin: string; error: string }[];
  policies: { deployed: number; ignored: number; rejected: number };
  notDeployed: { name: string; outcome: string; reason: string }[];
  lastError?: string;
}

async function status(): Promise<Status> {
  const a = await http('/status');
  if (a.status !== 200) throw new Error(`/status: ${a.status} ${a.body}`);
  return JSON.parse(a.body) as Status;
}

async function metrics(timeoutMs = 5000): Promise<string> {
  const a = await http('/metrics', timeoutMs);
  if (a.status !== 200) throw new Error(`/metrics: ${a.status} ${a.body}`);
  return a.body;
}

function metric(text: string, name: string, labels = ''): number {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${esc(name)}${labels ? esc(`{${labels}}`) : ''} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name}{${labels}} in the metrics`);
  return Number(m[1]);
}

function logsSince(agent: AgentProcess, mark: number, what: RegExp): LogLine[] {
  return agent.logs.slice(mark).filter((l) => what.test(l.msg) || what.test(JSON.stringify(l)));
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  lab = await Lab.create();
  base = mkdtempSync(path.join(tmpdir(), 'fwa-faults-'));
  bin = path.join(base, 'bin');
  mkdirSync(bin);
  copyFileSync(path.join(FAULTS, 'nft-wrapper.sh'), path.join(bin, 'nft'));
  symlinkSync('/usr/sbin/ip', path.join(bin, 'ip')); // iproute2 lives in sbin, which is not in the agent's PATH
  setMode('pass');
  // as a firewall boots (the boot unit's drop ruleset): the lab forwards everything until then
  await lab.apply(renderTransaction([disconnectedTable()]));
  counters = [await lab.synCounter('internet', 22), await lab.synCounter('internet', 9000), await lab.synCounter('worker', 22)];
  leakProbes = [
    await startLeakProbe('worker', [
      { host: '203.0.113.10', port: 22 },
      { host: '203.0.113.10', port: 9000 },
      { host: '2001:db8:203::10', port: 22 },
    ]),
    await startLeakProbe('internet', [{ host: '192.0.2.10', port: 22 }]),
  ];
});

let probeResults: LeakResult[] = [];

afterAll(async () => {
  try {
    for (const p of leakProbes) probeResults.push(...(await p.stop().catch(() => [])));
  } finally {
    leakProbes = [];
    printFigures();
    await lab?.destroy();
    if (base) rmSync(base, { recursive: true, force: true });
  }
});

function printFigures(): void {
  const rows = figures.map(
    (f) =>
      `| ${f.fault} | ${f.injected} | ${f.survived} | ${f.leaked} | ${f.exposure ?? ''} | ${f.recoverMs ?? ''} | ${f.note ?? ''} |`,
  );
  const attempts = probeResults.reduce((a, r) => a + r.attempts, 0);
  const connected = probeResults.reduce((a, r) => a + r.connected, 0);
  const sum = {
    injected: figures.reduce((a, f) => a + f.injected, 0),
    survived: figures.reduce((a, f) => a + f.survived, 0),
    leaked: figures.reduce((a, f) => a + f.leaked, 0),
    exposure: figures.reduce((a, f) => a + (f.exposure ?? 0), 0),
    longestRecoverMs: Math.max(0, ...figures.map((f) => f.recoverMs ?? 0)),
    probeAttempts: attempts,
    probeConnected: connected,
  };
  console.log(
    [
      '| fault | injected | survived | packets leaked | exposure (tampering) | recovery ms | note |',
      '|---|---|---|---|---|---|---|',
      ...rows,
      '',
      `total: ${sum.injected} injected, ${sum.survived} survived, ${sum.leaked} leaked, longest recovery ${sum.longestRecoverMs} ms; ` +
        `background probes: ${attempts} never-allowed connections tried, ${connected} connected (all inside tampering windows: see the last test)`,
    ].join('\n'),
  );
  if (process.env.FWA_FAULTS_FIGURES) writeFileSync(process.env.FWA_FAULTS_FIGURES, `${JSON.stringify({ figures, sum, probes: probeResults }, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------

describe('nft missing, failing, hanging; the kernel refusing a transaction', () => {
  let g: Group;
  let agent: AgentProcess;
  let open: number | undefined;

  beforeAll(async () => {
    g = group('nft');
    writeBase(g);
    setMode('pass');
    agent = startAgent(g);
    await agent.waitForLog(/^connected/);
  });

  afterAll(async () => {
    setMode('pass');
    await agent?.stop();
  });

  const EXPECTED: Record<string, RegExp> = {
    fail: /injected failure/,
    missing: /ENOENT|not found/,
    refuse: /No such file or directory|fault-injected-no-such-chain/,
  };

  test.each([
    ['fails (exit 1)', 'fail'],
    ['is missing (ENOENT)', 'missing'],
    ['makes the kernel refuse the transaction (nft -c passes, the commit fails)', 'refuse'],
  ] as const)('nft %s: the last ruleset stays, it shows, and a change made meanwhile is enforced once nft works', async (_title, mode) => {
    await fault(`nft ${mode === 'fail' ? 'failing (exit 1)' : mode === 'missing' ? 'missing' : 'kernel refuses the transaction'}`, async () => {
      const before = await kernelFp();
      const failures0 = metric(await metrics(), 'firewall_agent_apply_failures_total');
      const mark = agent.logs.length;
      const port = nextPort();
      setMode(mode);
      writeChange(g, port);

      const problem = await eventually('a sync problem in /status', async () => (await status()).problems.find((p) => p.source === 'sync'), 15_000, 200);
      expect(problem.error).toMatch(EXPECTED[mode]!);
      const logged = await agent.waitForLog('apply failed; the previous ruleset stays in the kernel', 10_000, mark);
      expect(JSON.stringify(logged)).toMatch(EXPECTED[mode]!);
      const m = await metrics();
      expect(metric(m, 'firewall_agent_apply_failures_total')).toBeGreaterThan(failures0);
      expect(metric(m, 'firewall_agent_state', 'state="connected"')).toBe(1);
      expect((await http('/healthz')).status).toBe(200);

      // the fault lasts (retries with backoff): the kernel keeps exactly the last ruleset
      await sleep(1500);
      expect(await kernelFp()).toBe(before);
      expect(await reach([ALLOWED, port, 22, 9000, ...(open ? [open] : [])])).toEqual([true, false, false, false, ...(open ? [true] : [])]);

      const recoverMs = await timeToOpen(port, () => setMode('pass'));
      if (open) expect((await reach([open]))[0]).toBe(false); // replaced by the change
      open = port;
      await eventually('the sync problem to clear', async () => !(await status()).problems.some((p) => p.source === 'sync'), 10_000, 200);
      return { recoverMs };
    });
  });

  test('nft hangs: the last ruleset stays; /status keeps answering; the change is enforced when nft returns', async () => {
    await fault('nft hanging (4 s)', async () => {
      const before = await kernelFp();
      const port = nextPort();
      const calls = wrapperCalls().length;
      setMode('hang');
      try {
        writeChange(g, port);
        await eventually('a hanging nft call', async () => wrapperCalls().slice(calls).some((l) => / hang /.test(l)), 10_000, 50);
        const t0 = Date.now();
        const s = await status();
        expect(s.state).toBe('connected');
        expect((await http('/healthz')).status).toBe(200);
        await sleep(Math.max(0, 4000 - (Date.now() - t0)));
        expect(await kernelFp()).toBe(before);
        expect(await reach([ALLOWED, port, 22])).toEqual([true, false, false]);
        const recoverMs = await timeToOpen(port, () => setMode('pass'));
        if (open) expect((await reach([open]))[0]).toBe(false);
        open = port;
        return { recoverMs, note: `while hanging /status showed problems ${JSON.stringify(s.problems)}` };
      } finally {
        setMode('pass');
      }
    });
  });

  // Was a bug, fixed since (src/sync/loop.ts, src/daemon/agent.ts): a run waiting on an nft that does not return is
  // invisible: /status `problems` and `lastError`, the metrics and the log say nothing until exec()
  // gives up after 120 s (src/nft/runner.ts default timeout; /healthz only after 5 minutes).
  // Expected: a sync running longer than a few seconds shows in /status (e.g. a `sync` problem
  // "nft has not answered for N s") and in a metric.
  test('a hanging nft shows in /status within 5 s', async () => {
    const port = nextPort();
    setMode('hang');
    try {
      writeChange(g, port);
      await eventually('the hang to show in /status', async () => (await status()).problems.some((p) => p.source === 'sync'), 5000, 500);
    } finally {
      setMode('pass');
      await eventually(`port ${port} open after the hang`, async () => (await reach([port]))[0], 20_000, 100);
    }
  });

  // Was a bug, fixed since (src/daemon/agent.ts readStats, src/report/metrics.ts cached): a scrape reads the kernel
  // counters through nft with no time limit of its own, so while nft hangs every /metrics request
  // hangs with it (up to exec's 120 s): the metrics that would show the fault cannot be fetched.
  // Expected: the scrape serves the last reading when the read takes longer than a moment.
  test('/metrics answers within 3 s while nft hangs', async () => {
    const port = nextPort();
    // (no scrape for more than 2 s: the cached counter reading has expired)
    setMode('hang');
    try {
      writeChange(g, port);
      await sleep(500);
      const a = await http('/metrics', 3000);
      expect(a.status).toBe(200);
    } finally {
      setMode('pass');
      await eventually(`port ${port} open after the hang`, async () => (await reach([port]))[0], 20_000, 100);
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** The fingerprint of the kernel table when state.json records exactly it (nothing pending). */
async function persistedNow(g: Group): Promise<string | undefined> {
  const fp = await kernelFp();
  const s = stateFile(g);
  return fp !== undefined && s?.fingerprint === fp && s.pending === undefined ? fp : undefined;
}

describe('SIGKILL in the middle of a large apply (3,000 policies), then a restart', () => {
  const POLICIES = 3000;
  let g: Group;
  let agent: AgentProcess;
  let staged: string;
  let placed: string;
  /** The kernel's table with only the base policy, as a full apply leaves it. */
  let small: string | undefined;

  beforeAll(async () => {
    g = group('kill');
    writeBase(g);
    staged = path.join(g.root, 'bench');
    placed = path.join(g.input, 'policies', 'bench');
    mkdirSync(staged);
    // one file per policy, moved in and out of the input directory with one rename: one change of 3,000 policies
    for (const p of generatePolicies(POLICIES)) writeFileSync(path.join(staged, `${(p.metadata as { name: string }).name}.json`), JSON.stringify(p));
    setMode('pass');
    agent = startAgent(g);
    await agent.waitForLog(/^connected/);
    small = await persisted(g);
  });

  afterAll(async () => {
    setMode('pass');
    await agent?.stop();
  });

  test.each([
    ['kill-early', 'while it writes the transaction to nft', 'added'],
    ['kill-mid', '0.15 s into nft', 'removed'],
    ['kill-after', 'right after the commit, before it learns of it', 'added'],
  ] as const)('SIGKILL (%s) %s, 3,000 policies being %s: the kernel holds the old or the new table, and the restarted agent keeps it', async (mode, when, change) => {
    // each round starts from a full apply (the start, or the restart of the round before), recorded
    const before = await persisted(g);
    await fault(`SIGKILL during an apply of ${POLICIES} policies ${change}, ${when}`, async () => {
      const calls = wrapperCalls().length;
      setMode(mode);
      if (change === 'added') renameSync(staged, placed);
      else renameSync(placed, staged);
      await eventually('the agent killed by the wrapper', async () => agent.exited, 30_000, 20);
      const killed = wrapperCalls()
        .slice(calls)
        .find((l) => l.includes(`${mode}: killing`));
      expect(killed).toBeDefined();
      // the nft (or wrapper) the agent started goes on alone: let it finish
      const pid = Number(killed!.split(' ')[1]);
      await eventually('the orphaned nft to end', async () => !existsSync(`/proc/${pid}`), 30_000, 20);
      // Atomic: the kernel holds the table from before (recorded as applied) or exactly the one the
      // agent was sending (recorded as pending before it was sent: the incremental update's
      // result, chains awaiting cleanup included), never a part of it.
      const held = await kernelFp();
      const record = stateFile(g)!;
      expect(record.fingerprint).toBe(before);
      expect(record.pending).toBeDefined();
      expect([before, record.pending]).toContain(held);
      expect(await reach([ALLOWED, 22, 9000])).toEqual([true, false, false]);

      const t0 = Date.now();
      agent = startAgent(g);
      await agent.waitForLog('the kernel holds the ruleset applied before the restart; keeping it', 20_000);
      const want = change === 'added' ? POLICIES + 1 : 1;
      const after = await eventually(
        `${want} policies enforced`,
        async () => {
          const s = await status();
          return s.policies.deployed === want && s.problems.length === 0 ? persistedNow(g) : undefined;
        },
        60_000,
        300,
      );
      const recoverMs = Date.now() - t0;
      if (change === 'removed') expect(after).toBe(small);
      expect(agent.logs.some((l) => /applied the disconnected ruleset/.test(l.msg))).toBe(false);
      expect(await reach([ALLOWED, 22])).toEqual([true, false]);
      return { recoverMs, note: `the kernel held the ${held === before ? 'old' : 'new'} table; restart to all enforced` };
    });
  });

  // Was a bug, fixed since (src/sync/loop.ts afterVerify / src/nft/applier.ts cleanup): the periodic cleanup deletes
  // the chains and maps an incremental update left unreferenced (e.g. after a policy was removed)
  // and updates the applier's expected fingerprint, but never records it: state.json keeps the
  // fingerprint from before the cleanup, which the kernel no longer has. A restart after that
  // (crash, upgrade, `systemctl restart`) does not recognise the table as its own and applies the
  // disconnected ruleset: every new connection is dropped until the sources are read again
  // (closed, but the flap README "Persistence and restarts" says does not happen). Expected:
  // cleanup records the new fingerprint (as an apply does).
  test('a restart after policies were removed (and their chains cleaned up) keeps the table', async () => {
    await fault('restart after policies were removed (cleanup not recorded)', async (fig) => {
      if ((await status()).policies.deployed === 1) renameSync(staged, placed); // a round above failed
      await persisted(g, 60_000);
      renameSync(placed, staged); // an incremental update; the chains wait for the periodic cleanup
      await eventually('the removal and its cleanup', async () => (await kernelFp()) === small, 30_000, 500);
      await sleep(500);
      fig.note = `state.json ${stateFile(g)?.fingerprint === small ? 'matched' : 'did not match'} the kernel before the restart`;
      await agent.kill();
      agent = startAgent(g);
      await agent.waitForLog(/keeping it|applied the disconnected ruleset/, 20_000);
      expect(agent.logs.some((l) => /applied the disconnected ruleset/.test(l.msg))).toBe(false);
    });
  });
});

// ---------------------------------------------------------------------------------------------

async function must(argv: string[]): Promise<void> {
  const r = await exec(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
}

describe('the state directory read-only, full, or holding corrupt files', () => {
  let g: Group;
  let agent: AgentProcess;
  let mounted = false;
  let open: number | undefined;

  /** Kills the agent and starts it again on the same directories; resolves once it says how it started. */
  async function restart(extra: string[] = []): Promise<'kept' | 'dropped'> {
    await agent.kill();
    agent = startAgent(g, { args: extra });
    const l = await agent.waitForLog(/keeping it|applied the disconnected ruleset/, 20_000);
    await agent.waitForLog(/^connected/, 20_000);
    return /keeping it/.test(l.msg) ? 'kept' : 'dropped';
  }

  /** A change while the fault holds: enforced anyway (persistence is not on the path). */
  async function change(): Promise<number> {
    const port = nextPort();
    const ms = await timeToOpen(port, () => writeChange(g, port), 15_000);
    if (open) expect((await reach([open]))[0]).toBe(false);
    open = port;
    return ms;
  }

  beforeAll(async () => {
    g = group('state');
    mkdirSync(g.state);
    // a tiny tmpfs of our own: it can be filled and remounted read-only without touching anything else
    await must(['mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'fwa-faults-state', g.state]);
    mounted = true;
    writeBase(g);
    // with an egress SNAT address, so that addresses.json is written and read
    writeFileSync(path.join(g.input, 'firewall.yaml'), firewallYaml({ egressRules: [{ networkID: 'internet', ips: ['203.0.113.60'] }] }));
    setMode('pass');
    agent = startAgent(g);
    await agent.waitForLog(/^connected/);
    await persisted(g);
    // the far side learns the SNAT address's neighbour entry with the first connections
    await eventually('SNAT working', async () => (await reach([ALLOWED], 1500))[0], 15_000, 100);
    expect(existsSync(path.join(g.state, 'addresses.json'))).toBe(true);
  });

  afterAll(async () => {
    await agent?.stop();
    if (mounted) await exec(['umount', g.state]);
    await lab.run('fw', ['ip', 'addr', 'del', '203.0.113.60/32', 'dev', 'vlan104009']);
  });

  /**
   * Read-write again, also in the agent's own mount namespace (`ip netns exec` gave it a copy of the
   * mount, which keeps the read-only flag it was copied with).
   */
  async function remountRw(): Promise<void> {
    await must(['mount', '-o', 'remount,rw', g.state]);
    if (!agent.exited) await must(['nsenter', '-t', String(agent.pid), '-m', 'mount', '-o', 'remount,rw', g.state]);
  }

  test('full (64 KiB tmpfs filled): enforcement goes on, it is logged; persistence resumes once there is room', async () => {
    await fault('state directory full', async () => {
      await exec(['sh', '-c', `dd if=/dev/zero of=${g.state}/filler bs=4096 2>/dev/null; true`]);
      try {
        const mark = agent.logs.length;
        await change();
        const err = await agent.waitForLog('could not persist the applied ruleset', 10_000, mark);
        expect(JSON.stringify(err)).toMatch(/ENOSPC/);
        expect(logsSince(agent, mark, /could not record the ruleset about to be applied/).length).toBeGreaterThan(0);
        expect(stateFile(g)?.fingerprint).not.toBe(await kernelFp()); // not recorded
      } finally {
        rmSync(path.join(g.state, 'filler'), { force: true });
      }
      // persistence is brought up to date by the next apply (there is none without a change)
      const t0 = Date.now();
      await change();
      await persisted(g);
      const recoverMs = Date.now() - t0;
      expect(await restart()).toBe('kept');
      return { recoverMs, note: 'recovery: room made to the next change recorded (only an apply writes the state)' };
    });
  });

  test('read-only (remounted while running, and at the next start): enforcement goes on; the restart drops until connected; rw again persists', async () => {
    await fault('state directory read-only', async (fig) => {
      await must(['mount', '-o', 'remount,ro', g.state]);
      try {
        const mark = agent.logs.length;
        await change();
        const err = await agent.waitForLog('could not persist the applied ruleset', 10_000, mark);
        expect(JSON.stringify(err)).toMatch(/EROFS/);
        // the kernel's table is not the recorded one: a restart cannot tell it is ours and drops
        // (closed) until the input is read again
        const t0 = Date.now();
        expect(await restart()).toBe('dropped');
        fig.note = `restart on the read-only directory: drop, then connected after ${Date.now() - t0} ms`;
        expect(await reach([ALLOWED, open!, 22])).toEqual([true, true, false]);
      } finally {
        await remountRw();
      }
      const t0 = Date.now();
      await change();
      await persisted(g);
      const recoverMs = Date.now() - t0;
      expect(await restart()).toBe('kept');
      return { recoverMs };
    });
  });

  test('truncated or corrupt state.json, last-known-good.nft, fqdn.json, addresses.json at start: logged, drop until connected, rewritten', async () => {
    await fault('corrupt files in the state directory at start', async () => {
      await agent.stop();
      const cut = (name: string): void => {
        const file = path.join(g.state, name);
        const text = readFileSync(file, 'utf8');
        writeFileSync(file, text.slice(0, Math.floor(text.length / 2)));
      };
      cut('state.json');
      cut('last-known-good.nft');
      writeFileSync(path.join(g.state, 'fqdn.json'), '{"version": 1, "sets": [{"name": "fqdn4-');
      writeFileSync(path.join(g.state, 'addresses.json'), '\u0000\u0000garbage');
      const t0 = Date.now();
      agent = startAgent(g, { args: ['--restore-last-known-good'] });
      await agent.waitForLog('could not restore the last-known-good ruleset; dropping until connected', 20_000);
      await agent.waitForLog('applied the disconnected ruleset: forwarding only established flows until connected', 20_000);
      await agent.waitForLog(/^connected/, 20_000);
      const recoverMs = Date.now() - t0;
      expect(await reach([ALLOWED, open!, 22])).toEqual([true, true, false]);
      expect(agent.logs.some((l) => /FQDN state does not parse/.test(l.msg))).toBe(true);
      await agent.waitForLog('egress address record is unreadable; treating no address as ours', 10_000);
      // rewritten whole
      await persisted(g);
      expect(await restart(['--restore-last-known-good'])).toBe('kept');
      return { recoverMs, note: 'start to connected (drop meanwhile)' };
    });
  });

  // Was a bug, fixed since (src/daemon/store.ts load): a truncated or unparsable state.json is treated as absent
  // without a word (load() swallows every error), though README "Persistence and restarts" says a
  // state directory holding truncated files is logged. The agent then drops until connected,
  // which is right, but nobody learns why the restart flapped. Expected: a warning naming the file.
  test('a truncated state.json is logged at start', async () => {
    await agent.stop();
    const file = path.join(g.state, 'state.json');
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 20));
    agent = startAgent(g);
    await agent.waitForLog(/^connected/, 20_000);
    expect(agent.logs.some((l) => /state\.json/.test(JSON.stringify(l)) && l.level !== 'info')).toBe(true);
  });

  // Was a bug, fixed since (src/daemon/agent.ts summary/problems, src/report/metrics.ts): failing persistence is only
  // logged; /status `problems` and the metrics do not show it, though it decides whether the next
  // restart keeps the table or drops. Expected: a `state` problem in /status while writes fail and
  // a counter of failed writes.
  test('a state directory that cannot be written shows in /status', async () => {
    await exec(['sh', '-c', `dd if=/dev/zero of=${g.state}/filler bs=4096 2>/dev/null; true`]);
    try {
      const mark = agent.logs.length;
      await change();
      await agent.waitForLog('could not persist the applied ruleset', 10_000, mark);
      const s = await status();
      expect(s.problems.some((p) => /ENOSPC|state|persist/i.test(`${p.source} ${p.error}`))).toBe(true);
    } finally {
      rmSync(path.join(g.state, 'filler'), { force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('the input: the Firewall deleted and recreated, a burst of 1,000 changes, a huge policy', () => {
  let g: Group;
  let agent: AgentProcess;
  let open: number | undefined;

  beforeAll(async () => {
    g = group('input');
    writeBase(g);
    setMode('pass');
    agent = startAgent(g);
    await agent.waitForLog(/^connected/);
  });

  afterAll(async () => {
    await agent?.stop();
  });

  test('the Firewall file deleted: the last ruleset stays (stale, shown); recreated: a change made meanwhile is enforced', async () => {
    await fault('Firewall deleted and recreated', async () => {
      const before = await kernelFp();
      const fwFile = path.join(g.input, 'firewall.yaml');
      const text = readFileSync(fwFile, 'utf8');
      const mark = agent.logs.length;
      rmSync(fwFile);
      await agent.waitForLog(/no Firewall .* keeping the current ruleset/, 10_000, mark);
      const port = nextPort();
      writeChange(g, port);
      const s = await eventually('stale in /status', async () => {
        const st = await status();
        return st.stale && st.problems.some((p) => p.source === 'input' && /no Firewall/.test(p.error)) ? st : undefined;
      }, 10_000, 200);
      expect(s.state).toBe('connected');
      expect(metric(await metrics(), 'firewall_agent_state', 'state="stale"')).toBe(1);
      expect((await http('/readyz')).status).not.toBe(200);
      await sleep(INTERVAL_MS + 500); // a periodic run while it is gone: still nothing changes
      expect(await kernelFp()).toBe(before);
      expect(await reach([ALLOWED, port, 22])).toEqual([true, false, false]);
      const recoverMs = await timeToOpen(port, () => writeFileSync(fwFile, text));
      open = port;
      await eventually('not stale', async () => !(await status()).stale, 10_000, 200);
      expect(metric(await metrics(), 'firewall_agent_state', 'state="connected"')).toBe(1);
      return { recoverMs };
    });
  });

  test('a burst of 1,000 policy files written at once, rewritten, then deleted: the final state is enforced each time', async () => {
    await fault('burst of 1,000 policy changes (x3)', async (fig) => {
      const dir = path.join(g.input, 'policies', 'burst');
      mkdirSync(dir);
      const file = (i: number): string => path.join(dir, `burst-${String(i).padStart(4, '0')}.yaml`);
      const addr = (i: number): string => `100.64.${Math.floor(i / 256)}.${i % 256}/32`;
      const applies0 = metric(await metrics(), 'firewall_agent_applies_total', 'sync="incremental"') + metric(await metrics(), 'firewall_agent_applies_total', 'sync="full"');
      const [p1, p2] = [nextPort(), nextPort()];
      // 1,000 new files; the last one written opens p1
      const created = await timeToOpen(p1, () => {
        for (let i = 0; i < 1000; i++) writeFileSync(file(i), i === 999 ? egress(`burst-${i}`, '203.0.113.10/32', p1) : egress(`burst-${i}`, addr(i), 8443));
      });
      const answered = await http('/status', 5000);
      expect(answered.status).toBe(200);
      // every file rewritten; the last one moves from p1 to p2
      const rewritten = await timeToOpen(p2, () => {
        for (let i = 0; i < 1000; i++) writeFileSync(file(i), i === 999 ? egress(`burst-${i}`, '203.0.113.10/32', p2) : egress(`burst-${i}`, addr(i), 8444));
      });
      expect(await reach([p1, 22, ...(open ? [open] : [])])).toEqual([false, false, ...(open ? [true] : [])]);
      await eventually('1,000 + 2 policies deployed', async () => (await status()).policies.deployed === 1002 || undefined, 20_000, 200);
      // all deleted
      const deleted = await timeToClose(p2, () => rmSync(dir, { recursive: true }));
      await eventually('2 policies deployed', async () => (await status()).policies.deployed === 2 || undefined, 20_000, 200);
      const m = await metrics();
      const applies = metric(m, 'firewall_agent_applies_total', 'sync="incremental"') + metric(m, 'firewall_agent_applies_total', 'sync="full"') - applies0;
      expect(metric(m, 'firewall_agent_apply_failures_total')).toBe(0);
      fig.note = `to enforced: created ${created} ms, rewritten ${rewritten} ms, deleted ${deleted} ms; ${applies} applies for 3,000 file changes; /status answered in ${answered.ms} ms during the burst`;
      return { recoverMs: Math.max(created, rewritten, deleted) };
    });
  });

  test('a valid but huge policy: 100,000 prefixes as two objects of 50,000 are enforced; one object of 100,000 is refused with the reason; the agent stays responsive', async () => {
    await fault('huge policy (100,000 prefixes)', async (fig) => {
      const port = nextPort();
      // every other address (no two adjacent, so nothing merges into ranges); the first list also holds 203.0.113.10
      const prefixes = (base: number, n: number): { cidr: string }[] =>
        Array.from({ length: n }, (_, i) => {
          const a = base + 2 * i;
          return { cidr: `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/32` };
        });
      const at = (a: number, b: number): number => ((100 << 24) | (a << 16) | (b << 8)) >>> 0;
      const huge = (name: string, to: { cidr: string }[]): string => JSON.stringify(cwnp(name, { egress: [{ to, ports: [{ protocol: 'TCP', port }] }] }));
      const dir = path.join(g.input, 'policies', 'huge');
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'too-big.json'), huge('huge-too-big', prefixes(at(112, 0), 100_000)));
      const t0 = Date.now();
      writeFileSync(path.join(dir, 'huge-a.json'), huge('huge-a', [{ cidr: '203.0.113.10/32' }, ...prefixes(at(64, 0), 49_999)]));
      writeFileSync(path.join(dir, 'huge-b.json'), huge('huge-b', prefixes(at(96, 0), 50_000)));
      // responsive while it reads, compiles and applies
      let slowest = 0;
      let answers = 0;
      const watching = (async () => {
        while (!(await reach([port], 200))[0]) {
          const a = await http('/healthz', 5000);
          expect(a.status).toBe(200);
          slowest = Math.max(slowest, a.ms);
          answers++;
          if (Date.now() - t0 > 60_000) throw new Error(`port ${port} not open after 60 s`);
        }
      })();
      await watching;
      const enforcedMs = Date.now() - t0;
      const s = await status();
      const problem = s.inputProblems.find((p) => p.origin.endsWith('too-big.json'));
      expect(problem?.error).toMatch(/more than the 1\.5 MiB an API server stores for one object/);
      expect(s.policies.deployed).toBeGreaterThanOrEqual(4);
      expect(metric(await metrics(), 'firewall_agent_input_problems')).toBe(1);
      expect(await reach([ALLOWED, 22, 9000])).toEqual([true, false, false]);
      const removed = await timeToClose(port, () => rmSync(dir, { recursive: true }));
      await eventually('the input problem gone', async () => (await status()).inputProblems.length === 0, 20_000, 200);
      fig.note = `enforced ${enforcedMs} ms after writing; removed in ${removed} ms; /healthz answered ${answers} times, slowest ${slowest} ms`;
      return { recoverMs: enforcedMs };
    });
  });
});

// ---------------------------------------------------------------------------------------------

const METAL = ['table inet metal {', '  chain forward {', '    type filter hook forward priority 0; policy drop;', '    ct state established,related accept', '  }', '}', ''].join('\n');

async function metalPolicy(): Promise<string | undefined> {
  const listing = await lab.nft.listTable('inet', 'metal');
  return listing === undefined ? undefined : /policy (\w+);/.exec(listing)?.[1];
}

describe('someone else changes the kernel: the ruleset flushed, our table deleted, an accept rule inserted, the legacy nftables.service reloaded', () => {
  let g: Group;
  let agent: AgentProcess;

  beforeAll(async () => {
    g = group('tamper');
    writeBase(g);
    setMode('pass');
    agent = startAgent(g);
    await agent.waitForLog(/^connected/);
  });

  afterAll(async () => {
    await agent?.stop();
    await lab.run('fw', ['nft', 'delete table inet metal']);
  });

  /**
   * Tampers, then measures until the kernel holds our table again and the allowed port works:
   * within spec.interval (2 s) plus one verify and apply. Forwarding is open meanwhile when the
   * tampering removed the drop (that exposure is recorded, not the agent's).
   */
  async function tamper(name: string, act: string[] | { stdin: string }, opts: { opensForwarding: boolean }): Promise<void> {
    await fault(
      name,
      async () => {
        const expected = await persisted(g);
        const m0 = await metrics();
        const repairs0 = metric(m0, 'firewall_agent_drift_repairs_total');
        const status0 = await status();
        const mark = agent.logs.length;
        const t0 = Date.now();
        const r = Array.isArray(act) ? await lab.run('fw', ['nft', ...act]) : await lab.run('fw', ['nft', '-f', '-'], act.stdin);
        expect(r.stderr).toBe('');
        await eventually('our table back', async () => (await kernelFp()) === expected, 15_000, 25);
        const repairMs = Date.now() - t0;
        if (opts.opensForwarding) exposureWindows.push({ fault: name, from: t0, to: Date.now() + 500 });
        // spec.interval plus a verify and an apply; twice the interval because a periodic check is
        // sometimes skipped (see the runner test below)
        expect(repairMs).toBeLessThan(2 * INTERVAL_MS + 1500);
        await agent.waitForLog('the kernel no longer holds the applied ruleset; repairing', 5000, mark);
        expect(metric(await metrics(), 'firewall_agent_drift_repairs_total')).toBe(repairs0 + 1);
        const s = await status();
        expect(s.syncs.full).toBe(status0.syncs.full + 1);
        expect(s.lastApply).not.toBe(status0.lastApply);
        expect(await reach([ALLOWED, 22, 9000])).toEqual([true, false, false]);
        return { recoverMs: repairMs };
      },
      { exposure: opts.opensForwarding },
    );
  }

  test('nft flush ruleset: repaired within the interval', async () => {
    await tamper('ruleset flushed (nft flush ruleset)', ['flush', 'ruleset'], { opensForwarding: true });
  });

  test('our table deleted: repaired within the interval', async () => {
    await tamper('our table deleted', ['delete', 'table', 'inet', 'firewall'], { opensForwarding: true });
  });

  test('an accept rule inserted at the top of our forward chain: removed within the interval', async () => {
    await tamper('accept rule inserted into our forward chain', ['insert', 'rule', 'inet', 'firewall', 'forward', 'accept'], { opensForwarding: true });
  });

  test('nftables.service reloaded with a flush: the legacy inet metal table (forward policy drop) replaces ours; repaired and relaxed within the interval', async () => {
    await tamper('legacy nftables.service reload (flush ruleset + inet metal, forward drop)', { stdin: `flush ruleset\n${METAL}` }, { opensForwarding: false });
    expect(await metalPolicy()).toBe('accept');
  });

  // Was a bug, fixed since (src/sync/loop.ts periodic, src/nft/applier.ts verify/legacyRelax): the periodic check
  // compares only our table with what was applied; the legacy table is relaxed only inside a full
  // apply. When the legacy `inet metal` forward chain is set back to policy drop without touching
  // our table (nftables.service reloading a rules file without `flush ruleset`, as metal's does),
  // every allowed connection is dropped (closed, not open) until the next full apply: a Firewall
  // change, a failure, or the 30-minute full resync. Expected: verify also checks the legacy
  // chain's policy and relaxes it again within spec.interval.
  test('nftables.service reloaded without a flush (inet metal forward policy back to drop): allowed traffic works again within the interval', async () => {
    await fault('legacy inet metal reloaded without flush (forward policy drop)', async () => {
      const r = await lab.run('fw', ['nft', '-f', '-'], METAL);
      expect(r.stderr).toBe('');
      expect(await metalPolicy()).toBe('drop');
      const t0 = Date.now();
      try {
        await eventually('allowed traffic again', async () => (await reach([ALLOWED], 300))[0], 2 * INTERVAL_MS + 1500, 100);
        return { recoverMs: Date.now() - t0 };
      } finally {
        expect(await reach([22, 9000])).toEqual([false, false]); // closed, not open
        await lab.run('fw', ['nft', 'delete table inet metal']);
      }
    });
  });

  // Was a bug, fixed since (src/sync/runner.ts fire): whether a run is the periodic one (drift check and cleanup) is
  // decided by comparing the wall clock with lastEnd + maxInterval, but Node's timers may fire a
  // millisecond before that by Date.now() (libuv's loop clock is not the wall clock): the run then
  // only enforces, and the drift check waits a whole interval more. In the lab, with spec.interval
  // 2 s, 2 of 12 table deletions were repaired only after 2.4 and 3.4 s (others 0.5–1.4 s); a
  // runner on the real clock with no requests at all marked 2 of 42 timer runs non-periodic.
  // Modelled here deterministically with a clock whose timers fire 1 ms early. Expected: the run
  // that the periodic deadline's timer starts is periodic (e.g. remember why the timer was set).
  test('the runner: a periodic timer firing 1 ms early by the wall clock still runs the periodic check', async () => {
    class EarlyClock extends FakeClock {
      override after(ms: number, fn: () => void): Timer {
        return super.after(Math.max(0, ms - 1), fn);
      }
    }
    const clock = new EarlyClock();
    const periodic: boolean[] = [];
    const runner = new SyncRunner(
      async (why) => {
        periodic.push(why.periodic);
      },
      { ...RUNNER_DEFAULTS, maxIntervalMs: INTERVAL_MS, clock, random: () => 0 },
    );
    runner.start();
    await clock.advance(5 * INTERVAL_MS + 500);
    await runner.stop();
    expect(periodic.length).toBeGreaterThanOrEqual(5);
    expect(periodic.slice(1).filter(Boolean).length).toBeGreaterThanOrEqual(4);
  });
});

// ---------------------------------------------------------------------------------------------

describe('a clock jump of hours (the agent alone: Date.now() moved by a preloaded module)', () => {
  const HOURS_3 = 3 * 3600_000;
  let g: Group;
  let agent: AgentProcess;
  let offsetFile: string;
  let open: number | undefined;

  async function jump(offsetMs: number): Promise<void> {
    writeFileSync(offsetFile, String(offsetMs));
    await sleep(400); // read every 100 ms
  }

  /** A policy change is enforced, and our deleted table comes back: the loop is alive after the jump. */
  async function stillEnforcing(fig: Figure): Promise<{ recoverMs: number }> {
    const port = nextPort();
    const changeMs = await timeToOpen(port, () => writeChange(g, port), 6000);
    if (open) expect((await reach([open]))[0]).toBe(false);
    open = port;
    const expected = await kernelFp();
    const t0 = Date.now();
    await lab.run('fw', ['nft', 'delete', 'table', 'inet', 'firewall']);
    exposureWindows.push({ fault: fig.fault, from: t0, to: t0 + 2 * INTERVAL_MS + 2000 });
    await eventually('our table back', async () => (await kernelFp()) === expected, 2 * INTERVAL_MS + 1500, 25);
    exposureWindows[exposureWindows.length - 1]!.to = Date.now() + 500;
    const repairMs = Date.now() - t0;
    expect((await http('/healthz')).status).toBe(200);
    expect(await reach([ALLOWED, 22])).toEqual([true, false]);
    fig.note = `change enforced in ${changeMs} ms, deleted table back in ${repairMs} ms`;
    return { recoverMs: Math.max(changeMs, repairMs) };
  }

  beforeAll(async () => {
    g = group('clock');
    writeBase(g);
    offsetFile = path.join(g.root, 'clock-offset');
    writeFileSync(offsetFile, '0');
    setMode('pass');
    agent = startAgent(g, { nodeArgs: ['--require', path.join(FAULTS, 'clock.js')], env: [`FWA_CLOCK_OFFSET_FILE=${offsetFile}`] });
    await agent.waitForLog(/^connected/);
  });

  afterAll(async () => {
    await agent?.stop();
  });

  test('3 hours forwards: changes are enforced and drift repaired as before', async () => {
    await fault('clock jump 3 h forwards', async (fig) => {
      await jump(HOURS_3);
      return stillEnforcing(fig);
    }, { exposure: true });
  });

  // BUG (src/sync/runner.ts refill/nextAt, clock.ts realClock): the runner's token bucket and its
  // deadlines are on the wall clock. After the clock goes back 3 hours, refill() earns a hugely
  // negative number of tokens and `lastEnd + maxInterval` lies 3 hours ahead: no change is
  // enforced and no drift is repaired until the wall clock has caught up (3 hours; closed, the
  // last ruleset stays, but enforcement stops). Expected: a monotonic clock for the runner
  // (performance.now() / process.hrtime), or clamping negative elapsed times.
  test.failing('3 hours backwards: changes are enforced and drift repaired as before', async () => {
    await fault('clock jump 3 h backwards', async (fig) => {
      await jump(0);
      return stillEnforcing(fig);
    }, { exposure: true });
  });
});

// ---------------------------------------------------------------------------------------------

test('the background probes: no never-allowed connection got through outside the windows in which someone else had removed the ruleset', async () => {
  const results: LeakResult[] = [];
  for (const p of leakProbes) results.push(...(await p.stop()));
  leakProbes = [];
  probeResults = results;
  const outside = results.flatMap((r) => r.leakedAt.filter((t) => !exposureWindows.some((w) => t >= w.from && t <= w.to)).map((t) => `${r.host}:${r.port} at ${new Date(t).toISOString()}`));
  expect(outside).toEqual([]);
  expect(results.reduce((a, r) => a + r.attempts, 0)).toBeGreaterThan(100);
});
