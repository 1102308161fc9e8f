/**
 * The agent (DESIGN §2, §4): drop until connected, then enforce what the seed's Firewall and the
 * shoot's policies and Services say, re-applying on every change; never back to open, never back
 * to disconnected; report status, events and the FirewallMonitor.
 */
import { hostname } from 'node:os';
import { CoreV1Event, KubernetesObject, V1Service } from '@kubernetes/client-node';
import { CompileCache, ObjectReport, TABLE_NAME, compile, disconnectedTable } from '../compile/compile';
import { Mode, resolveMode } from '../compile/mode';
import { formatProblem } from '../model/fields';
import { FirewallConfig, parseFirewall } from '../model/firewall';
import { POLICY_NAMESPACE, parsePolicy, PolicyResult } from '../model/cwnp';
import { parseService } from '../model/service';
import { Applier } from '../nft/applier';
import { renderTransaction } from '../nft/render';
import { Nft } from '../nft/runner';
import { FILES, StateStore } from './store';
import { AgentMetrics, cached } from '../report/metrics';
import { startHttp } from '../report/http';
import { Notifier } from '../report/notify';
import type { Server } from 'node:http';
import { deviceStats, parseTableStats, rulesByAction } from '../nft/stats';
import { SeedApi, ShootApi, Unstructured } from '../kube/api';
import { LoadedKubeconfig, loadKubeconfigFile } from '../kube/kubeconfig';
import { readShootAccess, shootKubeconfigFromSeed } from '../kube/shootaccess';
import { ResourceWatch, WatchHealth, errorMessage } from '../kube/watch';
import { Logger } from '../report/log';
import { EventSpec, statusChanges, warningEvents } from '../report/status';
import { VERSION } from '../version';

export interface AgentOptions {
  readonly seedKubeconfig: string;
  /** When absent, shoot access comes from the Firewall's status.shootAccess secrets. */
  readonly shootKubeconfig?: string;
  readonly firewallName?: string;
  /** When absent, the seed kubeconfig's current-context. */
  readonly firewallNamespace?: string;
  readonly mode?: Mode;
  readonly dryRun?: boolean;
  readonly nft: Nft;
  readonly log: Logger;
  readonly debounceMs?: number;
  readonly resyncMs?: number;
  readonly pollMs?: number;
  /** Where applied rulesets and the boot drop ruleset are kept; nothing is persisted without it. */
  readonly stateDir?: string;
  /** At start, load the last-known-good ruleset instead of the drop ruleset (default: drop). */
  readonly restoreLastKnownGood?: boolean;
  /** Serve /metrics, /healthz, /readyz and /status here. */
  readonly http?: { readonly host: string; readonly port: number };
  readonly notifier?: Notifier;
}

export type AgentState = 'disconnected' | 'connected';

/** The FirewallMonitor lives in the shoot namespace whose policies take effect. */
const FIREWALL_NS = POLICY_NAMESPACE;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;

export class Agent {
  private readonly log: Logger;
  private readonly applier: Applier;
  private readonly store: StateStore | undefined;
  private readonly name: string;
  private state: AgentState = 'disconnected';
  private stale = false;
  private seed: { loaded: LoadedKubeconfig; api: SeedApi; namespace: string } | undefined;
  private shoot: { loaded: LoadedKubeconfig; api: ShootApi } | undefined;
  private readonly firewallWatch: ResourceWatch<Unstructured>;
  private readonly policyWatch: ResourceWatch<Unstructured>;
  private readonly serviceWatch: ResourceWatch<V1Service>;
  private timers: NodeJS.Timeout[] = [];
  private debounce: NodeJS.Timeout | undefined;
  /** When the first change not yet reconciled arrived (for the change-to-enforced log field). */
  private changedAt: number | undefined;
  private retry: NodeJS.Timeout | undefined;
  private retryMs = RETRY_MIN_MS;
  private running = false;
  private rerun = false;
  private stopped = false;
  private intervalMs = 10_000;
  private intervalTimer: NodeJS.Timeout | undefined;
  private lastRun: Date | undefined;
  private lastRunAgainstSeed: Date | undefined;
  private lastError: string | undefined;
  private lastFirewall: FirewallConfig | undefined;
  private lastReports: readonly ObjectReport[] = [];
  private readonly emitted = new Map<string, string>();
  private readonly written = new Map<string, { json: string; at: number }>();
  /** Partition results reused across reconciles: a change re-partitions only what it touches. */
  private readonly compileCache = new CompileCache();
  /** Parse results by object uid and resourceVersion: unchanged objects are not parsed again. */
  private parseCache = new Map<string, { rv: string; result: unknown }>();
  private parseSeen = new Set<string>();
  private readonly statusQueue = new Map<string, { namespace: string; name: string; status: { state: string; message: string } }>();
  private statusWorker: Promise<void> | undefined;
  private persistWanted: 'disconnected' | 'connected' | undefined;
  /** Event recording, one batch after the other (no duplicates from overlapping batches). */
  private eventChain: Promise<void> = Promise.resolve();
  private persisting: Promise<void> | undefined;
  private readonly waiters: { pred: () => boolean; resolve: () => void }[] = [];
  readonly metrics: AgentMetrics;
  private server: Server | undefined;
  private lastBeat = Date.now();
  private reconcileStarted = 0;
  private lastReconcileEnd = 0;
  private lastApplyAt: Date | undefined;
  private mode: Mode | undefined;
  private readonly readStats: () => Promise<ReturnType<typeof parseTableStats> | undefined>;

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log;
    this.name = opts.firewallName ?? hostname();
    this.applier = new Applier(opts.nft, { family: 'inet', name: TABLE_NAME }, opts.dryRun ?? false);
    this.store = opts.stateDir ? new StateStore(opts.stateDir) : undefined;
    let lastStats: ReturnType<typeof parseTableStats> | undefined;
    const readStats = (this.readStats = cached(2000, async () => {
      try {
        const json = await opts.nft.listTable('inet', TABLE_NAME, { json: true, terse: true });
        lastStats = json ? parseTableStats(json) : undefined;
      } catch (err) {
        // e.g. a listing racing a large transaction: serve the last reading rather than fail the scrape
        this.log.debug('could not read counters; serving the last reading', { error: err });
      }
      return lastStats;
    }));
    this.metrics = new AgentMetrics({
      stats: readStats,
      snapshot: () => ({ state: this.state, stale: this.stale, policies: countOutcomes(this.lastReports), watches: this.status.watches }),
    });
    const resyncMs = opts.resyncMs ?? 5 * 60_000;
    const onChange = (): void => {
      this.changedAt ??= Date.now();
      this.schedule();
    };
    const onHealth = (h: WatchHealth): void => this.onHealth(h);
    this.firewallWatch = new ResourceWatch<Unstructured>({
      name: 'seed/firewall',
      path: '', // set when the namespace is known
      list: () => this.seed!.api.listFirewalls(this.seed!.namespace, this.name),
      fieldSelector: `metadata.name=${this.name}`,
      resyncMs,
      onChange,
      onHealth,
      log: this.log,
    });
    this.policyWatch = new ResourceWatch<Unstructured>({
      name: 'shoot/clusterwidenetworkpolicies',
      path: ShootApi.policiesPath,
      list: () => this.shoot!.api.listPolicies(),
      // Only spec changes matter (they bump the generation); our own status writes do not.
      fingerprint: (o) => `${o.metadata?.uid ?? ''}/${o.metadata?.generation ?? o.metadata?.resourceVersion ?? ''}`,
      resyncMs,
      onChange,
      onHealth,
      log: this.log,
    });
    this.serviceWatch = new ResourceWatch<V1Service>({
      name: 'shoot/services',
      path: ShootApi.servicesPath,
      list: () => this.shoot!.api.listServices(),
      resyncMs,
      onChange,
      onHealth,
      log: this.log,
    });
  }

  get status(): { state: AgentState; stale: boolean; lastError: string | undefined; watches: WatchHealth[] } {
    return {
      state: this.state,
      stale: this.stale,
      lastError: this.lastError,
      watches: [this.firewallWatch.status, this.policyWatch.status, this.serviceWatch.status],
    };
  }

  /** Process alive and its loop not stuck (a reconcile hanging for minutes counts as stuck). */
  healthy(): boolean {
    const now = Date.now();
    return now - this.lastBeat < 10_000 && !(this.running && now - this.reconcileStarted > 5 * 60_000);
  }

  /** The full ruleset is applied and all sources are synced. */
  ready(): boolean {
    return this.state === 'connected' && !this.stale && this.synced();
  }

  statusLine(): string {
    const counts = countOutcomes(this.lastReports);
    const state = this.state === 'connected' && this.stale ? 'connected, stale (lost contact)' : this.state;
    return `${state}${this.mode ? ` (${this.mode})` : ''}; ${counts.deployed} deployed, ${counts.ignored} ignored, ${counts.rejected} rejected${
      this.lastError ? `; error: ${this.lastError}` : ''
    }`;
  }

  /** What `firewall-agent status` shows. */
  summary(): Record<string, unknown> {
    return {
      firewall: this.name,
      namespace: this.seed?.namespace,
      state: this.state,
      stale: this.stale,
      mode: this.mode,
      dryRun: this.opts.dryRun ?? false,
      lastApply: this.lastApplyAt?.toISOString(),
      lastRun: this.lastRun?.toISOString(),
      lastRunAgainstSeed: this.lastRunAgainstSeed?.toISOString(),
      lastError: this.lastError,
      policies: countOutcomes(this.lastReports),
      notDeployed: this.lastReports
        .filter((r) => r.outcome !== 'deployed')
        .map((r) => ({ kind: r.kind, namespace: r.ref.namespace, name: r.ref.name, outcome: r.outcome, reason: r.reason })),
      watches: this.status.watches,
      version: VERSION,
    };
  }

  async start(): Promise<void> {
    this.log.info('starting', { firewall: this.name, version: VERSION, dryRun: this.opts.dryRun ?? false });
    const beat = setInterval(() => (this.lastBeat = Date.now()), 1000);
    this.timers.push(beat);
    if (this.opts.http) {
      const { host, port } = this.opts.http;
      this.server = await startHttp(host, port, {
        registry: this.metrics.registry,
        healthy: () => this.healthy(),
        ready: () => this.ready(),
        status: () => this.summary(),
      });
      this.log.info('serving /metrics, /healthz, /readyz, /status', { address: `${host}:${port}` });
    }
    await this.startupRuleset();
    this.opts.notifier?.markReady(this.statusLine());
    this.opts.notifier?.startWatchdog(() => this.healthy());
    await this.refreshSeed();
    await this.refreshShoot();
    const poll = setInterval(() => void this.pollCredentials(), this.opts.pollMs ?? 2000);
    this.timers.push(poll);
    this.setInterval(this.intervalMs);
  }

  /** Stops watching and timers. The ruleset stays in the kernel as it is: never flushed on stop. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearInterval(this.intervalTimer);
    clearTimeout(this.debounce);
    clearTimeout(this.retry);
    this.firewallWatch.stop();
    this.policyWatch.stop();
    this.serviceWatch.stop();
    this.opts.notifier?.stop();
    await this.persisting;
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.log.info('stopped; the ruleset in the kernel is left as it is', { state: this.state });
  }

  /** Resolves when `pred` holds after a reconcile (for tests and the CLI's status). */
  when(pred: () => boolean): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  private notify(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.waiters[i]!.pred()) this.waiters.splice(i, 1)[0]!.resolve();
    }
  }

  /**
   * What the kernel holds until the agent has connected: the ruleset applied before a restart if
   * the kernel still holds exactly that (no flap), else the last-known-good when asked for, else
   * the disconnected (drop) ruleset.
   */
  private async startupRuleset(): Promise<void> {
    const disconnected = disconnectedTable();
    if (this.opts.dryRun) {
      this.log.info('dry run: not loading the disconnected ruleset');
      return;
    }
    try {
      if (this.store) {
        await this.store.init();
        if (await this.store.saveBoot(renderTransaction([disconnected]))) {
          this.log.info('wrote the boot drop ruleset', { file: `${this.store.dir}/${FILES.boot}` });
        }
        const persisted = await this.store.load();
        const current = await this.applier.current();
        if (persisted && current !== undefined && current === persisted.listing) {
          this.applier.adopt(persisted.baseHash, { text: (await this.store.read(FILES.applied)) ?? '', listing: persisted.listing });
          this.log.info('the kernel holds the ruleset applied before the restart; keeping it', {
            appliedAt: persisted.appliedAt,
            state: persisted.state,
          });
          return;
        }
        const lkg = this.opts.restoreLastKnownGood ? await this.store.read(FILES.lastKnownGood) : undefined;
        if (lkg) {
          await this.applier.applyText(lkg);
          this.log.info('restored the last-known-good ruleset (--restore-last-known-good)');
          return;
        }
      }
      if ((await this.applier.apply(disconnected, { relaxLegacy: false })) === 'applied') {
        await this.persist('disconnected');
      }
      this.log.info('applied the disconnected ruleset: forwarding only established flows until connected');
    } catch (err) {
      // Not fatal for the process: whatever the kernel holds stays; the boot unit's drop ruleset is the floor.
      this.lastError = errorMessage(err);
      this.log.error('could not apply the startup ruleset', { error: err });
    }
  }

  /**
   * Persists in the background, one write at a time, the latest state winning: the files are
   * megabytes for large rulesets and must not delay the next change.
   */
  private persistLater(state: 'disconnected' | 'connected'): void {
    this.persistWanted = state;
    if (this.persisting) return;
    this.persisting = (async () => {
      while (this.persistWanted) {
        const s = this.persistWanted;
        this.persistWanted = undefined;
        await this.persist(s);
      }
    })().finally(() => (this.persisting = undefined));
  }

  private async persist(state: 'disconnected' | 'connected'): Promise<void> {
    const last = this.applier.last;
    if (!this.store || !last) return;
    try {
      await this.store.saveApplied(state, last.text, last.listing, last.baseHash);
    } catch (err) {
      this.log.error('could not persist the applied ruleset', { dir: this.store.dir, error: err });
    }
  }

  private async pollCredentials(): Promise<void> {
    if (this.stopped) return;
    await this.refreshSeed();
    await this.refreshShoot();
  }

  private async refreshSeed(): Promise<void> {
    let loaded: LoadedKubeconfig;
    try {
      loaded = await loadKubeconfigFile(this.opts.seedKubeconfig);
    } catch (err) {
      this.log.warn('cannot read the seed kubeconfig', { file: this.opts.seedKubeconfig, error: err });
      return;
    }
    if (this.seed && this.seed.loaded.fingerprint === loaded.fingerprint) return;
    const namespace = this.opts.firewallNamespace ?? loaded.currentContext;
    this.log.info(this.seed ? 'seed credentials changed; reconnecting' : 'connecting to the seed', { namespace, firewall: this.name });
    this.seed = { loaded, api: new SeedApi(loaded.kc), namespace };
    this.firewallWatch.start(loaded.kc, SeedApi.firewallsPath(namespace));
  }

  private async refreshShoot(): Promise<void> {
    let loaded: LoadedKubeconfig | undefined;
    try {
      if (this.opts.shootKubeconfig) {
        loaded = await loadKubeconfigFile(this.opts.shootKubeconfig);
      } else if (this.seed) {
        const access = readShootAccess(this.currentFirewallObject());
        if (!access) return; // not known yet: the Firewall has to be read first
        loaded = await shootKubeconfigFromSeed(this.seed.api, access);
      }
    } catch (err) {
      this.log.warn('cannot build shoot credentials', { error: err });
      return;
    }
    if (!loaded || (this.shoot && this.shoot.loaded.fingerprint === loaded.fingerprint)) return;
    this.log.info(this.shoot ? 'shoot credentials changed; reconnecting' : 'connecting to the shoot');
    this.shoot = { loaded, api: new ShootApi(loaded.kc) };
    this.policyWatch.start(loaded.kc);
    this.serviceWatch.start(loaded.kc);
  }

  private currentFirewallObject(): Unstructured | undefined {
    return this.firewallWatch.list().find((f) => f.metadata?.name === this.name);
  }

  private onHealth(h: WatchHealth): void {
    if (!h.synced && this.state === 'connected' && !this.stale) {
      this.stale = true;
      this.log.warn('lost contact; keeping the last applied ruleset', { watch: h.name, error: h.lastError });
    }
    if (h.synced && !h.lastError) this.schedule();
  }

  private setInterval(ms: number): void {
    if (this.intervalTimer && ms === this.intervalMs) return;
    clearInterval(this.intervalTimer);
    this.intervalMs = ms;
    this.intervalTimer = setInterval(() => void this.periodic(), ms);
  }

  /**
   * A change after a quiet period is reconciled at once; changes arriving while a reconcile runs,
   * or within the burst window after one, are gathered into a single next reconcile.
   */
  schedule(): void {
    if (this.stopped || this.debounce) return;
    const window = this.opts.debounceMs ?? 100;
    const since = Date.now() - this.lastReconcileEnd;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.reconcile();
    }, since < window ? window - since : 0);
  }

  private async periodic(): Promise<void> {
    if (this.stopped) return;
    if (this.state === 'connected' && !this.opts.dryRun && !this.running) {
      try {
        const removed = await this.applier.cleanup();
        if (removed > 0) this.log.debug('deleted unreferenced policy chains', { chains: removed });
        const v = await this.applier.verify();
        if (v === 'drifted') {
          this.log.warn('the kernel no longer holds the applied ruleset; repairing');
          this.applier.requireFull();
          this.schedule();
        } else if (v === 'baseline') {
          this.persistLater('connected');
        }
      } catch (err) {
        this.log.warn('drift check failed', { error: err });
      }
    }
    await this.writeMonitor();
  }

  private synced(): boolean {
    return this.firewallWatch.status.synced && this.policyWatch.status.synced && this.serviceWatch.status.synced;
  }

  async reconcile(): Promise<void> {
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = true;
    this.reconcileStarted = Date.now();
    try {
      await this.reconcileOnce();
    } finally {
      this.running = false;
      this.lastReconcileEnd = Date.now();
      this.opts.notifier?.setStatus(this.statusLine());
      this.notify();
      if (this.rerun && !this.stopped) {
        this.rerun = false;
        this.schedule();
      }
    }
  }

  private async reconcileOnce(): Promise<void> {
    const seedOk = this.firewallWatch.status.synced;
    const shootOk = this.policyWatch.status.synced && this.serviceWatch.status.synced;
    if (!seedOk || !shootOk) {
      if (this.state === 'connected' && !this.stale) {
        this.stale = true;
        this.log.warn('lost contact; keeping the last applied ruleset', { seed: seedOk, shoot: shootOk });
      }
      if (seedOk && !this.shoot) await this.refreshShoot();
      return;
    }
    const fwObj = this.currentFirewallObject();
    if (!fwObj) {
      // Upstream flushes its rules when the Firewall disappears; we keep enforcing.
      this.lastError = `Firewall ${this.seed?.namespace}/${this.name} not found in the seed`;
      this.log.error('Firewall not found; keeping the current ruleset', { firewall: this.name, namespace: this.seed?.namespace });
      return;
    }
    const parsed = parseFirewall(fwObj as Record<string, unknown>);
    if (!parsed.ok) {
      this.lastError = `invalid Firewall: ${parsed.problems.map(formatProblem).join('; ')}`;
      this.log.error('invalid Firewall; keeping the current ruleset', { problems: parsed.problems.map(formatProblem) });
      return;
    }
    const fw = parsed.firewall;
    this.lastFirewall = fw;
    this.lastRunAgainstSeed = new Date();
    this.setInterval(fw.intervalMs);
    const dryRun = (this.opts.dryRun ?? false) || fw.dryRun;
    const changedAt = this.changedAt;
    this.changedAt = undefined;
    const listStarted = Date.now();
    const policies: PolicyResult[] = this.policyWatch.list().map((o) => this.parsed(o, () => parsePolicy(o as Record<string, unknown>), true));
    const services = this.serviceWatch.list().map((o) => this.parsed(o, () => parseService(o as unknown as Record<string, unknown>)));
    const mode = resolveMode(this.opts.mode, fw);
    this.mode = mode;
    const compileStarted = Date.now();
    const listMs = compileStarted - listStarted;
    const compiled = compile({ firewall: fw, policies, services, state: 'connected', mode, cache: this.compileCache });
    const compileMs = Date.now() - compileStarted;
    this.pruneParsed();
    this.lastReports = compiled.reports;

    if (dryRun) {
      await this.emitEvents(warningEvents(compiled.reports));
      const text = renderTransaction([compiled.table]);
      try {
        await this.opts.nft.check(text);
        this.log.info('dry run: ruleset rendered and checked, not applied', { mode, bytes: text.length });
        this.lastError = undefined;
      } catch (err) {
        this.lastError = errorMessage(err);
        this.log.error('dry run: nft refuses the ruleset', { error: err });
      }
      this.lastRun = new Date();
      return;
    }

    const started = Date.now();
    try {
      const result = await this.applier.apply(compiled.table, { relaxLegacy: true });
      this.retryMs = RETRY_MIN_MS;
      this.lastError = undefined;
      if (result === 'applied') {
        this.metrics.applies.inc({ mode: this.applier.lastMode ?? 'full' });
        this.metrics.applyDuration.observe((Date.now() - started) / 1000);
        this.metrics.lastSuccess.set(Date.now() / 1000);
        this.lastApplyAt = new Date();
        this.persistLater('connected');
        const counts = countOutcomes(compiled.reports);
        this.log.info('applied ruleset', {
          mode,
          how: this.applier.lastMode,
          ...(this.applier.lastElements ?? {}),
          listMs,
          compileMs,
          applyMs: Date.now() - started,
          ...(changedAt !== undefined ? { sinceChangeMs: Date.now() - changedAt } : {}),
          ...counts,
          previousState: this.state,
        });
      }
      if (this.state !== 'connected') this.log.info('connected: enforcing policies', { mode });
      if (this.stale) this.log.info('contact restored');
      this.state = 'connected';
      this.stale = false;
      this.lastRun = new Date();
    } catch (err) {
      this.lastError = errorMessage(err);
      this.metrics.applyFailures.inc();
      this.log.error('apply failed; the previous ruleset stays in the kernel', { error: err, retryInMs: this.retryMs });
      clearTimeout(this.retry);
      this.retry = setTimeout(() => this.schedule(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      return;
    }
    // Reporting happens after the kernel has the ruleset and never delays the next reconcile.
    this.writeStatuses(compiled.reports);
    const events = warningEvents(compiled.reports);
    this.eventChain = this.eventChain.then(() => this.emitEvents(events));
  }

  /**
   * Queues status writes and returns at once: thousands of policies must not hold up the next
   * reconcile. A background worker writes the latest wanted status of each queued policy.
   */
  /**
   * Parse results by uid and version. For policies the version is the generation: only spec
   * changes bump it, so our own status writes keep the parsed object (and with it everything the
   * compile cache derived from it). Services are parsed by resourceVersion: their status matters.
   */
  private parsed<R>(o: KubernetesObject, parse: () => R, bySpec = false): R {
    const uid = o.metadata?.uid;
    const gen = o.metadata?.generation;
    const rv = bySpec && gen !== undefined ? `g${gen}` : o.metadata?.resourceVersion;
    if (!uid || !rv) return parse();
    this.parseSeen.add(uid);
    const hit = this.parseCache.get(uid);
    if (hit && hit.rv === rv) return hit.result as R;
    const result = parse();
    this.parseCache.set(uid, { rv, result });
    return result;
  }

  private pruneParsed(): void {
    for (const uid of this.parseCache.keys()) if (!this.parseSeen.has(uid)) this.parseCache.delete(uid);
    this.parseSeen = new Set();
  }

  private writeStatuses(reports: readonly ObjectReport[]): void {
    if (!this.shoot) return;
    const byRef = new Map(this.policyWatch.list().map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]));
    const changes = statusChanges(reports, (ns, name) => byRef.get(`${ns}/${name}`)?.status as { state?: unknown; message?: unknown } | undefined);
    for (const c of changes) {
      const key = `${c.namespace}/${c.name}`;
      const json = JSON.stringify(c.status);
      const prev = this.written.get(key);
      if (prev && prev.json === json && Date.now() - prev.at < 30_000) continue; // ours, not yet seen by the watch
      this.statusQueue.set(key, c);
    }
    if (!this.statusWorker && this.statusQueue.size > 0) this.statusWorker = this.drainStatuses().finally(() => (this.statusWorker = undefined));
  }

  private async drainStatuses(): Promise<void> {
    const worker = async (): Promise<void> => {
      for (;;) {
        const next = this.statusQueue.entries().next();
        if (next.done || this.stopped) return;
        const [key, c] = next.value;
        this.statusQueue.delete(key);
        const api = this.shoot?.api;
        if (!api) return;
        try {
          await api.patchPolicyStatus(c.namespace, c.name, { ...c.status });
          this.written.set(key, { json: JSON.stringify(c.status), at: Date.now() });
        } catch (err) {
          this.log.warn('could not write policy status', { policy: key, error: err });
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  private async emitEvents(events: EventSpec[]): Promise<void> {
    const api = this.shoot?.api;
    if (!api) return;
    const objects = new Map<string, KubernetesObject>();
    for (const o of this.policyWatch.list()) objects.set(`ClusterwideNetworkPolicy/${o.metadata?.namespace}/${o.metadata?.name}`, o);
    for (const o of this.serviceWatch.list()) objects.set(`Service/${o.metadata?.namespace}/${o.metadata?.name}`, o);
    for (const e of events) {
      const obj = objects.get(`${e.kind}/${e.namespace}/${e.name}`);
      const key = `${e.kind}/${e.namespace}/${e.name}/${obj?.metadata?.uid ?? ''}/${e.reason}`;
      if (!obj || this.emitted.get(key) === e.message) continue;
      const now = new Date();
      const event: CoreV1Event = {
        metadata: { generateName: `${e.name}.`, namespace: e.namespace },
        involvedObject: {
          apiVersion: e.kind === 'Service' ? 'v1' : 'metal-stack.io/v1',
          kind: e.kind,
          name: e.name,
          namespace: e.namespace,
          uid: obj.metadata?.uid,
          resourceVersion: obj.metadata?.resourceVersion,
        },
        reason: e.reason,
        message: e.message,
        type: 'Warning',
        source: { component: 'firewall-agent', host: this.name },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      };
      try {
        await api.createEvent(e.namespace, event);
        this.emitted.set(key, e.message);
      } catch (err) {
        this.log.warn('could not record event', { object: `${e.namespace}/${e.name}`, reason: e.reason, error: err });
      }
    }
  }

  /** FirewallMonitor in the shoot: created if missing, controllerStatus refreshed every interval. */
  private async writeMonitor(): Promise<void> {
    const api = this.shoot?.api;
    const fw = this.currentFirewallObject();
    if (!api || !fw) return;
    try {
      let stats: Record<string, unknown> = { rules: {}, devices: {}, idsStats: {} };
      const s = await this.readStats();
      if (s) stats = { rules: rulesByAction(s), devices: deviceStats(s), idsStats: {} };
      const message = this.lastError
        ? `error: ${this.lastError}`
        : `${this.state}${this.stale ? ' (stale: lost contact, enforcing the last applied ruleset)' : ''}${this.opts.dryRun ? ' (dry run)' : ''}`;
      const controllerStatus = {
        controllerVersion: VERSION,
        lastRun: this.lastRun?.toISOString(),
        lastRunAgainstSeed: this.lastRunAgainstSeed?.toISOString(),
        message,
        distance: 0,
        distanceSupported: false,
        stats,
      };
      const existing = await api.getMonitor(FIREWALL_NS, this.name);
      if (!existing) {
        const spec = (fw.spec ?? {}) as Record<string, unknown>;
        await api.createMonitor(FIREWALL_NS, {
          apiVersion: 'firewall.metal-stack.io/v2',
          kind: 'FirewallMonitor',
          metadata: { name: this.name, namespace: FIREWALL_NS },
          conditions: [],
          image: String(spec.image ?? ''),
          networks: Array.isArray(spec.networks) ? spec.networks : [],
          partition: String(spec.partition ?? ''),
          project: String(spec.project ?? ''),
          size: String(spec.size ?? ''),
          controllerStatus,
        });
        this.log.info('created the FirewallMonitor', { namespace: FIREWALL_NS, name: this.name });
      } else {
        await api.patchMonitor(FIREWALL_NS, this.name, { controllerStatus });
      }
    } catch (err) {
      this.log.warn('could not update the FirewallMonitor', { error: err });
    }
  }

  /** For `status` and tests. */
  get reports(): readonly ObjectReport[] {
    return this.lastReports;
  }

  get firewall(): FirewallConfig | undefined {
    return this.lastFirewall;
  }
}

function countOutcomes(reports: readonly ObjectReport[]): Record<'deployed' | 'ignored' | 'rejected', number> {
  const out = { deployed: 0, ignored: 0, rejected: 0 };
  for (const r of reports) out[r.outcome]++;
  return out;
}
