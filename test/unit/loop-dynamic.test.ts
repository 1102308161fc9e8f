/**
 * Dynamic (FQDN) set elements through the sync loop: written between runs, never alongside one,
 * batched, dropped for sets that are gone, and carried by a full apply with their remaining time.
 */
import { Compiled } from '../../src/compile/compile';
import { FqdnState } from '../../src/dns/fqdn-state';
import { FakeNft } from '../../src/nft/fake';
import { jsonLogger } from '../../src/report/log';
import { FakeClock } from '../../src/sync/clock';
import { Desired, SyncLoop } from '../../src/sync/loop';
import { compileObjects, cwnp, exampleFirewall } from '../helpers';

const TABLE = { family: 'inet', name: 'firewall' };
const FQDN = cwnp('fqdn', { egress: [{ toFQDNs: [{ matchName: 'github.com' }], ports: [{ port: 443 }] }] });
const OTHER = cwnp('other', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 80 }] }] });

function compiled(...objs: object[]): Compiled {
  return compileObjects([exampleFirewall(), ...(objs as never[])]).compiled;
}

function rig(): { nft: FakeNft; clock: FakeClock; loop: SyncLoop; state: FqdnState; want: { c: Compiled | undefined } } {
  const nft = new FakeNft();
  const clock = new FakeClock();
  const state = new FqdnState(clock);
  const want = { c: undefined as Compiled | undefined };
  const loop = new SyncLoop({
    nft,
    clock,
    log: jsonLogger(() => undefined, 'error'),
    runner: { random: () => 0.5 },
    dynamicElements: (set) => state.elements(set),
    desired: (): Desired => (want.c ? { kind: 'connected', compiled: want.c, mode: 'baseline', dryRun: false, compileMs: 0 } : { kind: 'wait', reason: 'no' }),
    observer: { enforced: (d) => state.setTargets(d.compiled.fqdn) },
  });
  return { nft, clock, loop, state, want };
}

function setElements(nft: FakeNft, set: string): string[] {
  return (nft.table(TABLE)?.sets.find((s) => s.name === set)?.elements ?? []).map((e) => `${e.key[0]} ${e.timeout ?? '-'}`);
}

/** What the DNS service does for one answer. */
async function answer(r: ReturnType<typeof rig>, address: string, ttl = 300): Promise<void> {
  const plan = r.state.plan(['github.com'], [{ address, family: 4, ttl }]);
  const writes = plan.writes.map((w) => ({ set: w.set, refresh: w.timeoutS ? [{ address: w.address, timeoutS: w.timeoutS }] : [], remove: w.timeoutS ? [] : [w.address] }));
  await r.loop.writeDynamic(writes, (live) => r.state.commit({ ...plan, writes: plan.writes.filter((w) => live.has(w.set)) }));
}

test('answers reach the kernel set; a full apply carries them with their remaining timeout', async () => {
  const r = rig();
  r.want.c = compiled(FQDN);
  r.loop.start();
  await r.clock.advance(0);
  const set = r.want.c.fqdn[0]!.sets[4];
  await answer(r, '203.0.113.10');
  expect(setElements(r.nft, set)).toEqual(['203.0.113.10 375']);
  await r.clock.advance(100_000);
  // a change that needs a full apply (the set list changes): the element survives with 275 s left
  r.want.c = compiled(FQDN, cwnp('fqdn2', { egress: [{ toFQDNs: [{ matchName: 'x.example' }] }] }));
  r.loop.request();
  await r.clock.advance(200);
  expect(r.loop.applier.lastMode).toBe('full');
  expect(setElements(r.nft, set)).toEqual(['203.0.113.10 275']);
  expect(await r.loop.applier.verify()).toBe('ok'); // dynamic elements are not drift
  await r.loop.stop();
});

test('writes to a set whose policy is gone are dropped, not refused', async () => {
  const r = rig();
  r.want.c = compiled(FQDN);
  r.loop.start();
  await r.clock.advance(0);
  const plan = r.state.plan(['github.com'], [{ address: '203.0.113.10', family: 4, ttl: 300 }]);
  r.want.c = compiled(OTHER);
  r.loop.request();
  await r.clock.advance(200);
  let live: ReadonlySet<string> | undefined;
  await r.loop.writeDynamic([{ set: plan.writes[0]!.set, refresh: [{ address: '203.0.113.10', timeoutS: 60 }], remove: [] }], (l) => (live = l));
  expect(live!.size).toBe(0);
  expect(r.nft.table(TABLE)!.sets.some((s) => s.flags.includes('timeout'))).toBe(false);
  await r.loop.stop();
});

test('dynamic writes wait for a run in progress, batch while waiting, and never overlap nft calls', async () => {
  const r = rig();
  r.want.c = compiled(FQDN);
  r.loop.start();
  await r.clock.advance(0);
  const set = r.want.c.fqdn[0]!.sets[4];
  r.want.c = compiled(FQDN, OTHER);
  const held = r.nft.hold('apply');
  r.loop.request();
  await r.clock.advance(0);
  await held.entered;
  const before = r.nft.calls.length;
  const writes = ['203.0.113.1', '203.0.113.2', '203.0.113.3'].map((a) => answer(r, a));
  await r.clock.advance(0);
  expect(r.nft.calls.length).toBe(before); // nothing sent while the run holds the kernel
  held();
  await Promise.all(writes);
  await r.clock.advance(0);
  expect(r.nft.maxInFlight).toBe(1);
  const applies = r.nft.calls.slice(before).filter((c) => c.method === 'apply');
  expect(applies.length).toBe(1); // the three answers went in one transaction
  expect(setElements(r.nft, set).sort()).toEqual(['203.0.113.1 375', '203.0.113.2 375', '203.0.113.3 375']);
  await r.loop.stop();
});

test('a refused write rejects the waiters, commits nothing and asks for a full apply', async () => {
  const r = rig();
  r.want.c = compiled(FQDN);
  r.loop.start();
  await r.clock.advance(0);
  r.nft.failNext('apply', new Error('kernel says no'));
  await expect(answer(r, '203.0.113.10')).rejects.toThrow('kernel says no');
  expect(r.state.addressCount).toBe(0);
  await r.clock.advance(2000);
  expect(r.loop.applier.lastMode).toBe('full');
  await r.loop.stop();
});

test('a drift check (a listing of the whole table) does not hold up DNS answers', async () => {
  const r = rig();
  r.want.c = compiled(FQDN);
  r.loop.setInterval(1000);
  r.loop.start();
  await r.clock.advance(0);
  const held = r.nft.hold('list');
  await r.clock.advance(1000); // the periodic run starts its verification and waits in the listing
  await held.entered;
  await answer(r, '203.0.113.10'); // written while the listing is still open
  expect(setElements(r.nft, r.want.c.fqdn[0]!.sets[4])).toEqual(['203.0.113.10 375']);
  held();
  await r.clock.advance(0);
  expect(await r.loop.applier.verify()).toBe('ok');
  await r.loop.stop();
});
