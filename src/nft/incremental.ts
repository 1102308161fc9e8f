/**
 * Incremental updates: when only policies changed, the new table differs from the applied one in
 * map elements and per-policy chains. Instead of re-sending the whole table, send one transaction
 * that adds the new chains, deletes and adds only the changed elements. Pure: two tables in, a
 * transaction out (or undefined when anything else changed and a full sync is needed).
 */
import { NftChain, NftCounterRef, NftElement, NftMatch, NftRule, NftSet, NftStatement, NftTable, TableRef, elementKey } from './ruleset';
import { Op, Transaction, tableRef } from './transaction';

export interface IncrementalPlan {
  readonly tx: Transaction;
  /** Chains no element points to any more; deleted later in a separate transaction (see cleanup). */
  readonly staleChains: string[];
  /** Maps (address shards) no chain looks up any more; deleted after the stale chains. */
  readonly staleMaps: string[];
  readonly elementsAdded: number;
  readonly elementsDeleted: number;
}

function same<T>(a: readonly T[], b: readonly T[], eq: (x: T, y: T) => boolean = (x, y) => x === y): boolean {
  return a === b || (a.length === b.length && a.every((x, i) => eq(x, b[i]!)));
}

function matchEq(a: NftMatch, b: NftMatch): boolean {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return a.expr === b.expr && a.set === b.set && !a.negate === !b.negate;
}

function statementEq(a: NftStatement | undefined, b: NftStatement | undefined): boolean {
  if (!a || !b) return a === b;
  if (a.kind !== b.kind) return false;
  switch (a.kind) {
    case 'accept':
    case 'drop':
      return true;
    case 'jump':
    case 'goto':
      return a.chain === (b as typeof a).chain;
    case 'vmap':
      return a.expr === (b as typeof a).expr && a.map === (b as typeof a).map;
    case 'text':
      return a.text === (b as typeof a).text;
  }
}

function counterEq(a: NftCounterRef | undefined, b: NftCounterRef | undefined): boolean {
  if (!a || !b) return a === b;
  return a.kind === b.kind && (a.kind === 'anonymous' || a.name === (b as typeof a).name);
}

function ruleEq(a: NftRule, b: NftRule): boolean {
  if (a === b) return true;
  return a.comment === b.comment && counterEq(a.counter, b.counter) && same(a.match, b.match, matchEq) && statementEq(a.statement, b.statement);
}

function chainEq(a: NftChain, b: NftChain): boolean {
  if (a === b) return true;
  const base = a.base === b.base || (!!a.base && !!b.base && a.base.type === b.base.type && a.base.hook === b.base.hook && a.base.priority === b.base.priority && a.base.policy === b.base.policy);
  return a.name === b.name && base && same(a.rules, b.rules, ruleEq);
}

/** What identifies an element in a diff: its key and where it leads. */
function verdictText(e: NftElement): string {
  return e.verdict ? `${e.verdict.kind} ${e.verdict.chain}` : '';
}

function elementEq(a: NftElement, b: NftElement): boolean {
  return verdictText(a) === verdictText(b) && same(a.key, b.key);
}

function setEq(a: NftSet, b: NftSet): boolean {
  return a.name === b.name && a.type === b.type && same(a.flags, b.flags) && same(a.elements, b.elements, elementEq);
}

/** How far to look ahead for the other list's item before calling both changed (see byName). */
const LOOKAHEAD = 32;

interface Named {
  readonly name: string;
}

/**
 * Pairs the items of two lists of uniquely named objects by name: those only in `next` (in its
 * order), those only in `prev` (in its order), and the pairs in both whose objects differ. Tables
 * compiled with a cache share most objects in the same order, so a walk over both lists matches
 * them by identity without hashing 40,000 names (which costs tens of ms); where they differ, a
 * short look-ahead finds the insertion or deletion. Anything misjudged (items moved, long runs of
 * changes) ends up in both `added` and `removed` and is paired by name at the end.
 */
export function byName<T extends Named>(prev: readonly T[], next: readonly T[]): { added: T[]; removed: T[]; changed: [T, T][] } {
  const added: T[] = [];
  const removed: T[] = [];
  const changed: [T, T][] = [];
  let i = 0;
  let j = 0;
  const find = (list: readonly T[], from: number, name: string): number => {
    for (let k = from; k < list.length && k < from + LOOKAHEAD; k++) if (list[k]!.name === name) return k - from;
    return -1;
  };
  while (i < prev.length && j < next.length) {
    const p = prev[i]!;
    const n = next[j]!;
    if (p === n) {
      i++;
      j++;
    } else if (p.name === n.name) {
      changed.push([p, n]);
      i++;
      j++;
    } else {
      const gone = find(prev, i + 1, n.name); // p and those after it went, until n
      const came = find(next, j + 1, p.name); // n and those after it came, until p
      if (came >= 0 && (gone < 0 || came <= gone)) for (let k = 0; k <= came; k++) added.push(next[j++]!);
      else if (gone >= 0) for (let k = 0; k <= gone; k++) removed.push(prev[i++]!);
      else (removed.push(prev[i++]!), added.push(next[j++]!));
    }
  }
  while (i < prev.length) removed.push(prev[i++]!);
  while (j < next.length) added.push(next[j++]!);
  if (added.length === 0 || removed.length === 0) return { added, removed, changed };
  const gone = new Map(removed.map((x) => [x.name, x]));
  const both = new Set<string>();
  for (const x of added) {
    const was = gone.get(x.name);
    if (was === undefined) continue;
    both.add(x.name);
    if (was !== x) changed.push([was, x]);
  }
  if (both.size === 0) return { added, removed, changed };
  return { added: added.filter((x) => !both.has(x.name)), removed: removed.filter((x) => !both.has(x.name)), changed };
}

/** The transaction turning `prev` into `next`, or undefined when more than policies changed. */
export function planIncremental(prev: NftTable, next: NftTable): IncrementalPlan | undefined {
  if (prev.family !== next.family || prev.name !== next.name) return undefined;
  if (!same(prev.counters, next.counters)) return undefined;
  if (!same(prev.sets, next.sets, setEq)) return undefined;
  const maps = byName(prev.maps, next.maps);
  for (const [p, m] of maps.changed) if (p.keyType !== m.keyType || !same(p.flags, m.flags)) return undefined;
  const chains = byName(prev.chains, next.chains);
  // A chain whose rules changed (e.g. logging switched) is rare, a base chain that came or went
  // too: re-send the whole table.
  for (const [p, c] of chains.changed) if (!chainEq(p, c)) return undefined;
  if (chains.added.some((c) => c.base) || chains.removed.some((c) => c.base)) return undefined;
  const newMaps = new Set(maps.added.map((m) => m.name));
  const mapNames = new Set(next.maps.map((m) => m.name));
  const newChains = new Map(chains.added.map((c) => [c.name, c]));

  const table: TableRef = tableRef(next);
  const ops: Op[] = [];
  // A chain or map may still be in the kernel from before (stale, not yet cleaned up): flushing it
  // makes sure it holds exactly what is added here.
  const addChain = (c: NftChain): void => {
    ops.push({ verb: 'add', kind: 'chain', table, name: c.name }, { verb: 'flush', kind: 'chain', table, name: c.name });
    for (const rule of c.rules) ops.push({ verb: 'add', kind: 'rule', table, chain: c.name, rule });
  };
  // New target chains first, then new maps each with its lookup chain, then the elements.
  for (const c of chains.added) if (!mapNames.has(c.name)) addChain(c);
  for (const m of maps.added) {
    ops.push({ verb: 'add', kind: 'map', table, name: m.name, keyType: m.keyType, flags: m.flags }, { verb: 'flush', kind: 'map', table, name: m.name });
    const lookup = newChains.get(m.name);
    if (lookup) addChain(lookup);
  }
  let elementsAdded = 0;
  let elementsDeleted = 0;
  const adds: Op[] = [];
  // Maps with the same element list (a compile cache hands over the very array for an unchanged
  // shard) are not among the changed pairs: nothing to compare.
  const before = new Map(maps.changed.map(([p, m]) => [m.name, p.elements]));
  for (const m of next.maps) {
    const was = newMaps.has(m.name) ? [] : before.get(m.name);
    if (was === undefined || was === m.elements) continue;
    // Keyed by the key as nft prints it; an element whose verdict changed is deleted and re-added.
    const wasKeys = was.map(elementKey);
    const nowKeys = m.elements.map(elementKey);
    const wasMap = new Map(was.map((e, i) => [wasKeys[i]!, verdictText(e)]));
    const nowMap = new Map(m.elements.map((e, i) => [nowKeys[i]!, verdictText(e)]));
    const del = was.filter((e, i) => nowMap.get(wasKeys[i]!) !== verdictText(e));
    const add = m.elements.filter((e, i) => wasMap.get(nowKeys[i]!) !== verdictText(e));
    if (del.length > 0) ops.push({ verb: 'delete', kind: 'element', table, set: m.name, elements: del });
    if (add.length > 0) adds.push({ verb: 'add', kind: 'element', table, set: m.name, elements: add });
    elementsAdded += add.length;
    elementsDeleted += del.length;
  }
  // A map that is gone is emptied now, so the chains its elements pointed to can go at cleanup.
  const staleMaps = maps.removed.map((m) => m.name);
  for (const m of maps.removed) {
    ops.push({ verb: 'flush', kind: 'map', table, name: m.name });
    elementsDeleted += m.elements.length;
  }
  // All deletions first, then additions: an element may move from one key to an overlapping one.
  ops.push(...adds);
  const staleChains = chains.removed.map((c) => c.name);
  return { tx: { ops }, staleChains, staleMaps, elementsAdded, elementsDeleted };
}

/**
 * Deleting chains in their own, later transaction: older kernels refuse to delete a chain in the
 * same transaction that removed the last reference to it. Maps go after the chains that look them up.
 */
export function cleanupTransaction(table: TableRef, chains: readonly string[], maps: readonly string[]): Transaction {
  return {
    ops: [
      ...chains.map((name): Op => ({ verb: 'delete', kind: 'chain', table: tableRef(table), name })),
      ...maps.map((name): Op => ({ verb: 'delete', kind: 'map', table: tableRef(table), name })),
    ],
  };
}
