import { execSync } from 'node:child_process';
import { CompileCache, compile } from '../../src/compile/compile';
import { PolicyResult, parsePolicy } from '../../src/model/cwnp';
import { parseFirewall } from '../../src/model/firewall';
import { Applier } from '../../src/nft/applier';
import { renderTransaction } from '../../src/nft/render';
import { NftCli } from '../../src/nft/runner';
import { exampleFirewall } from '../../test/helpers';
import { generatePolicies, policy } from './generate';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 5000);
  try { execSync('ip netns add phases'); } catch { /* exists */ }
  const nft = new NftCli(['ip', 'netns', 'exec', 'phases']);
  const fw = parseFirewall(exampleFirewall());
  if (!fw.ok) throw new Error('fw');
  const parsed = new Map<string, PolicyResult>();
  for (const o of generatePolicies(n)) parsed.set((o.metadata as { name: string }).name, parsePolicy(o));
  const cache = new CompileCache();
  const applier = new Applier(nft, { family: 'inet', name: 'firewall' });
  const run = async (label: string) => {
    const t0 = performance.now();
    const c = compile({ firewall: fw.firewall, policies: [...parsed.values()], services: [], state: 'connected', cache });
    const t1 = performance.now();
    const text = renderTransaction([c.table]);
    const t2 = performance.now();
    await applier.apply(c.table, { relaxLegacy: false });
    const t3 = performance.now();
    console.log(`${label}: compile ${(t1 - t0).toFixed(0)} ms, render ${(t2 - t1).toFixed(0)} ms (${text.length} B), apply ${(t3 - t2).toFixed(0)} ms (${applier.lastMode}, ${JSON.stringify(applier.lastElements)})`);
  };
  await run('full');
  for (let i = 0; i < 6; i++) {
    const name = `latency-${i}`;
    parsed.set(name, parsePolicy(policy(name, { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 9000 + i }] }] })));
    await run(`create ${name}`);
  }
  for (let i = 0; i < 3; i++) {
    parsed.delete(`latency-${i}`);
    await run(`delete latency-${i}`);
  }
  execSync('ip netns del phases');
}
void main();
