import { parseFqdn, parsePolicy } from '../../src/model/cwnp';
import { formatProblem } from '../../src/model/fields';
import { cwnp } from '../helpers';

function reasons(spec: unknown, name = 'p', namespace = 'firewall'): string[] {
  const r = parsePolicy(cwnp(name, spec, namespace));
  return r.ok ? [] : r.problems.map(formatProblem);
}

describe('rejections name the field and the reason', () => {
  test.each([
    [{ egress: [{ to: [{ cidr: '10.0.0.0/8' }], ports: [{ port: 8010, endPort: 8000 }] }] }, 'egress[0].ports[0].endPort 8000 is below port 8010'],
    [{ egress: [{ ports: [{ endPort: 80 }] }] }, 'egress[0].ports[0].endPort needs port to be set'],
    [{ egress: [{ ports: [{ port: 0 }] }] }, 'egress[0].ports[0].port "0" is not a port between 1 and 65535'],
    [{ egress: [{ ports: [{ port: 65536 }] }] }, 'egress[0].ports[0].port "65536" is not a port between 1 and 65535'],
    [{ egress: [{ ports: [{ port: 80, endPort: 70000 }] }] }, 'egress[0].ports[0].endPort "70000" is not a port between 1 and 65535'],
    [{ egress: [{ ports: [{ port: 'http' }] }] }, 'egress[0].ports[0].port "http": named ports are not supported, give a number'],
    [{ egress: [{ ports: [{ port: 1.5 }] }] }, 'egress[0].ports[0].port "1.5" is not a port between 1 and 65535'],
    [{ egress: [{ ports: [{ protocol: 'SCTP', port: 80 }] }] }, 'egress[0].ports[0].protocol "SCTP" is not supported (TCP or UDP)'],
    [{ egress: [{ to: [{ cidr: '10.0.0.0/33' }] }] }, 'egress[0].to[0].cidr "10.0.0.0/33" has prefix length 33, more than 32'],
    [{ egress: [{ to: [{ cidr: '10.0.0.1' }] }] }, 'egress[0].to[0].cidr "10.0.0.1" is not a CIDR (address/length)'],
    [{ egress: [{ to: [{}] }] }, 'egress[0].to[0].cidr is missing'],
    [{ egress: [{ to: [{ cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] }] }] }, 'egress[0].to[0].except[0] "11.0.0.0/16" is not inside cidr 10.0.0.0/8'],
    [{ egress: [{ to: [{ cidr: '10.0.0.0/8', except: ['2001:db8::/64'] }] }] }, 'egress[0].to[0].except[0] "2001:db8::/64" is not of the same address family as cidr 10.0.0.0/8'],
    [{ egress: [{ to: [{ cidr: '10.0.0.0/8', except: ['10.0.0.0/4'] }] }] }, 'egress[0].to[0].except[0] "10.0.0.0/4" is not inside cidr 10.0.0.0/8'],
    [{ egress: [{ to: [{ cidr: '10.0.0.0/8', except: ['bogus'] }] }] }, 'egress[0].to[0].except[0] "bogus" is not a CIDR (address/length)'],
    [{ ingress: [{ from: [{ cidr: '::1/200' }] }] }, 'ingress[0].from[0].cidr "::1/200" has prefix length 200, more than 128'],
    [{ egress: [{ to: [{ cidr: '10.0.0.0/8' }], toFQDNs: [{ matchName: 'a.com' }] }] }, 'egress[0] sets both to and toFQDNs; a rule takes one of them'],
    [{ egress: [{ toFQDNs: [{ matchName: 'a..com' }] }] }, 'egress[0].toFQDNs[0].matchName "a..com" is not a valid DNS name'],
    [{ egress: [{ toFQDNs: [{ matchPattern: 'a.*.com/x' }] }] }, 'egress[0].toFQDNs[0].matchPattern "a.*.com/x" is not a valid DNS pattern'],
    [{ egress: [{ toFQDNs: [{ matchName: 'a.com', matchPattern: '*.a.com' }] }] }, 'egress[0].toFQDNs[0] needs exactly one of matchName or matchPattern'],
    [{ egress: [{ toFQDNs: [{}] }] }, 'egress[0].toFQDNs[0] needs exactly one of matchName or matchPattern'],
    [{ egress: [{ to: [{ cidr: '10.0.0.0/8' }], port: 80 }] }, 'egress[0].port is not a known field'],
    [{ egress: { to: [] } }, 'egress must be a list'],
    [{ ingres: [] }, 'ingres is not a known field'],
    [{ description: 5 }, 'description must be a string'],
  ])('%j', (spec, reason) => {
    expect(reasons(spec)).toContain(reason);
  });

  test('every problem of a policy is reported, not just the first', () => {
    expect(reasons({ egress: [{ ports: [{ port: 0 }, { port: 80, endPort: 10 }] }] })).toHaveLength(2);
  });

  test('names and namespaces must be Kubernetes names', () => {
    expect(reasons({}, 'Bad_Name')).toEqual(['metadata.name "Bad_Name" is not a valid Kubernetes name']);
    expect(reasons({}, 'ok', 'a"b')).toEqual(['metadata.namespace "a\\"b" is not a valid namespace']);
    const r = parsePolicy({ apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name: 'x\n}"' } });
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.ref.name).toBe('x???');
  });
});

describe('semantics', () => {
  test('missing ports means any, missing to means any, protocol defaults to TCP', () => {
    const r = parsePolicy(cwnp('p', { egress: [{}, { ports: [{ port: 80 }] }] }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.policy.egress[0]!.ports).toEqual({ kind: 'any' });
    expect(r.policy.egress[0]!.peers).toEqual({ kind: 'any' });
    expect(r.policy.egress[1]!.ports).toEqual({ kind: 'list', ports: [{ protocol: 'tcp', range: { lo: 80, hi: 80 } }] });
  });

  test('a port entry without a port means every port of that protocol', () => {
    const r = parsePolicy(cwnp('p', { egress: [{ ports: [{ protocol: 'udp' }] }] }));
    expect(r.ok && r.policy.egress[0]!.ports).toEqual({ kind: 'list', ports: [{ protocol: 'udp', range: { lo: 0, hi: 65535 } }] });
  });

  test('host bits are masked with a warning, the policy stays', () => {
    const r = parsePolicy(cwnp('p', { egress: [{ to: [{ cidr: '203.0.113.7/24' }] }] }));
    expect(r.ok).toBe(true);
    expect(r.ok && r.policy.warnings.map(formatProblem)).toEqual(['egress[0].to[0].cidr "203.0.113.7/24" has host bits set; using 203.0.113.0/24']);
  });

  test('toFQDNs rules are parsed (lower case, trailing dot) and never become "any destination"; an empty one is noted', () => {
    const r = parsePolicy(cwnp('p', { egress: [{ toFQDNs: [{ matchName: 'Example.COM' }, { matchPattern: '*.Example.com.' }], ports: [{ port: 443 }] }] }));
    expect(r.ok && r.policy.egress[0]).toMatchObject({ toFqdns: true, peers: { kind: 'any' }, fqdns: [{ kind: 'matchName', value: 'example.com.' }, { kind: 'matchPattern', value: '*.example.com.' }] });
    expect(r.ok && r.policy.unenforced).toEqual([]);
    const empty = parsePolicy(cwnp('p', { egress: [{ toFQDNs: [], ports: [{ port: 443 }] }] }));
    expect(empty.ok && empty.policy.egress[0]!.toFqdns).toBe(true);
    expect(empty.ok && empty.policy.unenforced.map(formatProblem)).toEqual(['egress[0].toFQDNs is empty; this rule opens nothing']);
  });

  test('fqdn names are lower-cased with a trailing dot; patterns keep their stars', () => {
    expect(parseFqdn('Example.COM', false)).toEqual({ ok: true, value: 'example.com.' });
    expect(parseFqdn('*.example.com.', true)).toEqual({ ok: true, value: '*.example.com.' });
    expect(parseFqdn('*.example.com', false).ok).toBe(false);
    expect(parseFqdn(`${'a'.repeat(64)}.com`, false).ok).toBe(false);
    expect(parseFqdn('a'.repeat(5000), false).ok).toBe(false);
  });
});

test('an empty rule (YAML "-" with nothing after it) rejects the policy; it never means "everything"', () => {
  for (const spec of [{ egress: [{ ports: [{ port: 443 }] }, null] }, { ingress: [null] }, { egress: [{ toFQDNs: [null] }] }]) {
    const r = parsePolicy(cwnp('typo', spec));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problems.map(formatProblem).join()).toMatch(/is empty; a list item must be an object/);
  }
});
