/**
 * A real resolver for tests: dnsmasq serving a zone given as data, on one address, in the current
 * network namespace or under a prefix such as ['ip', 'netns', 'exec', ns]. Resolves once dnsmasq
 * answers a query; a port taken by someone else is retried with another one.
 */
import { ChildProcess, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface Zone {
  readonly a?: readonly (readonly [name: string, ipv4: string, ttl: number])[];
  readonly aaaa?: readonly (readonly [name: string, ipv6: string, ttl: number])[];
  /** dnsmasq only serves CNAMEs whose target it knows itself (another record of the zone). */
  readonly cname?: readonly (readonly [alias: string, target: string, ttl: number])[];
  /** Strings of one TXT record each; their TTL is `txtTtl`. */
  readonly txt?: readonly (readonly [name: string, strings: readonly string[]])[];
}

export interface DnsmasqOptions {
  readonly zone: Zone;
  /** Address to listen on, default 127.0.0.1 (any 127.0.0.x works on Linux's loopback). */
  readonly host?: string;
  /** Default: a random free port (retried when taken). */
  readonly port?: number;
  readonly prefix?: readonly string[];
  /** Domains dnsmasq answers itself (NXDOMAIN for unknown names); default: the zone's top-level labels. */
  readonly domains?: readonly string[];
  /** TTL of TXT records (dnsmasq's --local-ttl), default 0. */
  readonly txtTtl?: number;
  /** More dnsmasq options, e.g. '--edns-packet-max=4096'. */
  readonly extraArgs?: readonly string[];
  /** How long to wait for dnsmasq to answer, default 20 s. */
  readonly readyMs?: number;
}

const BINARY = existsSync('/usr/sbin/dnsmasq') ? '/usr/sbin/dnsmasq' : 'dnsmasq';
const PORT_TRIES = 8;

function plain(name: string): string {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (!/^[A-Za-z0-9_.*-]+$/.test(n)) throw new Error(`dnsmasq zone: unsupported name ${JSON.stringify(name)}`);
  return n;
}

function ttl(t: number): string {
  if (!Number.isInteger(t) || t < 0) throw new Error(`dnsmasq zone: bad TTL ${t}`);
  return String(t);
}

/** dnsmasq's command line for the zone (no shell: quotes are dnsmasq's own syntax for TXT strings). */
export function zoneArgs(zone: Zone, domains?: readonly string[]): string[] {
  const args: string[] = [];
  const names: string[] = [];
  for (const [name, ip, t] of zone.a ?? []) {
    if (!net.isIPv4(ip)) throw new Error(`dnsmasq zone: ${name}: ${ip} is not IPv4`);
    args.push(`--host-record=${plain(name)},${ip},${ttl(t)}`);
    names.push(name);
  }
  for (const [name, ip, t] of zone.aaaa ?? []) {
    if (!net.isIPv6(ip)) throw new Error(`dnsmasq zone: ${name}: ${ip} is not IPv6`);
    args.push(`--host-record=${plain(name)},${ip},${ttl(t)}`);
    names.push(name);
  }
  for (const [alias, target, t] of zone.cname ?? []) {
    args.push(`--cname=${plain(alias)},${plain(target)},${ttl(t)}`);
    names.push(alias);
  }
  for (const [name, strings] of zone.txt ?? []) {
    for (const s of strings) if (/["\\\n]/.test(s)) throw new Error(`dnsmasq zone: ${name}: TXT string with a quote, backslash or newline`);
    args.push(`--txt-record=${[plain(name), ...strings.map((s) => `"${s}"`)].join(',')}`);
    names.push(name);
  }
  const tlds = domains ?? [...new Set(names.map((n) => plain(n).split('.').pop()!.toLowerCase()))];
  for (const d of tlds) args.push(`--local=/${plain(d)}/`);
  return args;
}

/** Sends one query from this process; true on a DNS response to it. */
function probeHere(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    sock.on('error', () => done(false));
    // a DNS response to our query (QR set, our ID), not an echo from something else on the port
    sock.on('message', (m: Buffer) => done(m.length >= 12 && m.readUInt16BE(0) === 1 && (m[2]! & 0x80) !== 0));
    sock.send(dnsPacket.encode({ id: 1, type: 'query', questions: [{ name: 'probe.invalid', type: 'A' }] }), port, host);
  });
}

/** The same from a child process under the prefix (the resolver may live in another namespace). */
function probeUnder(prefix: readonly string[], host: string, port: number, ms: number): Promise<boolean> {
  const script = `const d=require('node:dgram');const s=d.createSocket(${JSON.stringify(net.isIPv6(host) ? 'udp6' : 'udp4')});
s.on('message',(m)=>process.exit(m.length>=12&&m.readUInt16BE(0)===1&&(m[2]&0x80)?0:1));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),${ms});
s.send(Buffer.from(${JSON.stringify(dnsPacket.encode({ id: 1, type: 'query', questions: [{ name: 'probe.invalid', type: 'A' }] }).toString('hex'))},'hex'),${port},${JSON.stringify(host)});`;
  return new Promise((resolve) => {
    const child = spawn(prefix[0]!, [...prefix.slice(1), process.execPath, '-e', script], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}

export class Dnsmasq {
  private readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcess, readonly host: string, readonly port: number, private readonly log: () => string) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
  }

  static async start(opts: DnsmasqOptions): Promise<Dnsmasq> {
    const host = opts.host ?? '127.0.0.1';
    let lastError = '';
    for (let attempt = 0; attempt < (opts.port === undefined ? PORT_TRIES : 1); attempt++) {
      const port = opts.port ?? 20000 + Math.floor(Math.random() * 12000); // below the ephemeral range
      const r = await Dnsmasq.tryStart(opts, host, port);
      if (r instanceof Dnsmasq) return r;
      lastError = r.error;
      if (!r.portTaken) break;
    }
    throw new Error(`dnsmasq on ${host}: ${lastError}`);
  }

  private static async tryStart(opts: DnsmasqOptions, host: string, port: number): Promise<Dnsmasq | { error: string; portTaken: boolean }> {
    const args = [
      '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--bind-interfaces',
      `--listen-address=${host}`, `--port=${port}`, '--user=root', '--pid-file=', '--log-facility=-',
      `--local-ttl=${ttl(opts.txtTtl ?? 0)}`, ...zoneArgs(opts.zone, opts.domains), ...(opts.extraArgs ?? []),
    ];
    const cmd = [...(opts.prefix ?? []), BINARY, ...args];
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 16384) stderr += d.toString();
    });
    let spawnError = '';
    child.on('error', (e) => (spawnError = e.message));
    const m = new Dnsmasq(child, host, port, () => stderr);
    const deadline = Date.now() + (opts.readyMs ?? 20000);
    while (Date.now() < deadline) {
      if (spawnError) return { error: `cannot run ${cmd[0]}: ${spawnError}`, portTaken: false }; // no 'exit' may follow
      if (child.exitCode !== null || child.signalCode !== null) {
        await m.exited;
        const error = stderr.trim().split('\n').pop() || `exited with ${child.exitCode ?? child.signalCode}`;
        return { error, portTaken: /in use/i.test(stderr) };
      }
      const ok = opts.prefix?.length ? await probeUnder(opts.prefix, host, port, 300) : await probeHere(host, port, 300);
      if (ok) return m;
      await new Promise((r) => setTimeout(r, 50));
    }
    await m.stop();
    return { error: `no answer within ${opts.readyMs ?? 20000} ms; log: ${stderr.trim().slice(-500)}`, portTaken: false };
  }

  /** What dnsmasq printed so far (its log goes to stderr). */
  output(): string {
    return this.log();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(killer);
  }
}
