/**
 * DnsProxy on loopback against a real dnsmasq. Where dnsmasq cannot misbehave on purpose (silent,
 * spoofing or oversize upstreams), a raw socket in this file plays the broken upstream.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { DnsProxy, ProxyEvent, Upstream } from '../../src/dns/proxy';
import { Dnsmasq } from './dnsmasq';

type Decoded = DecodedPacket & { rcode: string };
type Addr = { host: string; port: number };

const HAS_V6 = Object.values(os.networkInterfaces()).some((l) => l?.some((i) => i.address === '::1'));
const TIMEOUT = 1500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function query(name: string, type: 'A' | 'AAAA' | 'TXT' = 'A', opts: { id?: number; edns?: number; extra?: Partial<Packet> } = {}): Buffer {
  const additionals: Answer[] = opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
  return dnsPacket.encode({ id: opts.id ?? 0x1234, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }], additionals, ...opts.extra });
}

const decode = (m: Buffer): Decoded => dnsPacket.decode(m) as Decoded;
const addrs = (p: Packet): string[] => (p.answers ?? []).filter((a) => a.type === 'A' || a.type === 'AAAA').map((a) => ('data' in a ? String(a.data) : '')).sort();

/** The first datagram back, or undefined after waitMs. */
function udpAsk(to: Addr, msg: Buffer, waitMs = 8000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket(net.isIPv6(to.host) ? 'udp6' : 'udp4');
    const done = (m?: Buffer): void => { clearTimeout(t); s.close(); resolve(m); };
    const t = setTimeout(() => done(), waitMs);
    s.on('message', (m) => done(m));
    s.on('error', () => done());
    s.send(msg, to.port, to.host);
  });
}

class TcpClient {
  private buf = Buffer.alloc(0);
  private readonly frames: Buffer[] = [];
  private wake = (): void => undefined;
  closed = false;
  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
        this.frames.push(this.buf.subarray(2, 2 + this.buf.readUInt16BE(0)));
        this.buf = this.buf.subarray(2 + this.buf.readUInt16BE(0));
      }
      this.wake();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => { this.closed = true; this.wake(); });
  }
  static connect(to: Addr): Promise<TcpClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(to.port, to.host, () => resolve(new TcpClient(s)));
      s.once('error', reject);
    });
  }
  send(...msgs: Buffer[]): void {
    this.sock.write(Buffer.concat(msgs.map((m) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]))));
  }
  /** The next answer, or undefined when closed or after waitMs. */
  async next(waitMs = 8000): Promise<Buffer | undefined> {
    const end = Date.now() + waitMs;
    while (this.frames.length === 0 && !this.closed && Date.now() < end) {
      await new Promise<void>((r) => { this.wake = r; setTimeout(r, 50); });
    }
    return this.frames.shift();
  }
}

/** A stand-in upstream on UDP and TCP of one port; `script` decides what to send back per query. */
async function fakeUpstream(script: (q: Decoded, send: (m: Buffer) => void) => void): Promise<Addr & { close(): void }> {
  for (;;) {
    const server = net.createServer((c) => c.on('error', () => undefined).on('data', (d) => script(decode(d.subarray(2)), (m) => c.write(Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m])))));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((r) => { udp.once('error', () => r(false)); udp.bind(port, '127.0.0.1', () => r(true)); });
    if (!ok) { server.close(); continue; }
    udp.on('message', (m, from) => script(decode(m), (out) => udp.send(out, from.port, from.address)));
    return { host: '127.0.0.1', port, close: () => { server.close(); udp.close(); } };
  }
}

const BIG = Array.from({ length: 100 }, (_, i) => ['big.test', `198.51.100.${i + 1}`, 60] as const);
let dns: Dnsmasq;
let proxy: DnsProxy;
let upstream: Upstream | undefined;
let hook: (r: Packet) => Promise<void>;
const hooked: Packet[] = [];
const events: ProxyEvent[] = [];
let udp4: Addr, tcp4: Addr;

beforeAll(async () => {
  dns = await Dnsmasq.start({
    host: `127.0.0.${10 + (process.pid % 200)}`,
    extraArgs: ['--edns-packet-max=4096'],
    zone: {
      a: [['www.test', '192.0.2.10', 60], ['www.test', '192.0.2.11', 60], ['v4only.test', '192.0.2.20', 20], ...BIG],
      aaaa: [['www.test', '2001:db8::10', 45]],
      cname: [['alias.test', 'www.test', 30], ['alias2.test', 'alias.test', 30]],
      txt: [['txt.test', ['a'.repeat(200), 'b'.repeat(200), 'c'.repeat(200)]]],
    },
  });
  proxy = new DnsProxy({
    listen: [{ host: '127.0.0.1', port: 0 }, ...(HAS_V6 ? [{ host: '::1', port: 0 }] : [])],
    upstream: () => upstream,
    timeoutMs: TIMEOUT,
    beforeAnswer: (r) => { hooked.push(r); return hook(r); },
    onEvent: (e) => events.push(e),
  });
  await proxy.start();
  const at = (t: string, v6 = false): Addr => proxy.addresses().find((a) => a.transport === t && net.isIPv6(a.host) === v6)!;
  udp4 = at('udp');
  tcp4 = at('tcp');
});

beforeEach(() => {
  upstream = { host: dns.host, port: dns.port };
  hook = async () => undefined;
  hooked.length = 0;
  events.length = 0;
});

afterAll(async () => {
  await proxy?.stop();
  await dns?.stop();
});

describe('answers through the proxy', () => {
  it('A, AAAA and a CNAME chain over UDP, with the client ID and question case restored', async () => {
    const a = decode((await udpAsk(udp4, query('WwW.TeSt', 'A', { id: 0xbeef })))!);
    expect([a.id, a.rcode, a.questions![0]!.name, addrs(a)]).toEqual([0xbeef, 'NOERROR', 'WwW.TeSt', ['192.0.2.10', '192.0.2.11']]);
    expect(addrs(decode((await udpAsk(udp4, query('www.test', 'AAAA')))!))).toEqual(['2001:db8::10']);
    const c = decode((await udpAsk(udp4, query('alias2.test')))!);
    expect(c.answers!.filter((x) => x.type === 'CNAME').map((x) => ('data' in x ? x.data : undefined))).toEqual(['alias.test', 'www.test']);
    expect(addrs(c)).toEqual(['192.0.2.10', '192.0.2.11']);
    expect(hooked.map((r) => r.questions![0]!.name.toLowerCase())).toEqual(['www.test', 'www.test', 'alias2.test']);
    expect(events.map((e) => [e.transport, e.outcome, e.rcode])).toEqual(Array(3).fill(['udp', 'answered', 'NOERROR']));
  });

  it('over TCP: pipelined queries on one connection, then more on the same connection', async () => {
    const c = await TcpClient.connect(tcp4);
    c.send(query('www.test', 'A', { id: 1 }), query('alias.test', 'AAAA', { id: 2 }));
    const got = [decode((await c.next())!), decode((await c.next())!)].sort((x, y) => x.id! - y.id!);
    expect(got.map((g) => [g.id, addrs(g)])).toEqual([[1, ['192.0.2.10', '192.0.2.11']], [2, ['2001:db8::10']]]);
    c.send(query('v4only.test', 'A', { id: 3 }));
    expect(addrs(decode((await c.next())!))).toEqual(['192.0.2.20']);
    c.sock.destroy();
    expect(hooked).toHaveLength(3);
  });

  (HAS_V6 ? it : it.skip)('listens on ::1 and forwards to an IPv6 upstream', async () => {
    const dns6 = await Dnsmasq.start({ host: '::1', zone: { aaaa: [['six.test', '2001:db8::6', 60]] } });
    try {
      upstream = { host: dns6.host, port: dns6.port };
      const v6 = proxy.addresses().filter((a) => net.isIPv6(a.host));
      expect(addrs(decode((await udpAsk(v6.find((a) => a.transport === 'udp')!, query('six.test', 'AAAA')))!))).toEqual(['2001:db8::6']);
      const c = await TcpClient.connect(v6.find((a) => a.transport === 'tcp')!);
      c.send(query('six.test', 'AAAA'));
      expect(addrs(decode((await c.next())!))).toEqual(['2001:db8::6']);
      c.sock.destroy();
    } finally {
      await dns6.stop();
    }
  });

  it('passes other rcodes on without calling the hook', async () => {
    expect(decode((await udpAsk(udp4, query('nothing.test')))!).rcode).toBe('NXDOMAIN');
    expect(hooked).toHaveLength(0);
  });
});

describe('beforeAnswer', () => {
  it('is awaited before the client gets the answer (UDP and TCP)', async () => {
    let released = 0;
    hook = async () => { await sleep(300); released++; };
    const viaUdp = udpAsk(udp4, query('www.test')).then(() => released);
    const c = await TcpClient.connect(tcp4);
    c.send(query('www.test'));
    const viaTcp = c.next().then(() => released);
    expect(await viaUdp).toBeGreaterThanOrEqual(1);
    expect(await viaTcp).toBeGreaterThanOrEqual(1);
    expect(released).toBe(2);
    c.sock.destroy();
  });

  it('throwing or rejecting gives SERVFAIL, and the proxy goes on', async () => {
    hook = () => { throw new Error('nft said no'); };
    expect(decode((await udpAsk(udp4, query('www.test')))!).rcode).toBe('SERVFAIL');
    hook = () => Promise.reject(new Error('later no'));
    const r = decode((await udpAsk(udp4, query('www.test', 'A', { id: 77 })))!);
    expect([r.id, r.rcode, r.answers]).toEqual([77, 'SERVFAIL', []]);
    expect(events.map((e) => e.outcome)).toEqual(['refused-by-hook', 'refused-by-hook']);
    hook = async () => undefined;
    expect(decode((await udpAsk(udp4, query('www.test')))!).rcode).toBe('NOERROR');
  });
});

describe('upstream failures answer SERVFAIL', () => {
  it('on timeout (UDP and TCP), within timeoutMs plus slack', async () => {
    const silent = await fakeUpstream(() => undefined);
    upstream = silent;
    const t0 = Date.now();
    const c = await TcpClient.connect(tcp4);
    c.send(query('www.test', 'A', { id: 5 }));
    const [u, t] = await Promise.all([udpAsk(udp4, query('www.test')), c.next()]);
    const ms = Date.now() - t0;
    expect([decode(u!).rcode, decode(t!).rcode, decode(t!).id]).toEqual(['SERVFAIL', 'SERVFAIL', 5]);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT - 20);
    expect(ms).toBeLessThan(TIMEOUT + 5000);
    c.sock.destroy();
    silent.close();
  });

  it('when nothing listens (ICMP / connection refused), without waiting for the timeout', async () => {
    const gone = await fakeUpstream(() => undefined);
    gone.close();
    upstream = gone;
    const t0 = Date.now();
    expect(decode((await udpAsk(udp4, query('www.test')))!).rcode).toBe('SERVFAIL');
    const c = await TcpClient.connect(tcp4);
    c.send(query('www.test'));
    expect(decode((await c.next())!).rcode).toBe('SERVFAIL');
    expect(Date.now() - t0).toBeLessThan(2 * TIMEOUT); // the timeout would take 2 x TIMEOUT
    c.sock.destroy();
  });

  it('when there is no upstream, or it is the proxy itself', async () => {
    upstream = undefined;
    expect(decode((await udpAsk(udp4, query('www.test')))!).rcode).toBe('SERVFAIL');
    upstream = udp4;
    expect(decode((await udpAsk(udp4, query('www.test')))!).rcode).toBe('SERVFAIL');
    expect(events).toHaveLength(2);
  });

  it('ignores answers with a wrong ID or question and takes the right one', async () => {
    let garbage = false;
    const fake = await fakeUpstream((q, send) => {
      const name = q.questions![0]!.name;
      const r = (id: number, n: string, ip: string): Buffer => dnsPacket.encode({ id, type: 'response', questions: [{ name: n, type: 'A' }], answers: [{ type: 'A', name: n, data: ip, ttl: 60 }] });
      send(r((q.id! + 1) & 0xffff, name, '198.51.100.66'));
      send(r(q.id!, 'evil.test', '198.51.100.67'));
      if (garbage) send(Buffer.from('garbage!!garbage!!'));
      send(r(q.id!, name.toUpperCase(), '192.0.2.77'));
    });
    upstream = fake;
    for (const ask of [(m: Buffer) => udpAsk(udp4, m), async (m: Buffer) => { const c = await TcpClient.connect(tcp4); c.send(m); return c.next().finally(() => c.sock.destroy()); }]) {
      garbage = false;
      const ok = decode((await ask(query('www.test', 'A', { id: 21 })))!);
      expect([ok.id, ok.rcode, addrs(ok)]).toEqual([21, 'NOERROR', ['192.0.2.77']]);
      garbage = true; // from the upstream's own address and port: it is broken
      const bad = decode((await ask(query('www.test', 'A', { id: 22 })))!);
      expect([bad.id, bad.rcode, addrs(bad)]).toEqual([22, 'SERVFAIL', []]);
    }
    expect(hooked.map(addrs)).toEqual([['192.0.2.77'], ['192.0.2.77']]);
    fake.close();
  });
});

describe('truncation', () => {
  it('a UDP answer over the client size has TC set; over TCP it is whole', async () => {
    for (const edns of [undefined, 512, 700]) {
      const r = decode((await udpAsk(udp4, query('big.test', 'A', { edns })))!);
      expect([r.flag_tc, r.rcode]).toEqual([true, 'NOERROR']);
    }
    expect(decode((await udpAsk(udp4, query('big.test', 'A', { edns: 4000 })))!).answers).toHaveLength(100);
    const c = await TcpClient.connect(tcp4);
    c.send(query('big.test'), query('txt.test', 'TXT'));
    const got = [decode((await c.next())!), decode((await c.next())!)];
    expect(got.map((g) => g.answers!.length).sort()).toEqual([1, 100]);
    c.sock.destroy();
  });

  it('an upstream ignoring the client size: header and question only, TC set, no hook', async () => {
    const answers: Answer[] = BIG.map(([name, data]) => ({ type: 'A', name, data, ttl: 60 }));
    const fake = await fakeUpstream((q, send) => send(dnsPacket.encode({ id: q.id, type: 'response', questions: q.questions, answers })));
    upstream = fake;
    const r = decode((await udpAsk(udp4, query('big.test', 'A', { id: 42 })))!);
    expect([r.id, r.flag_tc, r.questions, r.answers]).toEqual([42, true, [{ name: 'big.test', type: 'A', class: 'IN' }], []]);
    expect(hooked).toHaveLength(0);
    expect(addrs(decode((await udpAsk(udp4, query('big.test', 'A', { edns: 4096 })))!))).toHaveLength(100);
    expect(hooked).toHaveLength(1);
    fake.close();
  });
});

describe('malformed queries', () => {
  it('FORMERR without exactly one question, NOTIMP for other opcodes', async () => {
    const two = decode((await udpAsk(udp4, query('www.test', 'A', { id: 3, extra: { questions: [{ name: 'a.test', type: 'A' }, { name: 'b.test', type: 'A' }] } })))!);
    expect([two.id, two.rcode]).toEqual([3, 'FORMERR']);
    const none = decode((await udpAsk(udp4, query('www.test', 'A', { id: 4, extra: { questions: [] } })))!);
    expect([none.id, none.rcode]).toEqual([4, 'FORMERR']);
    const notify = decode((await udpAsk(udp4, query('www.test', 'A', { id: 5, extra: { flags: 4 << 11 } })))!);
    expect([notify.id, notify.rcode]).toEqual([5, 'NOTIMP']);
    const c = await TcpClient.connect(tcp4);
    c.send(query('www.test', 'A', { id: 6, extra: { questions: [] } }));
    expect(decode((await c.next())!).rcode).toBe('FORMERR');
    c.sock.destroy();
    expect(hooked).toHaveLength(0);
  });

  it('drops responses (no error ping-pong), short and trailing-garbage packets', async () => {
    const response = dnsPacket.encode({ id: 8, type: 'response', questions: [{ name: 'www.test', type: 'A' }] });
    const replies = await Promise.all([response, Buffer.alloc(5), Buffer.concat([query('www.test'), Buffer.from([0])])].map((m) => udpAsk(udp4, m, 500)));
    expect(replies).toEqual([undefined, undefined, undefined]);
    expect(events.map((e) => e.outcome)).toEqual(['dropped', 'dropped', 'dropped']);
  });

  it('closes a TCP connection with an impossible length prefix', async () => {
    for (const prefix of [[0, 0], [0, 5], [0xff, 0xff]]) {
      const c = await TcpClient.connect(tcp4);
      c.sock.write(Buffer.from(prefix));
      expect(await c.next()).toBeUndefined();
      expect(c.closed).toBe(true);
    }
  });
});

describe('connections and lifecycle', () => {
  const tcpOf = (p: DnsProxy): Addr => p.addresses().find((a) => a.transport === 'tcp')!;

  it('closes idle TCP connections and new ones beyond maxTcpConnections', async () => {
    const p = new DnsProxy({ listen: [{ host: '127.0.0.1', port: 0 }], upstream: () => upstream, tcpIdleMs: 300, maxTcpConnections: 2 });
    await p.start();
    const [a, b] = [await TcpClient.connect(tcpOf(p)), await TcpClient.connect(tcpOf(p))];
    a.send(query('www.test'));
    b.send(query('www.test'));
    expect([await a.next(), await b.next()].every(Boolean)).toBe(true); // both are counted by now
    const c = await TcpClient.connect(tcpOf(p));
    expect([await c.next(), c.closed]).toEqual([undefined, true]);
    expect([await a.next(), a.closed, await b.next(), b.closed]).toEqual([undefined, true, undefined, true]);
    await p.stop();
  });

  it('answers a client that half-closes after writing its queries', async () => {
    const c = await TcpClient.connect(tcp4);
    c.send(query('www.test', 'A', { id: 1 }), query('www.test', 'AAAA', { id: 2 }));
    c.sock.end();
    expect([decode((await c.next())!).rcode, decode((await c.next())!).rcode]).toEqual(['NOERROR', 'NOERROR']);
  });

  it('stop() drops pending queries, closes connections and frees the ports', async () => {
    let seen = 0;
    const silent = await fakeUpstream(() => seen++);
    const p = new DnsProxy({ listen: [{ host: '127.0.0.1', port: 0 }], upstream: () => silent, timeoutMs: 20000 });
    await p.start();
    const [u, t] = [p.addresses().find((a) => a.transport === 'udp')!, tcpOf(p)];
    const viaUdp = udpAsk(u, query('www.test'), 800);
    const c = await TcpClient.connect(t);
    c.send(query('www.test'));
    while (seen < 2) await sleep(20);
    await p.stop();
    expect([await viaUdp, await c.next(), c.closed, p.addresses()]).toEqual([undefined, undefined, true, []]);
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.bind(u.port, '127.0.0.1', resolve); });
    s.close();
    const srv = net.createServer();
    await new Promise<void>((resolve, reject) => { srv.once('error', reject); srv.listen(t.port, '127.0.0.1', resolve); });
    srv.close();
    silent.close();
  });
});

describe('fuzz', () => {
  /** Small seeded PRNG (mulberry32), so a failure can be replayed with FUZZ_SEED. */
  function prng(seed: number): () => number {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it('stays up under random, truncated and mutated packets; the hook sees only answers to valid queries', async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9);
    const rnd = prng(seed);
    const int = (n: number): number => Math.floor(rnd() * n);
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)));
    const names = ['www.test', 'alias.test', 'alias2.test', 'big.test', 'txt.test', 'nothing.test', 'v4only.test'];
    const valid = (): Buffer => query(names[int(names.length)]!, (['A', 'AAAA', 'TXT'] as const)[int(3)], { id: int(65536), edns: rnd() < 0.5 ? 512 + int(4000) : undefined });
    const mutate = (m: Buffer): Buffer => {
      let b = Buffer.from(m);
      for (let k = 1 + int(3); k > 0; k--) {
        const at = int(b.length);
        const op = int(5);
        if (op === 0) b[at] = b[at]! ^ (1 << int(8));
        else if (op === 1) b[at] = int(256);
        else if (op === 2) b = b.subarray(0, at);
        else if (op === 3) b = Buffer.concat([b, bytes(1 + int(40))]);
        else b = Buffer.concat([b.subarray(0, at), b.subarray(int(b.length))]);
      }
      return b;
    };
    const packet = (): Buffer => [valid, () => mutate(valid()), () => mutate(valid()), () => bytes(int(600))][int(4)]!();
    /** The proxy's rule, restated: what it may forward, hence the only questions the hook may see. */
    const forwardable = new Set<string>();
    let forwardableCount = 0;
    const note = (m: Buffer): void => {
      try {
        const p = dnsPacket.decode(m) as Decoded & { opcode: string };
        if (dnsPacket.decode.bytes !== m.length || m.length > 1024 || p.flag_qr || p.opcode !== 'QUERY' || p.questions?.length !== 1) return;
        forwardable.add(`${p.questions[0]!.name.toLowerCase()}/${p.questions[0]!.type}`);
        forwardableCount++;
      } catch { /* not a query */ }
    };

    const clients = Array.from({ length: 8 }, () => dgram.createSocket('udp4').on('message', () => undefined));
    for (let i = 0; i < 3000; i++) {
      const m = packet();
      note(m);
      clients[i % clients.length]!.send(m, udp4.port, udp4.host);
      if (i % 100 === 99) await sleep(10);
    }
    await Promise.all(Array.from({ length: 40 }, async () => {
      const c = await TcpClient.connect(tcp4);
      const parts: Buffer[] = [];
      for (let i = 0; i < 20; i++) {
        const kind = int(10);
        if (kind < 7) {
          const m = kind < 3 ? valid() : kind < 6 ? mutate(valid()) : bytes(int(100));
          note(m);
          parts.push(Buffer.from([m.length >> 8, m.length & 0xff]), m);
        } else if (kind < 9) parts.push(bytes(1 + int(30))); // junk that breaks the framing
        else parts.push(Buffer.from([int(256), int(256)])); // a random length prefix
      }
      const all = Buffer.concat(parts);
      for (let at = 0; at < all.length && !c.closed; ) {
        const n = 1 + int(200);
        c.sock.write(all.subarray(at, at + n));
        at += n;
        if (rnd() < 0.2) await sleep(1);
      }
      c.sock.end();
      while (!c.closed && (await c.next(3000)) !== undefined);
      c.sock.destroy();
    }));
    await sleep(TIMEOUT + 500); // whatever dnsmasq left unanswered has timed out by now
    for (const c of clients) c.close();

    expect(decode((await udpAsk(udp4, query('www.test')))!).rcode).toBe('NOERROR');
    const c = await TcpClient.connect(tcp4);
    c.send(query('www.test', 'AAAA'));
    expect(addrs(decode((await c.next())!))).toEqual(['2001:db8::10']);
    c.sock.destroy();
    const seenQuestions = hooked.slice(0, -2).map((r) => `${r.questions![0]!.name.toLowerCase()}/${r.questions![0]!.type}`);
    expect({ seed, strays: seenQuestions.filter((q) => !forwardable.has(q)) }).toEqual({ seed, strays: [] });
    expect(seenQuestions.length).toBeLessThanOrEqual(forwardableCount);
    expect(hooked.every((r) => (r as Decoded).rcode === 'NOERROR')).toBe(true);
    expect(events.length).toBeGreaterThan(1000);
  });
});
