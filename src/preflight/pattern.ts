/**
 * Upstream's FQDN matching (firewall-controller FQDNSelector.GetRegex): `*` becomes
 * `[-a-zA-Z0-9_.]*`, so it crosses dots; a bare `*` matches every name.
 */
import { canonicalName, selectorMatcher } from '../dns/selector';
import { parseFqdn } from '../model/cwnp';

const UPSTREAM_DNS_CHARS = '[-a-zA-Z0-9_.]';

export function upstreamPatternMatches(pattern: string, name: string): boolean {
  let re: string;
  if (pattern === '*') {
    re = `(^(${UPSTREAM_DNS_CHARS}+[.])+$)|(^[.]$)`;
  } else {
    let p = pattern.trim().toLowerCase();
    if (!p.endsWith('.')) p += '.';
    re = `^${p.replace(/\./g, '[.]').replace(/\*/g, `${UPSTREAM_DNS_CHARS}*`)}$`;
  }
  const fqdn = name.endsWith('.') ? name : `${name}.`;
  return new RegExp(re).test(fqdn.toLowerCase());
}

/** A name upstream's pattern matched and ours does not (a star spanning two labels), if any. */
export function lostPatternMatch(pattern: string): string | undefined {
  const parsed = parseFqdn(pattern, true);
  if (!parsed.ok || !pattern.includes('*')) return undefined;
  let first = true;
  const example = canonicalName(
    parsed.value.replace(/\*/g, () => {
      const s = first ? 'a.b' : 'a';
      first = false;
      return s;
    }),
  );
  const ours = selectorMatcher({ kind: 'matchPattern', value: parsed.value });
  return upstreamPatternMatches(parsed.value, example) && !ours(example) ? example : undefined;
}
