/**
 * States and transactions in a real kernel: the disconnected ruleset forwards nothing new but keeps
 * established flows and the firewall's own traffic; applying is idempotent and a new transaction
 * replaces the old one atomically.
 */
import path from 'node:path';
import { EXAMPLES, compileObjects, cwnp, exampleFirewall, renderPaths } from '../helpers';
import { Lab, tcp, udp } from './lab';

let lab: Lab;
let connected: string;
let disconnected: string;

beforeAll(async () => {
  lab = await Lab.create();
  connected = (await renderPaths([path.join(EXAMPLES, 'baseline')])).text;
  disconnected = (await renderPaths([path.join(EXAMPLES, 'baseline')], { state: 'disconnected' })).text;
});

afterAll(async () => {
  await lab?.destroy();
});

test('disconnected: nothing new is forwarded, in any direction or family', async () => {
  await lab.apply(disconnected);
  const out = await lab.reachable('worker', [tcp('203.0.113.10', 443), udp('198.51.100.53', 53), tcp('2001:db8:203::10', 443)]);
  const inbound = await lab.reachable('internet', [tcp('192.0.2.200', 443, { source: '203.0.113.10' }), tcp('192.0.2.10', 22)]);
  expect([...out, ...inbound]).toEqual([false, false, false, false, false]);
  const listing = (await lab.nft.listTable('inet', 'firewall'))!;
  expect(Number(/counter drop_total \{\s*packets (\d+)/.exec(listing)![1])).toBeGreaterThan(0);
});

test("disconnected: the firewall's own traffic keeps working", async () => {
  await lab.apply(disconnected);
  expect(await lab.reachable('fw', [tcp('203.0.113.10', 443), udp('198.51.100.53', 53)])).toEqual([true, true]);
});

test('an established flow survives the switch to disconnected, new ones do not start', async () => {
  await lab.apply(connected);
  const hold = lab.probe('worker', [tcp('203.0.113.10', 443, { hold: { durationMs: 2000, intervalMs: 100 } })]);
  await new Promise((r) => setTimeout(r, 700));
  await lab.apply(disconnected);
  const fresh = await lab.reachable('worker', [tcp('203.0.113.10', 443)]);
  const [held] = await hold;
  expect(fresh).toEqual([false]);
  expect(held!.ok).toBe(true);
  expect(held!.sent).toBeGreaterThanOrEqual(15);
  // every line sent was echoed back, before and after the switch (allow the one in flight at the end)
  expect(held!.echoes).toBeGreaterThanOrEqual(held!.sent! - 1);
});

test('applying the same transaction twice works and changes nothing', async () => {
  await lab.apply(connected);
  const first = await lab.nft.listTable('inet', 'firewall', { stateless: true });
  await lab.apply(connected);
  const second = await lab.nft.listTable('inet', 'firewall', { stateless: true });
  expect(second).toEqual(first);
  expect(await lab.reachable('worker', [tcp('203.0.113.10', 8000)])).toEqual([true]);
});

test('a new transaction replaces the old one: removed policies stop, added ones start', async () => {
  await lab.apply(connected);
  expect(await lab.reachable('worker', [tcp('203.0.113.10', 8000), tcp('203.0.113.10', 9000)])).toEqual([true, false]);
  const next = compileObjects([
    exampleFirewall(),
    cwnp('allow-9000', { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 9000 }] }] }),
  ]).text;
  await lab.apply(next);
  expect(await lab.reachable('worker', [tcp('203.0.113.10', 8000), tcp('203.0.113.10', 9000)])).toEqual([false, true]);
  const listing = (await lab.nft.listTable('inet', 'firewall'))!;
  expect(listing).not.toContain('allow-app-ports');
});

test('a transaction nft refuses leaves the previous ruleset in place', async () => {
  await lab.apply(connected);
  const before = await lab.nft.listTable('inet', 'firewall', { stateless: true });
  const broken = `${connected}\nadd rule inet firewall forward counter jump does-not-exist\n`;
  await expect(lab.apply(broken)).rejects.toThrow(/nft apply failed/);
  expect(await lab.nft.listTable('inet', 'firewall', { stateless: true })).toEqual(before);
  expect(await lab.reachable('worker', [tcp('203.0.113.10', 8000), tcp('203.0.113.10', 9000)])).toEqual([true, false]);
});

test('tables the agent does not own are left alone', async () => {
  await lab.run('fw', ['nft', 'add table inet other; add chain inet other c; add rule inet other c counter']);
  await lab.apply(connected);
  await lab.apply(disconnected);
  const other = await lab.nft.listTable('inet', 'other');
  expect(other).toContain('chain c');
  await lab.run('fw', ['nft', 'delete table inet other']);
});
