/**
 * IPv4 written inside IPv6 (`::ffff:a.b.c.d`, `::a.b.c.d`) in policies and Services: the
 * IPv4-mapped form means exactly that address everywhere (cidr, except, load balancer IP); the
 * deprecated IPv4-compatible form is refused with the field named, never re-printed as another
 * address (it used to become ::ffff:…, so an except excluded the wrong host).
 */
import { compileObjects, cwnp, exampleFirewall, lbService } from '../helpers';

function run(objects: Record<string, unknown>[]) {
  const { text, compiled } = compileObjects([exampleFirewall(), ...objects]);
  const report = (name: string) => compiled.reports.find((r) => r.ref.name === name)!;
  return { text, report };
}

describe('IPv4-mapped IPv6 (::ffff:a.b.c.d) is kept exact', () => {
  test('in a cidr and its except', () => {
    const { text, report } = run([
      cwnp('mapped', { egress: [{ to: [{ cidr: '::ffff:203.0.113.0/120', except: ['::ffff:203.0.113.11/128'] }], ports: [{ port: 443 }] }] }),
    ]);
    expect(report('mapped').outcome).toBe('deployed');
    expect(report('mapped').warnings).toEqual([]);
    // the block minus exactly the one host ::ffff:203.0.113.11 = ::ffff:cb00:710b
    expect(text).toContain('::ffff:cb00:7100-::ffff:cb00:710a');
    expect(text).toContain('::ffff:cb00:710c-::ffff:cb00:71ff');
    expect(text).not.toMatch(/::cb00:71/);
  });

  test('in an ingress from', () => {
    const { text, report } = run([cwnp('mapped-in', { ingress: [{ from: [{ cidr: '::ffff:198.51.100.7/128' }], ports: [{ port: 22 }] }] })]);
    expect(report('mapped-in').outcome).toBe('deployed');
    expect(text).toContain('::ffff:c633:6407');
  });

  test('as a load balancer IP', () => {
    const { text, report } = run([lbService('lb', { loadBalancerIP: '::ffff:203.0.113.50', ports: [{ port: 80, protocol: 'TCP' }] })]);
    expect(report('lb').outcome).toBe('deployed');
    expect(text).toContain('::ffff:cb00:7132');
  });
});

describe('IPv4-compatible IPv6 (::a.b.c.d) is refused, naming the field', () => {
  const why = 'is an IPv4-compatible IPv6 address (deprecated, RFC 4291 2.5.5.1); write 203.0.113.11 for the IPv4 address or ::ffff:203.0.113.11 for the IPv4-mapped IPv6 address';

  test.each([
    ['a cidr', { egress: [{ to: [{ cidr: '::203.0.113.11/128' }] }] }, 'egress[0].to[0].cidr'],
    ['an except', { egress: [{ to: [{ cidr: '::/0', except: ['::203.0.113.11/128'] }] }] }, 'egress[0].to[0].except[0]'],
    ['an ingress from', { ingress: [{ from: [{ cidr: '::203.0.113.11/128' }] }] }, 'ingress[0].from[0].cidr'],
  ])('in %s', (_what, spec, field) => {
    const { text, report } = run([cwnp('compat', spec)]);
    const r = report('compat');
    expect(r.outcome).toBe('rejected');
    expect(r.reason).toContain(field);
    expect(r.reason).toContain(why);
    // nothing of it reaches the ruleset, in neither reading
    expect(text).not.toContain('cb00:710b');
  });

  test('as a load balancer IP: skipped with a warning (a bad IP only ever removes a destination)', () => {
    const { text, report } = run([lbService('lb-compat', { loadBalancerIP: '::203.0.113.11', ports: [{ port: 80, protocol: 'TCP' }] })]);
    expect(report('lb-compat').outcome).toBe('deployed');
    expect(report('lb-compat').warnings).toContainEqual(expect.stringContaining(`spec.loadBalancerIP "::203.0.113.11" ${why}; skipped`));
    expect(text).not.toContain('cb00:710b');
  });

  test('as a load balancer source range: the Service is rejected', () => {
    const { report } = run([
      lbService('lb-src', { loadBalancerIP: '203.0.113.50', loadBalancerSourceRanges: ['::203.0.113.11/128'], ports: [{ port: 80, protocol: 'TCP' }] }),
    ]);
    expect(report('lb-src').outcome).toBe('rejected');
    expect(report('lb-src').reason).toContain('spec.loadBalancerSourceRanges[0]');
    expect(report('lb-src').reason).toContain(why);
  });

  test('the same address in hex (::cb00:710b) is unambiguous and kept exact', () => {
    const { text, report } = run([cwnp('hex', { egress: [{ to: [{ cidr: '::/0', except: ['::cb00:710b/128'] }], ports: [{ port: 443 }] }] })]);
    expect(report('hex').outcome).toBe('deployed');
    expect(text).toContain('::cb00:710a');
    expect(text).toContain('::cb00:710c');
    expect(text).not.toContain('::ffff:cb00:710b');
  });
});
