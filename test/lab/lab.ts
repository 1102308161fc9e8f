/**
 * The test lab (DESIGN §7): network namespaces joined by veth pairs, nothing else.
 *
 *   worker (node network)          fw (the firewall)                 internet / services
 *   eth0 192.0.2.10/25  ─────── vlan3981   192.0.2.1/25
 *        2001:db8:1::10/64              2001:db8:1::1/64
 *   lo   192.0.2.200 (LB IP)       vlan104009 203.0.113.1/24  ───── internet eth0 203.0.113.10,.20,.30,.100,.200
 *        2001:db8:1:ff::200                   2001:db8:203::1/64          2001:db8:203::10, ::20
 *        192.0.2.150 (not node net) vlan104010 198.51.100.1/24 ───── services eth0 198.51.100.10,.5,.53,.123
 *                                             2001:db8:198::1/64          2001:db8:198::10, ::53
 *
 * Traffic only flows between these namespaces; every probe is bounded in time; destroy() removes
 * every namespace (and with them the veths and the servers' sockets).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { exec, ExecResult, NftCli } from '../../src/nft/runner';
import { ROOT } from '../helpers';

/** peer.js and probe.js are plain scripts next to this file in the repository. */
const LAB_SCRIPTS = path.join(ROOT, 'test', 'lab');

export type Host = 'worker' | 'fw' | 'internet' | 'services';

export interface Target {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
  source?: string;
  timeoutMs?: number;
  hold?: { durationMs: number; intervalMs: number };
  bulk?: { bytes: number; durationMs: number };
  retry?: { everyMs: number; forMs: number };
  loop?: { count: number };
}

/** One name to resolve (see resolve.js), then optionally a TCP connection to its first address. */
export interface ResolveTry {
  name: string;
  type?: 'A' | 'AAAA';
  tcp?: boolean;
  connect?: { port: number; timeoutMs?: number };
}

export interface Resolved {
  rcode: string | null;
  addresses: string[];
  connected: boolean | null;
  dnsMs: number;
  error?: string;
}

/** See Lab.synCounter. */
export interface SynCounter {
  /** The SYNs counted so far (since the counter was installed). */
  read(): Promise<number>;
  /** Removes the counter's table; safe to call more than once. */
  remove(): Promise<void>;
}

export interface ProbeResult {
  ok: boolean;
  peer: string | null;
  sent?: number;
  echoes?: number;
  received?: number;
  failed?: number;
  ms?: number;
}

const TCP_PORTS = [22, 53, 80, 443, 8000, 8005, 8010, 8011, 9000];
const UDP_PORTS = [53, 123, 5000];

const HOST_SETUP: Record<Exclude<Host, 'fw'>, string[][]> = {
  worker: [
    ['addr', 'add', '192.0.2.10/25', 'dev', 'eth0'],
    ['addr', 'add', '2001:db8:1::10/64', 'dev', 'eth0', 'nodad'],
    ['addr', 'add', '192.0.2.200/32', 'dev', 'lo'],
    ['addr', 'add', '192.0.2.150/32', 'dev', 'lo'],
    ['addr', 'add', '2001:db8:1:ff::200/128', 'dev', 'lo'],
    ['route', 'add', 'default', 'via', '192.0.2.1'],
    ['-6', 'route', 'add', 'default', 'via', '2001:db8:1::1'],
  ],
  internet: [
    ...['10', '20', '30', '100', '200'].map((h) => ['addr', 'add', `203.0.113.${h}/24`, 'dev', 'eth0']),
    ['addr', 'add', '2001:db8:203::10/64', 'dev', 'eth0', 'nodad'],
    ['addr', 'add', '2001:db8:203::20/64', 'dev', 'eth0', 'nodad'],
    ['addr', 'add', '2001:db8:203::ff:10/64', 'dev', 'eth0', 'nodad'],
    ['route', 'add', '192.0.2.0/24', 'via', '203.0.113.1'],
    ['-6', 'route', 'add', '2001:db8:1::/48', 'via', '2001:db8:203::1'],
  ],
  services: [
    ...['10', '5', '53', '123'].map((h) => ['addr', 'add', `198.51.100.${h}/24`, 'dev', 'eth0']),
    ['addr', 'add', '2001:db8:198::10/64', 'dev', 'eth0', 'nodad'],
    ['addr', 'add', '2001:db8:198::53/64', 'dev', 'eth0', 'nodad'],
    ['route', 'add', '192.0.2.0/24', 'via', '198.51.100.1'],
    ['-6', 'route', 'add', '2001:db8:1::/48', 'via', '2001:db8:198::1'],
  ],
};

const FW_LINKS: { ifname: string; peer: Exclude<Host, 'fw'>; v4: string; v6: string }[] = [
  { ifname: 'vlan3981', peer: 'worker', v4: '192.0.2.1/25', v6: '2001:db8:1::1/64' },
  { ifname: 'vlan104009', peer: 'internet', v4: '203.0.113.1/24', v6: '2001:db8:203::1/64' },
  { ifname: 'vlan104010', peer: 'services', v4: '198.51.100.1/24', v6: '2001:db8:198::1/64' },
];

async function must(argv: string[], stdin?: string): Promise<ExecResult> {
  const r = await exec(argv, stdin, 30_000);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r;
}

export class Lab {
  readonly ns: Record<Host, string>;
  readonly nft: NftCli;
  private servers: ChildProcess[] = [];
  private synCounters = 0;

  private constructor(id: string) {
    this.ns = { worker: `fwa-${id}-worker`, fw: `fwa-${id}-fw`, internet: `fwa-${id}-inet`, services: `fwa-${id}-svc` };
    this.nft = new NftCli(['ip', 'netns', 'exec', this.ns.fw]);
  }

  static async create(): Promise<Lab> {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces, nft)');
    // The pid in the name lets a later run tell a killed run's leftovers from a live run's namespaces.
    const lab = new Lab(`${process.pid}-${randomBytes(2).toString('hex')}`);
    try {
      await lab.build();
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  private async build(): Promise<void> {
    for (const name of Object.values(this.ns)) {
      await must(['ip', 'netns', 'add', name]);
      await must(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    }
    for (const l of FW_LINKS) {
      const peer = this.ns[l.peer];
      await must(['ip', '-n', this.ns.fw, 'link', 'add', l.ifname, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer]);
      await must(['ip', '-n', this.ns.fw, 'addr', 'add', l.v4, 'dev', l.ifname]);
      await must(['ip', '-n', this.ns.fw, 'addr', 'add', l.v6, 'dev', l.ifname, 'nodad']);
      await must(['ip', '-n', this.ns.fw, 'link', 'set', l.ifname, 'up']);
      await must(['ip', '-n', peer, 'link', 'set', 'eth0', 'up']);
    }
    await must(['ip', '-n', this.ns.fw, 'route', 'add', '192.0.2.192/26', 'via', '192.0.2.10']);
    await must(['ip', '-n', this.ns.fw, '-6', 'route', 'add', '2001:db8:1:ff::/64', 'via', '2001:db8:1::10']);
    await must(['ip', 'netns', 'exec', this.ns.fw, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await must(['ip', 'netns', 'exec', this.ns.fw, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    for (const [host, cmds] of Object.entries(HOST_SETUP)) {
      for (const c of cmds) await must(['ip', '-n', this.ns[host as Host], ...c]);
    }
    for (const host of ['worker', 'internet', 'services'] as const) await this.startServer(host);
  }

  private startServer(host: Host): Promise<void> {
    const script = path.join(LAB_SCRIPTS, 'peer.js');
    const child = spawn('ip', ['netns', 'exec', this.ns[host], process.execPath, script, JSON.stringify({ tcp: TCP_PORTS, udp: UDP_PORTS })], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.servers.push(child);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server in ${host} did not start`)), 10_000);
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server in ${host} exited (${code})`));
      });
    });
  }

  /** Runs a command inside a namespace. */
  run(host: Host, argv: string[], stdin?: string): Promise<ExecResult> {
    return exec(['ip', 'netns', 'exec', this.ns[host], ...argv], stdin, 60_000);
  }

  /** Applies an nft transaction in the firewall namespace. */
  async apply(text: string): Promise<void> {
    await this.nft.applyText(text);
  }

  /** Tries every target from `from` at once; bounded by each target's timeout. */
  async probe(from: Host, targets: Target[]): Promise<ProbeResult[]> {
    const r = await this.run(from, [process.execPath, path.join(LAB_SCRIPTS, 'probe.js'), JSON.stringify(targets)]);
    if (r.code !== 0) throw new Error(`probe failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as ProbeResult[];
  }

  /**
   * Resolves names from `from` (resolve.js) and connects to the first address of each answer at
   * once: the client's view of FQDN policies.
   */
  async resolve(from: Host, server: string, tries: ResolveTry[]): Promise<Resolved[]> {
    const r = await this.run(from, [process.execPath, path.join(LAB_SCRIPTS, 'resolve.js'), JSON.stringify({ server, tries })]);
    if (r.code !== 0) throw new Error(`resolve.js failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Resolved[];
  }

  /** Convenience: true/false per target. */
  async reachable(from: Host, targets: Target[]): Promise<boolean[]> {
    return (await this.probe(from, targets)).map((r) => r.ok);
  }

  /**
   * Counts the TCP SYNs (SYN without ACK, retransmits included) that arrive in `host` for `port`,
   * in an nft table of its own there (`inet fwa_probe_count_<n>`, input hook: packets for the
   * host's own addresses). Every SYN the firewall forwards to that host arrives there, so this is
   * the ground truth for counters that count one packet per new connection: retransmits show up
   * on both sides. Remove it at the end of the test (destroy() would take it along anyway).
   */
  async synCounter(host: Exclude<Host, 'fw'>, port: number): Promise<SynCounter> {
    const table = `fwa_probe_count_${++this.synCounters}`;
    const text = [
      `table inet ${table} {`,
      '  counter syns { }',
      '  chain input {',
      '    type filter hook input priority filter; policy accept;',
      `    tcp dport ${port} tcp flags & (syn | ack) == syn counter name syns`,
      '  }',
      '}',
      '',
    ].join('\n');
    const created = await this.run(host, ['nft', '-f', '-'], text);
    if (created.code !== 0) throw new Error(`synCounter(${host}, ${port}) failed: ${created.stderr.trim()}`);
    let removed = false;
    return {
      read: async () => {
        const r = await this.run(host, ['nft', 'list', 'counter', 'inet', table, 'syns']);
        const m = /packets (\d+)/.exec(r.stdout);
        if (r.code !== 0 || !m) throw new Error(`reading ${table} in ${host} failed (${r.code}): ${r.stderr.trim() || r.stdout}`);
        return Number(m[1]);
      },
      remove: async () => {
        if (removed) return;
        removed = true;
        await this.run(host, ['nft', 'delete', 'table', 'inet', table]);
      },
    };
  }

  async destroy(): Promise<void> {
    for (const s of this.servers) s.kill('SIGKILL');
    this.servers = [];
    for (const name of Object.values(this.ns)) {
      await exec(['ip', 'netns', 'del', name]);
    }
  }
}

export function tcp(host: string, port: number, extra: Partial<Target> = {}): Target {
  return { proto: 'tcp', host, port, ...extra };
}

export function udp(host: string, port: number, extra: Partial<Target> = {}): Target {
  return { proto: 'udp', host, port, ...extra };
}
