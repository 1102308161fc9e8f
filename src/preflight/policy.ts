/**
 * Policies: where a ClusterwideNetworkPolicy, as written, means something else here than upstream
 * (empty `ports` or `to`, pooled excepts, ingress destinations, FQDN selectors, protocols and
 * ports, IPv6, forbidden mode). Pure.
 */
import { ObjectReport } from '../compile/compile';
import { Mode } from '../compile/mode';
import { canonicalName } from '../dns/selector';
import { Family, Prefix, formatPrefix, prefixRange } from '../model/address';
import { parseFqdn } from '../model/cwnp';
import { Obj } from '../model/fields';
import { FirewallConfig } from '../model/firewall';
import { parseProtocol } from '../model/ports';
import { RangeSet, covers, fromPrefixes, subtract } from '../model/rangeset';
import { Difference } from './findings';
import { lostPatternMatch } from './pattern';
import { arr, intersect, missingOrEmpty, obj, prefixOf, present, rangesText, show } from './raw';

/** What the comparisons depend on: the Firewall and its mode (forbidden mode filters). */
export interface Context {
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

export function policyDifferences(raw: Obj, report: ObjectReport, ctx: Context): { differences: Difference[]; upstreamIgnores?: boolean } {
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
