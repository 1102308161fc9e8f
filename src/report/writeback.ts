/**
 * Write-back to the shoot (cluster source only): CWNP status after each enforced ruleset, Warning
 * events once per message, and the FirewallMonitor every interval. Nothing here holds up the sync
 * loop: statuses go through a queue drained in the background, and the dedup maps are pruned when
 * objects vanish, so memory stays bounded over a day of churn.
 */
import type { CoreV1Event, KubernetesObject } from '@kubernetes/client-node';
import { ObjectReport } from '../compile/compile';
import { POLICY_NAMESPACE } from '../model/cwnp';
import type { ClusterSource } from '../sources/cluster';
import { TableStats, deviceStats, rulesByAction } from '../nft/stats';
import { TIMER_MAX_MS } from '../sync/runner';
import { VERSION } from '../version';
import { Logger } from './log';
import { EventSpec, FqdnStatus, StatusChange, statusChanges, warningEvents } from './status';

/** The FirewallMonitor lives in the shoot namespace whose policies take effect. */
const FIREWALL_NS = POLICY_NAMESPACE;
/** A status we wrote is trusted for this long before the watch must show it. */
const WRITTEN_TTL_MS = 30_000;

export interface MonitorView {
  readonly lastRun: Date | undefined;
  readonly lastRunAgainstSeed: Date | undefined;
  /** One line for `controllerStatus.message`. */
  readonly message: string;
}

export interface WriteBackOptions {
  readonly source: ClusterSource;
  readonly name: string;
  readonly log: Logger;
  readonly stats: () => Promise<TableStats | undefined>;
  readonly view: () => MonitorView;
  readonly failed?: (what: 'status' | 'event' | 'monitor') => void;
}

export class WriteBack {
  private readonly written = new Map<string, { json: string; at: number }>();
  /** The FirewallMonitor is known to exist, and the counter reading it holds. */
  private monitorExists = false;
  private monitorStats: TableStats | undefined;
  private readonly emitted = new Map<string, string>();
  private readonly queue = new Map<string, StatusChange>();
  private worker: Promise<void> | undefined;
  private events: Promise<void> = Promise.resolve();
  private monitorTimer: NodeJS.Timeout | undefined;
  private intervalMs = 10_000;
  private stopped = false;

  constructor(private readonly opts: WriteBackOptions) {}

  /** After a ruleset is enforced: write changed statuses and new events, in the background. */
  report(reports: readonly ObjectReport[], fqdn?: (r: ObjectReport) => FqdnStatus | undefined, opts: { events: boolean } = { events: true }): void {
    if (this.stopped || !this.opts.source.shootApi) return;
    const policies = this.opts.source.policyObjects();
    const byRef = new Map(policies.map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]));
    const changes = statusChanges(reports, (ns, name) => byRef.get(`${ns}/${name}`)?.status as { state?: unknown; message?: unknown } | undefined, fqdn);
    for (const key of this.written.keys()) if (!byRef.has(key)) this.written.delete(key);
    for (const c of changes) {
      const key = `${c.namespace}/${c.name}`;
      const json = JSON.stringify(c.status);
      const prev = this.written.get(key);
      if (prev && prev.json === json && Date.now() - prev.at < WRITTEN_TTL_MS) continue; // ours, not yet seen by the watch
      this.queue.set(key, c);
    }
    if (!this.worker && this.queue.size > 0) this.worker = this.drain().finally(() => (this.worker = undefined));
    if (!opts.events) return;
    const events = warningEvents(reports);
    this.events = this.events.then(() => this.emit(events));
  }

  private async drain(): Promise<void> {
    const worker = async (): Promise<void> => {
      for (;;) {
        const next = this.queue.entries().next();
        const api = this.opts.source.shootApi;
        if (next.done || this.stopped || !api) return;
        const [key, c] = next.value;
        this.queue.delete(key);
        try {
          await api.patchPolicyStatus(c.namespace, c.name, { ...c.status });
          this.written.set(key, { json: JSON.stringify(c.status), at: Date.now() });
        } catch (err) {
          this.opts.failed?.('status');
          this.opts.log.warn('could not write policy status', { policy: key, error: err });
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  private async emit(events: EventSpec[]): Promise<void> {
    const api = this.opts.source.shootApi;
    if (!api || this.stopped) return;
    const objects = new Map<string, KubernetesObject>();
    for (const o of this.opts.source.policyObjects()) objects.set(`ClusterwideNetworkPolicy/${o.metadata?.namespace}/${o.metadata?.name}`, o);
    for (const o of this.opts.source.serviceObjects()) objects.set(`Service/${o.metadata?.namespace}/${o.metadata?.name}`, o);
    const live = new Set<string>();
    for (const e of events) {
      const obj = objects.get(`${e.kind}/${e.namespace}/${e.name}`);
      const key = `${e.kind}/${e.namespace}/${e.name}/${obj?.metadata?.uid ?? ''}/${e.reason}`;
      live.add(key);
      if (!obj || this.emitted.get(key) === e.message) continue;
      try {
        await api.createEvent(e.namespace, this.event(e, obj));
        this.emitted.set(key, e.message);
      } catch (err) {
        this.opts.failed?.('event');
        this.opts.log.warn('could not record event', { object: `${e.namespace}/${e.name}`, reason: e.reason, error: err });
      }
    }
    // An object that is gone, or fine again, may warn again later.
    for (const key of this.emitted.keys()) if (!live.has(key)) this.emitted.delete(key);
  }

  private event(e: EventSpec, obj: KubernetesObject): CoreV1Event {
    const now = new Date();
    return {
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
      source: { component: 'firewall-agent', host: this.opts.name },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
  }

  /** Starts the FirewallMonitor updates; each waits for the previous one (never overlapping). */
  startMonitor(): void {
    const tick = async (): Promise<void> => {
      await this.writeMonitor();
      if (!this.stopped) this.monitorTimer = setTimeout(() => void tick(), Math.min(TIMER_MAX_MS, this.intervalMs));
    };
    void tick();
  }

  setInterval(ms: number): void {
    this.intervalMs = ms;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.monitorTimer);
    await this.worker;
    await this.events;
  }

  /** Sizes of the dedup maps (bounded-memory tests). */
  get tracked(): { written: number; emitted: number } {
    return { written: this.written.size, emitted: this.emitted.size };
  }

  /**
   * FirewallMonitor in the shoot: created if missing, controllerStatus refreshed every interval.
   * Once it exists it is only patched (no read first), and the per-rule counters (one entry per
   * policy: a megabyte at 10,000 policies) go along only when there is a new counter reading:
   * the merge patch leaves the last ones in place otherwise.
   */
  private async writeMonitor(): Promise<void> {
    const api = this.opts.source.shootApi;
    const fw = this.opts.source.firewallObject();
    if (!api || !fw || this.stopped) return;
    try {
      const s = await this.opts.stats();
      // a new reading, or a monitor to create: the counters go along
      const fresh = s !== this.monitorStats || !this.monitorExists;
      const stats = fresh && s ? { rules: rulesByAction(s), devices: deviceStats(s), idsStats: {} } : { rules: {}, devices: {}, idsStats: {} };
      const v = this.opts.view();
      const controllerStatus = {
        controllerVersion: VERSION,
        lastRun: v.lastRun?.toISOString(),
        lastRunAgainstSeed: v.lastRunAgainstSeed?.toISOString(),
        message: v.message,
        distance: 0,
        distanceSupported: false,
        ...(fresh ? { stats } : {}),
      };
      if (!this.monitorExists) this.monitorExists = (await api.getMonitor(FIREWALL_NS, this.opts.name)) !== undefined;
      if (this.monitorExists) {
        try {
          await api.patchMonitor(FIREWALL_NS, this.opts.name, { controllerStatus });
          this.monitorStats = s;
        } catch (err) {
          // deleted by someone: created again at the next interval
          if ((err as { code?: number } | undefined)?.code === 404) this.monitorExists = false;
          throw err;
        }
        return;
      }
      const spec = (fw.spec ?? {}) as Record<string, unknown>;
      await api.createMonitor(FIREWALL_NS, {
        apiVersion: 'firewall.metal-stack.io/v2',
        kind: 'FirewallMonitor',
        metadata: { name: this.opts.name, namespace: FIREWALL_NS },
        conditions: [],
        image: String(spec.image ?? ''),
        networks: Array.isArray(spec.networks) ? spec.networks : [],
        partition: String(spec.partition ?? ''),
        project: String(spec.project ?? ''),
        size: String(spec.size ?? ''),
        controllerStatus: { ...controllerStatus, stats },
      });
      this.monitorExists = true;
      this.monitorStats = s;
      this.opts.log.info('created the FirewallMonitor', { namespace: FIREWALL_NS, name: this.opts.name });
    } catch (err) {
      this.opts.failed?.('monitor');
      this.opts.log.warn('could not update the FirewallMonitor', { error: err });
    }
  }
}
