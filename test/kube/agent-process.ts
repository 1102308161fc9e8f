/** The agent as a real process (`firewall-agent run`), with its JSON log lines collected. */
import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers';
import { eventually } from './rest';

export type LogLine = Record<string, unknown> & { msg: string; level: string };

export class AgentProcess {
  readonly logs: LogLine[] = [];
  private readonly child: ChildProcess;
  private stderr = '';

  /** `prefix` runs the agent through another command, e.g. `ip netns exec NS` (the agent inside a namespace). */
  constructor(args: string[], nodeArgs: string[] = [], prefix: string[] = []) {
    const argv = [...prefix, process.execPath, ...nodeArgs, path.join(ROOT, 'dist', 'cli.js'), 'run', ...args];
    this.child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ msg: line, level: 'raw' });
        }
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    process.on('exit', () => this.child.kill('SIGKILL'));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stderrText(): string {
    return this.stderr;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Resident memory in MiB, from /proc. */
  rssMiB(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
  }

  waitForLog(what: string | RegExp | ((line: LogLine) => boolean), timeoutMs = 30_000, after = 0): Promise<LogLine> {
    return eventually(
      `agent log ${String(what)}`,
      async () => {
        if (this.exited) throw new Error(`agent exited: ${this.stderr}\n${this.dump()}`);
        return this.logs.slice(after).find((l) => (typeof what === 'string' ? l.msg === what : typeof what === 'function' ? what(l) : what.test(l.msg)));
      },
      timeoutMs,
      50,
    );
  }

  dump(last = 40): string {
    return this.logs
      .slice(-last)
      .map((l) => JSON.stringify(l))
      .join('\n');
  }

  /** Ends the agent at once, as a crash would (no cleanup of any kind). */
  async kill(): Promise<void> {
    if (this.exited) return;
    await new Promise<void>((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.kill('SIGKILL');
    });
  }

  async stop(): Promise<number | null> {
    if (this.exited) return this.child.exitCode;
    return new Promise((resolve) => {
      const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      this.child.once('exit', (code) => {
        clearTimeout(t);
        resolve(code);
      });
      this.child.kill('SIGTERM');
    });
  }
}
