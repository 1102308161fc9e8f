/**
 * The table's counters for /metrics and the FirewallMonitor. A slow or hanging nft must not hold
 * them up: after a moment the last reading is served, at most one read is under way at a time, and
 * a reading is shared for a short while by every caller (one nft listing per scrape, not per metric).
 */
import { Logger } from './log';
import { cached } from './metrics';
import { TableStats } from '../nft/stats';

/** How long a caller waits for a fresh reading before it gets the last one. */
export const COUNTERS_WAIT_MS = 1500;
/** How long a reading is shared. */
const SHARE_MS = 2000;

export function counterReader(read: () => Promise<TableStats | undefined>, log: Logger): () => Promise<TableStats | undefined> {
  let last: TableStats | undefined;
  let reading: Promise<unknown> | undefined;
  return cached(SHARE_MS, async () => {
    reading ??= read()
      .then(
        (s) => (last = s),
        // e.g. a listing racing a large transaction: serve the last reading rather than fail the scrape
        (err: unknown) => log.debug('could not read counters; serving the last reading', { error: err }),
      )
      .finally(() => (reading = undefined));
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, COUNTERS_WAIT_MS)));
    try {
      await Promise.race([reading, waited]);
    } finally {
      clearTimeout(timer);
    }
    return last;
  });
}
