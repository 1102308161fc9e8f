/**
 * The render path's shortcuts give exactly what the general code gives: IPv4 parsing and
 * formatting without ipaddr.js, the partition on numbers instead of bigints, file-name order
 * without the collator, duplicate keys found by counting.
 */
import ipaddr from 'ipaddr.js';
import { toTable } from '../../src/compile/boxes';
import { peerRanges } from '../../src/compile/compile';
import { policyItems } from '../../src/compile/items';
import { parsePolicy } from '../../src/model/cwnp';
import { Box, partition, partitionCells } from '../../src/compile/partition';
import { formatIpv4Range, formatRange, parseAddress, parsePrefix } from '../../src/model/address';
import { renderTransaction, writeTransaction } from '../../src/nft/render';
import { compareNames, parseDocuments } from '../../src/sources/files';
import { compileObjects, exampleFirewall } from '../helpers';

function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

describe('IPv4 without ipaddr.js', () => {
  test('parses every dotted quad as ipaddr.js does, and leaves the rest to it', () => {
    const r = rng(3);
    const texts = ['0.0.0.0', '255.255.255.255', '256.0.0.1', '1.2.3.04', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1.2.3.999', '١.2.3.4', '1..2.3'];
    for (let i = 0; i < 2000; i++) texts.push([r(300), r(256), r(256), r(260)].join('.'));
    for (const t of texts) {
      const ours = parseAddress(t);
      const valid = ipaddr.IPv4.isValidFourPartDecimal(t);
      expect({ t, ok: ours.ok }).toEqual({ t, ok: valid });
      if (ours.ok) expect(ours.value).toEqual({ family: 4, value: BigInt(ipaddr.IPv4.parse(t).toByteArray().reduce((v, b) => v * 256 + b, 0)) });
    }
    for (let i = 0; i < 2000; i++) {
      const addr = [r(260), r(256), r(256), r(256)].join('.');
      const len = [String(r(40)), '08', '', '032', '1e1'][r(5)]!;
      const t = `${addr}/${len}`;
      const ok = ipaddr.IPv4.isValidFourPartDecimal(addr) && /^(0|[1-9][0-9]{0,2})$/.test(len) && Number(len) <= 32;
      const p = parsePrefix(t);
      expect({ t, ok: p.ok }).toEqual({ t, ok });
      if (!ok || !p.ok) continue;
      const v = BigInt(ipaddr.IPv4.parse(addr).toByteArray().reduce((x, b) => x * 256 + b, 0));
      const network = (v >> BigInt(32 - Number(len))) << BigInt(32 - Number(len));
      expect(p).toEqual({ ok: true, value: { family: 4, network, length: Number(len) }, hostBitsMasked: network !== v });
    }
    expect(parsePrefix('198.51.100.7/24')).toEqual({ ok: true, value: { family: 4, network: 0xc6336400n, length: 24 }, hostBitsMasked: true });
    expect(parsePrefix('198.51.100.0/33')).toEqual({ ok: false, error: '"198.51.100.0/33" has prefix length 33, more than 32' });
    expect(parseAddress('192.0.2.256')).toEqual({ ok: false, error: '"192.0.2.256" is not an IP address' });
  });

  test('formats ranges as the bigint path through ipaddr.js does', () => {
    const r = rng(5);
    const viaIpaddr = (lo: number, hi: number): string => {
      const addr = (n: number) => ipaddr.fromByteArray([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]).toString();
      if (lo === hi) return addr(lo);
      const size = hi - lo + 1;
      const bits = Math.log2(size);
      return Number.isInteger(bits) && lo % size === 0 ? `${addr(lo)}/${32 - bits}` : `${addr(lo)}-${addr(hi)}`;
    };
    const cases: [number, number][] = [
      [0, 2 ** 32 - 1],
      [0, 0],
      [2 ** 32 - 1, 2 ** 32 - 1],
      [2 ** 31, 2 ** 32 - 1],
      [0, 2 ** 31],
      [0xc0000200, 0xc00002ff],
    ];
    for (let i = 0; i < 2000; i++) {
      const len = r(33);
      const lo = (r(2 ** 16) * 2 ** 16 + r(2 ** 16)) - ((r(2 ** 16) * 2 ** 16 + r(2 ** 16)) % 2 ** (32 - len));
      cases.push([Math.max(0, lo), Math.max(0, lo) + 2 ** (32 - len) - 1 - (i % 3 === 0 ? 1 : 0)]);
    }
    for (const [lo, hi] of cases.filter(([a, b]) => a <= b)) {
      expect(formatIpv4Range(lo, hi)).toBe(viaIpaddr(lo, hi));
      expect(formatRange({ family: 4, lo: BigInt(lo), hi: BigInt(hi) })).toBe(viaIpaddr(lo, hi));
    }
  });
});

describe('partition on numbers and on bigints', () => {
  test('gives the same cells, each in the type its dimension had', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const r = rng(seed);
      const boxes: Box[] = Array.from({ length: 3 + r(20) }, () => {
        const p = r(3);
        const a = r(200);
        return { owner: r(6), dims: [{ lo: 6, hi: 6 + 11 * r(2) }, { lo: p * 10, hi: p * 10 + r(15) }, { lo: a, hi: a + r(40) }] };
      });
      const big: Box[] = boxes.map((b) => ({ owner: b.owner, dims: b.dims.map((iv, d) => (d === 2 ? { lo: BigInt(iv.lo), hi: BigInt(iv.hi) } : iv)) }));
      const cells = partition(boxes);
      const bigCells = partition(big);
      expect(bigCells.map((c) => ({ owner: c.owner, dims: c.dims.map((iv) => ({ lo: Number(iv.lo), hi: Number(iv.hi) })) }))).toEqual(cells);
      for (const c of bigCells) expect(typeof c.dims[2]!.lo).toBe('bigint');
      for (const c of cells) expect(typeof c.dims[2]!.lo).toBe('number');
      expect(partitionCells(toTable(boxes)).toArray()).toEqual(cells);
    }
  });

  test('IPv6-wide values stay exact', () => {
    const top = (1n << 128n) - 1n;
    const cells = partition([
      { owner: 1, dims: [{ lo: 0n, hi: top }] },
      { owner: 0, dims: [{ lo: top - 1n, hi: top - 1n }] },
    ]);
    expect(cells).toEqual([
      { owner: 1, dims: [{ lo: 0n, hi: top - 2n }] },
      { owner: 0, dims: [{ lo: top - 1n, hi: top - 1n }] },
      { owner: 1, dims: [{ lo: top, hi: top }] },
    ]);
  });
});

describe('file names in localeCompare order', () => {
  test('agree with localeCompare, and use it outside root-like locales', () => {
    const r = rng(11);
    const alphabet = '0123456789abyz._-A';
    const name = () => Array.from({ length: 1 + r(6) }, () => alphabet[r(alphabet.length)]).join('');
    for (let i = 0; i < 20000; i++) {
      const a = name();
      const b = name();
      expect({ a, b, order: Math.sign(compareNames(a, b)) }).toEqual({ a, b, order: Math.sign(a.localeCompare(b)) });
    }
    expect(Math.sign(compareNames('policies-0.json', 'policies-5000.json'))).toBe(-1);
    // Danish sorts "aa" as "å", after "z": such a locale always asks the collator.
    expect(compareNames('aa.json', 'zz.json', { LANG: 'da_DK.UTF-8' })).toBe('aa.json'.localeCompare('zz.json'));
  });
});

describe('repeated JSON keys found by counting', () => {
  test.each([
    ['{"__proto__": 1, "__proto__": 2}', true],
    ['{"a": {"b": 1}, "b": {"a": 2}}', false],
    ['[{"k": "k:"}, {"k": ":"}]', false],
    ['{"a" : 1, "a"\n: 2}', true],
  ])('%s', (text, repeated) => {
    if (repeated) expect(() => parseDocuments(text, 'x.json')).toThrow(/Map keys must be unique/);
    else expect(parseDocuments(text, 'x.json')).toEqual([JSON.parse(text)]);
  });
});

describe('IPv4 rule addresses on numbers', () => {
  test('are the ranges peerRanges gives, however the blocks lie', () => {
    const r = rng(17);
    for (let i = 0; i < 500; i++) {
      const to = Array.from({ length: 1 + r(5) }, () => {
        const len = 20 + r(13);
        return { cidr: `198.51.${r(4)}.${r(256)}/${len}`, ...(r(8) === 0 ? { except: [`198.51.${r(4)}.${r(256)}/32`] } : {}) };
      });
      const parsed = parsePolicy({ apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name: 'p', namespace: 'firewall' }, spec: { egress: [{ to, ports: [{ port: 443 }] }] } });
      if (!parsed.ok) continue; // an except outside its cidr
      const expected = peerRanges(parsed.policy.egress[0]!.peers)[4].flatMap((x) => [6, 6, 443, 443, Number(x.lo), Number(x.hi)]);
      expect(policyItems(parsed.policy).egress.ports[4]).toEqual(expected);
    }
  });
});

describe('the transaction in pieces', () => {
  test('is exactly the transaction text, in pieces of whole lines', () => {
    const policies = Array.from({ length: 900 }, (_, i) => ({
      apiVersion: 'metal-stack.io/v1',
      kind: 'ClusterwideNetworkPolicy',
      metadata: { name: `p${i}`, namespace: 'firewall' },
      spec: { egress: [{ to: [{ cidr: `198.51.${i % 200}.0/24` }, { cidr: `2001:db8:${i}::/48` }], ports: [{ port: 1000 + i }] }] },
    }));
    const { table } = compileObjects([exampleFirewall(), ...policies]).compiled;
    const pieces: string[] = [];
    writeTransaction([table], (p) => pieces.push(p));
    expect(pieces.length).toBeGreaterThan(1);
    for (const p of pieces) expect(p.endsWith('\n')).toBe(true);
    expect(pieces.join('')).toBe(renderTransaction([table]));
  });
});
