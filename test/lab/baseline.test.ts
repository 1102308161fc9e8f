/**
 * Baseline mode in a real kernel: the example landscape applied to the lab firewall, proven with
 * TCP and UDP traffic over IPv4 and IPv6.
 */
import path from 'node:path';
import { EXAMPLES, renderPaths } from '../helpers';
import { Lab, tcp, udp } from './lab';

let lab: Lab;

beforeAll(async () => {
  lab = await Lab.create();
  const { text } = await renderPaths([path.join(EXAMPLES, 'baseline')]);
  await lab.apply(text);
});

afterAll(async () => {
  await lab?.destroy();
});

describe('egress from the node network', () => {
  test('a listed destination and port is open, others on the same host are not', async () => {
    const r = await lab.reachable('worker', [tcp('203.0.113.10', 443), tcp('203.0.113.10', 80), tcp('203.0.113.10', 22)]);
    expect(r).toEqual([true, false, false]);
  });

  test('except carves a hole out of the allowed cidr', async () => {
    const r = await lab.reachable('worker', [tcp('203.0.113.30', 443), tcp('203.0.113.20', 443)]);
    expect(r).toEqual([true, false]);
  });

  test('port ranges include both ends and nothing beyond', async () => {
    const r = await lab.reachable('worker', [tcp('203.0.113.10', 8000), tcp('203.0.113.10', 8005), tcp('203.0.113.10', 8010), tcp('203.0.113.10', 8011)]);
    expect(r).toEqual([true, true, true, false]);
  });

  test('UDP and TCP are told apart', async () => {
    const r = await lab.reachable('worker', [udp('198.51.100.53', 53), tcp('198.51.100.53', 53), udp('198.51.100.53', 5000), udp('198.51.100.10', 53)]);
    expect(r).toEqual([true, true, false, false]);
  });

  test('no ports means every port and protocol', async () => {
    const r = await lab.reachable('worker', [tcp('198.51.100.5', 22), tcp('198.51.100.5', 9000), udp('198.51.100.5', 5000)]);
    expect(r).toEqual([true, true, true]);
    const ping = await lab.run('worker', ['ping', '-c', '1', '-W', '1', '198.51.100.5']);
    expect(ping.code).toBe(0);
  });

  test('no destination means every destination, on the listed port only', async () => {
    const r = await lab.reachable('worker', [udp('203.0.113.200', 123), udp('198.51.100.10', 123), udp('203.0.113.200', 5000)]);
    expect(r).toEqual([true, true, false]);
  });

  test('an unlisted destination is dropped', async () => {
    const r = await lab.reachable('worker', [tcp('198.51.100.10', 443), udp('203.0.113.100', 53)]);
    expect(r).toEqual([false, false]);
    const ping = await lab.run('worker', ['ping', '-c', '1', '-W', '1', '203.0.113.10']);
    expect(ping.code).not.toBe(0);
  });

  test('sources outside the node network are not the cluster and get nothing', async () => {
    const r = await lab.reachable('worker', [tcp('203.0.113.10', 443, { source: '192.0.2.150' })]);
    expect(r).toEqual([false]);
  });

  test('IPv6 egress follows the same policies', async () => {
    const r = await lab.reachable('worker', [
      tcp('2001:db8:203::10', 443),
      tcp('2001:db8:203::10', 80),
      udp('2001:db8:198::53', 53),
      udp('2001:db8:198::10', 53),
      udp('2001:db8:198::10', 123),
    ]);
    expect(r).toEqual([true, false, true, false, true]);
  });

  test('traffic to a nat network is masqueraded, to a non-nat network it keeps the node address', async () => {
    const [inet, svc, inet6] = await lab.probe('worker', [tcp('203.0.113.10', 443), udp('198.51.100.53', 53), tcp('2001:db8:203::10', 443)]);
    expect(inet).toEqual({ ok: true, peer: '203.0.113.1' });
    expect(svc).toEqual({ ok: true, peer: '192.0.2.10' });
    expect(inet6).toEqual({ ok: true, peer: '2001:db8:203::1' });
  });
});

describe('ingress into the node network', () => {
  test('a policy opens a port from listed sources only', async () => {
    const fromInside = await lab.reachable('internet', [tcp('192.0.2.10', 22, { source: '203.0.113.100' })]);
    const fromOutside = await lab.reachable('internet', [tcp('192.0.2.10', 22, { source: '203.0.113.200' })]);
    const otherPort = await lab.reachable('internet', [tcp('192.0.2.10', 443, { source: '203.0.113.100' })]);
    expect([fromInside, fromOutside, otherPort]).toEqual([[true], [false], [false]]);
  });

  test('IPv6 ingress sources are matched by prefix', async () => {
    const inside = await lab.reachable('internet', [tcp('2001:db8:1::10', 22, { source: '2001:db8:203::20' })]);
    const outside = await lab.reachable('internet', [tcp('2001:db8:1::10', 22, { source: '2001:db8:203::ff:10' })]);
    expect([inside, outside]).toEqual([[true], [false]]);
  });

  test('a LoadBalancer Service is reachable on its ports from its source ranges only', async () => {
    const ok = await lab.probe('internet', [tcp('192.0.2.200', 443, { source: '203.0.113.10' }), tcp('192.0.2.200', 80, { source: '203.0.113.10' })]);
    expect(ok.map((r) => r.ok)).toEqual([true, true]);
    expect(ok[0]!.peer).toBe('203.0.113.10');
    const denied = await lab.reachable('internet', [
      tcp('192.0.2.200', 443, { source: '203.0.113.100' }),
      tcp('192.0.2.200', 8000, { source: '203.0.113.10' }),
      tcp('192.0.2.10', 443, { source: '203.0.113.10' }),
    ]);
    expect(denied).toEqual([false, false, false]);
  });
});

describe('the ruleset in the kernel', () => {
  test('per-policy counters count accepted connections', async () => {
    await lab.reachable('worker', [tcp('203.0.113.10', 8000)]);
    const listing = (await lab.nft.listTable('inet', 'firewall'))!;
    const line = listing.split('\n').find((l) => l.includes('accept traffic for np allow-app-ports'))!;
    expect(Number(/packets (\d+)/.exec(line)![1])).toBeGreaterThan(0);
    const dropped = /counter drop_total \{\s*packets (\d+)/.exec(listing);
    expect(Number(dropped![1])).toBeGreaterThan(0);
  });

  test('the firewall itself is not filtered', async () => {
    const r = await lab.reachable('fw', [tcp('203.0.113.10', 9000), udp('198.51.100.10', 5000)]);
    expect(r).toEqual([true, true]);
  });
});
