/**
 * The DNS proxy's transport: receives queries over UDP and TCP, forwards each well-formed one to the
 * upstream resolver over the client's transport, lets a hook see every NOERROR answer before the
 * client does, and answers SERVFAIL whenever the upstream cannot be trusted to have answered.
 *
 * Wire format is dns-packet's; this module only reads the TCP length prefix and patches the ID of
 * messages dns-packet decoded.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import { isNoError } from './answers';

export interface Upstream { readonly host: string; readonly port: number }
export type Transport = 'udp' | 'tcp';
export interface ProxyEvent {
  transport: Transport;
  outcome: 'answered' | 'servfail' | 'formerr' | 'dropped' | 'refused-by-hook';
  ms: number;
  rcode?: string;
}
export interface ProxyOptions {
  /** Addresses to listen on, UDP and TCP each (IPv4 and IPv6 literals). */
  readonly listen: readonly { host: string; port: number }[];
  /** Asked per query, so an upstream change applies at once. undefined => SERVFAIL. */
  readonly upstream: () => Upstream | undefined;
  /** Upstream timeout (ms), default 3000; then SERVFAIL. */
  readonly timeoutMs?: number;
  /** Client TCP connections, default 256; new ones beyond are closed at once. */
  readonly maxTcpConnections?: number;
  /** A client TCP connection without traffic or pending queries is closed after this, default 10000 ms. */
  readonly tcpIdleMs?: number;
  /** Queries waiting for the upstream at once (each holds a socket), default 1024; beyond => SERVFAIL. */
  readonly maxInFlight?: number;
  /**
   * Called with every decoded upstream response whose rcode is NOERROR and whose records reach the
   * client, BEFORE it is sent to the client; the proxy awaits it. If it throws/rejects, the client
   * gets SERVFAIL instead of the answer.
   */
  readonly beforeAnswer?: (response: Packet, transport: Transport) => Promise<void>;
  readonly onEvent?: (e: ProxyEvent) => void;
}

type Decoded = DecodedPacket & { opcode?: string; rcode?: string };
interface Query { readonly msg: Buffer; readonly packet: Decoded; readonly question: Question }
interface Reply { readonly msg: Buffer; readonly packet: Decoded }

/**
 * Largest query accepted. A query is one question plus OPT/TSIG, far below this; the bound keeps
 * the decoding work an untrusted client can cause small (compression pointer chains make decoding
 * cost grow with the square of the size: ~0.2 ms at 1 KiB, ~12 ms at 4 KiB).
 */
const MAX_QUERY = 1024;
const MAX_MESSAGE = 65535;
/** Pipelined queries of one TCP client worked on at once; the rest wait in the socket. */
const MAX_TCP_PENDING = 16;
/** Answers a TCP client has not read; beyond, it is not reading and is cut off. */
const MAX_TCP_BACKLOG = 256 * 1024;
const RCODE = { FORMERR: 1, SERVFAIL: 2, NOTIMP: 4 } as const;
const ECHOED_FLAGS = 0x7800 | dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED; // opcode, RD, CD

/** A whole message that dns-packet decodes without error and without trailing bytes, else undefined. */
function decodeWhole(buf: Buffer): Decoded | undefined {
  try {
    const p = dnsPacket.decode(buf) as Decoded;
    return dnsPacket.decode.bytes === buf.length ? p : undefined;
  } catch {
    return undefined;
  }
}

function ednsOf(p: Packet): Answer | undefined {
  return (p.additionals ?? []).find((a) => a.type === 'OPT');
}

/** The largest UDP answer the client takes: its EDNS0 payload size (at least 512), else 512. */
function udpLimit(q: Decoded): number {
  const opt = ednsOf(q);
  const size = opt && 'udpPayloadSize' in opt ? opt.udpPayloadSize : 0;
  return Math.max(512, Math.min(size, MAX_MESSAGE));
}

/**
 * Whether dns-packet re-encodes the question to what the client sent: labels decode as UTF-8 and
 * unknown classes encode as 0, so other names and classes are not echoed in our own responses.
 */
function echoable(q: Question): boolean {
  return /^[\x21-\x7e]+$/.test(q.name) && ['IN', 'CS', 'CH', 'HS', 'ANY'].includes(q.class ?? 'IN');
}

/** A header-only response (plus question and OPT when the query had them) for query `q`. */
function shortResponse(q: Decoded, flags: number, question: Question[]): Buffer {
  const questions = question.filter(echoable);
  const opt: Answer[] = ednsOf(q) ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
  return dnsPacket.encode({ id: q.id ?? 0, type: 'response', flags, questions, additionals: opt });
}

function errorResponse(q: Decoded, rcode: number): Buffer {
  const questions = q.questions?.length === 1 ? q.questions : [];
  return shortResponse(q, ((q.flags ?? 0) & ECHOED_FLAGS) | dnsPacket.RECURSION_AVAILABLE | rcode, questions);
}

function sameQuestion(a: Question, b: Question): boolean {
  return a.name.toLowerCase() === b.name.toLowerCase() && a.type === b.type && (a.class ?? 'IN') === (b.class ?? 'IN');
}

/** Length-prefixed messages out of a TCP byte stream. */
class Frames {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly min: number, private readonly max: number) {}
  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }
  /** The next whole message; undefined while incomplete; 'invalid' when the length is out of bounds. */
  next(): Buffer | undefined | 'invalid' {
    if (this.buf.length < 2) return undefined;
    const len = this.buf.readUInt16BE(0);
    if (len < this.min || len > this.max) return 'invalid';
    if (this.buf.length < 2 + len) return undefined;
    const msg = this.buf.subarray(2, 2 + len);
    this.buf = this.buf.subarray(2 + len);
    return msg;
  }
}

function framed(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(msg.length + 2);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

export class DnsProxy {
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly conns = new Set<net.Socket>();
  /** Cancels of the upstream exchanges under way, so stop() can end them. */
  private readonly inFlight = new Set<() => void>();
  private state: 'new' | 'running' | 'stopped' = 'new';
  /** Our own bound addresses: an upstream among them would forward queries in a circle. */
  private readonly self = new Set<string>();

  constructor(private readonly opts: ProxyOptions) {}

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('DNS proxy: start() called twice');
    this.state = 'running';
    try {
      for (const { host, port } of this.opts.listen) {
        if (!net.isIP(host)) throw new Error(`DNS proxy: listen address ${JSON.stringify(host)} is not an IP address`);
        await this.listenUdp(host, port).catch((e: unknown) => { throw listenError('udp', host, port, e); });
        await this.listenTcp(host, port).catch((e: unknown) => { throw listenError('tcp', host, port, e); });
      }
      for (const a of this.addresses()) this.self.add(`${a.host} ${a.port}`);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Closes every socket and connection; pending queries are dropped without an answer. */
  async stop(): Promise<void> {
    this.state = 'stopped';
    for (const cancel of [...this.inFlight]) cancel();
    for (const c of this.conns) c.destroy();
    await Promise.all([
      ...this.udp.map((s) => new Promise<void>((resolve) => { try { s.close(() => resolve()); } catch { resolve(); } })),
      ...this.tcp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    ]);
    this.udp.length = 0;
    this.tcp.length = 0;
  }

  addresses(): { host: string; port: number; transport: Transport }[] {
    const tcp = this.tcp.map((s) => s.address()).filter((a): a is net.AddressInfo => typeof a === 'object' && a !== null);
    return [
      ...this.udp.map((s) => ({ host: s.address().address, port: s.address().port, transport: 'udp' as const })),
      ...tcp.map((a) => ({ host: a.address, port: a.port, transport: 'tcp' as const })),
    ];
  }

  private listenUdp(host: string, port: number): Promise<void> {
    // A large receive buffer absorbs bursts (the kernel caps it at net.core.rmem_max).
    const sock = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4', recvBufferSize: 1 << 22, ...(net.isIPv6(host) ? { ipv6Only: true } : {}) });
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: host, port, exclusive: true }, () => {
        sock.off('error', reject);
        // After binding, errors are about single datagrams (ICMP for earlier sends); the socket lives on.
        sock.on('error', () => undefined);
        sock.on('message', (msg, from) => void this.handle(msg, 'udp', (answer) => {
          try { sock.send(answer, from.port, from.address, () => undefined); } catch { /* closed meanwhile */ }
        }));
        this.udp.push(sock);
        resolve();
      });
    });
  }

  private listenTcp(host: string, port: number): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true }, (c) => this.serveTcp(c));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, ipv6Only: true, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', () => undefined); // accept errors (e.g. EMFILE) concern one connection
        this.tcp.push(server);
        resolve();
      });
    });
  }

  private serveTcp(conn: net.Socket): void {
    conn.on('error', () => conn.destroy());
    if (this.state !== 'running' || this.conns.size >= (this.opts.maxTcpConnections ?? 256)) return void conn.destroy();
    this.conns.add(conn);
    conn.on('close', () => this.conns.delete(conn));
    conn.setNoDelay(true);
    conn.setTimeout(this.opts.tcpIdleMs ?? 10000);
    const frames = new Frames(12, MAX_QUERY);
    let pending = 0;
    let ended = false;
    const pump = (): void => {
      if (conn.destroyed) return;
      while (pending < MAX_TCP_PENDING) {
        const msg = frames.next();
        if (msg === undefined) break;
        if (msg === 'invalid') return void conn.destroy(); // the stream cannot be trusted to be in step any more
        pending++;
        void this.handle(msg, 'tcp', (answer) => {
          if (conn.destroyed) return;
          conn.write(framed(answer));
          if (conn.writableLength > MAX_TCP_BACKLOG) conn.destroy();
        }).finally(() => { pending--; pump(); });
      }
      if (pending >= MAX_TCP_PENDING) conn.pause();
      else if (ended && pending === 0) { if (!conn.writableEnded) conn.end(); }
      else conn.resume();
    };
    conn.on('data', (chunk: Buffer) => { frames.push(chunk); pump(); });
    // The client sent all it will: answer what is pending, then close.
    conn.on('end', () => { ended = true; pump(); });
    conn.on('timeout', () => { if (pending === 0) conn.destroy(); });
  }

  /** One client message, start to end; never throws. */
  private async handle(msg: Buffer, transport: Transport, reply: (answer: Buffer) => void): Promise<void> {
    const t0 = performance.now();
    const report = (outcome: ProxyEvent['outcome'], rcode?: string): void => {
      try {
        this.opts.onEvent?.({ transport, outcome, ms: performance.now() - t0, ...(rcode ? { rcode } : {}) });
      } catch { /* a metrics failure must not affect answering */ }
    };
    const send = (answer: Buffer, outcome: ProxyEvent['outcome'], rcode: string): void => {
      if (this.state !== 'running') return report('dropped');
      reply(answer);
      report(outcome, rcode);
    };
    try {
      const packet = msg.length <= MAX_QUERY ? decodeWhole(msg) : undefined;
      // Responses are never answered: two responders answering each other's errors would loop.
      if (!packet || packet.flag_qr) return report('dropped');
      if (packet.opcode !== 'QUERY') return send(errorResponse(packet, RCODE.NOTIMP), 'formerr', 'NOTIMP');
      const question = packet.questions?.length === 1 ? packet.questions[0] : undefined;
      if (!question) return send(errorResponse(packet, RCODE.FORMERR), 'formerr', 'FORMERR');
      const query: Query = { msg, packet, question };

      const up = this.upstreamOrUndefined();
      const res = up && this.inFlight.size < (this.opts.maxInFlight ?? 1024) ? await this.exchange(query, transport, up) : undefined;
      if (this.state !== 'running') return report('dropped');
      if (!res) return send(errorResponse(packet, RCODE.SERVFAIL), 'servfail', 'SERVFAIL');

      const rcode = res.packet.rcode ?? 'UNKNOWN';
      const limit = transport === 'udp' ? udpLimit(packet) : MAX_MESSAGE;
      if (res.msg.length > limit) {
        // Too big for the client: the header says "retry over TCP", no records reach it, no hook.
        const flags = (res.packet.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE;
        return send(shortResponse(packet, flags, [question]), 'answered', rcode);
      }
      if (this.opts.beforeAnswer && isNoError(res.packet)) {
        try {
          await this.opts.beforeAnswer(res.packet, transport);
        } catch {
          return send(errorResponse(packet, RCODE.SERVFAIL), 'refused-by-hook', 'SERVFAIL');
        }
      }
      const answer = Buffer.from(res.msg);
      answer.writeUInt16BE(packet.id ?? 0, 0);
      send(answer, 'answered', rcode);
    } catch {
      report('dropped'); // a bug here must cost one query, not the process
    }
  }

  private upstreamOrUndefined(): Upstream | undefined {
    try {
      const up = this.opts.upstream();
      const usable = up && net.isIP(up.host) && Number.isInteger(up.port) && up.port > 0 && up.port < 65536;
      return usable && !this.self.has(`${up.host} ${up.port}`) ? up : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Asks the upstream with a fresh random ID and waits for a response with that ID and the query's
   * question; others are ignored. undefined on timeout, network error, undecodable answer or stop().
   */
  private exchange(q: Query, transport: Transport, up: Upstream): Promise<Reply | undefined> {
    return new Promise((resolve) => {
      const id = randomInt(65536);
      const out = Buffer.from(q.msg);
      out.writeUInt16BE(id, 0);
      let close = (): void => undefined;
      const finish = (r: Reply | undefined): void => {
        if (!this.inFlight.delete(cancel)) return;
        clearTimeout(timer);
        close();
        resolve(r);
      };
      const cancel = (): void => finish(undefined);
      const timer = setTimeout(cancel, this.opts.timeoutMs ?? 3000);
      this.inFlight.add(cancel);
      const accept = (m: Buffer): void => {
        const p = decodeWhole(m);
        if (!p) return finish(undefined);
        if (p.id !== id || !p.flag_qr || p.questions?.length !== 1 || !sameQuestion(p.questions[0]!, q.question)) return;
        finish({ msg: m, packet: p });
      };
      try {
        close = transport === 'udp' ? this.udpExchange(out, up, accept, cancel) : this.tcpExchange(out, up, accept, cancel);
      } catch {
        cancel();
      }
    });
  }

  /**
   * One connected socket per query: the kernel picks a random source port (RFC 5452: port and ID
   * together make blind spoofing ~2^31 times harder than a fixed port), ICMP errors reach exactly
   * this query, and no ID bookkeeping is shared. Measured ~40 us CPU per query against ~13 us with
   * one shared socket: 2,000 queries/s cost under 10% of one core. maxInFlight bounds the sockets.
   */
  private udpExchange(out: Buffer, up: Upstream, accept: (m: Buffer) => void, fail: () => void): () => void {
    const sock = dgram.createSocket(net.isIPv6(up.host) ? 'udp6' : 'udp4');
    sock.on('error', fail);
    sock.on('message', accept);
    sock.connect(up.port, up.host, (err?: Error) => {
      if (err) return fail();
      sock.send(out, (e) => { if (e) fail(); });
    });
    return () => { try { sock.close(); } catch { /* already closed */ } };
  }

  /** One connection per query: TCP is the fallback for truncated answers, rare enough not to pool. */
  private tcpExchange(out: Buffer, up: Upstream, accept: (m: Buffer) => void, fail: () => void): () => void {
    const sock = net.connect({ host: up.host, port: up.port });
    const frames = new Frames(12, MAX_MESSAGE);
    sock.setNoDelay(true);
    sock.on('error', fail);
    sock.on('close', fail);
    sock.on('connect', () => sock.write(framed(out)));
    sock.on('data', (chunk: Buffer) => {
      frames.push(chunk);
      for (let m = frames.next(); m !== undefined; m = frames.next()) {
        if (m === 'invalid') return fail();
        accept(m);
        if (sock.destroyed) return;
      }
    });
    return () => sock.destroy();
  }
}

function listenError(transport: Transport, host: string, port: number, e: unknown): Error {
  const where = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
  const m = (e as { message?: unknown } | undefined)?.message; // Node's errors may come from another realm (jest)
  return new Error(`DNS proxy: cannot listen on ${transport} ${where}: ${typeof m === 'string' ? m : String(e)}`);
}
