/**
 * FakeNft: an in-memory `Nft` for unit tests, in the manner of knftables' fake. It applies the same
 * typed transactions the real nft gets, all or nothing, refusing what nft refuses for missing,
 * duplicate and still-referenced objects (fake-state.ts has the semantics). Around that it offers
 * seams: injected failures, calls held open (to prove callers never overlap), a call log, and
 * helpers that simulate traffic on counters.
 *
 * Knowingly not modelled: interval overlaps and automerge, key normalisation (`10.0.0.1/32` and
 * `10.0.0.1` are different keys here), value syntax and types inside keys and matches, jump loops
 * and depth limits, and older kernels refusing to delete a chain in the transaction that dropped its
 * last reference.
 */
import { CounterValue, NftBaseChain, NftFamily, NftRule, NftTable, TableRef } from './ruleset';
import { Nft } from './runner';
import { tableText } from './serialize';
import { RuleAction, RuleCounter, TableStats } from './stats';
import { Transaction } from './transaction';
import { TableState, applyOps, tableKey } from './fake-state';

export { FakeNftError } from './fake-state';

export type FakeMethod = 'check' | 'apply' | 'list' | 'counters' | 'baseChain' | 'chains';

export interface FakeCall {
  readonly method: FakeMethod;
  /** Date.now() when the call was made (works with jest's fake timers). */
  readonly at: number;
  readonly tx?: Transaction;
}

/** Releases a held call; `entered` settles once the held call has arrived and is waiting. */
export type Release = (() => void) & { readonly entered: Promise<void> };

interface Gate {
  readonly arrive: () => void;
  readonly released: Promise<void>;
}

/** The table as an NftTable: sets, counters and maps in insertion order, regular chains before base chains. */
function toNftTable(t: TableState): NftTable {
  const sets = [...t.sets.values()];
  const chains = [...t.chains.values()];
  const objects = (kind: 'set' | 'map') => sets.filter((s) => s.kind === kind);
  return {
    family: t.ref.family as NftFamily,
    name: t.ref.name,
    sets: objects('set').map((s) => ({ name: s.name, type: s.type, flags: s.flags, elements: [...s.elements.values()] })),
    counters: [...t.counters.keys()],
    maps: objects('map').map((m) => ({ name: m.name, keyType: m.type, flags: m.flags, elements: [...m.elements.values()] })),
    chains: [...chains.filter((c) => !c.base), ...chains.filter((c) => c.base)].map((c) => ({
      name: c.name,
      ...(c.base ? { base: c.base } : {}),
      rules: c.rules.map((r) => r.rule),
    })),
  };
}

function action(rule: NftRule): RuleAction {
  const s = rule.statement;
  if (s?.kind === 'accept' || s?.kind === 'drop') return s.kind;
  // A text statement ending in a verdict (e.g. `log prefix "…" drop`) lists that verdict in JSON.
  const verdict = s?.kind === 'text' ? /(?:^|\s)(accept|drop)$/.exec(s.text)?.[1] : undefined;
  return verdict === 'accept' || verdict === 'drop' ? verdict : 'other';
}

/** What `nft -j list table` yields through parseTableStats: rules with a comment and an anonymous counter. */
function tableStats(t: TableState): TableStats {
  const counters: Record<string, CounterValue> = {};
  for (const [name, v] of t.counters) counters[name] = { ...v };
  const rules: RuleCounter[] = [];
  const chains = [...t.chains.values()];
  for (const c of [...chains.filter((x) => !x.base), ...chains.filter((x) => x.base)]) {
    for (const r of c.rules) {
      if (r.rule.counter?.kind !== 'anonymous' || r.rule.comment === undefined) continue;
      rules.push({ chain: c.name, comment: r.rule.comment, action: action(r.rule), packets: r.packets, bytes: r.bytes });
    }
  }
  return { counters, rules };
}

export class FakeNft implements Nft {
  private state: Map<string, TableState> = new Map();
  private readonly failures = new Map<FakeMethod, Error[]>();
  private readonly gates = new Map<FakeMethod, Gate[]>();

  /** Every call of the Nft methods, in the order made (before any hold, delay or failure). */
  readonly calls: FakeCall[] = [];
  /** Calls under way now, across all methods. */
  inFlight = 0;
  /** The most calls ever under way at once: 1 proves the callers never overlapped. */
  maxInFlight = 0;
  /** Awaited by every call after its hold, before its failure or work: slows calls down. */
  delay?: (method: FakeMethod) => Promise<void>;

  check(tx: Transaction): Promise<void> {
    return this.call('check', tx, () => {
      applyOps(this.state, tx.ops); // the result is discarded: a check never changes anything
    });
  }

  apply(tx: Transaction): Promise<void> {
    return this.call('apply', tx, () => {
      this.state = applyOps(this.state, tx.ops);
    });
  }

  list(table: TableRef): Promise<string | undefined> {
    return this.call('list', undefined, () => this.listing(table));
  }

  counters(table: TableRef): Promise<TableStats | undefined> {
    return this.call('counters', undefined, () => {
      const t = this.find(table);
      return t && tableStats(t);
    });
  }

  baseChain(table: TableRef, chain: string): Promise<NftBaseChain | undefined> {
    return this.call('baseChain', undefined, () => {
      const base = this.find(table)?.chains.get(chain)?.base;
      return base && { ...base };
    });
  }

  chains(family: string): Promise<string> {
    return this.call('chains', undefined, () =>
      [...this.state.values()]
        .filter((t) => t.ref.family === family)
        .map((t) => {
          const n = toNftTable(t);
          return tableText({ ...n, sets: [], maps: [], counters: [], chains: n.chains.map((c) => ({ ...c, rules: [] })) });
        })
        .join('\n'),
    );
  }

  /** Makes the next call of `method` throw `error` (once; each call of failNext queues one more). */
  failNext(method: FakeMethod, error: Error = new Error(`Error: injected ${method} failure`)): void {
    const queue = this.failures.get(method) ?? [];
    queue.push(error);
    this.failures.set(method, queue);
  }

  /** Holds the next call of `method` open until the returned function is called (queued like failNext). */
  hold(method: FakeMethod): Release {
    let arrive!: () => void;
    let release!: () => void;
    const entered = new Promise<void>((resolve) => (arrive = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    const queue = this.gates.get(method) ?? [];
    queue.push({ arrive, released });
    this.gates.set(method, queue);
    return Object.assign(() => release(), { entered });
  }

  /** Applies `tx` at once, outside the call log and seams: sets up state a test starts from. */
  seed(tx: Transaction): void {
    this.state = applyOps(this.state, tx.ops);
  }

  /** Simulates traffic: adds to the counter of the first rule in `chain` with `comment`. */
  count(table: TableRef, chain: string, comment: string, packets: number, bytes: number): void {
    const c = this.find(table)?.chains.get(chain);
    const r = c?.rules.find((x) => x.rule.comment === comment && x.rule.counter);
    if (!r) throw new Error(`FakeNft.count: no rule with a counter and comment ${JSON.stringify(comment)} in ${tableKey(table)} ${chain}`);
    const counter = r.rule.counter!;
    if (counter.kind === 'named') {
      // Traffic through `counter name "x"` counts on the named counter, as in the kernel.
      this.countNamed(table, counter.name, packets, bytes);
      return;
    }
    r.packets += packets;
    r.bytes += bytes;
  }

  /** Simulates traffic on a named counter. */
  countNamed(table: TableRef, name: string, packets: number, bytes: number): void {
    const v = this.find(table)?.counters.get(name);
    if (!v) throw new Error(`FakeNft.countNamed: no counter ${name} in ${tableKey(table)}`);
    v.packets += packets;
    v.bytes += bytes;
  }

  /** The table as an NftTable now (for assertions); undefined when absent. */
  table(table: TableRef): NftTable | undefined {
    const t = this.find(table);
    return t && toNftTable(t);
  }

  /** The tables present, in the order they were created. */
  tables(): TableRef[] {
    return [...this.state.values()].map((t) => ({ ...t.ref }));
  }

  /** Every table's stateless listing, one after another (for debugging and assertions). */
  dump(): string {
    return [...this.state.values()].map((t) => tableText(toNftTable(t))).join('\n');
  }

  private find(table: TableRef): TableState | undefined {
    return this.state.get(tableKey(table));
  }

  private listing(table: TableRef): string | undefined {
    const t = this.find(table);
    // Exactly tableText's output (no trailing newline), so tests can compare with tableText.
    return t && tableText(toNftTable(t));
  }

  /**
   * One call: logged, counted in flight, held if a test asked, delayed, failed if a test asked,
   * then done. Always asynchronous, like the real nft, so overlapping callers would show up.
   */
  private async call<T>(method: FakeMethod, tx: Transaction | undefined, work: () => T): Promise<T> {
    this.calls.push(tx ? { method, at: Date.now(), tx } : { method, at: Date.now() });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const gate = this.gates.get(method)?.shift();
      if (gate) {
        gate.arrive();
        await gate.released;
      }
      if (this.delay) await this.delay(method);
      else await Promise.resolve();
      const failure = this.failures.get(method)?.shift();
      if (failure) throw failure;
      // The work runs synchronously after the last await: nothing can change the state mid-op.
      return work();
    } finally {
      this.inFlight--;
    }
  }
}
