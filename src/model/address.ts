/**
 * IP addresses, prefixes and address ranges as typed values.
 *
 * Parsing is strict (dotted-quad IPv4, RFC 4291 IPv6 without zone ids) and delegates the text
 * grammar to ipaddr.js; everything after parsing works on bigint values so that range arithmetic
 * is exact for both families. Formatting always re-prints from the numeric value, so no input text
 * survives into nft syntax.
 */
import ipaddr from 'ipaddr.js';

export type Family = 4 | 6;

export const FAMILY_BITS: Record<Family, number> = { 4: 32, 6: 128 };

export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

/** A canonical prefix: `network` has no host bits set. */
export interface Prefix {
  readonly family: Family;
  readonly network: bigint;
  readonly length: number;
}

/** An inclusive range of addresses of one family. */
export interface AddrRange {
  readonly family: Family;
  readonly lo: bigint;
  readonly hi: bigint;
}

export type ParseResult<T> = { ok: true; value: T; hostBitsMasked?: boolean } | { ok: false; error: string };

const MAX_TEXT = 64;

function bytesToBigint(bytes: number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function bigintToBytes(value: bigint, family: Family): number[] {
  const n = family === 4 ? 4 : 16;
  const out = new Array<number>(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function describe(text: unknown): string {
  // Only used in error messages; JSON.stringify escapes control characters and quotes.
  const s = typeof text === 'string' ? text : String(text);
  return JSON.stringify(s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s);
}

/** A dotted quad without leading zeros: exactly what ipaddr.js's isValidFourPartDecimal accepts, octets <= 255 aside. */
const OCTET = '(0|[1-9]\\d{0,2})';
const QUAD = `${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}`;
const DOTTED_QUAD = new RegExp(`^${QUAD}$`);
/** The same with a prefix length of at most two digits. */
const QUAD_PREFIX = new RegExp(`^${QUAD}/(0|[1-9]\\d?)$`);

/** The address of a DOTTED_QUAD or QUAD_PREFIX match, undefined if an octet is over 255. */
function quadValue(m: RegExpExecArray): number | undefined {
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    v = v * 256 + octet;
  }
  return v;
}

/** The common case, an IPv4 address, without ipaddr.js; undefined leaves the text to the full parser. */
function parseIpv4Fast(text: string): IpAddress | undefined {
  const m = DOTTED_QUAD.exec(text);
  const v = m ? quadValue(m) : undefined;
  return v === undefined ? undefined : { family: 4, value: BigInt(v) };
}

/** The common case of parsePrefix, an IPv4 prefix, on numbers; undefined leaves the text to parsePrefix. */
function parseIpv4PrefixFast(text: string): ParseResult<Prefix> | undefined {
  const m = QUAD_PREFIX.exec(text);
  const v = m ? quadValue(m) : undefined;
  const length = Number(m?.[5]);
  if (v === undefined || length > 32) return undefined;
  const network = v - (v % 2 ** (32 - length));
  return { ok: true, value: { family: 4, network: BigInt(network), length }, hostBitsMasked: network !== v };
}

export function parseAddress(text: unknown): ParseResult<IpAddress> {
  if (typeof text !== 'string') return { ok: false, error: `${describe(text)} is not a string` };
  const v4 = parseIpv4Fast(text);
  if (v4) return { ok: true, value: v4 };
  if (text.length > MAX_TEXT || !/^[0-9a-fA-F:.]+$/.test(text)) {
    return { ok: false, error: `${describe(text)} is not an IP address` };
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    return { ok: true, value: { family: 4, value: bytesToBigint(ipaddr.IPv4.parse(text).toByteArray()) } };
  }
  if (text.includes(':')) return parseIpv6(text);
  return { ok: false, error: `${describe(text)} is not an IP address` };
}

/**
 * IPv6, including the dotted-quad forms (`64:ff9b::192.0.2.1`, `::ffff:192.0.2.1`), always as
 * exactly the address the text says (RFC 4291 2.2).
 *
 * ipaddr.js reads `::a.b.c.d` as the IPv4-mapped `::ffff:a.b.c.d`, a different address, so the
 * dotted quad is converted to two hex groups here before ipaddr.js sees the text. The
 * IPv4-compatible form itself (`::a.b.c.d`, upper 96 bits zero) is refused: it is deprecated (RFC
 * 4291 2.5.5.1), never appears in packets, and tools disagree on what it means; whoever writes it
 * almost certainly means the IPv4 address or the IPv4-mapped one, and a rule or `except` silently
 * matching neither (an except that excludes nothing widens the policy) is worse than a clear
 * rejection naming both forms. The same address written in hex (`::cb00:710b`) is unambiguous and
 * accepted.
 */
function parseIpv6(text: string): ParseResult<IpAddress> {
  const dotted = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
  let hex = text;
  if (dotted) {
    const v4 = dotted[2]!;
    if (!ipaddr.IPv4.isValidFourPartDecimal(v4)) return { ok: false, error: `${describe(text)} is not an IP address` };
    const b = ipaddr.IPv4.parse(v4).toByteArray();
    hex = `${dotted[1]}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  if (!ipaddr.IPv6.isValid(hex) || /[.%]/.test(hex)) return { ok: false, error: `${describe(text)} is not an IP address` };
  const value = bytesToBigint(ipaddr.IPv6.parse(hex).toByteArray());
  if (dotted && value >> 32n === 0n) {
    const v4 = dotted[2]!;
    return {
      ok: false,
      error:
        `${describe(text)} is an IPv4-compatible IPv6 address (deprecated, RFC 4291 2.5.5.1); ` +
        `write ${v4} for the IPv4 address or ::ffff:${v4} for the IPv4-mapped IPv6 address`,
    };
  }
  return { ok: true, value: { family: 6, value } };
}

/** Host masks by family and prefix length, computed once: prefixes are parsed by the 100,000. */
const HOST_MASKS: Record<Family, bigint[]> = {
  4: Array.from({ length: 33 }, (_, len) => (1n << BigInt(32 - len)) - 1n),
  6: Array.from({ length: 129 }, (_, len) => (1n << BigInt(128 - len)) - 1n),
};

function hostMask(family: Family, length: number): bigint {
  return HOST_MASKS[family][length]!;
}

/**
 * Parses `addr/len`. Host bits are masked off (the result is canonical) and reported through
 * `hostBitsMasked` so callers can warn; a bare address without a length is rejected.
 */
export function parsePrefix(text: unknown): ParseResult<Prefix> {
  if (typeof text !== 'string') return { ok: false, error: `${describe(text)} is not a string` };
  const v4 = parseIpv4PrefixFast(text);
  if (v4) return v4;
  const slash = text.indexOf('/');
  if (slash < 0) return { ok: false, error: `${describe(text)} is not a CIDR (address/length)` };
  const addrText = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  const addr = parseAddress(addrText);
  if (!addr.ok) return { ok: false, error: `${describe(text)} is not a CIDR: ${addr.error}` };
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) {
    return { ok: false, error: `${describe(text)} has an invalid prefix length` };
  }
  const length = Number(lenText);
  const family = addr.value.family;
  if (length > FAMILY_BITS[family]) {
    return { ok: false, error: `${describe(text)} has prefix length ${length}, more than ${FAMILY_BITS[family]}` };
  }
  const mask = hostMask(family, length);
  const network = addr.value.value & ~mask;
  return { ok: true, value: { family, network, length }, hostBitsMasked: network !== addr.value.value };
}

export function prefixRange(p: Prefix): AddrRange {
  return { family: p.family, lo: p.network, hi: p.network | hostMask(p.family, p.length) };
}

export function hostPrefix(a: IpAddress): Prefix {
  return { family: a.family, network: a.value, length: FAMILY_BITS[a.family] };
}

/** The four octets as text. */
function octets(n: number): string[] {
  return [String(n >>> 24), String((n >>> 16) & 255), String((n >>> 8) & 255), String(n & 255)];
}

/**
 * IPv4 text is joined, not concatenated: join makes one flat string where `+` and templates make
 * a chain of parts, about three times the memory for each of the 100k+ map elements that keep it.
 */
function formatIpv4(n: number): string {
  return octets(n).join('.');
}

export function formatAddress(a: IpAddress): string {
  // IPv4 is plain dotted decimal (as ipaddr.js prints it); IPv6 needs ipaddr.js's RFC 5952 form.
  if (a.family === 4) return formatIpv4(Number(a.value));
  return ipaddr.fromByteArray(bigintToBytes(a.value, a.family)).toString();
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress({ family: p.family, value: p.network })}/${p.length}`;
}

/** The prefix exactly covering `r`, if there is one. */
export function rangeAsPrefix(r: AddrRange): Prefix | undefined {
  const size = r.hi - r.lo + 1n;
  if ((size & (size - 1n)) !== 0n) return undefined;
  if ((r.lo & (size - 1n)) !== 0n) return undefined;
  const hostBits = size.toString(2).length - 1;
  return { family: r.family, network: r.lo, length: FAMILY_BITS[r.family] - hostBits };
}

/** formatRange for IPv4 on plain numbers: the bulk of every ruleset, without bigints. */
export function formatIpv4Range(lo: number, hi: number): string {
  if (lo === hi) return formatIpv4(lo);
  const size = hi - lo + 1;
  const hostBits = Math.log2(size); // exact for powers of two, never an integer otherwise (size <= 2^32)
  if (Number.isInteger(hostBits) && lo % size === 0) {
    const o = octets(lo);
    o[3] = `${o[3]}/${32 - hostBits}`; // short: flat
    return o.join('.');
  }
  return [formatIpv4(lo), formatIpv4(hi)].join('-');
}

/** nft element syntax for a range: a bare address, a prefix, or `lo-hi`. */
export function formatRange(r: AddrRange): string {
  if (r.family === 4) return formatIpv4Range(Number(r.lo), Number(r.hi));
  if (r.lo === r.hi) return formatAddress({ family: r.family, value: r.lo });
  const p = rangeAsPrefix(r);
  if (p) return formatPrefix(p);
  return `${formatAddress({ family: r.family, value: r.lo })}-${formatAddress({ family: r.family, value: r.hi })}`;
}

export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.family !== inner.family || inner.length < outer.length) return false;
  const o = prefixRange(outer);
  return inner.network >= o.lo && inner.network <= o.hi;
}

export function addressInPrefix(p: Prefix, a: IpAddress): boolean {
  return prefixContains(p, hostPrefix(a));
}
