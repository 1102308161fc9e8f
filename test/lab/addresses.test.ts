/**
 * Egress SNAT addresses in a real kernel: the AddressReconciler with the real `ip`, in a network
 * namespace of its own holding the internet network's interface vlan104009 (a veth; the peer end
 * stays in the namespace, no traffic is needed to check addresses).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { IpRoute } from '../../src/host/iproute';
import { AddressReconciler } from '../../src/host/reconcile';
import { Obj } from '../../src/model/fields';
import { FirewallConfig, parseFirewall } from '../../src/model/firewall';
import { exec } from '../../src/nft/runner';
import { jsonLogger } from '../../src/report/log';
import { exampleFirewall } from '../helpers';

const NS = `fwa-${process.pid}-${randomBytes(2).toString('hex')}-addr`;
const IF = 'vlan104009';
const log = jsonLogger(() => undefined);
let stateDir: string;
let created = false;

async function must(argv: string[]): Promise<string> {
  const r = await exec(argv, undefined, 30_000);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** What the kernel holds on IF, as `addr/len` (link-local left out), checked independently of IpRoute. */
async function onInterface(): Promise<string[]> {
  const links = JSON.parse(await must(['ip', '-n', NS, '-j', 'addr', 'show', 'dev', IF])) as {
    addr_info: { local: string; prefixlen: number; scope: string; tentative?: boolean }[];
  }[];
  return links[0]!.addr_info.filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}${a.tentative ? ' tentative' : ''}`).sort();
}

/** The example Firewall (internet: vrf 104009, allocation ips 203.0.113.1 and 2001:db8:203::1). */
function firewall(egressRules: { networkID: string; ips: string[] }[]): FirewallConfig {
  const fw = exampleFirewall();
  (fw.spec as Obj).egressRules = egressRules;
  const r = parseFirewall(fw);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.firewall;
}

const internet = (...ips: string[]) => firewall(ips.length ? [{ networkID: 'internet', ips }] : []);
const reconciler = (dryRun = false) => new AddressReconciler({ ip: new IpRoute(['ip', 'netns', 'exec', NS]), stateDir, log, dryRun });

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces)');
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'fwa-addr-state-'));
  await must(['ip', 'netns', 'add', NS]);
  created = true;
  await must(['ip', '-n', NS, 'link', 'add', IF, 'type', 'veth', 'peer', 'name', 'peer0']);
  await must(['ip', '-n', NS, 'addr', 'add', '203.0.113.1/24', 'dev', IF]);
  await must(['ip', '-n', NS, 'addr', 'add', '2001:db8:203::1/64', 'dev', IF, 'nodad']);
  await must(['ip', '-n', NS, 'link', 'set', IF, 'up']);
  await must(['ip', '-n', NS, 'link', 'set', 'peer0', 'up']);
  // Someone else's address: it must survive everything below.
  await must(['ip', '-n', NS, 'addr', 'add', '203.0.113.77/32', 'dev', IF]);
});

afterAll(async () => {
  if (created) await exec(['ip', 'netns', 'del', NS]);
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

const BASE = ['2001:db8:203::1/64', '203.0.113.1/24', '203.0.113.77/32'];

test('egressRules addresses are put on vlan<vrf> as host addresses, IPv6 usable at once; repeating changes nothing', async () => {
  const rec = reconciler();
  expect(await rec.reconcile(internet('203.0.113.50', '2001:db8:203::50'))).toEqual({ added: 2, removed: 0, errors: [] });
  expect(await onInterface()).toEqual([...BASE, '2001:db8:203::50/128', '203.0.113.50/32'].sort());
  expect(await rec.reconcile(internet('203.0.113.50', '2001:db8:203::50'))).toEqual({ added: 0, removed: 0, errors: [] });
  expect(JSON.parse(await readFile(path.join(stateDir, 'addresses.json'), 'utf8'))).toEqual({
    version: 1,
    owned: [
      { ifname: IF, address: '2001:db8:203::50' },
      { ifname: IF, address: '203.0.113.50' },
    ],
  });
});

test('removal from egressRules removes it; a manually added address survives being wanted and unwanted', async () => {
  const rec = reconciler();
  expect(await rec.reconcile(internet('203.0.113.50', '203.0.113.77'))).toEqual({ added: 0, removed: 1, errors: [] });
  expect(await onInterface()).toEqual([...BASE, '203.0.113.50/32'].sort());
  expect(await rec.reconcile(internet('203.0.113.50'))).toEqual({ added: 0, removed: 0, errors: [] });
  expect(await onInterface()).toContain('203.0.113.77/32');
});

test('an address of ours that someone removed is put back while wanted', async () => {
  await must(['ip', '-n', NS, 'addr', 'del', '203.0.113.50/32', 'dev', IF]);
  expect(await reconciler().reconcile(internet('203.0.113.50'))).toEqual({ added: 1, removed: 0, errors: [] });
  expect(await onInterface()).toContain('203.0.113.50/32');
});

test('dry run changes nothing and records nothing', async () => {
  const before = await readFile(path.join(stateDir, 'addresses.json'), 'utf8');
  expect(await reconciler(true).reconcile(internet('203.0.113.60'))).toEqual({ added: 0, removed: 0, errors: [] });
  expect(await onInterface()).toEqual([...BASE, '203.0.113.50/32'].sort());
  expect(await readFile(path.join(stateDir, 'addresses.json'), 'utf8')).toBe(before);
});

test('after a restart (new reconciler, same state dir) it still knows what it owns', async () => {
  expect(await reconciler().reconcile(internet())).toEqual({ added: 0, removed: 1, errors: [] });
  expect(await onInterface()).toEqual(BASE);
});

test('the allocation ips are never removed, even when the record claims them', async () => {
  await writeFile(
    path.join(stateDir, 'addresses.json'),
    JSON.stringify({ version: 1, owned: [{ ifname: IF, address: '203.0.113.1' }, { ifname: IF, address: '2001:db8:203::1' }] }),
  );
  expect(await reconciler().reconcile(internet())).toEqual({ added: 0, removed: 0, errors: [] });
  expect(await onInterface()).toEqual(BASE);
});

test('a missing interface is an error naming it; the other interfaces are still reconciled', async () => {
  const fw = firewall([
    { networkID: 'partition-services', ips: ['198.51.100.50'] },
    { networkID: 'internet', ips: ['203.0.113.51'] },
  ]);
  const rec = reconciler();
  const r = await rec.reconcile(fw);
  expect(r.added).toBe(1);
  expect(r.errors).toHaveLength(1);
  expect(r.errors[0]).toMatch(/^vlan104010: .*vlan104010/);
  expect(rec.lastErrors).toEqual(r.errors);
  expect(await onInterface()).toEqual([...BASE, '203.0.113.51/32'].sort());
  expect(await reconciler().reconcile(internet())).toEqual({ added: 0, removed: 1, errors: [] });
  expect(await onInterface()).toEqual(BASE);
});
