import { Box, partition } from '../../src/compile/partition';
import { shardBoxes, shardContent, shardName } from '../../src/compile/shard';
import { CompileCache, compile } from '../../src/compile/compile';
import { PolicyResult, parsePolicy } from '../../src/model/cwnp';
import { parseFirewall } from '../../src/model/firewall';
import { compileObjects, cwnp, exampleFirewall } from '../helpers';

function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

/** Boxes [proto, port, addr] on an 8-bit address space, owners 0..5. */
function randomBoxes(seed: number, count: number): Box[] {
  const r = rng(seed);
  return Array.from({ length: count }, () => {
    const len = r(9);
    const lo = (r(256) >> (8 - len)) << (8 - len);
    const port = r(6);
    return {
      owner: r(6),
      dims: [
        { lo: 6n, hi: 6n },
        { lo: BigInt(port), hi: BigInt(port + r(3)) },
        { lo: BigInt(len === 0 ? 0 : lo), hi: BigInt((len === 0 ? 0 : lo) + (1 << (8 - len)) - 1) },
      ],
    };
  });
}

const inside = (b: Box, p: bigint[]) => b.dims.every((iv, d) => iv.lo <= p[d]! && p[d]! <= iv.hi);

describe('address shards', () => {
  test('dispatch + shard lookup gives the owner the unsharded partition gives, for every point', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const boxes = randomBoxes(seed, 5 + seed * 2);
      const whole = partition(boxes);
      const shards = shardBoxes(boxes, 2, 8, 4).map((s) => ({ block: s.block, cells: partition(shardContent(boxes, s, 2)) }));
      // blocks are aligned, disjoint and in order
      for (const [i, s] of shards.entries()) {
        expect(s.block.hi - s.block.lo + 1n).toBe(1n << BigInt(8 - s.block.len));
        expect(s.block.lo % (1n << BigInt(8 - s.block.len))).toBe(0n);
        if (i > 0) expect(s.block.lo).toBeGreaterThan(shards[i - 1]!.block.hi);
        for (const c of s.cells) expect(c.dims[2]!.lo >= s.block.lo && c.dims[2]!.hi <= s.block.hi).toBe(true);
      }
      for (let port = 0n; port < 9n; port++) {
        for (let addr = 0n; addr < 256n; addr++) {
          const p = [6n, port, addr];
          const expected = whole.find((c) => inside(c, p))?.owner;
          const shard = shards.find((s) => s.block.lo <= addr && addr <= s.block.hi);
          const hits = shard?.cells.filter((c) => inside(c, p)) ?? [];
          expect(hits.length).toBeLessThanOrEqual(1);
          expect({ seed, p, owner: hits[0]?.owner }).toEqual({ seed, p, owner: expected });
        }
      }
    }
  });

  test('halves a block only while it is over the limit, and a change moves only its own block', () => {
    const box = (owner: number, lo: number, hi: number): Box => ({ owner, dims: [{ lo: 6n, hi: 6n }, { lo: 80n, hi: 80n }, { lo: BigInt(lo), hi: BigInt(hi) }] });
    const base = [box(0, 0, 3), box(1, 10, 10), box(2, 200, 201), box(3, 210, 211), box(4, 220, 220)];
    const before = shardBoxes(base, 2, 8, 2);
    const layout = (ss: typeof before) => ss.map((s) => `${s.block.lo}/${s.block.len}:${s.indices.length}`);
    expect(layout(before)).toEqual(['0/1:2', '192/4:1', '208/4:2']);
    for (const s of before) expect(s.indices.length).toBeLessThanOrEqual(2);
    // one more box in the upper half: the lower half's blocks are untouched
    const more = [...base, box(5, 230, 230)];
    const after = shardBoxes(more, 2, 8, 2);
    const low = (ss: typeof before, all: Box[]) => ss.filter((s) => s.block.hi < 128n).map((s) => `${shardName('m', s.block, 8)}:${s.indices.map((i) => all[i]!.owner).join(',')}`);
    expect(low(after, more)).toEqual(low(before, base));
    expect(low(before, base)).toEqual(['m-00-1:0,1']);
    expect(layout(after)).toEqual(['0/1:2', '192/4:1', '208/4:2', '224/3:1']);
  });

  test('a block most of whose boxes cover all of it is not split (no copies without gain)', () => {
    const wide: Box[] = Array.from({ length: 10 }, (_, i) => ({ owner: i, dims: [{ lo: 6n, hi: 6n }, { lo: BigInt(i), hi: BigInt(i) }, { lo: 0n, hi: 255n }] }));
    const shards = shardBoxes(wide, 2, 8, 2);
    expect(shards).toHaveLength(1);
    expect(shards[0]!.block).toEqual({ lo: 0n, len: 0, hi: 255n });
  });

  test('the compiled table dispatches on the address to one lookup chain and map per shard', () => {
    const pols = Array.from({ length: 6 }, (_, i) => cwnp(`p${i}`, { egress: [{ to: [{ cidr: `203.0.113.${i * 40}/29` }], ports: [{ port: 443 }] }] }));
    const { text } = compileObjects([exampleFirewall(), ...pols], { shardMax: 2 });
    const dispatch = /map egress_ports_v4 \{[^}]*elements = \{\n([^}]*)\n\t\t\}/.exec(text)![1]!.split('\n').map((l) => l.trim().replace(/,$/, ''));
    expect(dispatch.length).toBeGreaterThanOrEqual(3);
    for (const d of dispatch) {
      const shard = /: jump (egress_ports_v4-[0-9a-f]{8}-\d+)$/.exec(d)![1]!;
      expect(text).toContain(`map ${shard} {`);
      expect(text).toContain(`chain ${shard} {\n\t\tip daddr . meta l4proto . th dport vmap @${shard}\n\t}`);
      // the lookup chain comes after its map, the dispatch map after both
      expect(text.indexOf(`map ${shard} {`)).toBeLessThan(text.indexOf(`chain ${shard} {`));
      expect(text.indexOf(`chain ${shard} {`)).toBeLessThan(text.indexOf('map egress_ports_v4 {'));
    }
    expect(text).toMatch(/ip daddr vmap @egress_ports_v4\n/);
  });
});

describe('compile cache', () => {
  test('a daemon-style compile (cache, parse results reused) equals a fresh compile after every change', () => {
    const fw = parseFirewall(exampleFirewall());
    if (!fw.ok) throw new Error('firewall');
    const r = rng(7);
    const spec = () => ({
      egress: Array.from({ length: 1 + r(2) }, () => ({
        to: [{ cidr: `203.0.113.${r(16) * 16}/${28 + r(5)}` }, { cidr: `198.51.${r(4)}.0/24` }],
        ports: [{ port: [53, 80, 443, 8000 + r(20)][r(4)], protocol: r(4) === 0 ? 'UDP' : 'TCP' }],
      })),
    });
    const parsed = new Map<string, PolicyResult>();
    const cache = new CompileCache();
    let last: string[] = [];
    let prev = new Map<string, unknown>();
    let reused = 0;
    for (let i = 0; i < 40; i++) parsed.set(`p${i}`, parsePolicy(cwnp(`p${i}`, spec())));
    for (let step = 0; step < 30; step++) {
      // one create, update or delete per step, as the watch delivers them
      const name = `p${r(50)}`;
      if (step % 3 === 2) parsed.delete(name);
      else parsed.set(name, parsePolicy(cwnp(name, spec())));
      const policies = [...parsed.values()];
      const cached = compile({ firewall: fw.firewall, policies, services: [], state: 'connected', cache, shardMax: 3 });
      const fresh = compile({ firewall: fw.firewall, policies, services: [], state: 'connected', shardMax: 3 });
      expect({ step, table: cached.table }).toEqual({ step, table: fresh.table });
      expect(cached.table.maps.filter((m) => m.name.startsWith('egress_ports_v4-')).length).toBeGreaterThan(3);
      reused += cached.table.maps.filter((m) => m.elements.length > 0 && prev.get(m.name) === m.elements).length;
      prev = new Map(cached.table.maps.map((m) => [m.name, m.elements]));
      last = cached.table.maps.filter((m) => /^(egress|ingress)_ports_v[46]-/.test(m.name)).map((m) => m.name);
    }
    expect(reused).toBeGreaterThan(30); // unchanged shards were taken over, not rebuilt
    // the cache holds exactly the shards of the last compile: gone ones left with their maps
    const kept = [...cache.shardMaps.values()].flatMap((m) => m.render().maps.map((x) => x.name)).filter((n) => n.includes('-'));
    expect(kept.sort()).toEqual([...last].sort());
  });
});
