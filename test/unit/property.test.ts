/**
 * Generated landscapes against the reference evaluator (issue #13, point 1; test/reference/).
 *
 * For each generated landscape (seeded: FC_SEED, default below; FC_RUNS cases, FC_PACKETS packets
 * per case): every object is rejected or ignored with a reason, or deployed, and never makes the
 * compiler throw; the outcome of every object is what the reference evaluator decides on its own;
 * no hostile string reaches the rendered text; and for thousands of sampled packets the compiled
 * table (walked by the small interpreter of the nft IR below, not by anything in src/) forwards
 * exactly what the reference evaluator allows. As root (or with user namespaces), a sample of the
 * rendered transactions is checked with `nft -c` in a throw-away network namespace.
 *
 * A counterexample is shrunk by fast-check and printed; with FC_SAVE_CORPUS=1 it is also written to
 * test/reference/corpus/, whose cases are replayed below as regular tests. FC_REPORT=FILE writes
 * the run's figures as JSON (for RELIABILITY.md).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Compiled, compile } from '../../src/compile/compile';
import { classify } from '../../src/model/inventory';
import { renderTransaction } from '../../src/nft/render';
import { NftChain, NftMap, NftMatch, NftSet, NftTable } from '../../src/nft/ruleset';
import { Fam, RawLandscape, RefPacket, Reference, parseCidr, parseIp } from '../reference/evaluator';
import { Generated, HOSTILE_MARKER, landscapes, samplePackets } from '../reference/generate';

const SEED = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : 1306;
const RUNS = Number(process.env.FC_RUNS ?? 200);
const PACKETS = Number(process.env.FC_PACKETS ?? 2000);
/** The property stops (without failing) when this is spent, so a busy machine stays in time. */
const TIME_LIMIT_MS = Number(process.env.FC_TIME_LIMIT_MS ?? 100_000);
const NFT_CHECK_CASES = Number(process.env.FC_NFT_CASES ?? 60);
const CORPUS = path.join(__dirname, '..', 'reference', 'corpus');

// ---------------------------------------------------------------------------------------------
// An interpreter of the compiled IR: the forward chain as the kernel runs it for the first packet
// of a new TCP/UDP connection. It knows nft's semantics, not the compiler's: rules in order, set
// and verdict-map lookups by element intervals, jump/goto/accept/drop, the base chain's policy.

interface IfPacket extends RefPacket {
  readonly iif: string;
  readonly oif: string;
}

type Interval = readonly [bigint, bigint];
type Verdict = 'accept' | 'drop' | 'continue';

const PROTO_NUMBER: Record<string, bigint> = { tcp: 6n, udp: 17n };

function addrInterval(text: string): Interval {
  const c = text.includes('/') ? parseCidr(text) : undefined;
  if (c) return [c.lo, c.hi];
  const dash = text.indexOf('-');
  const [a, b] = dash < 0 ? [parseIp(text), parseIp(text)] : [parseIp(text.slice(0, dash)), parseIp(text.slice(dash + 1))];
  if (!a || !b) throw new Error(`interpreter: bad address element ${JSON.stringify(text)}`);
  return [a.v, b.v];
}

function portInterval(text: string): Interval {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) throw new Error(`interpreter: bad port element ${JSON.stringify(text)}`);
  return [BigInt(m[1]!), BigInt(m[2] ?? m[1]!)];
}

function keyInterval(type: string, text: string): Interval {
  if (type === 'ipv4_addr' || type === 'ipv6_addr') return addrInterval(text);
  if (type === 'inet_service') return portInterval(text);
  if (type === 'inet_proto') {
    const n = PROTO_NUMBER[text];
    if (n === undefined) throw new Error(`interpreter: bad protocol element ${JSON.stringify(text)}`);
    return [n, n];
  }
  throw new Error(`interpreter: unknown key type ${type}`);
}

interface ParsedMap {
  readonly elements: { readonly key: readonly Interval[]; readonly kind: 'jump' | 'goto'; readonly chain: string }[];
}

class IrInterpreter {
  private readonly chains = new Map<string, NftChain>();
  private readonly sets = new Map<string, Interval[]>();
  private readonly maps = new Map<string, ParsedMap>();
  private readonly forward: NftChain;
  /** Lookups where elements with different verdicts matched one packet (the maps must be disjoint). */
  readonly overlaps: string[] = [];

  constructor(table: NftTable) {
    for (const c of table.chains) this.chains.set(c.name, c);
    for (const s of table.sets) this.sets.set(s.name, this.parseSet(s));
    for (const m of table.maps) this.maps.set(m.name, this.parseMap(m));
    const fwd = table.chains.filter((c) => c.base?.hook === 'forward');
    if (fwd.length !== 1) throw new Error(`interpreter: ${fwd.length} forward base chains`);
    this.forward = fwd[0]!;
  }

  private parseSet(s: NftSet): Interval[] {
    // a dynamic set's elements come at run time (FQDN answers): empty here
    if (s.flags.includes('timeout')) return [];
    return s.elements.map((e) => {
      if (e.key.length !== 1) throw new Error(`interpreter: set ${s.name} with a concatenated key`);
      return keyInterval(s.type, e.key[0]!);
    });
  }

  private parseMap(m: NftMap): ParsedMap {
    const types = m.keyType.split(' . ');
    return {
      elements: m.elements.map((e) => {
        if (e.key.length !== types.length) throw new Error(`interpreter: map ${m.name}: element ${e.key.join(' . ')} does not fit ${m.keyType}`);
        if (!e.verdict) throw new Error(`interpreter: map ${m.name}: element without verdict`);
        return { key: e.key.map((k, i) => keyInterval(types[i]!, k)), kind: e.verdict.kind, chain: e.verdict.chain };
      }),
    };
  }

  /** The value of one selector for the packet, or undefined when it does not apply (other family). */
  private selector(expr: string, p: IfPacket, fam: Fam): bigint | undefined {
    const m = /^(ip6?) (saddr|daddr)$/.exec(expr);
    if (m) {
      if ((m[1] === 'ip' ? 4 : 6) !== fam) return undefined;
      return parseIp(m[2] === 'saddr' ? p.src : p.dst)!.v;
    }
    if (expr === 'meta l4proto') return PROTO_NUMBER[p.proto];
    if (expr === 'th dport') return BigInt(p.port);
    throw new Error(`interpreter: unknown selector ${JSON.stringify(expr)}`);
  }

  private matches(m: NftMatch, p: IfPacket, fam: Fam): boolean {
    if (typeof m !== 'string') {
      const v = this.selector(m.expr, p, fam);
      if (v === undefined) return false; // `ip saddr` never matches an IPv6 packet, negated or not
      const set = this.sets.get(m.set);
      if (!set) throw new Error(`interpreter: no set ${m.set}`);
      const hit = set.some(([lo, hi]) => lo <= v && v <= hi);
      return m.negate ? !hit : hit;
    }
    const iface = /^(iifname|oifname) (.+)$/.exec(m);
    if (iface) {
      const names = [...iface[2]!.matchAll(/"([^"]+)"/g)].map((x) => x[1]);
      return names.includes(iface[1] === 'iifname' ? p.iif : p.oif);
    }
    if (/^ct state /.test(m)) return false; // the packet is new: neither established, related nor invalid
    if (/^icmp(v6)? type /.test(m)) return false; // TCP or UDP
    if (/^limit rate over /.test(m)) return false; // one packet never exceeds a rate
    if (/^limit rate \d+\/second$/.test(m)) return true;
    const dport = /^(tcp|udp) dport (\d+)(?:-(\d+))?$/.exec(m);
    if (dport) return p.proto === dport[1] && Number(dport[2]) <= p.port && p.port <= Number(dport[3] ?? dport[2]);
    throw new Error(`interpreter: unknown match ${JSON.stringify(m)}`);
  }

  private run(chain: NftChain, p: IfPacket, fam: Fam, trace: string[], depth: number): Verdict {
    if (depth > 16) throw new Error('interpreter: chains nest too deep');
    for (const rule of chain.rules) {
      if (!rule.match.every((m) => this.matches(m, p, fam))) continue;
      const st = rule.statement;
      if (!st) continue; // a counter
      let target: { kind: 'jump' | 'goto'; chain: string } | undefined;
      switch (st.kind) {
        case 'accept':
        case 'drop':
          trace.push(`${chain.name}: ${st.kind}`);
          return st.kind;
        case 'text':
          if (st.text.startsWith('log ')) continue;
          throw new Error(`interpreter: unknown statement ${JSON.stringify(st.text)} in ${chain.name}`);
        case 'jump':
        case 'goto':
          target = st;
          break;
        case 'vmap': {
          const map = this.maps.get(st.map);
          if (!map) throw new Error(`interpreter: no map ${st.map}`);
          const values = st.expr.split(' . ').map((e) => this.selector(e, p, fam));
          if (values.some((v) => v === undefined)) continue;
          const hits = map.elements.filter((e) => e.key.every(([lo, hi], i) => lo <= values[i]! && values[i]! <= hi));
          if (hits.length === 0) continue;
          if (new Set(hits.map((h) => `${h.kind} ${h.chain}`)).size > 1) this.overlaps.push(`${st.map}: ${hits.map((h) => h.chain).join(', ')}`);
          target = hits[0]!;
          trace.push(`${chain.name}: ${st.map} → ${target.kind} ${target.chain}`);
          break;
        }
      }
      const next = this.chains.get(target.chain);
      if (!next) throw new Error(`interpreter: no chain ${target.chain}`);
      const v = this.run(next, p, fam, trace, depth + 1);
      if (v !== 'continue') return v;
      if (target.kind === 'goto') return 'continue'; // goto: the end of the target ends this chain too
    }
    return 'continue';
  }

  /** Whether the forward chain accepts the packet, and the path it took. */
  verdict(p: IfPacket): { allowed: boolean; trace: string[] } {
    const fam = parseIp(p.src)!.fam;
    const trace: string[] = [];
    const v = this.run(this.forward, p, fam, trace, 0);
    const allowed = v === 'accept' || (v === 'continue' && this.forward.base!.policy === 'accept');
    return { allowed, trace };
  }
}

// ---------------------------------------------------------------------------------------------
// One case

interface CaseResult {
  readonly problems: string[];
  readonly packets: number;
  readonly allowed: number;
  readonly disagreements: RefPacket[];
  readonly outcomes: Record<string, number>;
  readonly nftText?: string;
}

function compileRaw(l: RawLandscape, shardMax?: number): { compiled: Compiled; text: string } {
  const inv = classify([l.firewall, ...l.policies, ...l.services].map((object) => ({ origin: 'property', object })));
  const fw = inv.firewalls[0]?.result;
  if (!fw || !fw.ok) throw new Error(`the generated Firewall is invalid: ${JSON.stringify(fw)}`);
  const compiled = compile({ firewall: fw.firewall, policies: inv.policies, services: inv.services, state: l.state, mode: l.mode, shardMax });
  return { compiled, text: renderTransaction([compiled.table]) };
}

function withInterfaces(p: RefPacket, nodeVrf: number): IfPacket {
  const node = `vlan${nodeVrf}`;
  return { ...p, iif: p.fromNode ? node : 'ext0', oif: p.toNode ? node : 'ext0' };
}

function checkCase(g: Generated, packets: readonly RefPacket[]): CaseResult {
  const problems: string[] = [];
  const outcomes: Record<string, number> = {};
  const l = g.landscape;
  const ref = new Reference(l);
  for (const i of g.mustReject.policies) if (ref.policyOutcomes[i] !== 'rejected') problems.push(`evaluator self-check: policy ${i} must be rejected`);
  for (const i of g.mustReject.services) if (ref.serviceOutcomes[i] !== 'rejected') problems.push(`evaluator self-check: Service ${i} must be rejected`);

  let compiled: Compiled;
  let text: string;
  try {
    ({ compiled, text } = compileRaw(l, g.shardMax));
  } catch (e) {
    return { problems: [...problems, `compile or render threw: ${(e as Error).stack}`], packets: 0, allowed: 0, disagreements: [], outcomes };
  }

  // Every object: rejected or ignored with a reason, or deployed; as the reference decides.
  const polReports = compiled.reports.filter((r) => r.kind === 'ClusterwideNetworkPolicy');
  const svcReports = compiled.reports.filter((r) => r.kind === 'Service');
  for (const r of compiled.reports) {
    outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
    if (r.outcome !== 'deployed' && !(r.reason && r.reason.trim().length > 0)) problems.push(`${r.kind} ${r.ref.namespace}/${r.ref.name} is ${r.outcome} without a reason`);
  }
  if (l.state === 'connected') {
    const expectedPol = ref.policyOutcomes;
    if (polReports.length !== expectedPol.length) problems.push(`${polReports.length} policy reports for ${expectedPol.length} policies`);
    polReports.forEach((r, i) => {
      if (r.outcome !== expectedPol[i]) {
        problems.push(`policy ${i} (${r.ref.namespace}/${r.ref.name}): compiler says ${r.outcome} (${r.reason ?? ''}), reference says ${expectedPol[i]}`);
      }
    });
    const expectedSvc = ref.serviceOutcomes.filter((o) => o !== 'none');
    const actualSvc = svcReports.map((r) => r.outcome);
    if (JSON.stringify(expectedSvc) !== JSON.stringify(actualSvc)) {
      problems.push(
        `Service outcomes: compiler says ${JSON.stringify(svcReports.map((r) => [`${r.ref.namespace}/${r.ref.name}`, r.outcome, r.reason]))}, reference says ${JSON.stringify(ref.serviceOutcomes)}`,
      );
    }
  } else if (compiled.reports.length > 0) {
    problems.push('the disconnected ruleset reports objects');
  }

  if (text.toLowerCase().includes(HOSTILE_MARKER)) problems.push('a hostile input string reached the rendered transaction');

  // The packets.
  let interp: IrInterpreter;
  try {
    interp = new IrInterpreter(compiled.table);
  } catch (e) {
    return { problems: [...problems, (e as Error).message], packets: 0, allowed: 0, disagreements: [], outcomes, nftText: text };
  }
  const disagreements: RefPacket[] = [];
  let allowed = 0;
  for (const p of packets) {
    const want = ref.allowed(p);
    let got: { allowed: boolean; trace: string[] };
    try {
      got = interp.verdict(withInterfaces(p, ref.firewall.nodeVrf));
    } catch (e) {
      problems.push((e as Error).message);
      break;
    }
    if (want) allowed++;
    if (got.allowed !== want) {
      if (disagreements.length < 5) {
        problems.push(
          `${p.src} → ${p.dst} ${p.port}/${p.proto} (${p.fromNode ? 'from' : 'not from'} node, ${p.toNode ? 'to' : 'not to'} node): ` +
            `compiled ${got.allowed ? 'allows' : 'drops'} [${got.trace.join('; ')}], reference ${want ? `allows [${ref.why(p).join(', ')}]` : 'drops'}`,
        );
      }
      disagreements.push(p);
    }
  }
  if (interp.overlaps.length > 0) problems.push(`overlapping map elements with different verdicts: ${[...new Set(interp.overlaps)].slice(0, 3).join('; ')}`);
  return { problems, packets: packets.length, allowed, disagreements, outcomes, nftText: text };
}

// ---------------------------------------------------------------------------------------------
// Corpus and figures

interface CorpusCase {
  readonly description: string;
  /** A compiler bug this case shows (the replay is then expected to fail until it is fixed). */
  readonly knownBug?: string;
  readonly seed?: number;
  readonly landscape: RawLandscape;
  readonly mustReject?: Generated['mustReject'];
  readonly shardMax?: number;
  /** The packets that disagreed when the case was found; replayed along with fresh samples. */
  readonly packets: RefPacket[];
}

function saveCounterexample(g: Generated, pktSeed: number, r: CaseResult): string | undefined {
  if (process.env.FC_SAVE_CORPUS !== '1') return undefined;
  const body: CorpusCase = {
    description: `found by test/unit/property.test.ts (FC_SEED=${SEED}): ${r.problems[0]?.slice(0, 300) ?? ''}`,
    seed: pktSeed,
    landscape: g.landscape,
    mustReject: g.mustReject,
    shardMax: g.shardMax,
    packets: r.disagreements.slice(0, 20),
  };
  const text = `${JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
  const file = path.join(CORPUS, `found-${createHash('sha256').update(text).digest('hex').slice(0, 10)}.json`);
  writeFileSync(file, text);
  return file;
}

const figures = { cases: 0, packets: 0, allowed: 0, disagreements: 0, failingCases: 0, outcomes: {} as Record<string, number>, ms: 0, nftChecked: 0, nftMs: 0 };

afterAll(() => {
  const line = `property: ${figures.cases} cases, ${figures.packets} packets compared (${figures.allowed} allowed), ${figures.disagreements} disagreements in ${figures.failingCases} cases, outcomes ${JSON.stringify(figures.outcomes)}, ${figures.ms} ms; nft -c: ${figures.nftChecked} transactions, ${figures.nftMs} ms (FC_SEED=${SEED})`;
  process.stdout.write(`${line}\n`);
  if (process.env.FC_REPORT) writeFileSync(process.env.FC_REPORT, `${JSON.stringify({ seed: SEED, runs: RUNS, packetsPerCase: PACKETS, ...figures }, null, 2)}\n`);
});

// ---------------------------------------------------------------------------------------------
// The tests

test('the interpreter reads the compiled IR as nft would (a hand-made landscape)', () => {
  const l: RawLandscape = {
    firewall: {
      apiVersion: 'firewall.metal-stack.io/v2',
      kind: 'Firewall',
      metadata: { name: 'fw', namespace: 'x' },
      spec: {},
      status: { firewallNetworks: [{ networkID: 'node', networkType: 'privateprimaryunshared', vrf: 3981, prefixes: ['10.0.0.0/24', '2001:db8:1::/64'] }] },
    },
    policies: [
      {
        apiVersion: 'metal-stack.io/v1',
        kind: 'ClusterwideNetworkPolicy',
        metadata: { name: 'a', namespace: 'firewall' },
        spec: { egress: [{ to: [{ cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] }], ports: [{ port: 8000, endPort: 8010 }] }] },
      },
    ],
    services: [],
    state: 'connected',
  };
  const ref = new Reference(l);
  const interp = new IrInterpreter(compileRaw(l).compiled.table);
  const pkt = (dst: string, port: number): RefPacket => ({ src: '10.0.0.5', dst, proto: 'tcp', port, fromNode: true, toNode: false });
  const cases: [RefPacket, boolean][] = [
    [pkt('203.0.113.127', 8000), true],
    [pkt('203.0.113.127', 8010), true],
    [pkt('203.0.113.127', 8011), false],
    [pkt('203.0.113.128', 8005), false],
    [pkt('203.0.112.255', 8005), false],
    [{ ...pkt('203.0.113.1', 8005), proto: 'udp' }, false],
    [{ ...pkt('203.0.113.1', 8005), src: '10.0.1.5' }, false],
  ];
  for (const [p, want] of cases) {
    expect({ p, ref: ref.allowed(p) }).toEqual({ p, ref: want });
    expect({ p, ir: interp.verdict(withInterfaces(p, 3981)).allowed }).toEqual({ p, ir: want });
  }
});

test(`generated landscapes: compiled ⇔ reference (${RUNS} cases × ${PACKETS} packets, FC_SEED=${SEED})`, () => {
  const start = Date.now();
  let failure: { g: Generated; seed: number; r: CaseResult } | undefined;
  const details = fc.check(
    fc.property(landscapes(), fc.integer({ min: 0, max: 0x7fffffff }), (g, pktSeed) => {
      const t0 = Date.now();
      const ref = new Reference(g.landscape);
      const pk = samplePackets(g.landscape, ref, pktSeed, PACKETS);
      const t1 = Date.now();
      const r = checkCase(g, pk);
      if (process.env.FC_DEBUG) process.stdout.write(`case ${figures.cases}: pol ${g.landscape.policies.length} svc ${g.landscape.services.length} sample ${t1 - t0} ms check ${Date.now() - t1} ms text ${r.nftText?.length}\n`);
      if (!failure) {
        figures.cases++;
        figures.packets += r.packets;
        figures.allowed += r.allowed;
        figures.disagreements += r.disagreements.length;
        if (r.problems.length > 0) figures.failingCases++;
        for (const [k, n] of Object.entries(r.outcomes)) figures.outcomes[k] = (figures.outcomes[k] ?? 0) + n;
      }
      if (r.problems.length > 0) {
        failure = { g, seed: pktSeed, r }; // the last one is the shrunk one
        return false;
      }
      return true;
    }),
    { seed: SEED, numRuns: RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false, endOnFailure: process.env.FC_NO_SHRINK === '1' },
  );
  figures.ms += Date.now() - start;
  if (details.failed && failure) {
    const saved = saveCounterexample(failure.g, failure.seed, failure.r);
    throw new Error(
      `counterexample after ${details.numShrinks} shrinks (FC_SEED=${SEED}, path ${details.counterexamplePath}):\n` +
        `${failure.r.problems.slice(0, 8).join('\n')}\n` +
        (saved ? `saved to ${saved}\n` : 'set FC_SAVE_CORPUS=1 to save it to test/reference/corpus\n') +
        `landscape: ${JSON.stringify(failure.g.landscape).slice(0, 4000)}`,
    );
  }
  expect(details.failed).toBe(false);
  expect(figures.cases).toBeGreaterThan(0);
  // the sample must exercise both answers, or the comparison says little
  expect(figures.allowed).toBeGreaterThan(figures.packets / 50);
  expect(figures.allowed).toBeLessThan(figures.packets);
}, TIME_LIMIT_MS + 120_000);

/** Whether `nft -c` can run here: as root in a new network namespace, else in a user namespace. */
function nftPrefix(): string[] | undefined {
  const candidates = process.getuid?.() === 0 ? [['unshare', '--net', '--'], ['unshare', '--map-root-user', '--net', '--']] : [['unshare', '--map-root-user', '--net', '--']];
  for (const c of candidates) {
    const r = spawnSync(c[0]!, [...c.slice(1), 'nft', '--version'], { encoding: 'utf8' });
    if (r.status === 0) return c;
  }
  return undefined;
}

const NFT = nftPrefix();
(NFT ? test : test.skip)(`every rendered transaction passes nft -c (${NFT_CHECK_CASES} generated cases, one namespace)`, () => {
  const start = Date.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fwa-property-'));
  try {
    const samples = fc.sample(landscapes(), { seed: SEED + 1, numRuns: NFT_CHECK_CASES });
    const files = samples.map((g, i) => {
      const f = path.join(dir, `case-${i}.nft`);
      writeFileSync(f, compileRaw(g.landscape, g.shardMax).text);
      return f;
    });
    // one process for all cases: each nft -c against the same empty namespace
    const script = 'for f in "$@"; do nft -c -f "$f" >/dev/null 2>"$f.err" || echo "$f"; done';
    const r = spawnSync(NFT![0]!, [...NFT!.slice(1), 'sh', '-c', script, 'sh', ...files], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(0);
    const failed = r.stdout.split('\n').filter((x) => x !== '');
    const errors = failed.map((f) => `${path.basename(f)}: ${readFileSync(`${f}.err`, 'utf8').split('\n').slice(0, 3).join(' ')}`);
    expect(errors).toEqual([]);
    figures.nftChecked += files.length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    figures.nftMs += Date.now() - start;
  }
}, 180_000);

const corpus = existsSync(CORPUS) ? readdirSync(CORPUS).filter((f) => f.endsWith('.json')).sort() : [];

describe('corpus (test/reference/corpus): shrunk counterexamples replayed', () => {
  for (const file of corpus) {
    const c = JSON.parse(readFileSync(path.join(CORPUS, file), 'utf8')) as CorpusCase;
    const run = (): void => {
      const g: Generated = { landscape: c.landscape, mustReject: c.mustReject ?? { policies: [], services: [] }, shardMax: c.shardMax };
      const ref = new Reference(c.landscape);
      const r = checkCase(g, [...c.packets, ...samplePackets(c.landscape, ref, c.seed ?? 1, 500)]);
      expect(r.problems).toEqual([]);
    };
    if (c.knownBug) test.failing(`${file}: known compiler bug: ${c.knownBug}`, run);
    else test(`${file}: ${c.description.slice(0, 120)}`, run);
  }
  test('the corpus directory exists', () => {
    expect(existsSync(CORPUS)).toBe(true);
  });
});

