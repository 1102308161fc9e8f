/**
 * Puts the egress SNAT addresses on their interfaces and takes back the ones we added that are no
 * longer wanted (the rules are in addresses.ts). Runs with every reconcile and is idempotent: with
 * nothing to change it only lists the involved interfaces.
 *
 * What we added is recorded in `<stateDir>/addresses.json`, so a restart still knows which
 * addresses are ours. The record is written before an address is added (write-ahead): a crash
 * can leave a recorded address that was never added (harmless: absent addresses are dropped from
 * the record or added again), never an added address that is not recorded (it would stay
 * forever). Without a state directory the record lives in memory only, so after a restart nothing
 * is removed: the safe direction.
 *
 * Failures never throw and never block the ruleset: they are collected per interface and address,
 * logged, returned and kept in `lastErrors` for status and metrics.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { atomicWrite } from '../daemon/store';
import { FirewallConfig } from '../model/firewall';
import { Logger } from '../report/log';
import { AddressPlan, OwnedAddress, PresentAddress, canonicalAddress, planAddresses, protectedAddresses, wantedAddresses } from './addresses';
import { AddressOps, MissingInterfaceError, isInterfaceName } from './iproute';

export const ADDRESS_RECORD = 'addresses.json';

export interface AddressReconcileResult {
  /** Addresses actually added / removed; 0 in a dry run. */
  readonly added: number;
  readonly removed: number;
  /** One line per failure, naming the interface and, where there is one, the address. */
  readonly errors: string[];
}

export interface AddressReconcilerOptions {
  readonly ip: AddressOps;
  /** Where the record of our addresses is kept; without it the record is in memory only. */
  readonly stateDir?: string;
  /** Only log what would change (so does a Firewall with spec.dryRun). */
  readonly dryRun?: boolean;
  readonly log: Logger;
}

interface RecordFile {
  version: 1;
  owned: OwnedAddress[];
}

const key = (o: OwnedAddress): string => `${o.ifname} ${o.address}`;
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function serialize(owned: readonly OwnedAddress[]): string {
  const sorted = [...owned].sort((a, b) => key(a).localeCompare(key(b)));
  const file: RecordFile = { version: 1, owned: sorted.map((o) => ({ ifname: o.ifname, address: o.address })) };
  return `${JSON.stringify(file, null, 2)}\n`;
}

export class AddressReconciler {
  /** The errors of the last completed reconcile (empty when it went through). */
  lastErrors: readonly string[] = [];
  private owned: OwnedAddress[] | undefined;
  /** The record as last written (or read), to skip writes when nothing changed. */
  private written: string | undefined;
  private busy = false;
  private pending: { fw: FirewallConfig; waiters: ((r: AddressReconcileResult) => void)[] } | undefined;

  constructor(private readonly opts: AddressReconcilerOptions) {}

  /**
   * One reconcile at a time: a call while one runs waits, and all calls that waited are answered
   * by a single run with the latest Firewall.
   */
  reconcile(fw: FirewallConfig): Promise<AddressReconcileResult> {
    return new Promise((resolve) => {
      if (this.pending) {
        this.pending.fw = fw;
        this.pending.waiters.push(resolve);
      } else this.pending = { fw, waiters: [resolve] };
      if (!this.busy) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.pending) {
        const { fw, waiters } = this.pending;
        this.pending = undefined;
        let result: AddressReconcileResult;
        try {
          result = await this.once(fw);
        } catch (e) {
          result = { added: 0, removed: 0, errors: [`address reconcile failed: ${message(e)}`] };
        }
        this.report(result.errors);
        for (const w of waiters) w(result);
      }
    } finally {
      this.busy = false;
    }
  }

  /** Logs new failures once (a lasting fault would otherwise log every interval) and recoveries. */
  private report(errors: string[]): void {
    const before = new Set(this.lastErrors);
    for (const e of errors) if (!before.has(e)) this.opts.log.error('egress address reconcile failed', { error: e });
    if (errors.length === 0 && before.size > 0) this.opts.log.info('egress addresses reconciled again');
    this.lastErrors = errors;
  }

  private async once(fw: FirewallConfig): Promise<AddressReconcileResult> {
    const { log } = this.opts;
    const dryRun = (this.opts.dryRun ?? false) || fw.dryRun;
    const owned = await this.load();
    const wanted = wantedAddresses(fw);
    const errors: string[] = [];

    const ifnames = [...new Set([...wanted.keys(), ...owned.map((o) => o.ifname)])].sort();
    const current = new Map<string, PresentAddress[]>();
    for (const ifname of ifnames) {
      try {
        current.set(ifname, (await this.opts.ip.addresses([ifname])).get(ifname) ?? []);
      } catch (e) {
        if (e instanceof MissingInterfaceError && !wanted.has(ifname)) {
          // Our addresses went away with the interface; nothing is left to remove.
          current.set(ifname, []);
        } else errors.push(`${ifname}: cannot list addresses: ${message(e)}`);
      }
    }

    const plan = planAddresses({ current, wanted, owned, protected: protectedAddresses(fw) });
    if (dryRun) {
      for (const a of plan.add) log.info('dry run: would add egress address', { interface: a.ifname, address: a.address });
      for (const r of plan.remove) log.info('dry run: would remove egress address', { interface: r.ifname, address: r.address });
      return { added: 0, removed: 0, errors };
    }
    return this.apply(plan, errors);
  }

  private async apply(plan: AddressPlan, errors: string[]): Promise<AddressReconcileResult> {
    const { ip, log } = this.opts;
    const failedAdds = new Set<string>();
    const failedRemoves: OwnedAddress[] = [];
    let added = 0;
    let removed = 0;

    if (plan.add.length > 0) {
      // Write-ahead: the additions (and the removals still to do) are ours before they exist.
      const ahead = [...plan.owned, ...plan.remove.map((r) => ({ ifname: r.ifname, address: r.address }))];
      try {
        await this.save(ahead);
      } catch (e) {
        for (const a of plan.add) {
          failedAdds.add(key(a));
          errors.push(`${a.ifname}: not adding ${a.address}: cannot record it first: ${message(e)}`);
        }
      }
    }
    for (const a of plan.add) {
      if (failedAdds.has(key(a))) continue;
      try {
        await ip.add(a.ifname, a.address, a.family);
        added++;
        log.info('egress address added', { interface: a.ifname, address: a.address });
      } catch (e) {
        failedAdds.add(key(a));
        errors.push(`${a.ifname}: cannot add ${a.address}: ${message(e)}`);
      }
    }
    for (const r of plan.remove) {
      try {
        await ip.remove(r.ifname, r.address, r.prefixLen);
        removed++;
        log.info('egress address removed', { interface: r.ifname, address: r.address });
      } catch (e) {
        failedRemoves.push({ ifname: r.ifname, address: r.address });
        errors.push(`${r.ifname}: cannot remove ${r.address}/${r.prefixLen}: ${message(e)}`);
      }
    }

    // A failed addition is not ours (it may even be someone else's, added meanwhile); a failed
    // removal still is.
    const final = [...plan.owned.filter((o) => !failedAdds.has(key(o))), ...failedRemoves];
    try {
      await this.save(final);
    } catch (e) {
      errors.push(`cannot record the egress addresses in ${this.recordPath() ?? 'memory'}: ${message(e)}`);
    }
    this.owned = final;
    return { added, removed, errors };
  }

  private recordPath(): string | undefined {
    return this.opts.stateDir === undefined ? undefined : path.join(this.opts.stateDir, ADDRESS_RECORD);
  }

  /** Reads the record once; every entry is checked and re-printed, a damaged file counts as empty. */
  private async load(): Promise<OwnedAddress[]> {
    if (this.owned) return this.owned;
    const file = this.recordPath();
    let owned: OwnedAddress[] = [];
    if (file !== undefined) {
      let text: string | undefined;
      try {
        text = await fs.readFile(file, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      if (text !== undefined) {
        owned = this.parseRecord(text, file);
        this.written = text;
      }
    }
    this.owned = owned;
    return owned;
  }

  private parseRecord(text: string, file: string): OwnedAddress[] {
    const { log } = this.opts;
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      log.warn('egress address record is unreadable; treating no address as ours', { file, error: message(e) });
      return [];
    }
    const list = (doc as { version?: unknown; owned?: unknown } | null)?.owned;
    if ((doc as { version?: unknown } | null)?.version !== 1 || !Array.isArray(list)) {
      log.warn('egress address record has an unknown format; treating no address as ours', { file });
      return [];
    }
    const out: OwnedAddress[] = [];
    for (const entry of list as unknown[]) {
      const e = entry as { ifname?: unknown; address?: unknown } | null;
      const address = typeof e?.address === 'string' ? canonicalAddress(e.address) : undefined;
      if (typeof e?.ifname !== 'string' || !isInterfaceName(e.ifname) || address === undefined) {
        log.warn('egress address record: skipping an invalid entry', { file, entry: JSON.stringify(entry)?.slice(0, 200) });
        continue;
      }
      if (!out.some((o) => o.ifname === e.ifname && o.address === address)) out.push({ ifname: e.ifname, address });
    }
    return out;
  }

  private async save(owned: readonly OwnedAddress[]): Promise<void> {
    const dir = this.opts.stateDir;
    if (dir === undefined) return;
    const text = serialize(owned);
    if (text === this.written) return;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await atomicWrite(dir, ADDRESS_RECORD, text);
    this.written = text;
  }
}
