/** How `explain` names packets, ports, blocks and lists in its sentences. Pure. */
import { Family, Prefix, formatPrefix } from '../model/address';
import { IpBlock } from '../model/cwnp';
import { PortSpec, formatPortRange } from '../model/ports';
import { Packet } from './packet';

export function packetText(pkt: Packet): string {
  if (pkt.protocol === 'icmp') return pkt.src.family === 4 ? 'icmp echo-request' : 'icmpv6 echo-request';
  return `${pkt.port}/${pkt.protocol}`;
}

export function portSpecText(p: PortSpec): string {
  if (p.range.lo === 0 && p.range.hi === 65535) return `every ${p.protocol.toUpperCase()} port`;
  return `${formatPortRange(p.range)}/${p.protocol.toUpperCase()}`;
}

export function blockText(b: IpBlock): string {
  return b.except.length === 0 ? formatPrefix(b.cidr) : `${formatPrefix(b.cidr)} except ${b.except.map(formatPrefix).join(', ')}`;
}

export function list(items: readonly string[], max = 4): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

export function prefixesText(prefixes: readonly Prefix[], family: Family): string {
  const mine = prefixes.filter((p) => p.family === family);
  return list((mine.length > 0 ? mine : prefixes).map(formatPrefix));
}
