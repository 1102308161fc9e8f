/**
 * Benchmarks 1–3: compile+render time, nft apply time, and the cost of a new connection through the
 * lab firewall with 10,000 policies against an empty ruleset and against a linear ruleset.
 * Prints one summary line per figure.
 */
import { AddrRange, formatRange } from '../../src/model/address';
import { compile, disconnectedTable, peerRanges } from '../../src/compile/compile';
import { classify } from '../../src/model/inventory';
import { Obj } from '../../src/model/fields';
import { parsePolicy } from '../../src/model/cwnp';
import { renderTransaction } from '../../src/nft/render';
import { NftCli, exec } from '../../src/nft/runner';
import { exampleFirewall } from '../../test/helpers';
import { Lab, tcp } from '../../test/lab/lab';
import { generatePolicies, policy } from './generate';

const FW = exampleFirewall();

function line(name: string, value: string, target?: string, met?: boolean): void {
  const verdict = met === undefined ? '' : met ? '  [target met]' : '  [target MISSED]';
  console.log(`${name.padEnd(58)} ${value}${target ? `  (target ${target})` : ''}${verdict}`);
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function render(objects: Obj[]): { text: string; ms: number } {
  const t = process.hrtime.bigint();
  const inv = classify([FW, ...objects].map((object) => ({ origin: 'bench', object })));
  const fw = inv.firewalls[0]!.result;
  if (!fw.ok) throw new Error('bad firewall');
  const c = compile({ firewall: fw.firewall, policies: inv.policies, services: inv.services, state: 'connected' });
  const text = renderTransaction([c.table]);
  return { text, ms: ms(t) };
}

const TARGET = policy('bench-target', { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 9000 }] }] });

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

async function timedApply(nft: NftCli, text: string): Promise<number> {
  const t = process.hrtime.bigint();
  await nft.applyText(text);
  return ms(t);
}

async function main(): Promise<void> {
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

  // 2. nft apply
  const ns = `fwa-bench-${process.pid}`;
  await exec(['ip', 'netns', 'add', ns]);
  try {
    const nft = new NftCli(['ip', 'netns', 'exec', ns]);
    for (const n of sizes) {
      const text = renders.get(n)!;
      await nft.applyText(renderTransaction([disconnectedTable()]));
      const first = await timedApply(nft, text);
      const again = await timedApply(nft, text);
      line(`2. nft apply ${n} policies (${(text.length / 1e6).toFixed(1)} MB)`, `${first.toFixed(0)} ms first load, ${again.toFixed(0)} ms replace`, n === 10000 ? '< 1000 ms' : undefined, n === 10000 ? Math.max(first, again) < 1000 : undefined);
    }
  } finally {
    await exec(['ip', 'netns', 'del', ns]);
  }

  // 3. new-connection cost through the lab firewall
  const lab = await Lab.create();
  try {
    const objs = all.slice(0, 10000);
    const configs: [string, string][] = [
      ['empty (only the test policy)', render([TARGET]).text],
      ['10,000 policies, sets and verdict maps', render([...objs, TARGET]).text],
      ['10,000 policies as linear rules', linearRuleset(objs)],
    ];
    const count = 1500;
    const best = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      for (const [name, text] of configs) {
        await lab.apply(text);
        const [r] = await lab.probe('worker', [tcp('203.0.113.10', 9000, { loop: { count }, timeoutMs: 2000 })]);
        if (!r!.ok) throw new Error(`${name}: ${r!.failed} connections failed`);
        best.set(name, Math.min(best.get(name) ?? Infinity, r!.ms!));
      }
    }
    const base = best.get(configs[0]![0])!;
    for (const [name] of configs) {
      const t = best.get(name)!;
      const ratio = t / base;
      const ours = name.startsWith('10,000 policies, sets');
      line(`3. new connection, ${name}`, `${((t * 1000) / count).toFixed(0)} us/connection, ${ratio.toFixed(2)}x empty`, ours ? '<= 1.1x' : undefined, ours ? ratio <= 1.1 : undefined);
    }
  } finally {
    await lab.destroy();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
