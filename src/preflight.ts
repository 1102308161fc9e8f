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
 *
 * Here: the analysis over a snapshot. The comparison rules are in preflight/policy.ts and
 * preflight/service.ts, the report's shape in preflight/findings.ts, its output in preflight/format.ts.
 */
import { Compiled, ObjectReport, compile } from './compile/compile';
import { Mode, resolveMode } from './compile/mode';
import { policyReports, serviceReports } from './compile/reports';
import { buildInput } from './landscape';
import { formatPrefix, prefixRange } from './model/address';
import { POLICY_NAMESPACE } from './model/cwnp';
import { Obj } from './model/fields';
import { FirewallConfig } from './model/firewall';
import { ObjectRef, displayName, formatRef } from './model/names';
import { normalize } from './model/rangeset';
import { Snapshot, SnapshotObject } from './sources/source';
import { Difference, NO_FIREWALL_NOTE, ObjectFindings, PreflightResult, Verdict } from './preflight/findings';
import { Context, policyDifferences } from './preflight/policy';
import { obj, rangesText } from './preflight/raw';
import { serviceDifferences } from './preflight/service';

export type { Difference, DifferenceCode, ObjectFindings, PreflightCounts, PreflightReport, PreflightResult, Verdict } from './preflight/findings';
export { NO_FIREWALL_NOTE, preflightExitCode } from './preflight/findings';
export { countLine, formatDifference, formatPreflight, preflightJson } from './preflight/format';
export { lostPatternMatch, upstreamPatternMatches } from './preflight/pattern';

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
