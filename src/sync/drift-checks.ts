/**
 * Which drift check a periodic run makes. nft 1.0.6 loads every set element for almost any
 * listing, so comparing the whole table (2 s of nft at 10,000 policies) every interval would keep
 * a core busy. The chains check (`nft list chains`: 60 ms at 10,000) runs every time and sees the
 * table deleted or replaced, chains added, removed or redeclared, and the legacy forward chain back
 * at drop; the full check (every rule and element) runs whenever its cost since the last one is
 * within FULL_VERIFY_SHARE of the time, and at least every FULL_VERIFY_MAX_MS.
 */
import { Applier } from '../nft/applier';
import { Logger } from '../report/log';
import { Clock } from './clock';

/** The share of the time the full check may take. */
export const FULL_VERIFY_SHARE = 0.01;
/** …but it runs at least this often: a slow first check (a busy start) must not push it out for an hour. */
export const FULL_VERIFY_MAX_MS = 5 * 60_000;

export type Verdict = Awaited<ReturnType<Applier['verify']>>;

export class DriftChecks {
  /** When the last full check ran and what it took (the budget for the next). */
  lastFullAt: number | undefined;
  lastFullMs = 0;

  constructor(
    private readonly applier: Applier,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** This run's verdict, and whether the legacy forward chain drops (undefined: not known). */
  async run(): Promise<{ verdict: Verdict; legacyDrop: boolean | undefined }> {
    let quick: Awaited<ReturnType<Applier['quickCheck']>> | undefined;
    try {
      quick = await this.applier.quickCheck();
    } catch (err) {
      this.log.debug('the chains check failed; verifying in full', { error: err });
    }
    if (quick?.ours === 'drifted') return { verdict: 'drifted', legacyDrop: quick.legacyDrop };
    if (quick && !this.fullDue()) return { verdict: quick.ours, legacyDrop: quick.legacyDrop };
    const started = this.clock.now();
    const verdict = await this.applier.verify();
    this.lastFullAt = this.clock.now();
    this.lastFullMs = this.lastFullAt - started;
    return { verdict, legacyDrop: quick?.legacyDrop };
  }

  /** How often the full check runs at the table's present size (status). */
  everyMs(intervalMs: number): number {
    return Math.max(intervalMs, this.periodMs());
  }

  private periodMs(): number {
    return Math.min(FULL_VERIFY_MAX_MS, this.lastFullMs / FULL_VERIFY_SHARE);
  }

  private fullDue(): boolean {
    return this.lastFullAt === undefined || this.clock.now() - this.lastFullAt >= this.periodMs();
  }
}
