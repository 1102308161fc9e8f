/**
 * The table's counters for /metrics and the FirewallMonitor. A slow or hanging nft must not hold
 * them up: after a moment the last reading is served, at most one read is under way at a time, and
 * a reading is shared by every caller for a while (one nft listing per scrape, not per metric).
 *
 * How long a reading is shared follows what it costs: nft 1.0.6 loads the whole table, set
 * elements included, to list counters (0.7 s of nft at 10,000 policies), so reading at every
 * scrape and every interval would keep a core busy for nothing. Readings that cost more than
 * CHEAP_READ_MS may take at most COUNTERS_SHARE of the time: fresh every 2 s on small tables,
 * about once a minute at 10,000 policies. Counters only grow, so a scrape in between sees the last values, never wrong ones.
 */
import { Logger } from './log';
import { TableStats } from '../nft/stats';

/** How long a caller waits for a fresh reading before it gets the last one. */
export const COUNTERS_WAIT_MS = 1500;
/** The share of the time that reading counters may take. */
export const COUNTERS_SHARE = 0.01;
/** Bounds of how long a reading is shared. */
export const SHARE_MIN_MS = 2000;
export const SHARE_MAX_MS = 60_000;
/** Readings faster than this are never stretched (small tables: tens of milliseconds at most). */
export const CHEAP_READ_MS = 250;

export interface CounterReader {
  (): Promise<TableStats | undefined>;
  /** How long a reading is shared now (status, tests). */
  readonly shareMs: () => number;
}

export function counterReader(read: () => Promise<TableStats | undefined>, log: Logger, now: () => number = Date.now): CounterReader {
  let last: TableStats | undefined;
  let lastAt = -Infinity;
  let costMs = 0;
  let reading: Promise<void> | undefined;
  // Cheap readings stay fresh every 2 s however busy the machine (a loaded host stretches a small
  // table's 10 ms listing to tens of ms: that must not make /metrics lag).
  const shareMs = (): number => (costMs < CHEAP_READ_MS ? SHARE_MIN_MS : Math.min(SHARE_MAX_MS, Math.max(SHARE_MIN_MS, costMs / COUNTERS_SHARE)));
  const get = async (): Promise<TableStats | undefined> => {
    if (now() - lastAt < shareMs()) return last;
    reading ??= (async () => {
      const started = now();
      try {
        last = await read();
      } catch (err) {
        // e.g. a listing racing a large transaction: serve the last reading rather than fail the scrape
        log.debug('could not read counters; serving the last reading', { error: err });
      } finally {
        lastAt = now();
        costMs = lastAt - started;
        reading = undefined;
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, COUNTERS_WAIT_MS)));
    try {
      await Promise.race([reading, waited]);
    } finally {
      clearTimeout(timer);
    }
    return last;
  };
  return Object.assign(get, { shareMs });
}
