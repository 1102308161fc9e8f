/**
 * The counter reader: one read at a time, the last reading served while nft is slow, and readings
 * shared for longer the more they cost (at most 1 % of the time, between 2 s and 60 s).
 */
import { COUNTERS_SHARE, counterReader } from '../../src/report/counter-reader';
import { jsonLogger } from '../../src/report/log';
import { TableStats } from '../../src/nft/stats';

const log = jsonLogger(() => undefined, 'error');

function stats(packets: number): TableStats {
  return { counters: { drop_total: { packets, bytes: packets * 100 } }, rules: [] };
}

test('a reading is shared for longer the more it costs', async () => {
  let t = 0;
  let reads = 0;
  let costMs = 10;
  const reader = counterReader(
    async () => {
      reads++;
      t += costMs; // the listing takes this long
      return stats(reads);
    },
    log,
    () => t,
  );
  expect((await reader())!.counters.drop_total!.packets).toBe(1);
  expect(reader.shareMs()).toBe(2000); // cheap: the 2 s floor
  t += 1999;
  await reader();
  expect(reads).toBe(1);
  t += 1;
  await reader();
  expect(reads).toBe(2);
  costMs = 200; // slow for a small table (a busy machine), still cheap: fresh every 2 s
  t += 2000;
  await reader();
  expect(reads).toBe(3);
  expect(reader.shareMs()).toBe(2000);
  costMs = 500; // thousands of policies
  t += 2000;
  await reader();
  expect(reads).toBe(4);
  expect(reader.shareMs()).toBe(500 / COUNTERS_SHARE);
  t += 40_000;
  expect((await reader())!.counters.drop_total!.packets).toBe(4); // shared: no read within 50 s
  t += 10_000;
  expect((await reader())!.counters.drop_total!.packets).toBe(5);
  costMs = 5000; // capped: never staler than a minute
  t += 60_000;
  await reader();
  expect(reader.shareMs()).toBe(60_000);
});

test('a hanging read serves the last reading after the wait, and only one read runs at a time', async () => {
  let release!: () => void;
  let reads = 0;
  let t = 0;
  const reader = counterReader(
    async () => {
      reads++;
      if (reads === 2) await new Promise<void>((r) => (release = r));
      return stats(reads);
    },
    log,
    () => t,
  );
  await reader();
  t += 10_000;
  const [a, b] = await Promise.all([reader(), reader()]);
  expect(a!.counters.drop_total!.packets).toBe(1); // served after the 1.5 s wait
  expect(b).toBe(a);
  expect(reads).toBe(2);
  release();
  await new Promise((r) => setImmediate(r));
  expect((await reader())!.counters.drop_total!.packets).toBe(2);
});
