/**
 * The one serializer: typed objects and transactions to nft text. Rules are written the way nft
 * lists them back (quoted counter names, default limits omitted), so what the kernel lists can be
 * compared with what we meant (fingerprint.ts). It never writes `flush ruleset` and never names a
 * table the transaction does not name.
 */
import { CounterValue, NftChain, NftChainVerdict, NftElement, NftMap, NftMatch, NftRule, NftSet, NftStatement, NftTable, TableRef, elementKey } from './ruleset';
import { identifier } from './syntax';
import { CounterCarry, Op, Transaction, commentOrdinals, ruleKey } from './transaction';

const INDENT = '\t';

/** Where lines go: an array to join, or a writer taking them in pieces (transactionPieces). */
type Lines = Pick<string[], 'push'>;

function matchText(m: NftMatch): string {
  if (typeof m === 'string') return m;
  return `${m.expr} ${m.negate ? '!= ' : ''}@${identifier(m.set)}`;
}

function statementText(s: NftStatement): string {
  switch (s.kind) {
    case 'accept':
    case 'drop':
      return s.kind;
    case 'jump':
    case 'goto':
      return `${s.kind} ${identifier(s.chain)}`;
    case 'vmap':
      return `${s.expr} vmap @${identifier(s.map)}`;
    case 'text':
      return s.text;
  }
}

/** One rule; `carried` gives an anonymous counter its earlier values. */
export function ruleText(r: NftRule, carried?: CounterValue): string {
  const parts = r.match.map(matchText);
  if (r.counter?.kind === 'named') parts.push(`counter name "${identifier(r.counter.name)}"`);
  else if (r.counter) parts.push(carried ? `counter packets ${Math.trunc(carried.packets)} bytes ${Math.trunc(carried.bytes)}` : 'counter');
  if (r.statement) parts.push(statementText(r.statement));
  if (r.comment !== undefined) parts.push(`comment "${r.comment}"`);
  return parts.join(' ');
}

export function elementText(e: NftElement): string {
  const key = elementKey(e);
  if (e.verdict) return `${key} : ${e.verdict.kind} ${identifier(e.verdict.chain)}`;
  return e.timeout === undefined ? key : `${key} timeout ${Math.max(1, Math.ceil(e.timeout))}s`;
}

/**
 * Appends the element block to `out`, its element lines joined into one entry: a table's lines
 * live until the whole text is joined, and 100k+ short strings would outlive the young generation.
 */
function pushElements(out: Lines, items: readonly NftElement[], indent: string): void {
  if (items.length === 0) return;
  out.push(`${indent}elements = {`);
  // Elements share one verdict object per owner: its text is made once, not once per element.
  const verdicts = new Map<NftChainVerdict, string>();
  const lines = new Array<string>(items.length);
  for (let i = 0; i < items.length; i++) {
    const e = items[i]!;
    let text: string;
    if (e.verdict) {
      let verdict = verdicts.get(e.verdict);
      if (verdict === undefined) verdicts.set(e.verdict, (verdict = ` : ${e.verdict.kind} ${identifier(e.verdict.chain)}`));
      text = elementKey(e) + verdict;
    } else text = elementText(e);
    lines[i] = `${indent}${INDENT}${text}${i + 1 < items.length ? ',' : ''}`;
  }
  out.push(lines.join('\n'));
  out.push(`${indent}}`);
}

export function setLines(s: NftSet): string[] {
  const i2 = INDENT + INDENT;
  const lines = [`${INDENT}set ${identifier(s.name)} {`, `${i2}type ${s.type}`];
  if (s.flags.length > 0) lines.push(`${i2}flags ${s.flags.join(',')}`);
  pushElements(lines, s.elements, i2);
  lines.push(`${INDENT}}`);
  return lines;
}

export function mapLines(m: NftMap, withElements = true): string[] {
  const i2 = INDENT + INDENT;
  const lines = [`${INDENT}map ${identifier(m.name)} {`, `${i2}type ${m.keyType} : verdict`];
  if (m.flags.length > 0) lines.push(`${i2}flags ${m.flags.join(',')}`);
  if (withElements) pushElements(lines, m.elements, i2);
  lines.push(`${INDENT}}`);
  return lines;
}

export function baseChainText(b: NonNullable<NftChain['base']>): string {
  return `type ${b.type} hook ${b.hook} priority ${b.priority}; policy ${b.policy};`;
}

export function chainLines(c: NftChain, carry?: CounterCarry): string[] {
  const i2 = INDENT + INDENT;
  const lines = [`${INDENT}chain ${identifier(c.name)} {`];
  if (c.base) lines.push(`${i2}${baseChainText(c.base)}`);
  const nth = commentOrdinals();
  for (const r of c.rules) {
    const carried = carry && r.counter?.kind === 'anonymous' && r.comment !== undefined ? carry.rules.get(ruleKey(c.name, r.comment, nth(r.comment))) : undefined;
    lines.push(`${i2}${ruleText(r, carried)}`);
  }
  lines.push(`${INDENT}}`);
  return lines;
}

function counterLines(name: string, carry?: CounterCarry): string[] {
  const v = carry?.named[name];
  const lines = [`${INDENT}counter ${identifier(name)} {`];
  if (v) lines.push(`${INDENT}${INDENT}packets ${Math.trunc(v.packets)} bytes ${Math.trunc(v.bytes)}`);
  lines.push(`${INDENT}}`);
  return lines;
}

function tableName(t: TableRef): string {
  return `${identifier(t.family)} ${identifier(t.name)}`;
}

/** `table inet firewall { … }`, objects in an order nft accepts in one pass. */
export function tableText(t: NftTable, carry?: CounterCarry): string {
  const lines: string[] = [];
  tableLines(t, carry, lines);
  return lines.join('\n');
}

/** tableText's lines appended to `lines`: a transaction joins them once (a large table is megabytes). */
function tableLines(t: NftTable, carry: CounterCarry | undefined, lines: Lines): void {
  lines.push(`table ${tableName(t)} {`);
  const append = (more: string[]): void => {
    for (const l of more) lines.push(l);
  };
  for (const s of t.sets) append(setLines(s));
  for (const c of t.counters) append(counterLines(c, carry));
  // Regular chains before the maps whose verdicts jump to them, base chains last. A chain named
  // like a map is that map's lookup chain: it follows its map, and maps listed later may jump to it.
  const mapNames = new Set(t.maps.map((m) => m.name));
  const lookups = new Map(t.chains.filter((c) => !c.base && mapNames.has(c.name)).map((c) => [c.name, c]));
  for (const c of t.chains) if (!c.base && !lookups.has(c.name)) append(chainLines(c, carry));
  for (const m of t.maps) {
    append(mapLines(m));
    const lookup = lookups.get(m.name);
    if (lookup) append(chainLines(lookup, carry));
  }
  for (const c of t.chains) if (c.base) append(chainLines(c, carry));
  lines.push('}');
}

/** Element lists are batched: nft limits nothing here, but very long lines make errors unreadable. */
const ELEMENT_BATCH = 500;

function opLines(op: Op, out: Lines): void {
  switch (op.kind) {
    case 'text':
      out.push(op.text.replace(/\n$/, ''));
      return;
    case 'table':
      if (op.verb === 'define') tableLines(op.table, op.carry, out);
      else out.push(`${op.verb} table ${tableName(op.table)}`);
      return;
    case 'chain':
      if (op.verb === 'add') out.push(`add chain ${tableName(op.table)} ${identifier(op.name)}${op.base ? ` { ${baseChainText(op.base)} }` : ''}`);
      else out.push(`${op.verb} chain ${tableName(op.table)} ${identifier(op.name)}`);
      return;
    case 'map':
      if (op.verb === 'add') {
        const flags = op.flags.length > 0 ? ` flags ${op.flags.join(',')};` : '';
        out.push(`add map ${tableName(op.table)} ${identifier(op.name)} { type ${op.keyType} : verdict;${flags} }`);
      } else out.push(`${op.verb} map ${tableName(op.table)} ${identifier(op.name)}`);
      return;
    case 'rule':
      out.push(`add rule ${tableName(op.table)} ${identifier(op.chain)} ${ruleText(op.rule)}`);
      return;
    case 'element':
      for (let i = 0; i < op.elements.length; i += ELEMENT_BATCH) {
        const batch = op.elements.slice(i, i + ELEMENT_BATCH);
        // a delete names keys only
        const items = op.verb === 'delete' ? batch.map(elementKey) : batch.map(elementText);
        out.push(`${op.verb} element ${tableName(op.table)} ${identifier(op.set)} { ${items.join(', ')} }`);
      }
      return;
  }
}

/** The transaction as one `nft -f` text. */
export function transactionText(tx: Transaction): string {
  const out: string[] = [];
  for (const op of tx.ops) opLines(op, out);
  out.push(''); // the final newline, without copying megabytes of text once more
  return out.join('\n');
}

/** Lines per piece of transactionPieces: a few hundred kilobytes. */
const PIECE_LINES = 2048;

/**
 * transactionText in pieces of whole lines, each ending in a newline, handed to `write` as they
 * are made: together exactly transactionText. A large table's text (megabytes) then never exists
 * as a whole, nor do its lines all at once.
 */
export function transactionPieces(tx: Transaction, write: (piece: string) => void): void {
  let lines: string[] = [];
  const sink: Lines = {
    push: (...more: string[]): number => {
      for (const l of more) lines.push(l);
      if (lines.length >= PIECE_LINES) flush();
      return lines.length;
    },
  };
  const flush = (): void => {
    if (lines.length === 0) return;
    lines.push('');
    write(lines.join('\n'));
    lines = [];
  };
  for (const op of tx.ops) opLines(op, sink);
  flush();
}
