/**
 * Candidates: objects that would allow the packet but do not (or only under a condition): FQDN
 * rules (their addresses are known only at run time), and policies and Services that are ignored,
 * rejected or, in forbidden mode, without a rule for the address. Pure.
 */
import { CompileInput, ObjectReport } from '../compile/compile';
import { allowedSets } from '../compile/forbidden';
import { Mode } from '../compile/mode';
import { policyReports, serviceReports } from '../compile/reports';
import { FirewallConfig } from '../model/firewall';
import { formatRef } from '../model/names';
import { Candidate, ExplainSource } from './explanation';
import { policyHits, serviceHit } from './match';
import { Packet, inRanges, portMatches, sameAddress } from './packet';
import { rawPolicyMatch, rawServiceMatch } from './rejected';
import { list } from './text';

/** The packet, where it passes (as explain decided from the addresses), and the compiler's reports. */
export interface CandidateScope {
  readonly input: CompileInput;
  readonly raw: ExplainSource['raw'];
  readonly pkt: Packet;
  readonly packet: { readonly to: string };
  readonly fw: FirewallConfig;
  readonly mode: Mode;
  readonly pol: ReturnType<typeof policyReports>;
  readonly svc: ReturnType<typeof serviceReports>;
  readonly fromNode: boolean;
  readonly toNode: boolean;
  readonly egressSide: boolean;
  readonly ingressSide: boolean;
}

/** FQDN rules: their addresses are known only at run time. */
export function fqdnCandidates({ pkt, packet, fw, mode, pol }: CandidateScope): Candidate[] {
  const candidates: Candidate[] = [];
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
  return candidates;
}

/** Policies not deployed that would have matched. */
export function policyCandidates({ input, raw: rawObjects, pkt, pol, fromNode, toNode, egressSide, ingressSide }: CandidateScope): Candidate[] {
  const candidates: Candidate[] = [];
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
    const raw = rawObjects?.policies?.[i];
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
  return candidates;
}

/** Services not deployed, or without a rule for this IP, that would have matched. */
export function serviceCandidates({ input, raw: rawObjects, pkt, packet, svc }: CandidateScope): Candidate[] {
  const candidates: Candidate[] = [];
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
    const raw = rawObjects?.services?.[i];
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
  return candidates;
}
