/**
 * In a real kernel: the fingerprint of nft's own listing equals the fingerprint of what we meant
 * (the IR), for every kind of object we write (sets, shards, IPv6, SNAT maps, rate limits), so
 * drift is judged against intention; and any change someone else makes shows.
 */
import { generatePolicies } from '../../scripts/bench/generate';
import { Obj } from '../../src/model/fields';
import { chainsDigest, hex, listingDigest, tableChainsDigest, tableDigest, tablePart } from '../../src/nft/fingerprint';
import { NftTable } from '../../src/nft/ruleset';
import { compileObjects, cwnp, exampleFirewall, lbService } from '../helpers';
import { Lab } from './lab';
import { renderTransaction } from '../../src/nft/render';
import { disconnectedTable } from '../../src/compile/compile';
import { IpAddress, parseAddress } from '../../src/model/address';
import { transactionText } from '../../src/nft/serialize';
import { dynamicTransaction } from '../../src/nft/transaction';

let lab: Lab;

beforeAll(async () => {
  lab = await Lab.create();
});

afterAll(async () => {
  await lab?.destroy();
});

async function kernelDigest(): Promise<string> {
  return hex(listingDigest((await lab.nft.listTable('inet', 'firewall', { stateless: true }))!));
}

/** The cheap check's view: our table's part of `nft list chains inet` (undefined when absent). */
async function kernelChainsDigest(): Promise<string | undefined> {
  const r = await lab.run('fw', ['nft', 'list', 'chains', 'inet']);
  expect(r.code).toBe(0);
  const part = tablePart(r.stdout, { family: 'inet', name: 'firewall' });
  return part === undefined ? undefined : hex(chainsDigest(part));
}

async function load(t: NftTable): Promise<void> {
  await lab.apply(renderTransaction([t]));
}

function snatFirewall(): Obj {
  const fw = exampleFirewall();
  (fw.spec as Obj).egressRules = [{ networkID: 'internet', ips: ['203.0.113.100', '203.0.113.200', '2001:db8:203::ff:10'] }];
  (fw.spec as Obj).logAcceptedConnections = true;
  return fw;
}

const landscapes: [string, () => NftTable][] = [
  ['disconnected', () => disconnectedTable()],
  ['the baseline example', () => compileObjects([exampleFirewall(), cwnp('a', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] })]).compiled.table],
  [
    'IPv6, excepts, ingress, a Service, SNAT to several addresses, logging',
    () =>
      compileObjects([
        snatFirewall(),
        cwnp('v6', {
          egress: [
            { to: [{ cidr: '2001:db8:203::/64' }, { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '203.0.113.128/25'] }], ports: [{ port: 8000, endPort: 8010 }, { protocol: 'UDP', port: 53 }] },
          ],
          ingress: [{ from: [{ cidr: '2001:db8:203::ff:10/128' }, { cidr: '203.0.113.0/28' }], ports: [{ port: 22 }] }],
        }),
        lbService('web', { loadBalancerIP: '192.0.2.200', ports: [{ port: 443 }], loadBalancerSourceRanges: ['203.0.113.0/28'] }),
      ]).compiled.table,
  ],
  [
    'FQDN rules (dynamic sets, fqdn_egress, DNS interception for both families)',
    () =>
      compileObjects(
        [
          exampleFirewall(),
          cwnp('fqdn', {
            egress: [
              { toFQDNs: [{ matchPattern: '*.example.com' }], ports: [{ port: 443 }, { protocol: 'UDP', port: 8000, endPort: 8010 }] },
              { toFQDNs: [{ matchName: 'any.example' }] },
            ],
          }),
        ],
        { dnsProxy: { addresses: exampleFirewallIps(), port: 53 } },
      ).compiled.table,
  ],
  ['500 generated policies in many small shards', () => compileObjects([exampleFirewall(), ...generatePolicies(500)], { shardMax: 64 }).compiled.table],
];

test.each(landscapes)('%s: the kernel listing has the fingerprint of the IR', async (_name, table) => {
  const t = table();
  await load(t);
  expect(await kernelDigest()).toBe(hex(tableDigest(t)));
  expect(await kernelChainsDigest()).toBe(hex(tableChainsDigest(t)));
  const dynamic = t.sets.filter((x) => x.flags.includes('timeout'));
  if (dynamic.length === 0) return;
  // elements with timeouts come and go at run time: not part of the fingerprint
  await lab.apply(transactionText(dynamicTransaction(t, dynamic.map((d) => ({ set: d.name, refresh: [{ address: d.type === 'ipv4_addr' ? '203.0.113.9' : '2001:db8::9', timeoutS: 60 }], remove: [] })))));
  expect((await lab.nft.listTable('inet', 'firewall', { stateless: true }))!).toContain('203.0.113.9 timeout 1m');
  expect(await kernelDigest()).toBe(hex(tableDigest(t)));
});

function exampleFirewallIps(): IpAddress[] {
  return ['192.0.2.1', '2001:db8:1::1'].map((a) => {
    const r = parseAddress(a);
    if (!r.ok) throw new Error(r.error);
    return r.value;
  });
}

test('any change by someone else changes the fingerprint', async () => {
  const t = landscapes[2]![1]();
  await load(t);
  const want = hex(tableDigest(t));
  const tamper = [
    'insert rule inet firewall forward accept',
    'add element inet firewall egress_any_v4 { 198.51.100.0/24 : accept }',
    'add chain inet firewall extra',
    'flush set inet firewall cluster_prefixes',
    'add counter inet firewall extra_counter',
  ];
  for (const cmd of tamper) {
    await load(t);
    expect(await kernelDigest()).toBe(want);
    const r = await lab.run('fw', ['nft', cmd]);
    expect(r.stderr).toBe('');
    expect({ cmd, changed: (await kernelDigest()) !== want }).toEqual({ cmd, changed: true });
  }
  // counters counting is not a change
  await load(t);
  await lab.reachable('worker', []);
  await lab.run('fw', ['nft', 'reset counters table inet firewall']);
  expect(await kernelDigest()).toBe(want);
});

test('the cheap check (chains only) sees the table deleted or replaced and chains added, removed or redeclared', async () => {
  const t = landscapes[2]![1]();
  const want = hex(tableChainsDigest(t));
  const policyChain = t.chains.find((c) => c.name.startsWith('cwnp-e-'))!.name;
  const seen = [
    'delete table inet firewall',
    'add chain inet firewall extra',
    `rename chain inet firewall ${policyChain} renamed`,
    'add chain inet firewall forward { type filter hook forward priority filter + 1; policy accept; }',
  ];
  for (const cmd of seen) {
    await load(t);
    expect(await kernelChainsDigest()).toBe(want);
    const r = await lab.run('fw', ['nft', cmd]);
    expect(r.stderr).toBe('');
    expect({ cmd, changed: (await kernelChainsDigest()) !== want }).toEqual({ cmd, changed: true });
  }
  // what it cannot see, and is left to the full fingerprint
  await load(t);
  await lab.run('fw', ['nft', 'insert rule inet firewall forward accept']);
  expect(await kernelChainsDigest()).toBe(want);
  expect(await kernelDigest()).not.toBe(hex(tableDigest(t)));
});
