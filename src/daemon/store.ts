/**
 * Persistence under the state directory: what was applied last, the last-known-good connected
 * ruleset, the boot-time drop ruleset, and a small state file. Every write is atomic
 * (temp file, fsync, rename, fsync of the directory), so a crash leaves the old or the new file.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export const FILES = {
  applied: 'applied.nft',
  lastKnownGood: 'last-known-good.nft',
  boot: 'disconnected.nft',
  state: 'state.json',
} as const;

export interface PersistedState {
  readonly version: 1;
  readonly state: 'disconnected' | 'connected';
  readonly appliedAt: string;
  /** sha256 of the transaction without counter values: "is this what we would apply again?" */
  readonly baseHash: string | undefined;
  /** `nft -s list table` right after the apply: "does the kernel still hold it?" */
  readonly listing: string;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function atomicWrite(dir: string, name: string, data: string): Promise<void> {
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
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  async load(): Promise<PersistedState | undefined> {
    try {
      const s = JSON.parse(await fs.readFile(path.join(this.dir, FILES.state), 'utf8')) as PersistedState;
      return s.version === 1 && typeof s.listing === 'string' ? s : undefined;
    } catch {
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

  /** Records a successful apply; a connected ruleset also becomes the last-known-good. */
  async saveApplied(state: PersistedState['state'], text: string, listing: string, baseHash: string | undefined): Promise<void> {
    await atomicWrite(this.dir, FILES.applied, text);
    if (state === 'connected') await atomicWrite(this.dir, FILES.lastKnownGood, text);
    const s: PersistedState = { version: 1, state, appliedAt: new Date().toISOString(), baseHash, listing };
    await atomicWrite(this.dir, FILES.state, `${JSON.stringify(s, null, 2)}\n`);
  }

  /** The drop ruleset the boot unit loads before the network comes up; rewritten when it changes. */
  async saveBoot(text: string): Promise<boolean> {
    if ((await this.read(FILES.boot)) === text) return false;
    await atomicWrite(this.dir, FILES.boot, text);
    return true;
  }
}
