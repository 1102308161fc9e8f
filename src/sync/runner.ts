/**
 * A bounded-frequency runner (after kube-proxy's): callers only `request()` a run; runs never
 * overlap; requests that arrive while one runs, or too soon after, coalesce into one next run; a
 * quiet period earns a small burst of immediate runs; a run happens at least every `maxIntervalMs`
 * (the periodic resync); and a failed run is retried after a backoff with jitter, however it was
 * triggered, with every request in between waiting for that retry.
 */
import { Clock, Timer } from './clock';

/** How early a timer may fire by the clock and still count as due (Node's timers drift by a millisecond or so). */
const TIMER_SLACK_MS = 20;

export interface RunnerOptions {
  /** Average spacing of runs under a stream of requests. */
  readonly minIntervalMs: number;
  /** Runs allowed back to back after a quiet period. */
  readonly burst: number;
  /** A run happens at least this often (clamped to what a timer can hold). */
  readonly maxIntervalMs: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  /** Up to this fraction is added at random to each backoff, so agents do not retry in lockstep. */
  readonly jitter: number;
  readonly clock: Clock;
  readonly random?: () => number;
}

/** Why a run happens; several reasons can coincide. */
export interface RunReasons {
  readonly requested: boolean;
  readonly periodic: boolean;
  readonly retry: boolean;
}

/** Node's timers hold at most 2^31-1 ms; longer values fire at once. */
export const TIMER_MAX_MS = 2 ** 31 - 1;

export class SyncRunner {
  private tokens: number;
  private tokensAt: number;
  private pending = false;
  private timer: Timer | undefined;
  private timerAt = 0;
  private current: Promise<void> | undefined;
  private stopped = true;
  private lastEnd: number;
  private retryAt: number | undefined;
  private maxIntervalMs: number;
  /** Consecutive failed runs (0 after a success). */
  failures = 0;
  runningSince: number | undefined;
  lastError: unknown;

  constructor(
    private readonly run: (why: RunReasons) => Promise<void>,
    private readonly opts: RunnerOptions,
  ) {
    this.tokens = opts.burst;
    this.tokensAt = opts.clock.now();
    this.lastEnd = opts.clock.now();
    this.maxIntervalMs = this.clampInterval(opts.maxIntervalMs);
  }

  /** Starts with one run right away. */
  start(): void {
    this.stopped = false;
    this.pending = true;
    this.schedule();
  }

  /** Cancels what is scheduled and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.current;
  }

  request(): void {
    this.pending = true;
    this.schedule();
  }

  /** The periodic interval in force. */
  get intervalMs(): number {
    return this.maxIntervalMs;
  }

  setMaxInterval(ms: number): void {
    const clamped = this.clampInterval(ms);
    if (clamped === this.maxIntervalMs) return;
    this.maxIntervalMs = clamped;
    this.schedule();
  }

  /** Never more often than the minimum interval, never longer than a timer holds. */
  private clampInterval(ms: number): number {
    return Math.min(TIMER_MAX_MS, Math.max(this.opts.minIntervalMs, 1, ms));
  }

  get retryPendingAt(): number | undefined {
    return this.retryAt;
  }

  private refill(now: number): void {
    const earned = (now - this.tokensAt) / Math.max(1, this.opts.minIntervalMs);
    this.tokens = Math.min(this.opts.burst, this.tokens + earned);
    this.tokensAt = now;
  }

  /** When the next run may start, or undefined when nothing is due. */
  private nextAt(now: number): number {
    if (this.retryAt !== undefined) return this.retryAt; // a failed run is retried first, whatever asked
    let at = this.lastEnd + this.maxIntervalMs;
    if (this.pending) {
      this.refill(now);
      const wait = this.tokens >= 1 ? 0 : (1 - this.tokens) * this.opts.minIntervalMs;
      at = Math.min(at, now + wait);
    }
    return at;
  }

  private schedule(): void {
    if (this.stopped || this.current) return; // a run in progress reschedules when it ends
    const now = this.opts.clock.now();
    const at = Math.max(now, this.nextAt(now));
    if (this.timer && this.timerAt === at) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.opts.clock.after(at - now, () => {
      this.timer = undefined;
      this.fire();
    });
  }

  private fire(): void {
    if (this.stopped || this.current) return;
    const now = this.opts.clock.now();
    const why: RunReasons = {
      requested: this.pending,
      // Node's timers may fire a millisecond or two early by Date.now(): that is the periodic run
      periodic: now >= this.lastEnd + this.maxIntervalMs - TIMER_SLACK_MS,
      retry: this.retryAt !== undefined,
    };
    this.pending = false;
    this.retryAt = undefined;
    this.refill(now);
    this.tokens = Math.max(0, this.tokens - 1);
    this.runningSince = now;
    this.current = this.run(why)
      .then(
        () => {
          this.failures = 0;
          this.lastError = undefined;
        },
        (err: unknown) => {
          this.failures++;
          this.lastError = err;
          this.retryAt = this.opts.clock.now() + this.backoff();
        },
      )
      .finally(() => {
        this.current = undefined;
        this.runningSince = undefined;
        this.lastEnd = this.opts.clock.now();
        this.schedule();
      });
  }

  /** The delay before the next retry: doubling from the minimum, capped, plus jitter. */
  private backoff(): number {
    const base = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.min(30, this.failures - 1));
    const r = (this.opts.random ?? Math.random)();
    return Math.round(base * (1 + this.opts.jitter * r));
  }
}


