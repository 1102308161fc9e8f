/**
 * A probe for the agent benchmarks, run inside a lab namespace (`ip netns exec NS node until.js
 * JSON`): prints `ready`, then tries new TCP connections to host:port one after another until
 * they pass (`open`) or are dropped (`closed`), and prints one JSON line `{ ok, at, tries }`
 * where `at` is the wall-clock time (Date.now(), the same clock as the caller's) at which traffic
 * followed: the moment of the first successful connect, or the start of the first of two dropped
 * attempts in a row (two, so that a stalled probe process cannot fake a drop). An attempt that
 * gets no answer within `timeoutMs` counts as dropped; in the lab an answer takes microseconds.
 * Bounded by `forMs`.
 */
import net from 'node:net';

interface Args {
  host: string;
  port: number;
  until: 'open' | 'closed';
  timeoutMs?: number;
  forMs?: number;
}

function attempt(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('connect', () => done(true));
    // refused or unreachable (a reject rule): not open either, and conclusive at once
    sock.on('error', () => done(false));
  });
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]!) as Args;
  const timeoutMs = a.timeoutMs ?? 10;
  const deadline = Date.now() + (a.forMs ?? 20_000);
  process.stdout.write('ready\n');
  let tries = 0;
  let firstDrop: number | undefined;
  while (Date.now() < deadline) {
    const started = Date.now();
    tries++;
    const ok = await attempt(a.host, a.port, timeoutMs);
    if (a.until === 'open' && ok) return void process.stdout.write(`${JSON.stringify({ ok: true, at: Date.now(), tries })}\n`);
    if (a.until === 'closed') {
      if (ok) firstDrop = undefined;
      else if (firstDrop === undefined) firstDrop = started;
      else return void process.stdout.write(`${JSON.stringify({ ok: true, at: firstDrop, tries })}\n`);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  process.stdout.write(`${JSON.stringify({ ok: false, at: Date.now(), tries })}\n`);
}

void main();
