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

/** The transaction turning `prev` into `next`, or undefined when more than policies changed. */
export function planIncremental(prev: NftTable, next: NftTable): IncrementalPlan | undefined {
  if (prev.family !== next.family || prev.name !== next.name) return undefined;
  if (!same(prev.counters, next.counters)) return undefined;
  if (!same(prev.sets, next.sets, setEq)) return undefined;
  const prevMaps = new Map(prev.maps.map((m) => [m.name, m]));
  const nextMaps = new Map(next.maps.map((m) => [m.name, m]));
  for (const [name, m] of nextMaps) {
    const p = prevMaps.get(name);
    if (p && (p.keyType !== m.keyType || !same(p.flags, m.flags))) return undefined;
  }
  const prevBase = prev.chains.filter((c) => c.base);
  const nextBase = next.chains.filter((c) => c.base);
  if (!same(prevBase, nextBase, chainEq)) return undefined;

  const prevChains = new Map(prev.chains.filter((c) => !c.base).map((c) => [c.name, c]));
  const nextChains = new Map(next.chains.filter((c) => !c.base).map((c) => [c.name, c]));
  for (const [name, c] of nextChains) {
    const p = prevChains.get(name);
    // A policy chain whose rules changed (e.g. logging switched) is rare: re-send the whole table.
    if (p && !chainEq(p, c)) return undefined;
  }

  const table: TableRef = tableRef(next);
  const ops: Op[] = [];
  // A chain or map may still be in the kernel from before (stale, not yet cleaned up): flushing it
  // makes sure it holds exactly what is added here.
  const addChain = (c: NftChain): void => {
    ops.push({ verb: 'add', kind: 'chain', table, name: c.name }, { verb: 'flush', kind: 'chain', table, name: c.name });
    for (const rule of c.rules) ops.push({ verb: 'add', kind: 'rule', table, chain: c.name, rule });
  };
  // New target chains first, then new maps each with its lookup chain, then the elements.
  for (const [name, c] of nextChains) if (!prevChains.has(name) && !nextMaps.has(name)) addChain(c);
  for (const [name, m] of nextMaps) {
    if (prevMaps.has(name)) continue;
    ops.push({ verb: 'add', kind: 'map', table, name, keyType: m.keyType, flags: m.flags }, { verb: 'flush', kind: 'map', table, name });
    const lookup = nextChains.get(name);
    if (lookup && !prevChains.has(name)) addChain(lookup);
  }
  let elementsAdded = 0;
  let elementsDeleted = 0;
  const adds: Op[] = [];
  for (const m of next.maps) {
    // A compile cache hands over the same element list for an unchanged shard: nothing to compare.
    const before = prevMaps.get(m.name)?.elements ?? [];
    if (before === m.elements) continue;
    // Keyed by the key as nft prints it; an element whose verdict changed is deleted and re-added.
    const wasKeys = before.map(elementKey);
    const nowKeys = m.elements.map(elementKey);
    const was = new Map(before.map((e, i) => [wasKeys[i]!, verdictText(e)]));
    const now = new Map(m.elements.map((e, i) => [nowKeys[i]!, verdictText(e)]));
    const del = before.filter((e, i) => now.get(wasKeys[i]!) !== verdictText(e));
    const add = m.elements.filter((e, i) => was.get(nowKeys[i]!) !== verdictText(e));
    if (del.length > 0) ops.push({ verb: 'delete', kind: 'element', table, set: m.name, elements: del });
    if (add.length > 0) adds.push({ verb: 'add', kind: 'element', table, set: m.name, elements: add });
    elementsAdded += add.length;
    elementsDeleted += del.length;
  }
  // A map that is gone is emptied now, so the chains its elements pointed to can go at cleanup.
  const staleMaps = [...prevMaps.keys()].filter((n) => !nextMaps.has(n));
  for (const name of staleMaps) {
    ops.push({ verb: 'flush', kind: 'map', table, name });
    elementsDeleted += prevMaps.get(name)!.elements.length;
  }
  // All deletions first, then additions: an element may move from one key to an overlapping one.
  ops.push(...adds);
  const staleChains = [...prevChains.keys()].filter((n) => !nextChains.has(n));
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
