/**
 * Sets of address ranges kept sorted, disjoint and merged (adjacent ranges joined). This is how we
 * merge overlapping prefixes ourselves instead of relying on nft's `auto-merge`.
 */
import { AddrRange, Family, Prefix, prefixRange } from './address';

export type RangeSet = readonly AddrRange[];

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Normalises any list of ranges of one family into a sorted, disjoint, merged set. */
export function normalize(ranges: readonly AddrRange[]): RangeSet {
  if (ranges.length === 0) return [];
  // Usually the ranges are normalised already (one prefix, or disjoint ones in order): keep them.
  let normal = true;
  for (let i = 1; i < ranges.length && normal; i++) normal = ranges[i]!.lo > ranges[i - 1]!.hi + 1n;
  if (normal) return ranges.slice();
  const sorted = [...ranges].sort((a, b) => cmp(a.lo, b.lo) || cmp(a.hi, b.hi));
  const out: AddrRange[] = [];
  let cur = { ...sorted[0]! };
  for (let i = 1; i < sorted.length; i++) {
    const r = sorted[i]!;
    if (r.lo <= cur.hi + 1n) {
      if (r.hi > cur.hi) cur = { ...cur, hi: r.hi };
    } else {
      out.push(cur);
      cur = { ...r };
    }
  }
  out.push(cur);
  return out;
}

export function fromPrefixes(prefixes: readonly Prefix[], family: Family): RangeSet {
  return normalize(prefixes.filter((p) => p.family === family).map(prefixRange));
}

/** `a` minus `b`; both normalised. */
export function subtract(a: RangeSet, b: RangeSet): RangeSet {
  const out: AddrRange[] = [];
  let j = 0;
  for (const r of a) {
    let lo = r.lo;
    const hi = r.hi;
    while (j < b.length && b[j]!.hi < lo) j++;
    let k = j;
    while (k < b.length && b[k]!.lo <= hi) {
      const cut = b[k]!;
      if (cut.lo > lo) out.push({ family: r.family, lo, hi: cut.lo - 1n });
      if (cut.hi >= hi) {
        lo = hi + 1n;
        break;
      }
      lo = cut.hi + 1n;
      k++;
    }
    if (lo <= hi) out.push({ family: r.family, lo, hi });
  }
  return out;
}

/** True when every address of `r` lies in the normalised set `s`. */
export function covers(s: RangeSet, r: AddrRange): boolean {
  return s.some((x) => x.family === r.family && x.lo <= r.lo && x.hi >= r.hi);
}
