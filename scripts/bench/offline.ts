/**
 * Benchmarks 1–3, 8 and 9 (issue #14): compile+render time; nft apply time, against the floor (one
 * flat set of the input's items); and the cost of a new connection through the lab firewall with
 * 10,000 policies against a ruleset with one policy, a linear ruleset, and no nftables table at all.
 * Prints one summary line per figure. Figure 10 (scale to 100,000) is scale.ts.
 */
import { readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AddrRange, formatRange } from '../../src/model/address';
import { compile, peerRanges } from '../../src/compile/compile';
import { classify } from '../../src/model/inventory';
import { Obj } from '../../src/model/fields';
import { parsePolicy } from '../../src/model/cwnp';
import { PROTOCOL_NUMBER } from '../../src/model/ports';
import { renderTransaction } from '../../src/nft/render';
import { exec } from '../../src/nft/runner';
import { exampleFirewall } from '../../test/helpers';
import { Lab, tcp } from '../../test/lab/lab';
import { generatePolicies, policy } from './generate';

const FW = exampleFirewall();

export function line(name: string, value: string, target?: string, met?: boolean): void {
  const verdict = met === undefined ? '' : met ? '  [target met]' : '  [target MISSED]';
  console.log(`${name.padEnd(58)} ${value}${target ? `  (target ${target})` : ''}${verdict}`);
}

export function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export function render(objects: Obj[]): { text: string; ms: number } {
  const t = process.hrtime.bigint();
  const inv = classify([FW, ...objects].map((object) => ({ origin: 'bench', object })));
  const fw = inv.firewalls[0]!.result;
  if (!fw.ok) throw new Error('bad firewall');
  const c = compile({ firewall: fw.firewall, policies: inv.policies, services: inv.services, state: 'connected' });
  const text = renderTransaction([c.table]);
  return { text, ms: ms(t) };
}

export const TARGET = policy('bench-target', { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 9000 }] }] });

/** The reference we beat: one rule per policy item, as a linear chain, the test traffic's rule last. */
function linearRuleset(objects: Obj[]): string {
  const rules: string[] = [];
  for (const o of [...objects, TARGET]) {
    const r = parsePolicy(o);
    if (!r.ok) continue;
    for (const e of r.policy.egress) {
      const ranges: AddrRange[] = [...peerRanges(e.peers)[4]];
      for (const a of ranges) {
        if (e.ports.kind === 'any') rules.push(`iifname "vlan3981" ip daddr ${formatRange(a)} accept`);
        else for (const p of e.ports.ports) rules.push(`iifname "vlan3981" ip daddr ${formatRange(a)} ${p.protocol} dport ${p.range.lo}-${p.range.hi} accept`);
      }
    }
  }
  return [
    'add table inet firewall',
    'delete table inet firewall',
    'table inet firewall {',
    '  chain forward {',
    '    type filter hook forward priority 1; policy drop;',
    '    ct state established,related accept',
    ...rules.map((r) => `    ${r}`),
    '  }',
    '  chain postrouting { type nat hook postrouting priority -1; policy accept; }',
    '}',
    '',
  ].join('\n');
}

export interface Floor {
  text: string;
  /** (range, protocol, port range) items of all rules, before and after removing duplicates. */
  items: number;
  unique: number;
  /** Non-overlapping elements actually loaded. */
  elements: number;
}

const PROTO_NAME = new Map<number, string>(Object.entries(PROTOCOL_NUMBER).map(([name, n]) => [n, name]));

/** A box on plain numbers: [lo0, hi0, lo1, hi1, …], inclusive; every dimension here fits a double. */
type NumBox = readonly number[];

/**
 * The disjoint cover of the union of `boxes` from dimension `d` on: a sweep over d's elementary
 * intervals, the rest covered recursively (memoised by the set of boxes present), and every sub-cell
 * extended along d for as long as it repeats in contiguous intervals. Cells are disjoint by
 * construction and their union is exactly the boxes' union.
 */
export function disjointCover(boxes: readonly NumBox[], d = 0): number[][] {
  if (boxes.length === 0) return [];
  const ndims = boxes[0]!.length / 2;
  if (d === ndims - 1) {
    const ivs = boxes.map((b) => [b[2 * d]!, b[2 * d + 1]!] as [number, number]).sort((a, b) => a[0] - b[0]);
    const out: number[][] = [];
    let cur = [...ivs[0]!];
    for (const [lo, hi] of ivs) {
      if (lo <= cur[1]! + 1) cur[1] = Math.max(cur[1]!, hi);
      else {
        out.push(cur);
        cur = [lo, hi];
      }
    }
    out.push(cur);
    return out;
  }
  const pts = [...new Set(boxes.flatMap((b) => [b[2 * d]!, b[2 * d + 1]! + 1]))].sort((a, b) => a - b);
  const sorted = [...boxes].sort((a, b) => a[2 * d]! - b[2 * d]!);
  const ids = new Map<NumBox, number>(sorted.map((b, i) => [b, i]));
  const memo = new Map<string, number[][]>();
  const out: number[][] = [];
  let active: NumBox[] = [];
  let next = 0;
  let open = new Map<string, number[]>();
  let lastHi = Number.NaN;
  for (let i = 0; i + 1 < pts.length; i++) {
    const lo = pts[i]!;
    const hi = pts[i + 1]! - 1;
    active = active.filter((b) => b[2 * d + 1]! >= lo);
    while (next < sorted.length && sorted[next]![2 * d]! <= lo) active.push(sorted[next++]!);
    if (active.length === 0) continue;
    const key = active
      .map((b) => ids.get(b)!)
      .sort((a, b) => a - b)
      .join(',');
    let sub = memo.get(key);
    if (!sub) {
      sub = disjointCover(active, d + 1);
      memo.set(key, sub);
    }
    const contiguous = lastHi + 1 === lo;
    const nextOpen = new Map<string, number[]>();
    for (const c of sub) {
      const k = c.join(',');
      const prev = contiguous ? open.get(k) : undefined;
      if (prev) {
        prev[1] = hi;
        nextOpen.set(k, prev);
      } else {
        const cell = [lo, hi, ...c];
        out.push(cell);
        nextOpen.set(k, cell);
      }
    }
    open = nextOpen;
    lastHi = hi;
  }
  return out;
}

/**
 * The floor of figure 8: one table with one flat `ipv4_addr . inet_proto . inet_service` interval
 * set holding the input's items: for every egress and ingress rule, every IPv4 range its peers cover
 * (peerRanges) × every port range (with its protocol; a rule without ports: every protocol and port).
 * No chains, no verdicts, no shards. The kernel refuses overlapping elements and nft 1.0.6 cannot
 * auto-merge concatenations, so the deduplicated items are cut into the disjoint cover of their
 * union (disjointCover, dimensions protocol, port, address); that also swallows items contained in
 * others, so there are fewer elements than distinct items.
 */
export function floorTable(objects: Obj[]): Floor {
  const boxes: NumBox[] = [];
  const seen = new Set<string>();
  let items = 0;
  for (const o of objects) {
    const r = parsePolicy(o);
    if (!r.ok) continue;
    for (const rule of [...r.policy.egress.filter((e) => !e.toFqdns), ...r.policy.ingress]) {
      const ports: [number, number, number, number][] =
        rule.ports.kind === 'any' ? [[0, 255, 0, 65535]] : rule.ports.ports.map((p) => [PROTOCOL_NUMBER[p.protocol], PROTOCOL_NUMBER[p.protocol], p.range.lo, p.range.hi]);
      for (const a of peerRanges(rule.peers)[4]) {
        const lo = Number(a.lo);
        const hi = Number(a.hi);
        for (const p of ports) {
          items++;
          const box = [...p, lo, hi];
          const key = box.join(',');
          if (seen.has(key)) continue;
          seen.add(key);
          boxes.push(box);
        }
      }
    }
  }
  const cells = disjointCover(boxes);
  const elements = cells.map(([prLo, prHi, poLo, poHi, aLo, aHi]) => {
    const pr = prLo === prHi ? (PROTO_NAME.get(prLo!) ?? `${prLo}`) : `${prLo}-${prHi}`;
    const po = poLo === poHi ? `${poLo}` : `${poLo}-${poHi}`;
    return `\t\t\t${formatRange({ family: 4, lo: BigInt(aLo!), hi: BigInt(aHi!) })} . ${pr} . ${po},`;
  });
  const text = [
    'add table inet fwa_floor',
    'delete table inet fwa_floor',
    'table inet fwa_floor {',
    '\tset items {',
    '\t\ttype ipv4_addr . inet_proto . inet_service',
    '\t\tflags interval',
    ...(elements.length > 0 ? ['\t\telements = {', ...elements, '\t\t}'] : []),
    '\t}',
    '}',
    '',
  ].join('\n');
  return { text, items, unique: boxes.length, elements: cells.length };
}

export interface Load {
  /** Wall time of `ip netns exec NS nft -f` (as the agent would see it). */
  ms: number;
  /** nft's own CPU time in userspace and in the kernel (its system calls: the netlink transaction). */
  userS: number;
  sysS: number;
  /** nft's peak RSS. */
  rssKiB: number;
}

export const TIME_FILE = path.join(os.tmpdir(), `fwa-bench-time-${process.pid}.txt`);
process.on('exit', () => rmSync(TIME_FILE, { force: true }));

/**
 * `nft -f` in namespace `ns` under /usr/bin/time: the ruleset from `file`, or from stdin when
 * `file` is undefined (then `text` is piped in, as the agent does).
 */
export async function nftLoad(ns: string, source: { text: string } | { file: string }, timeoutMs = 120_000): Promise<Load> {
  const input = 'file' in source ? source.file : '-';
  const t = process.hrtime.bigint();
  const r = await exec(['ip', 'netns', 'exec', ns, '/usr/bin/time', '-o', TIME_FILE, '-f', '%U %S %M', 'nft', '-f', input], 'text' in source ? source.text : undefined, timeoutMs);
  const wall = ms(t);
  if (r.code !== 0) throw new Error(`nft -f in ${ns} failed after ${wall.toFixed(0)} ms (${r.code}): ${r.stderr.trim().split('\n').slice(0, 4).join(' | ')}`);
  const [user, sys, rss] = readFileSync(TIME_FILE, 'utf8').trim().split('\n').pop()!.split(/\s+/).map(Number);
  return { ms: wall, userS: user!, sysS: sys!, rssKiB: rss! };
}

let nsSeq = 0;

/** Runs `fn` in a new, empty network namespace and removes it afterwards. */
export async function inFreshNamespace<T>(fn: (ns: string) => Promise<T>): Promise<T> {
  // fwa-<pid>-…: the lab tests' global setup leaves namespaces of a live pid alone and removes the rest.
  const ns = `fwa-${process.pid}-bench${++nsSeq}`;
  const r = await exec(['ip', 'netns', 'add', ns]);
  if (r.code !== 0) throw new Error(`ip netns add ${ns}: ${r.stderr.trim()}`);
  try {
    return await fn(ns);
  } finally {
    await exec(['ip', 'netns', 'del', ns]);
  }
}

/** First load into an empty namespace, then the same text again (a replace: add, delete, create). */
async function firstAndReplace(text: string): Promise<{ first: Load; replace: Load }> {
  return inFreshNamespace(async (ns) => {
    const first = await nftLoad(ns, { text });
    const replace = await nftLoad(ns, { text });
    return { first, replace };
  });
}

function better(a: Load | undefined, b: Load): Load {
  return a && a.ms <= b.ms ? a : b;
}

function cpuS(l: Load): number {
  return l.userS + l.sysS;
}

function cpu(l: Load): string {
  return `nft user ${l.userS.toFixed(2)} s, sys ${l.sysS.toFixed(2)} s`;
}

async function main(): Promise<void> {
  const started = process.hrtime.bigint();
  const sizes = [100, 1000, 10000, 30000];
  const all = generatePolicies(30000);
  console.log(`# policies: seeded, 1-3 egress rules x 1-4 prefixes x 1-3 ports, 30% with ingress; addresses in 100.64.0.0/10`);

  // 1. compile + render
  const renders = new Map<number, string>();
  const perSize = new Map<number, number>();
  for (const n of sizes) {
    const objs = all.slice(0, n);
    const runs = n <= 10000 ? 3 : 1;
    const times: number[] = [];
    let text = '';
    for (let i = 0; i < runs; i++) {
      const r = render(objs);
      times.push(r.ms);
      text = r.text;
    }
    const t = times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    perSize.set(n, t);
    renders.set(n, text);
    const elements = (text.match(/: goto /g) ?? []).length;
    line(`1. compile+render ${n} policies`, `${t.toFixed(0)} ms, ${((t * 1000) / n).toFixed(0)} us/policy, ${elements} map elements`, n === 10000 ? '< 1000 ms' : undefined, n === 10000 ? t < 1000 : undefined);
  }
  line('1. growth 1,000 -> 10,000 policies', `${(perSize.get(10000)! / perSize.get(1000)!).toFixed(1)}x time for 10x policies`, 'close to 10x');
  line('1. growth 10,000 -> 30,000 policies', `${(perSize.get(30000)! / perSize.get(10000)!).toFixed(1)}x time for 3x policies`, 'close to 3x');

  // 2. nft apply, and 6. the same for the floor: each load sequence in a fresh namespace (first load
  // into an empty namespace, then a replace), ours and the floor alternating; best of 3 up to 10,000.
  for (const n of sizes) {
    const text = renders.get(n)!;
    const floor = floorTable(all.slice(0, n));
    const rounds = n <= 10000 ? 3 : 1;
    let oursFirst: Load | undefined;
    let oursAgain: Load | undefined;
    let floorFirst: Load | undefined;
    let floorAgain: Load | undefined;
    for (let round = 0; round < rounds; round++) {
      const o = await firstAndReplace(text);
      oursFirst = better(oursFirst, o.first);
      oursAgain = better(oursAgain, o.replace);
      const f = await firstAndReplace(floor.text);
      floorFirst = better(floorFirst, f.first);
      floorAgain = better(floorAgain, f.replace);
    }
    const best = rounds > 1 ? `best of ${rounds}` : 'one run';
    line(
      `2. nft apply ${n} policies (${(text.length / 1e6).toFixed(1)} MB)`,
      `${oursFirst!.ms.toFixed(0)} ms first load, ${oursAgain!.ms.toFixed(0)} ms replace (${best}; first: ${cpu(oursFirst!)})`,
      n === 10000 ? '< 1000 ms' : undefined,
      n === 10000 ? Math.max(oursFirst!.ms, oursAgain!.ms) < 1000 : undefined,
    );
    const r1 = oursFirst!.ms / floorFirst!.ms;
    const r2 = oursAgain!.ms / floorAgain!.ms;
    line(
      `8. floor ${n}: 1 set, ${floor.elements} elements, ${(floor.text.length / 1e6).toFixed(1)} MB`,
      `${floorFirst!.ms.toFixed(0)} ms first load, ${floorAgain!.ms.toFixed(0)} ms replace (${cpu(floorFirst!)}); ours/floor ${r1.toFixed(2)}x first, ${r2.toFixed(2)}x replace, nft CPU ${cpuS(floorFirst!) >= 0.05 ? `${(cpuS(oursFirst!) / cpuS(floorFirst!)).toFixed(2)}x` : 'n/a'}; from ${floor.items} items, ${floor.unique} distinct`,
      n === 10000 ? 'ours <= 1.5x floor' : undefined,
      n === 10000 ? Math.max(r1, r2) <= 1.5 : undefined,
    );
  }

  // 3. new-connection cost through the lab firewall; 7. the same against no nftables table at all
  const lab = await Lab.create();
  try {
    const objs = all.slice(0, 10000);
    const NONE = 'no nftables table at all';
    // The no-table configuration comes right after the one-policy table, so that no large table is
    // being torn down in the background while it is measured. After each change the kernel gets a
    // moment to settle (deferred freeing of a replaced table), then each configuration is probed
    // PROBES times per round: the best of 9 runs of 1,500 connections, on a machine that may be shared.
    const configs: [string, string | undefined][] = [
      ['empty (only the test policy)', render([TARGET]).text],
      [NONE, undefined],
      ['10,000 policies, sets and verdict maps', render([...objs, TARGET]).text],
      ['10,000 policies as linear rules', linearRuleset(objs)],
    ];
    const count = 1500;
    const PROBES = 3;
    const best = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      for (const [name, text] of configs) {
        if (text !== undefined) await lab.apply(text);
        else {
          const flushed = await lab.run('fw', ['nft', 'flush', 'ruleset']);
          const listed = await lab.run('fw', ['nft', 'list', 'ruleset']);
          if (flushed.code !== 0 || listed.code !== 0 || listed.stdout.trim() !== '') throw new Error(`${name}: the firewall namespace still has a ruleset: ${listed.stdout.slice(0, 200)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
        for (let i = 0; i < PROBES; i++) {
          const [r] = await lab.probe('worker', [tcp('203.0.113.10', 9000, { loop: { count }, timeoutMs: 2000 })]);
          if (!r!.ok) throw new Error(`${name}: ${r!.failed} connections failed`);
          best.set(name, Math.min(best.get(name) ?? Infinity, r!.ms!));
        }
      }
    }
    const base = best.get(configs[0]![0])!;
    for (const [name] of configs) {
      if (name === NONE) continue;
      const t = best.get(name)!;
      const ratio = t / base;
      const ours = name.startsWith('10,000 policies, sets');
      line(`3. new connection, ${name}`, `${((t * 1000) / count).toFixed(0)} us/connection, ${ratio.toFixed(2)}x empty`, ours ? '<= 1.1x' : undefined, ours ? ratio <= 1.1 : undefined);
    }
    const none = best.get(NONE)!;
    const ours = best.get(configs[2]![0])!;
    line(
      `9. new connection, no nftables table (lab forwards anyway)`,
      `${((none * 1000) / count).toFixed(0)} us/connection; 10,000 policies ${((ours * 1000) / count).toFixed(0)} us = ${(ours / none).toFixed(2)}x no table, one policy ${(base / none).toFixed(2)}x`,
      '<= 1.15x',
      ours / none <= 1.15,
    );
  } finally {
    await lab.destroy();
    rmSync(TIME_FILE, { force: true });
  }
  console.log(`# offline.js took ${(ms(started) / 1000).toFixed(0)} s`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
