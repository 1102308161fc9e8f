/**
 * The in-memory nftables state behind FakeNft (fake.ts): tables with sets, maps, named counters and
 * chains, and `applyOps`, which applies typed transaction ops the way the kernel would, refusing
 * what nft refuses for missing, duplicate and still-referenced objects. Pure data and functions:
 * no I/O, no timing, so the seams in fake.ts stay separate from the semantics here.
 */
import { NftBaseChain, NftElement, NftRule, NftTable, TableRef, elementKey } from './ruleset';
import { ruleText } from './serialize';
import { CounterCarry, Op, ruleKey, commentOrdinals } from './transaction';

type Errno = 'ENOENT' | 'EEXIST' | 'EBUSY' | 'EINVAL' | 'EOPNOTSUPP';

const STRERROR: Record<Errno, string> = {
  ENOENT: 'No such file or directory',
  EEXIST: 'File exists',
  EBUSY: 'Device or resource busy',
  EINVAL: 'Invalid argument',
  EOPNOTSUPP: 'Operation not supported',
};

/** What nft would print, plus which op (1-based, as in the transaction) and object it was about. */
export class FakeNftError extends Error {
  constructor(
    readonly errno: Errno,
    readonly opIndex: number,
    readonly op: string,
    readonly detail: string,
  ) {
    super(`Error: Could not process rule: ${STRERROR[errno]}\nop ${opIndex}: ${op}\n${detail}`);
    this.name = 'FakeNftError';
  }
}

/** Thrown inside an op; applyOps adds which op it was. */
class Refusal extends Error {
  constructor(
    readonly errno: Errno,
    readonly detail: string,
  ) {
    super(detail);
  }
}

export interface RuleState {
  readonly rule: NftRule;
  /** Only meaningful for a rule with an anonymous counter. */
  packets: number;
  bytes: number;
}

export interface ChainState {
  readonly name: string;
  base?: NftBaseChain;
  rules: RuleState[];
}

/** Sets and maps share one namespace in the kernel (a map is a set with data), so one Map holds both. */
export interface SetState {
  readonly kind: 'set' | 'map';
  readonly name: string;
  readonly type: string;
  readonly flags: readonly string[];
  /** By elementKey, in insertion order. */
  readonly elements: Map<string, NftElement>;
}

export interface TableState {
  readonly ref: TableRef;
  readonly sets: Map<string, SetState>;
  readonly counters: Map<string, { packets: number; bytes: number }>;
  readonly chains: Map<string, ChainState>;
}

export type FakeState = ReadonlyMap<string, TableState>;

export function tableKey(t: TableRef): string {
  return `${t.family} ${t.name}`;
}

function emptyTable(ref: TableRef): TableState {
  return { ref: { family: ref.family, name: ref.name }, sets: new Map(), counters: new Map(), chains: new Map() };
}

function cloneTable(t: TableState): TableState {
  return {
    ref: t.ref,
    sets: new Map([...t.sets].map(([k, s]) => [k, { ...s, elements: new Map(s.elements) }])),
    counters: new Map([...t.counters].map(([k, v]) => [k, { ...v }])),
    chains: new Map([...t.chains].map(([k, c]) => [k, { ...c, rules: c.rules.map((r) => ({ ...r })) }])),
  };
}

function sameVerdict(a: NftElement['verdict'], b: NftElement['verdict']): boolean {
  return a?.kind === b?.kind && a?.chain === b?.chain;
}

const sameFlags = (a: readonly string[], b: readonly string[]): boolean => [...a].sort().join(',') === [...b].sort().join(',');

function chainOf(t: TableState, name: string): ChainState {
  const c = t.chains.get(name);
  if (!c) throw new Refusal('ENOENT', `chain ${name} does not exist`);
  return c;
}

function setOf(t: TableState, name: string, kind?: 'set' | 'map'): SetState {
  const s = t.sets.get(name);
  // nft looks maps and sets up by kind: `flush map` on a set is "No such file or directory"
  if (!s || (kind && s.kind !== kind)) throw new Refusal('ENOENT', `${kind ?? 'set or map'} ${name} does not exist`);
  return s;
}

/** A jump target must exist and be a regular chain (the kernel refuses jumps to base chains). */
function checkTarget(t: TableState, chain: string, from: string): void {
  const c = t.chains.get(chain);
  if (!c) throw new Refusal('ENOENT', `${from} jumps to chain ${chain}, which does not exist`);
  if (c.base) throw new Refusal('EOPNOTSUPP', `${from} jumps to base chain ${chain}`);
}

function checkRuleRefs(t: TableState, chain: string, r: NftRule): void {
  const from = `rule in chain ${chain}`;
  for (const m of r.match) if (typeof m !== 'string') setOf(t, m.set);
  if (r.counter?.kind === 'named' && !t.counters.has(r.counter.name)) throw new Refusal('ENOENT', `${from}: counter ${r.counter.name} does not exist`);
  const s = r.statement;
  if (s?.kind === 'jump' || s?.kind === 'goto') checkTarget(t, s.chain, from);
  if (s?.kind === 'vmap') setOf(t, s.map, 'map');
}

/** Shape only: the key's arity must match the type, and only map elements carry a verdict. */
function checkElementShape(s: SetState, e: NftElement): void {
  const parts = s.type.split(' . ').length;
  if (e.key.length !== parts) throw new Refusal('EINVAL', `element ${elementKey(e)}: key has ${e.key.length} parts, ${s.kind} ${s.name} is ${s.type}`);
  if ((s.kind === 'map') !== (e.verdict !== undefined)) throw new Refusal('EINVAL', `element ${elementKey(e)}: ${s.kind === 'map' ? 'map element without' : 'set element with'} a verdict`);
  if (e.timeout !== undefined && !s.flags.includes('timeout')) throw new Refusal('EINVAL', `element ${elementKey(e)}: ${s.kind} ${s.name} has no timeout flag`);
}

function checkElementRefs(t: TableState, s: SetState, e: NftElement): void {
  if (e.verdict) checkTarget(t, e.verdict.chain, `element ${elementKey(e)} of map ${s.name}`);
}

/** The first rule or element that still refers to `chain`, if any. */
function chainUser(t: TableState, chain: string): string | undefined {
  for (const c of t.chains.values()) {
    for (const { rule } of c.rules) {
      const s = rule.statement;
      if ((s?.kind === 'jump' || s?.kind === 'goto') && s.chain === chain) return `a rule in chain ${c.name}`;
    }
  }
  for (const s of t.sets.values()) for (const e of s.elements.values()) if (e.verdict?.chain === chain) return `element ${elementKey(e)} of map ${s.name}`;
  return undefined;
}

/** The first rule that looks `map` up (vmap or set lookup), if any. */
function mapUser(t: TableState, map: string): string | undefined {
  for (const c of t.chains.values()) {
    for (const { rule } of c.rules) {
      if (rule.statement?.kind === 'vmap' && rule.statement.map === map) return `a vmap rule in chain ${c.name}`;
      if (rule.match.some((m) => typeof m !== 'string' && m.set === map)) return `a lookup rule in chain ${c.name}`;
    }
  }
  return undefined;
}

function addChain(t: TableState, name: string, base: NftBaseChain | undefined): void {
  const c = t.chains.get(name);
  if (!c) {
    t.chains.set(name, { name, base, rules: [] });
    return;
  }
  if (!base) return;
  // The kernel updates only the policy of an existing base chain; any other change is EEXIST.
  if (!c.base) throw new Refusal('EEXIST', `chain ${name} exists as a regular chain`);
  if (c.base.type !== base.type || c.base.hook !== base.hook || c.base.priority !== base.priority) {
    throw new Refusal('EEXIST', `chain ${name} exists with another type, hook or priority`);
  }
  c.base = base;
}

function addSet(t: TableState, kind: 'set' | 'map', name: string, type: string, flags: readonly string[]): SetState {
  const s = t.sets.get(name);
  if (!s) {
    const created: SetState = { kind, name, type, flags: [...flags], elements: new Map() };
    t.sets.set(name, created);
    return created;
  }
  if (s.kind !== kind || s.type !== type || !sameFlags(s.flags, flags)) throw new Refusal('EEXIST', `${s.kind} ${name} exists with another type or flags`);
  return s;
}

/** Adds elements; `refs: false` leaves verdict targets to be checked later (define). */
function addElements(t: TableState, s: SetState, elements: readonly NftElement[], refs: boolean): void {
  for (const e of elements) {
    checkElementShape(s, e);
    if (refs) checkElementRefs(t, s, e);
    const k = elementKey(e);
    const had = s.elements.get(k);
    if (had && !sameVerdict(had.verdict, e.verdict)) throw new Refusal('EEXIST', `element ${k} of ${s.kind} ${s.name} exists with another verdict`);
    if (!had) s.elements.set(k, e);
  }
}

/** `table … { … }`: built like a sequence of adds, references checked once everything is there. */
function defineTable(def: NftTable, carry: CounterCarry | undefined): TableState {
  const t = emptyTable(def);
  for (const s of def.sets) addElements(t, addSet(t, 'set', s.name, s.type, s.flags), s.elements, false);
  for (const name of def.counters) {
    const v = carry?.named[name];
    t.counters.set(name, { packets: v?.packets ?? 0, bytes: v?.bytes ?? 0 });
  }
  for (const m of def.maps) addElements(t, addSet(t, 'map', m.name, m.keyType, m.flags), m.elements, false);
  for (const c of def.chains) addChain(t, c.name, c.base);
  for (const c of def.chains) {
    const rules = t.chains.get(c.name)!.rules;
    const nth = commentOrdinals();
    for (const rule of c.rules) {
      const v = rule.counter?.kind === 'anonymous' && rule.comment !== undefined ? carry?.rules.get(ruleKey(c.name, rule.comment, nth(rule.comment))) : undefined;
      rules.push({ rule, packets: v?.packets ?? 0, bytes: v?.bytes ?? 0 });
    }
  }
  for (const c of t.chains.values()) for (const { rule } of c.rules) checkRuleRefs(t, c.name, rule);
  for (const s of t.sets.values()) for (const e of s.elements.values()) checkElementRefs(t, s, e);
  return t;
}

/** A short text for an op, for error messages (a define would be the whole table). */
export function describeOp(op: Op): string {
  if (op.kind === 'text') return 'raw text';
  const t = tableKey(op.table);
  switch (op.kind) {
    case 'table':
      return op.verb === 'define' ? `table ${t} { … }` : `${op.verb} table ${t}`;
    case 'chain':
    case 'map':
      return `${op.verb} ${op.kind} ${t} ${op.name}`;
    case 'rule': {
      let text: string;
      try {
        text = ruleText(op.rule);
      } catch {
        text = JSON.stringify(op.rule);
      }
      return `add rule ${t} ${op.chain} ${text}`;
    }
    case 'element':
      return `${op.verb} element ${t} ${op.set} { ${op.elements.length} element(s) }`;
  }
}

/**
 * Applies `ops` in order to a copy of `state` and returns the copy; `state` itself is never
 * touched, so a refusal anywhere leaves it as it was (nft transactions are all or nothing).
 * Tables are copied when an op first touches them: huge maps in untouched tables cost nothing.
 */
export function applyOps(state: FakeState, ops: readonly Op[]): Map<string, TableState> {
  const next = new Map(state);
  const owned = new Set<string>();
  const table = (ref: TableRef): TableState => {
    const k = tableKey(ref);
    const t = next.get(k);
    if (!t) throw new Refusal('ENOENT', `table ${k} does not exist`);
    if (owned.has(k)) return t;
    const copy = cloneTable(t);
    next.set(k, copy);
    owned.add(k);
    return copy;
  };
  ops.forEach((op, i) => {
    if (op.kind === 'text') throw new Error('FakeNft cannot apply raw nft text');
    try {
      applyOp(op, next, owned, table);
    } catch (err) {
      if (err instanceof Refusal) throw new FakeNftError(err.errno, i + 1, describeOp(op), err.detail);
      throw err;
    }
  });
  return next;
}

function applyOp(
  op: Exclude<Op, { kind: 'text' }>,
  next: Map<string, TableState>,
  owned: Set<string>,
  table: (ref: TableRef) => TableState,
): void {
  switch (op.kind) {
    case 'table': {
      const k = tableKey(op.table);
      if (op.verb === 'define') {
        // Our transactions always `add` + `delete` first: a define onto a live table is a bug.
        if (next.has(k)) throw new Refusal('EEXIST', `table ${k} exists`);
        next.set(k, defineTable(op.table, op.carry));
        owned.add(k);
      } else if (op.verb === 'delete') {
        if (!next.delete(k)) throw new Refusal('ENOENT', `table ${k} does not exist`);
      } else if (!next.has(k)) {
        next.set(k, emptyTable(op.table));
        owned.add(k);
      }
      return;
    }
    case 'chain': {
      const t = table(op.table);
      if (op.verb === 'add') return addChain(t, op.name, op.base);
      const c = chainOf(t, op.name);
      if (op.verb === 'flush') {
        c.rules = [];
        return;
      }
      const user = chainUser(t, op.name);
      if (user) throw new Refusal('EBUSY', `chain ${op.name} is still referenced by ${user}`);
      t.chains.delete(op.name);
      return;
    }
    case 'map': {
      const t = table(op.table);
      if (op.verb === 'add') {
        addSet(t, 'map', op.name, op.keyType, op.flags);
        return;
      }
      const m = setOf(t, op.name, 'map');
      if (op.verb === 'flush') return m.elements.clear();
      const user = mapUser(t, op.name);
      if (user) throw new Refusal('EBUSY', `map ${op.name} is still referenced by ${user}`);
      t.sets.delete(op.name);
      return;
    }
    case 'rule': {
      const t = table(op.table);
      const c = chainOf(t, op.chain);
      checkRuleRefs(t, op.chain, op.rule);
      c.rules.push({ rule: op.rule, packets: 0, bytes: 0 });
      return;
    }
    case 'element': {
      const t = table(op.table);
      const s = setOf(t, op.set);
      if (op.verb === 'add') return addElements(t, s, op.elements, true);
      for (const e of op.elements) {
        const k = elementKey(e);
        if (!s.elements.delete(k)) throw new Refusal('ENOENT', `element ${k} is not in ${s.kind} ${s.name}`);
      }
      return;
    }
  }
}
