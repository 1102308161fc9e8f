/**
 * Benchmark 6, the DNS proxy on loopback with dnsmasq as the upstream: (a) the latency the proxy
 * adds against asking dnsmasq directly, (b) 2,000 queries/s for 10 s through the proxy: loss, rate,
 * latency under load, CPU and memory of the proxy's process. The proxy runs in a child process of
 * its own (as in the agent), with a beforeAnswer hook that reads the addresses and takes one async
 * step. Prints one summary line per figure.
 */
import { fork } from 'node:child_process';
import dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { resolvedAddresses } from '../../src/dns/answers';
import { DnsProxy } from '../../src/dns/proxy';
import { Dnsmasq } from '../../test/dns/dnsmasq';

const NAMES = Array.from({ length: 100 }, (_, i) => `n${i}.bench.test`);
const SEQUENTIAL = 2000;
const RATE = 2000;
const SECONDS = 10;

interface Mem { rss: number; heap: number; cpuMs: number }
type ToChild = { kind: 'mem' } | { kind: 'stop' };
type FromChild = { kind: 'ready'; port: number } | ({ kind: 'mem' } & Mem);

function line(name: string, value: string, target?: string, met?: boolean): void {
  const verdict = met === undefined ? '' : met ? '  [target met]' : '  [target MISSED]';
  console.log(`${name.padEnd(58)} ${value}${target ? `  (target ${target})` : ''}${verdict}`);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const MiB = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** The child: a DnsProxy on 127.0.0.1, reporting its memory (after a full GC) and CPU on request. */
async function serve(upstreamHost: string, upstreamPort: number): Promise<void> {
  const proxy = new DnsProxy({
    listen: [{ host: '127.0.0.1', port: 0 }],
    upstream: () => ({ host: upstreamHost, port: upstreamPort }),
    beforeAnswer: async (response) => {
      if (resolvedAddresses(response).addresses.length === 0) throw new Error('no addresses');
      await new Promise((r) => setImmediate(r));
    },
  });
  await proxy.start();
  const send = (m: FromChild): void => void process.send!(m);
  process.on('message', (m: ToChild) => {
    if (m.kind === 'stop') return void proxy.stop().then(() => process.exit(0));
    (globalThis as { gc?: () => void }).gc?.();
    const cpu = process.cpuUsage();
    send({ kind: 'mem', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed, cpuMs: (cpu.user + cpu.system) / 1000 });
  });
  send({ kind: 'ready', port: proxy.addresses().find((a) => a.transport === 'udp')!.port });
}

/** Sends queries from one socket and matches answers by ID; `ask` resolves with the RTT in ms or undefined. */
class Client {
  private readonly sock = dgram.createSocket('udp4');
  private readonly waiting = new Map<number, (rcode: number) => void>();
  private nextId = 1;
  constructor(private readonly host: string, private readonly port: number) {
    this.sock.on('message', (m) => {
      const p = dnsPacket.decode(m);
      const done = this.waiting.get(p.id ?? -1);
      if (!done) return;
      this.waiting.delete(p.id!);
      done((p.flags ?? 0) & 0xf);
    });
    this.sock.on('error', () => undefined);
  }
  /** Resolves with [rtt ms, rcode], or undefined after waitMs. */
  ask(name: string, waitMs: number): Promise<[number, number] | undefined> {
    const id = (this.nextId = (this.nextId % 65535) + 1);
    const t0 = process.hrtime.bigint();
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiting.delete(id); resolve(undefined); }, waitMs);
      this.waiting.set(id, (rcode) => { clearTimeout(timer); resolve([Number(process.hrtime.bigint() - t0) / 1e6, rcode]); });
      this.sock.send(dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] }), this.port, this.host);
    });
  }
  close(): void {
    this.sock.close();
  }
}

async function sequential(host: string, port: number, count: number): Promise<number[]> {
  const c = new Client(host, port);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const r = await c.ask(NAMES[i % NAMES.length]!, 2000);
    if (!r || r[1] !== 0) throw new Error(`sequential query ${i} to port ${port}: ${r ? `rcode ${r[1]}` : 'no answer'}`);
    out.push(r[0]);
  }
  c.close();
  return out;
}

/** Paced at `rate` per second for `seconds`, 16 sockets; unanswered after 3 s counts as lost. */
async function paced(port: number, rate: number, seconds: number): Promise<{ sent: number; ok: number; failed: number; lost: number; rtts: number[]; ms: number }> {
  const clients = Array.from({ length: 16 }, () => new Client('127.0.0.1', port));
  const pending: Promise<void>[] = [];
  const rtts: number[] = [];
  let sent = 0, failed = 0, lost = 0;
  const t0 = Date.now();
  for (;;) {
    const due = Math.min(Math.floor(((Date.now() - t0) * rate) / 1000), rate * seconds);
    for (; sent < due; sent++) {
      pending.push(clients[sent % clients.length]!.ask(NAMES[sent % NAMES.length]!, 3000).then((r) => {
        if (!r) lost++;
        else if (r[1] !== 0) failed++;
        else rtts.push(r[0]);
      }));
    }
    if (sent >= rate * seconds) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  const ms = Date.now() - t0;
  await Promise.all(pending);
  for (const c of clients) c.close();
  return { sent, ok: rtts.length, failed, lost, rtts: rtts.sort((a, b) => a - b), ms };
}

async function main(): Promise<void> {
  const dns = await Dnsmasq.start({ host: '127.0.0.53', zone: { a: NAMES.map((n, i) => [n, `198.51.100.${i + 1}`, 300] as const) } });
  const child = fork(__filename, ['serve', dns.host, String(dns.port)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const replies: ((m: FromChild) => void)[] = [];
  child.on('message', (m: FromChild) => replies.shift()?.(m));
  const next = (): Promise<FromChild> => new Promise((r) => replies.push(r));
  const mem = async (): Promise<Mem> => {
    const reply = next();
    child.send({ kind: 'mem' } satisfies ToChild);
    return (await reply) as Mem;
  };
  try {
    const ready = await next();
    if (ready.kind !== 'ready') throw new Error('proxy child did not start');
    const port = ready.port;

    // (a) added latency, direct and through the proxy alternating in rounds of 200
    await sequential(dns.host, dns.port, 200);
    await sequential('127.0.0.1', port, 200);
    const direct: number[] = [], proxied: number[] = [];
    for (let round = 0; round < SEQUENTIAL / 200; round++) {
      direct.push(...(await sequential(dns.host, dns.port, 200)));
      proxied.push(...(await sequential('127.0.0.1', port, 200)));
    }
    direct.sort((a, b) => a - b);
    proxied.sort((a, b) => a - b);
    const [d50, d99, p50, p99] = [quantile(direct, 0.5), quantile(direct, 0.99), quantile(proxied, 0.5), quantile(proxied, 0.99)];
    line(`6. DNS, ${SEQUENTIAL} sequential queries direct to dnsmasq`, `median ${d50.toFixed(3)} ms, p99 ${d99.toFixed(3)} ms`);
    line(`6. DNS, ${SEQUENTIAL} sequential queries through the proxy`, `median ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms`);
    line('6. DNS, latency added by the proxy (median)', `${(p50 - d50).toFixed(3)} ms`, '< 2 ms', p50 - d50 < 2);
    line('6. DNS, latency added by the proxy (p99)', `${(p99 - d99).toFixed(3)} ms`, '< 10 ms', p99 - d99 < 10);

    // (b) sustained load, twice after a warm-up: V8 grows its young generation under this allocation
    // rate during the first run, so growth is judged between the end of the first and the second.
    await paced(port, RATE, 2);
    const mems = [await mem()];
    for (let run = 1; run <= 2; run++) {
      const r = await paced(port, RATE, SECONDS);
      mems.push(await mem());
      const cpu = (mems[run]!.cpuMs - mems[run - 1]!.cpuMs) / r.ms;
      const what = `6. DNS, ${RATE}/s for ${SECONDS} s through the proxy, run ${run}`;
      line(what, `sent ${r.sent}, answered ${r.ok}, SERVFAIL/other ${r.failed}, lost ${r.lost}`, '0 lost', r.lost === 0 && r.failed === 0);
      line(`   achieved rate, run ${run}`, `${((r.ok * 1000) / r.ms).toFixed(0)} answers/s over ${(r.ms / 1000).toFixed(1)} s`, `${RATE}/s`, r.ok * 1000 >= RATE * r.ms * 0.99);
      line(`   latency under load, run ${run}`, `median ${quantile(r.rtts, 0.5).toFixed(3)} ms, p99 ${quantile(r.rtts, 0.99).toFixed(3)} ms`);
      line(`   proxy process CPU, run ${run}`, `${(cpu * 100).toFixed(0)}% of one core`);
    }
    const [m0, m1, m2] = mems as [Mem, Mem, Mem];
    line('6. DNS, proxy memory after GC: warm, run 1, run 2', `RSS ${MiB(m0.rss)}, ${MiB(m1.rss)}, ${MiB(m2.rss)}; heap used ${MiB(m0.heap)}, ${MiB(m1.heap)}, ${MiB(m2.heap)}`);
    const growth = { rss: m2.rss - m1.rss, heap: m2.heap - m1.heap };
    line('6. DNS, proxy memory growth between the runs', `RSS ${MiB(growth.rss)}, heap used ${MiB(growth.heap)}`, 'no growth', growth.heap < 2 ** 20 && growth.rss < 4 * 2 ** 20);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ kind: 'stop' } satisfies ToChild);
      await exited;
    }
    await dns.stop();
  }
}

if (process.argv[2] === 'serve') {
  serve(process.argv[3]!, Number(process.argv[4])).catch((e: unknown) => {
    console.error(`dns bench proxy: ${String(e)}`);
    process.exit(1);
  });
} else {
  main().catch((e: unknown) => {
    console.error(`dns bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
