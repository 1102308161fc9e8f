/**
 * Which policies and Services take effect, and a report for each: deployed, ignored (namespace,
 * forbidden mode) or rejected (invalid, duplicate), with the reason a human needs. Pure.
 */
import { IpAddress } from '../model/address';
import { POLICY_NAMESPACE, Policy, PolicyResult } from '../model/cwnp';
import { formatProblem } from '../model/fields';
import { FirewallConfig } from '../model/firewall';
import { ObjectRef, formatRef } from '../model/names';
import { LoadBalancerService, ServiceResult } from '../model/service';
import { AllowedSets, allowedSets, filterServiceIps, forbiddenReason } from './forbidden';
import { Mode } from './mode';

export type ObjectKind = 'ClusterwideNetworkPolicy' | 'Service';
export type Outcome = 'deployed' | 'ignored' | 'rejected';

export interface ObjectReport {
  readonly kind: ObjectKind;
  readonly ref: ObjectRef;
  readonly outcome: Outcome;
  /** Why it is ignored or rejected. */
  readonly reason?: string;
  /** Ignored by forbidden mode (a `ForbiddenCIDR` event in the daemon). */
  readonly forbidden?: boolean;
  readonly warnings: readonly string[];
  /** Valid parts that are not enforced (they open nothing). */
  readonly unenforced: readonly string[];
}

/** A Service that gets rules, with the load balancer IPs it may have. */
export interface DeployedService {
  readonly svc: LoadBalancerService;
  readonly ips: readonly IpAddress[];
}

/** A policy result's parts of its report that do not depend on the other inputs. */
export interface PolicyReportParts {
  readonly key: string;
  readonly policy?: Policy;
  readonly rejected?: ObjectReport;
  readonly common?: Pick<ObjectReport, 'kind' | 'ref' | 'warnings' | 'unenforced'>;
  /** Made on first use; the report objects are shared by compiles (never changed). */
  deployed?: ObjectReport;
  ignored?: ObjectReport;
  duplicate?: ObjectReport;
  forbidden?: { readonly fw: FirewallConfig; readonly report: ObjectReport | undefined };
}

export function reportParts(res: PolicyResult): PolicyReportParts {
  const base = { kind: 'ClusterwideNetworkPolicy' as const };
  if (!res.ok) {
    return { key: '', rejected: { ...base, ref: res.ref, outcome: 'rejected', reason: res.problems.map(formatProblem).join('; '), warnings: [], unenforced: [] } };
  }
  const p = res.policy;
  return { key: formatRef(p.ref), policy: p, common: { ...base, ref: p.ref, warnings: p.warnings.map(formatProblem), unenforced: p.unenforced.map(formatProblem) } };
}

/**
 * The report of one input (outcome `deployed`: it takes effect), given the keys of the inputs
 * before it (the first of a name wins; undefined: no name is there twice) and, in forbidden mode,
 * the allowed networks.
 */
export function policyReport(r: PolicyReportParts, mode: Mode, fw: FirewallConfig, allowed: () => AllowedSets, seen: Set<string> | undefined): ObjectReport {
  if (!r.common) return r.rejected!;
  if (seen?.has(r.key)) return (r.duplicate ??= { ...r.common, outcome: 'rejected', reason: 'is defined more than once in the input' });
  seen?.add(r.key);
  if (r.common.ref.namespace !== POLICY_NAMESPACE) {
    return (r.ignored ??= { ...r.common, outcome: 'ignored', reason: `only policies in namespace ${POLICY_NAMESPACE} take effect` });
  }
  if (mode === 'forbidden') {
    // The reason depends on the Firewall's allowed networks: kept while it is the same object.
    if (r.forbidden?.fw !== fw) {
      const why = forbiddenReason(r.policy!, allowed());
      r.forbidden = { fw, report: why ? { ...r.common, outcome: 'ignored', forbidden: true, reason: why } : undefined };
    }
    if (r.forbidden.report) return r.forbidden.report;
  }
  return (r.deployed ??= { ...r.common, outcome: 'deployed' });
}

export function byPolicyName(a: Policy, b: Policy): number {
  return a.ref.name < b.ref.name ? -1 : a.ref.name > b.ref.name ? 1 : 0;
}

/** The deployed policies in name order (the first name owns overlaps), and a report per input. */
export function policyReports(inputs: readonly PolicyResult[], mode: Mode, fw: FirewallConfig): { deployed: Policy[]; reports: ObjectReport[] } {
  const reports: ObjectReport[] = [];
  const deployed: Policy[] = [];
  const seen = new Set<string>();
  let allowed: AllowedSets | undefined;
  for (const res of inputs) {
    const report = policyReport(reportParts(res), mode, fw, () => (allowed ??= allowedSets(fw)), seen);
    reports.push(report);
    if (res.ok && report.outcome === 'deployed') deployed.push(res.policy);
  }
  deployed.sort(byPolicyName);
  return { deployed, reports };
}

/** The LoadBalancer Services that get rules, in name order, and a report per LoadBalancer input. */
export function serviceReports(inputs: readonly ServiceResult[], mode: Mode, fw: FirewallConfig): { services: DeployedService[]; reports: ObjectReport[] } {
  const reports: ObjectReport[] = [];
  const services: DeployedService[] = [];
  const allowed = mode === 'forbidden' ? allowedSets(fw) : undefined;
  const seen = new Set<string>();
  for (const res of inputs) {
    const base = { kind: 'Service' as const };
    if (!res.ok) {
      reports.push({ ...base, ref: res.ref, outcome: 'rejected', reason: res.problems.map(formatProblem).join('; '), warnings: [], unenforced: [] });
      continue;
    }
    const svc = res.service;
    if (!svc) continue; // not a LoadBalancer: nothing to do, nothing to report
    const key = formatRef(svc.ref);
    const warnings = svc.warnings.map(formatProblem);
    if (seen.has(key)) {
      reports.push({ ...base, ref: svc.ref, outcome: 'rejected', reason: 'is defined more than once in the input', warnings, unenforced: [] });
      continue;
    }
    seen.add(key);
    let ips = [...svc.ips];
    if (allowed) {
      const split = filterServiceIps(svc, allowed);
      ips = split.inside;
      if (split.outside.length > 0 && ips.length === 0) {
        reports.push({
          ...base,
          ref: svc.ref,
          outcome: 'ignored',
          forbidden: true,
          reason: `load balancer IP ${split.outside.join(', ')} is outside allowedNetworks.ingress; no rule`,
          warnings,
          unenforced: [],
        });
        continue;
      }
      if (split.outside.length > 0) {
        warnings.push(`load balancer IP ${split.outside.join(', ')} is outside allowedNetworks.ingress; no rule for it`);
      }
    }
    reports.push({ ...base, ref: svc.ref, outcome: 'deployed', warnings, unenforced: [] });
    if (ips.length > 0 && svc.ports.length > 0) services.push({ svc, ips });
  }
  services.sort((a, b) => (formatRef(a.svc.ref) < formatRef(b.svc.ref) ? -1 : 1));
  return { services, reports };
}

export type OutcomeCounts = Record<Outcome, number>;

export function countOutcomes(reports: readonly ObjectReport[]): OutcomeCounts {
  const out = { deployed: 0, ignored: 0, rejected: 0 };
  for (const r of reports) out[r.outcome]++;
  return out;
}

export function countByKind(reports: readonly ObjectReport[]): Record<ObjectKind, OutcomeCounts> {
  return {
    ClusterwideNetworkPolicy: countOutcomes(reports.filter((r) => r.kind === 'ClusterwideNetworkPolicy')),
    Service: countOutcomes(reports.filter((r) => r.kind === 'Service')),
  };
}
