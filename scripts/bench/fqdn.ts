/**
 * Benchmark 7, FQDN policies in the lab: the agent (`run --source-dir`) inside the lab's firewall
 * namespace, restricted mode with dnsmasq in the services namespace as the Firewall's
 * dnsServerAddress (198.51.100.53, port 5353: the lab's echo peers hold port 53), one FQDN policy
 * (`*.bench.test`, TCP 443) and N = 0 or 10,000 generated plain policies. The worker resolves
 * through the interception (198.51.100.53:53, DNAT'd to the proxy) and connects at once:
 *   (a) names that need a new set element: latency per resolve, first-connect success;
 *   (b) the same names again (no set write): latency per resolve;
 *   (c) the same queries asked of dnsmasq directly (worker → 198.51.100.53:5353, forwarded by the
 *       firewall), interleaved with (b) query by query: (b) − (c) is the latency the proxy adds,
 *       (a) − (c) what an answer with a new element costs;
 *   (d) the agent's firewall_agent_fqdn_set_write_duration_seconds over (a), as its mean;
 *   (e) nft processes per new name: the agent runs with a wrapper named `nft` first in its PATH
 *       that logs its arguments and execs the real nft (`nft monitor` would cost nothing, but with
 *       10,000 policies it does not even start listening within 20 s); `-f -` is a write, an apply
 *       or a set write: the applies are taken from the agent's log.
 * Plus a diagnosis: `nft -f` of one `add element` by hand in the namespace, against the agent's table
 * and against a tiny scratch table (nft loads every set of the namespace first), and the wrapper's
 * own cost. Traffic stays between the lab's namespaces (documentation
 * prefixes); the run is bounded (watchdog) and cleans up on every exit path.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { Dnsmasq } from '../../test/dns/dnsmasq';
import { cwnp, exampleFirewall } from '../../test/helpers';
import { AgentProcess } from '../../test/kube/agent-process';
import { eventually } from '../../test/kube/rest';
import { Host, Lab } from '../../test/lab/lab';
import { generatePolicies } from './generate';

const NEW = 200;
const REPEAT = 500;
const ROUNDS = 5; // (b) and (c) in 5 client processes of 100 + 100 interleaved queries
const WATCHDOG_MS = 170_000;
const DNS = '198.51.100.53';
const DNS_PORT = 5353;
const METRICS_PORT = 9757; // inside the firewall namespace: nothing else listens there
const NFT = '/usr/sbin/nft';

interface Name { name: string; address: string; type: 'A' | 'AAAA' }
/** Each name its own address on the internet host: 99 IPv4 (203.0.113.101…199), 101 IPv6. */
const NAMES: Name[] = Array.from({ length: NEW }, (_, i) =>
  i < 99 ? { name: `n${i}.bench.test`, address: `203.0.113.${101 + i}`, type: 'A' } : { name: `n${i}.bench.test`, address: `2001:db8:203::b:${i}`, type: 'AAAA' },
);
/** Warm-up names: new elements too, never connected to (their addresses exist nowhere). */
const WARM: Name[] = Array.from({ length: 10 }, (_, i) => ({ name: `warm${i}.bench.test`, address: `203.0.113.${50 + i}`, type: 'A' }));

interface Try { server: string; port: number; name: string; type: 'A' | 'AAAA'; connect?: number; timeoutMs?: number }
interface Answer { ms: number; rcode: string | null; addresses: string[]; connected: boolean | null; error?: string }

/** The client, run inside a namespace: like test/lab/resolve.js (a new UDP socket per query, then a
 * TCP connection to the first address at once), but timed with hrtime (resolve.js reports whole
 * milliseconds) and with the server's port per try (resolve.js always asks port 53). */
const CLIENT = `'use strict';
const dgram = require('node:dgram');
const net = require('node:net');
const { randomInt } = require('node:crypto');
const dnsPacket = require(process.argv[2]);
const tries = JSON.parse(process.argv[3]);
const since = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
function ask(t) {
  return new Promise((resolve) => {
    const id = randomInt(0, 65536);
    const msg = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: t.type, name: t.name, class: 'IN' }] });
    const sock = dgram.createSocket(net.isIPv6(t.server) ? 'udp6' : 'udp4');
    let t0 = process.hrtime.bigint();
    const done = (r) => { clearTimeout(timer); sock.close(); resolve(r); };
    const timer = setTimeout(() => done({ ms: since(t0), rcode: null, addresses: [], error: 'dns timeout' }), t.timeoutMs || 3000);
    sock.on('error', (e) => done({ ms: since(t0), rcode: null, addresses: [], error: String(e.message || e) }));
    sock.on('message', (buf) => {
      const ms = since(t0);
      let p;
      try { p = dnsPacket.decode(buf); } catch { return; }
      if (p.id !== id) return;
      done({ ms, rcode: p.rcode, addresses: (p.answers || []).filter((a) => a.type === t.type).map((a) => a.data) });
    });
    t0 = process.hrtime.bigint();
    sock.send(msg, t.port, t.server);
  });
}
function connect(host, port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok) => { clearTimeout(timer); sock.destroy(); resolve(ok); };
    const timer = setTimeout(() => done(false), 800);
    sock.on('error', () => done(false));
    sock.on('data', () => done(true)); // the lab's peers greet: accepted end to end
  });
}
(async () => {
  const out = [];
  for (const t of tries) {
    const r = await ask(t);
    r.connected = null;
    if (t.connect && r.addresses.length > 0) r.connected = await connect(r.addresses[0], t.connect);
    out.push(r);
  }
  process.stdout.write(JSON.stringify(out));
})();
`;

/** `nft -f` of one `add element` per try (or, 'refresh', the agent's add + delete + add of it in one
 * transaction), timed inside the namespace as the agent spawns it. */
const HAND = `'use strict';
const { spawnSync } = require('node:child_process');
const [table, set, count, nft, shape] = [process.argv[2], process.argv[3], Number(process.argv[4]), process.argv[5], process.argv[6]];
const ms = [];
for (let i = 0; i < count; i++) {
  const e = ' ' + table + ' ' + set + ' { 203.0.113.' + (60 + i);
  const add = 'add element' + e + ' timeout 60s }\\n';
  const text = shape === 'refresh' ? add + 'delete element' + e + ' }\\n' + add : add;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(nft, ['-f', '-'], { input: text });
  ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (r.status !== 0) { process.stderr.write(String(r.stderr)); process.exit(1); }
}
process.stdout.write(JSON.stringify(ms));
`;

interface Figures {
  policies: number;
  readyS: number;
  fresh: Answer[];
  connected: number;
  proxied: number[];
  direct: number[];
  directFw: number[];
  writeMeanMs: number;
  writes: number;
  elementsWritten: number;
  elementsWrittenRepeat: number;
  /** nft processes of the agent during (a): all of them, and those writing (`nft -f -`). */
  nftAll: number;
  nftWrites: number;
  appliesDuring: number;
  handAgentTable: number[];
  handScratch: number[];
  handScratchWrapped: number[];
  handScratchRefresh: number[];
  /** `nft -s list table` once, by hand (what the drift check runs; set writes wait for it). */
  listMs: number;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}
const med = (xs: number[]): number => quantile(xs, 0.5);
const p99 = (xs: number[]): number => quantile(xs, 0.99);
const ms = (x: number): string => `${x.toFixed(2)} ms`;

/** Everything to undo, newest first; run on every exit path (also the watchdog's). */
const cleanups: (() => Promise<unknown>)[] = [];
async function cleanup(): Promise<void> {
  while (cleanups.length > 0) {
    try {
      await cleanups.pop()!();
    } catch (e) {
      console.error(`fqdn bench cleanup: ${String(e)}`);
    }
  }
}

class Bench {
  private readonly clientPath: string;
  private readonly handPath: string;
  private readonly dnsPacket = require.resolve('dns-packet');
  /** A directory holding only the counting `nft` wrapper, and the wrapper's log (one line per run). */
  private readonly wrapperDir: string;
  private readonly nftLog: string;

  constructor(private readonly lab: Lab, private readonly base: string) {
    this.clientPath = path.join(base, 'client.js');
    this.handPath = path.join(base, 'hand.js');
    writeFileSync(this.clientPath, CLIENT);
    writeFileSync(this.handPath, HAND);
    if (!existsSync(NFT)) throw new Error(`${NFT} not found`);
    this.wrapperDir = path.join(base, 'bin');
    this.nftLog = path.join(base, 'nft.log');
    mkdirSync(this.wrapperDir);
    writeFileSync(this.nftLog, '');
    writeFileSync(path.join(this.wrapperDir, 'nft'), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${this.nftLog}'\nexec ${NFT} "$@"\n`);
    chmodSync(path.join(this.wrapperDir, 'nft'), 0o755);
  }

  /** The wrapper's log: the arguments of each nft the agent ran so far. */
  nftRuns(): string[] {
    return readFileSync(this.nftLog, 'utf8').split('\n').filter((l) => l !== '');
  }

  /** Runs the tries in one client process; unless `lenient`, any query left unanswered is an error. */
  async ask(from: Host, tries: Try[], lenient = false): Promise<Answer[]> {
    const r = await this.lab.run(from, [process.execPath, this.clientPath, this.dnsPacket, JSON.stringify(tries)]);
    if (r.code !== 0) throw new Error(`client in ${from} failed (${r.code}): ${r.stderr.trim()}`);
    const out = JSON.parse(r.stdout) as Answer[];
    const bad = out.map((a, i) => ({ ...a, name: tries[i]!.name, server: `${tries[i]!.server}:${tries[i]!.port}` })).filter((a) => a.rcode !== 'NOERROR' || a.addresses.length === 0);
    if (bad.length > 0 && !lenient) throw new Error(`${bad.length} of ${out.length} queries from ${from} unanswered, first: ${JSON.stringify(bad[0])}`);
    return out;
  }

  async scrape(): Promise<(name: string) => number> {
    const r = await this.lab.run('fw', [process.execPath, '-e', `fetch('http://127.0.0.1:${METRICS_PORT}/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))`]);
    if (r.code !== 0) throw new Error(`metrics: ${r.stderr.trim()}`);
    return (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(r.stdout)?.[1] ?? NaN);
  }

  async nft(args: string[], stdin?: string): Promise<string> {
    const r = await this.lab.run('fw', ['nft', ...args], stdin);
    if (r.code !== 0) throw new Error(`nft ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async hand(table: string, set: string, nft = NFT, shape: 'add' | 'refresh' = 'add'): Promise<number[]> {
    const r = await this.lab.run('fw', [process.execPath, this.handPath, table, set, '20', nft, shape]);
    if (r.code !== 0) throw new Error(`nft -f by hand: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as number[];
  }

  async run(policies: number): Promise<Figures> {
    const { lab } = this;
    const dir = path.join(this.base, `n${policies}`, 'input');
    const state = path.join(this.base, `n${policies}`, 'state');
    mkdirSync(dir, { recursive: true });
    await lab.run('fw', ['nft', 'delete', 'table', 'inet', 'firewall']); // the previous run's, if any
    const fw = exampleFirewall('baseline');
    const spec = fw.spec as Record<string, unknown>;
    spec.dnsServerAddress = DNS; // restricted mode
    spec.dnsPort = DNS_PORT;
    writeFileSync(path.join(dir, 'firewall.yaml'), stringify(fw));
    writeFileSync(
      path.join(dir, 'fqdn.yaml'),
      [
        cwnp('bench-fqdn', { egress: [{ toFQDNs: [{ matchPattern: '*.bench.test' }], ports: [{ protocol: 'TCP', port: 443 }] }] }),
        // for the baseline (c): the worker may ask dnsmasq itself
        cwnp('bench-direct-dns', { egress: [{ to: [{ cidr: `${DNS}/32` }], ports: [{ protocol: 'UDP', port: DNS_PORT }] }] }),
      ].map((o) => stringify(o)).join('---\n'),
    );
    if (policies > 0) writeFileSync(path.join(dir, 'plain.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: generatePolicies(policies) }));

    const started = Date.now();
    const agent = new AgentProcess(
      ['--source-dir', dir, '--state-dir', state, '--firewall-name', 'lab', '--metrics-address', `127.0.0.1:${METRICS_PORT}`],
      [],
      ['env', `PATH=${this.wrapperDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, 'ip', 'netns', 'exec', lab.ns.fw],
    );
    cleanups.push(() => agent.stop());
    try {
      await agent.waitForLog(/^connected/, 90_000);
      await eventually('DNS interception', async () => (await this.nft(['list', 'chain', 'inet', 'firewall', 'dns_intercept'])).includes(`dnat ip to 192.0.2.1:53`), 60_000, 100);
      const readyS = (Date.now() - started) / 1000;

      // warm-up: set writes (new names), the proxy's path without writes, the direct path
      const proxy = (n: Name, connect?: number): Try => ({ server: DNS, port: 53, name: n.name, type: n.type, ...(connect ? { connect } : {}) });
      const direct = (n: Name): Try => ({ server: DNS, port: DNS_PORT, name: n.name, type: n.type });
      await this.ask('worker', WARM.map((n) => proxy(n)));
      await this.ask('worker', Array.from({ length: 40 }, (_, i) => [proxy(WARM[i % WARM.length]!), direct(WARM[i % WARM.length]!)]).flat());

      // (a) new names, with (d) and (e) over exactly this phase
      const m0 = await this.scrape();
      const logsBefore = agent.logs.length;
      const fresh: Answer[] = [];
      const nftBefore = this.nftRuns().length;
      for (let i = 0; i < NEW; i += 50) {
        // two warm queries first (known names: no writes) so the measured ones meet a warm client
        // (a client waits 10 s here, not 3: how long an answer can take is the figure)
        const batch = [proxy(WARM[0]!), proxy(WARM[1]!), ...NAMES.slice(i, i + 50).map((n) => ({ ...proxy(n, 443), timeoutMs: 10_000 }))];
        fresh.push(...(await this.ask('worker', batch, true)).slice(2));
      }
      const nftDuring = this.nftRuns().slice(nftBefore);
      const m1 = await this.scrape();
      const appliesDuring = agent.logs.slice(logsBefore).filter((l) => l.msg === 'applied ruleset').length;

      // (b) and (c): known names, through the proxy and directly, alternating query by query
      const proxied: number[] = [];
      const directMs: number[] = [];
      const perRound = REPEAT / ROUNDS;
      for (let round = 0; round < ROUNDS; round++) {
        const tries: Try[] = [proxy(WARM[0]!), direct(WARM[0]!), proxy(WARM[1]!), direct(WARM[1]!)];
        for (let i = 0; i < perRound; i++) {
          const n = NAMES[(round * perRound + i) % NAMES.length]!;
          tries.push(proxy(n), direct(n));
        }
        const out = (await this.ask('worker', tries)).slice(4);
        out.forEach((a, i) => (i % 2 === 0 ? proxied : directMs).push(a.ms));
      }
      // the proxy's own upstream leg, from the firewall namespace (information only)
      const fwTries = [direct(WARM[0]!), direct(WARM[1]!), ...Array.from({ length: 200 }, (_, i) => direct(NAMES[i % NAMES.length]!))];
      const directFw = (await this.ask('fw', fwTries)).slice(2).map((a) => a.ms);
      const m2 = await this.scrape();

      // diagnosis: one-element `nft -f` by hand, against the agent's table and a scratch table
      const sets = await this.nft(['-t', 'list', 'sets', 'inet']);
      const set4 = /set (fqdn4-\S+)/.exec(sets)?.[1];
      if (!set4) throw new Error(`no fqdn4 set in the agent's table:\n${sets}`);
      const handAgentTable = await this.hand('inet firewall', set4);
      await this.nft(['-f', '-'], 'table inet fwa_bench_scratch {\n  set s { type ipv4_addr; flags timeout; }\n}\n');
      const handScratch = await this.hand('inet fwa_bench_scratch', 's');
      const handScratchWrapped = await this.hand('inet fwa_bench_scratch', 's', path.join(this.wrapperDir, 'nft'));
      const handScratchRefresh = await this.hand('inet fwa_bench_scratch', 's', NFT, 'refresh');
      // what the periodic drift check (every spec.interval, 10 s here) runs while writes wait
      const t = process.hrtime.bigint();
      await this.nft(['-s', 'list', 'table', 'inet', 'firewall']);
      const listMs = Number(process.hrtime.bigint() - t) / 1e6;
      await this.nft(['delete', 'table', 'inet', 'fwa_bench_scratch']);

      const sum = 'firewall_agent_fqdn_set_write_duration_seconds_sum';
      const count = 'firewall_agent_fqdn_set_write_duration_seconds_count';
      const written = 'firewall_agent_fqdn_elements_written_total';
      const writes = m1(count) - m0(count);
      return {
        policies,
        readyS,
        fresh,
        connected: fresh.filter((a) => a.connected === true).length,
        proxied,
        direct: directMs,
        directFw,
        writeMeanMs: ((m1(sum) - m0(sum)) / writes) * 1000,
        writes,
        elementsWritten: m1(written) - m0(written),
        elementsWrittenRepeat: m2(written) - m1(written),
        nftAll: nftDuring.length,
        nftWrites: nftDuring.filter((l) => l === '-f -').length,
        appliesDuring,
        handAgentTable,
        handScratch,
        handScratchWrapped,
        handScratchRefresh,
        listMs,
      };
    } catch (e) {
      console.error(`agent's last log lines:\n${agent.dump(20)}\n${agent.stderrText.slice(-2000)}`);
      throw e;
    } finally {
      await agent.stop();
    }
  }
}

function report(runs: Figures[]): void {
  const label = (f: Figures): string => `${f.policies.toLocaleString('en-US')} plain CWNPs`;
  const row = (name: string, cells: string[], target = ''): void => console.log(`${name.padEnd(56)} ${cells.map((c) => c.padEnd(28)).join('')}${target}`);
  const verdicts = (ok: boolean[]): string => `[${ok.map((o) => (o ? 'met' : 'MISSED')).join(', ')}]`;
  console.log(`# 7. FQDN policies in the lab: agent in the firewall namespace, restricted mode, '*.bench.test' on TCP 443 (+1 policy for the direct path);`);
  console.log(`#    worker → 198.51.100.53:53 (intercepted) vs. → dnsmasq 198.51.100.53:${DNS_PORT} directly; ${NEW} new names (99 A, 101 AAAA), ${REPEAT} repeats; UDP`);
  row('7. FQDN', runs.map(label), 'target');
  row('   start to enforcing (interception in place)', runs.map((f) => `${f.readyS.toFixed(1)} s`));
  row('   (a) new name: resolve via proxy, median / p99 / max', runs.map((f) => `${med(f.fresh.map((a) => a.ms)).toFixed(1)} / ${p99(f.fresh.map((a) => a.ms)).toFixed(1)} / ${Math.max(...f.fresh.map((a) => a.ms)).toFixed(0)} ms`));
  row('   (a) answered / answered after more than 1 s', runs.map((f) => `${f.fresh.filter((a) => a.rcode === 'NOERROR').length}/${f.fresh.length} / ${f.fresh.filter((a) => a.ms > 1000).length}`));
  row('   (a) first connect right after the answer', runs.map((f) => `${f.connected}/${f.fresh.length}`), `100% ${verdicts(runs.map((f) => f.connected === f.fresh.length))}`);
  row('   (b) known name: resolve via proxy, median / p99', runs.map((f) => `${med(f.proxied).toFixed(2)} / ${p99(f.proxied).toFixed(2)} ms`));
  row('   (c) direct to dnsmasq from the worker, median / p99', runs.map((f) => `${med(f.direct).toFixed(2)} / ${p99(f.direct).toFixed(2)} ms`));
  row('       direct to dnsmasq from the firewall ns (info)', runs.map((f) => `${med(f.directFw).toFixed(2)} / ${p99(f.directFw).toFixed(2)} ms`));
  const addMed = runs.map((f) => med(f.proxied) - med(f.direct));
  const addP99 = runs.map((f) => p99(f.proxied) - p99(f.direct));
  row('   added latency, no new element (b−c), median', addMed.map(ms), `< 2 ms ${verdicts(addMed.map((x) => x < 2))}`);
  row('   added latency, no new element (b−c), p99', addP99.map(ms), `< 10 ms ${verdicts(addP99.map((x) => x < 10))}`);
  row('   added latency, new element (a−c), median', runs.map((f) => ms(med(f.fresh.map((a) => a.ms)) - med(f.direct))), 'no target (set write)');
  row('   added latency, new element (a−c), p99', runs.map((f) => ms(p99(f.fresh.map((a) => a.ms)) - p99(f.direct))), 'no target (set write)');
  row('   (d) set write, agent histogram mean over (a)', runs.map((f) => `${f.writeMeanMs.toFixed(2)} ms (${f.writes} writes)`));
  row('   (e) nft set writes per new name', runs.map((f) => `${((f.nftWrites - f.appliesDuring) / NEW).toFixed(2)} (${f.nftWrites - f.appliesDuring} of ${f.nftAll} nft runs)`), '≈1');
  row('       elements written during (a) / (b)', runs.map((f) => `${f.elementsWritten} / ${f.elementsWrittenRepeat}`), `${NEW} / 0`);
  row('       applies during (a)', runs.map((f) => String(f.appliesDuring)));
  row('   by hand: nft -f one element, agent table, med/max', runs.map((f) => `${med(f.handAgentTable).toFixed(2)} / ${Math.max(...f.handAgentTable).toFixed(2)} ms`));
  row('   by hand: nft -f one element, scratch table, med/max', runs.map((f) => `${med(f.handScratch).toFixed(2)} / ${Math.max(...f.handScratch).toFixed(2)} ms`));
  row('   by hand: add+delete+add (the agent\'s write), scratch', runs.map((f) => `${med(f.handScratchRefresh).toFixed(2)} / ${Math.max(...f.handScratchRefresh).toFixed(2)} ms`));
  row('   by hand: nft -s list table (the drift check, 10 s)', runs.map((f) => ms(f.listMs)));
  row('   the counting wrapper\'s cost per nft run (median)', runs.map((f) => ms(med(f.handScratchWrapped) - med(f.handScratch))), '(included in (a), (d))');
}

async function main(): Promise<void> {
  const base = mkdtempSync(path.join(tmpdir(), 'fwa-bench-fqdn-'));
  cleanups.push(async () => rmSync(base, { recursive: true, force: true }));
  const lab = await Lab.create();
  cleanups.push(() => lab.destroy());
  // each name its own address; on eth0 (IPv6 neighbour discovery answers only for the interface's
  // own addresses), nodad so they are usable at once
  const cmds = NAMES.map((n) => `addr add ${n.address}/${n.type === 'A' ? 32 : 128} dev eth0${n.type === 'AAAA' ? ' nodad' : ''}`);
  const added = await lab.run('internet', ['ip', '-batch', '-'], `${cmds.join('\n')}\n`);
  if (added.code !== 0) throw new Error(added.stderr);
  const dns = await Dnsmasq.start({
    zone: {
      a: [...NAMES, ...WARM].filter((n) => n.type === 'A').map((n) => [n.name, n.address, 300] as const),
      aaaa: NAMES.filter((n) => n.type === 'AAAA').map((n) => [n.name, n.address, 300] as const),
    },
    host: DNS,
    port: DNS_PORT,
    prefix: ['ip', 'netns', 'exec', lab.ns.services],
    domains: ['test'],
  });
  cleanups.push(() => dns.stop());
  const bench = new Bench(lab, base);
  const runs: Figures[] = [];
  for (const n of [0, 10_000]) runs.push(await bench.run(n));
  report(runs);
}

let watchdog: NodeJS.Timeout | undefined;
const aborted = new Promise<never>((_, reject) => {
  watchdog = setTimeout(() => reject(new Error(`fqdn bench: not done after ${WATCHDOG_MS / 1000} s`)), WATCHDOG_MS);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => reject(new Error(`fqdn bench: ${sig}`)));
});
Promise.race([main(), aborted])
  .then(
    () => 0,
    (e: unknown) => {
      console.error(e instanceof Error ? e.stack ?? e.message : String(e));
      return 1;
    },
  )
  .then(async (code) => {
    clearTimeout(watchdog);
    await cleanup();
    process.exit(code);
  });
