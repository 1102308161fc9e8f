/**
 * `explain`: would the firewall forward the first packet of a new connection from one address to
 * another on a port, and why. Computed from the parsed, deployed policies and Services (the same
 * model the compiler partitions into map elements), without a kernel, and cross-checked against
 * the compiled table's verdict-map elements (a lookup of the packet's key in the maps the forward
 * chain consults). Pure: no I/O.
 *
 * What is modelled: the forward chain's decisions for a new connection (underlay drop, the egress,
 * ingress and Service verdict maps, FQDN rules, DNS interception, the disconnected state, forbidden
 * mode). What is not: routing (the direction comes from addresses), rate limits, the ping-flood
 * guard, conntrack states other than new, and the addresses of FQDN rules (known only at run time).
 */
import { Compiled, CompileInput, ObjectReport, compile, peerRanges } from './compile/compile';
import { allowedSets } from './compile/forbidden';
import { Mode, State, resolveMode } from './compile/mode';
import { policyReports, serviceReports } from './compile/reports';
import {
  AddrRange,
  Family,
  IpAddress,
  Prefix,
  addressInPrefix,
  formatAddress,
  formatPrefix,
  parseAddress,
  parsePrefix,
  prefixRange,
} from './model/address';
import { IpBlock, Policy, PolicyRule } from './model/cwnp';
import { Obj } from './model/fields';
import { FirewallConfig, FirewallNetwork } from './model/firewall';
import { formatRef } from './model/names';
import { PortSpec, Protocol, formatPortRange, parseProtocol } from './model/ports';
import { RangeSet } from './model/rangeset';
import { LoadBalancerService, SOURCE_RANGES_ANNOTATION } from './model/service';
import { NftElement, NftMap, NftTable } from './nft/ruleset';

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

export interface ExplainSource {
  /** The compile input as the CLI or the daemon builds it (landscape.ts). */
  readonly input: CompileInput;
  /**
   * The raw objects behind `input.policies` and `input.services`, in the same order: with them,
   * explain can say whether a rejected object would have matched.
   */
  readonly raw?: { readonly policies?: readonly Obj[]; readonly services?: readonly Obj[] };
  /**
   * The compiled ruleset to cross-check against and to take DNS interception from. Default:
   * `compile(input)` with the DNS proxy on the node network's addresses, as compileLandscape does.
   */
  readonly compiled?: Compiled;
}

export interface ExplainOptions {
  /** auto: from addresses; egress: the packet arrives from the node network; ingress: it leaves towards it. */
  readonly direction?: DirectionOption;
}

export type Side = 'egress' | 'ingress' | 'service';

/** A deployed rule that allows the packet. */
export interface AllowMatch {
  readonly kind: 'ClusterwideNetworkPolicy' | 'Service';
  /** `namespace/name` */
  readonly ref: string;
  readonly direction: Side;
  /** Where in the object, e.g. `egress[0].to[1] ports[0]`. */
  readonly path: string;
  /** What matched, e.g. `203.0.113.0/24, 443/TCP`. */
  readonly detail: string;
}

export type CandidateWhy = 'ignored' | 'rejected' | 'forbidden-ip' | 'fqdn' | 'connected';

/** Something that would have allowed the packet but does not (or only under a condition). */
export interface Candidate {
  readonly kind: 'ClusterwideNetworkPolicy' | 'Service' | 'State';
  readonly ref: string;
  readonly why: CandidateWhy;
  /** false: the object is invalid where it matters; it might have matched. */
  readonly certain: boolean;
  /** e.g. `ignored in forbidden mode`, `rejected`, `resolved at run time`. */
  readonly status: string;
  readonly path?: string;
  /** The sentence an operator reads. */
  readonly text: string;
}

export interface CompiledCheck {
  readonly verdict: 'allowed' | 'dropped';
  /** Map lookups that hit, in the forward chain's order: `egress_ports_v4 → firewall/allow-to-https (egress)`. */
  readonly hits: readonly { readonly map: string; readonly chain: string; readonly ref?: string; readonly direction?: Side }[];
  /** A rule outside the maps that decides (the underlay drop, the DNS interception). */
  readonly decidedBy?: string;
  /** The compiled maps say the same as the model (verdict, and every owner is among the allowing objects). */
  readonly agrees: boolean;
}

export interface Explanation {
  readonly verdict: 'allowed' | 'dropped';
  readonly packet: { readonly from: string; readonly to: string; readonly protocol: PacketProtocol; readonly port?: number; readonly family: Family };
  readonly state: State;
  readonly mode: Mode | undefined;
  /** How the packet passes the firewall, as decided from the addresses (or --direction). */
  readonly direction: 'egress' | 'ingress' | 'egress+ingress' | 'none' | 'local-output' | 'local-input' | 'unknown';
  /** One sentence: why. */
  readonly reason: string;
  readonly allowedBy: readonly AllowMatch[];
  /** Would allow it, but: ignored, rejected, forbidden, FQDN (run time), or only when connected. */
  readonly candidates: readonly Candidate[];
  /** Rules that match part of the packet (address but not port, an except, a source range). */
  readonly nearMisses: readonly string[];
  readonly notModelled: readonly string[];
  readonly notes: readonly string[];
  /** Set when DNS interception redirects the packet to the firewall's DNS proxy. */
  readonly redirectedTo?: string;
  readonly compiled?: CompiledCheck;
}

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

function inRanges(set: RangeSet, a: IpAddress): boolean {
  return set.some((r) => r.family === a.family && r.lo <= a.value && a.value <= r.hi);
}

function inPrefixes(prefixes: readonly Prefix[], a: IpAddress): boolean {
  return prefixes.some((p) => addressInPrefix(p, a));
}

function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

function protoText(p: PacketProtocol): string {
  return p === 'icmp' ? 'ICMP' : p.toUpperCase();
}

function packetText(pkt: Packet): string {
  if (pkt.protocol === 'icmp') return pkt.src.family === 4 ? 'icmp echo-request' : 'icmpv6 echo-request';
  return `${pkt.port}/${pkt.protocol}`;
}

function portSpecText(p: PortSpec): string {
  if (p.range.lo === 0 && p.range.hi === 65535) return `every ${p.protocol.toUpperCase()} port`;
  return `${formatPortRange(p.range)}/${p.protocol.toUpperCase()}`;
}

function portMatches(p: PortSpec, pkt: Packet): boolean {
  return pkt.protocol === p.protocol && pkt.port !== undefined && p.range.lo <= pkt.port && pkt.port <= p.range.hi;
}

function blockText(b: IpBlock): string {
  return b.except.length === 0 ? formatPrefix(b.cidr) : `${formatPrefix(b.cidr)} except ${b.except.map(formatPrefix).join(', ')}`;
}

function list(items: readonly string[], max = 4): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

// ---------------------------------------------------------------------------------------------
// The model: which rules of a parsed policy or Service allow the packet

interface RuleResult {
  readonly hits: { path: string; detail: string }[];
  readonly near: string[];
}

/**
 * The rules of one direction that allow the packet, with their paths, and near misses. `peer` is
 * the address the rule's peers are about (egress: destination, ingress: source).
 */
function matchRules(rules: readonly PolicyRule[], peer: IpAddress, pkt: Packet, peerField: 'to' | 'from'): RuleResult {
  const out: RuleResult = { hits: [], near: [] };
  for (const rule of rules) {
    // The authority on the addresses is peerRanges, the same function the compiler partitions.
    const inside = inRanges(peerRanges(rule.peers)[peer.family], peer);
    const peerParts: { path: string; detail: string }[] = [];
    const excepted: string[] = [];
    if (rule.peers.kind === 'any') {
      if (inside) peerParts.push({ path: rule.path, detail: `no ${peerField}: every ${peerField === 'to' ? 'destination' : 'source'}` });
    } else {
      rule.peers.blocks.forEach((b, j) => {
        if (!addressInPrefix(b.cidr, peer)) return;
        const k = b.except.findIndex((e) => addressInPrefix(e, peer));
        if (k >= 0) {
          excepted.push(`${rule.path}.${peerField}[${j}] ${formatPrefix(b.cidr)} contains ${formatAddress(peer)}, but its except[${k}] ${formatPrefix(b.except[k]!)} excludes it`);
          return;
        }
        peerParts.push({ path: `${rule.path}.${peerField}[${j}]`, detail: blockText(b) });
      });
      if (inside && peerParts.length === 0) peerParts.push({ path: rule.path, detail: formatAddress(peer) });
      if (!inside) peerParts.length = 0;
    }
    if (peerParts.length === 0) {
      out.near.push(...excepted);
      continue;
    }
    const portParts: { path: string; detail: string }[] = [];
    if (rule.ports.kind === 'any') portParts.push({ path: '', detail: 'no ports: every port and protocol' });
    else {
      rule.ports.ports.forEach((p, k) => {
        if (portMatches(p, pkt)) portParts.push({ path: `ports[${k}]`, detail: portSpecText(p) });
      });
    }
    if (portParts.length === 0) {
      const ports = rule.ports.kind === 'list' ? rule.ports.ports.map(portSpecText) : [];
      out.near.push(`${peerParts[0]!.path} (${peerParts[0]!.detail}) matches ${formatAddress(peer)}, but not ${packetText(pkt)} (ports: ${list(ports)})`);
      continue;
    }
    for (const a of peerParts) {
      for (const p of portParts) {
        out.hits.push({ path: p.path ? `${a.path} ${p.path}` : a.path, detail: `${a.detail}; ${p.detail}` });
      }
    }
  }
  return out;
}

function policyHits(p: Policy, pkt: Packet, egressSide: boolean, ingressSide: boolean): { side: Side; hits: RuleResult } [] {
  const out: { side: Side; hits: RuleResult }[] = [];
  if (egressSide) out.push({ side: 'egress', hits: matchRules(p.egress.filter((r) => !r.toFqdns), pkt.dst, pkt, 'to') });
  if (ingressSide) out.push({ side: 'ingress', hits: matchRules(p.ingress, pkt.src, pkt, 'from') });
  return out;
}

/** A LoadBalancer Service's rule for the packet: its IP (among `ips`), port and source range. */
function serviceHit(svc: LoadBalancerService, ips: readonly IpAddress[], pkt: Packet): RuleResult {
  const out: RuleResult = { hits: [], near: [] };
  const ip = ips.find((a) => sameAddress(a, pkt.dst));
  if (!ip) return out;
  const ipText = formatAddress(ip);
  const ports = svc.ports.filter((p) => portMatches(p, pkt));
  if (ports.length === 0) {
    out.near.push(`${ipText} is its load balancer IP, but ${packetText(pkt)} is not one of its ports (${list(svc.ports.map(portSpecText))})`);
    return out;
  }
  let source: string | undefined;
  if (svc.sourceRanges.length === 0) source = 'no source ranges: every source';
  else {
    const r = svc.sourceRanges.find((s) => addressInPrefix(s, pkt.src));
    if (r) source = `source range ${formatPrefix(r)}`;
  }
  if (!source) {
    out.near.push(`${ipText} ${packetText(pkt)} is its IP and port, but ${formatAddress(pkt.src)} is not in its source ranges (${list(svc.sourceRanges.map(formatPrefix))})`);
    return out;
  }
  for (const p of ports) out.hits.push({ path: `${ipText} port ${portSpecText(p)}`, detail: source });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lenient matching of rejected objects: would they have matched if they were valid?

type Tri = 'yes' | 'maybe' | 'no';

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function emptyList(v: unknown): boolean {
  return v === undefined || v === null || (Array.isArray(v) && v.length === 0);
}

function rawBlock(b: unknown, a: IpAddress): Tri {
  if (!isObj(b)) return 'maybe';
  const cidr = parsePrefix(b.cidr);
  if (!cidr.ok) return 'maybe';
  if (!addressInPrefix(cidr.value, a)) return 'no';
  if (emptyList(b.except)) return 'yes';
  if (!Array.isArray(b.except)) return 'maybe';
  let unsure = false;
  for (const e of b.except) {
    const p = parsePrefix(e);
    if (!p.ok || p.value.family !== cidr.value.family) unsure = true;
    else if (addressInPrefix(p.value, a)) return 'no';
  }
  return unsure ? 'maybe' : 'yes';
}

function rawPeers(v: unknown, a: IpAddress): { r: Tri; path: string } {
  if (emptyList(v)) return { r: 'yes', path: '' };
  if (!Array.isArray(v)) return { r: 'maybe', path: '' };
  let best: { r: Tri; path: string } = { r: 'no', path: '' };
  v.forEach((b, j) => {
    const r = rawBlock(b, a);
    if (r === 'yes' && best.r !== 'yes') best = { r, path: `[${j}]` };
    else if (r === 'maybe' && best.r === 'no') best = { r, path: `[${j}]` };
  });
  return best;
}

function rawPorts(v: unknown, pkt: Packet): { r: Tri; path: string } {
  if (emptyList(v)) return { r: 'yes', path: '' };
  if (!Array.isArray(v)) return { r: 'maybe', path: '' };
  let best: { r: Tri; path: string } = { r: 'no', path: '' };
  v.forEach((p, k) => {
    let r: Tri;
    if (!isObj(p)) r = 'maybe';
    else {
      const proto = parseProtocol(p.protocol);
      // a named protocol other than TCP/UDP (SCTP) is another protocol: it never matches this packet
      if (!proto.ok) r = typeof p.protocol === 'string' ? 'no' : 'maybe';
      else if (proto.value !== pkt.protocol || pkt.port === undefined) r = 'no';
      else if (p.port === undefined || p.port === null) r = p.endPort === undefined || p.endPort === null ? 'yes' : 'maybe';
      else if (typeof p.port !== 'number') r = 'maybe';
      else if (p.endPort === undefined || p.endPort === null) r = p.port === pkt.port ? 'yes' : 'no';
      else if (typeof p.endPort !== 'number') r = p.port === pkt.port ? 'maybe' : 'no';
      else {
        const lo = Math.min(p.port, p.endPort);
        const hi = Math.max(p.port, p.endPort);
        r = pkt.port < lo || pkt.port > hi ? 'no' : p.endPort >= p.port ? 'yes' : 'maybe';
      }
    }
    if (r === 'yes' && best.r !== 'yes') best = { r, path: ` ports[${k}]` };
    else if (r === 'maybe' && best.r === 'no') best = { r, path: ` ports[${k}]` };
  });
  return best;
}

/** The rules of a raw (rejected) policy that would or might match. */
function rawPolicyMatch(obj: Obj, pkt: Packet, egressSide: boolean, ingressSide: boolean): { r: Tri; path: string }[] {
  const spec = isObj(obj.spec) ? obj.spec : {};
  const out: { r: Tri; path: string }[] = [];
  const sides: [boolean, 'egress' | 'ingress', 'to' | 'from', IpAddress][] = [
    [egressSide, 'egress', 'to', pkt.dst],
    [ingressSide, 'ingress', 'from', pkt.src],
  ];
  for (const [on, field, peerField, peer] of sides) {
    if (!on || !Array.isArray(spec[field])) continue;
    (spec[field] as unknown[]).forEach((rule, i) => {
      if (!isObj(rule)) return;
      // a toFQDNs rule opens only what DNS answers: not a static match
      if (field === 'egress' && !emptyList(rule.toFQDNs) && emptyList(rule.to)) return;
      const peers = rawPeers(rule[peerField], peer);
      if (peers.r === 'no') return;
      const ports = rawPorts(rule.ports, pkt);
      if (ports.r === 'no') return;
      const r: Tri = peers.r === 'yes' && ports.r === 'yes' ? 'yes' : 'maybe';
      out.push({ r, path: `${field}[${i}]${peers.path ? `.${peerField}${peers.path}` : ''}${ports.path}` });
    });
  }
  return out;
}

/** The load balancer IPs a raw LoadBalancer Service names (the ones that parse). */
function rawServiceIps(obj: Obj | undefined): IpAddress[] {
  const spec = obj && isObj(obj.spec) ? obj.spec : {};
  if (!obj || spec.type !== 'LoadBalancer') return [];
  const ips: unknown[] = [spec.loadBalancerIP];
  const lb = isObj(obj.status) && isObj(obj.status.loadBalancer) ? obj.status.loadBalancer : undefined;
  if (lb && Array.isArray(lb.ingress)) for (const i of lb.ingress) if (isObj(i)) ips.push(i.ip);
  return ips.flatMap((v) => {
    const a = parseAddress(v);
    return a.ok ? [a.value] : [];
  });
}

function rawServiceMatch(obj: Obj, pkt: Packet): Tri {
  const spec = isObj(obj.spec) ? obj.spec : {};
  if (!rawServiceIps(obj).some((a) => sameAddress(a, pkt.dst))) return 'no';
  let port: Tri = 'no';
  if (Array.isArray(spec.ports)) {
    for (const p of spec.ports) {
      if (!isObj(p)) { if (port === 'no') port = 'maybe'; continue; }
      const proto = parseProtocol(p.protocol);
      if (!proto.ok || typeof p.port !== 'number') { if (port === 'no') port = 'maybe'; continue; }
      if (proto.value === pkt.protocol && p.port === pkt.port) port = 'yes';
    }
  }
  if (port === 'no') return 'no';
  let ranges: unknown[] = Array.isArray(spec.loadBalancerSourceRanges) ? spec.loadBalancerSourceRanges : [];
  if (ranges.length === 0) {
    const ann = isObj(obj.metadata) && isObj(obj.metadata.annotations) ? obj.metadata.annotations[SOURCE_RANGES_ANNOTATION] : undefined;
    if (typeof ann === 'string' && ann.trim() !== '') ranges = ann.split(',').map((s) => s.trim());
  }
  let source: Tri = ranges.length === 0 ? 'yes' : 'no';
  for (const v of ranges) {
    const p = parsePrefix(v);
    if (!p.ok) { if (source === 'no') source = 'maybe'; }
    else if (addressInPrefix(p.value, pkt.src)) source = 'yes';
  }
  if (source === 'no') return 'no';
  return port === 'yes' && source === 'yes' ? 'yes' : 'maybe';
}

// ---------------------------------------------------------------------------------------------
// The compiled table: look the packet up in the verdict maps, as the forward chain does

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

function compiledCheck(compiled: Compiled, pkt: Packet, egressSide: boolean, ingressSide: boolean): Omit<CompiledCheck, 'agrees'> {
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
function underlayCheck(compiled: Compiled, net: FirewallNetwork): CompiledCheck {
  const forward = compiled.table.chains.find((c) => c.name === 'forward');
  const comment = `never forward to the underlay ${net.id}`;
  const i = forward?.rules.findIndex((r) => r.statement?.kind === 'drop' && r.comment === comment) ?? -1;
  const firstAccept = forward?.rules.findIndex((r) => r.statement?.kind === 'accept' || r.statement?.kind === 'vmap') ?? -1;
  return { verdict: 'dropped', hits: [], decidedBy: `chain forward: ${comment}`, agrees: i >= 0 && i < firstAccept };
}

// ---------------------------------------------------------------------------------------------
// explain

/** What compileLandscape compiles: with FQDN policies, DNS interception to the proxy on the node network's addresses. */
function defaultCompiled(input: CompileInput): Compiled {
  const ips = input.firewall?.nodeNetwork.ips ?? [];
  return compile({ ...input, dnsProxy: ips.length > 0 ? { addresses: ips, port: 53 } : undefined });
}

/** The network a source address arrives from, judged by addresses: the longest prefix of any network. */
function arrivalNetwork(fw: FirewallConfig, a: IpAddress): FirewallNetwork | undefined {
  let best: { net: FirewallNetwork; len: number } | undefined;
  for (const net of fw.networks) {
    for (const p of [...net.prefixes, ...net.destinationPrefixes]) {
      if (addressInPrefix(p, a) && (!best || p.length > best.len)) best = { net, len: p.length };
    }
  }
  return best?.net;
}

function prefixesText(prefixes: readonly Prefix[], family: Family): string {
  const mine = prefixes.filter((p) => p.family === family);
  return list((mine.length > 0 ? mine : prefixes).map(formatPrefix));
}

function notModelledLines(fw: FirewallConfig | undefined, pkt: Packet, fromNode: boolean): string[] {
  const out = ['only the first packet of a new connection: established/related packets always pass, ct state invalid is dropped'];
  if (fw && fw.rateLimits.length > 0) {
    const net = fromNode ? fw.nodeNetwork : arrivalNetwork(fw, pkt.src);
    const limits = fw.rateLimits.filter((r) => !net || r.network.id === net.id);
    for (const r of limits) out.push(`rate limit: traffic arriving from network ${r.network.id}${net ? ' (judged by address)' : ''} above ${r.mibPerSecond} MiB/s is dropped (spec.rateLimits)`);
  }
  if (pkt.protocol === 'icmp') out.push('ping floods: echo requests above 10/s (burst 4) are dropped');
  out.push('routing: the direction is judged from addresses (node network prefixes, LoadBalancer IPs), not from routes or interfaces');
  return out;
}

export function explain(source: ExplainSource, pkt: Packet, opts: ExplainOptions = {}): Explanation {
  const input = source.input;
  const fw = input.firewall;
  const compiled = source.compiled ?? defaultCompiled(input);
  const direction = opts.direction ?? 'auto';
  const packet = {
    from: formatAddress(pkt.src),
    to: formatAddress(pkt.dst),
    protocol: pkt.protocol,
    ...(pkt.port !== undefined ? { port: pkt.port } : {}),
    family: pkt.src.family,
  };
  const own = fw ? fw.networks.flatMap((n) => n.ips) : [];
  const base = { packet, state: input.state, mode: input.state === 'connected' && fw ? resolveMode(input.mode, fw) : input.mode, candidates: [] as Candidate[], nearMisses: [] as string[], allowedBy: [] as AllowMatch[] };
  const notes: string[] = [];
  // The firewall's own traffic: the table filters forwarded packets only (and the metrics port).
  if (own.some((a) => sameAddress(a, pkt.src))) {
    return {
      ...base,
      verdict: 'allowed',
      direction: 'local-output',
      reason: `${packet.from} is the firewall's own address: its own traffic is not filtered by this table (only forwarded traffic is)`,
      notModelled: [],
      notes,
    };
  }
  if (own.some((a) => sameAddress(a, pkt.dst))) {
    const dns = compiled.dnsIntercepted && pkt.protocol !== 'icmp' && pkt.port === 53 && fw !== undefined && fw.nodeNetwork.ips.some((a) => sameAddress(a, pkt.dst));
    return {
      ...base,
      verdict: 'allowed',
      direction: 'local-input',
      reason: `${packet.to} is the firewall's own address: traffic to the firewall itself is not filtered by this table${dns ? ' (the DNS proxy answers here)' : ''}`,
      notModelled: ["the published metrics port (the daemon accepts it from the node network only) and the system's other tables"],
      notes,
    };
  }

  if (input.state === 'disconnected') {
    const candidates: Candidate[] = [];
    if (fw) {
      const connected = explain({ ...source, input: { ...input, state: 'connected' }, compiled: undefined }, pkt, opts);
      if (connected.verdict === 'allowed') {
        const by = connected.allowedBy.map((m) => `${m.ref} ${m.path}`);
        candidates.push({
          kind: 'State',
          ref: 'connected',
          why: 'connected',
          certain: true,
          status: 'only when connected',
          text: by.length > 0 ? `when connected it would be allowed by ${list(by)}` : `when connected it would be allowed: ${connected.reason}`,
        });
      } else notes.push(`when connected it would be dropped too: ${connected.reason}`);
    }
    return {
      verdict: 'dropped',
      packet,
      state: 'disconnected',
      mode: input.mode,
      direction: 'unknown',
      reason: 'the state is disconnected: the forward chain accepts only established/related flows and drops every new connection',
      allowedBy: [],
      candidates,
      nearMisses: [],
      notModelled: ['established/related flows pass in this state; they are not modelled'],
      notes,
      compiled: { verdict: 'dropped', hits: [], agrees: compiled.state === 'disconnected' },
    };
  }
  if (!fw) throw new Error('explain: the connected state needs a Firewall');
  const mode = resolveMode(input.mode, fw);
  const node = fw.nodeNetwork;

  // Direction, from the addresses (or as given).
  // LoadBalancer IPs are routed into the node network; a rejected Service's IPs count too (to name it).
  const lbIps = input.services.flatMap((s, i) => (s.ok ? (s.service?.ips ?? []) : rawServiceIps(source.raw?.services?.[i])));
  const srcInNode = inPrefixes(node.prefixes, pkt.src);
  const dstInNode = inPrefixes(node.prefixes, pkt.dst);
  const dstIsLb = lbIps.some((a) => sameAddress(a, pkt.dst));
  const fromNode = direction === 'egress' || (direction === 'auto' && srcInNode);
  const toNode = direction === 'ingress' || (direction === 'auto' && (dstInNode || dstIsLb));
  // The egress maps are consulted only for sources in the node network's prefixes (cluster_prefixes).
  const egressSide = fromNode && srcInNode;
  const ingressSide = toNode;
  const dirName: Explanation['direction'] = fromNode && toNode ? 'egress+ingress' : fromNode ? 'egress' : toNode ? 'ingress' : 'none';
  if (fromNode && !srcInNode) {
    notes.push(`${packet.from} is not in the node network's prefixes (${prefixesText(node.prefixes, pkt.src.family)}): the egress maps are consulted only for the cluster's sources`);
  }
  if (srcInNode && dstInNode && direction === 'auto') notes.push('both addresses are in the node network: such traffic does not normally pass the firewall');
  const notModelled = notModelledLines(fw, pkt, fromNode);
  const check = (allowed: boolean, allowedBy: readonly AllowMatch[]): CompiledCheck => {
    const c = compiledCheck(compiled, pkt, egressSide, ingressSide);
    const refs = new Set(allowedBy.map((m) => `${m.ref}#${m.direction}`));
    const agrees = (c.verdict === 'allowed') === allowed && c.hits.every((h) => refs.has(`${h.ref}#${h.direction}`));
    return { ...c, agrees };
  };

  // The underlay is never forwarded to (even established flows).
  if (!toNode) {
    const underlay = fw.networks.find((n) => n.role === 'underlay' && n.vrf !== undefined && inPrefixes(n.prefixes, pkt.dst));
    if (underlay) {
      return {
        ...base,
        verdict: 'dropped',
        direction: dirName,
        reason: `${packet.to} is in the underlay network ${underlay.id} (${prefixesText(underlay.prefixes, pkt.dst.family)}): the firewall never forwards to the underlay, whatever the policies say`,
        notModelled,
        notes,
        compiled: underlayCheck(compiled, underlay),
      };
    }
  }

  // DNS interception: the node network's DNS goes to the proxy on the firewall (nat prerouting).
  const proxy = node.ips.find((a) => a.family === pkt.dst.family);
  if (compiled.dnsIntercepted && egressSide && pkt.protocol !== 'icmp' && pkt.port === 53 && proxy) {
    const to = pkt.dst.family === 4 ? `${formatAddress(proxy)}:53` : `[${formatAddress(proxy)}]:53`;
    return {
      ...base,
      verdict: 'allowed',
      direction: dirName,
      redirectedTo: to,
      reason: `DNS from the node network is redirected to the firewall's DNS proxy at ${to} while toFQDNs policies are deployed: the proxy answers (through its upstream), ${packet.to} is never contacted`,
      notModelled: [...notModelled, 'whether the DNS proxy runs (the daemon renders the interception only while it listens)'],
      notes,
      compiled: {
        verdict: 'allowed',
        hits: [],
        decidedBy: 'chain dns_intercept redirects it (nat prerouting)',
        agrees: compiled.table.chains.some((c) => c.name === 'dns_intercept' && c.rules.some((r) => r.statement?.kind === 'text' && r.statement.text.endsWith(` to ${to}`))),
      },
    };
  }

  // Deployed policies and Services, and what is not deployed.
  const pol = policyReports(input.policies, mode, fw);
  const svc = serviceReports(input.services, mode, fw);
  const allowedBy: AllowMatch[] = [];
  const nearMisses: string[] = [];
  const candidates: Candidate[] = [];
  for (const p of pol.deployed) {
    const ref = formatRef(p.ref);
    for (const { side, hits } of policyHits(p, pkt, egressSide, ingressSide)) {
      for (const h of hits.hits) allowedBy.push({ kind: 'ClusterwideNetworkPolicy', ref, direction: side, path: h.path, detail: h.detail });
      for (const n of hits.near) nearMisses.push(`${ref} ${n}`);
    }
  }
  if (ingressSide) {
    for (const s of svc.services) {
      const ref = formatRef(s.svc.ref);
      const r = serviceHit(s.svc, s.ips, pkt);
      for (const h of r.hits) allowedBy.push({ kind: 'Service', ref, direction: 'service', path: h.path, detail: h.detail });
      for (const n of r.near) nearMisses.push(`Service ${ref}: ${n}`);
    }
  }

  // FQDN rules: their addresses are known only at run time.
  if (egressSide) {
    const allowedEgress = mode === 'forbidden' ? allowedSets(fw).egress : undefined;
    for (const p of pol.deployed) {
      for (const rule of p.egress) {
        if (!rule.toFqdns || rule.fqdns.length === 0) continue;
        const ports = rule.ports.kind === 'any' ? [''] : rule.ports.ports.flatMap((q, k) => (portMatches(q, pkt) ? [` ports[${k}]`] : []));
        if (ports.length === 0) continue;
        const names = list(rule.fqdns.map((f) => `${f.kind} ${f.value.replace(/\.$/, '')}`), 3);
        const path = `${rule.path}.toFQDNs${ports[0]}`;
        const ref = formatRef(p.ref);
        const outside = allowedEgress && !inRanges(allowedEgress[pkt.dst.family], pkt.dst);
        candidates.push({
          kind: 'ClusterwideNetworkPolicy',
          ref,
          why: 'fqdn',
          certain: !outside,
          status: outside ? 'outside allowedNetworks.egress' : 'resolved at run time',
          path,
          text: outside
            ? `${ref} ${path} (${names}) would not open it even if resolved: ${packet.to} is outside allowedNetworks.egress, and FQDN answers there are never added (forbidden mode)`
            : `${ref} ${path} (${names}) would allow it if the destination were resolved: it opens ${packet.to} only while a DNS answer for these names holds it (known at run time, not here)`,
        });
      }
    }
  }

  // Policies not deployed that would have matched.
  pol.reports.forEach((report, i) => {
    const res = input.policies[i];
    if (!res || report.outcome === 'deployed') return;
    const ref = formatRef(report.ref);
    const why = report.outcome === 'rejected' ? 'rejected' : 'ignored';
    const label = report.forbidden ? 'ignored in forbidden mode' : report.outcome;
    const reason = report.reason ?? '';
    if (res.ok) {
      // valid but not applicable (namespace, forbidden mode) or a duplicate
      if (fromNode || toNode) {
        for (const { hits } of policyHits(res.policy, pkt, egressSide, ingressSide)) {
          const h = hits.hits[0];
          if (!h) continue;
          candidates.push({ kind: 'ClusterwideNetworkPolicy', ref, why, certain: true, status: label, path: h.path, text: `${ref} ${h.path} would allow it, but it is ${label}: ${reason}` });
        }
      }
      return;
    }
    const raw = source.raw?.policies?.[i];
    if (!raw) return;
    for (const m of rawPolicyMatch(raw, pkt, egressSide, ingressSide)) {
      candidates.push({
        kind: 'ClusterwideNetworkPolicy',
        ref,
        why: 'rejected',
        certain: m.r === 'yes',
        status: 'rejected',
        path: m.path,
        text: `${ref} ${m.path} ${m.r === 'yes' ? 'would have allowed it' : 'might have allowed it'}, but the policy is rejected: ${reason}`,
      });
    }
  });
  if (ingressSide) {
    let k = 0;
    input.services.forEach((res, i) => {
      if (res.ok && !res.service) return; // not a LoadBalancer: no report
      const report: ObjectReport | undefined = svc.reports[k++];
      if (!report) return;
      const ref = formatRef(report.ref);
      if (res.ok && res.service) {
        const deployed = svc.services.find((d) => d.svc === res.service);
        // IPs that get no rule: all of an ignored Service's, or those outside allowedNetworks.ingress
        const withRule = deployed ? deployed.ips : [];
        const without = res.service.ips.filter((a) => !withRule.some((b) => sameAddress(a, b)));
        if (without.length === 0) return;
        const r = serviceHit(res.service, without, pkt);
        const h = r.hits[0];
        if (!h) return;
        const text =
          report.outcome === 'deployed'
            ? `Service ${ref} ${h.path} would allow it, but its IP ${packet.to} is outside allowedNetworks.ingress and gets no rule (forbidden mode)`
            : `Service ${ref} ${h.path} would allow it, but it is ${report.forbidden ? 'ignored in forbidden mode' : report.outcome}: ${report.reason ?? ''}`;
        const status = report.outcome === 'deployed' ? 'without a rule for this IP (forbidden mode)' : report.forbidden ? 'ignored in forbidden mode' : report.outcome;
        const why = report.outcome === 'deployed' ? 'forbidden-ip' : report.outcome === 'rejected' ? 'rejected' : 'ignored';
        candidates.push({ kind: 'Service', ref, why, certain: true, status, path: h.path, text });
        return;
      }
      const raw = source.raw?.services?.[i];
      if (res.ok || !raw) return;
      const m = rawServiceMatch(raw, pkt);
      if (m === 'no') return;
      candidates.push({
        kind: 'Service',
        ref,
        why: 'rejected',
        certain: m === 'yes',
        status: 'rejected',
        text: `Service ${ref} ${m === 'yes' ? 'would have allowed it' : 'might have allowed it'}, but it is rejected: ${report.reason ?? ''}`,
      });
    });
  }

  const allowed = allowedBy.length > 0;
  let reason: string;
  if (allowed) {
    const objs = [...new Set(allowedBy.map((m) => m.ref))];
    const where = dirName === 'egress' ? 'egress from the node network' : dirName === 'ingress' ? 'ingress towards the node network' : 'traffic from and to the node network';
    reason = `${where}: allowed by ${objs.length} object${objs.length === 1 ? '' : 's'} (${list(objs)})`;
  } else if (!fromNode && !toNode) {
    reason =
      `neither ${packet.from} nor ${packet.to} is in the node network (${prefixesText(node.prefixes, pkt.src.family)}) and ${packet.to} is no LoadBalancer IP: ` +
      'the forward chain accepts new connections only from the node network or towards it';
  } else if (fromNode && !srcInNode && !toNode) {
    reason = `${packet.from} is not in the node network's prefixes: only the cluster's sources are allowed out`;
  } else {
    const blocked = candidates.filter((c) => c.why !== 'fqdn' && c.certain);
    const fqdn = candidates.find((c) => c.why === 'fqdn' && c.certain);
    const side = egressSide && ingressSide ? 'from and to the node network' : egressSide ? `egress to ${packet.to}` : `ingress from ${packet.from}`;
    reason = `no deployed policy${ingressSide ? ' or Service' : ''} allows ${side} on ${packetText(pkt)}`;
    if (blocked.length > 0) reason += `; ${list([...new Set(blocked.map((c) => `${c.kind === 'Service' ? 'Service ' : ''}${c.ref}`))], 3)} would, but ${blocked.length === 1 ? 'is' : 'are'} ${list([...new Set(blocked.map((c) => c.status))], 3)}`;
    else if (fqdn) reason += `; ${fqdn.ref} would if DNS resolved one of its names to ${packet.to} (known only at run time)`;
  }
  return {
    ...base,
    verdict: allowed ? 'allowed' : 'dropped',
    direction: dirName,
    reason,
    allowedBy,
    candidates,
    nearMisses,
    notModelled,
    notes,
    compiled: check(allowed, allowedBy),
  };
}

// ---------------------------------------------------------------------------------------------
// Output

/** The explanation for `--json`: the verdict and reason first, then the details. */
export function explanationJson(e: Explanation): Record<string, unknown> {
  const { verdict, reason, packet, direction, state, mode, allowedBy, candidates, nearMisses, notes, notModelled, redirectedTo, compiled } = e;
  return { verdict, reason, packet, direction, state, mode, redirectedTo, allowedBy, candidates, nearMisses, notes, notModelled, compiled };
}

const MAX_LINES = 6;

function capped(lines: readonly string[], indent: string): string[] {
  const out = lines.slice(0, MAX_LINES).map((l) => `${indent}${l}`);
  if (lines.length > MAX_LINES) out.push(`${indent}… and ${lines.length - MAX_LINES} more (--json lists all)`);
  return out;
}

/** One screen for a human. */
export function formatExplanation(e: Explanation): string {
  const p = e.packet;
  const what = `${p.from} → ${p.to} ${p.protocol === 'icmp' ? (p.family === 4 ? 'icmp echo-request' : 'icmpv6 echo-request') : `${p.port}/${p.protocol}`}`;
  const lines = [`${e.verdict.toUpperCase()}: ${what}`];
  const dir: Record<Explanation['direction'], string> = {
    egress: 'egress from the node network',
    ingress: 'ingress towards the node network',
    'egress+ingress': 'from the node network towards the node network',
    none: 'neither from nor towards the node network',
    'local-output': "the firewall's own traffic",
    'local-input': 'to the firewall itself',
    unknown: 'direction not judged',
  };
  lines.push(`  ${dir[e.direction]}; state ${e.state}${e.mode ? `, ${e.mode} mode` : ''}`);
  lines.push(`  why: ${e.reason}`);
  if (e.allowedBy.length > 0) {
    lines.push('  allowed by:');
    lines.push(...capped(e.allowedBy.map((m) => `${m.kind === 'Service' ? 'Service ' : ''}${m.ref} ${m.path}  (${m.detail})`), '    '));
  }
  if (e.candidates.length > 0) {
    lines.push(e.verdict === 'allowed' ? '  also:' : '  would allow it, but:');
    lines.push(...capped(e.candidates.map((c) => c.text), '    '));
  }
  if (e.verdict === 'dropped' && e.nearMisses.length > 0) {
    lines.push('  near misses:');
    lines.push(...capped(e.nearMisses, '    '));
  }
  for (const n of e.notes) lines.push(`  note: ${n}`);
  if (e.compiled) {
    const hits = e.compiled.hits.map((h) => `${h.map} → ${h.ref ?? h.chain}`);
    const text =
      e.compiled.decidedBy ?? (e.state === 'disconnected' ? 'the disconnected table (no verdict maps)' : hits.length > 0 ? hits.join(', ') : 'no verdict-map element matches');
    lines.push(`  compiled ruleset: ${text}${e.compiled.agrees ? '' : '  (DISAGREES with the model: please report)'}`);
  }
  if (e.notModelled.length > 0) {
    lines.push('  not modelled:');
    lines.push(...e.notModelled.map((l) => `    ${l}`));
  }
  return `${lines.join('\n')}\n`;
}
