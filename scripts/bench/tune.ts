import { writeFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { classify } from '../../src/model/inventory';
import { compile } from '../../src/compile/compile';
import { renderTransaction } from '../../src/nft/render';
import { exampleFirewall } from '../../test/helpers';
import { generatePolicies } from './generate';

const n = Number(process.argv[2] ?? 10000);
const inv = classify([exampleFirewall(), ...generatePolicies(n)].map((object) => ({ origin: 'bench', object })));
const fw = inv.firewalls[0]!.result;
if (!fw.ok) throw new Error('fw');
for (const shardMax of process.argv.slice(3).map(Number)) {
  const t0 = Date.now();
  const c = compile({ firewall: fw.firewall, policies: inv.policies, services: inv.services, state: 'connected', shardMax });
  const t1 = Date.now();
  const text = renderTransaction([c.table]);
  const t2 = Date.now();
  writeFileSync('/tmp/tune.nft', text);
  const t3 = Date.now();
  execSync('ip netns exec exp nft -f /tmp/tune.nft');
  const t4 = Date.now();
  console.log({ shardMax, compile: t1 - t0, render: t2 - t1, apply: t4 - t3, maps: c.table.maps.length, elements: c.table.maps.reduce((s, m) => s + m.elements.length, 0) });
}
