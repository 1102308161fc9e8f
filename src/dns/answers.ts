/**
 * The addresses a DNS answer resolves its question to: the question name, the CNAME chain from it
 * (bounded), and the A/AAAA records owned by a name of that chain. Records for any other owner are
 * ignored, so a response cannot smuggle in addresses for names nobody asked about.
 */
import type { Answer, Packet, StringAnswer } from 'dns-packet';
import ipaddr from 'ipaddr.js';

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
  /**
   * Seconds: the record's TTL, bounded by the TTLs of the CNAMEs leading to its owner (the alias is
   * only known to point there for that long).
   */
  readonly ttl: number;
}

export interface Resolved {
  /** The chain, question name first: lower case, no trailing dot. */
  readonly names: string[];
  readonly addresses: ResolvedAddress[];
}

const EMPTY: Resolved = { names: [], addresses: [] };

/** Lower case, without the trailing dot; the root is ''. */
export function normalName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** NOERROR, including the extended RCODE bits an OPT record carries. */
export function isNoError(response: Packet): boolean {
  const decoded = (response as { rcode?: unknown }).rcode;
  const base = typeof decoded === 'string' ? decoded === 'NOERROR' : ((response.flags ?? 0) & 0xf) === 0;
  const opt = (response.additionals ?? []).find((a) => a.type === 'OPT');
  return base && (opt === undefined || !('extendedRcode' in opt) || !opt.extendedRcode);
}

function inClass(a: Answer): boolean {
  return !('class' in a) || a.class === undefined || a.class === 'IN';
}

function ttlOf(a: Answer): number {
  const t = 'ttl' in a ? a.ttl : undefined;
  return typeof t === 'number' && Number.isFinite(t) && t >= 0 ? t : 0;
}

/** Re-printed from the parsed value; undefined for text that is not an address of the record's family. */
function canonical(type: 'A' | 'AAAA', text: string): string | undefined {
  if (type === 'A') return ipaddr.IPv4.isValidFourPartDecimal(text) ? ipaddr.IPv4.parse(text).toString() : undefined;
  if (!ipaddr.IPv6.isValid(text)) return undefined;
  const v6 = ipaddr.IPv6.parse(text);
  return v6.zoneId === undefined ? v6.toString() : undefined;
}

export function resolvedAddresses(response: Packet, maxChain = 10): Resolved {
  const questions = response.questions ?? [];
  if (questions.length !== 1 || !isNoError(response)) return EMPTY;
  const first = normalName(questions[0]!.name);
  if (first === '') return EMPTY;
  const answers = (response.answers ?? []).filter(inClass);

  // name → the smallest TTL on the way from the question name to it
  const chain = new Map<string, number>([[first, Infinity]]);
  let current = first;
  for (let hop = 0; hop < maxChain; hop++) {
    // RFC 2181 allows one CNAME per owner; with several, the first one counts.
    const cname = answers.find((a): a is StringAnswer => a.type === 'CNAME' && normalName(a.name) === current);
    if (!cname || typeof cname.data !== 'string') break;
    const target = normalName(cname.data);
    if (target === '' || chain.has(target)) break; // the root, or a loop
    chain.set(target, Math.min(chain.get(current)!, ttlOf(cname)));
    current = target;
  }

  const best = new Map<string, ResolvedAddress>();
  for (const a of answers) {
    if ((a.type !== 'A' && a.type !== 'AAAA') || typeof a.data !== 'string') continue;
    const bound = chain.get(normalName(a.name));
    if (bound === undefined) continue;
    const address = canonical(a.type, a.data);
    if (address === undefined) continue;
    const ttl = Math.min(bound, ttlOf(a));
    const seen = best.get(address);
    if (!seen || seen.ttl < ttl) best.set(address, { address, family: a.type === 'A' ? 4 : 6, ttl });
  }
  return { names: [...chain.keys()], addresses: [...best.values()] };
}
