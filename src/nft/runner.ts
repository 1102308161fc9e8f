/**
 * The edge to the real `nft`: check, apply and list, always with the ruleset on stdin so one
 * invocation is one kernel transaction. A command prefix (e.g. `ip netns exec NS`) lets tests and
 * tools aim at another network namespace.
 */
import { spawn } from 'node:child_process';

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function exec(argv: readonly string[], stdin?: string, timeoutMs = 120_000): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (signal ? `killed by ${signal}\n` : ''),
      }),
    );
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

export interface ListOptions {
  /** Without counter values (`-s`). */
  readonly stateless?: boolean;
  readonly json?: boolean;
  /** Without set and map elements (`-t`): cheap even for huge tables. */
  readonly terse?: boolean;
}

export interface Nft {
  /** Validates the transaction in the kernel without committing it (`nft -c -f -`). */
  check(text: string): Promise<void>;
  /** Applies the transaction atomically (`nft -f -`). */
  apply(text: string): Promise<void>;
  /** `nft [-s] list table FAMILY NAME`, or undefined when the table does not exist. */
  listTable(family: string, name: string, opts?: ListOptions): Promise<string | undefined>;
}

export class NftCli implements Nft {
  constructor(
    private readonly prefix: readonly string[] = [],
    private readonly binary = 'nft',
  ) {}

  private argv(args: string[]): string[] {
    return [...this.prefix, this.binary, ...args];
  }

  async check(text: string): Promise<void> {
    const r = await exec(this.argv(['-c', '-f', '-']), text);
    if (r.code !== 0) throw new NftError('check', r);
  }

  async apply(text: string): Promise<void> {
    const r = await exec(this.argv(['-f', '-']), text);
    if (r.code !== 0) throw new NftError('apply', r);
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
