/**
 * Prometheus metrics (prom-client). Traffic counters are read from the kernel at scrape time with
 * one `nft -j -t list table` (terse: no set elements), cached for a moment so concurrent scrapes
 * share a read; never one nft call per metric. Labels stay bounded: policy names (operator
 * controlled), fixed reasons and directions; no addresses, no rule handles.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PolicyAccount } from '../compile/compile';
import { CounterValue } from '../nft/ruleset';
import { TableStats } from '../nft/stats';
import { VERSION } from '../version';

export type ObjectKindLabel = 'ClusterwideNetworkPolicy' | 'Service';
export type OutcomeLabel = 'deployed' | 'ignored' | 'rejected';

export interface AgentSnapshot {
  readonly state: 'disconnected' | 'connected';
  readonly stale: boolean;
  /** Objects of the last compile by kind and outcome. */
  readonly objects: Readonly<Record<ObjectKindLabel, Readonly<Record<OutcomeLabel, number>>>>;
  readonly watches: readonly { name: string; synced: boolean; restarts: number }[];
  /** Input the operator must fix (files that do not parse, unreadable credentials). */
  readonly inputProblems: number;
}

export interface MetricsSources {
  /** The table's counters now (the caller caches); undefined when there is no table. */
  readonly stats: () => Promise<TableStats | undefined>;
  readonly snapshot: () => AgentSnapshot;
  /**
   * Accept chain → the policy or Service it counts for, from the last compile. Rule counters are
   * mapped through this, never through their comments (nft cuts those at 128 bytes).
   */
  readonly accounting: () => ReadonlyMap<string, PolicyAccount>;
}

const DROP_COUNTERS: Record<string, string> = {
  drop_total: 'policy',
  drop_ratelimit: 'ratelimit',
  drop_invalid: 'invalid',
  drop_pingflood: 'pingflood',
};

/** A counter whose value is the kernel's (already monotonic), set at collect time. */
function kernelCounter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  values: () => Promise<[Record<string, string>, number][]>,
): Counter<string> {
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [labels, v] of await values()) this.inc(labels, v);
    },
  });
}

/** prom-client's default gauges whose names end in _total, which `promtool check metrics` refuses. */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

const SYNC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class AgentMetrics {
  readonly registry = new Registry();
  /** Kept in the manner of kube-proxy's sync SLIs. */
  readonly syncDuration: Histogram<'sync'>;
  readonly syncs: Counter<'sync'>;
  readonly applyFailures: Counter<string>;
  readonly lastSuccess: Gauge<string>;
  readonly lastQueued: Gauge<string>;
  readonly programming: Histogram<string>;
  readonly compileDuration: Histogram<string>;
  readonly driftRepairs: Counter<string>;
  readonly writebackFailures: Counter<'kind'>;

  constructor(sources: MetricsSources) {
    const r = this.registry;
    // process_resident_memory_bytes, nodejs_heap_size_used_bytes, event loop lag, …
    collectDefaultMetrics({ register: r });
    for (const name of MISNAMED_DEFAULTS) r.removeSingleMetric(name);
    const stats = async (): Promise<TableStats | undefined> => sources.stats();
    const policyValues = (pick: (c: CounterValue) => number) => async (): Promise<[Record<string, string>, number][]> => {
      const s = await stats();
      const accounts = sources.accounting();
      const sums = new Map<string, { labels: Record<string, string>; v: number }>();
      for (const rule of s?.rules ?? []) {
        const p = accounts.get(rule.chain);
        // only accept chains are accounted; in them, only the accept rule counts
        if (!p || rule.action !== 'accept') continue;
        const key = `${p.direction}\0${p.policy}`;
        const e = sums.get(key) ?? { labels: { policy: p.policy, direction: p.direction }, v: 0 };
        e.v += pick(rule);
        sums.set(key, e);
      }
      return [...sums.values()].map((e) => [e.labels, e.v]);
    };
    // Established packets are accepted before the policy chains: each count is a new connection.
    kernelCounter(r, 'firewall_agent_policy_accepted_connections_total', 'New connections accepted, by policy (or Service) and direction', ['policy', 'direction'], policyValues((c) => c.packets));
    const dropValues = (pick: (c: CounterValue) => number) => async (): Promise<[Record<string, string>, number][]> => {
      const s = await stats();
      // every reason always present (0 without a table), so rates work from the first scrape
      return Object.entries(DROP_COUNTERS).map(([name, reason]) => [{ reason }, s?.counters[name] ? pick(s.counters[name]) : 0]);
    };
    kernelCounter(r, 'firewall_agent_dropped_packets_total', 'Packets dropped, by reason', ['reason'], dropValues((c) => c.packets));
    kernelCounter(r, 'firewall_agent_dropped_bytes_total', 'Bytes dropped, by reason', ['reason'], dropValues((c) => c.bytes));
    // internal_in/out, external_in/out: traffic to and from the node network, split by spec.internalPrefixes
    kernelCounter(r, 'firewall_agent_network_bytes_total', 'Forwarded bytes to (in) and from (out) the node network, by the other side: internal (spec.internalPrefixes) or external', ['network', 'direction'], async () => {
      const s = await stats();
      const out: [Record<string, string>, number][] = [];
      for (const network of ['internal', 'external']) {
        for (const direction of ['in', 'out']) out.push([{ network, direction }, s?.counters[`${network}_${direction}`]?.bytes ?? 0]);
      }
      return out;
    });

    this.syncDuration = new Histogram({
      name: 'firewall_agent_sync_duration_seconds',
      help: 'Time to check and apply a ruleset: the whole table (full) or only what changed (incremental)',
      labelNames: ['sync'],
      buckets: SYNC_BUCKETS,
      registers: [r],
    });
    this.syncs = new Counter({ name: 'firewall_agent_applies_total', help: 'Rulesets applied, full or incremental', labelNames: ['sync'], registers: [r] });
    for (const sync of ['full', 'incremental']) {
      this.syncs.inc({ sync }, 0);
      this.syncDuration.zero({ sync });
    }
    this.applyFailures = new Counter({ name: 'firewall_agent_apply_failures_total', help: 'Failed applies (the previous ruleset stayed)', registers: [r] });
    this.lastSuccess = new Gauge({ name: 'firewall_agent_last_apply_success_timestamp_seconds', help: 'When a ruleset (connected or the drop ruleset) was last applied', registers: [r] });
    this.lastQueued = new Gauge({ name: 'firewall_agent_last_queued_timestamp_seconds', help: 'When a change in the input last asked for a sync', registers: [r] });
    this.programming = new Histogram({
      name: 'firewall_agent_network_programming_duration_seconds',
      help: 'From a change in the input (watch event, file change) to the kernel holding it',
      buckets: SYNC_BUCKETS,
      registers: [r],
    });
    this.compileDuration = new Histogram({ name: 'firewall_agent_compile_duration_seconds', help: 'Time to compile the input into a table', buckets: SYNC_BUCKETS, registers: [r] });
    this.driftRepairs = new Counter({ name: 'firewall_agent_drift_repairs_total', help: 'Times the kernel no longer held the applied ruleset and it was applied again', registers: [r] });
    this.writebackFailures = new Counter({
      name: 'firewall_agent_writeback_failures_total',
      help: 'Failed writes to the shoot: policy status, events, FirewallMonitor, the metrics Service',
      labelNames: ['kind'],
      registers: [r],
    });
    for (const kind of ['status', 'event', 'monitor', 'service']) this.writebackFailures.inc({ kind }, 0);

    new Gauge({
      name: 'firewall_agent_state',
      help: 'Current state: disconnected, connected, or stale (connected, lost contact, enforcing the last ruleset)',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const s = sources.snapshot();
        const current = s.state === 'connected' && s.stale ? 'stale' : s.state;
        for (const st of ['disconnected', 'connected', 'stale']) this.set({ state: st }, st === current ? 1 : 0);
      },
    });
    new Gauge({
      name: 'firewall_agent_objects',
      help: 'Policies and Services by outcome of the last compile',
      labelNames: ['kind', 'outcome'],
      registers: [r],
      collect() {
        const o = sources.snapshot().objects;
        for (const [kind, byOutcome] of Object.entries(o)) for (const [outcome, n] of Object.entries(byOutcome)) this.set({ kind, outcome }, n);
      },
    });
    new Gauge({
      name: 'firewall_agent_input_problems',
      help: 'Inputs that cannot be read (files that do not parse, credentials); their objects keep their last good version',
      registers: [r],
      collect() {
        this.set(sources.snapshot().inputProblems);
      },
    });
    new Gauge({
      name: 'firewall_agent_watch_up',
      help: '1 when the watch has a complete, current list',
      labelNames: ['watch'],
      registers: [r],
      collect() {
        // the file source's name holds a path: bounded (one per agent), but say "files" only
        for (const w of sources.snapshot().watches) this.set({ watch: w.name.startsWith('files:') ? 'files' : w.name }, w.synced ? 1 : 0);
      },
    });
    new Counter({
      name: 'firewall_agent_watch_restarts_total',
      help: 'Watch restarts after errors',
      labelNames: ['watch'],
      registers: [r],
      collect() {
        this.reset();
        for (const w of sources.snapshot().watches) this.inc({ watch: w.name.startsWith('files:') ? 'files' : w.name }, w.restarts);
      },
    });
    const build = new Gauge({ name: 'firewall_agent_build_info', help: 'Version of the agent and its runtime', labelNames: ['version', 'nodejs'], registers: [r] });
    build.set({ version: VERSION, nodejs: process.versions.node }, 1);
  }
}

/** Caches one value for `ttlMs` and shares a read in flight. */
export function cached<T>(ttlMs: number, read: () => Promise<T>): () => Promise<T> {
  let value: { at: number; v: T } | undefined;
  let inflight: Promise<T> | undefined;
  return () => {
    if (value && Date.now() - value.at < ttlMs) return Promise.resolve(value.v);
    inflight ??= read()
      .then((v) => {
        value = { at: Date.now(), v };
        return v;
      })
      .finally(() => (inflight = undefined));
    return inflight;
  };
}
