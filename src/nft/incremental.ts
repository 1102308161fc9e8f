/**
 * Incremental updates: when only policies changed, the new table differs from the applied one in
 * map elements and per-policy chains. Instead of re-sending the whole table, send one transaction
 * that adds the new chains, deletes and adds only the changed elements. Pure: two tables in,
 * nft statements out (or undefined when anything else changed and a full sync is needed).
 */
import { NftChain, NftTable } from './ruleset';
import { identifier } from './syntax';

export interface IncrementalPlan {
  readonly statements: readonly string[];
  /** Chains no element points to any more; deleted later in a separate transaction (see cleanup). */
  readonly staleChains: readonly string[];
  /** Maps (address shards) no chain looks up any more; deleted after the stale chains. */
  readonly staleMaps: readonly string[];
  readonly elementsAdded: number;
  readonly elementsDeleted: number;
}

function same<T>(a: readonly T[], b: readonly T[], eq: (x: T, y: T) => boolean = (x, y) => x === y): boolean {
  return a.length === b.length && a.every((x, i) => eq(x, b[i]!));
}

function chainEq(a: NftChain, b: NftChain): boolean {
  return a.name === b.name && JSON.stringify(a.base) === JSON.stringify(b.base) && same(a.rules, b.rules);
}

function batched(head: string, items: readonly string[], out: string[]): void {
  // nft limits nothing here, but very long lines are hard to read in errors: batch them.
  for (let j = 0; j < items.length; j += 500) out.push(`${head} { ${items.slice(j, j + 500).join(', ')} }`);
}

/** Statements turning `prev` into `next`, or undefined when more than policies changed. */
export function planIncremental(prev: NftTable, next: NftTable): IncrementalPlan | undefined {
  if (prev.family !== next.family || prev.name !== next.name) return undefined;
  if (!same(prev.counters, next.counters)) return undefined;
  if (!same(prev.sets, next.sets, (a, b) => a.name === b.name && a.type === b.type && same(a.flags, b.flags) && same(a.elements, b.elements))) {
    return undefined;
  }
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

  const t = `${next.family} ${identifier(next.name)}`;
  const statements: string[] = [];
  // A chain or map may still be in the kernel from before (stale, not yet cleaned up): flushing it
  // makes sure it holds exactly what is added here.
  const addChain = (c: NftChain): void => {
    statements.push(`add chain ${t} ${identifier(c.name)}`, `flush chain ${t} ${identifier(c.name)}`);
    for (const r of c.rules) statements.push(`add rule ${t} ${identifier(c.name)} ${r}`);
  };
  // New target chains first, then new maps each with its lookup chain, then the elements.
  for (const [name, c] of nextChains) if (!prevChains.has(name) && !nextMaps.has(name)) addChain(c);
  for (const [name, m] of nextMaps) {
    if (prevMaps.has(name)) continue;
    statements.push(
      `add map ${t} ${identifier(name)} { type ${m.keyType} : verdict;${m.flags.length > 0 ? ` flags ${m.flags.join(',')};` : ''} }`,
      `flush map ${t} ${identifier(name)}`,
    );
    const lookup = nextChains.get(name);
    if (lookup && !prevChains.has(name)) addChain(lookup);
  }
  let elementsAdded = 0;
  let elementsDeleted = 0;
  const adds: string[] = [];
  for (const m of next.maps) {
    // A compile cache hands over the same element list for an unchanged shard: nothing to compare.
    if (prevMaps.get(m.name)?.elements === m.elements) continue;
    const before = new Map((prevMaps.get(m.name)?.elements ?? []).map((e) => [e.key, e.verdict]));
    const after = new Map(m.elements.map((e) => [e.key, e.verdict]));
    const del: string[] = [];
    const add: string[] = [];
    for (const [k, v] of before) if (after.get(k) !== v) del.push(k);
    for (const [k, v] of after) if (before.get(k) !== v) add.push(`${k} : ${v}`);
    batched(`delete element ${t} ${identifier(m.name)}`, del, statements);
    batched(`add element ${t} ${identifier(m.name)}`, add, adds);
    elementsAdded += add.length;
    elementsDeleted += del.length;
  }
  // A map that is gone is emptied now, so the chains its elements pointed to can go at cleanup.
  const staleMaps = [...prevMaps.keys()].filter((n) => !nextMaps.has(n));
  for (const name of staleMaps) {
    statements.push(`flush map ${t} ${identifier(name)}`);
    elementsDeleted += prevMaps.get(name)!.elements.length;
  }
  // All deletions first, then additions: an element may move from one key to an overlapping one.
  statements.push(...adds);
  const staleChains = [...prevChains.keys()].filter((n) => !nextChains.has(n));
  return { statements, staleChains, staleMaps, elementsAdded, elementsDeleted };
}

/** Deleting chains in their own, later transaction: older kernels refuse to delete a chain in the
 * same transaction that removed the last reference to it. Maps go after the chains that look them up. */
export function cleanupStatements(table: { family: string; name: string }, chains: readonly string[], maps: readonly string[] = []): string[] {
  const t = `${table.family} ${identifier(table.name)}`;
  return [...chains.map((c) => `delete chain ${t} ${identifier(c)}`), ...maps.map((m) => `delete map ${t} ${identifier(m)}`)];
}
