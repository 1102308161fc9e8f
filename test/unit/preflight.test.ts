/**
 * Migration preflight (src/preflight.ts): per object, what firewall-agent rejects or ignores and
 * where it means something else than the upstream firewall-controller; clean objects say nothing.
 */
import { Obj } from '../../src/model/fields';
import {
  DifferenceCode,
  NO_FIREWALL_NOTE,
  ObjectFindings,
  PreflightReport,
  countLine,
  formatPreflight,
  lostPatternMatch,
  preflight,
  preflightExitCode,
  preflightJson,
  upstreamPatternMatches,
} from '../../src/preflight';
import { snapshotOf } from '../../src/sources/source';
import { cwnp, exampleFirewall, lbService } from '../helpers';

function analyse(objects: Obj[]): PreflightReport {
  const r = preflight(snapshotOf(objects.map((object, i) => ({ key: `${i}`, origin: `test#${i}`, object })), true));
  if (!r.ok) throw new Error(r.message);
  return r.report;
}

function one(objects: Obj[], name: string): ObjectFindings {
  const found = analyse(objects).objects.find((o) => o.ref.name === name);
  if (!found) throw new Error(`no findings for ${name}`);
  return found;
}

function codes(o: ObjectFindings): DifferenceCode[] {
  return o.differences.map((d) => d.code);
}

const PORT_443 = [{ protocol: 'TCP', port: 443 }];

/** A policy that means the same here and upstream. */
function clean(name = 'clean'): Obj {
  return cwnp(name, { egress: [{ to: [{ cidr: '203.0.113.0/24', except: ['203.0.113.20/32'] }], ports: [{ protocol: 'UDP', port: 53 }, ...PORT_443] }] });
}

function service(name: string, patch: Obj = {}): Obj {
  return lbService(name, { loadBalancerIP: '192.0.2.200', loadBalancerSourceRanges: ['203.0.113.0/28'], ports: [{ port: 443, protocol: 'TCP' }], ...patch });
}

describe('clean objects', () => {
  const objects = [
    clean(),
    cwnp('fqdn', { egress: [{ toFQDNs: [{ matchName: 'example.com' }, { matchPattern: '*' }, { matchPattern: 'api.example.com' }], ports: PORT_443 }] }),
    cwnp('one-block-except', { egress: [{ to: [{ cidr: '198.51.100.0/24', except: ['198.51.100.128/25'] }], ports: [{ protocol: 'udp', port: 123 }] }] }),
    service('web'),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'dns', namespace: 'kube-system' }, spec: { type: 'ClusterIP', ports: [{ port: 53, protocol: 'UDP' }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'np', namespace: 'default' }, spec: { type: 'NodePort', ports: [{ port: 80 }] } },
  ];

  test.each([
    ['without a Firewall', objects],
    ['with a baseline Firewall', [exampleFirewall(), ...objects]],
  ])('%s: no finding, exit 0', (_what, input) => {
    const r = analyse(input);
    expect(r.objects.map((o) => [o.ref.name, o.verdict, o.differences])).toEqual([
      ['clean', 'unchanged', []],
      ['fqdn', 'unchanged', []],
      ['one-block-except', 'unchanged', []],
      ['web', 'unchanged', []],
    ]);
    expect(r.counts).toEqual({ read: 4, rejected: 0, ignored: 0, differ: 0, unchanged: 4, otherServices: 2 });
    expect(preflightExitCode(r)).toBe(0);
    expect(countLine(r.counts)).toBe('preflight: 4 objects read: 0 would be rejected, 0 ignored, 0 differ in semantics, 4 unchanged; 2 other Services get no rule either way');
  });

  test('without a Firewall the notes say which checks need one; with one, the mode', () => {
    expect(analyse([clean()]).notes).toContain(NO_FIREWALL_NOTE);
    expect(analyse([clean()]).mode).toBeUndefined();
    const withFw = analyse([exampleFirewall('forbidden'), clean()]);
    expect(withFw.mode).toBe('forbidden');
    expect(withFw.firewall).toBe('shoot--demo/shoot--demo-firewall-a1b2c');
    expect(withFw.notes).not.toContain(NO_FIREWALL_NOTE);
    expect(withFw.notes.join('\n')).toMatch(/egress source: upstream accepted egress from 10\.0\.0\.0\/8 \(hard-coded\); firewall-agent from the node network 192\.0\.2\.0\/25/);
  });
});

describe('policy semantics that differ from upstream', () => {
  test('empty or missing ports: upstream no rule, here every port and protocol', () => {
    const o = one(
      [
        cwnp('p', {
          egress: [{ to: [{ cidr: '203.0.113.0/24' }] }, { to: [{ cidr: '203.0.113.0/24' }], ports: [] }],
          ingress: [{ from: [{ cidr: '203.0.113.0/24' }] }],
        }),
      ],
      'p',
    );
    expect(o.verdict).toBe('differs');
    expect(o.differences.map((d) => [d.code, d.path, d.input])).toEqual([
      ['ports-empty', 'egress[0].ports', 'is missing'],
      ['ports-empty', 'egress[1].ports', 'is empty'],
      ['ports-empty', 'ingress[0].ports', 'is missing'],
    ]);
    expect(o.differences[0]).toMatchObject({ upstream: 'this rule opened nothing', here: 'every port and protocol to its destinations' });
    expect(o.differences[2]!.here).toBe('every port and protocol from its sources, towards the node network');
  });

  test('empty or missing to: upstream nothing, here every destination; an empty toFQDNs opens nothing in both', () => {
    const o = one([cwnp('p', { egress: [{ ports: PORT_443 }, { to: [], ports: PORT_443 }, { toFQDNs: [], ports: PORT_443 }] })], 'p');
    expect(o.differences.map((d) => [d.code, d.path, d.input])).toEqual([
      ['to-empty', 'egress[0].to', 'is missing'],
      ['to-empty', 'egress[1].to', 'is empty'],
    ]);
    expect(o.differences[0]).toMatchObject({ upstream: 'this rule opened nothing', here: 'every destination (IPv4 and IPv6)' });
    expect(o.unenforced).toEqual(['egress[2].toFQDNs is empty; this rule opens nothing']);
    // Neither to nor ports: both differences.
    const both = one([cwnp('q', { egress: [{}] })], 'q');
    expect(codes(both)).toEqual(['to-empty', 'ports-empty']);
    expect(both.differences[0]!.here).toBe('every destination (IPv4 and IPv6), every port and protocol');
  });

  test('excepts pooled upstream: reported only where an except of one block cuts into another block', () => {
    const o = one(
      [
        cwnp('p', {
          egress: [
            {
              to: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '10.200.0.0/16'] }, { cidr: '10.1.0.0/16', except: ['10.1.2.0/24'] }, { cidr: '192.0.2.0/24' }],
              ports: PORT_443,
            },
          ],
        }),
      ],
      'p',
    );
    expect(o.differences).toEqual([
      {
        code: 'except-pooled',
        path: 'egress[0].to[0].except[0]',
        input: '10.1.0.0/16',
        upstream: "pooled with the rule's other excepts and cut out of every block",
        here: 'cut out of to[0] only: 10.1.0.0/23, 10.1.3.0-10.1.255.255 through to[1] 10.1.0.0/16 stays open',
      },
    ]);
    // The second block's own except 10.1.2.0/24 falls inside the first block too.
    const rev = one([cwnp('r', { ingress: [{ from: [{ cidr: '10.1.0.0/16', except: ['10.1.2.0/24'] }, { cidr: '10.0.0.0/8' }], ports: PORT_443 }] })], 'r');
    expect(rev.differences.filter((d) => d.code === 'except-pooled')).toEqual([
      expect.objectContaining({ path: 'ingress[0].from[0].except[0]', here: 'cut out of from[0] only: 10.1.2.0/24 through from[1] 10.0.0.0/8 stays open' }),
    ]);
    // Disjoint blocks: pooling changes nothing.
    const disjoint = one([cwnp('d', { egress: [{ to: [{ cidr: '192.0.2.0/24', except: ['192.0.2.0/28'] }, { cidr: '198.51.100.0/24', except: ['198.51.100.7/32'] }], ports: PORT_443 }] })], 'd');
    expect(disjoint.verdict).toBe('unchanged');
  });

  test('ingress: upstream any forwarded traffic, here only towards the node network', () => {
    const o = one([cwnp('p', { ingress: [{ from: [{ cidr: '203.0.113.0/25' }], ports: [{ port: 22 }] }, { ports: [{ port: 80 }] }] })], 'p');
    expect(o.differences.map((d) => [d.code, d.path])).toEqual([
      ['ingress-destination', 'ingress[0]'],
      ['ingress-destination', 'ingress[1]'],
    ]);
    expect(o.differences[0]).toMatchObject({
      upstream: 'accepted matching traffic to any destination, in either direction',
      here: 'only traffic leaving towards the node network',
    });
  });

  test('matchPattern: names upstream matched across dots and we no longer match', () => {
    const o = one(
      [
        cwnp('p', {
          egress: [
            {
              toFQDNs: [{ matchPattern: '*.example.com' }, { matchPattern: 'api-*.example.com' }, { matchPattern: '*' }, { matchPattern: 'www.*' }, { matchName: 'x.example.com' }],
              ports: PORT_443,
            },
          ],
        }),
      ],
      'p',
    );
    expect(o.differences.map((d) => [d.code, d.path, d.input, d.upstream])).toEqual([
      ['pattern-crosses-dots', 'egress[0].toFQDNs[0].matchPattern', '"*.example.com"', '* also crossed dots (matched e.g. a.b.example.com)'],
      ['pattern-crosses-dots', 'egress[0].toFQDNs[1].matchPattern', '"api-*.example.com"', '* also crossed dots (matched e.g. api-a.b.example.com)'],
      ['pattern-crosses-dots', 'egress[0].toFQDNs[3].matchPattern', '"www.*"', '* also crossed dots (matched e.g. www.a.b)'],
    ]);
    expect(o.differences[0]!.here).toBe('* matches within one label: a.b.example.com and other names with more labels no longer match');
  });

  test("upstream's pattern regex, as firewall-controller builds it", () => {
    expect(upstreamPatternMatches('*.example.com', 'a.b.example.com')).toBe(true);
    expect(upstreamPatternMatches('*.example.com', 'a.example.com.')).toBe(true);
    expect(upstreamPatternMatches('*.example.com', 'example.com')).toBe(false);
    expect(upstreamPatternMatches('*.Example.COM', 'A.example.com')).toBe(true);
    expect(upstreamPatternMatches('*', 'anything.at.all')).toBe(true);
    expect(lostPatternMatch('*')).toBeUndefined();
    expect(lostPatternMatch('no-star.example.com')).toBeUndefined();
    expect(lostPatternMatch('*.*.example.com')).toBe('a.b.a.example.com');
  });

  test('mixed-case matchName: upstream never matched it, here it matches', () => {
    const o = one([cwnp('p', { egress: [{ toFQDNs: [{ matchName: 'API.Example.com' }, { matchName: 'ok.example.com' }], ports: PORT_443 }] })], 'p');
    expect(o.differences).toEqual([
      {
        code: 'match-name-case',
        path: 'egress[0].toFQDNs[0].matchName',
        input: '"API.Example.com"',
        upstream: 'compared case-sensitively with lower-case answers: never matched, this selector opened nothing',
        here: 'matches api.example.com in any case',
      },
    ]);
  });

  test.each(['SCTP', 'ICMP', 'tcp/udp'])('protocol %s: upstream treated it as TCP, here the policy is rejected', (protocol) => {
    const o = one([cwnp('p', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol, port: 9 }] }] })], 'p');
    expect(o.verdict).toBe('rejected');
    expect(o.reason).toMatch(/^egress\[0\]\.ports\[0\]\.protocol .* is not supported \(TCP or UDP\)$/);
    expect(o.differences).toEqual([
      expect.objectContaining({ code: 'protocol', path: 'egress[0].ports[0].protocol', upstream: 'treated as TCP (anything but UDP meant TCP)' }),
    ]);
  });

  test('endPort below port (or above 65535): upstream broke the whole ruleset, here this policy is rejected', () => {
    const o = one([cwnp('p', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 8010, endPort: 8000 }, { port: 1, endPort: 70000 }] }] })], 'p');
    expect(o.verdict).toBe('rejected');
    expect(o.reason).toContain('egress[0].ports[0].endPort 8000 is below port 8010');
    expect(o.differences.map((d) => [d.code, d.path, d.input])).toEqual([
      ['end-port', 'egress[0].ports[0].endPort', '8000 is below port 8010'],
      ['end-port', 'egress[0].ports[1].endPort', '70000 is above 65535'],
    ]);
    expect(o.differences[0]!.upstream).toBe('not checked: nft refused the whole ruleset, so no policy change was applied any more');
  });

  test('port entry without port: upstream invalid, here every port of that protocol', () => {
    const o = one([cwnp('p', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol: 'UDP' }] }] })], 'p');
    expect(o.verdict).toBe('differs');
    expect(o.differences).toEqual([
      {
        code: 'port-missing',
        path: 'egress[0].ports[0].port',
        input: 'is missing',
        upstream: 'invalid (a port between 1 and 65535 is required): the whole policy was skipped',
        here: 'every UDP port (as in Kubernetes)',
      },
    ]);
  });

  test('to and toFQDNs both set: upstream to wins silently, here rejected', () => {
    const o = one([cwnp('p', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], toFQDNs: [{ matchPattern: '*.example.com' }], ports: PORT_443 }] })], 'p');
    expect(o.verdict).toBe('rejected');
    expect(o.reason).toBe('egress[0] sets both to and toFQDNs; a rule takes one of them');
    // The ignored selector's own semantics do not matter: upstream never used it.
    expect(o.differences).toEqual([
      {
        code: 'to-and-fqdns',
        path: 'egress[0]',
        input: 'sets both to and toFQDNs',
        upstream: 'to was used and toFQDNs silently ignored',
        here: 'a rule takes one of them: the policy is rejected',
      },
    ]);
  });

  test('IPv6 prefixes: upstream rendered IPv4 only', () => {
    const o = one([cwnp('p', { egress: [{ to: [{ cidr: '2001:db8::/64' }], ports: PORT_443 }] })], 'p');
    expect(o.differences.map((d) => [d.code, d.path, d.input])).toEqual([['ipv6', 'egress[0].to[0].cidr', '2001:db8::/64']]);
  });

  test('a policy outside namespace firewall is ignored in both, its rules are not compared', () => {
    const o = one([cwnp('p', { egress: [{}] }, 'default')], 'p');
    expect(o).toMatchObject({ verdict: 'ignored', reason: 'only policies in namespace firewall take effect', upstreamIgnores: true, differences: [] });
  });
});

describe('forbidden mode (with the Firewall)', () => {
  const fw = exampleFirewall('forbidden'); // egress 198.51.100.0/24; ingress 203.0.113.0/28, 192.0.2.192/26; node 192.0.2.0/25

  test('ignored here and upstream: no difference; ignored here only (no to): upstream deployed it', () => {
    const r = analyse([
      fw,
      cwnp('outside', { egress: [{ to: [{ cidr: '0.0.0.0/0' }], ports: PORT_443 }] }),
      cwnp('no-to', { egress: [{ ports: [{ protocol: 'UDP', port: 123 }] }] }),
      cwnp('no-from', { ingress: [{ ports: [{ port: 22 }] }] }),
    ]);
    const [outside, noTo, noFrom] = r.objects;
    expect(outside).toMatchObject({ verdict: 'ignored', upstreamIgnores: true, differences: [] });
    expect(outside!.reason).toBe('egress[0].to[0].cidr 0.0.0.0/0 is outside allowedNetworks.egress');
    for (const o of [noTo, noFrom]) {
      expect(o).toMatchObject({ verdict: 'ignored', upstreamIgnores: false });
      expect(o!.differences).toEqual([
        { code: 'forbidden', path: '', input: '', upstream: 'deployed (its check looked only at the prefixes listed in to/from)', here: 'ignored as a whole' },
      ]);
    }
    expect(r.counts).toMatchObject({ read: 3, ignored: 3, differ: 0 });
  });

  test('deployed here, ignored upstream: a prefix in the node network but outside allowedNetworks', () => {
    const o = one([fw, cwnp('node', { egress: [{ to: [{ cidr: '192.0.2.10/32' }], ports: PORT_443 }] })], 'node');
    expect(o.verdict).toBe('differs');
    expect(o.differences).toEqual([
      {
        code: 'forbidden',
        path: '',
        input: '',
        upstream: 'ignored (egress[0].to[0].cidr 192.0.2.10/32 is outside allowedNetworks.egress)',
        here: 'deployed (the node network is always allowed)',
      },
    ]);
  });

  test('toFQDNs: upstream opened every answer, here only answers inside allowedNetworks', () => {
    const o = one([fw, cwnp('f', { egress: [{ toFQDNs: [{ matchName: 'example.com' }], ports: PORT_443 }] })], 'f');
    expect(codes(o)).toEqual(['fqdn-forbidden']);
    expect(one([exampleFirewall(), cwnp('f', { egress: [{ toFQDNs: [{ matchName: 'example.com' }], ports: PORT_443 }] })], 'f').verdict).toBe('unchanged');
  });

  test('load balancer IPs: outside with source ranges (upstream loses the destination), node network, no ingress list', () => {
    const r = analyse([
      fw,
      service('outside', { loadBalancerIP: '203.0.113.99' }),
      service('node', { loadBalancerIP: '192.0.2.10', loadBalancerSourceRanges: [] }),
      service('inside', { loadBalancerIP: '192.0.2.200' }),
    ]);
    const [outside, node, inside] = r.objects;
    expect(outside).toMatchObject({ kind: 'Service', verdict: 'ignored', reason: 'load balancer IP 203.0.113.99 is outside allowedNetworks.ingress; no rule' });
    expect(outside!.differences).toEqual([
      {
        code: 'no-destination',
        path: '',
        input: 'has no load balancer IP inside allowedNetworks.ingress',
        upstream: 'the rule lost its destination: accepted 203.0.113.0/28 to any destination on 443/tcp',
        here: 'no rule',
      },
    ]);
    expect(node!.differences).toEqual([
      expect.objectContaining({ code: 'load-balancer-ips', upstream: 'no rule', here: 'rule for 192.0.2.10' }),
    ]);
    expect(inside!.verdict).toBe('unchanged');

    const egressOnly = exampleFirewall('forbidden');
    ((egressOnly.spec as Obj).allowedNetworks as Obj).ingress = [];
    const unfiltered = one([egressOnly, service('lb', { loadBalancerIP: '203.0.113.50' })], 'lb');
    expect(unfiltered.verdict).toBe('ignored');
    expect(unfiltered.differences).toEqual([
      {
        code: 'load-balancer-ips',
        path: '',
        input: 'load balancer IPs 203.0.113.50 (allowedNetworks.ingress is empty, so upstream did not filter)',
        upstream: 'rule for 203.0.113.50',
        here: 'no rule',
      },
    ]);
  });
});

describe('Services', () => {
  test('source ranges only in the annotation: upstream open to everyone', () => {
    const svc = service('ann', { loadBalancerSourceRanges: undefined });
    (svc.metadata as Obj).annotations = { 'service.beta.kubernetes.io/load-balancer-source-ranges': '203.0.113.0/28, 198.51.100.0/24' };
    const o = one([svc], 'ann');
    expect(o.differences).toEqual([
      expect.objectContaining({ code: 'source-ranges-annotation', upstream: 'the annotation was not read: open to every source', here: 'only from 203.0.113.0/28, 198.51.100.0/24' }),
    ]);
  });

  test('no load balancer IP yet, with source ranges: upstream accepted them to any destination', () => {
    const o = one([service('pending', { loadBalancerIP: undefined })], 'pending');
    expect(o.verdict).toBe('differs');
    expect(o.differences[0]).toMatchObject({ code: 'no-destination', input: 'has no load balancer IP', here: 'no rule' });
    expect(o.warnings).toEqual(['has no load balancer IP yet; no rule']);
  });

  test('NodePort with source ranges: upstream gave it a rule without destination', () => {
    const np = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'np', namespace: 'default' }, spec: { type: 'NodePort', loadBalancerSourceRanges: ['203.0.113.0/28'], ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }] } };
    const r = analyse([np]);
    expect(r.objects).toEqual([
      expect.objectContaining({
        kind: 'Service',
        ref: { namespace: 'default', name: 'np' },
        verdict: 'differs',
        differences: [expect.objectContaining({ code: 'no-destination', upstream: 'accepted 203.0.113.0/28 to any destination on 80/tcp, 53/udp' })],
      }),
    ]);
    expect(r.counts.otherServices).toBe(0);
  });

  test('a bad source range rejects the Service', () => {
    const o = one([service('bad', { loadBalancerSourceRanges: ['nonsense'] })], 'bad');
    expect(o.verdict).toBe('rejected');
    expect(o.reason).toMatch(/^spec\.loadBalancerSourceRanges\[0\] "nonsense"/);
  });
});

describe('input and output', () => {
  test('an unusable Firewall is an error, not a report', () => {
    const bad = exampleFirewall();
    (bad.status as Obj).firewallNetworks = [];
    expect(preflight(snapshotOf([{ key: '0', origin: 'x', object: bad }], true))).toEqual({ ok: false, message: expect.stringMatching(/^x: invalid Firewall: /) });
    const two = [exampleFirewall(), exampleFirewall()].map((object, i) => ({ key: `${i}`, origin: `f${i}`, object }));
    expect(preflight(snapshotOf(two, true))).toEqual({ ok: false, message: 'found 2 Firewalls (f0, f1); give exactly one' });
  });

  test('text: one line per finding, verdict lines, notes and the count line; JSON carries the exit code', () => {
    const r = analyse([
      clean(),
      cwnp('broken', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 8010, endPort: 8000 }] }] }),
      cwnp('elsewhere', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: PORT_443 }] }, 'default'),
      cwnp('ntp', { egress: [{ ports: [{ protocol: 'UDP', port: 123 }] }] }),
    ]);
    expect(formatPreflight(r).split('\n')).toEqual([
      'firewall/clean: unchanged',
      'firewall/broken: rejected: egress[0].ports[0].endPort 8000 is below port 8010',
      'firewall/broken: differs: egress[0].ports[0].endPort 8000 is below port 8010: upstream: not checked: nft refused the whole ruleset, so no policy change was applied any more; firewall-agent: the policy is rejected; the others are unaffected',
      'default/elsewhere: ignored: only policies in namespace firewall take effect (upstream ignores it too)',
      'firewall/ntp: differs: egress[0].to is missing: upstream: this rule opened nothing; firewall-agent: every destination (IPv4 and IPv6)',
      `note: ${NO_FIREWALL_NOTE}`,
      'preflight: 4 objects read: 1 would be rejected, 1 ignored, 1 differ in semantics, 1 unchanged',
      '',
    ]);
    expect(preflightExitCode(r)).toBe(1);
    const json = JSON.parse(preflightJson(r)) as { exitCode: number; counts: unknown; objects: { verdict: string }[] };
    expect(json.exitCode).toBe(1);
    expect(json.counts).toEqual({ read: 4, rejected: 1, ignored: 1, differ: 1, unchanged: 1, otherServices: 0 });
    expect(json.objects.map((o) => o.verdict)).toEqual(['unchanged', 'rejected', 'ignored', 'differs']);
  });
});
