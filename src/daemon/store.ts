/**
 * Persistence under the state directory: what was applied last (as nft text, for operators and
 * `--restore-last-known-good`), the last-known-good connected ruleset, the boot-time drop ruleset,
 * and a small state file with the fingerprints of what the kernel may hold. Every write is atomic
 * (temp file, fsync, rename, fsync of the directory), so a crash leaves the old or the new file.
 *
 * Nothing here is on the path to a safe state: the drop ruleset is applied whether or not the
 * directory is usable, and a failed write only means the next start drops instead of keeping.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export const FILES = {
  applied: 'applied.nft',
  lastKnownGood: 'last-known-good.nft',
  boot: 'disconnected.nft',
  state: 'state.json',
} as const;

export type PersistedKind = 'disconnected' | 'connected';

export interface PersistedState {
  readonly version: 2;
  readonly state: PersistedKind;
  readonly appliedAt: string;
  /** Fingerprint (fingerprint.ts) of the table applied last. */
  readonly fingerprint: string | undefined;
  /**
   * Written before a transaction is sent: if the agent dies between the kernel's commit and the
   * next write, the kernel holds this one, which is ours as much as the last.
   */
  readonly pending?: string;
}

export async function atomicWrite(dir: string, name: string, data: string): Promise<void> {
  const target = path.join(dir, name);
  const tmp = path.join(dir, `.${name}.${process.pid}.tmp`);
  const fh = await fs.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, target);
  const dh = await fs.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

export class StateStore {
  private current: PersistedState | undefined;
  /** State-file updates one after the other: each builds on the one before. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const st = await fs.stat(this.dir);
    if (!st.isDirectory()) throw new Error(`${this.dir} is not a directory`);
  }

  /** Why the state file was not usable at the last load (missing is not a problem). */
  loadProblem: string | undefined;

  /** The state file, or undefined when missing, unreadable, truncated or of another version. */
  async load(): Promise<PersistedState | undefined> {
    this.loadProblem = undefined;
    let text: string;
    try {
      text = await fs.readFile(path.join(this.dir, FILES.state), 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') this.loadProblem = `${FILES.state}: ${(err as Error).message}`;
      return undefined;
    }
    try {
      const s = JSON.parse(text) as PersistedState;
      if (s.version !== 2 || (s.fingerprint !== undefined && typeof s.fingerprint !== 'string')) {
        this.loadProblem = `${FILES.state}: not a version 2 state file`;
        return undefined;
      }
      this.current = s;
      return s;
    } catch (err) {
      this.loadProblem = `${FILES.state}: truncated or corrupt (${(err as Error).message})`;
      return undefined;
    }
  }

  async read(name: (typeof FILES)[keyof typeof FILES]): Promise<string | undefined> {
    try {
      return await fs.readFile(path.join(this.dir, name), 'utf8');
    } catch {
      return undefined;
    }
  }

  private updateState(next: (c: PersistedState | undefined) => PersistedState): Promise<void> {
    const run = this.chain.then(async () => {
      const s = next(this.current);
      await atomicWrite(this.dir, FILES.state, `${JSON.stringify(s, null, 2)}\n`);
      this.current = s;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Records, before it is sent, the fingerprint of a table about to be applied. */
  async savePending(fingerprint: string): Promise<void> {
    await this.updateState((c) => ({
      version: 2,
      state: c?.state ?? 'disconnected',
      appliedAt: c?.appliedAt ?? new Date(0).toISOString(),
      fingerprint: c?.fingerprint,
      pending: fingerprint,
    }));
  }

  /** Records a successful apply; a connected ruleset also becomes the last-known-good. */
  async saveApplied(state: PersistedKind, text: string, fingerprint: string): Promise<void> {
    await atomicWrite(this.dir, FILES.applied, text);
    if (state === 'connected') await atomicWrite(this.dir, FILES.lastKnownGood, text);
    await this.updateState((c) => {
      // A newer pending fingerprint (a later apply under way) stays.
      const pending = c?.pending !== fingerprint ? c?.pending : undefined;
      return { version: 2, state, appliedAt: new Date().toISOString(), fingerprint, ...(pending ? { pending } : {}) };
    });
  }

  /** The drop ruleset the boot unit loads before the network comes up; rewritten when it changes. */
  async saveBoot(text: string): Promise<boolean> {
    if ((await this.read(FILES.boot)) === text) return false;
    await atomicWrite(this.dir, FILES.boot, text);
    return true;
  }
}
