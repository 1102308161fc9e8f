/**
 * The packet `explain` judges, parsed from the command line, and the tests of its addresses and
 * port against prefixes, ranges and port specs. Pure.
 */
import { IpAddress, Prefix, addressInPrefix, parseAddress } from '../model/address';
import { PortSpec, Protocol, parseProtocol } from '../model/ports';
import { RangeSet } from '../model/rangeset';

export type PacketProtocol = Protocol | 'icmp';

/** The first packet of a new connection (for ICMP: an echo request). */
export interface Packet {
  readonly src: IpAddress;
  readonly dst: IpAddress;
  readonly protocol: PacketProtocol;
  /** Destination port; undefined for ICMP. */
  readonly port: number | undefined;
}

export type DirectionOption = 'auto' | 'egress' | 'ingress';
export const DIRECTIONS: readonly DirectionOption[] = ['auto', 'egress', 'ingress'];

// ---------------------------------------------------------------------------------------------
// Input parsing (used by the command; pure)

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** `443/tcp`, `53/UDP`, `443` (TCP, as in Kubernetes), `icmp`, `icmpv6`. */
export function parsePortSpec(text: string): Parsed<{ protocol: PacketProtocol; port: number | undefined }> {
  const t = text.trim().toLowerCase();
  if (t === 'icmp' || t === 'icmpv6' || t === 'icmp6' || t === 'ping') return { ok: true, value: { protocol: 'icmp', port: undefined } };
  const m = /^([0-9]{1,5})(?:\/([a-z0-9]+))?$/.exec(t);
  if (!m) return { ok: false, error: `--port ${JSON.stringify(text.slice(0, 40))}: give PORT/PROTO, e.g. 443/tcp or 53/udp (or icmp)` };
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return { ok: false, error: `--port ${JSON.stringify(text.slice(0, 40))}: ${port} is not a port between 1 and 65535` };
  const proto = parseProtocol(m[2] ?? 'TCP');
  if (!proto.ok) return { ok: false, error: `--port ${JSON.stringify(text.slice(0, 40))}: protocol ${proto.error}` };
  return { ok: true, value: { protocol: proto.value, port } };
}

export function parsePacket(from: string, to: string, port: string): Parsed<Packet> {
  const src = parseAddress(from);
  if (!src.ok) return { ok: false, error: `--from: ${src.error}` };
  const dst = parseAddress(to);
  if (!dst.ok) return { ok: false, error: `--to: ${dst.error}` };
  if (src.value.family !== dst.value.family) {
    return { ok: false, error: `--from ${from} and --to ${to} are of different address families` };
  }
  const p = parsePortSpec(port);
  if (!p.ok) return p;
  return { ok: true, value: { src: src.value, dst: dst.value, protocol: p.value.protocol, port: p.value.port } };
}

// ---------------------------------------------------------------------------------------------
// Small helpers

export function inRanges(set: RangeSet, a: IpAddress): boolean {
  return set.some((r) => r.family === a.family && r.lo <= a.value && a.value <= r.hi);
}

export function inPrefixes(prefixes: readonly Prefix[], a: IpAddress): boolean {
  return prefixes.some((p) => addressInPrefix(p, a));
}

export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

export function portMatches(p: PortSpec, pkt: Packet): boolean {
  return pkt.protocol === p.protocol && pkt.port !== undefined && p.range.lo <= pkt.port && pkt.port <= p.range.hi;
}
