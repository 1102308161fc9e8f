/**
 * Counters from `nft -j list table …`: named counters and, per rule with a comment and a counter,
 * its action and values. Pure: takes the JSON text.
 */

import { CounterCarry, ruleKey, commentOrdinals } from './transaction';
import { CounterValue } from './ruleset';

export type { CounterValue };

export type RuleAction = 'accept' | 'drop' | 'other';

export interface RuleCounter extends CounterValue {
  readonly chain: string;
  readonly comment: string;
  readonly action: RuleAction;
}

export interface TableStats {
  readonly counters: Readonly<Record<string, CounterValue>>;
  readonly rules: readonly RuleCounter[];
}

type Json = Record<string, unknown>;

export function parseTableStats(jsonText: string): TableStats {
  const doc = JSON.parse(jsonText) as { nftables?: Json[] };
  const counters: Record<string, CounterValue> = {};
  const rules: RuleCounter[] = [];
  for (const item of doc.nftables ?? []) {
    const c = item.counter as Json | undefined;
    if (c && typeof c.name === 'string') {
      counters[c.name] = { packets: Number(c.packets ?? 0), bytes: Number(c.bytes ?? 0) };
      continue;
    }
    const r = item.rule as Json | undefined;
    if (!r || typeof r.comment !== 'string' || !Array.isArray(r.expr)) continue;
    let counter: CounterValue | undefined;
    let action: RuleAction = 'other';
    for (const e of r.expr as Json[]) {
      if (e.counter && typeof e.counter === 'object') {
        const v = e.counter as Json;
        counter = { packets: Number(v.packets ?? 0), bytes: Number(v.bytes ?? 0) };
      }
      if ('accept' in e) action = 'accept';
      if ('drop' in e) action = 'drop';
    }
    if (counter) rules.push({ chain: String(r.chain), comment: r.comment, action, ...counter });
  }
  return { counters, rules };
}

/** FirewallMonitor `stats.rules`: action → comment → counter (same-comment rules are summed). */
export function rulesByAction(stats: TableStats): Record<string, Record<string, { counter: CounterValue }>> {
  const out: Record<string, Record<string, { counter: CounterValue }>> = { accept: {}, drop: {}, other: {} };
  for (const r of stats.rules) {
    const bucket = out[r.action]!;
    const prev = bucket[r.comment]?.counter ?? { packets: 0, bytes: 0 };
    bucket[r.comment] = { counter: { packets: prev.packets + r.packets, bytes: prev.bytes + r.bytes } };
  }
  return out;
}

/** FirewallMonitor `stats.devices`: internal/external in/out bytes from the accounting counters. */
export function deviceStats(stats: TableStats): Record<string, { in: number; out: number }> {
  const b = (name: string): number => stats.counters[name]?.bytes ?? 0;
  return {
    internal: { in: b('internal_in'), out: b('internal_out') },
    external: { in: b('external_in'), out: b('external_out') },
  };
}

/** The values to carry into the next transaction (see CounterCarry). */
export function counterCarry(stats: TableStats): CounterCarry {
  const rules = new Map<string, CounterValue>();
  const ordinals = new Map<string, (comment: string) => number>();
  for (const r of stats.rules) {
    let nth = ordinals.get(r.chain);
    if (!nth) ordinals.set(r.chain, (nth = commentOrdinals()));
    rules.set(ruleKey(r.chain, r.comment, nth(r.comment)), { packets: r.packets, bytes: r.bytes });
  }
  return { named: stats.counters, rules };
}
