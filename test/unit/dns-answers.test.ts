import * as dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';
import { isNoError, resolvedAddresses } from '../../src/dns/answers';

const A = (name: string, data: string, ttl = 300): Answer => ({ type: 'A', name, data, ttl, class: 'IN' });
const AAAA = (name: string, data: string, ttl = 300): Answer => ({ type: 'AAAA', name, data, ttl, class: 'IN' });
const CNAME = (name: string, data: string, ttl = 300): Answer => ({ type: 'CNAME', name, data, ttl, class: 'IN' });

/** A response as it arrives: encoded and decoded again, so the tests see what the proxy sees. */
function response(qname: string, answers: Answer[], rcode = 0): Packet {
  return dnsPacket.decode(dnsPacket.encode({ id: 7, type: 'response', flags: rcode, questions: [{ name: qname, type: 'A' }], answers }));
}

describe('resolvedAddresses', () => {
  it('collects A records of the question name, lower case without trailing dot', () => {
    const r = resolvedAddresses(response('WWW.Example.COM.', [A('www.example.com', '192.0.2.1', 60), A('WWW.EXAMPLE.COM.', '192.0.2.2', 30)]));
    expect(r.names).toEqual(['www.example.com']);
    expect(r.addresses).toEqual([
      { address: '192.0.2.1', family: 4, ttl: 60 },
      { address: '192.0.2.2', family: 4, ttl: 30 },
    ]);
  });

  it('follows a CNAME chain; a TTL is bounded by the CNAMEs leading to it', () => {
    const r = resolvedAddresses(
      response('a.example', [CNAME('a.example', 'B.example.', 20), CNAME('b.example', 'c.example', 100), A('c.example', '192.0.2.3', 3600), AAAA('b.example', '2001:db8::1', 50)]),
    );
    expect(r.names).toEqual(['a.example', 'b.example', 'c.example']);
    expect(r.addresses).toEqual([
      { address: '192.0.2.3', family: 4, ttl: 20 },
      { address: '2001:db8::1', family: 6, ttl: 20 },
    ]);
  });

  it('ignores records whose owner is not in the chain (no smuggled addresses)', () => {
    const r = resolvedAddresses(
      response('a.example', [CNAME('a.example', 'b.example'), A('b.example', '192.0.2.4'), A('evil.example', '198.51.100.66'), CNAME('other.example', 'a.example'), A('example', '198.51.100.67')]),
    );
    expect(r.names).toEqual(['a.example', 'b.example']);
    expect(r.addresses.map((a) => a.address)).toEqual(['192.0.2.4']);
  });

  it('stops at a CNAME loop', () => {
    const r = resolvedAddresses(response('a.example', [CNAME('a.example', 'b.example'), CNAME('b.example', 'A.example'), A('b.example', '192.0.2.5')]));
    expect(r.names).toEqual(['a.example', 'b.example']);
    expect(r.addresses.map((a) => a.address)).toEqual(['192.0.2.5']);
  });

  it('follows at most maxChain CNAME hops', () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 15; i++) answers.push(CNAME(`n${i}.example`, `n${i + 1}.example`));
    for (let i = 0; i <= 15; i++) answers.push(A(`n${i}.example`, `192.0.2.${100 + i}`));
    const r = resolvedAddresses(response('n0.example', answers));
    expect(r.names).toHaveLength(11);
    expect(r.names[10]).toBe('n10.example');
    expect(r.addresses.map((a) => a.address)).not.toContain('192.0.2.111');
    expect(r.addresses).toHaveLength(11);
    const two = resolvedAddresses(response('n0.example', answers), 2);
    expect(two.names).toEqual(['n0.example', 'n1.example', 'n2.example']);
    expect(resolvedAddresses(response('n0.example', answers), 0).names).toEqual(['n0.example']);
  });

  it('re-prints addresses canonically; IPv4-mapped AAAA stays IPv6', () => {
    const r = resolvedAddresses(response('x.example', [AAAA('x.example', '2001:0DB8:0000:0000:0000:0000:0000:0001'), AAAA('x.example', '::ffff:192.0.2.9')]));
    expect(r.addresses).toEqual([
      { address: '2001:db8::1', family: 6, ttl: 300 },
      { address: '::ffff:c000:209', family: 6, ttl: 300 },
    ]);
  });

  it('keeps one entry per address, with the longest TTL', () => {
    const r = resolvedAddresses(response('x.example', [A('x.example', '192.0.2.1', 10), A('x.example', '192.0.2.1', 90)]));
    expect(r.addresses).toEqual([{ address: '192.0.2.1', family: 4, ttl: 90 }]);
  });

  it('is empty unless the rcode is NOERROR', () => {
    expect(resolvedAddresses(response('x.example', [A('x.example', '192.0.2.1')], 3))).toEqual({ names: [], addresses: [] });
    expect(resolvedAddresses(response('x.example', [A('x.example', '192.0.2.1')], 2))).toEqual({ names: [], addresses: [] });
    expect(isNoError(response('x.example', []))).toBe(true);
  });

  it('is empty for an extended RCODE (EDNS) even if the header says NOERROR', () => {
    const p = dnsPacket.decode(
      dnsPacket.encode({
        type: 'response',
        questions: [{ name: 'x.example', type: 'A' }],
        answers: [A('x.example', '192.0.2.1')],
        additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 1, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
      }),
    );
    expect(resolvedAddresses(p).addresses).toEqual([]);
  });

  it('is empty without exactly one question', () => {
    const none = dnsPacket.decode(dnsPacket.encode({ type: 'response', questions: [], answers: [A('x.example', '192.0.2.1')] }));
    expect(resolvedAddresses(none).addresses).toEqual([]);
    const two = dnsPacket.decode(dnsPacket.encode({ type: 'response', questions: [{ name: 'x.example', type: 'A' }, { name: 'y.example', type: 'A' }], answers: [A('x.example', '192.0.2.1')] }));
    expect(resolvedAddresses(two).addresses).toEqual([]);
  });

  it('ignores other classes and other record types', () => {
    const r = resolvedAddresses(
      response('x.example', [{ type: 'A', name: 'x.example', data: '192.0.2.1', class: 'CH', ttl: 5 }, { type: 'TXT', name: 'x.example', data: ['192.0.2.2'] }, A('x.example', '192.0.2.3')]),
    );
    expect(r.addresses.map((a) => a.address)).toEqual(['192.0.2.3']);
  });

  it('works on packets built in memory (no decoded rcode field)', () => {
    const p: Packet = { type: 'response', flags: 0, questions: [{ name: 'y.example', type: 'AAAA' }], answers: [AAAA('y.example', '2001:db8::2', 7)] };
    expect(resolvedAddresses(p)).toEqual({ names: ['y.example'], addresses: [{ address: '2001:db8::2', family: 6, ttl: 7 }] });
    expect(resolvedAddresses({ ...p, flags: 3 }).addresses).toEqual([]);
  });
});
