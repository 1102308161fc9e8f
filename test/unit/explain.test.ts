/**
 * `explain`: verdicts and reasons from the model, cross-checked against the compiled maps, and the
 * command's output and exit codes.
 */
import path from 'node:path';
import { tmpdir } from 'node:os';
import { Command } from 'commander';
import { compile } from '../../src/compile/compile';
import { Mode, State } from '../../src/compile/mode';
import { registerExplain, runExplain, ExplainCommandOptions } from '../../src/commands/explain';
import { DirectionOption, ExplainSource, Explanation, explain, explanationJson, formatExplanation, parsePacket, parsePortSpec } from '../../src/explain';
import { Obj } from '../../src/model/fields';
import { classify } from '../../src/model/inventory';
import { EXAMPLES, cwnp, exampleFirewall, lbService } from '../helpers';
import { parseAllDocuments } from 'yaml';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';

function objectsOf(dir: string): Obj[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .flatMap((f) => parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS() as Obj));
}

const BASELINE = objectsOf(path.join(EXAMPLES, 'baseline'));

interface SourceOpts {
  state?: State;
  mode?: Mode;
  /** Compile with the DNS proxy (as render and the daemon do); default true. */
  proxy?: boolean;
  shardMax?: number;
}

function source(objects: Obj[], opts: SourceOpts = {}): ExplainSource {
  const inv = classify(objects.map((object) => ({ origin: 'test', object })));
  const fw = inv.firewalls[0]?.result;
  if (fw && !fw.ok) throw new Error(`invalid Firewall: ${JSON.stringify(fw.problems)}`);
  const firewall = fw?.ok ? fw.firewall : undefined;
  const input = { firewall, policies: inv.policies, services: inv.services, state: opts.state ?? 'connected', mode: opts.mode, shardMax: opts.shardMax };
  const proxy = opts.proxy ?? true;
  const compiled = compile({ ...input, dnsProxy: proxy && firewall ? { addresses: firewall.nodeNetwork.ips, port: 53 } : undefined });
  const raw = {
    policies: objects.filter((o) => o.kind === 'ClusterwideNetworkPolicy'),
    services: objects.filter((o) => o.kind === 'Service'),
  };
  return { input, raw, compiled };
}

function ex(src: ExplainSource, from: string, to: string, port: string, direction?: DirectionOption): Explanation {
  const p = parsePacket(from, to, port);
  if (!p.ok) throw new Error(p.error);
  const e = explain(src, p.value, { direction });
  // every verdict of the model agrees with a lookup in the compiled maps
  expect({ agrees: e.compiled?.agrees ?? true, e: e.reason }).toEqual({ agrees: true, e: e.reason });
  return e;
}

function allowedRefs(e: Explanation): string[] {
  return e.allowedBy.map((m) => `${m.ref} ${m.path}`);
}

const base = source(BASELINE, { proxy: false });

describe('egress from the node network', () => {
  test('allowed, with the policy and the rule path', () => {
    const e = ex(base, '192.0.2.10', '203.0.113.10', '443/tcp');
    expect(e.verdict).toBe('allowed');
    expect(e.direction).toBe('egress');
    expect(allowedRefs(e)).toEqual(['firewall/allow-to-https egress[0].to[0] ports[0]']);
    expect(e.compiled?.hits).toEqual([expect.objectContaining({ map: 'egress_ports_v4', ref: 'firewall/allow-to-https', direction: 'egress' })]);
  });

  test('another port on the same host is dropped; the rules matching the address are near misses', () => {
    const e = ex(base, '192.0.2.10', '203.0.113.10', '80/tcp');
    expect(e.verdict).toBe('dropped');
    expect(e.reason).toBe('no deployed policy allows egress to 203.0.113.10 on 80/tcp');
    expect(e.nearMisses.join('\n')).toContain('firewall/allow-to-https egress[0].to[0] (203.0.113.0/24 except 203.0.113.20/32) matches 203.0.113.10, but not 80/tcp (ports: 443/TCP)');
    expect(e.nearMisses.join('\n')).toContain('firewall/allow-app-ports egress[0].to[0] (203.0.113.10/32) matches 203.0.113.10, but not 80/tcp (ports: 8000-8010/TCP)');
  });

  test('IPv6: the second block of the same rule', () => {
    expect(allowedRefs(ex(base, '2001:db8:1::10', '2001:db8:203::10', '443/tcp'))).toEqual(['firewall/allow-to-https egress[0].to[1] ports[0]']);
    expect(ex(base, '2001:db8:1::10', '2001:db8:203::10', '80/tcp').verdict).toBe('dropped');
    expect(allowedRefs(ex(base, '2001:db8:1::10', '2001:db8:198::53', '53/udp'))).toEqual(['firewall/allow-to-dns egress[0].to[1] ports[0]']);
    expect(ex(base, '2001:db8:1::10', '2001:db8:198::10', '53/udp').verdict).toBe('dropped');
  });

  test('an except carves a hole and is named', () => {
    expect(ex(base, '192.0.2.10', '203.0.113.30', '443/tcp').verdict).toBe('allowed');
    const e = ex(base, '192.0.2.10', '203.0.113.20', '443/tcp');
    expect(e.verdict).toBe('dropped');
    expect(e.nearMisses).toContain('firewall/allow-to-https egress[0].to[0] 203.0.113.0/24 contains 203.0.113.20, but its except[0] 203.0.113.20/32 excludes it');
  });

  test('an except of one block does not remove what another block of the rule allows', () => {
    const src = source(
      [exampleFirewall(), cwnp('two-blocks', { egress: [{ to: [{ cidr: '203.0.113.0/24', except: ['203.0.113.0/28'] }, { cidr: '203.0.113.0/29' }], ports: [{ port: 443 }] }] })],
      { proxy: false },
    );
    const e = ex(src, '192.0.2.10', '203.0.113.5', '443/tcp');
    expect(allowedRefs(e)).toEqual(['firewall/two-blocks egress[0].to[1] ports[0]']);
    expect(ex(src, '192.0.2.10', '203.0.113.9', '443/tcp').verdict).toBe('dropped');
    expect(ex(src, '192.0.2.10', '203.0.113.16', '443/tcp').verdict).toBe('allowed');
  });

  test('port ranges include both ends and nothing beyond', () => {
    expect(['8000', '8005', '8010', '8011', '7999'].map((p) => ex(base, '192.0.2.10', '203.0.113.10', `${p}/tcp`).verdict)).toEqual([
      'allowed',
      'allowed',
      'allowed',
      'dropped',
      'dropped',
    ]);
    expect(ex(base, '192.0.2.10', '203.0.113.10', '8005/tcp').allowedBy[0]!.detail).toContain('8000-8010/TCP');
  });

  test('UDP and TCP are told apart; a bare port is TCP', () => {
    expect(allowedRefs(ex(base, '192.0.2.10', '198.51.100.53', '53/udp'))).toEqual(['firewall/allow-to-dns egress[0].to[0] ports[0]']);
    expect(allowedRefs(ex(base, '192.0.2.10', '198.51.100.53', '53/TCP'))).toEqual(['firewall/allow-to-dns egress[0].to[0] ports[1]']);
    expect(allowedRefs(ex(base, '192.0.2.10', '198.51.100.53', '53'))).toEqual(['firewall/allow-to-dns egress[0].to[0] ports[1]']);
    expect(ex(base, '192.0.2.10', '198.51.100.53', '5000/udp').verdict).toBe('dropped');
    expect(ex(base, '192.0.2.10', '198.51.100.10', '53/udp').verdict).toBe('dropped');
  });

  test('no ports means every port and protocol, ICMP included; a port list never allows ICMP', () => {
    for (const port of ['22/tcp', '9000/tcp', '5000/udp', 'icmp']) {
      const e = ex(base, '192.0.2.10', '198.51.100.5', port);
      expect(e.verdict).toBe('allowed');
      expect(e.allowedBy[0]!.detail).toContain('no ports: every port and protocol');
    }
    expect(ex(base, '192.0.2.10', '198.51.100.5', 'icmp').compiled?.hits[0]?.map).toBe('egress_any_v4');
    const ping = ex(base, '192.0.2.10', '203.0.113.10', 'icmp');
    expect(ping.verdict).toBe('dropped');
    expect(ping.notModelled.join('\n')).toContain('ping floods');
  });

  test('no destination means every destination (both families), on the listed port only', () => {
    for (const to of ['203.0.113.200', '198.51.100.10', '2001:db8:198::10']) {
      const from = to.includes(':') ? '2001:db8:1::10' : '192.0.2.10';
      expect(allowedRefs(ex(base, from, to, '123/udp'))).toEqual(['firewall/allow-to-ntp egress[0] ports[0]']);
    }
    expect(ex(base, '192.0.2.10', '203.0.113.200', '5000/udp').verdict).toBe('dropped');
  });

  test('overlapping policies: all of them are listed; the compiled maps name the first by name', () => {
    const src = source(
      [
        exampleFirewall(),
        cwnp('b-wide', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }, { port: 400, endPort: 500 }] }] }),
        cwnp('a-narrow', { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 443 }] }] }),
        cwnp('c-any', { egress: [{ to: [{ cidr: '203.0.113.0/28' }] }] }),
      ],
      { proxy: false },
    );
    const e = ex(src, '192.0.2.10', '203.0.113.10', '443/tcp');
    expect(allowedRefs(e)).toEqual([
      'firewall/a-narrow egress[0].to[0] ports[0]',
      'firewall/b-wide egress[0].to[0] ports[0]',
      'firewall/b-wide egress[0].to[0] ports[1]',
      'firewall/c-any egress[0].to[0]',
    ]);
    expect(e.reason).toBe('egress from the node network: allowed by 3 objects (firewall/a-narrow, firewall/b-wide, firewall/c-any)');
    // the any map and the ports map are both consulted; each names one owner, both among the list
    expect(e.compiled?.hits.map((h) => `${h.map} ${h.ref}`)).toEqual(['egress_any_v4 firewall/c-any', 'egress_ports_v4 firewall/a-narrow']);
  });

  test('a source outside the node network is not the cluster', () => {
    const e = ex(base, '192.0.2.150', '203.0.113.10', '443/tcp');
    expect(e.verdict).toBe('dropped');
    expect(e.direction).toBe('none');
    expect(e.reason).toContain('neither 192.0.2.150 nor 203.0.113.10 is in the node network (192.0.2.0/25)');
    // forced: it arrives from the node network's interface, but the egress maps want cluster sources
    const forced = ex(base, '192.0.2.150', '203.0.113.10', '443/tcp', 'egress');
    expect(forced.verdict).toBe('dropped');
    expect(forced.notes.join()).toContain('is not in the node network');
    expect(forced.reason).toContain('only the cluster');
  });
});

describe('ingress towards the node network and Services', () => {
  test('a policy opens a port from listed sources only (both families)', () => {
    const e = ex(base, '203.0.113.100', '192.0.2.10', '22/tcp');
    expect(e.direction).toBe('ingress');
    expect(allowedRefs(e)).toEqual(['firewall/allow-ssh-from-ops ingress[0].from[0] ports[0]']);
    expect(e.compiled?.hits[0]).toEqual(expect.objectContaining({ map: 'ingress_ports_v4', direction: 'ingress' }));
    expect(ex(base, '203.0.113.200', '192.0.2.10', '22/tcp').verdict).toBe('dropped');
    expect(ex(base, '203.0.113.100', '192.0.2.10', '443/tcp').verdict).toBe('dropped');
    expect(allowedRefs(ex(base, '2001:db8:203::20', '2001:db8:1::10', '22/tcp'))).toEqual(['firewall/allow-ssh-from-ops ingress[0].from[1] ports[0]']);
    expect(ex(base, '2001:db8:203::ff:10', '2001:db8:1::10', '22/tcp').verdict).toBe('dropped');
  });

  test('a LoadBalancer Service: its IP and ports from its source ranges', () => {
    const e = ex(base, '203.0.113.10', '192.0.2.200', '443/tcp');
    expect(e.verdict).toBe('allowed');
    expect(e.allowedBy).toEqual([
      { kind: 'Service', ref: 'ingress/ingress-nginx', direction: 'service', path: '192.0.2.200 port 443/TCP', detail: 'source range 203.0.113.0/28' },
    ]);
    expect(e.compiled?.hits[0]).toEqual(expect.objectContaining({ map: 'services_v4', ref: 'ingress/ingress-nginx' }));
    const outside = ex(base, '203.0.113.100', '192.0.2.200', '443/tcp');
    expect(outside.verdict).toBe('dropped');
    expect(outside.nearMisses).toContain(
      'Service ingress/ingress-nginx: 192.0.2.200 443/tcp is its IP and port, but 203.0.113.100 is not in its source ranges (203.0.113.0/28)',
    );
    const port = ex(base, '203.0.113.10', '192.0.2.200', '8000/tcp');
    expect(port.verdict).toBe('dropped');
    expect(port.nearMisses.join()).toContain('is not one of its ports (80/TCP, 443/TCP)');
    // not the Service's IP
    expect(ex(base, '203.0.113.10', '192.0.2.10', '443/tcp').verdict).toBe('dropped');
  });

  test('Services without source ranges, with the annotation, IPv6, and an ingress policy together', () => {
    const src = source(
      [
        exampleFirewall(),
        lbService('open', { loadBalancerIP: '192.0.2.201', ports: [{ port: 443 }] }),
        {
          ...lbService('annotated', { loadBalancerIP: '2001:db8:1:ff::200', ports: [{ port: 8443, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] }),
          metadata: { name: 'annotated', namespace: 'web', annotations: { 'service.beta.kubernetes.io/load-balancer-source-ranges': '2001:db8:203::/112' } },
        },
        cwnp('ingress-any', { ingress: [{ ports: [{ port: 443 }] }] }),
      ],
      { proxy: false },
    );
    const open = ex(src, '198.51.100.99', '192.0.2.201', '443/tcp');
    expect(open.allowedBy.map((m) => `${m.kind} ${m.ref} ${m.detail}`)).toEqual([
      'ClusterwideNetworkPolicy firewall/ingress-any no from: every source; 443/TCP',
      'Service default/open no source ranges: every source',
    ]);
    expect(ex(src, '2001:db8:203::5', '2001:db8:1:ff::200', '53/udp').allowedBy[0]!.detail).toBe('source range 2001:db8:203::/112');
    expect(ex(src, '2001:db8:203::1:5', '2001:db8:1:ff::200', '53/udp').verdict).toBe('dropped');
    expect(ex(src, '2001:db8:203::5', '2001:db8:1:ff::200', '53/tcp').verdict).toBe('dropped');
  });

  test('a rate-limited network is said to be not modelled', () => {
    expect(ex(base, '203.0.113.10', '192.0.2.200', '443/tcp').notModelled.join('\n')).toContain(
      'rate limit: traffic arriving from network internet (judged by address) above 100 MiB/s is dropped',
    );
    expect(ex(base, '192.0.2.10', '203.0.113.10', '443/tcp').notModelled.join('\n')).not.toContain('rate limit');
  });

  test('--direction ingress: an address routed into the node network that the prefixes do not show', () => {
    const src = source([exampleFirewall(), cwnp('from-ops', { ingress: [{ from: [{ cidr: '203.0.113.0/28' }], ports: [{ port: 22 }] }] })], { proxy: false });
    expect(ex(src, '203.0.113.10', '192.0.2.250', '22/tcp').verdict).toBe('dropped');
    const e = ex(src, '203.0.113.10', '192.0.2.250', '22/tcp', 'ingress');
    expect(e.verdict).toBe('allowed');
    expect(e.direction).toBe('ingress');
  });
});

describe('what is not deployed', () => {
  const forbiddenObjects = [
    exampleFirewall('forbidden'),
    cwnp('allow-to-dns', { egress: [{ to: [{ cidr: '198.51.100.53/32' }], ports: [{ protocol: 'UDP', port: 53 }] }] }),
    cwnp('to-everything', { egress: [{ to: [{ cidr: '0.0.0.0/0' }], ports: [{ port: 443 }] }] }),
    cwnp('half-inside', { egress: [{ to: [{ cidr: '198.51.100.0/24' }] }, { to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] }),
    cwnp('ingress-anywhere', { ingress: [{ ports: [{ port: 8000 }] }] }),
    lbService('inside', { loadBalancerIP: '192.0.2.200', ports: [{ port: 443, protocol: 'TCP' }] }),
    lbService('outside', { loadBalancerIP: '203.0.113.99', ports: [{ port: 80 }], loadBalancerSourceRanges: ['203.0.113.0/28'] }),
    lbService('mixed', { loadBalancerIP: '203.0.113.98', ports: [{ port: 8010 }], loadBalancerSourceRanges: ['203.0.113.0/28'] }, 'default', {
      loadBalancer: { ingress: [{ ip: '192.0.2.200' }] },
    }),
  ];
  const forbidden = source(forbiddenObjects, { proxy: false });

  test('forbidden mode: every policy that would have allowed it is named with its reason', () => {
    const e = ex(forbidden, '192.0.2.10', '203.0.113.10', '443/tcp');
    expect(e.verdict).toBe('dropped');
    expect(e.mode).toBe('forbidden');
    expect(e.candidates.map((c) => `${c.ref} ${c.path} ${c.status}`)).toEqual([
      'firewall/to-everything egress[0].to[0] ports[0] ignored in forbidden mode',
      'firewall/half-inside egress[1].to[0] ports[0] ignored in forbidden mode',
    ]);
    expect(e.candidates[1]!.text).toContain('egress[1].to[0].cidr 203.0.113.0/24 is outside allowedNetworks.egress');
    expect(e.reason).toBe(
      'no deployed policy allows egress to 203.0.113.10 on 443/tcp; firewall/to-everything, firewall/half-inside would, but are ignored in forbidden mode',
    );
    // the part inside the allowed networks is not deployed either
    const inside = ex(forbidden, '192.0.2.10', '198.51.100.10', '9000/tcp');
    expect(inside.verdict).toBe('dropped');
    expect(inside.candidates.map((c) => c.ref)).toEqual(['firewall/half-inside']);
  });

  test('forbidden mode: ingress from anywhere, Service IPs outside allowedNetworks.ingress', () => {
    const e = ex(forbidden, '203.0.113.10', '192.0.2.10', '8000/tcp');
    expect(e.candidates[0]!.text).toContain('firewall/ingress-anywhere ingress[0] ports[0] would allow it, but it is ignored in forbidden mode: ingress[0].from is empty');
    const outside = ex(forbidden, '203.0.113.10', '203.0.113.99', '80/tcp');
    expect(outside.direction).toBe('ingress');
    expect(outside.candidates.map((c) => `${c.kind} ${c.ref} ${c.why}`)).toEqual(['Service default/outside ignored']);
    const mixedOutside = ex(forbidden, '203.0.113.10', '203.0.113.98', '8010/tcp');
    expect(mixedOutside.verdict).toBe('dropped');
    expect(mixedOutside.candidates[0]!.why).toBe('forbidden-ip');
    expect(mixedOutside.candidates[0]!.text).toContain('its IP 203.0.113.98 is outside allowedNetworks.ingress and gets no rule');
    // the inside IP of the same Service keeps its rule
    expect(allowedRefs(ex(forbidden, '203.0.113.10', '192.0.2.200', '8010/tcp'))).toEqual(['default/mixed 192.0.2.200 port 8010/TCP']);
    expect(ex(forbidden, '203.0.113.30', '192.0.2.200', '8010/tcp').verdict).toBe('dropped');
    expect(ex(forbidden, '203.0.113.100', '192.0.2.200', '443/tcp').verdict).toBe('allowed');
  });

  test('--mode forbidden on a baseline landscape', () => {
    const src = source(BASELINE, { mode: 'forbidden', proxy: false });
    const e = ex(src, '192.0.2.10', '203.0.113.10', '443/tcp');
    expect(e.verdict).toBe('dropped');
    expect(e.candidates.map((c) => c.ref)).toContain('firewall/allow-to-https');
    // baseline has no allowedNetworks: only the node network is inside
    expect(e.candidates.find((c) => c.ref === 'firewall/allow-to-https')!.text).toContain('outside allowedNetworks.egress');
  });

  test('a rejected policy that would have matched is named, with its problems', () => {
    const src = source(
      [
        exampleFirewall(),
        cwnp('broken-port-range', { egress: [{ to: [{ cidr: '198.51.100.0/24' }], ports: [{ protocol: 'TCP', port: 8010, endPort: 8000 }] }] }),
        cwnp('bad-block', { egress: [{ to: [{ cidr: 'bogus' }, { cidr: '198.51.100.0/24' }], ports: [{ port: 443 }] }] }),
        cwnp('sctp', { egress: [{ to: [{ cidr: '198.51.100.0/24' }], ports: [{ protocol: 'SCTP', port: 443 }] }] }),
        cwnp('typo', { ingress: [{ from: [{ cidr: '203.0.113.0/24' }], port: 22 }] }),
      ],
      { proxy: false },
    );
    const range = ex(src, '192.0.2.10', '198.51.100.10', '8005/tcp');
    expect(range.verdict).toBe('dropped');
    expect(range.candidates.map((c) => c.text)).toEqual([
      'firewall/broken-port-range egress[0].to[0] ports[0] might have allowed it, but the policy is rejected: egress[0].ports[0].endPort 8000 is below port 8010',
    ]);
    expect(ex(src, '192.0.2.10', '198.51.100.10', '9000/tcp').candidates).toEqual([]);
    const block = ex(src, '192.0.2.10', '198.51.100.10', '443/tcp');
    // SCTP is another protocol: that rejected policy would not have matched a TCP packet
    expect(block.candidates.map((c) => `${c.ref} ${c.path} ${c.certain}`)).toEqual(['firewall/bad-block egress[0].to[1] ports[0] true']);
    expect(block.candidates[0]!.text).toContain('would have allowed it, but the policy is rejected: egress[0].to[0].cidr "bogus"');
    expect(block.reason).toContain('firewall/bad-block would, but is rejected');
    // a rule-level typo: the policy is rejected; its rule (with every port) might have matched
    const typo = ex(src, '203.0.113.10', '192.0.2.10', '22/tcp');
    expect(typo.candidates.map((c) => c.ref)).toEqual(['firewall/typo']);
    expect(typo.candidates[0]!.text).toContain('ingress[0].port is not a known field');
  });

  test('a rejected Service that would have matched is named', () => {
    const src = source(
      [exampleFirewall(), lbService('bad-range', { loadBalancerIP: '192.0.2.220', ports: [{ port: 443 }], loadBalancerSourceRanges: ['203.0.113.0/28', 'nonsense'] })],
      { proxy: false },
    );
    const e = ex(src, '203.0.113.5', '192.0.2.220', '443/tcp');
    expect(e.direction).toBe('ingress');
    expect(e.verdict).toBe('dropped');
    expect(e.candidates).toEqual([expect.objectContaining({ kind: 'Service', ref: 'default/bad-range', why: 'rejected', certain: true })]);
    expect(ex(src, '203.0.113.50', '192.0.2.220', '443/tcp').candidates[0]!.certain).toBe(false);
  });

  test('policies outside namespace firewall and duplicates are named', () => {
    const src = source(
      [
        exampleFirewall(),
        cwnp('elsewhere', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 80 }] }] }, 'default'),
        cwnp('twice', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 81 }] }] }),
        cwnp('twice', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 82 }] }] }),
      ],
      { proxy: false },
    );
    expect(ex(src, '192.0.2.10', '203.0.113.10', '80/tcp').candidates[0]!.text).toContain('ignored: only policies in namespace firewall take effect');
    expect(ex(src, '192.0.2.10', '203.0.113.10', '81/tcp').verdict).toBe('allowed');
    const dup = ex(src, '192.0.2.10', '203.0.113.10', '82/tcp');
    expect(dup.verdict).toBe('dropped');
    expect(dup.candidates[0]!.text).toContain('rejected: is defined more than once in the input');
  });
});

describe('states, FQDN, DNS interception, underlay, the firewall itself', () => {
  test('disconnected: only established flows; what connected would do is said', () => {
    const src = source(BASELINE, { state: 'disconnected', proxy: false });
    const e = ex(src, '192.0.2.10', '203.0.113.10', '443/tcp');
    expect(e.verdict).toBe('dropped');
    expect(e.reason).toContain('the state is disconnected: the forward chain accepts only established/related flows');
    expect(e.candidates.map((c) => c.text)).toEqual(['when connected it would be allowed by firewall/allow-to-https egress[0].to[0] ports[0]']);
    expect(e.compiled).toEqual({ verdict: 'dropped', hits: [], agrees: true });
    const none = ex(source([], { state: 'disconnected' }), '192.0.2.10', '203.0.113.10', '443/tcp');
    expect(none.verdict).toBe('dropped');
    expect(none.candidates).toEqual([]);
  });

  test('FQDN rules: would allow it if resolved, when the ports match', () => {
    const e = ex(base, '192.0.2.10', '203.0.113.20', '443/tcp');
    expect(e.verdict).toBe('dropped');
    expect(e.candidates).toEqual([
      expect.objectContaining({ ref: 'firewall/allow-to-example-com', why: 'fqdn', certain: true, path: 'egress[0].toFQDNs ports[0]' }),
    ]);
    expect(e.candidates[0]!.text).toContain('(matchName example.com) would allow it if the destination were resolved');
    expect(e.reason).toContain('firewall/allow-to-example-com would if DNS resolved one of its names to 203.0.113.20');
    expect(ex(base, '192.0.2.10', '203.0.113.20', '80/tcp').candidates).toEqual([]);
    // an ingress packet is never opened by an FQDN rule
    expect(ex(base, '203.0.113.20', '192.0.2.10', '443/tcp').candidates).toEqual([]);
  });

  test('FQDN rules in forbidden mode: answers outside allowedNetworks.egress are never opened', () => {
    const fqdn = cwnp('to-example', { egress: [{ toFQDNs: [{ matchPattern: '*.example.com' }], ports: [{ port: 443 }] }] });
    const src = source([exampleFirewall('forbidden'), fqdn], { proxy: false });
    const out = ex(src, '192.0.2.10', '203.0.113.20', '443/tcp');
    expect(out.candidates[0]).toEqual(expect.objectContaining({ why: 'fqdn', certain: false }));
    expect(out.candidates[0]!.text).toContain('outside allowedNetworks.egress');
    expect(ex(src, '192.0.2.10', '198.51.100.20', '443/tcp').candidates[0]!.certain).toBe(true);
  });

  test('DNS from the node network goes to the proxy while FQDN policies are deployed', () => {
    const withProxy = source(BASELINE);
    const e = ex(withProxy, '192.0.2.10', '198.51.100.10', '53/udp');
    expect(e.verdict).toBe('allowed');
    expect(e.redirectedTo).toBe('192.0.2.1:53');
    expect(e.compiled?.decidedBy).toBe('chain dns_intercept redirects it (nat prerouting)');
    expect(ex(withProxy, '2001:db8:1::10', '2001:db8:198::10', '53/tcp').redirectedTo).toBe('[2001:db8:1::1]:53');
    // without interception (no proxy) the policies decide
    expect(ex(base, '192.0.2.10', '198.51.100.10', '53/udp').verdict).toBe('dropped');
    // no FQDN policy: no interception
    const plain = source([exampleFirewall(), cwnp('dns', { egress: [{ to: [{ cidr: '198.51.100.53/32' }], ports: [{ protocol: 'UDP', port: 53 }] }] })]);
    expect(ex(plain, '192.0.2.10', '198.51.100.10', '53/udp').verdict).toBe('dropped');
  });

  test('the underlay is never forwarded to', () => {
    const fw = exampleFirewall();
    const status = fw.status as Obj;
    status.firewallNetworks = [
      ...(status.firewallNetworks as Obj[]),
      { networkID: 'underlay', networkType: 'underlay', vrf: 0, prefixes: ['10.0.0.0/16'], ips: ['10.0.0.1'] },
    ];
    // an underlay with a vrf gets the drop rule
    (status.firewallNetworks as Obj[])[3]!.vrf = 42;
    const src = source([fw, cwnp('everything', { egress: [{ ports: [{ port: 22 }] }] })], { proxy: false });
    const e = ex(src, '192.0.2.10', '10.0.5.5', '22/tcp');
    expect(e.verdict).toBe('dropped');
    expect(e.reason).toContain('10.0.5.5 is in the underlay network underlay (10.0.0.0/16): the firewall never forwards to the underlay');
    expect(e.compiled).toEqual({ verdict: 'dropped', hits: [], decidedBy: 'chain forward: never forward to the underlay underlay', agrees: true });
    expect(ex(src, '192.0.2.10', '203.0.113.5', '22/tcp').verdict).toBe('allowed');
  });

  test("the firewall's own traffic and traffic to it are not filtered by the table", () => {
    const out = ex(base, '203.0.113.1', '203.0.113.10', '9000/tcp');
    expect([out.verdict, out.direction]).toEqual(['allowed', 'local-output']);
    const to = ex(base, '203.0.113.10', '192.0.2.1', '22/tcp');
    expect([to.verdict, to.direction]).toEqual(['allowed', 'local-input']);
  });
});

describe('the model agrees with the compiled maps', () => {
  test('random packets against overlapping, sharded policies and Services', () => {
    // mulberry32: deterministic and well mixed in every bit
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
    };
    const objects: Obj[] = [exampleFirewall()];
    for (let i = 0; i < 30; i++) {
      const a = `203.0.113.${rnd(256)}/${27 + rnd(6)}`;
      const b = `2001:db8:203::${rnd(4096).toString(16)}/${119 + rnd(10)}`;
      const ports = rnd(8) === 0 ? undefined : [{ protocol: rnd(2) ? 'TCP' : 'UDP', port: 1 + rnd(20), ...(rnd(2) ? { endPort: 21 + rnd(10) } : {}) }];
      objects.push(cwnp(`e${i}`, { egress: [{ to: [{ cidr: a }, { cidr: b }], ...(ports ? { ports } : {}) }] }));
      objects.push(cwnp(`i${i}`, { ingress: [{ from: [{ cidr: a }, { cidr: b }], ...(ports ? { ports } : {}) }] }));
    }
    for (let i = 0; i < 5; i++) {
      objects.push(lbService(`s${i}`, { loadBalancerIP: `192.0.2.${200 + i}`, ports: [{ port: 1 + rnd(20) }], loadBalancerSourceRanges: [`203.0.113.${rnd(256)}/${26 + rnd(6)}`] }));
    }
    const src = source(objects, { proxy: false, shardMax: 4 });
    let allowed = 0;
    for (let n = 0; n < 600; n++) {
      const v6 = rnd(2) === 1;
      const host = v6 ? `2001:db8:203::${rnd(4096).toString(16)}` : `203.0.113.${rnd(256)}`;
      const node = v6 ? '2001:db8:1::10' : rnd(3) === 0 ? `192.0.2.${200 + rnd(5)}` : '192.0.2.10';
      const port = rnd(5) === 0 ? 'icmp' : `${1 + rnd(32)}/${rnd(2) ? 'tcp' : 'udp'}`;
      const e = rnd(2) ? ex(src, node.startsWith('192.0.2.2') ? '192.0.2.10' : node, host, port) : ex(src, host, node, port);
      if (e.verdict === 'allowed') allowed++;
    }
    // a mix of both verdicts, so the agreement means something
    expect(allowed).toBeGreaterThan(50);
    expect(allowed).toBeLessThan(500);
  });
});

describe('input parsing', () => {
  test('ports and protocols', () => {
    expect(parsePortSpec('443/tcp')).toEqual({ ok: true, value: { protocol: 'tcp', port: 443 } });
    expect(parsePortSpec('53/UDP')).toEqual({ ok: true, value: { protocol: 'udp', port: 53 } });
    expect(parsePortSpec('8080')).toEqual({ ok: true, value: { protocol: 'tcp', port: 8080 } });
    expect(parsePortSpec('icmp')).toEqual({ ok: true, value: { protocol: 'icmp', port: undefined } });
    expect(parsePortSpec('0/tcp').ok).toBe(false);
    expect(parsePortSpec('65536/tcp').ok).toBe(false);
    expect(parsePortSpec('443/sctp')).toEqual({ ok: false, error: '--port "443/sctp": protocol "sctp" is not supported (TCP or UDP)' });
    expect(parsePortSpec('https').ok).toBe(false);
  });

  test('addresses', () => {
    expect(parsePacket('192.0.2.10', '2001:db8::1', '443/tcp')).toEqual({ ok: false, error: '--from 192.0.2.10 and --to 2001:db8::1 are of different address families' });
    expect(parsePacket('192.0.2.300', '203.0.113.1', '443/tcp')).toEqual({ ok: false, error: '--from: "192.0.2.300" is not an IP address' });
    expect(parsePacket('192.0.2.10', '203.0.113.0/24', '443/tcp').ok).toBe(false);
  });
});

describe('output', () => {
  test('one screen of text, and JSON with the verdict first', () => {
    const e = ex(base, '192.0.2.10', '203.0.113.10', '80/tcp');
    const text = formatExplanation(e);
    expect(text.split('\n')[0]).toBe('DROPPED: 192.0.2.10 → 203.0.113.10 80/tcp');
    expect(text).toContain('  why: no deployed policy allows egress to 203.0.113.10 on 80/tcp\n');
    expect(text).toContain('  compiled ruleset: no verdict-map element matches\n');
    expect(text).toContain('  not modelled:\n');
    expect(text.split('\n').length).toBeLessThan(25);
    expect(Object.keys(explanationJson(e)).slice(0, 2)).toEqual(['verdict', 'reason']);
  });

  test('long lists are capped in the text, complete in JSON', () => {
    const objects = [exampleFirewall(), ...Array.from({ length: 12 }, (_, i) => cwnp(`p${String(i).padStart(2, '0')}`, { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] }))];
    const e = ex(source(objects, { proxy: false }), '192.0.2.10', '203.0.113.10', '443/tcp');
    expect(e.allowedBy).toHaveLength(12);
    const text = formatExplanation(e);
    expect(text).toContain('… and 6 more (--json lists all)');
    expect(text.split('\n').length).toBeLessThan(25);
  });
});

describe('the command', () => {
  async function run(args: Partial<ExplainCommandOptions>): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runExplain(
      { file: [path.join(EXAMPLES, 'baseline')], state: 'connected', direction: 'auto', ...args },
      (s) => (out += s),
      (s) => (err += s),
    );
    return { code, out, err };
  }

  test('exit 0 allowed, 1 dropped, with the text on stdout', async () => {
    const ok = await run({ from: '192.0.2.10', to: '203.0.113.10', port: '443/tcp' });
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('ALLOWED: 192.0.2.10 → 203.0.113.10 443/tcp');
    expect(ok.out).toContain('firewall/allow-to-https egress[0].to[0] ports[0]');
    expect(ok.err).toBe('');
    const dropped = await run({ from: '192.0.2.10', to: '203.0.113.10', port: '80/tcp' });
    expect(dropped.code).toBe(1);
    expect(dropped.out).toContain('DROPPED');
  });

  test('as render sees it: the DNS interception of the example FQDN policy', async () => {
    const r = await run({ from: '192.0.2.10', to: '198.51.100.10', port: '53/udp', json: true });
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { verdict: string; redirectedTo: string; compiled: { agrees: boolean } };
    expect(j).toEqual(expect.objectContaining({ verdict: 'allowed', redirectedTo: '192.0.2.1:53' }));
    expect(j.compiled.agrees).toBe(true);
  });

  test('--state disconnected, --mode forbidden, --direction', async () => {
    expect((await run({ from: '192.0.2.10', to: '203.0.113.10', port: '443/tcp', state: 'disconnected' })).code).toBe(1);
    expect((await run({ file: [], from: '192.0.2.10', to: '203.0.113.10', port: '443/tcp', state: 'disconnected' })).code).toBe(1);
    const f = await run({ from: '192.0.2.10', to: '203.0.113.10', port: '443/tcp', mode: 'forbidden', json: true });
    expect(f.code).toBe(1);
    expect((JSON.parse(f.out) as { mode: string }).mode).toBe('forbidden');
    expect((await run({ from: '192.0.2.150', to: '203.0.113.10', port: '443/tcp', direction: 'egress' })).code).toBe(1);
  });

  test('exit 2 with one line for unusable input', async () => {
    const cases: [Partial<ExplainCommandOptions>, string][] = [
      [{ from: '192.0.2.x', to: '203.0.113.10', port: '443/tcp' }, 'error: explain: --from: "192.0.2.x" is not an IP address\n'],
      [{ from: '192.0.2.10', to: '203.0.113.10', port: '443/xyz' }, 'error: explain: --port "443/xyz": protocol "xyz" is not supported (TCP or UDP)\n'],
      [{ from: '192.0.2.10', to: '203.0.113.10' }, 'error: explain: missing --port (usage: explain -f PATH --from ADDR --to ADDR --port PORT/PROTO)\n'],
      [{ from: '192.0.2.10', to: '203.0.113.10', port: '443', file: ['/nonexistent/x'] }, 'error: explain: /nonexistent/x: cannot read (ENOENT)\n'],
      [{ from: '192.0.2.10', to: '203.0.113.10', port: '443', file: [] }, 'error: explain: no input: give at least one -f PATH\n'],
      [{ from: '192.0.2.10', to: '203.0.113.10', port: '443', mode: 'bogus' }, 'error: explain: --mode "bogus" must be one of baseline, restricted, forbidden\n'],
      [{ from: '192.0.2.10', to: '203.0.113.10', port: '443', state: 'bogus' }, 'error: explain: --state "bogus" must be one of connected, disconnected\n'],
      [{ from: '192.0.2.10', to: '203.0.113.10', port: '443', direction: 'sideways' }, 'error: explain: --direction "sideways" must be one of auto, egress, ingress\n'],
    ];
    for (const [args, err] of cases) {
      const r = await run(args);
      expect({ args, code: r.code, err: r.err, out: r.out }).toEqual({ args, code: 2, err, out: '' });
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'fwa-explain-'));
    writeFileSync(path.join(dir, 'bad.yaml'), 'a: [\n');
    const malformed = await run({ from: '192.0.2.10', to: '203.0.113.10', port: '443', file: [dir] });
    expect(malformed.code).toBe(2);
    expect(malformed.err).toMatch(/^error: explain: .*bad\.yaml.*malformed YAML/);
    writeFileSync(path.join(dir, 'bad.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n');
    const noFirewall = await run({ from: '192.0.2.10', to: '203.0.113.10', port: '443', file: [dir] });
    expect(noFirewall.code).toBe(2);
    expect(noFirewall.err).toContain('no Firewall');
  });

  test('registerExplain wires the command into a commander program', async () => {
    const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const before = process.exitCode;
    try {
      const results: unknown[] = [];
      for (const port of ['443/tcp', '80/tcp']) {
        const prog = new Command('firewall-agent');
        registerExplain(prog);
        await prog.parseAsync(['explain', '-f', path.join(EXAMPLES, 'baseline'), '--from', '192.0.2.10', '--to', '203.0.113.10', '--port', port, '--json'], { from: 'user' });
        results.push(process.exitCode);
      }
      expect(results).toEqual([0, 1]);
      const printed = write.mock.calls.map((c) => String(c[0])).join('');
      expect(printed).toContain('"verdict": "allowed"');
      expect(printed).toContain('"verdict": "dropped"');
    } finally {
      write.mockRestore();
      process.exitCode = before;
    }
  });
});
