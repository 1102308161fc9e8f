/**
 * A transaction: typed operations that `nft -f` runs as one atomic batch (in the manner of
 * knftables). Full applies and incremental updates are both built from these; `serialize.ts`
 * writes them as nft text for the real `nft`, and `fake.ts` applies them to an in-memory table.
 */
import { CounterValue, NftBaseChain, NftElement, NftRule, NftTable, TableRef, isDynamicSet } from './ruleset';

/**
 * Counter values to carry into a redefined table, so counters stay monotonic across full applies:
 * named counters by name, rule counters by chain and comment.
 */
export interface CounterCarry {
  readonly named: Readonly<Record<string, CounterValue>>;
  readonly rules: ReadonlyMap<string, CounterValue>;
}

/**
 * A rule counter is carried by its chain, its comment and which of the chain's counted rules with
 * that comment it is (in chain order): two rules may share a comment (the IPv4 and IPv6 masquerade),
 * and each must keep its own value.
 */
export function ruleKey(chain: string, comment: string, nth: number): string {
  return `${chain}\u0000${comment}\u0000${nth}`;
}

/** Numbers the counted rules of one chain that share a comment: 0, 1, … in order. */
export function commentOrdinals(): (comment: string) => number {
  const seen = new Map<string, number>();
  return (comment) => {
    const n = seen.get(comment) ?? 0;
    seen.set(comment, n + 1);
    return n;
  };
}

export type Op =
  | { readonly verb: 'add' | 'delete'; readonly kind: 'table'; readonly table: TableRef }
  /** `table inet firewall { … }`: the whole table with its objects, counters carried over. */
  | { readonly verb: 'define'; readonly kind: 'table'; readonly table: NftTable; readonly carry?: CounterCarry }
  /** Creates a chain, or (with `base`) sets an existing base chain's declaration and policy. */
  | { readonly verb: 'add'; readonly kind: 'chain'; readonly table: TableRef; readonly name: string; readonly base?: NftBaseChain }
  | { readonly verb: 'flush' | 'delete'; readonly kind: 'chain' | 'map'; readonly table: TableRef; readonly name: string }
  | { readonly verb: 'add'; readonly kind: 'map'; readonly table: TableRef; readonly name: string; readonly keyType: string; readonly flags: readonly string[] }
  | { readonly verb: 'add'; readonly kind: 'rule'; readonly table: TableRef; readonly chain: string; readonly rule: NftRule }
  | { readonly verb: 'add' | 'delete'; readonly kind: 'element'; readonly table: TableRef; readonly set: string; readonly elements: readonly NftElement[] }
  /** A persisted ruleset as text (restoring the last-known-good); only the real nft takes it. */
  | { readonly verb: 'raw'; readonly kind: 'text'; readonly text: string };

export interface Transaction {
  readonly ops: readonly Op[];
}

export function tableRef(t: { family: string; name: string }): TableRef {
  return { family: t.family, name: t.name };
}

/** Replaces `table` as a whole: declare (so the delete cannot fail on a first run), delete, define. */
export function fullTransaction(table: NftTable, opts: { carry?: CounterCarry; after?: readonly Op[] } = {}): Transaction {
  const ref = tableRef(table);
  return {
    ops: [
      { verb: 'add', kind: 'table', table: ref },
      { verb: 'delete', kind: 'table', table: ref },
      { verb: 'define', kind: 'table', table, carry: opts.carry },
      ...(opts.after ?? []),
    ],
  };
}

export function rawTransaction(text: string): Transaction {
  return { ops: [{ verb: 'raw', kind: 'text', text }] };
}

/** Elements of one dynamic set to write: added (not there yet), refreshed with new timeouts, or removed. */
export interface DynamicWrite {
  readonly set: string;
  readonly add?: readonly { readonly address: string; readonly timeoutS: number }[];
  readonly refresh: readonly { readonly address: string; readonly timeoutS: number }[];
  readonly remove: readonly string[];
}

/**
 * Writes dynamic set elements whatever the kernel holds: `add` is a no-op for an element that is
 * there, so add, delete, add sets a fresh timeout on present and absent elements alike, and add,
 * delete removes one that may already have expired. One transaction: no packet sees a gap. A new
 * element is only added: the delete makes a commit several times slower (measured: 16 ms against
 * 4 ms), and an element that is unexpectedly there keeps its own, still running, timeout.
 */
export function dynamicTransaction(table: TableRef, writes: readonly DynamicWrite[]): Transaction {
  const adds: Op[] = [];
  const dels: Op[] = [];
  const readds: Op[] = [];
  const ref = tableRef(table);
  for (const w of writes) {
    const added = (w.add ?? []).map((r): NftElement => ({ key: [r.address], timeout: r.timeoutS }));
    const fresh = w.refresh.map((r): NftElement => ({ key: [r.address], timeout: r.timeoutS }));
    const gone = w.remove.map((a): NftElement => ({ key: [a], timeout: 1 }));
    if (added.length + fresh.length + gone.length === 0) continue;
    adds.push({ verb: 'add', kind: 'element', table: ref, set: w.set, elements: [...added, ...fresh, ...gone] });
    if (fresh.length + gone.length > 0) dels.push({ verb: 'delete', kind: 'element', table: ref, set: w.set, elements: [...fresh, ...gone] });
    if (fresh.length > 0) readds.push({ verb: 'add', kind: 'element', table: ref, set: w.set, elements: fresh });
  }
  return { ops: [...adds, ...dels, ...readds] };
}

/** Re-adds the live elements of the table's dynamic sets (after a full apply redefined them). */
export function carryDynamic(table: NftTable, elements: (set: string) => readonly NftElement[]): Op[] {
  const ops: Op[] = [];
  for (const s of table.sets) {
    if (!isDynamicSet(s)) continue;
    const live = elements(s.name);
    if (live.length > 0) ops.push({ verb: 'add', kind: 'element', table: tableRef(table), set: s.name, elements: live });
  }
  return ops;
}
