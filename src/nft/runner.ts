/**
 * The edge to the real `nft`: check, apply and list, always with the ruleset on stdin so one
 * invocation is one kernel transaction. A command prefix (e.g. `ip netns exec NS`) lets tests and
 * tools aim at another network namespace.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { EnvironmentError, oneLine } from '../report/errors';
import { NftBaseChain, TableRef } from './ruleset';
import { transactionText } from './serialize';
import { TableStats, parseTableStats } from './stats';
import { Transaction } from './transaction';

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function exec(argv: readonly string[], stdin?: string, timeoutMs = 120_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    // Our own timer rather than spawn's `timeout`: that one is not cleared when the binary cannot be
    // started (ENOENT), which kept the CLI alive for two minutes after saying so.
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (signal ? `killed by ${signal}\n` : ''),
      });
    });
    child.stdin.on('error', () => undefined); // the child may exit before reading everything
    child.stdin.end(stdin ?? '');
  });
}

export class NftError extends Error {
  constructor(
    readonly operation: string,
    readonly result: ExecResult,
  ) {
    super(`nft ${operation} failed (exit ${result.code}): ${result.stderr.trim().split('\n').slice(0, 8).join('\n')}`);
  }
}

/** How to run `nft -c` without root: in a new user namespace (mapped to root there) with its own network namespace. */
export const UNPRIVILEGED_PREFIX: readonly string[] = ['unshare', '--map-root-user', '--net', '--'];

const INSTALL_HINTS: Record<string, string> = {
  nft: 'install nftables (Debian: apt-get install nftables)',
  unshare: 'install util-linux (Debian: apt-get install util-linux)',
  ip: 'install iproute2 (Debian: apt-get install iproute2)',
};

/**
 * When a failed nft run (or the wrapper around it) shows that the environment is the problem and not
 * the ruleset: a missing binary, missing privileges, user namespaces that may not be created.
 * Undefined for everything else (nft refusing the ruleset, input errors, bugs).
 */
export function environmentProblem(e: unknown): EnvironmentError | undefined {
  // Not `instanceof Error`: errors from Node's core may come from another realm (as under jest).
  const errno = (typeof e === 'object' && e !== null ? e : {}) as NodeJS.ErrnoException & { path?: string };
  const spawning = typeof errno.syscall === 'string' && errno.syscall.startsWith('spawn');
  if (spawning && errno.code === 'ENOENT') {
    const bin = errno.path ?? errno.syscall!.slice('spawn '.length);
    return new EnvironmentError(`${bin}: command not found`, INSTALL_HINTS[path.basename(bin)] ?? `install ${bin}`);
  }
  if (spawning && (errno.code === 'EACCES' || errno.code === 'EPERM')) {
    return new EnvironmentError(`${errno.path ?? errno.syscall}: cannot execute (${errno.code})`, 'check the file and its permissions');
  }
  if (!(e instanceof NftError)) return undefined;
  const stderr = e.result.stderr;
  const unshare = /^unshare: .*$/m.exec(stderr);
  if (unshare) {
    return new EnvironmentError(
      `nft ${e.operation}: cannot create a user and network namespace (${unshare[0]})`,
      'user namespaces are not available to this user (user.max_user_namespaces, kernel.unprivileged_userns_clone or ' +
        'kernel.apparmor_restrict_unprivileged_userns); run as root instead',
    );
  }
  if (/Operation not permitted/.test(stderr)) {
    return new EnvironmentError(`nft ${e.operation}: ${oneLine(stderr, 200)}`, 'this needs root (CAP_NET_ADMIN); `check` also works without root');
  }
  return undefined;
}

export interface ListOptions {
  /** Without counter values (`-s`). */
  readonly stateless?: boolean;
  readonly json?: boolean;
  /** Without set and map elements (`-t`): cheap even for huge tables. */
  readonly terse?: boolean;
}

/**
 * Everything the agent does with nft, typed. The real implementation is `NftCli`; `FakeNft`
 * (fake.ts) applies the same transactions to an in-memory table for unit tests.
 */
export interface Nft {
  /** Validates the transaction in the kernel without committing it (`nft -c -f -`). */
  check(tx: Transaction): Promise<void>;
  /** Applies the transaction atomically (`nft -f -`). */
  apply(tx: Transaction): Promise<void>;
  /** The table as nft lists it without counter values (`nft -s list table`); undefined when absent. */
  list(table: TableRef): Promise<string | undefined>;
  /** Named and per-rule counters (`nft -j -t list table`: no set elements); undefined when absent. */
  counters(table: TableRef): Promise<TableStats | undefined>;
  /** A base chain's declaration (e.g. the legacy table's forward chain); undefined when absent. */
  baseChain(table: TableRef, chain: string): Promise<NftBaseChain | undefined>;
  /** Every chain of every table of `family`, without rules (`nft list chains`): cheap at any size. */
  chains(family: string): Promise<string>;
}

export class NftCli implements Nft {
  constructor(
    private readonly prefix: readonly string[] = [],
    private readonly binary = 'nft',
  ) {}

  private argv(args: string[]): string[] {
    return [...this.prefix, this.binary, ...args];
  }

  check(tx: Transaction): Promise<void> {
    return this.checkText(transactionText(tx));
  }

  apply(tx: Transaction): Promise<void> {
    return this.applyText(transactionText(tx));
  }

  async checkText(text: string): Promise<void> {
    const r = await exec(this.argv(['-c', '-f', '-']), text);
    if (r.code !== 0) throw new NftError('check', r);
  }

  async applyText(text: string): Promise<void> {
    const r = await exec(this.argv(['-f', '-']), text);
    if (r.code !== 0) throw new NftError('apply', r);
  }

  list(table: TableRef): Promise<string | undefined> {
    return this.listTable(table.family, table.name, { stateless: true });
  }

  async counters(table: TableRef): Promise<TableStats | undefined> {
    const json = await this.listTable(table.family, table.name, { json: true, terse: true });
    return json === undefined ? undefined : parseTableStats(json);
  }

  async baseChain(table: TableRef, chain: string): Promise<NftBaseChain | undefined> {
    const json = await this.listTable(table.family, table.name, { json: true, terse: true });
    if (!json) return undefined;
    const doc = JSON.parse(json) as { nftables?: Record<string, Record<string, unknown>>[] };
    const c = doc.nftables?.map((i) => i.chain).find((x) => x && x.name === chain && typeof x.hook === 'string');
    if (!c || typeof c.prio !== 'number' || (c.type !== 'filter' && c.type !== 'nat')) return undefined;
    return { type: c.type, hook: c.hook as NftBaseChain['hook'], priority: c.prio, policy: c.policy === 'drop' ? 'drop' : 'accept' };
  }

  async chains(family: string): Promise<string> {
    const r = await exec(this.argv(['list', 'chains', family]));
    if (r.code !== 0) throw new NftError('list', r);
    return r.stdout;
  }

  async listTable(family: string, name: string, opts: ListOptions = {}): Promise<string | undefined> {
    const flags = [...(opts.json ? ['-j'] : []), ...(opts.stateless ? ['-s'] : []), ...(opts.terse ? ['-t'] : [])];
    const r = await exec(this.argv([...flags, 'list', 'table', family, name]));
    if (r.code !== 0) {
      if (/No such file or directory/.test(r.stderr.split('\n')[0] ?? '')) return undefined;
      throw new NftError('list', r);
    }
    return r.stdout;
  }
}

/**
 * How nft itself prints `text` once loaded, obtained in a throw-away network namespace so the live
 * kernel is never touched. Used for readable dry-run diffs and to verify what was applied.
 */
export async function canonicalListing(text: string, family: string, name: string): Promise<string> {
  const r = await exec(['unshare', '--net', '--', 'sh', '-c', `nft -f - && nft -s list table ${family} ${name}`], text);
  if (r.code !== 0) throw new NftError('scratch load', r);
  return r.stdout;
}
