/**
 * Which DNS names a `toFQDNs` selector means. Pure.
 *
 * - `matchName` is one name: compared case-insensitively, a trailing dot optional on either side.
 * - `matchPattern` is a name whose labels may hold `*`, which matches any run of characters within
 *   one label: `*.example.com` matches `a.example.com`, not `a.b.example.com` nor `example.com`;
 *   `api-*.example.com` matches `api-1.example.com`. A bare `*` matches every name.
 *
 * The upstream agent lets `*` cross dots and compares `matchName` case-sensitively; here a pattern
 * never reaches further down the tree than its author wrote. IDNs are matched in their punycode
 * form (`xn--…`), as DNS carries them.
 */
import { FqdnSelector } from '../model/cwnp';

/** Lower case, no trailing dot: the form names are compared and reported in. */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

export type NameMatcher = (canonical: string) => boolean;

function labelMatcher(label: string): (l: string) => boolean {
  if (!label.includes('*')) return (l) => l === label;
  if (label === '*') return (l) => l.length > 0;
  // Selector labels hold only [-a-z0-9_*] (validated by the model), so only `*` is special.
  const re = new RegExp(`^${label.split('*').map((part) => part.replace(/[-]/g, '\\-')).join('[^.]*')}$`);
  return (l) => re.test(l);
}

/** A matcher for canonical names (see canonicalName). */
export function selectorMatcher(sel: FqdnSelector): NameMatcher {
  const want = canonicalName(sel.value);
  if (sel.kind === 'matchName') return (name) => name === want;
  if (want === '*') return (name) => name.length > 0;
  const labels = want.split('.').map(labelMatcher);
  return (name) => {
    const got = name.split('.');
    return got.length === labels.length && labels.every((m, i) => m(got[i]!));
  };
}

/** The selector as the user wrote it, the key of `fqdn_state` (upstream shape). */
export function selectorText(sel: FqdnSelector): string {
  return canonicalName(sel.value);
}
