/**
 * In a real kernel: counters survive re-applies (carried into the new transaction), and the
 * installer's legacy `inet metal` forward policy is relaxed only inside the transaction that loads
 * our own drop chain.
 */
import { Applier } from '../../src/nft/applier';
import { disconnectedTable } from '../../src/compile/compile';
import { compileObjects, cwnp, exampleFirewall } from '../helpers';
import { Lab, tcp } from './lab';

let lab: Lab;
let applier: Applier;

const https = cwnp('allow-to-https', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] });
const extra = cwnp('allow-8000', { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 8000 }] }] });

function counterOf(listing: string, comment: string): number {
  const line = listing.split('\n').find((l) => l.includes(`comment "${comment}"`))!;
  return Number(/packets (\d+)/.exec(line)![1]);
}

function named(listing: string, name: string): number {
  return Number(new RegExp(`counter ${name} \\{\\s*packets (\\d+)`).exec(listing)![1]);
}

beforeEach(async () => {
  lab = await Lab.create();
  applier = new Applier(lab.nft, { family: 'inet', name: 'firewall' });
});

afterEach(async () => {
  await lab?.destroy();
});

test('per-policy and named counters keep counting across re-applies', async () => {
  // A policy's counter counts the packets of new connections that pass its chain: one SYN per
  // connection, plus any retransmitted SYN (still ct state new). The SYNs that arrive at
  // 203.0.113.10:443 are exactly those, so the counter must equal them, and each successful
  // connection delivered at least one.
  const syns = await lab.synCounter('internet', 443);
  try {
    await applier.apply(compileObjects([exampleFirewall(), https]).compiled.table, { relaxLegacy: true });
    for (let i = 0; i < 3; i++) {
      expect(await lab.reachable('worker', [tcp('203.0.113.10', 443), tcp('203.0.113.10', 9000, { timeoutMs: 150 })])).toEqual([true, false]);
    }
    const before = (await lab.nft.listTable('inet', 'firewall'))!;
    const arrived = await syns.read();
    const accepted = counterOf(before, 'accept traffic for np allow-to-https');
    const dropped = named(before, 'drop_total');
    expect(accepted).toBe(arrived);
    expect(arrived).toBeGreaterThanOrEqual(3);
    expect(dropped).toBeGreaterThan(0);

    expect(await applier.apply(compileObjects([exampleFirewall(), https, extra]).compiled.table, { relaxLegacy: true })).toBe('applied');
    const after = (await lab.nft.listTable('inet', 'firewall'))!;
    expect(counterOf(after, 'accept traffic for np allow-to-https')).toBe(accepted);
    expect(named(after, 'drop_total')).toBe(dropped);
    expect(await lab.reachable('worker', [tcp('203.0.113.10', 443)])).toEqual([true]);
    const more = (await syns.read()) - arrived;
    expect(counterOf((await lab.nft.listTable('inet', 'firewall'))!, 'accept traffic for np allow-to-https')).toBe(accepted + more);
    expect(more).toBeGreaterThanOrEqual(1);
  } finally {
    await syns.remove();
  }
});

test('an unchanged ruleset is not re-sent; a drifted one is', async () => {
  const table = compileObjects([exampleFirewall(), https]).compiled.table;
  expect(await applier.apply(table, { relaxLegacy: true })).toBe('applied');
  expect(await applier.apply(table, { relaxLegacy: true })).toBe('unchanged');
  await lab.run('fw', ['nft', 'add rule inet firewall forward accept']);
  expect(await applier.drifted()).toBe(true);
  applier.requireFull(); // what the agent does on drift
  expect(await applier.apply(table, { relaxLegacy: true })).toBe('applied');
  expect(await applier.drifted()).toBe(false);
});

describe('with the installer legacy table inet metal (forward policy drop)', () => {
  const metal = ['table inet metal {', ' chain forward {', '  type filter hook forward priority 0; policy drop;', '  ct state established,related accept', ' }', '}', ''].join('\n');

  async function metalPolicy(): Promise<string> {
    return /policy (\w+);/.exec((await lab.nft.listTable('inet', 'metal'))!)![1]!;
  }

  beforeEach(async () => {
    const r = await lab.run('fw', ['nft', '-f', '-'], metal);
    expect(r.stderr).toBe('');
  });

  test('disconnected leaves it at drop; connecting relaxes it in the same transaction', async () => {
    await applier.apply(disconnectedTable(), { relaxLegacy: false });
    expect(await metalPolicy()).toBe('drop');
    expect(await lab.reachable('worker', [tcp('203.0.113.10', 443)])).toEqual([false]);
    await applier.apply(compileObjects([exampleFirewall(), https]).compiled.table, { relaxLegacy: true });
    expect(await metalPolicy()).toBe('accept');
    // our table now decides: the policy's traffic passes both chains, the rest is dropped by ours
    expect(await lab.reachable('worker', [tcp('203.0.113.10', 443), tcp('203.0.113.10', 80)])).toEqual([true, false]);
  });

  test('a transaction nft refuses relaxes nothing', async () => {
    const table = compileObjects([exampleFirewall(), https]).compiled.table;
    const broken = { ...table, chains: table.chains.map((c) => (c.name === 'forward' ? { ...c, rules: [...c.rules, { match: [], statement: { kind: 'jump' as const, chain: 'nowhere' } }] } : c)) };
    await expect(applier.apply(broken, { relaxLegacy: true })).rejects.toThrow(/nft apply failed/); // one atomic transaction: refused whole
    expect(await metalPolicy()).toBe('drop');
    expect(await lab.nft.listTable('inet', 'firewall')).toBeUndefined();
  });
});
