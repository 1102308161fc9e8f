/**
 * Egress SNAT addresses: the planner's ownership rules, and the reconciler's record keeping,
 * serialization and error handling against a fake `ip`.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Family, IpAddress, parseAddress } from '../../src/model/address';
import { Obj } from '../../src/model/fields';
import { FirewallConfig, parseFirewall } from '../../src/model/firewall';
import { OwnedAddress, PresentAddress, planAddresses, protectedAddresses, wantedAddresses } from '../../src/host/addresses';
import { AddressOps, MissingInterfaceError } from '../../src/host/iproute';
import { AddressReconciler } from '../../src/host/reconcile';
import { jsonLogger } from '../../src/report/log';
import { exampleFirewall } from '../helpers';

function ip(text: string): IpAddress {
  const a = parseAddress(text);
  if (!a.ok) throw new Error(a.error);
  return a.value;
}

function firewall(egressRules: { networkID: string; ips: string[] }[], patch: Obj = {}): FirewallConfig {
  const fw = exampleFirewall();
  fw.spec = { ...(fw.spec as Obj), egressRules, ...patch };
  const r = parseFirewall(fw);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.firewall;
}

const present = (...list: string[]): PresentAddress[] =>
  list.map((t) => {
    const [address, len] = t.split('/');
    return { address: address!, prefixLen: Number(len) };
  });

const PROTECTED = new Set(['203.0.113.1', '2001:db8:203::1', '198.51.100.1']);

function plan(current: Record<string, PresentAddress[]>, wanted: Record<string, string[]>, owned: OwnedAddress[]) {
  return planAddresses({
    current: new Map(Object.entries(current)),
    wanted: new Map(Object.entries(wanted).map(([k, v]) => [k, v.map(ip)])),
    owned,
    protected: PROTECTED,
  });
}

describe('wantedAddresses', () => {
  test('every external network with egressRules, on vlan<vrf>, deduplicated, both families', () => {
    const fw = firewall([
      { networkID: 'internet', ips: ['203.0.113.50', '2001:db8:203::50', '203.0.113.50'] },
      { networkID: 'partition-services', ips: ['198.51.100.50'] },
      { networkID: 'internet', ips: ['203.0.113.51'] },
    ]);
    const w = wantedAddresses(fw);
    expect([...w.keys()].sort()).toEqual(['vlan104009', 'vlan104010']);
    expect(w.get('vlan104009')!.map((a) => [a.family, a.value])).toEqual([
      [4, ip('203.0.113.50').value],
      [6, ip('2001:db8:203::50').value],
      [4, ip('203.0.113.51').value],
    ]);
    expect(wantedAddresses(firewall([])).size).toBe(0);
  });

  test('protected addresses are every network\'s allocation ips', () => {
    expect([...protectedAddresses(firewall([]))].sort()).toEqual(['192.0.2.1', '198.51.100.1', '2001:db8:1::1', '2001:db8:203::1', '203.0.113.1']);
  });
});

describe('planAddresses', () => {
  test('adds what is missing as ours, IPv4 and IPv6', () => {
    const p = plan({ vlan104009: present('203.0.113.1/24') }, { vlan104009: ['203.0.113.50', '2001:db8:203::50'] }, []);
    expect(p.add).toEqual([
      { ifname: 'vlan104009', address: '203.0.113.50', family: 4 },
      { ifname: 'vlan104009', address: '2001:db8:203::50', family: 6 },
    ]);
    expect(p.remove).toEqual([]);
    expect(p.owned).toEqual([
      { ifname: 'vlan104009', address: '203.0.113.50' },
      { ifname: 'vlan104009', address: '2001:db8:203::50' },
    ]);
  });

  test('idempotent: present and ours stays ours, nothing to do', () => {
    const owned = [{ ifname: 'vlan104009', address: '203.0.113.50' }];
    const p = plan({ vlan104009: present('203.0.113.1/24', '203.0.113.50/32') }, { vlan104009: ['203.0.113.50'] }, owned);
    expect(p).toEqual({ add: [], remove: [], owned });
  });

  test('an address present before we wanted it is someone else\'s: not recorded, never removed', () => {
    const p1 = plan({ vlan104009: present('203.0.113.77/32') }, { vlan104009: ['203.0.113.77'] }, []);
    expect(p1).toEqual({ add: [], remove: [], owned: [] });
    // No longer wanted: still not removed.
    const p2 = plan({ vlan104009: present('203.0.113.77/32') }, {}, p1.owned);
    expect(p2).toEqual({ add: [], remove: [], owned: [] });
  });

  test('any prefix length counts as present', () => {
    const p = plan({ vlan104009: present('203.0.113.50/24', '2001:db8:203::50/64') }, { vlan104009: ['203.0.113.50', '2001:db8:203::50'] }, []);
    expect(p.add).toEqual([]);
  });

  test('removal from egressRules removes our address at its host length, IPv4 and IPv6', () => {
    const owned = [
      { ifname: 'vlan104009', address: '203.0.113.50' },
      { ifname: 'vlan104009', address: '2001:db8:203::50' },
      { ifname: 'vlan104009', address: '203.0.113.51' },
    ];
    const p = plan(
      { vlan104009: present('203.0.113.1/24', '203.0.113.50/32', '203.0.113.51/32', '2001:db8:203::50/128', '203.0.113.77/32') },
      { vlan104009: ['203.0.113.51'] },
      owned,
    );
    expect(p.add).toEqual([]);
    expect(p.remove).toEqual([
      { ifname: 'vlan104009', address: '203.0.113.50', prefixLen: 32 },
      { ifname: 'vlan104009', address: '2001:db8:203::50', prefixLen: 128 },
    ]);
    expect(p.owned).toEqual([{ ifname: 'vlan104009', address: '203.0.113.51' }]);
  });

  test('a protected allocation ip is never removed, even if we once added it', () => {
    const owned = [{ ifname: 'vlan104009', address: '203.0.113.1' }, { ifname: 'vlan104009', address: '2001:db8:203::1' }];
    const p = plan({ vlan104009: present('203.0.113.1/32', '2001:db8:203::1/128') }, {}, owned);
    expect(p).toEqual({ add: [], remove: [], owned: [] });
  });

  test('an owned address someone removed is added again while wanted', () => {
    const owned = [{ ifname: 'vlan104009', address: '203.0.113.50' }];
    const p = plan({ vlan104009: present('203.0.113.1/24') }, { vlan104009: ['203.0.113.50'] }, owned);
    expect(p.add).toEqual([{ ifname: 'vlan104009', address: '203.0.113.50', family: 4 }]);
    expect(p.owned).toEqual(owned);
  });

  test('an owned address that is gone and unwanted is forgotten', () => {
    const p = plan({ vlan104009: present('203.0.113.1/24') }, {}, [{ ifname: 'vlan104009', address: '203.0.113.50' }]);
    expect(p).toEqual({ add: [], remove: [], owned: [] });
  });

  test('an owned address someone replaced with another prefix length is theirs now', () => {
    const owned = [{ ifname: 'vlan104009', address: '203.0.113.50' }];
    expect(plan({ vlan104009: present('203.0.113.50/24') }, { vlan104009: ['203.0.113.50'] }, owned)).toEqual({ add: [], remove: [], owned: [] });
    expect(plan({ vlan104009: present('203.0.113.50/24') }, {}, owned)).toEqual({ add: [], remove: [], owned: [] });
  });

  test('several interfaces are planned independently', () => {
    const p = plan(
      { vlan104009: present('203.0.113.50/32'), vlan104010: present('198.51.100.1/24'), vlan104011: present('192.0.2.99/32') },
      { vlan104009: ['203.0.113.50'], vlan104010: ['198.51.100.50'] },
      [
        { ifname: 'vlan104009', address: '203.0.113.50' },
        { ifname: 'vlan104011', address: '192.0.2.99' },
      ],
    );
    expect(p.add).toEqual([{ ifname: 'vlan104010', address: '198.51.100.50', family: 4 }]);
    expect(p.remove).toEqual([{ ifname: 'vlan104011', address: '192.0.2.99', prefixLen: 32 }]);
    expect(p.owned).toEqual([
      { ifname: 'vlan104009', address: '203.0.113.50' },
      { ifname: 'vlan104010', address: '198.51.100.50' },
    ]);
  });

  test('an interface that could not be listed is left alone and keeps its record', () => {
    const owned = [
      { ifname: 'vlan104009', address: '203.0.113.50' },
      { ifname: 'vlan104009', address: '203.0.113.51' },
    ];
    const p = plan({}, { vlan104009: ['203.0.113.50', '203.0.113.52'] }, owned);
    expect(p).toEqual({ add: [], remove: [], owned });
  });

  test('addresses compare canonically (the kernel prints IPv6 compressed)', () => {
    const p = plan({ vlan104009: present('2001:db8:203::50/128') }, { vlan104009: ['2001:0db8:0203:0000::0050'] }, [
      { ifname: 'vlan104009', address: '2001:db8:203::50' },
    ]);
    expect(p).toEqual({ add: [], remove: [], owned: [{ ifname: 'vlan104009', address: '2001:db8:203::50' }] });
  });
});

/** An in-memory `ip`: interfaces and their addresses, with a log of every change and a hook. */
class FakeIp implements AddressOps {
  readonly calls: string[] = [];
  beforeChange: (() => Promise<void>) | undefined;
  failList = new Set<string>();
  constructor(readonly links: Map<string, PresentAddress[]>) {}

  async addresses(ifnames: readonly string[]): Promise<Map<string, PresentAddress[]>> {
    const out = new Map<string, PresentAddress[]>();
    for (const i of ifnames) {
      if (this.failList.has(i)) throw new Error(`listing ${i} broke`);
      const l = this.links.get(i);
      if (!l) throw new MissingInterfaceError(i, 'addr show', { code: 1, stdout: '', stderr: `Device "${i}" does not exist.` });
      out.set(i, [...l]);
    }
    return out;
  }

  async add(ifname: string, address: string, family: Family): Promise<void> {
    await this.beforeChange?.();
    this.calls.push(`add ${ifname} ${address}`);
    const l = this.links.get(ifname);
    if (!l) throw new Error(`Cannot find device "${ifname}"`);
    l.push({ address, prefixLen: family === 4 ? 32 : 128 });
  }

  async remove(ifname: string, address: string, prefixLen: number): Promise<void> {
    await this.beforeChange?.();
    this.calls.push(`del ${ifname} ${address}/${prefixLen}`);
    const l = this.links.get(ifname)!;
    const i = l.findIndex((p) => p.address === address && p.prefixLen === prefixLen);
    if (i < 0) throw new Error('address not found');
    l.splice(i, 1);
  }
}

describe('AddressReconciler', () => {
  let dir: string;
  const lines: { level: string; msg: string }[] = [];
  const log = jsonLogger((l) => lines.push(JSON.parse(l) as { level: string; msg: string }), 'debug');

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'fwa-addr-'));
    lines.length = 0;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const record = async (): Promise<unknown> => JSON.parse(await readFile(path.join(dir, 'addresses.json'), 'utf8'));

  test('records an address before adding it, and after a restart still owns it', async () => {
    const ip = new FakeIp(new Map([['vlan104009', present('203.0.113.1/24')]]));
    let seenBeforeAdd: unknown;
    ip.beforeChange = async () => {
      seenBeforeAdd = await record();
    };
    const r1 = await new AddressReconciler({ ip, stateDir: dir, log }).reconcile(firewall([{ networkID: 'internet', ips: ['203.0.113.50'] }]));
    expect(r1).toEqual({ added: 1, removed: 0, errors: [] });
    expect(seenBeforeAdd).toEqual({ version: 1, owned: [{ ifname: 'vlan104009', address: '203.0.113.50' }] });

    const again = new AddressReconciler({ ip, stateDir: dir, log });
    expect(await again.reconcile(firewall([]))).toEqual({ added: 0, removed: 1, errors: [] });
    expect(ip.calls).toEqual(['add vlan104009 203.0.113.50', 'del vlan104009 203.0.113.50/32']);
    expect(await record()).toEqual({ version: 1, owned: [] });
  });

  test('a damaged record counts as empty, with a warning; invalid entries are skipped', async () => {
    await writeFile(path.join(dir, 'addresses.json'), '{ not json');
    const ip = new FakeIp(new Map([['vlan104009', present('203.0.113.50/32')]]));
    const r = await new AddressReconciler({ ip, stateDir: dir, log }).reconcile(firewall([]));
    expect(r).toEqual({ added: 0, removed: 0, errors: [] });
    expect(lines.some((l) => l.level === 'warn' && /unreadable/.test(l.msg))).toBe(true);
    expect(await record()).toEqual({ version: 1, owned: [] });

    lines.length = 0;
    await writeFile(
      path.join(dir, 'addresses.json'),
      JSON.stringify({ version: 1, owned: [{ ifname: 'vlan104009', address: '203.0.113.050' }, { ifname: 'a b', address: '203.0.113.50' }, { ifname: 'vlan104009', address: '203.0.113.50' }] }),
    );
    const r2 = await new AddressReconciler({ ip, stateDir: dir, log }).reconcile(firewall([]));
    expect(r2).toEqual({ added: 0, removed: 1, errors: [] });
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(2);
  });

  test('dry run (option or spec.dryRun) changes nothing and records nothing', async () => {
    const ip = new FakeIp(new Map([['vlan104009', present('203.0.113.1/24')]]));
    const fw = firewall([{ networkID: 'internet', ips: ['203.0.113.50'] }]);
    expect(await new AddressReconciler({ ip, stateDir: dir, log, dryRun: true }).reconcile(fw)).toEqual({ added: 0, removed: 0, errors: [] });
    const fwDry = firewall([{ networkID: 'internet', ips: ['203.0.113.50'] }], { dryRun: true });
    expect(await new AddressReconciler({ ip, stateDir: dir, log }).reconcile(fwDry)).toEqual({ added: 0, removed: 0, errors: [] });
    expect(ip.calls).toEqual([]);
    await expect(readFile(path.join(dir, 'addresses.json'))).rejects.toThrow(/ENOENT/);
    expect(lines.filter((l) => /would add/.test(l.msg))).toHaveLength(2);
  });

  test('a missing interface is an error naming it; the other interfaces are reconciled', async () => {
    const ip = new FakeIp(new Map([['vlan104010', present('198.51.100.1/24')]]));
    const rec = new AddressReconciler({ ip, stateDir: dir, log });
    const r = await rec.reconcile(
      firewall([
        { networkID: 'internet', ips: ['203.0.113.50'] },
        { networkID: 'partition-services', ips: ['198.51.100.50'] },
      ]),
    );
    expect(r.added).toBe(1);
    expect(r.errors).toEqual(['vlan104009: cannot list addresses: interface vlan104009 does not exist']);
    expect(rec.lastErrors).toEqual(r.errors);
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
    // The same fault again is not logged again.
    await rec.reconcile(firewall([{ networkID: 'internet', ips: ['203.0.113.50'] }, { networkID: 'partition-services', ips: ['198.51.100.50'] }]));
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
  });

  test('an interface of ours that disappeared (and is no longer wanted) is forgotten silently', async () => {
    const ip = new FakeIp(new Map([['vlan104010', present()]]));
    await writeFile(path.join(dir, 'addresses.json'), JSON.stringify({ version: 1, owned: [{ ifname: 'vlan104099', address: '203.0.113.50' }] }));
    const r = await new AddressReconciler({ ip, stateDir: dir, log }).reconcile(firewall([]));
    expect(r).toEqual({ added: 0, removed: 0, errors: [] });
    expect(await record()).toEqual({ version: 1, owned: [] });
  });

  test('a failed listing keeps the record; a failed add is not recorded, a failed removal stays', async () => {
    const ip = new FakeIp(new Map([['vlan104009', present('203.0.113.51/32')]]));
    await writeFile(path.join(dir, 'addresses.json'), JSON.stringify({ version: 1, owned: [{ ifname: 'vlan104009', address: '203.0.113.51' }] }));
    ip.failList.add('vlan104009');
    const rec = new AddressReconciler({ ip, stateDir: dir, log });
    const r1 = await rec.reconcile(firewall([]));
    expect(r1.errors).toEqual(['vlan104009: cannot list addresses: listing vlan104009 broke']);
    expect(await record()).toEqual({ version: 1, owned: [{ ifname: 'vlan104009', address: '203.0.113.51' }] });

    ip.failList.clear();
    ip.beforeChange = async () => {
      throw new Error('RTNETLINK answers: Operation not permitted');
    };
    const r2 = await rec.reconcile(firewall([{ networkID: 'internet', ips: ['203.0.113.50'] }]));
    expect(r2).toEqual({
      added: 0,
      removed: 0,
      errors: [
        'vlan104009: cannot add 203.0.113.50: RTNETLINK answers: Operation not permitted',
        'vlan104009: cannot remove 203.0.113.51/32: RTNETLINK answers: Operation not permitted',
      ],
    });
    expect(await record()).toEqual({ version: 1, owned: [{ ifname: 'vlan104009', address: '203.0.113.51' }] });
  });

  test('calls are serialized; callers that waited share one run with the latest Firewall', async () => {
    const ip = new FakeIp(new Map([['vlan104009', present()]]));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inFlight = 0;
    let maxInFlight = 0;
    ip.beforeChange = async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await gate;
      inFlight--;
    };
    const rec = new AddressReconciler({ ip, stateDir: dir, log });
    const first = rec.reconcile(firewall([{ networkID: 'internet', ips: ['203.0.113.50'] }]));
    await new Promise((r) => setTimeout(r, 20));
    const second = rec.reconcile(firewall([{ networkID: 'internet', ips: ['203.0.113.51'] }]));
    const third = rec.reconcile(firewall([{ networkID: 'internet', ips: ['203.0.113.52'] }]));
    release();
    const [a, b, c] = await Promise.all([first, second, third]);
    expect(a).toEqual({ added: 1, removed: 0, errors: [] });
    expect(b).toBe(c);
    expect(b).toEqual({ added: 1, removed: 1, errors: [] });
    expect(maxInFlight).toBe(1);
    expect(ip.calls).toEqual(['add vlan104009 203.0.113.50', 'add vlan104009 203.0.113.52', 'del vlan104009 203.0.113.50/32']);
  });
});
