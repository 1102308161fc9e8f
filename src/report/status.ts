/**
 * What to write back about each policy: CWNP status (`deployed`/`ignored` with a message) and
 * Warning events. Pure: the agent diffs against what the objects already say and writes only
 * changes, so a steady state makes no API calls.
 */
import { ObjectReport } from '../compile/compile';
import { formatRef } from '../model/names';

export interface PolicyStatus {
  readonly state: 'deployed' | 'ignored';
  readonly message: string;
  /** What the policy's toFQDNs selectors resolved to (upstream shape), when it has any. */
  readonly fqdn_state?: FqdnStatus;
}

/** selector → [{ fqdn, setName, version, ips, ipExpirationTimes }] */
export type FqdnStatus = Readonly<Record<string, readonly unknown[]>>;

export interface EventSpec {
  readonly namespace: string;
  readonly name: string;
  readonly kind: 'ClusterwideNetworkPolicy' | 'Service';
  readonly reason: 'ForbiddenCIDR' | 'Inapplicable';
  readonly message: string;
}

const MESSAGE_MAX = 1024;

function bound(s: string): string {
  return s.length > MESSAGE_MAX ? `${s.slice(0, MESSAGE_MAX - 1)}…` : s;
}

export function policyStatus(r: ObjectReport): PolicyStatus {
  if (r.outcome === 'deployed') {
    const notes = [...r.unenforced.map((u) => `not enforced: ${u}`), ...r.warnings.map((w) => `warning: ${w}`)];
    return { state: 'deployed', message: bound(notes.join('; ')) };
  }
  // The CRD knows deployed and ignored; a rejected policy is not enforced either, and says why.
  return { state: 'ignored', message: bound(r.outcome === 'rejected' ? `rejected: ${r.reason ?? ''}` : (r.reason ?? '')) };
}

/**
 * The merge patch turning `have` into `want`: selectors no longer there are removed (null), and
 * an empty state removes the field. Undefined when nothing changes.
 */
function fqdnPatch(want: FqdnStatus | undefined, have: unknown): Record<string, unknown> | null | undefined {
  const h = typeof have === 'object' && have !== null && !Array.isArray(have) ? (have as Record<string, unknown>) : {};
  const w = want ?? {};
  if (Object.keys(w).length === 0) return Object.keys(h).length === 0 ? undefined : null;
  const patch: Record<string, unknown> = {};
  for (const k of Object.keys(h)) if (!(k in w)) patch[k] = null;
  for (const [k, v] of Object.entries(w)) if (JSON.stringify(v) !== JSON.stringify(h[k])) patch[k] = v;
  return Object.keys(patch).length === 0 ? undefined : patch;
}

export interface StatusChange {
  readonly namespace: string;
  readonly name: string;
  /** The merge patch of `status`. */
  readonly status: Record<string, unknown>;
}

/** Status patches for policies whose current status differs from the wanted one. */
export function statusChanges(
  reports: readonly ObjectReport[],
  current: (namespace: string, name: string) => { state?: unknown; message?: unknown; fqdn_state?: unknown } | undefined,
  fqdn: (r: ObjectReport) => FqdnStatus | undefined = () => undefined,
): StatusChange[] {
  const out: StatusChange[] = [];
  const seen = new Set<string>();
  for (const r of reports) {
    if (r.kind !== 'ClusterwideNetworkPolicy') continue;
    const key = formatRef(r.ref);
    if (seen.has(key)) continue; // a duplicate in the input is not a second object
    seen.add(key);
    const want = policyStatus(r);
    const have = current(r.ref.namespace, r.ref.name);
    const fq = fqdnPatch(r.outcome === 'deployed' ? fqdn(r) : undefined, have?.fqdn_state);
    if (have && have.state === want.state && (have.message ?? '') === want.message && fq === undefined) continue;
    out.push({ namespace: r.ref.namespace, name: r.ref.name, status: { ...want, ...(fq !== undefined ? { fqdn_state: fq } : {}) } });
  }
  return out;
}

/** Warning events: ForbiddenCIDR for forbidden mode, Inapplicable for invalid or misplaced policies. */
export function warningEvents(reports: readonly ObjectReport[]): EventSpec[] {
  const out: EventSpec[] = [];
  for (const r of reports) {
    if (r.outcome === 'deployed') continue;
    const reason = r.forbidden ? 'ForbiddenCIDR' : 'Inapplicable';
    out.push({ namespace: r.ref.namespace, name: r.ref.name, kind: r.kind, reason, message: bound(`${r.outcome}: ${r.reason ?? ''}`) });
  }
  return out;
}
