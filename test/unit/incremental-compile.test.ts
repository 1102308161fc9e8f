/**
 * A daemon compiles every change with one CompileCache (shard trees, per-policy parts, the deployed
 * order kept across compiles): after any sequence of creates, updates and deletes the result must
 * equal a cold compile of the same input, and the incremental plan between two results must leave
 * the same kernel state as a full apply.
 */
import { CompileCache, Compiled, compile } from '../../src/compile/compile';
import { PolicyResult, parsePolicy } from '../../src/model/cwnp';
import { Obj } from '../../src/model/fields';
import { parseFirewall } from '../../src/model/firewall';
import { ServiceResult, parseService } from '../../src/model/service';
import { FakeState, applyOps } from '../../src/nft/fake-state';
import { byName, cleanupTransaction, planIncremental } from '../../src/nft/incremental';
import { NftTable } from '../../src/nft/ruleset';
import { renderTransaction } from '../../src/nft/render';
import { fullTransaction } from '../../src/nft/transaction';
import { cwnp, exampleFirewall, lbService } from '../helpers';

function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

type R = (n: number) => number;

/** Mostly small prefixes in a few crowded /24s (shards split there), sometimes wide or IPv6 ones. */
function cidr(r: R): string {
  switch (r(8)) {
    case 0:
      return `10.${r(4)}.0.0/${14 + r(4)}`; // wide: spans blocks
    case 1:
      return `2001:db8:${r(4).toString(16)}::${r(64).toString(16)}/${112 + r(17)}`;
    case 2:
      return r(4) === 0 ? '::/0' : `2001:db8::/${32 + r(40)}`;
    default:
      return `203.0.${113 + r(2)}.${r(64) * 4}/${28 + r(5)}`;
  }
}

function ports(r: R): Obj[] | undefined {
  if (r(5) === 0) return undefined; // no ports: the *_any maps
  return Array.from({ length: 1 + r(2) }, () => ({ port: [53, 80, 443, 8000 + r(4)][r(4)], protocol: r(4) === 0 ? 'UDP' : 'TCP', ...(r(6) === 0 ? { endPort: 9000 } : {}) }));
}

function spec(r: R): Obj {
  const rule = (peer: 'to' | 'from') => {
    const peers: Obj[] = Array.from({ length: 1 + r(3) }, () => ({ cidr: cidr(r) }));
    if (r(6) === 0) peers.push({ cidr: '198.51.100.0/24', except: [`198.51.100.${r(8) * 32}/27`] });
    const p = ports(r);
    return { [peer]: peers, ...(p ? { ports: p } : {}) };
  };
  const out: Obj = { egress: Array.from({ length: 1 + r(2) }, () => rule('to')) };
  if (r(3) === 0) out.ingress = [rule('from')];
  return out;
}

function service(r: R, name: string): Obj {
  const ip = r(3) === 0 ? `2001:db8:1:ff::${r(200) + 1}` : `192.0.2.${r(200) + 1}`;
  const ranges = r(2) === 0 ? { loadBalancerSourceRanges: [r(2) === 0 ? '203.0.113.0/28' : '2001:db8::/64'] } : {};
  return lbService(name, { loadBalancerIP: ip, ...ranges, ports: [{ port: 443 }, { port: 8000 + r(3), protocol: 'UDP' }] });
}

/** The kernel state of a table, order-free: elements per map and set, rules per chain. */
function kernel(state: FakeState): unknown {
  const t = [...state.values()][0]!;
  const sets = [...t.sets.values()].map((s) => [s.name, s.type, [...s.elements.keys()].sort(), [...s.elements.values()].map((e) => JSON.stringify(e.verdict ?? null)).sort()]);
  const chains = [...t.chains.values()].map((c) => [c.name, JSON.stringify(c.base ?? null), JSON.stringify(c.rules.map((x) => x.rule))]);
  return { sets: sets.sort(), chains: chains.sort(), counters: [...t.counters.keys()].sort() };
}

const full = (t: NftTable): FakeState => applyOps(new Map(), fullTransaction(t).ops);

function run(seed: number, shardMax: number, steps: number): void {
  const fw = parseFirewall(exampleFirewall());
  if (!fw.ok) throw new Error('firewall');
  const r = rng(seed);
  const policies = new Map<string, PolicyResult>();
  const services = new Map<string, ServiceResult>();
  for (let i = 0; i < 30; i++) policies.set(`p${i}`, parsePolicy(cwnp(`p${i}`, spec(r))));
  const cache = new CompileCache();
  let reversed = false;
  const input = () => {
    const list = [...policies.values()];
    return { firewall: fw.firewall, policies: reversed ? list.reverse() : list, services: [...services.values()], state: 'connected' as const, shardMax };
  };
  let prev: Compiled = compile({ ...input(), cache });
  let state = full(prev.table);
  for (let step = 0; step < steps; step++) {
    // a few changes at once, sometimes many (the watch delivers bursts)
    for (let n = r(10) === 0 ? 10 + r(20) : 1 + r(2); n > 0; n--) {
      const name = `p${r(45)}`;
      const what = r(10);
      if (what < 3) policies.delete(name);
      else if (what < 8) policies.set(name, parsePolicy(cwnp(name, spec(r))));
      // a second policy of an existing name (rejected unless first), one outside namespace firewall
      else if (what < 9) policies.set(`dup-${r(3)}`, parsePolicy(cwnp(`p${r(45)}`, spec(r), r(2) === 0 ? 'firewall' : 'other')));
      else if (r(2) === 0) services.set(`s${r(4)}`, parseService(service(r, `s${r(4)}`)));
      else services.delete(`s${r(4)}`);
    }
    reversed = r(8) === 0; // inputs in another order now and then
    if (r(20) === 0) cache.consistent = false; // as if the last compile had thrown half way
    const cached = compile({ ...input(), cache });
    const cold = compile(input());
    expect({ seed, step, table: cached.table }).toEqual({ seed, step, table: cold.table });
    expect(renderTransaction([cached.table])).toBe(renderTransaction([cold.table]));
    expect(cached.reports).toEqual(cold.reports);
    expect([...cached.accounting]).toEqual([...cold.accounting]);
    // the incremental plan leaves what a full apply leaves
    const plan = planIncremental(prev.table, cached.table);
    if (!plan) throw new Error(`seed ${seed} step ${step}: no incremental plan`);
    state = applyOps(applyOps(state, plan.tx.ops), cleanupTransaction(cached.table, plan.staleChains, plan.staleMaps).ops);
    expect({ seed, step, kernel: kernel(state) }).toEqual({ seed, step, kernel: kernel(full(cached.table)) });
    prev = cached;
  }
}

describe('incremental compile', () => {
  test('random creates, updates and deletes give what a cold compile gives (small shards: splits and merges)', () => {
    for (let seed = 1; seed <= 12; seed++) run(seed, 3 + (seed % 4) * 3, 25);
  });

  test('with the default shard size too', () => {
    run(99, 2048, 15);
  });

  test('shards split and merge along the way, and unchanged shards keep their element list', () => {
    const fw = parseFirewall(exampleFirewall());
    if (!fw.ok) throw new Error('firewall');
    const cache = new CompileCache();
    const pol = (name: string, last: number) => parsePolicy(cwnp(name, { egress: [{ to: [{ cidr: `203.0.113.${last}/32` }, { cidr: `198.51.100.${last}/32` }], ports: [{ port: 443 }] }] }));
    const policies = new Map<string, PolicyResult>();
    const shards = () => compile({ firewall: fw.firewall, policies: [...policies.values()], services: [], state: 'connected', cache, shardMax: 2 }).table.maps.filter((m) => m.name.startsWith('egress_ports_v4-'));
    for (let i = 0; i < 8; i++) policies.set(`p${i}`, pol(`p${i}`, i * 16));
    const many = shards();
    expect(many.length).toBeGreaterThan(4);
    // a change in 203.0.113.0/24 leaves the shards of 198.51.100.0/24 as they were (same arrays)
    policies.set('q', parsePolicy(cwnp('q', { egress: [{ to: [{ cidr: '203.0.113.50/32' }], ports: [{ port: 443 }] }] })));
    const after = shards();
    const lower = (ms: typeof many) => ms.filter((m) => m.name < 'egress_ports_v4-cb').map((m) => m.elements);
    expect(lower(after)).toHaveLength(lower(many).length);
    lower(after).forEach((e, i) => expect(e).toBe(lower(many)[i]));
    // deleting most policies merges the shards again
    for (let i = 2; i < 8; i++) policies.delete(`p${i}`);
    expect(shards().length).toBeLessThan(many.length);
  });
});

describe('byName', () => {
  const n = (name: string, v = 0) => ({ name, v });
  test('pairs by identity where it can, by name where items moved or came in long runs', () => {
    const a = n('a');
    const b = n('b');
    const c = n('c');
    expect(byName([a, b, c], [a, c])).toEqual({ added: [], removed: [b], changed: [] });
    expect(byName([a, c], [a, b, c])).toEqual({ added: [b], removed: [], changed: [] });
    expect(byName([a, b, c], [c, b, a])).toEqual({ added: [], removed: [], changed: [] });
    expect(byName([a, b], [a, n('b', 1)]).changed).toEqual([[b, n('b', 1)]]);
    const many = Array.from({ length: 100 }, (_, i) => n(`x${i}`));
    const res = byName([a, ...many.slice(50), c], [a, ...many, n('c', 2)]);
    expect(res.added.map((x) => x.name)).toEqual(many.slice(0, 50).map((x) => x.name));
    expect(res.removed).toEqual([]);
    expect(res.changed).toEqual([[c, n('c', 2)]]);
  });
});
