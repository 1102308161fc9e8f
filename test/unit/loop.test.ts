/**
 * The sync loop without root: an in-memory nft (FakeNft) and a fake clock. One writer, coalescing,
 * backoff from any trigger, full after failure, drift judged against what was meant, cleanup after
 * incrementals, and the startup decision (keep, restore, drop) whatever the state directory holds.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Compiled } from '../../src/compile/compile';
import { StateStore } from '../../src/daemon/store';
import { FakeNft } from '../../src/nft/fake';
import { NftTable } from '../../src/nft/ruleset';
import { fullTransaction } from '../../src/nft/transaction';
import { jsonLogger } from '../../src/report/log';
import { FakeClock } from '../../src/sync/clock';
import { Desired, SyncLoop } from '../../src/sync/loop';
import { compileObjects, cwnp, exampleFirewall } from '../helpers';
import { Obj } from '../../src/model/fields';

const TABLE = { family: 'inet', name: 'firewall' };

function policy(name: string, cidr: string, port: number): Obj {
  return cwnp(name, { egress: [{ to: [{ cidr }], ports: [{ port }] }] });
}

function compiled(objs: Obj[]): Compiled {
  return compileObjects([exampleFirewall(), ...objs], { shardMax: 2 }).compiled;
}

interface Rig {
  nft: FakeNft;
  clock: FakeClock;
  loop: SyncLoop;
  logs: { msg: string; level: string }[];
  /** What the sources say; undefined = not connected. */
  want: Compiled | undefined;
}

function rig(opts: { nft?: FakeNft; store?: StateStore; restoreLastKnownGood?: boolean } = {}): Rig {
  const logs: { msg: string; level: string }[] = [];
  const r: Rig = { nft: opts.nft ?? new FakeNft(), clock: new FakeClock(), loop: undefined!, logs, want: undefined };
  r.loop = new SyncLoop({
    nft: r.nft,
    clock: r.clock,
    log: jsonLogger((l) => logs.push(JSON.parse(l) as { msg: string; level: string }), 'debug'),
    store: opts.store,
    restoreLastKnownGood: opts.restoreLastKnownGood,
    runner: { random: () => 0.5 },
    desired: (): Desired => (r.want ? { kind: 'connected', compiled: r.want, mode: 'baseline', dryRun: false, compileMs: 0 } : { kind: 'wait', reason: 'not connected yet' }),
  });
  return r;
}

function applies(nft: FakeNft): number {
  return nft.calls.filter((c) => c.method === 'apply').length;
}

/** The table a fresh kernel holds after one full apply of `t`. */
function fresh(t: NftTable): string {
  const nft = new FakeNft();
  nft.seed(fullTransaction(t));
  return nft.dump();
}

/** Real file I/O under a fake clock: advance in small steps until `cond` holds (or 5 s of real time pass). */
async function until(r: Rig, cond: () => boolean, stepMs = 0): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await r.clock.advance(stepMs);
    await new Promise((res) => setTimeout(res, 5));
  }
}

async function stopAll(...rigs: Rig[]): Promise<void> {
  for (const r of rigs) await r.loop.stop();
}

test('drop until connected, then the full table; later changes are incremental and reach the same table', async () => {
  const r = rig();
  r.loop.start();
  await r.clock.advance(0);
  expect(r.loop.floor).toBe('disconnected');
  expect(r.nft.dump()).toContain('policy drop;');
  expect(r.nft.dump()).not.toContain('vmap');
  const steps = [
    [policy('a', '203.0.113.0/24', 443)],
    [policy('a', '203.0.113.0/24', 443), policy('b', '203.0.113.10/32', 8000)],
    [policy('b', '203.0.113.10/32', 8005), policy('c', '198.51.100.0/24', 53)],
    [policy('c', '198.51.100.0/24', 53)],
  ];
  const modes: string[] = [];
  for (const s of steps) {
    r.want = compiled(s);
    r.loop.request();
    await r.clock.advance(200);
    modes.push(r.loop.applier.lastMode!);
    expect(await r.loop.applier.verify()).toBe('ok'); // stale chains waiting for cleanup are expected
  }
  expect(modes).toEqual(['full', 'incremental', 'incremental', 'incremental']);
  expect(r.loop.applier.staleCount).toBeGreaterThan(0);
  await r.clock.advance(10_000); // the periodic run cleans up
  expect(r.loop.applier.staleCount).toBe(0);
  expect(r.nft.dump()).toBe(fresh(r.want!.table));
  await stopAll(r);
});

test('requests during an apply coalesce into one more run; no two nft calls ever overlap', async () => {
  const r = rig();
  r.loop.start();
  await r.clock.advance(0);
  r.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  const held = r.nft.hold('apply');
  r.loop.request();
  await r.clock.advance(0);
  await held.entered;
  for (let i = 0; i < 20; i++) {
    r.want = compiled([policy('a', '203.0.113.0/24', 443), policy(`p${i}`, '203.0.113.10/32', 9000 + i)]);
    r.loop.request();
    await r.clock.advance(5);
  }
  await r.clock.advance(15_000); // also past the periodic verification
  expect(applies(r.nft)).toBe(2); // the disconnected one, and the held one: nothing else reached nft
  held();
  await r.clock.advance(1000);
  expect(applies(r.nft)).toBe(3); // disconnected, the held one, one for all twenty changes
  expect(r.nft.dump()).toContain('p19');
  expect(r.nft.maxInFlight).toBe(1);
  await stopAll(r);
});

test('a drift verification never interleaves with an apply', async () => {
  const r = rig();
  r.loop.start();
  r.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  await r.clock.advance(200);
  r.want = compiled([policy('a', '203.0.113.0/24', 443), policy('b', '203.0.113.10/32', 8000)]);
  const held = r.nft.hold('apply');
  r.loop.request();
  await r.clock.advance(0);
  await held.entered;
  const listsBefore = r.nft.calls.filter((c) => c.method === 'list').length;
  await r.clock.advance(30_000); // three periodic checks would be due
  expect(r.nft.calls.filter((c) => c.method === 'list').length).toBe(listsBefore);
  held();
  await r.clock.advance(10_000);
  expect(r.nft.calls.filter((c) => c.method === 'list').length).toBeGreaterThan(listsBefore);
  expect(r.nft.maxInFlight).toBe(1);
  expect(await r.loop.applier.verify()).toBe('ok');
  await stopAll(r);
});

test('failures back off with jitter whatever triggers them, and the next success is a full apply', async () => {
  const r = rig();
  r.loop.start();
  r.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  await r.clock.advance(200);
  for (let i = 0; i < 4; i++) r.nft.failNext('apply');
  r.want = compiled([policy('a', '203.0.113.0/24', 443), policy('b', '203.0.113.10/32', 8000)]);
  r.loop.request();
  await r.clock.advance(0);
  const failedAt = r.clock.now();
  // a watch event every 50 ms: the failing apply is not retried at that pace
  for (let i = 0; i < 20; i++) {
    r.loop.request();
    await r.clock.advance(50);
  }
  const attempts = r.nft.calls.filter((c) => c.method === 'apply' && c.at >= 0).length;
  expect(attempts).toBe(3); // disconnected, first full, the failing one: no retry within 1 s
  await r.clock.advance(60_000);
  const tries = r.logs.filter((l) => l.msg === 'apply failed; the previous ruleset stays in the kernel').length;
  expect(tries).toBe(0); // the loop itself does not log apply failures: the agent's observer does
  expect(r.loop.failures).toBe(0);
  expect(r.nft.dump()).toContain('cwnp-e-');
  expect(r.loop.applier.lastMode).toBe('full');
  expect(r.clock.now() - failedAt).toBeGreaterThan(1100 + 2200 + 4400 + 8800 - 1);
  await stopAll(r);
});

test('drift is repaired within the interval; tampering after an incremental apply is never adopted', async () => {
  const r = rig();
  r.loop.start();
  r.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  await r.clock.advance(200);
  r.want = compiled([policy('a', '203.0.113.0/24', 443), policy('b', '203.0.113.10/32', 8000)]);
  r.loop.request();
  await r.clock.advance(200);
  expect(r.loop.applier.lastMode).toBe('incremental');
  // someone inserts an accept-all rule right after our incremental update
  r.nft.seed({ ops: [{ verb: 'add', kind: 'rule', table: TABLE, chain: 'forward', rule: { match: [], statement: { kind: 'accept' } } }] });
  expect(await r.loop.applier.verify()).toBe('drifted');
  await r.clock.advance(10_000);
  expect(r.logs.some((l) => l.msg === 'the kernel no longer holds the applied ruleset; repairing')).toBe(true);
  expect(r.nft.dump()).toBe(fresh(r.want!.table));
  expect(await r.loop.applier.verify()).toBe('ok');
  await stopAll(r);
});

test('the full verification stretches out as it grows costly; the cheap check still repairs a deleted table every interval', async () => {
  const r = rig();
  r.loop.start();
  r.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  await r.clock.advance(200);
  const count = (m: string): number => r.nft.calls.filter((c) => c.method === m).length;
  // a full listing costs 1 s (10,000 policies): with a 1 % share it runs at most every 100 s
  r.nft.delay = async (m) => {
    if (m === 'list') r.clock.spend(1000);
    await Promise.resolve();
  };
  await r.clock.advance(10_000);
  expect(count('list')).toBe(1);
  expect(r.loop.fullVerifyEveryMs).toBe(100_000);
  const chainsBefore = count('chains');
  await r.clock.advance(50_000);
  expect(count('list')).toBe(1); // five intervals: the cheap check only
  expect(count('chains') - chainsBefore).toBeGreaterThanOrEqual(4);
  // an accept-all rule is not a chain change: found by the next full verification, within 100 s
  r.nft.seed({ ops: [{ verb: 'add', kind: 'rule', table: TABLE, chain: 'forward', rule: { match: [], statement: { kind: 'accept' } } }] });
  await r.clock.advance(60_000);
  expect(count('list')).toBe(2);
  expect(r.nft.dump()).toBe(fresh(r.want.table));
  // the table deleted: repaired at the next interval, without a full listing
  r.nft.seed({ ops: [{ verb: 'delete', kind: 'table', table: TABLE }] });
  await r.clock.advance(10_000);
  expect(r.nft.dump()).toBe(fresh(r.want.table));
  expect(count('list')).toBe(2);
  await stopAll(r);
});

test('a full verification that took very long still runs again within 5 minutes', async () => {
  const r = rig();
  r.loop.start();
  r.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  await r.clock.advance(200);
  const lists = (): number => r.nft.calls.filter((c) => c.method === 'list').length;
  let slow = true; // the first one, at a busy start: 30 s
  r.nft.delay = async (m) => {
    if (m === 'list' && slow) {
      r.clock.spend(30_000);
      slow = false;
    }
    await Promise.resolve();
  };
  await r.clock.advance(10_000);
  expect(lists()).toBe(1);
  expect(r.loop.fullVerifyEveryMs).toBe(300_000); // not 3,000 s
  r.nft.seed({ ops: [{ verb: 'add', kind: 'rule', table: TABLE, chain: 'forward', rule: { match: [], statement: { kind: 'accept' } } }] });
  await r.clock.advance(300_000);
  expect(lists()).toBe(2);
  expect(r.nft.dump()).toBe(fresh(r.want.table));
  await stopAll(r);
});

test('a deleted table is restored even while the sources are out of contact', async () => {
  const r = rig();
  r.loop.start();
  r.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  await r.clock.advance(200);
  const enforced = r.want.table;
  r.want = undefined; // lost contact
  r.nft.seed({ ops: [{ verb: 'delete', kind: 'table', table: TABLE }] });
  await r.clock.advance(10_000);
  expect(r.nft.dump()).toBe(fresh(enforced));
  await stopAll(r);
});

function stateDir(): string {
  return path.join(mkdtempSync(path.join(tmpdir(), 'fwa-loop-')), 'state');
}

/** Dies before any background write lands: only the write-ahead records reach the disk. */
class KilledStore extends StateStore {
  override async saveApplied(): Promise<void> {
    throw new Error('killed before persisting');
  }
}

test('a restart right after an incremental change keeps the table (no drop window)', async () => {
  const dir = stateDir();
  const nft = new FakeNft();
  const a = rig({ nft, store: new KilledStore(dir) });
  a.loop.start();
  a.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  await until(a, () => a.loop.connected);
  a.want = compiled([policy('a', '203.0.113.0/24', 443), policy('b', '203.0.113.10/32', 8000)]);
  a.loop.request();
  await until(a, () => a.loop.applier.lastMode === 'incremental', 50);
  // killed before anything else is written: only the write-ahead record describes the kernel
  await a.loop.stop();
  const before = nft.dump();
  const b = rig({ nft, store: new StateStore(dir) });
  b.loop.start();
  await until(b, () => b.loop.floor !== 'none');
  expect(b.loop.floor).toBe('kept');
  expect(nft.dump()).toBe(before);
  expect(b.logs.map((l) => l.msg)).toContain('the kernel holds the ruleset applied before the restart; keeping it');
  await stopAll(b);
});

test('a restart keeping exactly the wanted table sends nothing; later changes are incremental against it', async () => {
  const dir = stateDir();
  const nft = new FakeNft();
  const a = rig({ nft, store: new StateStore(dir) });
  a.loop.start();
  const want = [policy('a', '203.0.113.0/24', 443)];
  a.want = compiled(want);
  await until(a, () => a.loop.connected);
  await a.loop.stop();
  await a.loop.flushed();
  const before = nft.dump();
  const b = rig({ nft, store: new StateStore(dir) });
  b.want = compiled(want);
  const sent = applies(nft);
  b.loop.start();
  await until(b, () => b.loop.connected);
  expect(b.loop.floor).toBe('kept');
  expect(applies(nft)).toBe(sent); // no drop ruleset, no full load
  expect(nft.dump()).toBe(before);
  b.want = compiled([...want, policy('b', '203.0.113.10/32', 8000)]);
  b.loop.request();
  await until(b, () => applies(nft) > sent, 50);
  expect(b.loop.applier.lastMode).toBe('incremental');
  expect(nft.dump()).toBe(fresh(b.want.table));
  // a legacy table back at policy drop is still relaxed with a full apply after a restart
  await b.loop.stop();
  await b.loop.flushed();
  nft.seed({ ops: [{ verb: 'add', kind: 'table', table: { family: 'inet', name: 'metal' } }, { verb: 'add', kind: 'chain', table: { family: 'inet', name: 'metal' }, name: 'forward', base: { type: 'filter', hook: 'forward', priority: 0, policy: 'drop' } }] });
  const c = rig({ nft, store: new StateStore(dir) });
  c.want = b.want;
  c.loop.start();
  await until(c, () => c.loop.connected);
  expect(c.loop.floor).toBe('kept');
  expect(c.loop.applier.lastMode).toBe('full');
  expect((await nft.baseChain({ family: 'inet', name: 'metal' }, 'forward'))!.policy).toBe('accept');
  await stopAll(c);
});

test('a restart finding a table it did not apply drops', async () => {
  const dir = stateDir();
  const nft = new FakeNft();
  const a = rig({ nft, store: new StateStore(dir) });
  a.loop.start();
  a.want = compiled([policy('a', '203.0.113.0/24', 443)]);
  await until(a, () => a.loop.connected);
  await a.loop.stop();
  await a.loop.flushed();
  nft.seed({ ops: [{ verb: 'add', kind: 'rule', table: TABLE, chain: 'forward', rule: { match: [], statement: { kind: 'accept' } } }] });
  const b = rig({ nft, store: new StateStore(dir) });
  b.loop.start();
  await until(b, () => b.loop.floor !== 'none');
  expect(b.loop.floor).toBe('disconnected');
  expect(nft.dump()).not.toContain('vmap');
  await stopAll(b);
});

describe('the drop ruleset never depends on the state directory', () => {
  test.each([
    ['a file where the directory should be', (dir: string): void => writeFileSync(dir, 'not a directory')],
    ['a truncated state file', (dir: string): void => {
      require('node:fs').mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'state.json'), '{"version": 2, "fingerp');
    }],
  ])('%s', async (_what, prepare) => {
    const dir = stateDir();
    prepare(dir);
    const r = rig({ store: new StateStore(dir) });
    r.loop.start();
    await until(r, () => r.loop.floor !== 'none');
    expect(r.loop.floor).toBe('disconnected');
    expect(r.nft.dump()).toContain('policy drop;');
    await stopAll(r);
  });

  test('--restore-last-known-good meeting a truncated file drops instead', async () => {
    const dir = stateDir();
    require('node:fs').mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'last-known-good.nft'), 'table inet firewall {\n\tchain forward {\n\t\ttype filt');
    const nft = new FakeNft(); // the fake refuses raw text, like nft refuses a truncated file
    const r = rig({ nft, store: new StateStore(dir), restoreLastKnownGood: true });
    r.loop.start();
    await until(r, () => r.loop.floor !== 'none');
    expect(r.loop.floor).toBe('disconnected');
    expect(nft.dump()).toContain('policy drop;');
    expect(r.logs.map((l) => l.msg)).toContain('could not restore the last-known-good ruleset; dropping until connected');
    await stopAll(r);
  });

  test('nft failing at start: the drop ruleset is retried until it is in', async () => {
    const r = rig();
    r.nft.failNext('apply');
    r.nft.failNext('apply');
    r.loop.start();
    await r.clock.advance(0);
    expect(r.nft.tables()).toEqual([]);
    await r.clock.advance(5000);
    expect(r.loop.floor).toBe('disconnected');
    expect(r.nft.dump()).toContain('policy drop;');
    await stopAll(r);
  });
});
