/**
 * Small builders for nft syntax. Every value that reaches nft text goes through one of these, from
 * a typed value: addresses and ports are re-printed, names and comments are checked against a
 * conservative character set and bounded in length.
 */
import { AddrRange, Family, formatIpv4Range, formatRange } from '../model/address';
import { PortRange, Protocol, formatPortRange } from '../model/ports';

/** nft comments hold at most 128 bytes. */
export const COMMENT_MAX = 128;
/** Chain, set and map names hold at most 256 bytes; we stay well below. */
export const NAME_MAX = 200;

const SAFE_COMMENT = /[^A-Za-z0-9 ._/:,()=+-]/g;
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_.\-/]*$/;

/**
 * A comment's text made safe and length-bounded (defence in depth: inputs are validated). Metrics
 * never read names back from comments: nft keeps at most 128 bytes of them.
 */
export function safeComment(text: string): string {
  const t = text.replace(SAFE_COMMENT, '?');
  return t.length > COMMENT_MAX ? `${t.slice(0, COMMENT_MAX - 1)}~` : t;
}

export function identifier(name: string): string {
  if (name.length > NAME_MAX || !IDENTIFIER.test(name)) throw new Error(`not a safe nft identifier: ${JSON.stringify(name)}`);
  return name;
}

const IFNAME = /^[A-Za-z][A-Za-z0-9]{0,14}$/;

export function ifname(name: string): string {
  if (!IFNAME.test(name)) throw new Error(`not a safe interface name: ${JSON.stringify(name)}`);
  return `"${name}"`;
}

export function ifnameSet(names: readonly string[]): string {
  return names.length === 1 ? ifname(names[0]!) : `{ ${names.map(ifname).join(', ')} }`;
}

export function ipKeyword(family: Family): 'ip' | 'ip6' {
  return family === 4 ? 'ip' : 'ip6';
}

export function addrType(family: Family): 'ipv4_addr' | 'ipv6_addr' {
  return family === 4 ? 'ipv4_addr' : 'ipv6_addr';
}

export function range(r: AddrRange): string {
  return formatRange(r);
}

/** A range given by its bounds: numbers (IPv4, as the compiler keeps them) or bigints. */
export function addrRange(family: Family, lo: number | bigint, hi: number | bigint): string {
  return family === 4 ? formatIpv4Range(Number(lo), Number(hi)) : formatRange({ family, lo: BigInt(lo), hi: BigInt(hi) });
}

export function ports(r: PortRange): string {
  return formatPortRange(r);
}

export function protocol(p: Protocol): string {
  return p;
}

export function logPrefix(prefix: 'nftables-firewall-dropped: ' | 'nftables-firewall-accepted: '): string {
  return `log prefix "${prefix}"`;
}
