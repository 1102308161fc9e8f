/** The bounded-frequency runner on a fake clock: coalescing, burst, periodic runs, backoff with jitter. */
import { FakeClock, settle } from '../../src/sync/clock';
import { RunReasons, SyncRunner, TIMER_MAX_MS } from '../../src/sync/runner';

interface Harness {
  clock: FakeClock;
  runner: SyncRunner;
  runs: { at: number; why: RunReasons }[];
  /** Make the next runs fail (a queue of booleans: true = fail). */
  failures: boolean[];
  /** Keeps each run open until released. */
  hold: boolean;
  release: () => void;
  concurrent: number;
  maxConcurrent: number;
}

function harness(opts: Partial<ConstructorParameters<typeof SyncRunner>[1]> = {}): Harness {
  const clock = new FakeClock();
  const h: Harness = { clock, runner: undefined!, runs: [], failures: [], hold: false, release: () => undefined, concurrent: 0, maxConcurrent: 0 };
  h.runner = new SyncRunner(
    async (why) => {
      h.runs.push({ at: clock.now(), why });
      h.concurrent++;
      h.maxConcurrent = Math.max(h.maxConcurrent, h.concurrent);
      try {
        if (h.hold) await new Promise<void>((r) => (h.release = r));
        if (h.failures.shift()) throw new Error('nft failed');
      } finally {
        h.concurrent--;
      }
    },
    { minIntervalMs: 100, burst: 2, maxIntervalMs: 10_000, backoffMinMs: 1000, backoffMaxMs: 30_000, jitter: 0.2, clock, random: () => 0.5, ...opts },
  );
  return h;
}

test('starts with a run; a request after a quiet period runs at once', async () => {
  const h = harness();
  h.runner.start();
  await h.clock.advance(0);
  expect(h.runs).toHaveLength(1);
  await h.clock.advance(5000);
  h.runner.request();
  await h.clock.advance(0);
  expect(h.runs.map((r) => r.at - h.runs[0]!.at)).toEqual([0, 5000]);
  expect(h.runs[1]!.why).toEqual({ requested: true, periodic: false, retry: false });
  await h.runner.stop();
});

test('requests during a run coalesce into one next run; runs never overlap', async () => {
  const h = harness();
  h.runner.start();
  await h.clock.advance(0);
  h.hold = true;
  await h.clock.advance(1000);
  h.runner.request();
  await h.clock.advance(0);
  expect(h.runs).toHaveLength(2); // the second one is held open
  for (let i = 0; i < 50; i++) h.runner.request();
  await h.clock.advance(500);
  expect(h.runs).toHaveLength(2);
  h.hold = false;
  h.release();
  await h.clock.advance(200);
  expect(h.runs).toHaveLength(3); // fifty requests, one run
  expect(h.maxConcurrent).toBe(1);
  await h.runner.stop();
});

test('a stream of requests is rate limited to the minimum interval after the burst', async () => {
  const h = harness();
  h.runner.start();
  await h.clock.advance(10_000); // the first run's token is earned back; the burst is full
  const start = h.runs.length;
  for (let t = 0; t < 1000; t += 10) {
    h.runner.request();
    await h.clock.advance(10);
  }
  const runs = h.runs.slice(start);
  // 1000 ms of requests: a burst of 2 at once, then one every 100 ms
  expect(runs.length).toBeGreaterThanOrEqual(10);
  expect(runs.length).toBeLessThanOrEqual(12);
  const gaps = runs.slice(2).map((r, i) => r.at - runs[i + 1]!.at);
  expect(Math.min(...gaps)).toBeGreaterThanOrEqual(90);
  await h.runner.stop();
});

test('a run happens every maxInterval without requests, marked periodic', async () => {
  const h = harness({ maxIntervalMs: 2000 });
  h.runner.start();
  await h.clock.advance(7000);
  expect(h.runs.map((r) => r.at - h.runs[0]!.at)).toEqual([0, 2000, 4000, 6000]);
  expect(h.runs.slice(1).every((r) => r.why.periodic && !r.why.requested)).toBe(true);
  await h.runner.stop();
});

test('a maxInterval past what a timer holds is clamped, not fired at once', async () => {
  const h = harness({ maxIntervalMs: 720 * 3600_000 });
  h.runner.start();
  await h.clock.advance(60_000);
  expect(h.runs).toHaveLength(1);
  h.runner.setMaxInterval(0.000001); // "1ns"
  await h.clock.advance(1000);
  expect(h.runs.length).toBeLessThanOrEqual(12); // no faster than the minimum interval, never overlapping
  expect(TIMER_MAX_MS).toBe(2 ** 31 - 1);
  await h.runner.stop();
});

test('failures back off exponentially with jitter, whatever triggers, and a success resets it', async () => {
  const h = harness();
  h.failures = [true, true, true, true];
  h.runner.start();
  await h.clock.advance(0);
  expect(h.runner.failures).toBe(1);
  // watch events keep arriving: none of them runs before the retry is due
  for (let i = 0; i < 12; i++) {
    h.runner.request();
    await h.clock.advance(100);
  }
  await h.clock.advance(60_000);
  const at = h.runs.map((r) => r.at - h.runs[0]!.at);
  // 1000, 2000, 4000, 8000 ms, each plus 20 % * 0.5 jitter
  expect(at.slice(0, 5)).toEqual([0, 1100, 1100 + 2200, 1100 + 2200 + 4400, 1100 + 2200 + 4400 + 8800]);
  expect(h.runs[1]!.why.retry).toBe(true);
  expect(h.runs[1]!.why.requested).toBe(true);
  expect(h.runner.failures).toBe(0);
  await h.runner.stop();
});

test('backoff is capped and jitter spreads retries', async () => {
  const delays = new Set<number>();
  for (const r of [0, 0.25, 0.5, 0.99]) {
    const h = harness({ random: () => r, backoffMaxMs: 4000 });
    h.failures = Array(8).fill(true);
    h.runner.start();
    await h.clock.advance(120_000);
    const at = h.runs.map((x) => x.at);
    const last = at[7]! - at[6]!; // the seventh retry: capped
    expect(last).toBeLessThanOrEqual(4000 * 1.2);
    expect(last).toBeGreaterThanOrEqual(4000);
    delays.add(last);
    await h.runner.stop();
  }
  expect(delays.size).toBe(4);
});

test('stop waits for the run in progress and nothing runs afterwards', async () => {
  const h = harness();
  h.hold = true;
  h.runner.start();
  await h.clock.advance(0);
  let stopped = false;
  const stopping = h.runner.stop().then(() => (stopped = true));
  await settle();
  expect(stopped).toBe(false);
  h.release();
  await stopping;
  h.runner.request();
  await h.clock.advance(60_000);
  expect(h.runs).toHaveLength(1);
  expect(h.clock.pending).toBe(0);
});
