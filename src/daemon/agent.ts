/**
 * The agent (DESIGN §2, §4) is wiring: a source (the clusters or a directory) says what should be
 * enforced; the front end (landscape.ts) and the compiler turn that into a table; the sync loop is
 * the one writer to the kernel; write-back, metrics, health and logs report. Drop until connected,
 * then enforce; never back to open, never back to disconnected.
 */
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import { CompileCache, Compiled, ObjectReport, TABLE_NAME, compile } from '../compile/compile';
import { Mode, resolveMode } from '../compile/mode';
import { ParseCache, buildInput } from '../landscape';
import { Nft } from '../nft/runner';
import { startHttp } from '../report/http';
import { Logger } from '../report/log';
import { AgentMetrics } from '../report/metrics';
import { formatAddress } from '../model/address';
import { CounterReader, counterReader } from '../report/counter-reader';
import { Notifier } from '../report/notify';
import { WriteBack } from '../report/writeback';
import { ClusterSource } from '../sources/cluster';
import { DirectorySource } from '../sources/directory';
import { Source, snapshotKey } from '../sources/source';
import { Desired, SyncLoop } from '../sync/loop';
import { RunnerOptions } from '../sync/runner';
import { VERSION } from '../version';
import { StateStore } from './store';
import { DnsService } from './dns';
import { FqdnLimits } from '../dns/fqdn-state';
import type { Upstream } from '../dns/proxy';
import { dnsMetrics } from '../report/dns-metrics';
import { MetricsPublisher, publishTarget } from '../report/publish';
import { AddressOps } from '../host/iproute';
import { AddressReconcileResult, AddressReconciler } from '../host/reconcile';
import { addressMetrics } from '../report/address-metrics';
import { currentVrf } from '../host/vrf';
import { countByKind, countOutcomes } from '../compile/reports';
import { Problem, Problems } from '../report/problems';
import { PublishedAddress } from './config';
import { FirewallConfig } from '../model/firewall';

export interface ClusterInput {
  readonly seedKubeconfig: string;
  readonly shootKubeconfig?: string;
  readonly firewallNamespace?: string;
}

export interface AgentOptions {
  /** Read from the clusters, or from a directory of files (standalone). */
  readonly input: { readonly cluster: ClusterInput } | { readonly sourceDir: string };
  readonly firewallName?: string;
  readonly mode?: Mode;
  readonly dryRun?: boolean;
  readonly nft: Nft;
  readonly log: Logger;
  /** Where applied rulesets and the boot drop ruleset are kept; nothing is persisted without it. */
  readonly stateDir?: string;
  /** At start, load the last-known-good ruleset instead of the drop ruleset (default: drop). */
  readonly restoreLastKnownGood?: boolean;
  /** Serve /metrics, /healthz, /readyz and /status here. */
  readonly http?: { readonly host: string; readonly port: number };
  readonly notifier?: Notifier;
  readonly runner?: Partial<RunnerOptions>;
  readonly pollMs?: number;
  /** Interface addresses (egressRules SNAT addresses on `vlan<vrf>`); none are managed when absent. */
  readonly ip?: AddressOps;
  /** The VRF the agent should run in (`ip vrf exec`): checked at start, an error logged if not. */
  readonly vrf?: string;
  /** Where the cluster scrapes /metrics (published in the shoot); none when absent. */
  readonly publish?: PublishedAddress;
  /** FQDN policies: the DNS proxy's port, fallback resolver and limits. */
  readonly dns?: { readonly port: number; readonly upstream?: Upstream; readonly limits?: FqdnLimits };
}

export type AgentState = 'disconnected' | 'connected';


export class Agent {
  private readonly log: Logger;
  private readonly name: string;
  readonly source: Source;
  readonly loop: SyncLoop;
  readonly metrics: AgentMetrics;
  readonly dns: DnsService;
  private readonly publisher: MetricsPublisher;
  private readonly addresses: AddressReconciler | undefined;
  private firewall: FirewallConfig | undefined;
  private readonly problemLog = new Problems();
  private readonly syncCounts = { full: 0, incremental: 0 };
  private lastApplyState: 'connected' | 'disconnected' | undefined;
  private readonly writeback: WriteBack | undefined;
  private readonly parseCache = new ParseCache();
  /** Work reused across compiles, so a change costs about what it touches. */
  private readonly compileCache = new CompileCache();
  private readonly readStats: CounterReader;
  private compiled: Compiled | undefined;
  private lastCompile: { readonly key: string; readonly compiled: Compiled } | undefined;
  private mode: Mode | undefined;
  private waitReason: string | undefined;
  private notes = new Set<string>();
  private lastRun: Date | undefined;
  private lastRunAgainstSeed: Date | undefined;
  private server: Server | undefined;
  private beat: NodeJS.Timeout | undefined;
  private lastBeat = Date.now();
  private readonly waiters: { pred: () => boolean; resolve: () => void }[] = [];

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log;
    this.name = opts.firewallName ?? hostname();
    const input = opts.input;
    this.source =
      'sourceDir' in input
        ? new DirectorySource({ dir: input.sourceDir, log: this.log, pollMs: opts.pollMs })
        : new ClusterSource({ ...input.cluster, firewallName: this.name, log: this.log, pollMs: opts.pollMs });
    this.readStats = counterReader(() => opts.nft.counters({ family: 'inet', name: TABLE_NAME }), this.log);
    this.metrics = new AgentMetrics({
      stats: this.readStats,
      accounting: () => this.compiled?.accounting ?? new Map(),
      snapshot: () => ({
        state: this.state,
        stale: this.stale,
        objects: countByKind(this.reports),
        watches: this.source.health(),
        inputProblems: this.source.problems().length,
      }),
    });
    this.dns = new DnsService({
      port: opts.dns?.port ?? 53,
      fallbackUpstream: opts.dns?.upstream,
      limits: opts.dns?.limits,
      stateDir: opts.stateDir,
      log: this.log,
      write: (writes, commit) => this.loop.writeDynamic(writes, commit),
      changed: () => this.reportStatus(false),
      events: dnsMetrics(this.metrics.registry, () => ({ addresses: this.dns.state.addressCount, names: this.dns.state.nameCount, listening: this.dns.listening !== undefined })),
    });
    this.loop = new SyncLoop({
      nft: opts.nft,
      log: this.log,
      desired: () => this.desired(),
      dynamicElements: (set) => this.dns.elements(set),
      store: opts.stateDir ? new StateStore(opts.stateDir) : undefined,
      restoreLastKnownGood: opts.restoreLastKnownGood,
      dryRun: opts.dryRun,
      runner: opts.runner,
      observer: {
        applied: (info) => {
          const m = this.metrics;
          this.syncCounts[info.how]++;
          this.lastApplyState = info.state;
          m.lastSuccess.set(Date.now() / 1000); // the drop ruleset counts: it is what the kernel enforces
          m.syncs.inc({ sync: info.how });
          m.syncDuration.observe({ sync: info.how }, info.applyMs / 1000);
          if (info.sinceChangeMs !== undefined) m.programming.observe(info.sinceChangeMs / 1000);
          if (info.state === 'connected') this.log.info('applied ruleset', { ...info, ...countOutcomes(this.reports) });
        },
        drifted: () => this.metrics.driftRepairs.inc(),
        enforced: (d) => this.enforced(d),
        failed: (what, err) => {
          if (what === 'apply' || what === 'startup') this.metrics.applyFailures.inc();
          if (what === 'dynamic') this.log.error('the kernel refused FQDN set elements; the client got SERVFAIL, a full apply follows', { error: err });
          if (what === 'apply') this.log.error('apply failed; the previous ruleset stays in the kernel', { error: err, failures: this.loop.failures + 1 });
        },
      },
    });
    const cluster = this.source instanceof ClusterSource ? this.source : undefined;
    this.addresses = opts.ip && new AddressReconciler({ ip: opts.ip, stateDir: opts.stateDir, dryRun: opts.dryRun, log: this.log });
    this.addressReport = addressMetrics(this.metrics.registry);
    this.publisher = new MetricsPublisher({
      source: cluster,
      http: { registry: this.metrics.registry, healthy: () => this.healthy(), ready: () => this.ready() },
      log: this.log,
      failed: () => this.metrics.writebackFailures.inc({ kind: 'service' }),
    });
    this.writeback =
      cluster &&
      new WriteBack({
        source: cluster,
        name: this.name,
        log: this.log,
        stats: this.readStats,
        view: () => ({ lastRun: this.lastRun, lastRunAgainstSeed: this.lastRunAgainstSeed, message: this.monitorMessage() }),
        failed: (kind) => this.metrics.writebackFailures.inc({ kind }),
      });
  }

  get state(): AgentState {
    return this.loop.connected ? 'connected' : 'disconnected';
  }

  /** Connected before, but the sources are not current or the Firewall is unusable: the last ruleset stays. */
  get stale(): boolean {
    return this.loop.connected && this.waitReason !== undefined;
  }

  get reports(): readonly ObjectReport[] {
    return this.compiled?.reports ?? [];
  }

  get lastError(): string | undefined {
    return this.loop.lastError ?? this.waitReason ?? this.source.problems()[0]?.error;
  }

  /** Process alive and its loop not stuck (a run hanging for minutes counts as stuck). */
  healthy(): boolean {
    const now = Date.now();
    const running = this.loop.runningSince;
    return now - this.lastBeat < 10_000 && !(running !== undefined && now - running > 5 * 60_000);
  }

  /** The full ruleset is applied and all sources are synced. */
  ready(): boolean {
    return this.state === 'connected' && !this.stale && this.source.health().every((h) => h.synced);
  }

  statusLine(): string {
    const c = countOutcomes(this.reports);
    const state = this.stale ? 'connected, stale (lost contact)' : this.state;
    const err = this.lastError;
    return `${state}${this.mode ? ` (${this.mode})` : ''}; ${c.deployed} deployed, ${c.ignored} ignored, ${c.rejected} rejected${err ? `; error: ${err}` : ''}`;
  }

  /** What `firewall-agent status` shows. */
  summary(): Record<string, unknown> {
    return {
      firewall: this.name,
      namespace: this.source instanceof ClusterSource ? this.source.namespace : undefined,
      source: this.source.kind,
      state: this.state,
      stale: this.stale,
      mode: this.mode,
      dryRun: this.opts.dryRun ?? false,
      lastApply: this.loop.lastApplyAt && new Date(this.loop.lastApplyAt).toISOString(),
      lastApplyState: this.lastApplyState,
      syncs: { ...this.syncCounts, failuresInARow: this.loop.failures },
      // How current drift detection and counters are at this table's size (nft 1.0.6 reads cost).
      checks: {
        chainsEverySeconds: this.loop.intervalMs / 1000,
        fullEverySeconds: Math.round(this.loop.fullVerifyEveryMs / 1000),
        lastFull: this.loop.lastFullVerifyAt && new Date(this.loop.lastFullVerifyAt).toISOString(),
        countersEverySeconds: Math.round(this.readStats.shareMs() / 1000),
      },
      problems: this.problems(),
      lastRun: this.lastRun?.toISOString(),
      lastRunAgainstSeed: this.lastRunAgainstSeed?.toISOString(),
      lastError: this.lastError,
      inputProblems: this.source.problems(),
      notes: [...this.notes],
      dns: this.dns.summary(),
      published: this.publisher.summary(),
      addresses: this.addresses && { errors: this.addresses.lastErrors },
      policies: countOutcomes(this.reports),
      notDeployed: this.reports
        .filter((r) => r.outcome !== 'deployed')
        .map((r) => ({ kind: r.kind, namespace: r.ref.namespace, name: r.ref.name, outcome: r.outcome, reason: r.reason })),
      watches: this.source.health(),
      version: VERSION,
    };
  }

  async start(): Promise<void> {
    this.log.info('starting', { firewall: this.name, version: VERSION, dryRun: this.opts.dryRun ?? false, source: this.source.kind });
    if (this.source.kind === 'files') this.log.info('standalone: reading the input from files; no status, events or FirewallMonitor are written');
    this.beat = setInterval(() => (this.lastBeat = Date.now()), 1000);
    if (this.opts.http) {
      const { host, port } = this.opts.http;
      try {
        this.server = await startHttp(host, port, { registry: this.metrics.registry, healthy: () => this.healthy(), ready: () => this.ready(), status: () => this.summary() });
        this.log.info('serving /metrics, /healthz, /readyz, /status', { address: `${host}:${port}` });
      } catch (err) {
        // Enforcement matters more than reporting: go on without them (e.g. no 127.0.0.1 inside a VRF).
        this.log.error('cannot serve /metrics, /healthz, /readyz, /status; enforcing without them', { address: `${host}:${port}`, error: err });
      }
    }
    if (this.opts.vrf) await this.checkVrf(this.opts.vrf);
    await this.dns.restore();
    await this.source.start(() => {
      this.metrics.lastQueued.setToCurrentTime();
      this.loop.request();
    });
    this.loop.start();
    await this.when(() => this.loop.floor !== 'none' || this.opts.dryRun === true || this.loop.connected);
    this.opts.notifier?.markReady(this.statusLine());
    this.opts.notifier?.startWatchdog(() => this.healthy());
    this.writeback?.startMonitor();
  }

  /** Stops sources, the loop and timers. The ruleset stays in the kernel as it is: never flushed on stop. */
  async stop(): Promise<void> {
    clearInterval(this.beat);
    await this.source.stop();
    await this.dns.stop();
    await this.publisher.stop();
    await this.loop.stop();
    await this.writeback?.stop();
    this.opts.notifier?.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.log.info('stopped; the ruleset in the kernel is left as it is', { state: this.state });
  }

  /** Resolves when `pred` holds after a sync run (tests, the start-up notification). */
  when(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  private notify(): void {
    this.opts.notifier?.setStatus(this.statusLine());
    for (let i = this.waiters.length - 1; i >= 0; i--) if (this.waiters[i]!.pred()) this.waiters.splice(i, 1)[0]!.resolve();
  }

  /** What should be enforced now; called by the sync loop at the start of each run. */
  private desired(): Desired {
    try {
      return this.compute();
    } finally {
      queueMicrotask(() => {
        this.problems(); // when each problem began is noted at every run, not only when someone asks
        this.notify();
      });
    }
  }

  /** A run that takes far longer than any apply should (nft hanging, the kernel stuck). */
  private runningTooLong(): string | undefined {
    const since = this.loop.runningSince;
    if (since === undefined || Date.now() - since < 3000) return undefined;
    // a full apply of tens of thousands of policies takes seconds: say how long, and that it may hang
    return `a sync has been running for ${Math.round((Date.now() - since) / 1000)} s (a large apply, or nft not answering)`;
  }

  /** What is wrong now, per source, and since when (status; `firewall-agent status`). */
  private problems(): Problem[] {
    return this.problemLog.update([
      ['sync', this.loop.lastError],
      ['state directory', this.loop.persistError],
      ['sync', this.runningTooLong()],
      ['input', this.waitReason],
      ...this.source.health().map((w) => [`watch ${w.name}`, w.lastError] as const),
      ...this.source.problems().map((p) => [`file ${p.origin}`, p.error] as const),
      ['dns', this.dns.problem],
      ['published metrics', this.publisher.problem],
      ['addresses', this.addresses?.lastErrors.join('; ') || undefined],
    ]);
  }

  private wait(reason: string, log: () => void): Desired {
    if (reason !== this.waitReason) log();
    this.waitReason = reason;
    return { kind: 'wait', reason };
  }

  private compute(): Desired {
    const snap = this.source.snapshot();
    if (!snap.synced) {
      const reason = 'lost contact; keeping the last applied ruleset';
      return this.wait(this.loop.connected ? reason : 'not connected yet', () => this.loop.connected && this.log.warn(reason));
    }
    const started = Date.now();
    const built = buildInput(snap, { state: 'connected', mode: this.opts.mode, parseCache: this.parseCache, compileCache: this.compileCache });
    this.logNotes(built.notes);
    if (!built.ok) {
      if (built.problem === 'no-firewall' && this.source instanceof ClusterSource) {
        // Upstream flushes its rules when the Firewall disappears; we keep enforcing.
        const reason = `Firewall ${this.source.namespace}/${this.name} not found in the seed`;
        return this.wait(reason, () => this.log.error('Firewall not found; keeping the current ruleset', { firewall: this.name, namespace: this.source instanceof ClusterSource ? this.source.namespace : undefined }));
      }
      return this.wait(built.message, () => this.log.error(`${built.message}; keeping the current ruleset`));
    }
    const fw = built.firewall!;
    this.lastRunAgainstSeed = new Date();
    this.loop.setInterval(fw.intervalMs);
    this.writeback?.setInterval(fw.intervalMs);
    const mode = resolveMode(this.opts.mode, fw);
    const dryRun = (this.opts.dryRun ?? false) || fw.dryRun;
    this.firewall = fw;
    const pub = this.opts.publish && publishTarget(this.opts.publish, fw);
    if (pub) void this.publisher.set(pub.addresses, pub.port);
    const dnsProxy = this.dns.address(fw);
    // A periodic run with nothing changed reuses the last compile (10,000 policies: 1–2 s of CPU).
    const proxyKey = dnsProxy ? `${dnsProxy.addresses.map(formatAddress).join(',')} ${dnsProxy.port}` : '';
    const key = `${snapshotKey(snap)}\n${mode}\n${proxyKey}\n${pub?.port}`;
    const reused = this.lastCompile?.key === key;
    const compiled = reused ? this.lastCompile!.compiled : compile({ ...built.input, dnsProxy, metricsPort: pub?.port });
    this.lastCompile = { key, compiled };
    this.dns.reconcile(fw, compiled.fqdn.length > 0 && !dryRun, () => this.loop.request());
    this.compiled = compiled;
    this.mode = mode;
    if (this.waitReason !== undefined && this.loop.connected) this.log.info('contact restored');
    this.waitReason = undefined;
    const compileMs = Date.now() - started;
    if (!reused) this.metrics.compileDuration.observe(compileMs / 1000);
    return { kind: 'connected', compiled, mode, dryRun, compileMs };
  }

  private enforced(d: Extract<Desired, { kind: 'connected' }>): void {
    if (this.lastRun === undefined && !d.dryRun) this.log.info('connected: enforcing policies', { mode: d.mode });
    this.lastRun = new Date();
    if (d.dryRun) return; // a dry run writes no policy status (README)
    this.dns.enforced(d.compiled.fqdn, d.compiled.dnsIntercepted);
    this.reportStatus(true);
    void this.publisher.reconcile();
    const fw = this.firewall;
    // never blocks the ruleset; failures are logged, counted and shown in /status
    if (this.addresses && fw) void this.addresses.reconcile(fw).then(this.addressReport);
  }

  private readonly addressReport: (r: AddressReconcileResult) => void;

  /** Started outside its VRF, the agent may never reach the seed: say so plainly, once. */
  private async checkVrf(vrf: string): Promise<void> {
    const r = await currentVrf();
    if (r.vrf === vrf) this.log.info('running in VRF', { vrf });
    else this.log.error('not running in the configured VRF; the seed may be unreachable (start with `ip vrf exec`, see README)', { vrf, current: r.vrf, error: r.error });
  }


  /** Policy status (with what FQDN selectors resolved to); events only after a sync run. */
  private reportStatus(events: boolean): void {
    if (!this.compiled || this.compiled.state !== 'connected') return;
    this.writeback?.report(this.compiled.reports, (r) => this.dns.status(r.ref), { events });
  }

  /** Notes about the input (skipped kinds, Firewall warnings), each logged once while it holds. */
  private logNotes(notes: readonly string[]): void {
    const now = new Set(notes);
    for (const n of now) if (!this.notes.has(n)) this.log.warn('input note', { note: n });
    this.notes = now;
  }

  private monitorMessage(): string {
    const err = this.lastError;
    if (err) return `error: ${err}`;
    return `${this.state}${this.stale ? ' (stale: lost contact, enforcing the last applied ruleset)' : ''}${this.opts.dryRun ? ' (dry run)' : ''}`;
  }
}
