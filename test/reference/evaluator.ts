/**
 * A reference evaluator for tests (issue #13, point 1): "would the firewall forward the first
 * packet of this new TCP/UDP connection?", answered straight from the README's semantics
 * ("What gets enforced", "Modes", "States", "FQDN policies") and the raw objects.
 *
 * It shares no code with src/: it reads the raw Firewall, ClusterwideNetworkPolicies and Services
 * itself, with node's `net` and BigInt for addresses, and decides on its own whether an object is
 * rejected, ignored or deployed. It is meant to be small and obviously right, not fast or
 * helpful: no messages, no caches, linear scans.
 *
 * Left out (they need run time): FQDN answers (a toFQDNs rule opens nothing here), rate limits,
 * ICMP, conntrack states other than new (except the disconnected state, where nothing new passes).
 *
 * Direction is part of the packet, as the kernel sees it: `fromNode` = it arrives on the node
 * network's interface, `toNode` = it leaves on it. `inferDirection` derives both from addresses
 * (source in the node network's prefixes; destination in them or a load balancer IP).
 */
import net from 'node:net';

export type Fam = 4 | 6;
export type Proto = 'tcp' | 'udp';
export type Outcome = 'deployed' | 'ignored' | 'rejected';
export type Mode = 'baseline' | 'restricted' | 'forbidden';
export type State = 'connected' | 'disconnected';

export interface Addr {
  readonly fam: Fam;
  readonly v: bigint;
}

/** A prefix as the inclusive range of its addresses. */
export interface Cidr {
  readonly fam: Fam;
  readonly lo: bigint;
  readonly hi: bigint;
  readonly len: number;
}

export interface RefPacket {
  readonly src: string;
  readonly dst: string;
  readonly proto: Proto;
  readonly port: number;
  /** Arrives on the node network's interface. */
  readonly fromNode: boolean;
  /** Leaves on the node network's interface. */
  readonly toNode: boolean;
}

export interface RawLandscape {
  readonly firewall: Record<string, unknown>;
  readonly policies: readonly Record<string, unknown>[];
  readonly services: readonly Record<string, unknown>[];
  readonly state: State;
  /** Given explicitly (--mode), else inferred from the Firewall. */
  readonly mode?: Mode;
}

export const BITS: Record<Fam, number> = { 4: 32, 6: 128 };

// ---------------------------------------------------------------------------------------------
// Addresses

function v4ToBig(text: string): bigint {
  return text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

/**
 * One address, or undefined. IPv4 dotted quad only (no leading zeros: node's isIPv4). IPv6 as RFC
 * 4291 writes it, no zone id; an embedded dotted quad means exactly those 32 bits, and the
 * deprecated IPv4-compatible form (`::a.b.c.d`, upper 96 bits zero) is refused (README "Input").
 */
export function parseIp(text: unknown): Addr | undefined {
  if (typeof text !== 'string' || text.length > 64) return undefined;
  if (net.isIPv4(text)) return { fam: 4, v: v4ToBig(text) };
  if (!net.isIPv6(text) || text.includes('%')) return undefined;
  let s = text;
  let tail: bigint | undefined;
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    if (!net.isIPv4(dotted[2]!)) return undefined;
    tail = v4ToBig(dotted[2]!);
    s = `${dotted[1]}0:0`; // a placeholder for the two groups the quad fills
  }
  const [head, rest] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const groups = (x: string): string[] => (x === '' ? [] : x.split(':'));
  const hi = groups(head);
  const lo = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? hi : [...hi, ...new Array<string>(8 - hi.length - lo.length).fill('0'), ...lo];
  if (all.length !== 8) return undefined;
  let v = all.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  if (tail !== undefined) {
    v = (v & ~0xffffffffn) | tail;
    if (v >> 32n === 0n) return undefined; // IPv4-compatible: refused
  }
  return { fam: 6, v };
}

/** `addr/len` (host bits are masked off), or undefined. The length has no leading zeros. */
export function parseCidr(text: unknown): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const m = /^([^/]+)\/(0|[1-9][0-9]{0,2})$/.exec(text);
  if (!m) return undefined;
  const a = parseIp(m[1]);
  if (!a) return undefined;
  const len = Number(m[2]);
  if (len > BITS[a.fam]) return undefined;
  const host = (1n << BigInt(BITS[a.fam] - len)) - 1n;
  return { fam: a.fam, lo: a.v & ~host, hi: (a.v & ~host) | host, len };
}

export function inCidr(c: Cidr, a: Addr): boolean {
  return c.fam === a.fam && c.lo <= a.v && a.v <= c.hi;
}

export function formatIp(a: Addr): string {
  if (a.fam === 4) return [24n, 16n, 8n, 0n].map((s) => String(Number((a.v >> s) & 0xffn))).join('.');
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((a.v >> BigInt(16 * i)) & 0xffffn).toString(16));
  return groups.join(':'); // uncompressed: every parser reads it, none can misread it
}

export function formatCidr(c: Cidr): string {
  return `${formatIp({ fam: c.fam, v: c.lo })}/${c.len}`;
}

/** Whether the union of `cover` contains every address of `c` (sort, then walk). */
function covered(c: Cidr, cover: readonly Cidr[]): boolean {
  const rs = cover.filter((x) => x.fam === c.fam).sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  let next = c.lo; // first address not yet known to be covered
  for (const r of rs) {
    if (r.lo > next) break;
    if (r.hi >= next) next = r.hi + 1n;
    if (next > c.hi) return true;
  }
  return next > c.hi;
}

// ---------------------------------------------------------------------------------------------
// Small readers: a value is "missing" when undefined or null (as the API server treats them).

type Obj = Record<string, unknown>;

function missing(v: unknown): boolean {
  return v === undefined || v === null;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A list: missing → [], not a list → undefined (invalid). */
function list(v: unknown): unknown[] | undefined {
  if (missing(v)) return [];
  return Array.isArray(v) ? v : undefined;
}

function onlyKeys(o: Obj, keys: readonly string[]): boolean {
  return Object.keys(o).every((k) => keys.includes(k));
}

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A Kubernetes object name (DNS-1123 subdomain). */
export function validName(s: unknown): boolean {
  return typeof s === 'string' && s.length >= 1 && s.length <= 253 && s.split('.').every((l) => l.length <= 63 && LABEL.test(l));
}

/** A namespace (DNS-1123 label). */
export function validNamespace(s: unknown): boolean {
  return typeof s === 'string' && s.length <= 63 && LABEL.test(s);
}

/** namespace/name, or undefined when either is invalid; the namespace defaults to `default`. */
function refOf(o: Obj): string | undefined {
  const meta = o.metadata;
  if (!isObj(meta)) return undefined;
  const ns = missing(meta.namespace) ? 'default' : meta.namespace;
  if (!validName(meta.name) || !validNamespace(ns)) return undefined;
  return `${ns as string}/${meta.name as string}`;
}

// ---------------------------------------------------------------------------------------------
// Policies

interface PortEntry {
  readonly proto: Proto;
  readonly lo: number;
  readonly hi: number;
}

interface Block {
  readonly cidr: Cidr;
  readonly except: readonly Cidr[];
}

interface Rule {
  /** undefined = every address (to/from missing or empty). */
  readonly peers: readonly Block[] | undefined;
  /** undefined = every port and protocol (ports missing or empty). */
  readonly ports: readonly PortEntry[] | undefined;
  /** A toFQDNs rule: opens only what DNS answers name at run time, so nothing here. */
  readonly fqdn: boolean;
}

interface RefPolicy {
  readonly ref: string;
  readonly namespace: string;
  readonly egress: readonly Rule[];
  readonly ingress: readonly Rule[];
}

function isPortNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

/** TCP when missing; TCP or UDP in any case; anything else is invalid. */
function protocolOf(v: unknown): Proto | undefined {
  if (missing(v)) return 'tcp';
  if (typeof v !== 'string') return undefined;
  const u = v.toUpperCase();
  return u === 'TCP' ? 'tcp' : u === 'UDP' ? 'udp' : undefined;
}

/** `ports`: undefined (invalid), 'any' (missing/empty), or the entries. */
function readPorts(v: unknown): PortEntry[] | 'any' | undefined {
  const l = list(v);
  if (!l) return undefined;
  if (l.length === 0) return 'any';
  const out: PortEntry[] = [];
  for (const p of l) {
    if (!isObj(p) || !onlyKeys(p, ['protocol', 'port', 'endPort'])) return undefined;
    const proto = protocolOf(p.protocol);
    if (!proto) return undefined;
    if (missing(p.port)) {
      if (!missing(p.endPort)) return undefined; // endPort needs port
      out.push({ proto, lo: 1, hi: 65535 }); // every port of that protocol
      continue;
    }
    if (!isPortNumber(p.port)) return undefined; // named ports (strings) included
    if (missing(p.endPort)) {
      out.push({ proto, lo: p.port, hi: p.port });
      continue;
    }
    if (!isPortNumber(p.endPort) || p.endPort < p.port) return undefined;
    out.push({ proto, lo: p.port, hi: p.endPort });
  }
  return out;
}

/** `to`/`from`: undefined (invalid), 'any' (missing/empty), or the blocks. */
function readPeers(v: unknown): Block[] | 'any' | undefined {
  const l = list(v);
  if (!l) return undefined;
  if (l.length === 0) return 'any';
  const out: Block[] = [];
  for (const b of l) {
    if (!isObj(b) || !onlyKeys(b, ['cidr', 'except'])) return undefined;
    const cidr = parseCidr(b.cidr);
    const ex = list(b.except);
    if (!cidr || !ex) return undefined;
    const except: Cidr[] = [];
    for (const e of ex) {
      const c = parseCidr(e);
      // an except must be of the cidr's family and inside it
      if (!c || c.fam !== cidr.fam || c.lo < cidr.lo || c.hi > cidr.hi) return undefined;
      except.push(c);
    }
    out.push({ cidr, except });
  }
  return out;
}

/** A DNS name or pattern of toFQDNs: labels of letters, digits, - and _ (patterns also *). */
function validFqdn(v: unknown, pattern: boolean): boolean {
  if (typeof v !== 'string' || v.length === 0 || v.length > 254) return false;
  const t = v.endsWith('.') ? v.slice(0, -1) : v;
  const label = pattern ? /^[-a-zA-Z0-9_*]{1,63}$/ : /^[-a-zA-Z0-9_]{1,63}$/;
  return t.length <= 253 && t.split('.').every((l) => label.test(l));
}

function readFqdns(v: unknown): unknown[] | undefined {
  const l = list(v);
  if (!l) return undefined;
  for (const s of l) {
    if (!isObj(s) || !onlyKeys(s, ['matchName', 'matchPattern'])) return undefined;
    if (missing(s.matchName) === missing(s.matchPattern)) return undefined; // exactly one
    if (!missing(s.matchName) && !validFqdn(s.matchName, false)) return undefined;
    if (!missing(s.matchPattern) && !validFqdn(s.matchPattern, true)) return undefined;
  }
  return l;
}

/** A policy, or undefined when it is invalid (rejected as a whole). */
function readPolicy(o: Obj): RefPolicy | undefined {
  const ref = refOf(o);
  if (!ref) return undefined;
  const spec = missing(o.spec) ? {} : o.spec;
  if (!isObj(spec) || !onlyKeys(spec, ['description', 'ingress', 'egress'])) return undefined;
  if (!missing(spec.description) && typeof spec.description !== 'string') return undefined;
  const ing = list(spec.ingress);
  const eg = list(spec.egress);
  if (!ing || !eg) return undefined;
  const ingress: Rule[] = [];
  for (const r of ing) {
    if (!isObj(r) || !onlyKeys(r, ['from', 'ports'])) return undefined;
    const peers = readPeers(r.from);
    const ports = readPorts(r.ports);
    if (!peers || !ports) return undefined;
    ingress.push({ peers: peers === 'any' ? undefined : peers, ports: ports === 'any' ? undefined : ports, fqdn: false });
  }
  const egress: Rule[] = [];
  for (const r of eg) {
    if (!isObj(r) || !onlyKeys(r, ['to', 'toFQDNs', 'ports'])) return undefined;
    const peers = readPeers(r.to);
    const ports = readPorts(r.ports);
    const fqdns = readFqdns(r.toFQDNs);
    if (!peers || !ports || !fqdns) return undefined;
    if (peers !== 'any' && fqdns.length > 0) return undefined; // to and toFQDNs: one of them
    // A toFQDNs field (even empty) without `to` never means "every destination".
    const fqdn = !missing(r.toFQDNs) && peers === 'any';
    egress.push({ peers: peers === 'any' ? undefined : peers, ports: ports === 'any' ? undefined : ports, fqdn });
  }
  return { ref, namespace: ref.slice(0, ref.indexOf('/')), egress, ingress };
}

// ---------------------------------------------------------------------------------------------
// Services

interface RefService {
  readonly ref: string;
  readonly ips: readonly Addr[];
  readonly ports: readonly PortEntry[];
  /** Empty: every source. */
  readonly sources: readonly Cidr[];
}

const SOURCE_RANGES_ANNOTATION = 'service.beta.kubernetes.io/load-balancer-source-ranges';

/** 'none' for a valid Service that is not a LoadBalancer, undefined when invalid. */
function readService(o: Obj): RefService | 'none' | undefined {
  const ref = refOf(o);
  if (!ref) return undefined;
  const spec = missing(o.spec) ? {} : o.spec;
  if (!isObj(spec)) return undefined;
  if (spec.type !== 'LoadBalancer') return 'none';
  const ips: Addr[] = [];
  const addIp = (v: unknown): void => {
    const a = parseIp(v);
    if (a && !ips.some((x) => x.fam === a.fam && x.v === a.v)) ips.push(a);
  };
  addIp(spec.loadBalancerIP);
  const status = o.status;
  if (isObj(status) && isObj(status.loadBalancer)) {
    for (const i of list(status.loadBalancer.ingress) ?? []) if (isObj(i)) addIp(i.ip);
  }
  const ports: PortEntry[] = [];
  const pl = list(spec.ports);
  if (!pl) return undefined;
  for (const p of pl) {
    if (!isObj(p)) return undefined;
    if (typeof p.protocol === 'string' && p.protocol.toUpperCase() === 'SCTP') continue; // skipped
    const proto = protocolOf(p.protocol);
    if (!proto || !isPortNumber(p.port)) return undefined;
    ports.push({ proto, lo: p.port, hi: p.port });
  }
  // spec.loadBalancerSourceRanges, or the annotation when the field is empty; a bad one rejects.
  let texts = list(spec.loadBalancerSourceRanges);
  if (!texts) return undefined;
  if (texts.length === 0) {
    const meta = o.metadata as Obj;
    const ann = isObj(meta.annotations) ? meta.annotations[SOURCE_RANGES_ANNOTATION] : undefined;
    if (typeof ann === 'string' && ann.trim() !== '') texts = ann.split(',').map((s) => s.trim());
  }
  const sources: Cidr[] = [];
  for (const t of texts) {
    const c = parseCidr(t);
    if (!c) return undefined;
    sources.push(c);
  }
  return { ref, ips, ports, sources };
}

// ---------------------------------------------------------------------------------------------
// Firewall

export interface RefFirewall {
  readonly nodePrefixes: readonly Cidr[];
  /** The node network's VRF: its interfaces are vlan<vrf> and vrf<vrf>. */
  readonly nodeVrf: number;
  readonly allowedEgress: readonly Cidr[];
  readonly allowedIngress: readonly Cidr[];
  /** spec.allowedNetworks has any entry. */
  readonly hasAllowed: boolean;
  readonly dnsServer: boolean;
}

/** The parts of a (valid) Firewall the filter depends on. Throws on what a test must not feed. */
export function readFirewall(o: Obj): RefFirewall {
  const status = o.status as Obj;
  const nets = (status.firewallNetworks as Obj[]).filter((n) => n.networkType === 'privateprimaryunshared' || n.networkType === 'privateprimaryshared');
  if (nets.length !== 1) throw new Error('reference: the Firewall needs exactly one node network');
  const node = nets[0]!;
  const cidrs = (v: unknown): Cidr[] =>
    (list(v) ?? []).map((t) => {
      const c = parseCidr(t);
      if (!c) throw new Error(`reference: bad prefix ${JSON.stringify(t)} in the Firewall`);
      return c;
    });
  const spec = (o.spec ?? {}) as Obj;
  const allowed = isObj(spec.allowedNetworks) ? spec.allowedNetworks : {};
  const allowedEgress = cidrs(allowed.egress);
  const allowedIngress = cidrs(allowed.ingress);
  return {
    nodePrefixes: cidrs(node.prefixes),
    nodeVrf: node.vrf as number,
    allowedEgress,
    allowedIngress,
    hasAllowed: allowedEgress.length + allowedIngress.length > 0,
    dnsServer: typeof spec.dnsServerAddress === 'string' && spec.dnsServerAddress !== '',
  };
}

// ---------------------------------------------------------------------------------------------
// The evaluator

export interface ObjectVerdict {
  readonly kind: 'ClusterwideNetworkPolicy' | 'Service';
  /** Index in the input list of its kind. */
  readonly index: number;
  /** 'none': a valid Service that is not a LoadBalancer (no report at all). */
  readonly outcome: Outcome | 'none';
}

function portMatches(ports: readonly PortEntry[] | undefined, p: RefPacket): boolean {
  return ports === undefined || ports.some((e) => e.proto === p.proto && e.lo <= p.port && p.port <= e.hi);
}

function peerMatches(peers: readonly Block[] | undefined, a: Addr): boolean {
  if (peers === undefined) return true;
  // each block's except applies to that block only
  return peers.some((b) => inCidr(b.cidr, a) && !b.except.some((e) => inCidr(e, a)));
}

export class Reference {
  readonly firewall: RefFirewall;
  readonly mode: Mode;
  readonly state: State;
  readonly policyOutcomes: Outcome[] = [];
  readonly serviceOutcomes: (Outcome | 'none')[] = [];
  private readonly policies: RefPolicy[] = [];
  private readonly services: RefService[] = [];

  constructor(l: RawLandscape) {
    this.state = l.state;
    this.firewall = readFirewall(l.firewall);
    const fw = this.firewall;
    this.mode = l.mode ?? (fw.hasAllowed ? 'forbidden' : fw.dnsServer ? 'restricted' : 'baseline');
    const forbidden = this.mode === 'forbidden';
    // the node network is always allowed
    const allowedEgress = [...fw.allowedEgress, ...fw.nodePrefixes];
    const allowedIngress = [...fw.allowedIngress, ...fw.nodePrefixes];

    const seen = new Set<string>();
    for (const raw of l.policies) {
      const p = readPolicy(raw);
      if (!p) {
        this.policyOutcomes.push('rejected');
        continue;
      }
      if (seen.has(p.ref)) {
        this.policyOutcomes.push('rejected'); // the same object twice in the input
        continue;
      }
      seen.add(p.ref);
      if (p.namespace !== 'firewall') {
        this.policyOutcomes.push('ignored');
        continue;
      }
      if (forbidden) {
        // any egress to / ingress from outside the allowed networks: the whole policy is ignored
        const outside = (rules: readonly Rule[], allowed: readonly Cidr[]): boolean =>
          rules.some((r) => !r.fqdn && (r.peers === undefined || r.peers.some((b) => !covered(b.cidr, allowed))));
        if (outside(p.egress, allowedEgress) || outside(p.ingress, allowedIngress)) {
          this.policyOutcomes.push('ignored');
          continue;
        }
      }
      this.policyOutcomes.push('deployed');
      this.policies.push(p);
    }

    const seenSvc = new Set<string>();
    for (const raw of l.services) {
      const s = readService(raw);
      if (s === undefined || s === 'none') {
        this.serviceOutcomes.push(s === 'none' ? 'none' : 'rejected');
        continue;
      }
      if (seenSvc.has(s.ref)) {
        this.serviceOutcomes.push('rejected');
        continue;
      }
      seenSvc.add(s.ref);
      let ips = s.ips;
      if (forbidden) {
        // rules only for load balancer IPs inside allowedNetworks.ingress; none inside: ignored
        ips = s.ips.filter((a) => allowedIngress.some((c) => inCidr(c, a)));
        if (ips.length === 0 && s.ips.length > 0) {
          this.serviceOutcomes.push('ignored');
          continue;
        }
      }
      this.serviceOutcomes.push('deployed');
      this.services.push({ ...s, ips });
    }
  }

  /** Every object's expected outcome, policies first (input order), then Services. */
  verdicts(): ObjectVerdict[] {
    return [
      ...this.policyOutcomes.map((outcome, index) => ({ kind: 'ClusterwideNetworkPolicy' as const, index, outcome })),
      ...this.serviceOutcomes.map((outcome, index) => ({ kind: 'Service' as const, index, outcome })),
    ];
  }

  /** The load balancer IPs that get rules. */
  serviceIps(): Addr[] {
    return this.services.flatMap((s) => s.ips);
  }

  /** Whether the first packet of a new connection is forwarded. */
  allowed(p: RefPacket): boolean {
    return this.why(p).length > 0;
  }

  /** What allows the packet (`egress firewall/x`, `service default/y`); empty: dropped. */
  why(p: RefPacket): string[] {
    const src = parseIp(p.src);
    const dst = parseIp(p.dst);
    if (!src || !dst || src.fam !== dst.fam) throw new Error(`reference: bad packet ${JSON.stringify(p)}`);
    if (this.state === 'disconnected') return []; // only established flows pass
    const out: string[] = [];
    // egress: arrives from the node network, with a source in its prefixes
    if (p.fromNode && this.firewall.nodePrefixes.some((c) => inCidr(c, src))) {
      for (const pol of this.policies) {
        if (pol.egress.some((r) => !r.fqdn && peerMatches(r.peers, dst) && portMatches(r.ports, p))) out.push(`egress ${pol.ref}`);
      }
    }
    // ingress: leaves towards the node network (any destination there)
    if (p.toNode) {
      for (const pol of this.policies) {
        if (pol.ingress.some((r) => peerMatches(r.peers, src) && portMatches(r.ports, p))) out.push(`ingress ${pol.ref}`);
      }
      for (const s of this.services) {
        const ipOk = s.ips.some((a) => a.fam === dst.fam && a.v === dst.v);
        const srcOk = s.sources.length === 0 || s.sources.some((c) => inCidr(c, src));
        if (ipOk && srcOk && portMatches(s.ports, p)) out.push(`service ${s.ref}`);
      }
    }
    return out;
  }
}

/**
 * The direction the kernel would see, from addresses: a packet arrives from the node network when
 * its source is in the node network's prefixes, and leaves towards it when its destination is in
 * them or is a load balancer IP (routed to the nodes).
 */
export function inferDirection(fw: RefFirewall, lbIps: readonly Addr[], src: string, dst: string): { fromNode: boolean; toNode: boolean } {
  const s = parseIp(src)!;
  const d = parseIp(dst)!;
  return {
    fromNode: fw.nodePrefixes.some((c) => inCidr(c, s)),
    toNode: fw.nodePrefixes.some((c) => inCidr(c, d)) || lbIps.some((a) => a.fam === d.fam && a.v === d.v),
  };
}
