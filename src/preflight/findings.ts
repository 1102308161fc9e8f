/**
 * What preflight finds: per object a verdict (rejected, ignored, differs, unchanged) and the places
 * where it means something else here than upstream; the report over all objects and its exit code.
 */
import { Mode } from '../compile/mode';
import { ObjectRef } from '../model/names';

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
