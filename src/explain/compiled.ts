/**
 * The compiled table: look the packet up in the verdict maps, as the forward chain does, to
 * cross-check the model's verdict. Pure.
 */
import { Compiled, CompileInput, compile } from '../compile/compile';
import { AddrRange, Family, IpAddress, parseAddress, parsePrefix, prefixRange } from '../model/address';
import { FirewallNetwork } from '../model/firewall';
import { formatRef } from '../model/names';
import { NftElement, NftMap, NftTable } from '../nft/ruleset';
import { CompiledCheck } from './explanation';
import { Packet } from './packet';

function parseElementRange(text: string, family: Family): AddrRange | undefined {
  const dash = text.indexOf('-');
  if (dash > 0) {
    const lo = parseAddress(text.slice(0, dash));
    const hi = parseAddress(text.slice(dash + 1));
    return lo.ok && hi.ok && lo.value.family === family ? { family, lo: lo.value.value, hi: hi.value.value } : undefined;
  }
  if (text.includes('/')) {
    const p = parsePrefix(text);
    return p.ok && p.value.family === family ? prefixRange(p.value) : undefined;
  }
  const a = parseAddress(text);
  return a.ok && a.value.family === family ? { family, lo: a.value.value, hi: a.value.value } : undefined;
}

function keyHasAddr(text: string | undefined, a: IpAddress): boolean {
  const r = text === undefined ? undefined : parseElementRange(text, a.family);
  return r !== undefined && r.lo <= a.value && a.value <= r.hi;
}

function keyHasPort(text: string | undefined, port: number | undefined): boolean {
  if (text === undefined || port === undefined) return false;
  const [lo, hi] = text.split('-').map(Number);
  return lo !== undefined && lo <= port && port <= (hi ?? lo);
}

function findMap(table: NftTable, name: string): NftMap | undefined {
  return table.maps.find((m) => m.name === name);
}

/** The element of a plain or sharded map the packet hits (a sharded map dispatches by address to its shard). */
function lookup(table: NftTable, name: string, addr: IpAddress, rest: (e: NftElement) => boolean): NftElement | undefined {
  const map = findMap(table, name);
  if (!map) return undefined;
  const first = map.elements.find((e) => keyHasAddr(e.key[0], addr));
  if (!first || first.key.length > 1) return map.elements.find((e) => keyHasAddr(e.key[0], addr) && rest(e));
  if (first.verdict?.kind === 'jump') {
    // dispatch to a shard: the chain of that name looks up the map of that name
    const chain = table.chains.find((c) => c.name === first.verdict!.chain);
    const stmt = chain?.rules[0]?.statement;
    const shard = stmt?.kind === 'vmap' ? findMap(table, stmt.map) : undefined;
    return shard?.elements.find((e) => keyHasAddr(e.key[0], addr) && rest(e));
  }
  return rest(first) ? first : undefined;
}

export function compiledCheck(compiled: Compiled, pkt: Packet, egressSide: boolean, ingressSide: boolean): Omit<CompiledCheck, 'agrees'> {
  const hits: CompiledCheck['hits'][number][] = [];
  if (compiled.state !== 'connected') return { verdict: 'dropped', hits };
  const sfx = pkt.src.family === 4 ? 'v4' : 'v6';
  const t = compiled.table;
  const proto = (e: NftElement): boolean => e.key[1] === pkt.protocol;
  const lookups: [boolean, string, IpAddress, (e: NftElement) => boolean][] = [
    [egressSide, `egress_any_${sfx}`, pkt.dst, () => true],
    [egressSide, `egress_ports_${sfx}`, pkt.dst, (e) => proto(e) && keyHasPort(e.key[2], pkt.port)],
    [ingressSide, `ingress_any_${sfx}`, pkt.src, () => true],
    [ingressSide, `ingress_ports_${sfx}`, pkt.src, (e) => proto(e) && keyHasPort(e.key[2], pkt.port)],
    [ingressSide, `services_${sfx}`, pkt.dst, (e) => proto(e) && keyHasPort(e.key[2], pkt.port) && keyHasAddr(e.key[3], pkt.src)],
  ];
  for (const [on, map, addr, rest] of lookups) {
    if (!on) continue;
    const e = lookup(t, map, addr, rest);
    if (!e?.verdict) continue;
    const account = compiled.accounting.get(e.verdict.chain);
    hits.push({ map, chain: e.verdict.chain, ref: account ? formatRef(account.ref) : undefined, direction: account?.direction });
  }
  return { verdict: hits.length > 0 ? 'allowed' : 'dropped', hits };
}

/** The forward chain's underlay drop for this network comes before every accept. */
export function underlayCheck(compiled: Compiled, net: FirewallNetwork): CompiledCheck {
  const forward = compiled.table.chains.find((c) => c.name === 'forward');
  const comment = `never forward to the underlay ${net.id}`;
  const i = forward?.rules.findIndex((r) => r.statement?.kind === 'drop' && r.comment === comment) ?? -1;
  const firstAccept = forward?.rules.findIndex((r) => r.statement?.kind === 'accept' || r.statement?.kind === 'vmap') ?? -1;
  return { verdict: 'dropped', hits: [], decidedBy: `chain forward: ${comment}`, agrees: i >= 0 && i < firstAccept };
}

/** What compileLandscape compiles: with FQDN policies, DNS interception to the proxy on the node network's addresses. */
export function defaultCompiled(input: CompileInput): Compiled {
  const ips = input.firewall?.nodeNetwork.ips ?? [];
  return compile({ ...input, dnsProxy: ips.length > 0 ? { addresses: ips, port: 53 } : undefined });
}

