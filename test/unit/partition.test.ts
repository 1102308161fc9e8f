import { Box, PartitionCache, partition, partitionCached } from '../../src/compile/partition';

/** A small deterministic PRNG so failures reproduce. */
function rng(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

function randomBoxes(seed: number, count: number, dims: number, size: number): Box[] {
  const r = rng(seed);
  return Array.from({ length: count }, () => ({
    owner: r(5),
    dims: Array.from({ length: dims }, () => {
      const a = r(size);
      const b = a + r(size - a);
      return { lo: BigInt(a), hi: BigInt(b) };
    }),
  }));
}

function points(dims: number, size: number): bigint[][] {
  if (dims === 0) return [[]];
  return points(dims - 1, size).flatMap((p) => Array.from({ length: size }, (_, i) => [...p, BigInt(i)]));
}

const inside = (b: Box, p: bigint[]) => b.dims.every((iv, d) => iv.lo <= p[d]! && p[d]! <= iv.hi);

describe('partition', () => {
  test.each([1, 2, 3])('matches brute force on random %i-dimensional boxes', (dims) => {
    const size = dims === 3 ? 8 : 24;
    for (let seed = 1; seed <= 40; seed++) {
      const boxes = randomBoxes(seed, 1 + (seed % 9), dims, size);
      const cells = partition(boxes);
      for (const p of points(dims, size)) {
        const covering = boxes.filter((b) => inside(b, p));
        const cellHits = cells.filter((c) => inside(c, p));
        expect(cellHits.length).toBe(covering.length > 0 ? 1 : 0); // disjoint, and nothing added or lost
        if (covering.length > 0) expect(cellHits[0]!.owner).toBe(Math.min(...covering.map((b) => b.owner)));
      }
    }
  });

  test('merges neighbours with the same owner', () => {
    const cells = partition([
      { owner: 0, dims: [{ lo: 0n, hi: 9n }] },
      { owner: 0, dims: [{ lo: 10n, hi: 19n }] },
      { owner: 1, dims: [{ lo: 5n, hi: 25n }] },
    ]);
    expect(cells).toEqual([
      { owner: 0, dims: [{ lo: 0n, hi: 19n }] },
      { owner: 1, dims: [{ lo: 20n, hi: 25n }] },
    ]);
  });

  test('a broad box with a lower priority does not multiply the narrow ones', () => {
    const boxes: Box[] = [{ owner: 0, dims: [{ lo: 53n, hi: 53n }, { lo: 0n, hi: 1000n }] }];
    for (let i = 1; i <= 50; i++) boxes.push({ owner: i, dims: [{ lo: 443n, hi: 443n }, { lo: BigInt(i * 10), hi: BigInt(i * 10 + 5) }] });
    expect(partition(boxes)).toHaveLength(51);
  });

  test('overlapping ranges in an early dimension do not fragment disjoint later ones', () => {
    const boxes: Box[] = Array.from({ length: 10 }, (_, k) => ({
      owner: k,
      dims: [{ lo: BigInt(2000 + k), hi: BigInt(2010 + k) }, { lo: BigInt(k * 100), hi: BigInt(k * 100 + 50) }],
    }));
    expect(partition(boxes)).toHaveLength(10);
  });
});

describe('partitionCached', () => {
  test('gives exactly what partition gives, with or without cache hits, and follows changes', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const boxes = randomBoxes(seed, 3 + (seed % 12), 2, 40);
      const names = Array.from({ length: 5 }, (_, i) => `owner-${i}`);
      const cache: PartitionCache = new Map();
      expect(partitionCached(boxes, 0, names, cache)).toEqual(partition(boxes));
      expect(partitionCached(boxes, 0, names, cache)).toEqual(partition(boxes)); // all hits
      const changed = [...boxes.slice(1), ...randomBoxes(seed + 1000, 2, 2, 40)];
      expect(partitionCached(changed, 0, names, cache)).toEqual(partition(changed));
      expect(partitionCached(changed, 1, names, undefined)).toEqual(partition(changed));
    }
  });
});
