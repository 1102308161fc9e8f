import { formatAddress, formatPrefix, formatRange, parseAddress, parsePrefix, prefixContains, rangeAsPrefix } from '../../src/model/address';
import { covers, fromPrefixes, normalize, subtract } from '../../src/model/rangeset';

function prefix(s: string) {
  const r = parsePrefix(s);
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

describe('parseAddress', () => {
  test.each(['192.0.2.1', '0.0.0.0', '2001:db8::1', '::', '::ffff:192.0.2.1'])('accepts %s', (s) => {
    expect(parseAddress(s).ok).toBe(true);
  });
  test.each(['192.0.2', '192.0.2.256', '0x7f.0.0.1', '1.2.3.4 ', '2001:db8::1%eth0', 'fe80::1::2', '', '192.0.2.1/32', 7, null])(
    'rejects %p',
    (s) => {
      expect(parseAddress(s).ok).toBe(false);
    },
  );
});

describe('IPv4 embedded in IPv6 (dotted-quad forms)', () => {
  const fmt = (s: string): string => {
    const r = parseAddress(s);
    if (!r.ok) throw new Error(r.error);
    return formatAddress(r.value);
  };

  test.each([
    ['::ffff:203.0.113.11', '::ffff:cb00:710b'],
    ['::FFFF:203.0.113.11', '::ffff:cb00:710b'],
    ['64:ff9b::203.0.113.11', '64:ff9b::cb00:710b'],
    ['::ffff:0:203.0.113.11', '::ffff:0:cb00:710b'],
    ['1:2:3:4:5:6:203.0.113.11', '1:2:3:4:5:6:cb00:710b'],
    ['::cb00:710b', '::cb00:710b'],
  ])('%s is exactly %s', (text, exact) => {
    expect(fmt(text)).toBe(exact);
    // and the same value as the hex spelling
    expect(parseAddress(text)).toEqual(parseAddress(exact));
  });

  test.each(['::203.0.113.11', '0:0:0:0:0:0:203.0.113.11', '0::203.0.113.11', '::0.0.0.1'])(
    'the deprecated IPv4-compatible form %s is refused with the two forms meant instead',
    (text) => {
      const r = parseAddress(text);
      expect(r.ok).toBe(false);
      const v4 = text.slice(text.lastIndexOf(':') + 1);
      if (!r.ok) {
        expect(r.error).toContain('is an IPv4-compatible IPv6 address (deprecated, RFC 4291 2.5.5.1)');
        expect(r.error).toContain(`write ${v4} for the IPv4 address or ::ffff:${v4} for the IPv4-mapped IPv6 address`);
      }
    },
  );

  test.each(['::ffff:203.0.113.256', '::ffff:203.0.113', '::ffff:203.0.113.011', '1:2:3:4:5:6:7:203.0.113.11', '203.0.113.11::', '::ffff:203.0.113.11%eth0'])('rejects %s', (text) => {
    expect(parseAddress(text).ok).toBe(false);
  });

  test('prefixes: the mapped form is exact, the compatible form is refused', () => {
    expect(formatPrefix(prefix('::ffff:203.0.113.11/128'))).toBe('::ffff:cb00:710b/128');
    expect(formatPrefix(prefix('::ffff:203.0.113.0/120'))).toBe('::ffff:cb00:7100/120');
    expect(formatPrefix(prefix('::ffff:0.0.0.0/96'))).toBe('::ffff:0:0/96');
    const compat = parsePrefix('::203.0.113.11/128');
    expect(compat.ok).toBe(false);
    if (!compat.ok) expect(compat.error).toMatch(/^"::203.0.113.11\/128" is not a CIDR: "::203.0.113.11" is an IPv4-compatible IPv6 address/);
    // never silently re-printed as the IPv4-mapped address (the old behaviour)
    expect(JSON.stringify(compat)).not.toContain('::ffff:cb00:710b');
  });
});

describe('parsePrefix', () => {
  test('canonical prefixes re-print as given', () => {
    for (const s of ['192.0.2.0/24', '0.0.0.0/0', '2001:db8::/32', '::/0', '203.0.113.7/32', '2001:db8::1/128']) {
      expect(formatPrefix(prefix(s))).toBe(s);
    }
  });
  test('IPv6 is re-printed in canonical form', () => {
    expect(formatPrefix(prefix('2001:0DB8:0000::/48'))).toBe('2001:db8::/48');
  });
  test('host bits are masked and reported', () => {
    const r = parsePrefix('192.0.2.77/24');
    expect(r.ok && formatPrefix(r.value)).toBe('192.0.2.0/24');
    expect(r.ok && r.hostBitsMasked).toBe(true);
    expect(parsePrefix('192.0.2.0/24').ok && (parsePrefix('192.0.2.0/24') as { hostBitsMasked: boolean }).hostBitsMasked).toBe(false);
  });
  test.each([
    ['192.0.2.1', /not a CIDR/],
    ['192.0.2.0/33', /more than 32/],
    ['2001:db8::/129', /more than 128/],
    ['192.0.2.0/024', /invalid prefix length/],
    ['192.0.2.0/-1', /invalid prefix length/],
    ['192.0.2.0/24 } accept', /invalid prefix length/],
    ['x/8', /not an IP address/],
  ])('rejects %s', (s, msg) => {
    const r = parsePrefix(s);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(msg);
  });
});

describe('ranges', () => {
  test('prefix containment is family-aware', () => {
    expect(prefixContains(prefix('192.0.2.0/24'), prefix('192.0.2.128/25'))).toBe(true);
    expect(prefixContains(prefix('192.0.2.128/25'), prefix('192.0.2.0/24'))).toBe(false);
    expect(prefixContains(prefix('::/0'), prefix('192.0.2.0/24'))).toBe(false);
  });

  test('overlapping and adjacent prefixes are merged', () => {
    const set = fromPrefixes([prefix('192.0.2.0/25'), prefix('192.0.2.128/25'), prefix('192.0.2.64/26'), prefix('198.51.100.0/24')], 4);
    expect(set.map(formatRange)).toEqual(['192.0.2.0/24', '198.51.100.0/24']);
  });

  test('subtract carves except out and prints ranges that are not prefixes', () => {
    const set = subtract(fromPrefixes([prefix('203.0.113.0/24')], 4), fromPrefixes([prefix('203.0.113.20/32'), prefix('203.0.113.128/25')], 4));
    expect(set.map(formatRange)).toEqual(['203.0.113.0-203.0.113.19', '203.0.113.21-203.0.113.127']);
    expect(subtract(fromPrefixes([prefix('203.0.113.0/24')], 4), fromPrefixes([prefix('203.0.113.0/24')], 4))).toEqual([]);
  });

  test('covers and rangeAsPrefix', () => {
    const set = normalize(fromPrefixes([prefix('198.51.100.0/24')], 4));
    expect(covers(set, fromPrefixes([prefix('198.51.100.5/32')], 4)[0]!)).toBe(true);
    expect(covers(set, fromPrefixes([prefix('198.51.0.0/16')], 4)[0]!)).toBe(false);
    expect(rangeAsPrefix({ family: 4, lo: 0n, hi: 2n })).toBeUndefined();
  });
});
