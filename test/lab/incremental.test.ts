/**
 * Incremental updates in a real kernel: after any sequence of policy changes, the table reached by
 * incremental transactions is the one a full render gives (compared as nft's own JSON, with
 * handles and order set aside), and traffic follows.
 */
import { Applier } from '../../src/nft/applier';
import { planIncremental } from '../../src/nft/incremental';
import { compileObjects, cwnp, exampleFirewall, lbService } from '../helpers';
import { Obj } from '../../src/model/fields';
import { Lab, tcp } from './lab';
import { exec } from '../../src/nft/runner';
import { NftCli } from '../../src/nft/runner';

let lab: Lab;
const fresh = `fwa-full-${process.pid}`;

beforeAll(async () => {
  lab = await Lab.create();
  await exec(['ip', 'netns', 'add', fresh]);
});

afterAll(async () => {
  await lab?.destroy();
  await exec(['ip', 'netns', 'del', fresh]);
});

/** nft's JSON of a table with handles and counter values dropped and objects in a canonical order. */
async function normalized(nft: NftCli): Promise<string[]> {
  const json = JSON.parse((await nft.listTable('inet', 'firewall', { json: true, stateless: true }))!) as { nftables: Record<string, Record<string, unknown>>[] };
  return json.nftables
    .filter((o) => !o.metainfo)
    .map((o) => {
      const [kind, body] = Object.entries(o)[0]!;
      // Named counters carry traffic from earlier tests into a full apply: values are not state.
      const { handle: _h, packets: _p, bytes: _b, ...rest } = body!;
      if (Array.isArray(rest.elem)) rest.elem = [...(rest.elem as unknown[])].map((e) => JSON.stringify(e)).sort();
      return `${kind} ${JSON.stringify(rest)}`;
    })
    .sort();
}

function p(name: string, cidr: string, port?: number): Obj {
  return cwnp(name, { egress: [{ to: [{ cidr }], ...(port ? { ports: [{ port }] } : {}) }] });
}

const steps: Obj[][] = [
  [p('a', '203.0.113.0/24', 443)],
  [p('a', '203.0.113.0/24', 443), p('b', '203.0.113.10/32', 8000)],
  [p('a', '203.0.113.0/24', 443), p('b', '203.0.113.10/32', 8005), p('c', '203.0.113.0/25', 443)],
  [p('b', '203.0.113.10/32', 8005), p('c', '203.0.113.0/25', 443), p('d', '198.51.100.0/24')],
  [
    p('c', '203.0.113.0/25', 443),
    p('d', '198.51.100.0/24'),
    cwnp('e', { ingress: [{ from: [{ cidr: '203.0.113.0/28' }], ports: [{ port: 22 }] }] }),
    lbService('s', { loadBalancerIP: '192.0.2.200', ports: [{ port: 443 }] }),
  ],
  [p('c', '203.0.113.0/25', 9000)],
];

test('each step applied incrementally equals a full render of it, and traffic follows', async () => {
  const inc = new Applier(lab.nft, { family: 'inet', name: 'firewall' });
  const full = new NftCli(['ip', 'netns', 'exec', fresh]);
  const first = compileObjects([exampleFirewall(), ...steps[0]!]).compiled.table;
  await inc.apply(first, { relaxLegacy: true });
  expect(inc.lastMode).toBe('full');
  for (const [i, objs] of steps.entries()) {
    if (i === 0) continue;
    const table = compileObjects([exampleFirewall(), ...objs]).compiled.table;
    expect(await inc.apply(table, { relaxLegacy: true })).toBe('applied');
    expect({ step: i, mode: inc.lastMode }).toEqual({ step: i, mode: 'incremental' });
    await inc.cleanup();
    const fullApplier = new Applier(full, { family: 'inet', name: 'firewall' });
    await fullApplier.apply(table, { relaxLegacy: true });
    expect({ step: i, state: await normalized(lab.nft) }).toEqual({ step: i, state: await normalized(full) });
  }
  // the last step allows only tcp/9000 to 203.0.113.0/25
  expect(await lab.reachable('worker', [tcp('203.0.113.10', 9000), tcp('203.0.113.10', 443), tcp('203.0.113.10', 8005)])).toEqual([true, false, false]);
});

test('a change of the Firewall itself needs a full sync', () => {
  const a = compileObjects([exampleFirewall(), p('a', '203.0.113.0/24', 443)]).compiled.table;
  const fw = exampleFirewall();
  (fw.spec as Obj).internalPrefixes = ['198.51.100.0/25'];
  const b = compileObjects([fw, p('a', '203.0.113.0/24', 443)]).compiled.table;
  expect(planIncremental(a, b)).toBeUndefined();
  const c = compileObjects([exampleFirewall(), p('a', '203.0.113.0/24', 443), p('b', '203.0.113.0/24', 80)]).compiled.table;
  expect(planIncremental(a, c)!.elementsAdded).toBe(1);
});

test('address shards that split, vanish and come back before cleanup hold exactly the new elements', async () => {
  const inc = new Applier(lab.nft, { family: 'inet', name: 'firewall' });
  const full = new NftCli(['ip', 'netns', 'exec', fresh]);
  const compileSharded = (objs: Obj[]) => compileObjects([exampleFirewall(), ...objs], { shardMax: 1 }).compiled.table;
  const a = p('a', '203.0.113.0/28', 443);
  const c = p('c', '203.0.113.96/28', 443);
  const seq: { objs: Obj[]; cleanup: boolean }[] = [
    { objs: [a, p('b', '203.0.113.192/28', 443)], cleanup: true },
    { objs: [a, p('b', '203.0.113.192/28', 443), c], cleanup: true },
    { objs: [a, c], cleanup: false }, // b's shard goes stale and stays in the kernel for now
    { objs: [a, c, p('b', '203.0.113.192/28', 9000)], cleanup: true }, // and comes back with other ports
  ];
  await inc.apply(compileSharded(seq[0]!.objs), { relaxLegacy: true });
  for (const [i, step] of seq.entries()) {
    const table = compileSharded(step.objs);
    const shards = table.maps.filter((m) => /^egress_ports_v4-/.test(m.name)).length;
    expect({ step: i, shards }).toEqual({ step: i, shards: step.objs.length });
    if (i > 0) {
      expect(await inc.apply(table, { relaxLegacy: true })).toBe('applied');
      expect({ step: i, mode: inc.lastMode }).toEqual({ step: i, mode: 'incremental' });
    }
    if (!step.cleanup) continue;
    await inc.cleanup();
    await new Applier(full, { family: 'inet', name: 'firewall' }).apply(table, { relaxLegacy: true });
    expect({ step: i, state: await normalized(lab.nft) }).toEqual({ step: i, state: await normalized(full) });
  }
  expect(await lab.reachable('worker', [tcp('203.0.113.200', 9000), tcp('203.0.113.200', 443), tcp('203.0.113.100', 443)])).toEqual([true, false, true]);
});
