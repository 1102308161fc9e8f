import { FakeNft, FakeNftError } from '../../src/nft/fake';
import { NftElement, NftRule, NftTable } from '../../src/nft/ruleset';
import { tableText } from '../../src/nft/serialize';
import { counterCarry } from '../../src/nft/stats';
import { Op, Transaction, fullTransaction, ruleKey } from '../../src/nft/transaction';

const T = { family: 'inet', name: 'fw' } as const;
const LEGACY = { family: 'inet', name: 'metal' } as const;
const KEY = 'ipv4_addr . inet_proto . inet_service';
const anon = { kind: 'anonymous' } as const;
const forwardBase = { type: 'filter', hook: 'forward', priority: 0, policy: 'drop' } as const;

const el = (addr: string, chain: string, kind: 'jump' | 'goto' = 'goto'): NftElement => ({ key: [addr, 'tcp', '443'], verdict: { kind, chain } });

/** A small table: a set, a named counter, a map whose element gotos a chain, a base chain with a vmap rule. */
function sample(): NftTable {
  return {
    family: 'inet',
    name: 'fw',
    sets: [{ name: 'cluster_prefixes', type: 'ipv4_addr', flags: ['interval'], elements: [{ key: ['10.0.0.0/8'] }] }],
    counters: ['internal_in'],
    maps: [{ name: 'egress', keyType: KEY, flags: ['interval'], elements: [el('203.0.113.0/24', 'pol-a')] }],
    chains: [
      { name: 'pol-a', rules: [{ match: [], counter: anon, statement: { kind: 'accept' }, comment: 'pol-a' }] },
      { name: 'internal', rules: [{ match: [], counter: { kind: 'named', name: 'internal_in' }, statement: { kind: 'accept' } }] },
      {
        name: 'forward',
        base: forwardBase,
        rules: [
          { match: ['ct state established,related'], counter: anon, statement: { kind: 'accept' }, comment: 'established' },
          { match: [{ kind: 'set', expr: 'ip saddr', set: 'cluster_prefixes' }], statement: { kind: 'jump', chain: 'internal' } },
          { match: [], statement: { kind: 'vmap', expr: 'ip daddr . meta l4proto . th dport', map: 'egress' } },
          { match: [], counter: anon, statement: { kind: 'drop' }, comment: 'default drop' },
        ],
      },
    ],
  };
}

const tx = (...ops: Op[]): Transaction => ({ ops });
const addChain = (name: string): Op => ({ verb: 'add', kind: 'chain', table: T, name });
const addRule = (chain: string, rule: NftRule): Op => ({ verb: 'add', kind: 'rule', table: T, chain, rule });
const addElements = (set: string, ...elements: NftElement[]): Op => ({ verb: 'add', kind: 'element', table: T, set, elements });
const delElements = (set: string, ...elements: NftElement[]): Op => ({ verb: 'delete', kind: 'element', table: T, set, elements });
const jump = (chain: string): NftRule => ({ match: [], statement: { kind: 'jump', chain } });

async function loaded(): Promise<FakeNft> {
  const nft = new FakeNft();
  await nft.apply(fullTransaction(sample()));
  return nft;
}

describe('FakeNft full transactions', () => {
  it('applies a whole table and lists it as tableText writes it', async () => {
    const nft = await loaded();
    expect(await nft.list(T)).toBe(tableText(sample()));
    expect(nft.table(T)).toEqual(sample());
    const listing = (await nft.list(T))!;
    expect(listing).toContain('\t\t203.0.113.0/24 . tcp . 443 : goto pol-a');
    expect(listing).toContain('\t\tip daddr . meta l4proto . th dport vmap @egress');
    expect(listing).toContain('\t\ttype filter hook forward priority 0; policy drop;');
    expect(listing).toContain('\t\tip saddr @cluster_prefixes jump internal');
    expect(listing).not.toMatch(/packets/);
  });

  it('replaces the table on the next full transaction', async () => {
    const nft = await loaded();
    const next = { ...sample(), maps: [{ ...sample().maps[0]!, elements: [el('198.51.100.0/24', 'pol-a')] }] };
    await nft.apply(fullTransaction(next));
    expect(await nft.list(T)).toBe(tableText(next));
  });

  it('refuses a define onto an existing table', async () => {
    const nft = await loaded();
    await expect(nft.apply(tx({ verb: 'define', kind: 'table', table: sample() }))).rejects.toThrow(/File exists/);
  });

  it('validates references inside a defined table', async () => {
    const nft = new FakeNft();
    const dangling = { ...sample(), maps: [{ ...sample().maps[0]!, elements: [el('203.0.113.0/24', 'nowhere')] }] };
    await expect(nft.apply(fullTransaction(dangling))).rejects.toThrow(/No such file or directory[\s\S]*nowhere/);
    const noMap = { ...sample(), maps: [] };
    await expect(nft.apply(fullTransaction(noMap))).rejects.toThrow(/map egress does not exist/);
    const noSet = { ...sample(), sets: [] };
    await expect(nft.apply(fullTransaction(noSet))).rejects.toThrow(/cluster_prefixes does not exist/);
    const noCounter = { ...sample(), counters: [] };
    await expect(nft.apply(fullTransaction(noCounter))).rejects.toThrow(/counter internal_in does not exist/);
    expect(nft.tables()).toEqual([]);
  });

  it('lists nothing for an absent table', async () => {
    const nft = new FakeNft();
    expect(await nft.list(T)).toBeUndefined();
    expect(await nft.counters(T)).toBeUndefined();
    expect(await nft.baseChain(T, 'forward')).toBeUndefined();
  });
});

describe('FakeNft counters', () => {
  it('starts at zero, counts traffic and reports per-rule actions', async () => {
    const nft = await loaded();
    nft.count(T, 'forward', 'default drop', 3, 300);
    nft.count(T, 'pol-a', 'pol-a', 1, 60);
    nft.countNamed(T, 'internal_in', 2, 200);
    expect(await nft.counters(T)).toEqual({
      counters: { internal_in: { packets: 2, bytes: 200 } },
      rules: [
        { chain: 'pol-a', comment: 'pol-a', action: 'accept', packets: 1, bytes: 60 },
        { chain: 'forward', comment: 'established', action: 'accept', packets: 0, bytes: 0 },
        { chain: 'forward', comment: 'default drop', action: 'drop', packets: 3, bytes: 300 },
      ],
    });
    expect(() => nft.count(T, 'forward', 'no such rule', 1, 1)).toThrow(/no rule/);
  });

  it('carries counters into a redefined table', async () => {
    const nft = await loaded();
    nft.count(T, 'forward', 'established', 5, 500);
    nft.countNamed(T, 'internal_in', 7, 700);
    const carry = counterCarry((await nft.counters(T))!);
    expect(carry.rules.get(ruleKey('forward', 'established', 0))).toEqual({ packets: 5, bytes: 500 });
    await nft.apply(fullTransaction(sample(), { carry }));
    const stats = (await nft.counters(T))!;
    expect(stats.counters.internal_in).toEqual({ packets: 7, bytes: 700 });
    expect(stats.rules.find((r) => r.comment === 'established')).toMatchObject({ packets: 5, bytes: 500 });
    // without a carry they start again at zero
    await nft.apply(fullTransaction(sample()));
    expect((await nft.counters(T))!.counters.internal_in).toEqual({ packets: 0, bytes: 0 });
  });
});

describe('FakeNft incremental ops', () => {
  it('adds a chain, its rule and an element pointing at it, then retires the old chain', async () => {
    const nft = await loaded();
    await nft.apply(
      tx(
        addChain('pol-b'),
        addRule('pol-b', { match: [], counter: anon, statement: { kind: 'drop' }, comment: 'pol-b' }),
        addElements('egress', el('198.51.100.0/24', 'pol-b')),
        delElements('egress', el('203.0.113.0/24', 'pol-a')),
      ),
    );
    const listing = (await nft.list(T))!;
    expect(listing).toContain('198.51.100.0/24 . tcp . 443 : goto pol-b');
    expect(listing).not.toContain('203.0.113.0/24');
    expect(listing).toContain('\tchain pol-b {\n\t\tcounter drop comment "pol-b"\n\t}');
    // the last reference went in an earlier transaction: the chain can go now
    await nft.apply(tx({ verb: 'delete', kind: 'chain', table: T, name: 'pol-a' }));
    expect(await nft.list(T)).not.toContain('chain pol-a');
  });

  it('flushes a map, after which its chains can be deleted', async () => {
    const nft = await loaded();
    const delPolA: Op = { verb: 'delete', kind: 'chain', table: T, name: 'pol-a' };
    await expect(nft.apply(tx(delPolA))).rejects.toThrow(/Device or resource busy[\s\S]*element 203.0.113.0\/24 . tcp . 443 of map egress/);
    await nft.apply(tx({ verb: 'flush', kind: 'map', table: T, name: 'egress' }));
    expect(nft.table(T)!.maps[0]!.elements).toEqual([]);
    await nft.apply(tx(delPolA));
  });

  it('flushes a chain and adds to it again', async () => {
    const nft = await loaded();
    await nft.apply(tx({ verb: 'flush', kind: 'chain', table: T, name: 'pol-a' }, addRule('pol-a', jump('internal'))));
    expect(nft.table(T)!.chains.find((c) => c.name === 'pol-a')!.rules).toEqual([jump('internal')]);
  });

  it('treats re-adding an identical table, chain, map or element as a no-op', async () => {
    const nft = await loaded();
    const before = nft.dump();
    await nft.apply(
      tx(
        { verb: 'add', kind: 'table', table: T },
        addChain('pol-a'),
        { verb: 'add', kind: 'map', table: T, name: 'egress', keyType: KEY, flags: ['interval'] },
        addElements('egress', el('203.0.113.0/24', 'pol-a')),
        addElements('cluster_prefixes', { key: ['10.0.0.0/8'] }),
      ),
    );
    expect(nft.dump()).toBe(before);
  });

  it('updates the policy of an existing base chain, as when the legacy forward policy is relaxed', async () => {
    const nft = new FakeNft();
    nft.seed(tx({ verb: 'add', kind: 'table', table: LEGACY }, { verb: 'add', kind: 'chain', table: LEGACY, name: 'forward', base: forwardBase }));
    const relaxed = { ...forwardBase, policy: 'accept' } as const;
    await nft.apply(tx({ verb: 'add', kind: 'chain', table: LEGACY, name: 'forward', base: relaxed }));
    expect(await nft.baseChain(LEGACY, 'forward')).toEqual(relaxed);
    await nft.apply(tx({ verb: 'add', kind: 'chain', table: LEGACY, name: 'forward' }));
    expect(await nft.baseChain(LEGACY, 'forward')).toEqual(relaxed);
    const moved = { ...forwardBase, priority: 10 };
    await expect(nft.apply(tx({ verb: 'add', kind: 'chain', table: LEGACY, name: 'forward', base: moved }))).rejects.toThrow(/File exists/);
    expect(await nft.baseChain(LEGACY, 'forward')).toEqual(relaxed);
  });
});

describe('FakeNft refusals', () => {
  const missingTable = { family: 'inet', name: 'nope' };
  const cases: [string, Op[], RegExp][] = [
    ['delete of a missing table', [{ verb: 'delete', kind: 'table', table: missingTable }], /No such file or directory/],
    ['delete of a missing chain', [{ verb: 'delete', kind: 'chain', table: T, name: 'nope' }], /No such file or directory[\s\S]*chain nope/],
    ['flush of a missing chain', [{ verb: 'flush', kind: 'chain', table: T, name: 'nope' }], /No such file or directory/],
    ['delete of a missing map', [{ verb: 'delete', kind: 'map', table: T, name: 'nope' }], /No such file or directory[\s\S]*map nope/],
    ['flush of a missing map', [{ verb: 'flush', kind: 'map', table: T, name: 'nope' }], /No such file or directory/],
    ['flush map of a set', [{ verb: 'flush', kind: 'map', table: T, name: 'cluster_prefixes' }], /No such file or directory/],
    ['add chain in a missing table', [{ verb: 'add', kind: 'chain', table: missingTable, name: 'x' }], /No such file or directory[\s\S]*table inet nope/],
    ['add rule in a missing table', [{ verb: 'add', kind: 'rule', table: missingTable, chain: 'x', rule: jump('pol-a') }], /No such file or directory/],
    ['add map in a missing table', [{ verb: 'add', kind: 'map', table: missingTable, name: 'm', keyType: KEY, flags: [] }], /No such file or directory/],
    ['add element in a missing table', [{ verb: 'add', kind: 'element', table: missingTable, set: 'egress', elements: [el('1.2.3.4', 'pol-a')] }], /No such file or directory/],
    ['add rule in a missing chain', [addRule('nope', jump('pol-a'))], /No such file or directory[\s\S]*chain nope/],
    ['a rule jumping to a missing chain', [addRule('pol-a', jump('nope'))], /No such file or directory[\s\S]*jumps to chain nope/],
    ['a rule jumping to a base chain', [addRule('pol-a', jump('forward'))], /Operation not supported/],
    ['an element going to a missing chain', [addElements('egress', el('1.2.3.4', 'nope'))], /No such file or directory[\s\S]*nope/],
    ['a vmap naming a missing map', [addRule('pol-a', { match: [], statement: { kind: 'vmap', expr: 'ip daddr', map: 'nope' } })], /No such file or directory[\s\S]*map nope/],
    ['a vmap naming a set', [addRule('pol-a', { match: [], statement: { kind: 'vmap', expr: 'ip daddr', map: 'cluster_prefixes' } })], /No such file or directory/],
    ['a lookup of a missing set', [addRule('pol-a', { match: [{ kind: 'set', expr: 'ip saddr', set: 'nope', negate: true }], statement: { kind: 'drop' } })], /No such file or directory[\s\S]*nope/],
    ['add element to a missing map', [addElements('nope', el('1.2.3.4', 'pol-a'))], /No such file or directory/],
    ['delete element from a missing map', [delElements('nope', el('1.2.3.4', 'pol-a'))], /No such file or directory/],
    ['delete element of a key not there', [delElements('egress', el('1.2.3.4', 'pol-a'))], /No such file or directory[\s\S]*1.2.3.4 . tcp . 443 is not in map egress/],
    ['add element of a key with another verdict', [addElements('egress', el('203.0.113.0/24', 'pol-a', 'jump'))], /File exists/],
    ['add element with a key of the wrong arity', [addElements('egress', { key: ['1.2.3.4'], verdict: { kind: 'goto', chain: 'pol-a' } })], /Invalid argument/],
    ['add element without a verdict to a map', [addElements('egress', { key: ['1.2.3.4', 'tcp', '80'] })], /Invalid argument/],
    ['add map with another key type', [{ verb: 'add', kind: 'map', table: T, name: 'egress', keyType: 'ipv4_addr', flags: ['interval'] }], /File exists/],
    ['add map named like a set', [{ verb: 'add', kind: 'map', table: T, name: 'cluster_prefixes', keyType: 'ipv4_addr', flags: ['interval'] }], /File exists/],
    ['add base chain onto a regular chain', [{ verb: 'add', kind: 'chain', table: T, name: 'pol-a', base: forwardBase }], /File exists/],
    ['delete of a chain a rule jumps to', [{ verb: 'delete', kind: 'chain', table: T, name: 'internal' }], /Device or resource busy[\s\S]*rule in chain forward/],
    ['delete of a chain an element goes to', [{ verb: 'delete', kind: 'chain', table: T, name: 'pol-a' }], /Device or resource busy[\s\S]*map egress/],
    ['delete of a map a vmap rule looks up', [{ verb: 'delete', kind: 'map', table: T, name: 'egress' }], /Device or resource busy[\s\S]*vmap rule in chain forward/],
  ];

  it.each(cases)('refuses %s and changes nothing', async (_name, ops, message) => {
    const nft = await loaded();
    const before = nft.dump();
    await expect(nft.apply(tx(...ops))).rejects.toThrow(message);
    await expect(nft.check(tx(...ops))).rejects.toThrow(message);
    expect(nft.dump()).toBe(before);
  });

  it('refuses raw text', async () => {
    const nft = await loaded();
    await expect(nft.apply(tx({ verb: 'raw', kind: 'text', text: 'flush ruleset' }))).rejects.toThrow('FakeNft cannot apply raw nft text');
  });

  it('is atomic: a failing op in the middle leaves everything as it was, and names the op', async () => {
    const nft = await loaded();
    const before = nft.dump();
    const bad = tx(
      addChain('pol-b'),
      addElements('egress', el('198.51.100.0/24', 'pol-b')),
      { verb: 'flush', kind: 'map', table: T, name: 'egress' },
      addRule('pol-b', jump('missing')),
      { verb: 'delete', kind: 'table', table: T },
    );
    const err = await nft.apply(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FakeNftError);
    expect((err as FakeNftError).errno).toBe('ENOENT');
    expect((err as FakeNftError).opIndex).toBe(4);
    expect((err as Error).message).toMatch(/^Error: Could not process rule: No such file or directory\nop 4: add rule inet fw pol-b jump missing\n/);
    expect(nft.dump()).toBe(before);
  });

  it('never changes anything on check', async () => {
    const nft = await loaded();
    const before = nft.dump();
    await nft.check(tx({ verb: 'flush', kind: 'map', table: T, name: 'egress' }, addChain('pol-b'), { verb: 'flush', kind: 'chain', table: T, name: 'forward' }));
    await nft.check(tx({ verb: 'delete', kind: 'table', table: T }));
    expect(nft.dump()).toBe(before);
  });
});

describe('FakeNft listing', () => {
  it('dumps every table', async () => {
    const nft = await loaded();
    nft.seed(tx({ verb: 'add', kind: 'table', table: LEGACY }, { verb: 'add', kind: 'chain', table: LEGACY, name: 'forward', base: forwardBase }));
    const dump = nft.dump();
    expect(dump).toContain('table inet fw {');
    expect(dump).toContain('table inet metal {\n\tchain forward {\n\t\ttype filter hook forward priority 0; policy drop;\n\t}\n}');
    expect(nft.tables()).toEqual([T, LEGACY]);
    await nft.apply(tx({ verb: 'delete', kind: 'table', table: T }));
    expect(nft.dump()).not.toContain('table inet fw');
  });
});

describe('FakeNft seams', () => {
  it('fails the next call once per failNext, and records calls', async () => {
    const nft = new FakeNft();
    const boom = new Error('boom');
    nft.failNext('apply', boom);
    nft.failNext('apply');
    await expect(nft.apply(fullTransaction(sample()))).rejects.toBe(boom);
    await expect(nft.apply(fullTransaction(sample()))).rejects.toThrow(/injected apply failure/);
    expect(await nft.list(T)).toBeUndefined();
    await nft.apply(fullTransaction(sample()));
    nft.failNext('list');
    nft.failNext('counters');
    nft.failNext('check');
    await expect(nft.list(T)).rejects.toThrow(/injected list/);
    await expect(nft.counters(T)).rejects.toThrow(/injected counters/);
    await expect(nft.check(tx())).rejects.toThrow(/injected check/);
    expect(await nft.list(T)).toBe(tableText(sample()));
    expect(nft.calls.map((c) => c.method)).toEqual(['apply', 'apply', 'list', 'apply', 'list', 'counters', 'check', 'list']);
    expect(nft.calls[0]!.tx!.ops).toHaveLength(3);
    expect(nft.calls[2]!.tx).toBeUndefined();
  });

  it('holds a call open until released and counts calls in flight', async () => {
    const nft = new FakeNft();
    const release = nft.hold('apply');
    const applying = nft.apply(fullTransaction(sample()));
    await release.entered;
    expect(nft.inFlight).toBe(1);
    expect(await nft.list(T)).toBeUndefined(); // not applied while held
    expect(nft.maxInFlight).toBe(2);
    release();
    await applying;
    expect(nft.inFlight).toBe(0);
    expect(await nft.list(T)).toBeDefined();
  });

  it('shows maxInFlight 1 for serial callers and more for overlapping ones', async () => {
    const serial = new FakeNft();
    await serial.apply(fullTransaction(sample()));
    await serial.counters(T);
    await serial.list(T);
    expect(serial.maxInFlight).toBe(1);

    const overlapping = new FakeNft();
    await Promise.all([overlapping.apply(fullTransaction(sample())), overlapping.list(T)]);
    expect(overlapping.maxInFlight).toBe(2);
  });

  it('awaits the delay hook on every call', async () => {
    const nft = new FakeNft();
    const seen: string[] = [];
    nft.delay = async (method) => {
      seen.push(method);
      await new Promise((r) => setTimeout(r, 1));
    };
    await nft.apply(fullTransaction(sample()));
    await nft.baseChain(T, 'forward');
    expect(seen).toEqual(['apply', 'baseChain']);
    expect(await nft.baseChain(T, 'forward')).toEqual(forwardBase);
  });
});
