/**
 * Helpers for the churn tests (atomicity.test.ts, soak.test.ts): a long-running traffic generator
 * inside a lab namespace (traffic.js), ground-truth packet counters at both ends of a path, and
 * the agent's kernel counters as nft lists them.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from '../helpers';
import { Host, Lab } from './lab';

export interface TrafficTarget {
  id: string;
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  /** A TCP connect or UDP reply not seen by then is a failure. */
  timeoutMs?: number;
  /** Between two attempts. */
  pauseMs?: number;
}

export interface FlowSpec {
  id: string;
  host: string;
  port: number;
  intervalMs?: number;
}

export interface Attempt {
  id: string;
  /** Start and end, wall clock ms (the same clock as the test's Date.now()). */
  s: number;
  e: number;
  ok: boolean;
  /** The local (source) port. */
  port: number;
}

export interface FlowResult {
  id: string;
  connected: boolean;
  /** Why the flow ended before the stop, or null. */
  broken: string | null;
  sent: number;
  echoed: number;
  outOfOrder: number;
  maxGapMs: number;
  maxRttMs: number;
  firstEchoAt: number;
  lastEchoAt: number;
}

/** traffic.js in a lab namespace, for as long as the test needs it. */
export class Traffic {
  private out = '';
  private err = '';
  private exited = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly targets: TrafficTarget[],
    private readonly outDir: string,
  ) {
    child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    // 'close', not 'exit': the result line may still be in the pipe when the process has exited
    child.on('close', () => (this.exited = true));
  }

  static async start(lab: Lab, host: Host, targets: TrafficTarget[], flows: FlowSpec[] = []): Promise<Traffic> {
    const script = path.join(ROOT, 'test', 'lab', 'traffic.js');
    // `ip netns exec` execs node: the child's pid is the generator's own.
    const outDir = mkdtempSync(path.join(tmpdir(), 'fwa-traffic-'));
    const out = path.join(outDir, 'result.json');
    const child = spawn('ip', ['netns', 'exec', lab.ns[host], process.execPath, script, JSON.stringify({ targets, flows, out })], { stdio: ['pipe', 'pipe', 'pipe'] });
    const t = new Traffic(child, targets, outDir);
    const until = Date.now() + 15_000;
    while (!t.out.includes('ready\n')) {
      if (t.exited || Date.now() > until) {
        t.kill();
        throw new Error(`traffic generator in ${host} did not start: ${t.err}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return t;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Ends the run: attempts in flight finish, flows drain; returns every attempt and each flow. */
  async stop(): Promise<{ attempts: Attempt[]; flows: FlowResult[] }> {
    this.child.stdin!.end();
    const until = Date.now() + 30_000;
    while (!this.exited && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    if (!this.exited) {
      this.kill();
      throw new Error(`traffic generator did not stop: ${this.err}`);
    }
    if (!this.out.includes('done\n')) throw new Error(`traffic generator ended without a result: ${this.err}`);
    const r = JSON.parse(readFileSync(path.join(this.outDir, 'result.json'), 'utf8')) as { records: [number, number, number, number, number][]; flows: FlowResult[] };
    rmSync(this.outDir, { recursive: true, force: true });
    return { attempts: r.records.map(([i, s, e, ok, port]) => ({ id: this.targets[i]!.id, s, e, ok: ok === 1, port })), flows: r.flows };
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
    rmSync(this.outDir, { recursive: true, force: true });
  }
}

/** Where a ground-truth counter counts: new TCP connections (SYN without ACK) or UDP datagrams. */
export interface CountedPath {
  id: string;
  proto: 'tcp' | 'udp';
  daddr: string;
  port: number;
  /** output: leaving this host (the sender's side); input: arriving at it (the receiver's side). */
  hook: 'input' | 'output';
}

function counterName(id: string): string {
  return `c_${id.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/**
 * Counters in a table of their own in `host` (`inet fwa_churn_count`): SYNs (retransmits
 * included) or UDP datagrams per path. The sender's output and the receiver's input see every
 * packet the firewall forwarded, whatever the sockets make of it: the ground truth for "dropped"
 * and "leaked".
 */
export async function groundTruth(lab: Lab, host: Exclude<Host, 'fw'>, paths: CountedPath[]): Promise<() => Promise<Record<string, number>>> {
  const lines = ['table inet fwa_churn_count {'];
  for (const p of paths) lines.push(`  counter ${counterName(p.id)} { }`);
  for (const hook of ['input', 'output'] as const) {
    lines.push(`  chain ${hook} {`, `    type filter hook ${hook} priority filter; policy accept;`);
    for (const p of paths.filter((x) => x.hook === hook)) {
      const l3 = p.daddr.includes(':') ? 'ip6' : 'ip';
      const l4 = p.proto === 'tcp' ? `tcp dport ${p.port} tcp flags & (syn | ack) == syn` : `udp dport ${p.port}`;
      lines.push(`    ${l3} daddr ${p.daddr} ${l4} counter name "${counterName(p.id)}"`);
    }
    lines.push('  }');
  }
  lines.push('}', '');
  const r = await lab.run(host, ['nft', '-f', '-'], lines.join('\n'));
  if (r.code !== 0) throw new Error(`ground-truth counters in ${host}: ${r.stderr}`);
  return async () => {
    const l = await lab.run(host, ['nft', '-j', 'list', 'table', 'inet', 'fwa_churn_count']);
    if (l.code !== 0) throw new Error(`reading ground-truth counters in ${host}: ${l.stderr}`);
    const byName = new Map<string, number>();
    for (const o of (JSON.parse(l.stdout) as { nftables: Record<string, { name?: string; packets?: number }>[] }).nftables) {
      if (o.counter?.name) byName.set(o.counter.name, o.counter.packets!);
    }
    return Object.fromEntries(paths.map((p) => [p.id, byName.get(counterName(p.id)) ?? NaN]));
  };
}

/**
 * Every packet counter in the agent's table, by a stable key: `counter <name>` for named counters,
 * `<chain>#<index>` for a rule's own counter (the rules of a chain keep their order across applies).
 */
export async function kernelCounters(lab: Lab): Promise<Map<string, number>> {
  const r = await lab.run('fw', ['nft', '-j', 'list', 'table', 'inet', 'firewall']);
  if (r.code !== 0) throw new Error(`nft list table: ${r.stderr}`);
  const out = new Map<string, number>();
  const perChain = new Map<string, number>();
  type Item = { counter?: { name: string; packets: number }; rule?: { chain: string; expr: Record<string, unknown>[] } };
  for (const o of (JSON.parse(r.stdout) as { nftables: Item[] }).nftables) {
    if (o.counter) out.set(`counter ${o.counter.name}`, o.counter.packets);
    if (o.rule) {
      const i = perChain.get(o.rule.chain) ?? 0;
      perChain.set(o.rule.chain, i + 1);
      const c = o.rule.expr.find((e) => typeof e.counter === 'object' && e.counter !== null)?.counter as { packets: number } | undefined;
      if (c) out.set(`${o.rule.chain}#${i}`, c.packets);
    }
  }
  return out;
}

/** One metric's value from the agent's /metrics, fetched from inside the firewall namespace. */
export async function metrics(lab: Lab, port: number): Promise<string> {
  const r = await lab.run('fw', [process.execPath, '-e', `fetch('http://127.0.0.1:${port}/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
  if (r.code !== 0) throw new Error(`fetching metrics: ${r.stderr}`);
  return r.stdout;
}

export function metricValue(text: string, name: string, labels = ''): number {
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`^${esc(name)}${labels ? esc(labels) : ''} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}
