/**
 * Renders owned tables as one `nft -f` transaction: declare (so the delete cannot fail on a first
 * run), delete, and define again. nft applies the whole text atomically, so the kernel holds either
 * the old table or the new one, never a mix. It never contains `flush ruleset` and never names a
 * table it does not own.
 */
import { CounterValue, NftChain, NftMap, NftSet, NftTable } from './ruleset';
import { identifier } from './syntax';

/**
 * Counter values to carry into a new transaction, so counters stay monotonic although the table is
 * redefined: named counters by name, rule counters by chain and comment.
 */
export interface CounterCarry {
  readonly named: Readonly<Record<string, CounterValue>>;
  readonly rules: ReadonlyMap<string, CounterValue>;
}

export function ruleKey(chain: string, comment: string): string {
  return `${chain}\u0000${comment}`;
}

export interface RenderOptions {
  readonly counters?: CounterCarry;
  /** Statements appended after the table definitions, in the same transaction. */
  readonly after?: readonly string[];
}

const COMMENT_AT_END = /comment "([^"]*)"$/;
const ANONYMOUS_COUNTER = /\bcounter(?! name)(?! packets)/;

function withCounterValues(chain: string, rule: string, carry: CounterCarry | undefined): string {
  if (!carry || !ANONYMOUS_COUNTER.test(rule)) return rule;
  const m = COMMENT_AT_END.exec(rule);
  const v = m ? carry.rules.get(ruleKey(chain, m[1]!)) : undefined;
  if (!v) return rule;
  return rule.replace(ANONYMOUS_COUNTER, `counter packets ${Math.trunc(v.packets)} bytes ${Math.trunc(v.bytes)}`);
}

const INDENT = '\t';

/** Appends to `out` in place: maps can hold 100k+ elements, too many for spread arguments. */
function pushElements(out: string[], items: readonly string[], indent: string): void {
  if (items.length === 0) return;
  out.push(`${indent}elements = {`);
  for (let i = 0; i < items.length; i++) out.push(`${indent}${INDENT}${items[i]!}${i + 1 < items.length ? ',' : ''}`);
  out.push(`${indent}}`);
}

function renderSet(s: NftSet): string[] {
  const i2 = INDENT + INDENT;
  const lines = [`${INDENT}set ${identifier(s.name)} {`, `${i2}type ${s.type}`];
  if (s.flags.length > 0) lines.push(`${i2}flags ${s.flags.join(',')}`);
  pushElements(lines, s.elements, i2);
  lines.push(`${INDENT}}`);
  return lines;
}

function renderMap(m: NftMap): string[] {
  const i2 = INDENT + INDENT;
  const lines = [`${INDENT}map ${identifier(m.name)} {`, `${i2}type ${m.keyType} : verdict`];
  if (m.flags.length > 0) lines.push(`${i2}flags ${m.flags.join(',')}`);
  pushElements(lines, m.elements.map((e) => `${e.key} : ${e.verdict}`), i2);
  lines.push(`${INDENT}}`);
  return lines;
}

function renderChain(c: NftChain, carry?: CounterCarry): string[] {
  const i2 = INDENT + INDENT;
  const lines = [`${INDENT}chain ${identifier(c.name)} {`];
  if (c.base) {
    lines.push(`${i2}type ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; policy ${c.base.policy};`);
  }
  for (const r of c.rules) lines.push(`${i2}${withCounterValues(c.name, r, carry)}`);
  lines.push(`${INDENT}}`);
  return lines;
}

export function renderTable(t: NftTable, carry?: CounterCarry): string {
  const name = `${t.family} ${identifier(t.name)}`;
  const lines: string[] = [`table ${name} {`];
  const append = (more: string[]): void => {
    for (const l of more) lines.push(l);
  };
  for (const s of t.sets) append(renderSet(s));
  for (const c of t.counters) {
    const v = carry?.named[c];
    lines.push(`${INDENT}counter ${identifier(c)} {`);
    if (v) lines.push(`${INDENT}${INDENT}packets ${Math.trunc(v.packets)} bytes ${Math.trunc(v.bytes)}`);
    lines.push(`${INDENT}}`);
  }
  // Regular chains before the maps whose verdicts jump to them, base chains last. A chain named
  // like a map is that map's lookup chain: it follows its map, and maps listed later may jump to it.
  const mapNames = new Set(t.maps.map((m) => m.name));
  const lookups = new Map(t.chains.filter((c) => !c.base && mapNames.has(c.name)).map((c) => [c.name, c]));
  for (const c of t.chains) if (!c.base && !lookups.has(c.name)) append(renderChain(c, carry));
  for (const m of t.maps) {
    append(renderMap(m));
    const lookup = lookups.get(m.name);
    if (lookup) append(renderChain(lookup, carry));
  }
  for (const c of t.chains) if (c.base) append(renderChain(c, carry));
  lines.push('}');
  return lines.join('\n');
}

/** The full transaction replacing `tables` (and only those). */
export function renderTransaction(tables: readonly NftTable[], opts: RenderOptions = {}): string {
  const out: string[] = [];
  for (const t of tables) {
    const name = `${t.family} ${identifier(t.name)}`;
    out.push(`add table ${name}`, `delete table ${name}`);
  }
  for (const t of tables) out.push(renderTable(t, opts.counters));
  for (const a of opts.after ?? []) out.push(a);
  return `${out.join('\n')}\n`;
}
