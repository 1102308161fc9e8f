/**
 * Which policies take effect, in name order, with what a compile takes from each, and which came
 * and went since the last compile (the sharded maps are updated with just those, shardmap.ts).
 * With a daemon's cache everything per policy is kept per parsed result object (inputs.ts), and
 * the name order is kept too: a change costs a pass over the inputs without formatting or hashing,
 * and no sort of them all.
 */
import { Policy, PolicyResult } from '../model/cwnp';
import { FirewallConfig } from '../model/firewall';
import { NftChain } from '../nft/ruleset';
import { acceptChain as countedAcceptChain } from './chains';
import { AllowedSets, allowedSets } from './forbidden';
import { PolicyItems, countDims, policyItems } from './items';
import { Mode } from './mode';
import { InputIndex, freshEntries } from './inputs';
import { ObjectReport, byPolicyName, policyReport } from './reports';

/** Whose traffic an accept chain counts (compile.ts's PolicyAccount for a policy). */
export interface PolicyAccountOf {
  readonly kind: 'ClusterwideNetworkPolicy';
  readonly ref: Policy['ref'];
  readonly direction: 'egress' | 'ingress';
  readonly policy: string;
}

/** An accept chain and whose traffic it counts (also as an accounting map entry). */
export interface Accept {
  readonly chain: NftChain;
  readonly pair: readonly [string, PolicyAccountOf];
}

export interface PolicyEntry {
  readonly policy: Policy;
  readonly items: PolicyItems;
  /** Some egress rule has toFQDNs (then fqdn.ts makes targets, which depend on the mode). */
  readonly fqdn: boolean;
  readonly egressBoxes: boolean;
  readonly ingressBoxes: boolean;
  /** Some rule without ports: the policy has boxes in the *_any maps. */
  readonly anyBoxes: boolean;
  /** The accept chains made so far (each when first needed), for `logAccepted`. */
  accept?: { readonly logAccepted: boolean; egress?: Accept; ingress?: Accept };
  /** The selection (DeployedCache's count) that last deployed it. */
  deployedAt: number;
  /** In the cache's last selection. */
  listed: boolean;
}

function entryOf(p: Policy): PolicyEntry {
  const items = policyItems(p);
  const { egress, ingress } = items;
  return {
    policy: p,
    items,
    fqdn: p.egress.some((r) => r.toFqdns),
    egressBoxes: countDims(egress) > 0,
    ingressBoxes: countDims(ingress) > 0,
    anyBoxes: egress.any[4].length + egress.any[6].length + ingress.any[4].length + ingress.any[6].length > 0,
    deployedAt: -1,
    listed: false,
  };
}

/**
 * The policy's accept chain of a direction. Comments keep the upstream firewall-controller's
 * wording: tools grep for them. Kept in the entry: rebuilding tens of thousands per compile shows
 * in the latency.
 */
export function acceptChain(e: PolicyEntry, direction: 'egress' | 'ingress', logAccepted: boolean): Accept {
  if (e.accept?.logAccepted !== logAccepted) e.accept = { logAccepted };
  const made = e.accept[direction];
  if (made) return made;
  const { ref } = e.policy;
  const name = direction === 'egress' ? e.items.egressChain : e.items.ingressChain;
  const text = direction === 'egress' ? `accept traffic for np ${ref.name}` : `accept traffic for k8s network policy ${ref.name}`;
  const account = { kind: 'ClusterwideNetworkPolicy', ref, policy: ref.name, direction } as const;
  return (e.accept[direction] = { chain: countedAcceptChain(name, text, logAccepted), pair: [name, account] });
}

/** The policies' items that went and came since the last selection (added in name order). */
export interface PolicyChanges {
  readonly removed: readonly PolicyItems[];
  readonly added: readonly PolicyItems[];
}

export interface Selection {
  readonly reports: ObjectReport[];
  /** The deployed policies in name order: the first name owns overlaps. */
  readonly deployed: readonly PolicyEntry[];
  readonly changes: PolicyChanges;
}

/** Per parsed result its report parts and entry, and the last selection's deployed policies. */
export class DeployedCache {
  /** Undefined: one compile only, nothing to keep for the next. */
  private readonly inputs: InputIndex | undefined;
  private sorted: readonly PolicyEntry[] = [];
  private count = 0;

  constructor(keep = true) {
    this.inputs = keep ? new InputIndex() : undefined;
  }

  /** The reports, deployed policies and changes for `inputs`; they become the last selection. */
  select(inputs: readonly PolicyResult[], mode: Mode, fw: FirewallConfig): Selection {
    const now = ++this.count;
    const reports: ObjectReport[] = [];
    const came: PolicyEntry[] = [];
    let allowed: AllowedSets | undefined;
    const allow = () => (allowed ??= allowedSets(fw));
    const { entries, duplicates } = this.inputs?.entriesOf(inputs) ?? freshEntries(inputs);
    const seen = duplicates ? new Set<string>() : undefined;
    for (let j = 0; j < inputs.length; j++) {
      const res = inputs[j]!;
      const e = entries[j]!;
      const report = policyReport(e.report, mode, fw, allow, seen);
      reports.push(report);
      if (!res.ok || report.outcome !== 'deployed') continue;
      const p = (e.policy ??= entryOf(res.policy));
      if (!p.listed) came.push(p);
      p.deployedAt = now;
    }
    // The last order without those that went, merged with those that came.
    const kept: PolicyEntry[] = [];
    const went: PolicyEntry[] = [];
    for (const p of this.sorted) (p.deployedAt === now ? kept : went).push(p);
    came.sort((a, b) => byPolicyName(a.policy, b.policy));
    const deployed: PolicyEntry[] = [];
    let k = 0;
    for (const p of came) {
      // Binary search: comparing names reads three objects per policy, which shows at 30,000.
      let hi = kept.length;
      for (let lo = k; lo < hi; ) {
        const mid = (lo + hi) >> 1;
        if (byPolicyName(kept[mid]!.policy, p.policy) < 0) lo = mid + 1;
        else hi = mid;
      }
      while (k < hi) deployed.push(kept[k++]!);
      deployed.push(p);
    }
    while (k < kept.length) deployed.push(kept[k++]!);
    // Committed only here: a selection that throws leaves the last one as it was.
    for (const p of went) p.listed = false;
    for (const p of came) p.listed = true;
    this.sorted = deployed;
    return { reports, deployed, changes: { removed: went.map((p) => p.items), added: came.map((p) => p.items) } };
  }
}
