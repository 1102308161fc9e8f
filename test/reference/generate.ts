/**
 * fast-check arbitraries for the reference tests (issue #13, point 1): landscapes of a Firewall,
 * ClusterwideNetworkPolicies and Services as raw objects, and packets biased towards the edges
 * that matter (prefix and except edges ±1, port range ends ±1, load balancer IPs).
 *
 * Objects are generated as *recipes* (numbers, choices) and materialized deterministically, so
 * fast-check shrinks the recipe and the counterexample stays readable. Prefixes are drawn from a
 * pool that grows while a landscape is built: later prefixes nest in or overlap earlier ones, and
 * the node network's prefixes are in the pool from the start.
 *
 * Nothing here knows what the compiler does; validity is decided by the reference evaluator. A
 * few corruptions are known to reject an object (`mustReject`), which checks the evaluator too.
 *
 * Every hostile string carries the marker `pwn`: no rendered transaction may contain it.
 */
import fc from 'fast-check';
import { Addr, BITS, Cidr, Fam, RawLandscape, RefPacket, Reference, formatIp, inferDirection, parseCidr, parseIp } from './evaluator';

type Obj = Record<string, unknown>;

export const HOSTILE_MARKER = 'pwn';

/** Strings that must never reach nft text: quotes, semicolons, newlines, braces, shell, huge. */
export const HOSTILE_STRINGS: readonly string[] = [
  'pwn"; flush ruleset; #',
  'pwn\n}\ntable inet evil { chain c { type filter hook forward priority 0; policy accept; } }',
  "pwn' ; drop",
  'pwn}{',
  'pwn $(reboot) `id`',
  'pwn\u0000nul',
  'pwn\r\ncomment "x"',
  'pwn ünïcødé ✓',
  `pwn${'x'.repeat(3000)}`,
  `pwn${'";}'.repeat(500)}`,
];

/** Names a Kubernetes API server would refuse; each one is invalid and carries the marker. */
const HOSTILE_NAMES: readonly string[] = [
  'pwn"x',
  'pwn;x',
  'pwn\nx',
  'pwn}',
  'PWN-upper',
  '-pwn',
  'pwn..x',
  'pwn_x',
  `pwn${'a'.repeat(260)}`,
  'pwn x',
];

/** Valid but extreme names: 253 characters, 63-character labels, names that differ only at the end. */
const LONG_NAMES: readonly string[] = [
  `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
  `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(60)}e`,
  `${'z'.repeat(63)}`,
  '0',
  'a.b.c',
];

const V4_ANCHORS = ['10.0.0.0/8', '192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24', '100.64.0.0/10', '0.0.0.0/0'];
const V6_ANCHORS = ['2001:db8::/32', '2001:db8:1::/48', 'fd00::/8', '::ffff:0:0/96', '::/0'];

export const INTERESTING_PORTS = [1, 2, 22, 53, 79, 80, 81, 123, 443, 1023, 1024, 5000, 8000, 8080, 65534, 65535];

// ---------------------------------------------------------------------------------------------
// Text forms of addresses

/** RFC 5952-ish compression (longest run of zero groups), so parsers see `::` forms too. */
export function compressV6(a: Addr): string {
  const g: string[] = [];
  for (let i = 7; i >= 0; i--) g.push(((a.v >> BigInt(16 * i)) & 0xffffn).toString(16));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

type AddrForm = 'plain' | 'full' | 'mapped';

function addrText(a: Addr, form: AddrForm): string {
  if (a.fam === 4) return formatIp(a);
  // an IPv4-mapped address may be written with a dotted quad (it means exactly that address)
  if (form === 'mapped' && a.v >> 32n === 0xffffn) return `::ffff:${formatIp({ fam: 4, v: a.v & 0xffffffffn })}`;
  return form === 'full' ? formatIp(a) : compressV6(a);
}

// ---------------------------------------------------------------------------------------------
// Recipes

/** `arb` with weight `yes` against undefined with weight `no` (undefined shrinks first). */
function sometimes<T>(arb: fc.Arbitrary<T>, yes: number, no: number): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: no, arbitrary: fc.constant(undefined) }, { weight: yes, arbitrary: arb });
}

interface PrefixRecipe {
  /** Index into the pool (anchors, node prefixes, everything materialized so far). */
  readonly base: number;
  /** Added to the base's length; clamped to the family's width. */
  readonly extra: number;
  readonly bits: bigint;
  /** Write some host bits (the prefix is masked with a warning). */
  readonly hostBits: boolean;
  readonly form: AddrForm;
}

const prefixRecipe: fc.Arbitrary<PrefixRecipe> = fc.record({
  base: fc.nat({ max: 1000 }),
  extra: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.constant(200), fc.integer({ min: 0, max: 130 })),
  bits: fc.bigUintN(128),
  hostBits: fc.boolean(),
  form: fc.constantFrom<AddrForm>('plain', 'plain', 'full', 'mapped'),
});

interface PortRecipe {
  readonly proto: string | undefined;
  readonly kind: 'single' | 'range' | 'all';
  readonly port: number;
  readonly span: number;
}

const portNumber = fc.oneof(fc.constantFrom(...INTERESTING_PORTS), fc.integer({ min: 1, max: 65535 }));

const portRecipe: fc.Arbitrary<PortRecipe> = fc.record({
  proto: fc.constantFrom<string | undefined>(undefined, 'TCP', 'UDP', 'TCP', 'UDP', 'tcp', 'Udp'),
  kind: fc.constantFrom<PortRecipe['kind']>('single', 'single', 'range', 'range', 'all'),
  port: portNumber,
  span: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 70000 })),
});

/** `ports`: missing, empty (both: every port and protocol), or a list. */
const portsRecipe = fc.oneof(
  { weight: 1, arbitrary: fc.constant<'missing' | 'empty'>('missing') },
  { weight: 1, arbitrary: fc.constant<'missing' | 'empty'>('empty') },
  { weight: 5, arbitrary: fc.array(portRecipe, { minLength: 1, maxLength: 4 }) },
);

interface BlockRecipe {
  readonly cidr: PrefixRecipe;
  /** Excepts are taken inside the block's own cidr. */
  readonly except: readonly PrefixRecipe[];
}

const blockRecipe = (maxExcept: number): fc.Arbitrary<BlockRecipe> =>
  fc.record({ cidr: prefixRecipe, except: fc.array(prefixRecipe, { maxLength: maxExcept }) });

type PeersRecipe = 'missing' | 'empty' | readonly BlockRecipe[];

const peersRecipe = (maxBlocks: number): fc.Arbitrary<PeersRecipe> =>
  fc.oneof(
    { weight: 1, arbitrary: fc.constant<PeersRecipe>('missing') },
    { weight: 1, arbitrary: fc.constant<PeersRecipe>('empty') },
    { weight: 6, arbitrary: fc.array(blockRecipe(3), { minLength: 1, maxLength: maxBlocks, size: 'max' }) },
  );

interface RuleRecipe {
  readonly peers: PeersRecipe;
  readonly ports: 'missing' | 'empty' | readonly PortRecipe[];
  /** egress only: a toFQDNs rule (no `to`), possibly empty. */
  readonly fqdns: readonly string[] | undefined;
}

const FQDNS = ['example.com', 'api.example.com', 'EXAMPLE.org.', 'xn--bcher-kva.example'];
const FQDN_PATTERNS = ['*.example.com', 'api-*.example.com', '*'];

const ruleRecipe = (maxBlocks: number, egress: boolean): fc.Arbitrary<RuleRecipe> =>
  fc.record({
    peers: peersRecipe(maxBlocks),
    ports: portsRecipe,
    fqdns: egress
      ? sometimes(fc.array(fc.constantFrom(...FQDNS, ...FQDN_PATTERNS), { maxLength: 2 }), 1, 8)
      : fc.constant(undefined),
  });

/** Ways to break an object; the evaluator decides what they mean (mustReject: surely rejected). */
const POLICY_CORRUPTIONS = [
  'hostile-name',
  'hostile-namespace',
  'unknown-field', // `port:` at rule level must not mean "all ports"
  'bad-cidr',
  'except-other-family',
  'except-outside',
  'bad-port',
  'endport-below',
  'endport-without-port',
  'bad-protocol',
  'to-and-fqdns',
  'bad-fqdn',
  'ports-not-a-list',
] as const;
type PolicyCorruption = (typeof POLICY_CORRUPTIONS)[number];

const BAD_CIDRS = [
  '10.0.0.0/33',
  '2001:db8::/129',
  '10.0.0.1',
  '300.1.1.1/8',
  '10.0.0.0/08',
  '::192.0.2.1/128', // IPv4-compatible: refused
  'fe80::1%eth0/64',
  '1::2::3/64',
  '',
  'pwn"; accept; "/24',
  '10.0.0.0/-1',
  ' 10.0.0.0/8',
];
const BAD_PORTS: unknown[] = [0, 65536, -1, 1.5, '443', 'http', 1e20, true, 70000];
const BAD_PROTOCOLS: unknown[] = ['SCTP', 'ICMP', '', 6, 'tcp ', 'pwn;'];

/**
 * Odd but plausible input (what a YAML file can hold: `-` with nothing is a null item). Whether it
 * is valid is for the evaluator to say. Quirks listed in KNOWN_DISAGREEMENTS are cases where the
 * compiler and the reference evaluator disagree today (see test/reference/corpus/ and
 * test/reference/README.md): they are generated only with FC_KNOWN=1 (all of them) or e.g.
 * FC_KNOWN=policy:null-rule, so the property stays green while the corpus keeps each one as a
 * regression case that is expected to fail until the compiler is fixed.
 */
const POLICY_QUIRKS = [
  'null-optional', // null for optional fields: as if missing
  'null-rule', // egress: [null]
  'null-selector', // toFQDNs: [null]
  'null-port', // ports: [null]
  'null-block', // to/from: [null]
  'null-except', // except: [null]
  'status', // a status as the agent writes it, with a hostile message
  'uppercase-v6', // 2001:DB8::/32
  'description-number',
  'rule-not-an-object',
  'spec-unknown-field',
] as const;
type PolicyQuirk = (typeof POLICY_QUIRKS)[number];

const SERVICE_QUIRKS = [
  'null-port', // ports: [null]
  'extra-port-fields', // nodePort, appProtocol
  'bad-lb-ip', // an unparsable loadBalancerIP next to good ones
  'null-ingress', // status.loadBalancer.ingress: [null]
] as const;
type ServiceQuirk = (typeof SERVICE_QUIRKS)[number];

export const KNOWN_DISAGREEMENTS: ReadonlySet<string> = new Set([]);

function enabled<T extends string>(kind: 'policy' | 'service', quirks: readonly T[]): T[] {
  const on = (process.env.FC_KNOWN ?? '').split(',');
  return quirks.filter((q) => !KNOWN_DISAGREEMENTS.has(`${kind}:${q}`) || on.includes('1') || on.includes(`${kind}:${q}`));
}

interface PolicyRecipe {
  readonly name: number;
  readonly namespace: 'firewall' | 'default' | 'missing';
  readonly description: number | undefined;
  readonly egress: readonly RuleRecipe[] | undefined;
  readonly ingress: readonly RuleRecipe[] | undefined;
  readonly corruption: PolicyCorruption | undefined;
  readonly corruptionAt: number;
  readonly labels: boolean;
  readonly quirk: PolicyQuirk | undefined;
}

const policyRecipe = (maxRules: number, maxBlocks: number): fc.Arbitrary<PolicyRecipe> =>
  fc.record({
    name: fc.nat(),
    namespace: fc.constantFrom<PolicyRecipe['namespace']>('firewall', 'firewall', 'firewall', 'firewall', 'firewall', 'default', 'missing'),
    description: sometimes(fc.nat(), 1, 1),
    egress: sometimes(fc.array(ruleRecipe(maxBlocks, true), { maxLength: maxRules, size: 'max' }), 5, 1),
    ingress: sometimes(fc.array(ruleRecipe(maxBlocks, false), { maxLength: maxRules, size: 'max' }), 2, 1),
    corruption: sometimes(fc.constantFrom(...POLICY_CORRUPTIONS), 1, 7),
    corruptionAt: fc.nat(),
    labels: fc.boolean(),
    quirk: sometimes(fc.constantFrom(...enabled('policy', POLICY_QUIRKS)), 1, 6),
  });

interface ServiceRecipe {
  readonly name: number;
  readonly namespace: string;
  readonly type: 'LoadBalancer' | 'ClusterIP' | 'NodePort';
  /** Addresses: index into the pool, offset inside the prefix; 'empty' = "". */
  readonly lbIp: { base: number; bits: bigint; form: AddrForm } | 'empty' | undefined;
  readonly statusIps: readonly { base: number; bits: bigint; form: AddrForm }[];
  readonly ports: readonly { port: number; protocol: string | undefined }[];
  readonly ranges: readonly PrefixRecipe[];
  /** Where the source ranges go: the field, the annotation (field empty), or both. */
  readonly rangesIn: 'field' | 'annotation' | 'both';
  readonly corruption: 'hostile-name' | 'bad-range' | 'bad-port' | 'bad-protocol' | undefined;
  readonly quirk: ServiceQuirk | undefined;
}

const svcAddr = fc.record({ base: fc.nat({ max: 1000 }), bits: fc.bigUintN(128), form: fc.constantFrom<AddrForm>('plain', 'full', 'mapped') });

const serviceRecipe: fc.Arbitrary<ServiceRecipe> = fc.record({
  name: fc.nat(),
  namespace: fc.constantFrom('default', 'firewall', 'kube-system', 'shop'),
  type: fc.constantFrom<ServiceRecipe['type']>('LoadBalancer', 'LoadBalancer', 'LoadBalancer', 'LoadBalancer', 'ClusterIP', 'NodePort'),
  lbIp: sometimes(fc.oneof({ weight: 6, arbitrary: svcAddr }, { weight: 1, arbitrary: fc.constant<'empty'>('empty') }), 4, 1),
  statusIps: fc.array(svcAddr, { maxLength: 2 }),
  ports: fc.array(fc.record({ port: portNumber, protocol: fc.constantFrom<string | undefined>(undefined, 'TCP', 'UDP', 'TCP', 'UDP', 'SCTP') }), { maxLength: 3 }),
  ranges: fc.array(prefixRecipe, { maxLength: 3 }),
  rangesIn: fc.constantFrom<ServiceRecipe['rangesIn']>('field', 'field', 'annotation', 'both'),
  corruption: sometimes(fc.constantFrom<NonNullable<ServiceRecipe['corruption']>>('hostile-name', 'bad-range', 'bad-port', 'bad-protocol'), 1, 7),
  quirk: sometimes(fc.constantFrom(...enabled('service', SERVICE_QUIRKS)), 1, 6),
});

interface FirewallRecipe {
  readonly node4: readonly PrefixRecipe[];
  readonly node6: readonly PrefixRecipe[];
  readonly allowed: { egress: readonly PrefixRecipe[]; ingress: readonly PrefixRecipe[] } | undefined;
  readonly dnsServer: boolean;
  readonly internal: readonly PrefixRecipe[];
  readonly rateLimit: boolean;
  readonly logAccepted: boolean;
}

const firewallRecipe: fc.Arbitrary<FirewallRecipe> = fc.record({
  node4: fc.array(prefixRecipe, { minLength: 1, maxLength: 2 }),
  node6: fc.array(prefixRecipe, { maxLength: 1 }),
  allowed: sometimes(fc.record({ egress: fc.array(prefixRecipe, { maxLength: 3 }), ingress: fc.array(prefixRecipe, { maxLength: 3 }) }), 1, 2),
  dnsServer: fc.boolean(),
  internal: fc.array(prefixRecipe, { maxLength: 2 }),
  rateLimit: fc.boolean(),
  logAccepted: fc.boolean(),
});

export interface LandscapeRecipe {
  readonly firewall: FirewallRecipe;
  readonly policies: readonly PolicyRecipe[];
  readonly services: readonly ServiceRecipe[];
  readonly state: 'connected' | 'disconnected';
  readonly mode: RawLandscape['mode'];
  /** Copies of earlier policies under the same name (the same object twice in the input). */
  readonly duplicate: boolean;
}

/** A generated case: the raw objects plus what the generator knows for sure. */
export interface Generated {
  readonly landscape: RawLandscape;
  /** Objects a corruption surely makes invalid (by index in their kind's list). */
  readonly mustReject: { readonly policies: readonly number[]; readonly services: readonly number[] };
  /**
   * Boxes per address shard for the compiler (CompileInput.shardMax): small values split the
   * concatenated maps into many shards, as tens of thousands of prefixes would. Default: the product's.
   */
  readonly shardMax?: number;
}

// ---------------------------------------------------------------------------------------------
// Materializing

class Pool {
  readonly items: Cidr[] = [];

  constructor() {
    for (const t of [...V4_ANCHORS, ...V6_ANCHORS]) this.items.push(parseCidr(t)!);
  }

  /** A prefix inside pool[base], `extra` bits longer; optionally of one family. */
  prefix(r: PrefixRecipe, fam?: Fam, within?: Cidr): { cidr: Cidr; text: string } {
    const candidates = within ? [within] : fam ? this.items.filter((c) => c.fam === fam) : this.items;
    const base = candidates[r.base % candidates.length]!;
    const bits = BITS[base.fam];
    const len = Math.min(bits, base.len + r.extra);
    const host = (1n << BigInt(bits - len)) - 1n;
    const span = base.hi - base.lo;
    const lo = base.lo + ((r.bits % (span + 1n)) & ~host);
    const cidr: Cidr = { fam: base.fam, lo, hi: lo | host, len };
    const shown = r.hostBits && host > 0n ? lo | (r.bits & host) | 1n : lo;
    if (!within) this.items.push(cidr);
    return { cidr, text: `${addrText({ fam: base.fam, v: shown }, r.form)}/${len}` };
  }

  address(r: { base: number; bits: bigint; form: AddrForm }): string {
    const c = this.items[r.base % this.items.length]!;
    return addrText({ fam: c.fam, v: c.lo + (r.bits % (c.hi - c.lo + 1n)) }, r.form);
  }
}

function portsJson(p: RuleRecipe['ports']): unknown {
  if (p === 'missing') return undefined;
  if (p === 'empty') return [];
  return p.map((e) => {
    const o: Obj = {};
    if (e.proto !== undefined) o.protocol = e.proto;
    if (e.kind === 'single') o.port = e.port;
    if (e.kind === 'range') {
      o.port = e.port;
      o.endPort = Math.min(65535, e.port + e.span);
    }
    return o;
  });
}

function peersJson(pool: Pool, p: PeersRecipe): unknown {
  if (p === 'missing') return undefined;
  if (p === 'empty') return [];
  return p.map((b) => {
    const { cidr, text } = pool.prefix(b.cidr);
    const o: Obj = { cidr: text };
    if (b.except.length > 0) o.except = b.except.map((e) => pool.prefix(e, undefined, cidr).text);
    return o;
  });
}

function ruleJson(pool: Pool, r: RuleRecipe, egress: boolean): Obj {
  const o: Obj = {};
  const peers = peersJson(pool, r.fqdns !== undefined ? 'missing' : r.peers);
  if (peers !== undefined) o[egress ? 'to' : 'from'] = peers;
  if (r.fqdns !== undefined) o.toFQDNs = r.fqdns.map((f) => (f.includes('*') ? { matchPattern: f } : { matchName: f }));
  const ports = portsJson(r.ports);
  if (ports !== undefined) o.ports = ports;
  return o;
}

function pick<T>(xs: readonly T[], i: number): T {
  return xs[i % xs.length]!;
}

/** Applies a corruption to a policy object; true when it surely makes the policy invalid. */
function corruptPolicy(o: Obj, c: PolicyCorruption, at: number): boolean {
  const meta = o.metadata as Obj;
  const spec = (o.spec ??= {}) as Obj;
  /** An object item of list `o[key]` (added when there is none: quirks may have put nulls there). */
  const item = (o2: Obj, key: string, make: () => Obj): Obj => {
    if (!Array.isArray(o2[key])) o2[key] = [];
    const objs = (o2[key] as unknown[]).filter((x): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x));
    if (objs.length > 0) return pick(objs, at);
    const made = make();
    (o2[key] as unknown[]).push(made);
    return made;
  };
  const ruleOf = (key: 'egress' | 'ingress'): { rule: Obj; peers: 'to' | 'from' } => ({ rule: item(spec, key, () => ({})), peers: key === 'egress' ? 'to' : 'from' });
  const someRule = (): { rule: Obj; peers: 'to' | 'from' } => ruleOf(at % 2 === 0 ? 'egress' : 'ingress');
  const blockOf = ({ rule, peers }: { rule: Obj; peers: 'to' | 'from' }): Obj => {
    delete rule.toFQDNs;
    return item(rule, peers, () => ({ cidr: '10.0.0.0/8' }));
  };
  const portOf = ({ rule }: { rule: Obj }): Obj => item(rule, 'ports', () => ({ port: 443 }));
  switch (c) {
    case 'hostile-name':
      meta.name = pick(HOSTILE_NAMES, at);
      return true;
    case 'hostile-namespace':
      meta.namespace = pick(['pwn;ns', 'Firewall-PWN', 'pwn.ns', `pwn${'n'.repeat(70)}`], at);
      return true;
    case 'unknown-field':
      someRule().rule.port = 80;
      return true;
    case 'bad-cidr':
      blockOf(someRule()).cidr = pick(BAD_CIDRS, at);
      return true;
    case 'except-other-family': {
      const b = blockOf(someRule());
      const fam = parseCidr(b.cidr)?.fam;
      b.except = [...((b.except as unknown[]) ?? []), fam === 6 ? '10.0.0.0/8' : '2001:db8::/32'];
      return true;
    }
    case 'except-outside': {
      const b = blockOf(someRule());
      const c2 = parseCidr(b.cidr);
      if (!c2 || c2.len === 0) {
        b.cidr = '10.0.0.0/16';
        b.except = ['10.1.0.0/16'];
      } else {
        // the neighbouring prefix of the same length: outside, same family
        const size = c2.hi - c2.lo + 1n;
        const other = c2.lo >= size ? c2.lo - size : c2.hi + 1n;
        b.except = [`${formatIp({ fam: c2.fam, v: other })}/${c2.len}`];
      }
      return true;
    }
    case 'bad-port':
      portOf(someRule()).port = pick(BAD_PORTS, at);
      return true;
    case 'endport-below': {
      const p = portOf(someRule());
      p.port = 8010;
      p.endPort = 8000 + (at % 10);
      return true;
    }
    case 'endport-without-port': {
      const p = portOf(someRule());
      delete p.port;
      p.endPort = 9000;
      return true;
    }
    case 'bad-protocol':
      portOf(someRule()).protocol = pick(BAD_PROTOCOLS, at);
      return true;
    case 'to-and-fqdns': {
      const r = ruleOf('egress').rule;
      r.to = [{ cidr: '203.0.113.0/24' }];
      r.toFQDNs = [{ matchName: 'example.com' }];
      return true;
    }
    case 'bad-fqdn': {
      const r = ruleOf('egress').rule;
      delete r.to;
      r.toFQDNs = [pick([{ matchName: 'pwn;x.com' }, { matchName: 'a..b' }, { matchPattern: 'pwn x' }, { matchName: 'a.com', matchPattern: '*.b' }, {}], at)];
      return true;
    }
    case 'ports-not-a-list':
      someRule().rule.ports = pick(['443', { port: 443 }, 443], at);
      return true;
  }
}

function policyQuirk(o: Obj, q: PolicyQuirk, at: number): void {
  const spec = (o.spec ??= {}) as Obj;
  const rules = (key: 'egress' | 'ingress'): Obj[] => {
    if (!Array.isArray(spec[key]) || (spec[key] as unknown[]).length === 0) spec[key] = [{ ports: [{ port: 443 }] }];
    return spec[key] as Obj[];
  };
  const rule = (): Obj => pick(rules(at % 2 === 0 ? 'egress' : 'ingress'), at);
  const peersKey = (r: Obj): 'to' | 'from' => (rules('egress').includes(r) ? 'to' : 'from');
  switch (q) {
    case 'null-optional': {
      const r = rule();
      for (const p of Array.isArray(r.ports) ? (r.ports as Obj[]) : []) {
        if (p && typeof p === 'object') {
          if (p.protocol === undefined) p.protocol = null;
          if (p.endPort === undefined) p.endPort = null;
        }
      }
      const k = peersKey(r);
      for (const b of Array.isArray(r[k]) ? (r[k] as Obj[]) : []) if (b && typeof b === 'object' && b.except === undefined) b.except = null;
      if (r.ports === undefined) r.ports = null;
      if (spec.description === undefined) spec.description = null;
      return;
    }
    case 'null-rule':
      rules(at % 2 === 0 ? 'egress' : 'ingress').push(null as unknown as Obj);
      return;
    case 'null-selector': {
      const r = pick(rules('egress'), at);
      delete r.to;
      r.toFQDNs = [null];
      return;
    }
    case 'null-port':
      rule().ports = [{ port: 53, protocol: 'UDP' }, null];
      return;
    case 'null-block': {
      const r = rule();
      delete r.toFQDNs;
      r[peersKey(r)] = [{ cidr: '203.0.113.0/24' }, null];
      return;
    }
    case 'null-except': {
      const r = rule();
      delete r.toFQDNs;
      r[peersKey(r)] = [{ cidr: '203.0.113.0/24', except: ['203.0.113.0/28', null] }];
      return;
    }
    case 'status':
      o.status = { state: 'deployed', message: pick(HOSTILE_STRINGS, at), fqdn_state: {} };
      return;
    case 'uppercase-v6': {
      const r = rule();
      delete r.toFQDNs;
      r[peersKey(r)] = [{ cidr: '2001:DB8:AB::/48', except: ['2001:DB8:AB:FF::/64'] }];
      return;
    }
    case 'description-number':
      spec.description = 42;
      return;
    case 'rule-not-an-object':
      rules('ingress').push(pick(['pwn', 7, [], true], at) as unknown as Obj);
      return;
    case 'spec-unknown-field':
      spec.priority = 1;
      return;
  }
}

function serviceQuirk(o: Obj, q: ServiceQuirk, at: number): void {
  const spec = o.spec as Obj;
  switch (q) {
    case 'null-port':
      spec.ports = [...((spec.ports as unknown[]) ?? []), null];
      return;
    case 'extra-port-fields':
      spec.ports = [...((spec.ports as unknown[]) ?? []), { name: 'h2', port: 8443, protocol: 'TCP', targetPort: 'web', nodePort: 31000, appProtocol: 'h2c' }];
      return;
    case 'bad-lb-ip':
      o.status = { loadBalancer: { ingress: [{ ip: pick(['pwn;1.2.3.4', '300.1.1.1', '::192.0.2.9', 'fe80::1%eth0'], at) }, { ip: '192.0.2.77' }] } };
      return;
    case 'null-ingress':
      o.status = { loadBalancer: { ingress: [null, { ip: '2001:db8:1::77' }] } };
      return;
  }
}

function policyName(n: number): string {
  return n % 11 === 10 ? pick(LONG_NAMES, n) : `p${n % 1000}`;
}

export function materialize(r: LandscapeRecipe): Generated {
  const pool = new Pool();
  // The Firewall: the node network's prefixes first, so policies nest in them.
  const node = [...r.firewall.node4.map((p) => pool.prefix(p, 4)), ...r.firewall.node6.map((p) => pool.prefix(p, 6))];
  const spec: Obj = { interval: '10s' };
  if (r.firewall.allowed) {
    spec.allowedNetworks = {
      egress: r.firewall.allowed.egress.map((p) => pool.prefix(p).text),
      ingress: r.firewall.allowed.ingress.map((p) => pool.prefix(p).text),
    };
  }
  if (r.firewall.dnsServer) spec.dnsServerAddress = '198.51.100.53';
  if (r.firewall.internal.length > 0) spec.internalPrefixes = r.firewall.internal.map((p) => pool.prefix(p).text);
  if (r.firewall.rateLimit) spec.rateLimits = [{ networkID: 'internet', rate: 100 }];
  spec.logAcceptedConnections = r.firewall.logAccepted;
  const firewall: Obj = {
    apiVersion: 'firewall.metal-stack.io/v2',
    kind: 'Firewall',
    metadata: { name: 'shoot--prop-firewall', namespace: 'shoot--prop' },
    spec,
    status: {
      firewallNetworks: [
        { networkID: 'node-network', networkType: 'privateprimaryunshared', vrf: 3981, nat: false, prefixes: node.map((n) => n.text), ips: [] },
        { networkID: 'internet', networkType: 'external', vrf: 104009, nat: true, prefixes: ['203.0.113.0/24', '2001:db8:203::/64'], ips: ['203.0.113.1'] },
      ],
    },
  };

  const policies: Obj[] = [];
  const mustRejectP: number[] = [];
  r.policies.forEach((p, i) => {
    const meta: Obj = { name: policyName(p.name) };
    if (p.namespace !== 'missing') meta.namespace = p.namespace;
    if (p.labels) meta.labels = { app: 'x' };
    if (p.labels) meta.annotations = { note: pick(HOSTILE_STRINGS, p.name) };
    const s: Obj = {};
    if (p.description !== undefined) s.description = pick(HOSTILE_STRINGS, p.description);
    if (p.egress) s.egress = p.egress.map((x) => ruleJson(pool, x, true));
    if (p.ingress) s.ingress = p.ingress.map((x) => ruleJson(pool, x, false));
    const o: Obj = { apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: meta, spec: s };
    if (p.quirk) policyQuirk(o, p.quirk, p.corruptionAt);
    if (p.corruption && corruptPolicy(o, p.corruption, p.corruptionAt)) mustRejectP.push(i);
    policies.push(o);
  });
  if (r.duplicate && policies.length > 0) policies.push(structuredClone(policies[0]!));

  const services: Obj[] = [];
  const mustRejectS: number[] = [];
  r.services.forEach((s, i) => {
    const meta: Obj = { name: `svc${s.name % 100}`, namespace: s.namespace };
    const sp: Obj = { type: s.type };
    if (s.lbIp === 'empty') sp.loadBalancerIP = '';
    else if (s.lbIp) sp.loadBalancerIP = pool.address(s.lbIp);
    sp.ports = s.ports.map((p, j) => ({ name: `p${j}`, port: p.port, targetPort: 8080, ...(p.protocol ? { protocol: p.protocol } : {}) }));
    const ranges = s.ranges.map((p) => pool.prefix(p).text);
    if (ranges.length > 0) {
      if (s.rangesIn !== 'annotation') sp.loadBalancerSourceRanges = ranges;
      if (s.rangesIn !== 'field') {
        meta.annotations = { 'service.beta.kubernetes.io/load-balancer-source-ranges': ` ${[...ranges].reverse().join(' ,')} ` };
      }
    }
    const o: Obj = { apiVersion: 'v1', kind: 'Service', metadata: meta, spec: sp };
    if (s.statusIps.length > 0) o.status = { loadBalancer: { ingress: s.statusIps.map((a) => ({ ip: pool.address(a) })) } };
    let reject = false;
    if (s.corruption === 'hostile-name') {
      meta.name = pick(HOSTILE_NAMES, s.name);
      reject = true;
    } else if (s.type === 'LoadBalancer' && s.corruption === 'bad-range') {
      // a bad source range rejects the Service (dropping it could mean "everyone")
      const bad = pick(BAD_CIDRS, s.name);
      if (s.rangesIn === 'annotation' && ranges.length > 0) meta.annotations = { 'service.beta.kubernetes.io/load-balancer-source-ranges': `${ranges[0]},${bad}` };
      else sp.loadBalancerSourceRanges = [...ranges, bad];
      // only ' 10.0.0.0/8' is valid once the annotation's entries are trimmed
      reject = !(s.rangesIn === 'annotation' && ranges.length > 0 && bad === ' 10.0.0.0/8');
    } else if (s.type === 'LoadBalancer' && s.corruption === 'bad-port') {
      sp.ports = [...(sp.ports as Obj[]), { port: pick([0, 65536, 'http', -1], s.name), protocol: 'TCP' }];
      reject = true;
    } else if (s.type === 'LoadBalancer' && s.corruption === 'bad-protocol') {
      sp.ports = [...(sp.ports as Obj[]), { port: 80, protocol: pick(['ICMP', 'pwn;', 7], s.name) }];
      reject = true;
    }
    if (s.quirk) serviceQuirk(o, s.quirk, s.name);
    if (reject) mustRejectS.push(i);
    services.push(o);
  });

  return { landscape: { firewall, policies, services, state: r.state, mode: r.mode }, mustReject: { policies: mustRejectP, services: mustRejectS } };
}

export interface SizeLimits {
  readonly policies: number;
  readonly rules: number;
  readonly blocks: number;
  readonly services: number;
}

export const SMALL: SizeLimits = { policies: 6, rules: 3, blocks: 4, services: 3 };
/** Extreme but bounded: many policies, or many blocks per rule. */
export const LARGE_MANY: SizeLimits = { policies: 40, rules: 2, blocks: 3, services: 8 };
export const LARGE_WIDE: SizeLimits = { policies: 2, rules: 2, blocks: 150, services: 1 };
/** Small prefixes of 10.0.0.0/8 (pool index 0) and 2001:db8::/32 (index 6): thousands stay apart. */
const hugeBlock: fc.Arbitrary<BlockRecipe> = fc.record({
  cidr: fc.oneof(
    fc.record({ base: fc.constant(0), extra: fc.integer({ min: 16, max: 24 }), bits: fc.bigUintN(128), hostBits: fc.boolean(), form: fc.constant<AddrForm>('plain') }),
    fc.record({ base: fc.constant(6), extra: fc.integer({ min: 80, max: 96 }), bits: fc.bigUintN(128), hostBits: fc.boolean(), form: fc.constant<AddrForm>('plain') }),
  ),
  except: fc.array(prefixRecipe, { maxLength: 1 }),
});

/** One deployed policy with one rule of 1,000–2,500 blocks: past the product's 2048 boxes per shard. */
export function hugeRecipe(): fc.Arbitrary<LandscapeRecipe> {
  return fc
    .record({
      base: landscapeRecipe({ policies: 0, rules: 1, blocks: 1, services: 2 }),
      rule: fc.record({ peers: fc.array(hugeBlock, { minLength: 1000, maxLength: 2500 }), ports: portsRecipe, fqdns: fc.constant(undefined) }),
      egress: fc.boolean(),
    })
    .map(({ base, rule, egress }) => ({
      ...base,
      state: 'connected' as const,
      mode: 'baseline' as const,
      policies: [
        { name: 0, namespace: 'firewall' as const, description: undefined, egress: egress ? [rule] : undefined, ingress: egress ? undefined : [rule], corruption: undefined, corruptionAt: 0, labels: false, quirk: undefined },
      ],
    }));
}

export function landscapeRecipe(size: SizeLimits = SMALL): fc.Arbitrary<LandscapeRecipe> {
  return fc.record({
    firewall: firewallRecipe,
    policies: fc.array(policyRecipe(size.rules, size.blocks), { maxLength: size.policies, size: 'max' }),
    services: fc.array(serviceRecipe, { maxLength: size.services, size: 'max' }),
    state: fc.constantFrom<LandscapeRecipe['state']>('connected', 'connected', 'connected', 'connected', 'connected', 'connected', 'connected', 'connected', 'connected', 'disconnected'),
    mode: fc.constantFrom<RawLandscape['mode']>(undefined, undefined, undefined, undefined, 'baseline', 'restricted', 'forbidden', 'forbidden'),
    duplicate: fc.integer({ min: 0, max: 9 }).map((n) => n === 9), // shrinks to false
  });
}

/** Mostly small landscapes, some with many policies, some with very wide rules, a few huge; shards often small. */
export function landscapes(): fc.Arbitrary<Generated> {
  return fc
    .oneof(
      { weight: 64, arbitrary: landscapeRecipe(SMALL) },
      { weight: 8, arbitrary: landscapeRecipe(LARGE_MANY) },
      { weight: 4, arbitrary: landscapeRecipe(LARGE_WIDE) },
      { weight: 1, arbitrary: hugeRecipe() },
    )
    .chain((r) => fc.constantFrom<number | undefined>(undefined, undefined, undefined, undefined, 1, 2, 3, 8, 64).map((shardMax) => ({ ...materialize(r), shardMax })));
}

// ---------------------------------------------------------------------------------------------
// Packets

/** mulberry32: a small seeded PRNG, so a case's packets follow from one number. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randBig(rnd: () => number, lo: bigint, hi: bigint): bigint {
  let x = 0n;
  for (let i = 0; i < 5; i++) x = (x << 32n) | BigInt(Math.floor(rnd() * 4294967296));
  return lo + (x % (hi - lo + 1n));
}

/** Every string and number in an object tree, with the key it was found under. */
function walk(v: unknown, key: string, out: { key: string; value: unknown }[]): void {
  if (Array.isArray(v)) for (const x of v) walk(x, key, out);
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, k, out);
  else out.push({ key, value: v });
}

interface Edges {
  readonly addrs: Record<Fam, bigint[]>;
  readonly node: Cidr[];
  readonly lbIps: Addr[];
  readonly ports: number[];
}

/** Addresses and ports at the edges of everything in the landscape. */
function edges(l: RawLandscape, ref: Reference): Edges {
  const addrs: Record<Fam, bigint[]> = { 4: [], 6: [] };
  const ports = new Set<number>([1, 65535, ...INTERESTING_PORTS]);
  const lbIps: Addr[] = [];
  const all: { key: string; value: unknown }[] = [];
  walk([l.firewall, l.policies, l.services], '', all);
  const max = (f: Fam): bigint => (1n << BigInt(BITS[f])) - 1n;
  const add = (f: Fam, v: bigint): void => {
    if (v >= 0n && v <= max(f)) addrs[f].push(v);
  };
  for (const { key, value } of all) {
    if (typeof value === 'number' && (key === 'port' || key === 'endPort') && Number.isInteger(value)) {
      for (const p of [value - 1, value, value + 1]) if (p >= 1 && p <= 65535) ports.add(p);
    }
    if (typeof value !== 'string') continue;
    for (const part of value.split(',').map((s) => s.trim())) {
      const c = parseCidr(part);
      if (c) {
        for (const v of [c.lo - 1n, c.lo, c.lo + 1n, (c.lo + c.hi) / 2n, c.hi - 1n, c.hi, c.hi + 1n]) add(c.fam, v);
        continue;
      }
      const a = parseIp(part);
      if (a) {
        for (const v of [a.v - 1n, a.v, a.v + 1n]) add(a.fam, v);
        if (key === 'ip' || key === 'loadBalancerIP') lbIps.push(a);
      }
    }
  }
  return { addrs, node: [...ref.firewall.nodePrefixes], lbIps, ports: [...ports] };
}

/**
 * `n` packets for a landscape, from `seed`: about 40 % shaped like egress (source in the node
 * network), 40 % like ingress (destination in the node network or a load balancer IP), the rest
 * between any two edge addresses; one in ten has its direction flipped from what the addresses say.
 */
export function samplePackets(l: RawLandscape, ref: Reference, seed: number, n: number): RefPacket[] {
  const rnd = prng(seed);
  const e = edges(l, ref);
  const int = (k: number): number => Math.floor(rnd() * k);
  const out: RefPacket[] = [];
  const inNode = (f: Fam): bigint | undefined => {
    const cs = e.node.filter((c) => c.fam === f);
    if (cs.length === 0) return undefined;
    const c = cs[int(cs.length)]!;
    const r = rnd();
    return r < 0.2 ? c.lo : r < 0.4 ? c.hi : randBig(rnd, c.lo, c.hi);
  };
  const any = (f: Fam): bigint => {
    const xs = e.addrs[f];
    return xs.length > 0 && rnd() < 0.85 ? xs[int(xs.length)]! : randBig(rnd, 0n, (1n << BigInt(BITS[f])) - 1n);
  };
  for (let i = 0; i < n; i++) {
    const f: Fam = rnd() < 0.55 ? 4 : 6;
    const shape = rnd();
    let src = any(f);
    let dst = any(f);
    if (shape < 0.4) src = inNode(f) ?? src;
    else if (shape < 0.8) {
      const lbs = e.lbIps.filter((a) => a.fam === f);
      dst = lbs.length > 0 && rnd() < 0.4 ? lbs[int(lbs.length)]!.v : (inNode(f) ?? dst);
    }
    const s = formatIp({ fam: f, v: src });
    const d = formatIp({ fam: f, v: dst });
    const dir = inferDirection(ref.firewall, e.lbIps, s, d);
    const port = rnd() < 0.85 ? e.ports[int(e.ports.length)]! : 1 + int(65535);
    out.push({
      src: s,
      dst: d,
      proto: rnd() < 0.5 ? 'tcp' : 'udp',
      port,
      fromNode: rnd() < 0.1 ? !dir.fromNode : dir.fromNode,
      toNode: rnd() < 0.1 ? !dir.toNode : dir.toNode,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Lab landscapes (test/lab/lab.ts): policies and Services over the lab's prefixes, and packets
// between the lab's hosts on the ports their servers listen on.

export type LabHost = 'worker' | 'internet' | 'services';

/** The lab's addresses (lab.ts), by host: what can send and what can be reached. */
export const LAB_ADDRESSES: Record<LabHost, { readonly sources: readonly string[]; readonly targets: readonly string[] }> = {
  // 192.0.2.150 is on the worker but outside the node network's prefixes; .200 is its LB IP
  worker: {
    sources: ['192.0.2.10', '192.0.2.150', '2001:db8:1::10', '2001:db8:1:ff::200'],
    targets: ['192.0.2.10', '192.0.2.200', '2001:db8:1::10', '2001:db8:1:ff::200'],
  },
  internet: {
    sources: ['203.0.113.10', '203.0.113.20', '203.0.113.30', '203.0.113.100', '203.0.113.200', '2001:db8:203::10', '2001:db8:203::20', '2001:db8:203::ff:10'],
    targets: ['203.0.113.10', '203.0.113.20', '203.0.113.30', '203.0.113.100', '203.0.113.200', '2001:db8:203::10', '2001:db8:203::20', '2001:db8:203::ff:10'],
  },
  services: {
    sources: ['198.51.100.10', '198.51.100.5', '198.51.100.53', '198.51.100.123', '2001:db8:198::10', '2001:db8:198::53'],
    targets: ['198.51.100.10', '198.51.100.5', '198.51.100.53', '198.51.100.123', '2001:db8:198::10', '2001:db8:198::53'],
  },
};

/** The ports the lab's servers listen on (peer.js). */
export const LAB_PORTS: Record<'tcp' | 'udp', readonly number[]> = { tcp: [22, 53, 80, 443, 8000, 8005, 8010, 8011, 9000], udp: [53, 123, 5000] };

const LAB_ALL_ADDRESSES = [...new Set(Object.values(LAB_ADDRESSES).flatMap((h) => [...h.sources, ...h.targets]))];
const LAB_LB_IPS = ['192.0.2.200', '2001:db8:1:ff::200', '192.0.2.10'];
/** Policy ports: the servers' ports and their neighbours, so range ends ±1 are probed. */
const LAB_POLICY_PORTS = [...new Set([...LAB_PORTS.tcp, ...LAB_PORTS.udp].flatMap((p) => [p - 1, p, p + 1]))].sort((a, b) => a - b);
const V4_LENGTHS = [0, 8, 16, 24, 25, 26, 27, 28, 29, 30, 31, 32];
const V6_LENGTHS = [0, 32, 48, 56, 64, 100, 112, 120, 124, 126, 127, 128];

interface LabPrefixRecipe {
  readonly addr: number;
  readonly len: number;
  readonly hostBits: boolean;
}

const labPrefix: fc.Arbitrary<LabPrefixRecipe> = fc.record({ addr: fc.nat(), len: fc.nat(), hostBits: fc.boolean() });

/** A prefix of a lab address: boundaries fall between the lab's hosts. */
function labPrefixText(r: LabPrefixRecipe, among: readonly string[] = LAB_ALL_ADDRESSES, minLen = 0): { cidr: Cidr; text: string } {
  const a = parseIp(pick(among, r.addr))!;
  const lens = (a.fam === 4 ? V4_LENGTHS : V6_LENGTHS).filter((l) => l >= minLen);
  const len = lens.length > 0 ? pick(lens, r.len) : BITS[a.fam];
  const host = (1n << BigInt(BITS[a.fam] - len)) - 1n;
  const lo = a.v & ~host;
  return { cidr: { fam: a.fam, lo, hi: lo | host, len }, text: `${addrText({ fam: a.fam, v: r.hostBits ? a.v : lo }, 'plain')}/${len}` };
}

interface LabRuleRecipe {
  readonly peers: 'missing' | readonly { cidr: LabPrefixRecipe; except: readonly LabPrefixRecipe[] }[];
  readonly ports: 'missing' | readonly { proto: 'TCP' | 'UDP' | undefined; lo: number; span: number; kind: 'single' | 'range' | 'all' }[];
}

const labRule: fc.Arbitrary<LabRuleRecipe> = fc.record({
  peers: fc.oneof(
    { weight: 1, arbitrary: fc.constant<'missing'>('missing') },
    { weight: 6, arbitrary: fc.array(fc.record({ cidr: labPrefix, except: fc.array(labPrefix, { maxLength: 2 }) }), { minLength: 1, maxLength: 3 }) },
  ),
  ports: fc.oneof(
    { weight: 1, arbitrary: fc.constant<'missing'>('missing') },
    {
      weight: 5,
      arbitrary: fc.array(
        fc.record({
          proto: fc.constantFrom<'TCP' | 'UDP' | undefined>('TCP', 'UDP', undefined),
          lo: fc.nat(),
          span: fc.nat({ max: 12 }),
          kind: fc.constantFrom<'single' | 'range' | 'all'>('single', 'single', 'range', 'all'),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    },
  ),
});

function labRuleJson(r: LabRuleRecipe, peersKey: 'to' | 'from', peerAddrs: readonly string[]): Obj {
  const o: Obj = {};
  if (r.peers !== 'missing') {
    o[peersKey] = r.peers.map((b) => {
      const { cidr, text } = labPrefixText(b.cidr, peerAddrs);
      const inside = LAB_ALL_ADDRESSES.filter((a) => {
        const x = parseIp(a)!;
        return x.fam === cidr.fam && cidr.lo <= x.v && x.v <= cidr.hi;
      });
      const block: Obj = { cidr: text };
      const within = inside.length > 0 ? inside : [formatIp({ fam: cidr.fam, v: cidr.lo })];
      if (b.except.length > 0) block.except = b.except.map((e) => labPrefixText({ ...e, hostBits: false }, within, cidr.len).text);
      return block;
    });
  }
  if (r.ports !== 'missing') {
    o.ports = r.ports.map((p) => {
      const e: Obj = {};
      if (p.proto) e.protocol = p.proto;
      if (p.kind === 'all') return e;
      const i = p.lo % LAB_POLICY_PORTS.length;
      e.port = LAB_POLICY_PORTS[i]!;
      if (p.kind === 'range') e.endPort = LAB_POLICY_PORTS[Math.min(LAB_POLICY_PORTS.length - 1, i + p.span)]!;
      return e;
    });
  }
  return o;
}

const labPolicy = fc.record({
  egress: fc.array(labRule, { maxLength: 2 }),
  ingress: fc.array(labRule, { maxLength: 2 }),
  namespace: fc.constantFrom('firewall', 'firewall', 'firewall', 'firewall', 'default'),
});

const labService = fc.record({
  ip: fc.nat(),
  extraIp: fc.option(fc.nat(), { nil: undefined }),
  ports: fc.array(fc.record({ port: fc.nat(), protocol: fc.constantFrom<'TCP' | 'UDP' | undefined>('TCP', 'UDP', undefined) }), { minLength: 1, maxLength: 3 }),
  ranges: fc.array(labPrefix, { maxLength: 2 }),
  annotation: fc.boolean(),
});

/**
 * Landscapes for the lab: the example Firewall (baseline or forbidden, passed in: it is read from
 * examples/), 1–4 policies over the lab's prefixes, 0–2 LoadBalancer Services on the worker's LB
 * addresses. Connected mostly; mode inferred mostly.
 */
export function labLandscapes(firewalls: { readonly baseline: Obj; readonly forbidden: Obj }): fc.Arbitrary<Generated> {
  const egressPeers = [...LAB_ADDRESSES.internet.targets, ...LAB_ADDRESSES.services.targets, ...LAB_ADDRESSES.worker.targets];
  const ingressPeers = [...LAB_ADDRESSES.internet.sources, ...LAB_ADDRESSES.services.sources, ...LAB_ADDRESSES.worker.sources];
  return fc
    .record({
      forbidden: fc.boolean(),
      policies: fc.array(labPolicy, { minLength: 1, maxLength: 4 }),
      services: fc.array(labService, { maxLength: 2 }),
      state: fc.constantFrom<'connected' | 'disconnected'>('connected', 'connected', 'connected', 'connected', 'connected', 'connected', 'connected', 'disconnected'),
      mode: fc.constantFrom<RawLandscape['mode']>(undefined, undefined, undefined, 'baseline', 'forbidden'),
    })
    .map((r): Generated => {
      const policies = r.policies.map((p, i) => ({
        apiVersion: 'metal-stack.io/v1',
        kind: 'ClusterwideNetworkPolicy',
        metadata: { name: `lab-${i}`, namespace: p.namespace },
        spec: { egress: p.egress.map((x) => labRuleJson(x, 'to', egressPeers)), ingress: p.ingress.map((x) => labRuleJson(x, 'from', ingressPeers)) },
      }));
      const services = r.services.map((s, i) => {
        const ranges = s.ranges.map((x) => labPrefixText(x, ingressPeers).text);
        const meta: Obj = { name: `lab-svc-${i}`, namespace: 'default' };
        const spec: Obj = {
          type: 'LoadBalancer',
          loadBalancerIP: pick(LAB_LB_IPS, s.ip),
          ports: s.ports.map((p) => ({ port: pick(p.protocol === 'UDP' ? LAB_PORTS.udp : LAB_PORTS.tcp, p.port), ...(p.protocol ? { protocol: p.protocol } : {}) })),
        };
        if (ranges.length > 0 && s.annotation) meta.annotations = { 'service.beta.kubernetes.io/load-balancer-source-ranges': ranges.join(',') };
        else if (ranges.length > 0) spec.loadBalancerSourceRanges = ranges;
        const o: Obj = { apiVersion: 'v1', kind: 'Service', metadata: meta, spec };
        if (s.extraIp !== undefined) o.status = { loadBalancer: { ingress: [{ ip: pick(LAB_LB_IPS, s.extraIp) }] } };
        return o;
      });
      return {
        landscape: { firewall: structuredClone(r.forbidden ? firewalls.forbidden : firewalls.baseline), policies, services, state: r.state, mode: r.mode },
        mustReject: { policies: [], services: [] },
      };
    });
}

export interface LabPacket extends RefPacket {
  /** The namespace the probe runs in (the packet's source host). */
  readonly host: LabHost;
}

/** Every packet the lab can send through the firewall: worker ⇄ internet, worker ⇄ services. */
export function labUniverse(): LabPacket[] {
  const out: LabPacket[] = [];
  const fam = (a: string): Fam => parseIp(a)!.fam;
  const add = (host: LabHost, srcs: readonly string[], dsts: readonly string[], fromNode: boolean, toNode: boolean): void => {
    for (const src of srcs) {
      for (const dst of dsts) {
        if (fam(src) !== fam(dst)) continue;
        for (const proto of ['tcp', 'udp'] as const) for (const port of LAB_PORTS[proto]) out.push({ host, src, dst, proto, port, fromNode, toNode });
      }
    }
  };
  for (const far of ['internet', 'services'] as const) {
    add('worker', LAB_ADDRESSES.worker.sources, LAB_ADDRESSES[far].targets, true, false);
    add(far, LAB_ADDRESSES[far].sources, LAB_ADDRESSES.worker.targets, false, true);
  }
  return out;
}

/**
 * `n` lab packets for a landscape: half of them allowed by the reference (when it allows that
 * many), the rest dropped ones, preferring near misses (an allowed packet's addresses, another port).
 */
export function labPackets(ref: Reference, seed: number, n: number): LabPacket[] {
  const rnd = prng(seed);
  const all = labUniverse();
  const allowed = all.filter((p) => ref.allowed(p));
  const dropped = all.filter((p) => !ref.allowed(p));
  const pairs = new Set(allowed.map((p) => `${p.src} ${p.dst}`));
  const near = dropped.filter((p) => pairs.has(`${p.src} ${p.dst}`));
  const take = <T>(xs: T[], k: number): T[] => {
    const pool = [...xs];
    const out: T[] = [];
    while (out.length < k && pool.length > 0) out.push(pool.splice(Math.floor(rnd() * pool.length), 1)[0]!);
    return out;
  };
  const a = take(allowed, Math.ceil(n / 2));
  const nearTaken = take(near, Math.ceil((n - a.length) / 2));
  const rest = take(
    dropped.filter((p) => !nearTaken.includes(p)),
    n - a.length - nearTaken.length,
  );
  return [...a, ...nearTaken, ...rest];
}
