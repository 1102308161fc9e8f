/**
 * What the agent benchmarks (agent.ts, idle.ts) share: seed and shoot API servers with the lab,
 * bulk creation of policies, the agent as a process (behind an `nft` wrapper that logs every nft
 * it runs, with the inspector open for forced GCs), traffic probes that report when traffic
 * followed, and readings of /metrics, /status and /proc.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, exampleFirewall } from '../../test/helpers';
import { AgentProcess } from '../../test/kube/agent-process';
import { ControlPlane } from '../../test/kube/controlplane';
import { Rest, eventually } from '../../test/kube/rest';
import { boundToken, installLandscape, kubeconfig } from '../../test/kube/setup';
import { Lab } from '../../test/lab/lab';

export type Json = Record<string, unknown>;
export const SEED_NS = 'shoot--bench';
export const FW_NAME = 'bench-firewall';
export const CWNPS = '/apis/metal-stack.io/v1/namespaces/firewall/clusterwidenetworkpolicies';

export function line(name: string, value: string, target?: string, met?: boolean): void {
  const verdict = met === undefined ? '' : met ? '  [target met]' : '  [target MISSED]';
  console.log(`${name.padEnd(58)} ${value}${target ? `  (target ${target})` : ''}${verdict}`);
}

export function note(text: string): void {
  console.log(`# ${text}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function pct(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Creates objects with `parallel` requests in flight at once. */
export async function createAll(rest: Rest, objs: readonly Json[], parallel = 16): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < objs.length) {
        const o = objs[next++]!;
        await rest.post(CWNPS, o);
      }
    }),
  );
}

/** Until every policy in the shoot has a status (the agent's first write-back of each is done). */
export async function statusesWritten(rest: Rest, count: number, timeoutMs: number): Promise<void> {
  await eventually(
    `statuses of ${count} policies written`,
    async () => {
      const list = (await rest.get(CWNPS)) as unknown as { items: { status?: { state?: string } }[] };
      return list.items.length >= count && list.items.every((o) => o.status?.state);
    },
    timeoutMs,
    // listing every policy is not free for the API server either: less often for large sets
    Math.max(3000, count / 3),
  );
}

/** Seed and shoot API servers with the landscape and a Firewall (spec.interval 10 s), and the lab. */
export class Landscape {
  private constructor(
    readonly seed: ControlPlane,
    readonly shoot: ControlPlane,
    readonly lab: Lab,
    readonly dir: string,
  ) {}

  static async start(): Promise<Landscape> {
    const [seed, shoot] = await Promise.all([ControlPlane.start({ name: 'seed' }), ControlPlane.start({ name: 'shoot' })]);
    const lab = await Lab.create();
    const dir = mkdtempSync(path.join(tmpdir(), 'fwa-bench-'));
    const l = new Landscape(seed, shoot, lab, dir);
    try {
      await installLandscape(seed, shoot, SEED_NS);
      writeFileSync(path.join(dir, 'seed.kubeconfig'), kubeconfig(seed, SEED_NS, { token: await boundToken(seed.admin, SEED_NS, 'firewall-agent', 't1') }));
      writeFileSync(path.join(dir, 'shoot.kubeconfig'), kubeconfig(shoot, 'shoot', { token: await boundToken(shoot.admin, 'firewall', 'firewall-agent', 't1') }));
      const fw = exampleFirewall();
      (fw.metadata as Json).name = FW_NAME;
      (fw.metadata as Json).namespace = SEED_NS;
      await seed.admin.post(`/apis/firewall.metal-stack.io/v2/namespaces/${SEED_NS}/firewalls`, { ...fw, status: undefined });
      await seed.admin.patch(`/apis/firewall.metal-stack.io/v2/namespaces/${SEED_NS}/firewalls/${FW_NAME}/status`, { status: fw.status });
    } catch (e) {
      await l.stop();
      throw e;
    }
    return l;
  }

  get api(): Rest {
    return this.shoot.admin;
  }

  /** `nft` in the lab's firewall namespace, with the real binary (not the agent's wrapper). */
  fwNft(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return this.lab.run('fw', ['nft', ...args], stdin);
  }

  async stop(): Promise<void> {
    await this.lab.destroy();
    await Promise.all([this.seed.stop(), this.shoot.stop()]);
    rmSync(this.dir, { recursive: true, force: true }); // kubeconfigs and the agent's state (tens of MB at 30,000)
  }
}

/** One nft run the agent made: its arguments and, when GNU time is there to measure it, its cost. */
export interface NftRun {
  readonly argv: string;
  /** CPU seconds (user + system) of the nft process; NaN without /usr/bin/time. */
  readonly cpu: number;
  readonly wallS: number;
}

/**
 * An `nft` first in the agent's PATH that logs each run and runs the real one (`ip netns exec NS
 * nft …` finds it through PATH). With /usr/bin/time (GNU) the log line is written when nft ends,
 * with its user and system CPU and wall time; without, it is the argv alone, from a shell
 * built-in, and the shell execs nft. Either way the wrapper adds next to no CPU of its own, and
 * nft's CPU still lands in the agent's cutime/cstime.
 */
export class NftWrapper {
  readonly binDir: string;
  readonly logFile: string;
  readonly timed: boolean;

  constructor() {
    this.binDir = mkdtempSync(path.join(tmpdir(), 'fwa-nftwrap-'));
    this.logFile = path.join(this.binDir, 'nft.log');
    const real = execFileSync('sh', ['-c', 'command -v nft'], { encoding: 'utf8' }).trim();
    if (!real) throw new Error('nft not found');
    writeFileSync(this.logFile, '');
    this.timed = existsSync('/usr/bin/time');
    const script = this.timed
      ? `#!/bin/sh\nexec /usr/bin/time -a -o '${this.logFile}' -f "%U %S %e\t$*" '${real}' "$@"\n`
      : `#!/bin/sh\nprintf 'NaN NaN NaN\\t%s\\n' "$*" >> '${this.logFile}'\nexec '${real}' "$@"\n`;
    writeFileSync(path.join(this.binDir, 'nft'), script);
    chmodSync(path.join(this.binDir, 'nft'), 0o755);
  }

  /** Every nft run so far (GNU time's "Command exited with non-zero status" lines left out). */
  runs(): NftRun[] {
    const text = existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
    const out: NftRun[] = [];
    for (const l of text.split('\n')) {
      const tab = l.indexOf('\t');
      if (tab < 0) continue;
      const [u, s, e] = l.slice(0, tab).split(' ').map(Number);
      out.push({ argv: l.slice(tab + 1), cpu: u! + s!, wallS: e! });
    }
    return out;
  }

  remove(): void {
    rmSync(this.binDir, { recursive: true, force: true });
  }

  /** How many runs so far: a mark for since(). */
  mark(): number {
    return this.runs().length;
  }

  since(mark: number): NftRun[] {
    return this.runs().slice(mark);
  }
}

/**
 * nft runs by kind, most frequent first: `` `-f -` 12 (0.35 s CPU, 0.40 s each) ``; counts divided
 * by `per` (e.g. per change) when given.
 */
export function nftKinds(runs: readonly NftRun[], per = 1): string {
  const kinds = new Map<string, NftRun[]>();
  for (const r of runs) kinds.set(r.argv, [...(kinds.get(r.argv) ?? []), r]);
  const fmt = (n: number): string => (per === 1 ? String(n) : (n / per).toFixed(2));
  return [...kinds.entries()]
    .sort((a, b) => b[1].length - a[1].length)
    .map(([k, rs]) => {
      const cpu = rs.reduce((sum, r) => sum + r.cpu, 0);
      const wall = rs.map((r) => r.wallS).sort((x, y) => x - y);
      const cost = Number.isFinite(cpu) ? ` (${cpu.toFixed(2)} s CPU in all, median ${pct(wall, 0.5).toFixed(2)} s each)` : '';
      return `\`${k}\` ${fmt(rs.length)}${cost}`;
    })
    .join(', ');
}

export interface AgentHandle {
  readonly proc: AgentProcess;
  readonly metricsPort: number;
  readonly inspectPort: number;
  /** Date.now() just before the process was spawned. */
  readonly startedAt: number;
}

/** The node options systemd/firewall-agent.service sets (NODE_OPTIONS), so the agent runs as there. */
export function unitNodeOptions(): string[] {
  const unit = readFileSync(path.join(ROOT, 'systemd', 'firewall-agent.service'), 'utf8');
  return /^Environment=NODE_OPTIONS=(.+)$/m.exec(unit)?.[1]?.trim().split(/\s+/) ?? [];
}

/** Starts `firewall-agent run` against the landscape, with nft behind the wrapper and the inspector on loopback. */
export async function startAgent(l: Landscape, nft: NftWrapper, stateDir: string): Promise<AgentHandle> {
  const metricsPort = await freePort();
  const inspectPort = await freePort();
  const args = [
    '--seed-kubeconfig', path.join(l.dir, 'seed.kubeconfig'),
    '--shoot-kubeconfig', path.join(l.dir, 'shoot.kubeconfig'),
    '--firewall-name', FW_NAME,
    '--netns', l.lab.ns.fw,
    '--state-dir', stateDir,
    '--metrics-address', `127.0.0.1:${metricsPort}`,
  ];
  // AgentProcess spawns with this process's environment: the wrapper goes first in PATH for the
  // agent only (spawn copies the environment at once), not for the lab's own nft calls.
  const saved = process.env.PATH;
  process.env.PATH = `${nft.binDir}:${saved ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`;
  let proc: AgentProcess;
  const startedAt = Date.now();
  try {
    // The node options the systemd unit sets (the heap cap); the inspector only listens
    // (nothing attached until a forced GC).
    proc = new AgentProcess(args, [...unitNodeOptions(), `--inspect=127.0.0.1:${inspectPort}`]);
  } finally {
    process.env.PATH = saved;
  }
  return { proc, metricsPort, inspectPort, startedAt };
}

export interface Scrape {
  text: string;
  ms: number;
  rss: number;
  heap: number;
  deployed: number;
}

export async function scrape(port: number): Promise<Scrape> {
  const t = performance.now();
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const ms = performance.now() - t;
  const v = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
  return {
    text,
    ms,
    rss: v(/^process_resident_memory_bytes (\S+)/m) / 2 ** 20,
    heap: v(/^nodejs_heap_size_used_bytes (\S+)/m) / 2 ** 20,
    deployed: v(/^firewall_agent_objects\{kind="ClusterwideNetworkPolicy",outcome="deployed"\} (\S+)/m),
  };
}

export async function deployed(port: number): Promise<number> {
  try {
    return (await scrape(port)).deployed;
  } catch {
    return NaN; // not serving yet
  }
}

export async function status(port: number): Promise<Json> {
  return (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Json;
}

/** Heap used as scraped includes garbage not yet collected: the lowest of 10 samples a second apart. */
export async function lowestOf10(port: number): Promise<{ rss: number; heapMin: number }> {
  const samples: Scrape[] = [];
  for (let i = 0; i < 10; i++) {
    samples.push(await scrape(port));
    await sleep(1000);
  }
  return { rss: samples[samples.length - 1]!.rss, heapMin: Math.min(...samples.map((m) => m.heap)) };
}

/**
 * The agent's memory after a forced full GC, through its inspector: HeapProfiler.collectGarbage,
 * then process.memoryUsage() evaluated inside it. MiB.
 */
export async function memoryAfterGc(inspectPort: number): Promise<{ rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number }> {
  const list = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const ws = new WebSocket(list[0]!.webSocketDebuggerUrl);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('inspector websocket failed'));
  });
  const pending = new Map<number, (m: Json) => void>();
  ws.onmessage = (ev: MessageEvent) => {
    const m = JSON.parse(String(ev.data)) as Json;
    if (typeof m.id === 'number') pending.get(m.id)?.(m);
  };
  let id = 0;
  const send = (method: string, params: Json = {}): Promise<Json> =>
    new Promise((resolve, reject) => {
      const i = ++id;
      const timer = setTimeout(() => reject(new Error(`${method}: no answer`)), 60_000);
      pending.set(i, (m) => {
        clearTimeout(timer);
        if (m.error) reject(new Error(`${method}: ${JSON.stringify(m.error)}`));
        else resolve(m);
      });
      ws.send(JSON.stringify({ id: i, method, params }));
    });
  try {
    await send('HeapProfiler.collectGarbage');
    await send('HeapProfiler.collectGarbage'); // weak references and finalizers freed by the first
    const r = await send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
    const mu = JSON.parse(((r.result as Json).result as Json).value as string) as Record<string, number>;
    const mib = (k: string): number => mu[k]! / 2 ** 20;
    return { rss: mib('rss'), heapUsed: mib('heapUsed'), heapTotal: mib('heapTotal'), external: mib('external'), arrayBuffers: mib('arrayBuffers') };
  } finally {
    ws.close();
  }
}

let clkTck: number | undefined;

/**
 * CPU seconds of a process and its waited-for children (utime + stime + cutime + cstime from
 * /proc/PID/stat): the agent's nft and ip runs land in cutime/cstime once they have exited.
 */
export function cpuSeconds(pid: number): number {
  clkTck ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clkTck;
}

/** The agent's own CPU seconds and its children's, separately. */
export function cpuSplit(pid: number): { self: number; children: number } {
  clkTck ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { self: (Number(f[11]) + Number(f[12])) / clkTck, children: (Number(f[13]) + Number(f[14])) / clkTck };
}

/**
 * A running until.js probe in a lab namespace: resolves with the wall-clock time traffic followed
 * (open: first connect; closed: first of two dropped attempts), or undefined if it never did.
 */
export interface Waiter {
  readonly result: Promise<number | undefined>;
  kill(): void;
}

export async function waitTraffic(l: Landscape, from: 'worker', host: string, port: number, until: 'open' | 'closed', forMs = 20_000): Promise<Waiter> {
  const script = path.join(__dirname, 'until.js');
  const child: ChildProcess = spawn('ip', ['netns', 'exec', l.lab.ns[from], process.execPath, script, JSON.stringify({ host, port, until, forMs })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let ready: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const result = new Promise<number | undefined>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) ready();
    });
    child.on('exit', () => {
      ready();
      const last = out.trim().split('\n').pop() ?? '';
      try {
        const r = JSON.parse(last) as { ok: boolean; at: number };
        resolve(r.ok ? r.at : undefined);
      } catch {
        reject(new Error(`until.js: ${out}`));
      }
    });
  });
  await isReady;
  return { result, kill: () => child.kill('SIGKILL') };
}
