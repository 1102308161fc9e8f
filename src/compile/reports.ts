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
import { allowedSets, filterServiceIps, forbiddenReason } from './forbidden';
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

/** The deployed policies in name order (the first name owns overlaps), and a report per input. */
export function policyReports(inputs: readonly PolicyResult[], mode: Mode, fw: FirewallConfig): { deployed: Policy[]; reports: ObjectReport[] } {
  const reports: ObjectReport[] = [];
  const deployed: Policy[] = [];
  const seen = new Set<string>();
  const allowed = mode === 'forbidden' ? allowedSets(fw) : undefined;
  for (const res of inputs) {
    const base = { kind: 'ClusterwideNetworkPolicy' as const };
    if (!res.ok) {
      reports.push({ ...base, ref: res.ref, outcome: 'rejected', reason: res.problems.map(formatProblem).join('; '), warnings: [], unenforced: [] });
      continue;
    }
    const p = res.policy;
    const key = formatRef(p.ref);
    const warnings = p.warnings.map(formatProblem);
    const unenforced = p.unenforced.map(formatProblem);
    const common = { ...base, ref: p.ref, warnings, unenforced };
    if (seen.has(key)) {
      reports.push({ ...common, outcome: 'rejected', reason: 'is defined more than once in the input' });
      continue;
    }
    seen.add(key);
    if (p.ref.namespace !== POLICY_NAMESPACE) {
      reports.push({ ...common, outcome: 'ignored', reason: `only policies in namespace ${POLICY_NAMESPACE} take effect` });
      continue;
    }
    const why = allowed ? forbiddenReason(p, allowed) : undefined;
    if (why) {
      reports.push({ ...common, outcome: 'ignored', forbidden: true, reason: why });
      continue;
    }
    reports.push({ ...common, outcome: 'deployed' });
    deployed.push(p);
  }
  deployed.sort((a, b) => (a.ref.name < b.ref.name ? -1 : a.ref.name > b.ref.name ? 1 : 0));
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
