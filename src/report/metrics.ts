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

export interface AgentSnapshot {
  readonly state: 'disconnected' | 'connected';
  readonly stale: boolean;
  readonly policies: Readonly<Record<'deployed' | 'ignored' | 'rejected', number>>;
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

export class AgentMetrics {
  readonly registry = new Registry();
  readonly applyDuration: Histogram<string>;
  readonly applies: Counter<string>;
  readonly applyFailures: Counter<string>;
  readonly lastSuccess: Gauge<string>;

  constructor(sources: MetricsSources) {
    const r = this.registry;
    // process_resident_memory_bytes, nodejs_heap_size_used_bytes, event loop lag, …
    collectDefaultMetrics({ register: r });
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
    kernelCounter(r, 'firewall_agent_policy_accepted_packets_total', 'New connections accepted, by policy', ['policy', 'direction'], policyValues((c) => c.packets));
    kernelCounter(r, 'firewall_agent_policy_accepted_bytes_total', 'Bytes of the accepted first packets, by policy', ['policy', 'direction'], policyValues((c) => c.bytes));
    const dropValues = (pick: (c: CounterValue) => number) => async (): Promise<[Record<string, string>, number][]> => {
      const s = await stats();
      if (!s) return [];
      return Object.entries(DROP_COUNTERS)
        .filter(([name]) => s.counters[name])
        .map(([name, reason]) => [{ reason }, pick(s.counters[name]!)]);
    };
    kernelCounter(r, 'firewall_agent_dropped_packets_total', 'Packets dropped, by reason', ['reason'], dropValues((c) => c.packets));
    kernelCounter(r, 'firewall_agent_dropped_bytes_total', 'Bytes dropped, by reason', ['reason'], dropValues((c) => c.bytes));
    kernelCounter(r, 'firewall_agent_device_bytes_total', 'Forwarded bytes to/from the node network, internal or external', ['device', 'direction'], async () => {
      const s = await stats();
      if (!s) return [];
      const out: [Record<string, string>, number][] = [];
      for (const device of ['internal', 'external']) {
        for (const direction of ['in', 'out']) {
          const c = s.counters[`${device}_${direction}`];
          if (c) out.push([{ device, direction }, c.bytes]);
        }
      }
      return out;
    });

    this.applyDuration = new Histogram({
      name: 'firewall_agent_apply_duration_seconds',
      help: 'Time to check, apply and read back a ruleset',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.applies = new Counter({
      name: 'firewall_agent_applies_total',
      help: 'Rulesets applied: the whole table (full) or only what changed (incremental)',
      labelNames: ['mode'],
      registers: [r],
    });
    this.applyFailures = new Counter({ name: 'firewall_agent_apply_failures_total', help: 'Failed applies (the previous ruleset stayed)', registers: [r] });
    this.lastSuccess = new Gauge({ name: 'firewall_agent_last_apply_success_timestamp_seconds', help: 'When a ruleset was last applied', registers: [r] });

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
      name: 'firewall_agent_policies',
      help: 'Policies and Services by outcome of the last compile',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const p = sources.snapshot().policies;
        for (const [state, n] of Object.entries(p)) this.set({ state }, n);
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
