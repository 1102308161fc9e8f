/**
 * Migration preflight: what firewall-agent would make of the objects a cluster holds today, next
 * to what the upstream firewall-controller makes of them. Pure: raw objects in, findings out; the
 * command (commands/preflight.ts) reads the clusters or files and prints.
 *
 * Per object: rejected / ignored (the compiler's own reports, with its reasons) and every place
 * where the same object means something else here than upstream (docs/README "What gets
 * enforced"; upstream semantics from the firewall-controller's renderer): empty `ports`, empty
 * `to`, `except` pooled across blocks, ingress without destination, `matchPattern` stars crossing
 * dots, mixed-case `matchName`, protocols other than TCP/UDP, bad `endPort`, a port entry without
 * port, `to` with `toFQDNs`, IPv6, Service source ranges and forbidden-mode filtering.
 */
import { Compiled, ObjectReport, compile } from './compile/compile';
import { allowedSets, filterServiceIps } from './compile/forbidden';
import { Mode, resolveMode } from './compile/mode';
import { policyReports, serviceReports } from './compile/reports';
import { canonicalName, selectorMatcher } from './dns/selector';
import { buildInput } from './landscape';
import { Family, IpAddress, Prefix, formatAddress, formatPrefix, formatRange, hostPrefix, parsePrefix, prefixRange } from './model/address';
import { POLICY_NAMESPACE, parseFqdn } from './model/cwnp';
import { Obj } from './model/fields';
import { FirewallConfig } from './model/firewall';
import { ObjectRef, displayName, formatRef } from './model/names';
import { parseProtocol } from './model/ports';
import { RangeSet, covers, fromPrefixes, normalize, subtract } from './model/rangeset';
import { SOURCE_RANGES_ANNOTATION, ServiceResult } from './model/service';
import { Snapshot, SnapshotObject } from './sources/source';

export type Verdict = 'rejected' | 'ignored' | 'differs' | 'unchanged';

export type DifferenceCode =
  | 'ports-empty'
  | 'to-empty'
  | 'except-pooled'
  | 'ingress-destination'
  | 'pattern-crosses-dots'
  | 'match-name-case'
  | 'protocol'
  | 'end-port'
  | 'port-missing'
  | 'to-and-fqdns'
  | 'ipv6'
  | 'forbidden'
  | 'fqdn-forbidden'
  | 'source-ranges-annotation'
  | 'no-destination'
  | 'load-balancer-ips';

/** One place where the object means something else here than upstream. */
export interface Difference {
  readonly code: DifferenceCode;
  /** Field path as in the compiler's messages (`egress[0].ports`), '' for the whole object. */
  readonly path: string;
  /** What the input says there, e.g. `is missing`; may be empty. */
  readonly input: string;
  readonly upstream: string;
  readonly here: string;
}

export interface ObjectFindings {
  readonly kind: 'ClusterwideNetworkPolicy' | 'Service';
  readonly ref: ObjectRef;
  readonly origin: string;
  readonly verdict: Verdict;
  /** Why it is rejected or ignored (the compiler's reason). */
  readonly reason?: string;
  /** For ignored objects: whether upstream ignored it too. */
  readonly upstreamIgnores?: boolean;
  readonly differences: readonly Difference[];
  readonly warnings: readonly string[];
  readonly unenforced: readonly string[];
}

export interface PreflightCounts {
  /** Policies plus the Services that get a rule here or upstream (LoadBalancer, NodePort with source ranges). */
  readonly read: number;
  readonly rejected: number;
  readonly ignored: number;
  readonly differ: number;
  readonly unchanged: number;
  /** Services that get no rule either way (ClusterIP, ExternalName, NodePort without source ranges). */
  readonly otherServices: number;
}

export interface PreflightReport {
  readonly firewall: string | undefined;
  readonly mode: Mode | undefined;
  readonly objects: readonly ObjectFindings[];
  /** About the input rather than one object (skipped kinds, Firewall warnings, checks not made). */
  readonly notes: readonly string[];
  readonly counts: PreflightCounts;
}

export type PreflightResult = { readonly ok: true; readonly report: PreflightReport } | { readonly ok: false; readonly message: string };

/** 0 nothing to do before migrating, 1 something is rejected, ignored or means something else. */
export function preflightExitCode(r: PreflightReport): 0 | 1 {
  return r.counts.rejected + r.counts.ignored + r.counts.differ > 0 ? 1 : 0;
}

export const NO_FIREWALL_NOTE =
  'no Firewall given (--seed-kubeconfig with --firewall-name, or a Firewall among the files): compiled without one; ' +
  'not checked: forbidden mode (policies and load balancer IPs outside spec.allowedNetworks, toFQDNs answers) and the egress source (node network vs upstream 10.0.0.0/8)';

// ---------------------------------------------------------------------------------------------
// Raw-object helpers: the differences are read from the objects as written (the parsed model
// normalises exactly what we need to compare, e.g. the case of names), and must cope with
// objects the parser rejects.

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function missingOrEmpty(v: unknown): string {
  return present(v) ? 'is empty' : 'is missing';
}

function show(v: unknown): string {
  const s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

function prefixOf(v: unknown): Prefix | undefined {
  const p = parsePrefix(v);
  return p.ok ? p.value : undefined;
}

function rangesText(s: RangeSet): string {
  return s.map(formatRange).join(', ');
}

function intersect(a: RangeSet, b: RangeSet): RangeSet {
  return subtract(a, subtract(a, b));
}

// ---------------------------------------------------------------------------------------------
// Upstream's FQDN matching (firewall-controller FQDNSelector.GetRegex): `*` becomes
// `[-a-zA-Z0-9_.]*`, so it crosses dots; a bare `*` matches every name.

const UPSTREAM_DNS_CHARS = '[-a-zA-Z0-9_.]';

export function upstreamPatternMatches(pattern: string, name: string): boolean {
  let re: string;
  if (pattern === '*') {
    re = `(^(${UPSTREAM_DNS_CHARS}+[.])+$)|(^[.]$)`;
  } else {
    let p = pattern.trim().toLowerCase();
    if (!p.endsWith('.')) p += '.';
    re = `^${p.replace(/\./g, '[.]').replace(/\*/g, `${UPSTREAM_DNS_CHARS}*`)}$`;
  }
  const fqdn = name.endsWith('.') ? name : `${name}.`;
  return new RegExp(re).test(fqdn.toLowerCase());
}

/** A name upstream's pattern matched and ours does not (a star spanning two labels), if any. */
export function lostPatternMatch(pattern: string): string | undefined {
  const parsed = parseFqdn(pattern, true);
  if (!parsed.ok || !pattern.includes('*')) return undefined;
  let first = true;
  const example = canonicalName(
    parsed.value.replace(/\*/g, () => {
      const s = first ? 'a.b' : 'a';
      first = false;
      return s;
    }),
  );
  const ours = selectorMatcher({ kind: 'matchPattern', value: parsed.value });
  return upstreamPatternMatches(parsed.value, example) && !ours(example) ? example : undefined;
}

// ---------------------------------------------------------------------------------------------
// Policies

interface Context {
  readonly firewall: FirewallConfig | undefined;
  readonly mode: Mode | undefined;
}

function portFindings(ports: unknown[], path: string, out: Difference[]): void {
  ports.forEach((p, i) => {
    const o = obj(p);
    if (!o) return;
    const pPath = `${path}[${i}]`;
    const proto = parseProtocol(o.protocol);
    if (!proto.ok) {
      out.push({
        code: 'protocol',
        path: `${pPath}.protocol`,
        input: show(o.protocol),
        upstream: 'treated as TCP (anything but UDP meant TCP)',
        here: 'not supported (TCP or UDP): the policy is rejected',
      });
    }
    const protoName = proto.ok ? proto.value.toUpperCase() : 'TCP';
    if (!present(o.port)) {
      out.push({
        code: 'port-missing',
        path: `${pPath}.port`,
        input: 'is missing',
        upstream: 'invalid (a port between 1 and 65535 is required): the whole policy was skipped',
        here: present(o.endPort) ? 'endPort needs port: the policy is rejected' : `every ${protoName} port (as in Kubernetes)`,
      });
      return;
    }
    const port = o.port;
    const end = o.endPort;
    if (typeof port === 'number' && typeof end === 'number' && (end < port || end > 65535)) {
      out.push({
        code: 'end-port',
        path: `${pPath}.endPort`,
        input: end < port ? `${end} is below port ${port}` : `${end} is above 65535`,
        upstream: 'not checked: nft refused the whole ruleset, so no policy change was applied any more',
        here: 'the policy is rejected; the others are unaffected',
      });
    }
  });
}

function peerFindings(blocks: unknown[], path: string, direction: 'egress' | 'ingress', out: Difference[]): void {
  const parsed = blocks.map((b) => {
    const o = obj(b);
    const cidr = prefixOf(o?.cidr);
    const except = arr(o?.except).map((e) => ({ raw: e, prefix: prefixOf(e) }));
    return { cidr, except };
  });
  const v6 = parsed.map((b, j) => ({ b, j })).filter(({ b }) => b.cidr?.family === 6);
  for (const { b, j } of v6) {
    out.push({
      code: 'ipv6',
      path: `${path}[${j}].cidr`,
      input: formatPrefix(b.cidr!),
      upstream: 'rules were rendered for IPv4 only',
      here: `enforced for IPv6 ${direction === 'egress' ? 'destinations' : 'sources'}`,
    });
  }
  if (parsed.length < 2) return;
  // Upstream: `saddr/daddr != { every except of every block }` on the whole rule.
  parsed.forEach((bi, i) => {
    bi.except.forEach((e, k) => {
      if (!e.prefix) return;
      const cut = fromPrefixes([e.prefix], e.prefix.family);
      const reopened: string[] = [];
      parsed.forEach((bj, j) => {
        if (j === i || !bj.cidr || bj.cidr.family !== e.prefix!.family) return;
        const fam = bj.cidr.family;
        const own = subtract(fromPrefixes([bj.cidr], fam), fromPrefixes(bj.except.flatMap((x) => (x.prefix ? [x.prefix] : [])), fam));
        const lost = intersect(own, cut);
        if (lost.length > 0) reopened.push(`${rangesText(lost)} through ${path.split('.').pop()}[${j}] ${formatPrefix(bj.cidr)}`);
      });
      if (reopened.length === 0) return;
      out.push({
        code: 'except-pooled',
        path: `${path}[${i}].except[${k}]`,
        input: formatPrefix(e.prefix),
        upstream: `pooled with the rule's other excepts and cut out of every block`,
        here: `cut out of ${path.split('.').pop()}[${i}] only: ${reopened.join('; ')} stays open`,
      });
    });
  });
}

function fqdnFindings(selectors: unknown[], path: string, out: Difference[]): void {
  selectors.forEach((s, i) => {
    const o = obj(s);
    if (!o) return;
    const sPath = `${path}[${i}]`;
    if (typeof o.matchName === 'string' && /[A-Z]/.test(o.matchName) && parseFqdn(o.matchName, false).ok) {
      out.push({
        code: 'match-name-case',
        path: `${sPath}.matchName`,
        input: show(o.matchName),
        upstream: 'compared case-sensitively with lower-case answers: never matched, this selector opened nothing',
        here: `matches ${canonicalName(o.matchName)} in any case`,
      });
    }
    if (typeof o.matchPattern === 'string' && !present(o.matchName)) {
      const lost = lostPatternMatch(o.matchPattern);
      if (lost) {
        out.push({
          code: 'pattern-crosses-dots',
          path: `${sPath}.matchPattern`,
          input: show(o.matchPattern),
          upstream: `* also crossed dots (matched e.g. ${lost})`,
          here: `* matches within one label: ${lost} and other names with more labels no longer match`,
        });
      }
    }
  });
}

/** Upstream's forbidden-mode check (allowedCWNPs): every to[].cidr / from[].cidr inside allowedNetworks. */
function upstreamForbiddenReason(spec: Obj | undefined, fw: FirewallConfig): string | undefined {
  const allowed = fw.allowedNetworks;
  if (!allowed) return undefined;
  const sets = (list: readonly Prefix[]): Record<Family, RangeSet> => ({ 4: fromPrefixes(list, 4), 6: fromPrefixes(list, 6) });
  const check = (rules: unknown[], field: 'to' | 'from', dir: 'egress' | 'ingress', set: Record<Family, RangeSet>): string | undefined => {
    for (const [i, rule] of rules.entries()) {
      for (const [j, b] of arr(obj(rule)?.[field]).entries()) {
        const p = prefixOf(obj(b)?.cidr);
        if (p && !covers(set[p.family], prefixRange(p))) return `${dir}[${i}].${field}[${j}].cidr ${formatPrefix(p)} is outside allowedNetworks.${dir}`;
      }
    }
    return undefined;
  };
  return check(arr(spec?.egress), 'to', 'egress', sets(allowed.egress)) ?? check(arr(spec?.ingress), 'from', 'ingress', sets(allowed.ingress));
}

function policyDifferences(raw: Obj, report: ObjectReport, ctx: Context): { differences: Difference[]; upstreamIgnores?: boolean } {
  const out: Difference[] = [];
  const spec = obj(raw.spec);
  const forbidden = ctx.mode === 'forbidden' && ctx.firewall ? ctx.firewall : undefined;
  arr(spec?.egress).forEach((rule, i) => {
    const path = `egress[${i}]`;
    const o = obj(rule) ?? {};
    const to = arr(o.to);
    const fqdns = arr(o.toFQDNs);
    const ports = arr(o.ports);
    const fqdnField = present(o.toFQDNs);
    if (to.length > 0 && fqdns.length > 0) {
      out.push({
        code: 'to-and-fqdns',
        path,
        input: 'sets both to and toFQDNs',
        upstream: 'to was used and toFQDNs silently ignored',
        here: 'a rule takes one of them: the policy is rejected',
      });
    }
    // What this rule opens here when valid: `to`, the FQDN answers, or (neither) everything.
    const opens = to.length > 0 || fqdns.length > 0 || !fqdnField;
    if (to.length === 0 && !fqdnField) {
      out.push({
        code: 'to-empty',
        path: `${path}.to`,
        input: missingOrEmpty(o.to),
        upstream: 'this rule opened nothing',
        here: `every destination (IPv4 and IPv6)${ports.length === 0 ? ', every port and protocol' : ''}`,
      });
    }
    if (ports.length === 0 && opens) {
      out.push({
        code: 'ports-empty',
        path: `${path}.ports`,
        input: missingOrEmpty(o.ports),
        upstream: 'this rule opened nothing',
        here: `every port and protocol ${to.length > 0 ? 'to its destinations' : fqdns.length > 0 ? 'to the addresses its names resolve to' : 'to every destination'}`,
      });
    }
    portFindings(ports, `${path}.ports`, out);
    peerFindings(to, `${path}.to`, 'egress', out);
    if (to.length === 0) {
      fqdnFindings(fqdns, `${path}.toFQDNs`, out);
      if (forbidden && fqdns.length > 0 && report.outcome === 'deployed') {
        out.push({
          code: 'fqdn-forbidden',
          path: `${path}.toFQDNs`,
          input: '',
          upstream: 'not checked against allowedNetworks: every address the names resolved to was opened',
          here: 'only resolved addresses inside allowedNetworks.egress (or the node network) are opened',
        });
      }
    }
  });
  arr(spec?.ingress).forEach((rule, i) => {
    const path = `ingress[${i}]`;
    const o = obj(rule) ?? {};
    const from = arr(o.from);
    const ports = arr(o.ports);
    if (ports.length === 0) {
      out.push({
        code: 'ports-empty',
        path: `${path}.ports`,
        input: missingOrEmpty(o.ports),
        upstream: 'this rule opened nothing',
        here: `every port and protocol from ${from.length > 0 ? 'its sources' : 'every source'}, towards the node network`,
      });
    } else {
      out.push({
        code: 'ingress-destination',
        path,
        input: '',
        upstream: 'accepted matching traffic to any destination, in either direction',
        here: 'only traffic leaving towards the node network',
      });
    }
    portFindings(ports, `${path}.ports`, out);
    peerFindings(from, `${path}.from`, 'ingress', out);
  });

  let upstreamIgnores: boolean | undefined;
  if (forbidden && report.outcome !== 'rejected') {
    const upstreamWhy = upstreamForbiddenReason(spec, forbidden);
    upstreamIgnores = upstreamWhy !== undefined;
    if (report.outcome === 'ignored' && report.forbidden && !upstreamWhy) {
      out.push({
        code: 'forbidden',
        path: '',
        input: '',
        upstream: 'deployed (its check looked only at the prefixes listed in to/from)',
        here: 'ignored as a whole',
      });
    } else if (report.outcome === 'deployed' && upstreamWhy) {
      out.push({
        code: 'forbidden',
        path: '',
        input: '',
        upstream: `ignored (${upstreamWhy})`,
        here: 'deployed (the node network is always allowed)',
      });
    }
  }
  // An ignored policy opens nothing here: only why upstream decided otherwise matters.
  return { differences: report.outcome === 'ignored' ? out.filter((d) => d.code === 'forbidden') : out, upstreamIgnores };
}

// ---------------------------------------------------------------------------------------------
// Services

function servicePorts(spec: Obj | undefined): string[] {
  const out: string[] = [];
  for (const p of arr(spec?.ports)) {
    const o = obj(p);
    if (!o || typeof o.port !== 'number') continue;
    // Upstream lower-cases the protocol and keeps tcp and udp (the API server defaults it to TCP).
    const proto = typeof o.protocol === 'string' ? o.protocol.toLowerCase() : 'tcp';
    if (proto === 'tcp' || proto === 'udp') out.push(`${o.port}/${proto}`);
  }
  return out;
}

function ipsText(ips: readonly IpAddress[]): string {
  return ips.length === 0 ? 'no IP' : ips.map(formatAddress).join(', ');
}

function serviceDifferences(raw: Obj, res: ServiceResult, ctx: Context): Difference[] {
  const out: Difference[] = [];
  const spec = obj(raw.spec);
  const type = spec?.type;
  const ranges = arr(spec?.loadBalancerSourceRanges).filter((r): r is string => typeof r === 'string');
  const ports = servicePorts(spec);
  if (type === 'NodePort') {
    if (ranges.length > 0 && ports.length > 0) {
      out.push({
        code: 'no-destination',
        path: 'spec.loadBalancerSourceRanges',
        input: `on a NodePort Service`,
        upstream: `accepted ${ranges.join(', ')} to any destination on ${ports.join(', ')}`,
        here: 'no rule (only LoadBalancer Services get rules)',
      });
    }
    return out;
  }
  if (type !== 'LoadBalancer' || !res.ok || !res.service) return out;
  const svc = res.service;
  if (ranges.length === 0 && svc.sourceRanges.length > 0) {
    out.push({
      code: 'source-ranges-annotation',
      path: `metadata.annotations[${SOURCE_RANGES_ANNOTATION}]`,
      input: '',
      upstream: 'the annotation was not read: open to every source',
      here: `only from ${svc.sourceRanges.map(formatPrefix).join(', ')}`,
    });
  }
  for (const [j, p] of svc.sourceRanges.entries()) {
    if (p.family === 6 && ranges.length > 0) {
      out.push({
        code: 'ipv6',
        path: `spec.loadBalancerSourceRanges[${j}]`,
        input: formatPrefix(p),
        upstream: 'rules were rendered for IPv4 only',
        here: 'enforced for IPv6 sources',
      });
    }
  }
  for (const ip of svc.ips.filter((a) => a.family === 6)) {
    out.push({ code: 'ipv6', path: '', input: `load balancer IP ${formatAddress(ip)}`, upstream: 'rules were rendered for IPv4 only', here: 'enforced for IPv6' });
  }
  if (ports.length === 0) return out;
  // Upstream's destinations: the IPs, filtered by allowedNetworks.ingress (only when that list is
  // non-empty, and without the node network); all filtered away with source ranges left = no destination.
  let upstreamIps = svc.ips;
  let hereIps = svc.ips;
  const fw = ctx.mode === 'forbidden' ? ctx.firewall : undefined;
  if (fw) {
    const ingress = fw.allowedNetworks?.ingress ?? [];
    if (ingress.length > 0) upstreamIps = svc.ips.filter((a) => covers(fromPrefixes(ingress, a.family), prefixRange(hostPrefix(a))));
    hereIps = filterServiceIps(svc, allowedSets(fw)).inside;
  }
  if (upstreamIps.length === 0 && ranges.length > 0) {
    out.push({
      code: 'no-destination',
      path: '',
      input: svc.ips.length === 0 ? 'has no load balancer IP' : `has no load balancer IP inside allowedNetworks.ingress`,
      upstream: `the rule lost its destination: accepted ${ranges.join(', ')} to any destination on ${ports.join(', ')}`,
      here: hereIps.length === 0 ? 'no rule' : `only to ${ipsText(hereIps)}`,
    });
  } else if (fw && ipsText(upstreamIps) !== ipsText(hereIps)) {
    const why = (fw.allowedNetworks?.ingress ?? []).length === 0 ? 'allowedNetworks.ingress is empty, so upstream did not filter' : 'the node network is always allowed here';
    out.push({
      code: 'load-balancer-ips',
      path: '',
      input: `load balancer IPs ${ipsText(svc.ips)} (${why})`,
      upstream: upstreamIps.length === 0 ? 'no rule' : `rule for ${ipsText(upstreamIps)}`,
      here: hereIps.length === 0 ? 'no rule' : `rule for ${ipsText(hereIps)}`,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/** A Firewall for reports without one: baseline mode never reads it. */
const NO_FIREWALL: FirewallConfig = {
  ref: { namespace: '-', name: '-' },
  networks: [],
  nodeNetwork: { id: '-', type: '-', role: 'node', vrf: undefined, prefixes: [], ips: [], nat: false, destinationPrefixes: [] },
  allowedNetworks: undefined,
  egressRules: [],
  rateLimits: [],
  internalPrefixes: [],
  logAcceptedConnections: false,
  intervalMs: 10_000,
  dryRun: false,
  dnsServer: undefined,
  dnsPort: 53,
  warnings: [],
};

const UPSTREAM_CLUSTER_PREFIX = '10.0.0.0/8';

function egressSourceNote(fw: FirewallConfig): string | undefined {
  const v4 = normalize(fw.nodeNetwork.prefixes.filter((p) => p.family === 4).map(prefixRange));
  if (rangesText(v4) === UPSTREAM_CLUSTER_PREFIX) return undefined;
  return (
    `egress source: upstream accepted egress from ${UPSTREAM_CLUSTER_PREFIX} (hard-coded); firewall-agent from the node network ` +
    `${fw.nodeNetwork.prefixes.map(formatPrefix).join(', ')} only`
  );
}

/** The analysis: the snapshot's objects (raw), compiled as the daemon would, compared with upstream. */
export function preflight(snapshot: Snapshot, opts: { mode?: Mode } = {}): PreflightResult {
  const built = buildInput(snapshot, { state: snapshot.firewalls.length > 0 ? 'connected' : 'disconnected', mode: opts.mode });
  if (!built.ok) return { ok: false, message: built.message };
  const notes = [...built.notes];
  const fw = built.firewall;
  let reports: readonly ObjectReport[];
  let mode: Mode | undefined;
  if (fw) {
    const compiled: Compiled = compile(built.input);
    reports = compiled.reports;
    mode = resolveMode(opts.mode, fw);
    notes.push(`firewall ${formatRef(fw.ref)}: mode ${mode}`);
    const src = egressSourceNote(fw);
    if (src) notes.push(src);
  } else {
    reports = [...policyReports(built.input.policies, 'baseline', NO_FIREWALL).reports, ...serviceReports(built.input.services, 'baseline', NO_FIREWALL).reports];
    notes.push(NO_FIREWALL_NOTE);
  }
  const ctx: Context = { firewall: fw, mode: fw ? mode : undefined };
  const policyCount = built.input.policies.length;
  const policyReps = reports.slice(0, policyCount);
  const serviceReps = reports.slice(policyCount);

  const objects: ObjectFindings[] = [];
  snapshot.policies.forEach((o: SnapshotObject, i) => {
    const report = policyReps[i]!;
    const inScope = report.ref.namespace === POLICY_NAMESPACE;
    const namespaceIgnored = report.outcome === 'ignored' && !report.forbidden;
    const { differences, upstreamIgnores } = inScope && !namespaceIgnored ? policyDifferences(o.object, report, ctx) : { differences: [], upstreamIgnores: undefined };
    objects.push(findings('ClusterwideNetworkPolicy', o, report, differences, namespaceIgnored ? true : upstreamIgnores));
  });

  let k = 0;
  let otherServices = 0;
  snapshot.services.forEach((o, i) => {
    const res = built.input.services[i]!;
    // serviceReports has one report per rejected or LoadBalancer Service, in input order.
    const report = !res.ok || res.service ? serviceReps[k++] : undefined;
    const differences = serviceDifferences(o.object, res, ctx);
    if (!report && differences.length === 0) {
      otherServices++;
      return;
    }
    const ref = report?.ref ?? (res.ok ? refOf(o.object) : res.ref);
    const base: ObjectReport = report ?? { kind: 'Service', ref, outcome: 'deployed', warnings: [], unenforced: [] };
    objects.push(findings('Service', o, base, differences, undefined));
  });

  const count = (v: Verdict): number => objects.filter((x) => x.verdict === v).length;
  return {
    ok: true,
    report: {
      firewall: fw ? formatRef(fw.ref) : undefined,
      mode: ctx.mode,
      objects,
      notes,
      counts: {
        read: objects.length,
        rejected: count('rejected'),
        ignored: count('ignored'),
        differ: count('differs'),
        unchanged: count('unchanged'),
        otherServices,
      },
    },
  };
}

function refOf(o: Obj): ObjectRef {
  const meta = obj(o.metadata) ?? {};
  return { namespace: displayName(typeof meta.namespace === 'string' ? meta.namespace : 'default'), name: displayName(meta.name) };
}

function findings(
  kind: ObjectFindings['kind'],
  o: SnapshotObject,
  report: ObjectReport,
  differences: Difference[],
  upstreamIgnores: boolean | undefined,
): ObjectFindings {
  const verdict: Verdict = report.outcome === 'rejected' ? 'rejected' : report.outcome === 'ignored' ? 'ignored' : differences.length > 0 ? 'differs' : 'unchanged';
  return {
    kind,
    ref: report.ref,
    origin: o.origin,
    verdict,
    ...(report.reason !== undefined ? { reason: report.reason } : {}),
    ...(verdict === 'ignored' && upstreamIgnores !== undefined ? { upstreamIgnores } : {}),
    differences,
    warnings: report.warnings,
    unenforced: report.unenforced,
  };
}

// ---------------------------------------------------------------------------------------------
// Output

export function formatDifference(d: Difference): string {
  const where = [d.path, d.input].filter((s) => s !== '').join(' ');
  return `${where ? `${where}: ` : ''}upstream: ${d.upstream}; firewall-agent: ${d.here}`;
}

/** One line per finding, `<namespace>/<name>: [Service ]<what>: …`, then the notes and the count line. */
export function formatPreflight(r: PreflightReport): string {
  const lines: string[] = [];
  for (const o of r.objects) {
    const who = `${formatRef(o.ref)}: ${o.kind === 'Service' ? 'Service ' : ''}`;
    if (o.verdict === 'rejected') lines.push(`${who}rejected: ${o.reason ?? ''}`);
    if (o.verdict === 'ignored') {
      const too = o.upstreamIgnores === undefined ? '' : o.upstreamIgnores ? ' (upstream ignores it too)' : '';
      lines.push(`${who}ignored: ${o.reason ?? ''}${too}`);
    }
    for (const d of o.differences) lines.push(`${who}differs: ${formatDifference(d)}`);
    for (const u of o.unenforced) lines.push(`${who}not enforced: ${u}`);
    for (const w of o.warnings) lines.push(`${who}warning: ${w}`);
    if (o.verdict === 'unchanged') lines.push(`${who}unchanged`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(countLine(r.counts));
  return `${lines.join('\n')}\n`;
}

export function countLine(c: PreflightCounts): string {
  const other = c.otherServices > 0 ? `; ${c.otherServices} other Service${c.otherServices === 1 ? ' gets' : 's get'} no rule either way` : '';
  return (
    `preflight: ${c.read} object${c.read === 1 ? '' : 's'} read: ${c.rejected} would be rejected, ${c.ignored} ignored, ` +
    `${c.differ} differ in semantics, ${c.unchanged} unchanged${other}`
  );
}

/** The machine form: the report as is, with the exit code it leads to. */
export function preflightJson(r: PreflightReport): string {
  return `${JSON.stringify({ ...r, exitCode: preflightExitCode(r) }, null, 2)}\n`;
}
