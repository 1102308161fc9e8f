/**
 * The sync loop: the one writer to our table. Every kernel operation runs here, one after the
 * other, in runs scheduled by a bounded-frequency runner: the startup decision (keep, restore or
 * drop), full and incremental applies, cleanup of what incremental updates left behind, drift
 * verification against what was meant, and the snapshot that persistence writes.
 */
import { Compiled, TABLE_NAME, disconnectedTable } from '../compile/compile';
import { Mode } from '../compile/mode';
import { FILES, PersistedKind, StateStore } from '../daemon/store';
import { errorMessage } from '../report/errors';
import { Applier } from '../nft/applier';
import { hex } from '../nft/fingerprint';
import { NftElement, NftTable, TableRef, isDynamicSet } from '../nft/ruleset';
import { DynamicWrite, dynamicTransaction } from '../nft/transaction';
import { Nft } from '../nft/runner';
import { renderTransaction } from '../nft/render';
import { Logger } from '../report/log';
import { Clock, realClock } from './clock';
import { Batcher } from './batcher';
import { DriftChecks, Verdict } from './drift-checks';
import { RunReasons, RunnerOptions, SyncRunner } from './runner';

/** What the kernel should hold, as the sources say now. */
export type Desired =
  /** Not connected (or contact lost, or no valid Firewall): keep what the kernel holds. */
  | { readonly kind: 'wait'; readonly reason: string }
  | { readonly kind: 'connected'; readonly compiled: Compiled; readonly mode: Mode; readonly dryRun: boolean; readonly compileMs: number };

export interface AppliedInfo {
  readonly state: PersistedKind;
  readonly how: 'full' | 'incremental';
  readonly elements?: { added: number; deleted: number };
  readonly applyMs: number;
  readonly compileMs?: number;
  readonly sinceChangeMs?: number;
  readonly mode?: Mode;
  readonly repair: boolean;
}

/** What the loop tells the rest of the agent (metrics, logs, health, write-back). */
export interface SyncObserver {
  applied?(info: AppliedInfo): void;
  /** A connected ruleset is enforced (applied now, or unchanged). */
  enforced?(desired: Extract<Desired, { kind: 'connected' }>): void;
  failed?(what: 'startup' | 'apply' | 'cleanup' | 'verify' | 'dynamic', err: unknown): void;
  drifted?(): void;
}

export interface SyncLoopOptions {
  readonly nft: Nft;
  readonly log: Logger;
  readonly desired: () => Desired;
  readonly store?: StateStore;
  readonly restoreLastKnownGood?: boolean;
  readonly dryRun?: boolean;
  readonly clock?: Clock;
  readonly observer?: SyncObserver;
  readonly runner?: Partial<RunnerOptions>;
  readonly table?: TableRef;
  /** The live elements of a dynamic (FQDN) set: a full apply re-adds them. */
  readonly dynamicElements?: (set: string) => readonly NftElement[];
}

/** Defaults: a change after a quiet period runs at once; a stream of changes every 100 ms. */
export const RUNNER_DEFAULTS = { minIntervalMs: 100, burst: 2, maxIntervalMs: 10_000, backoffMinMs: 1000, backoffMaxMs: 30_000, jitter: 0.2 };

/** What the kernel held after the startup decision. */
export type Floor = 'none' | 'kept' | 'restored' | 'disconnected';

export class SyncLoop {
  readonly applier: Applier;
  private readonly runner: SyncRunner;
  private readonly clock: Clock;
  private readonly log: Logger;
  private started = false;
  private changedAt: number | undefined;
  private persistWanted: { kind: PersistedKind; table?: NftTable; text?: string; fingerprint: string } | undefined;
  private persisting: Promise<void> | undefined;
  /** Runs and dynamic writes take turns on the kernel: each waits for the one before. */
  private turn: Promise<unknown> = Promise.resolve();
  private readonly dynamic = new Batcher<{ writes: readonly DynamicWrite[]; commit: (live: ReadonlySet<string>) => void }>((take) => this.writeBatch(take));
  floor: Floor = 'none';
  /** A connected ruleset has been enforced at least once. */
  connected = false;
  lastApplyAt: number | undefined;
  lastError: string | undefined;
  lastDryRunText: string | undefined;
  /** The last failure to write the state directory, until a write succeeds (status). */
  persistError: string | undefined;
  private readonly checks: DriftChecks;

  constructor(private readonly opts: SyncLoopOptions) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.log;
    const store = opts.store;
    this.applier = new Applier(opts.nft, opts.table ?? { family: 'inet', name: TABLE_NAME }, {
      clock: this.clock,
      dynamicElements: opts.dynamicElements,
      // Write-ahead: a crash between the kernel's commit and the next write still finds it ours.
      beforeSend: store
        ? async (fp) => {
            try {
              await store.savePending(fp);
            } catch (err) {
              this.log.warn('could not record the ruleset about to be applied; a crash now would mean dropping at restart', { error: err });
            }
          }
        : undefined,
    });
    this.runner = new SyncRunner((why) => this.sync(why), { ...RUNNER_DEFAULTS, clock: this.clock, ...opts.runner });
    this.checks = new DriftChecks(this.applier, this.clock, this.log);
  }

  start(): void {
    this.runner.start();
  }

  async stop(): Promise<void> {
    await this.runner.stop();
    await this.persisting;
  }

  /** Something in the sources changed: coalesced into the next run. */
  request(): void {
    this.changedAt ??= this.clock.now();
    this.runner.request();
  }

  /** The periodic resync and drift check (spec.interval, clamped by the runner). */
  setInterval(ms: number): void {
    this.runner.setMaxInterval(ms);
  }

  get failures(): number {
    return this.runner.failures;
  }

  get runningSince(): number | undefined {
    return this.runner.runningSince;
  }

  /** Runs `fn` when the kernel is ours alone (no run, no other write in flight). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.turn.then(fn);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes elements of dynamic sets (the DNS proxy's answers), between runs: concurrent requests go
   * to the kernel together in one transaction. Writes to sets the applied table does not have are
   * dropped (their policy is gone). `commit` runs right after the kernel took the writes, before
   * any run can start, with the dynamic sets that exist: a full apply that follows re-adds what
   * was committed. Rejects when the kernel refused (nothing committed).
   */
  writeDynamic(writes: readonly DynamicWrite[], commit: (live: ReadonlySet<string>) => void): Promise<void> {
    return this.dynamic.push({ writes, commit });
  }

  private async writeBatch(take: () => { writes: readonly DynamicWrite[]; commit: (live: ReadonlySet<string>) => void }[]): Promise<void> {
    try {
      // Taken when the kernel is ours: whatever queued up behind a run goes in one transaction.
      await this.exclusive(async () => {
        const batch = take();
        const table = this.applier.current;
        const live = new Set((table?.sets ?? []).filter(isDynamicSet).map((s) => s.name));
        const writes = batch.flatMap((b) => b.writes).filter((w) => live.has(w.set));
        if (writes.length > 0 && !this.opts.dryRun) await this.opts.nft.apply(dynamicTransaction(table!, writes));
        for (const b of batch) b.commit(live);
      });
    } catch (err) {
      // The kernel may not hold what we think (a set deleted by hand): a full apply repairs it.
      this.applier.requireFull();
      this.runner.request();
      this.opts.observer?.failed?.('dynamic', err);
      throw err;
    }
  }

  private async sync(why: RunReasons): Promise<void> {
    try {
      if (!this.started) {
        await this.exclusive(() => this.startup());
        this.started = true;
      }
      if (why.periodic && !this.opts.dryRun) await this.periodic();
      const changedAt = this.changedAt;
      this.changedAt = undefined;
      await this.exclusive(() => this.enforce(changedAt));
      this.lastError = undefined;
    } catch (err) {
      this.lastError = errorMessage(err);
      throw err;
    }
  }

  private async enforce(changedAt: number | undefined): Promise<void> {
    const desired = this.opts.desired();
    if (desired.kind === 'wait') return;
    const table = desired.compiled.table;
    if (desired.dryRun) {
      try {
        await this.applier.check(table);
      } catch (err) {
        this.log.error('dry run: nft refuses the ruleset', { error: err });
        throw err;
      }
      this.log.info('dry run: ruleset rendered and checked, not applied', { mode: desired.mode });
      this.opts.observer?.enforced?.(desired);
      return;
    }
    const started = this.clock.now();
    let result;
    try {
      result = await this.applier.apply(table, { relaxLegacy: true });
    } catch (err) {
      this.opts.observer?.failed?.('apply', err);
      throw err;
    }
    if (result === 'applied') {
      this.applied('connected', table, {
        applyMs: this.clock.now() - started,
        compileMs: desired.compileMs,
        sinceChangeMs: changedAt === undefined ? undefined : this.clock.now() - changedAt,
        mode: desired.mode,
        repair: false,
      });
    }
    this.connected = true;
    this.opts.observer?.enforced?.(desired);
  }

  private applied(state: PersistedKind, table: NftTable, info: Omit<AppliedInfo, 'state' | 'how' | 'elements'>): void {
    this.lastApplyAt = this.clock.now();
    const fingerprint = this.applier.expected!;
    this.persistLater({ kind: state, table, fingerprint });
    this.opts.observer?.applied?.({
      ...info,
      state,
      how: this.applier.lastMode ?? 'full',
      ...(this.applier.lastMode === 'incremental' && this.applier.lastElements ? { elements: this.applier.lastElements } : {}),
    });
  }

  /**
   * Drift verification (drift-checks.ts: the chains check every time, the full check within its
   * budget) and cleanup, every `spec.interval`. The checks only read, and runs are one at a time,
   * so they do not hold the kernel: dynamic writes (DNS answers waiting for their sets) go on
   * meanwhile; their elements are not part of the fingerprint.
   */
  private async periodic(): Promise<void> {
    let r: Awaited<ReturnType<DriftChecks['run']>>;
    try {
      // what awaits cleanup is part of what the kernel should hold, so verify first
      r = await this.checks.run();
    } catch (err) {
      this.opts.observer?.failed?.('verify', err);
      throw err;
    }
    await this.exclusive(() => this.afterVerify(r.verdict, r.legacyDrop));
  }

  /** The periodic interval (spec.interval, clamped): how often the chains check runs. */
  get intervalMs(): number {
    return this.runner.intervalMs;
  }

  /** How often the full check runs at the table's present size, and when it last did (status). */
  get fullVerifyEveryMs(): number {
    return this.checks.everyMs(this.runner.intervalMs);
  }

  get lastFullVerifyAt(): number | undefined {
    return this.checks.lastFullAt;
  }

  private async afterVerify(verdict: Verdict, legacyDrop: boolean | undefined): Promise<void> {
    if (verdict !== 'drifted') {
      try {
        const removed = await this.applier.cleanup();
        if (removed > 0) {
          this.log.debug('deleted unreferenced chains and maps', { objects: removed });
          // what the kernel holds changed: record it, or a restart would not know the table as ours
          const current = this.applier.current;
          if (current && this.connected) this.persistLater({ kind: 'connected', table: current, fingerprint: this.applier.expected! });
        }
      } catch (err) {
        this.opts.observer?.failed?.('cleanup', err);
        this.log.warn('cleanup failed; the next apply is a full one', { error: err });
      }
      const current = this.applier.current;
      if (current && this.connected && (legacyDrop ?? (await this.applier.legacyReverted()))) {
        // fails closed (metal's policy drop blocks what our table allows) but cuts the cluster off
        this.opts.observer?.drifted?.();
        this.log.warn('the legacy base table was reloaded with forward policy drop; relaxing it again with our table');
        this.applier.requireFull();
        const started = this.clock.now();
        await this.applier.apply(current, { relaxLegacy: true });
        this.applied('connected', current, { applyMs: this.clock.now() - started, repair: true });
      }
      return;
    }
    this.opts.observer?.drifted?.();
    this.log.warn('the kernel no longer holds the applied ruleset; repairing');
    this.applier.requireFull();
    const last = this.applier.current;
    if (!last || !this.connected) {
      // A kept or restored table is known only by its fingerprint: the drop ruleset replaces it.
      await this.applyDisconnected(true);
      return;
    }
    // The sources may be out of contact: re-send what was applied last, whatever they say now.
    const started = this.clock.now();
    await this.applier.apply(last, { relaxLegacy: true });
    this.applied('connected', last, { applyMs: this.clock.now() - started, repair: true });
  }

  private async applyDisconnected(repair: boolean): Promise<void> {
    const started = this.clock.now();
    const table = disconnectedTable();
    await this.applier.apply(table, { relaxLegacy: false });
    this.floor = 'disconnected';
    this.applied('disconnected', table, { applyMs: this.clock.now() - started, repair });
  }

  /**
   * What the kernel holds until connected: the table applied before a restart if the kernel still
   * holds exactly that (no flap), else the last-known-good when asked for, else the drop ruleset.
   * The drop ruleset never depends on the state directory.
   */
  private async startup(): Promise<void> {
    if (this.opts.dryRun) {
      this.log.info('dry run: not loading the disconnected ruleset');
      return;
    }
    const store = this.opts.store;
    let persisted;
    if (store) {
      try {
        await store.init();
        if (await store.saveBoot(renderTransaction([disconnectedTable()]))) this.log.info('wrote the boot drop ruleset', { file: `${store.dir}/${FILES.boot}` });
      } catch (err) {
        this.log.error('the state directory is not usable; going on without persistence', { dir: store.dir, error: err });
      }
      persisted = await store.load();
      if (store.loadProblem) this.log.warn('the state file is not usable; the kernel table cannot be recognised as ours, dropping until connected', { problem: store.loadProblem });
    }
    if (persisted) {
      try {
        const now = await this.applier.kernelFingerprint();
        const fp = now && hex(now.full);
        if (now && fp !== undefined && (fp === persisted.fingerprint || fp === persisted.pending)) {
          this.applier.adopt(now);
          this.floor = 'kept';
          this.log.info('the kernel holds the ruleset applied before the restart; keeping it', { appliedAt: persisted.appliedAt, state: persisted.state });
          return;
        }
      } catch (err) {
        this.log.warn('could not read the kernel ruleset; dropping until connected', { error: err });
      }
    }
    if (this.opts.restoreLastKnownGood && store) {
      const lkg = await store.read(FILES.lastKnownGood);
      if (lkg === undefined) this.log.warn('no last-known-good ruleset to restore; dropping until connected');
      else {
        try {
          await this.applier.applyRaw(lkg);
          this.floor = 'restored';
          this.persistLater({ kind: 'connected', text: lkg, fingerprint: this.applier.expected! });
          this.log.info('restored the last-known-good ruleset (--restore-last-known-good)');
          return;
        } catch (err) {
          this.log.error('could not restore the last-known-good ruleset; dropping until connected', { error: err });
        }
      }
    }
    try {
      await this.applyDisconnected(false);
    } catch (err) {
      this.opts.observer?.failed?.('startup', err);
      this.log.error('could not apply the disconnected ruleset; retrying', { error: err });
      throw err;
    }
    this.log.info('applied the disconnected ruleset: forwarding only established flows until connected');
  }

  /**
   * Persists in the background, one write at a time, the latest snapshot winning: the files are
   * megabytes for large rulesets and must not delay the next change.
   */
  private persistLater(snapshot: NonNullable<SyncLoop['persistWanted']>): void {
    const store = this.opts.store;
    if (!store) return;
    this.persistWanted = snapshot;
    if (this.persisting) return;
    this.persisting = (async () => {
      while (this.persistWanted) {
        const s = this.persistWanted;
        this.persistWanted = undefined;
        try {
          await store.saveApplied(s.kind, s.text ?? renderTransaction([s.table!]), s.fingerprint);
          this.persistError = undefined;
        } catch (err) {
          this.persistError = `cannot write the state directory ${store.dir}: ${errorMessage(err)}; a restart would drop until connected`;
          this.log.error('could not persist the applied ruleset', { dir: store.dir, error: err });
        }
      }
    })().finally(() => (this.persisting = undefined));
  }

  /** Resolves when the background persistence is idle (tests). */
  async flushed(): Promise<void> {
    while (this.persisting) await this.persisting;
  }
}
