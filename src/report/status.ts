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
}

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

/** Status patches for policies whose current status differs from the wanted one. */
export function statusChanges(
  reports: readonly ObjectReport[],
  current: (namespace: string, name: string) => { state?: unknown; message?: unknown } | undefined,
): { namespace: string; name: string; status: PolicyStatus }[] {
  const out: { namespace: string; name: string; status: PolicyStatus }[] = [];
  const seen = new Set<string>();
  for (const r of reports) {
    if (r.kind !== 'ClusterwideNetworkPolicy') continue;
    const key = formatRef(r.ref);
    if (seen.has(key)) continue; // a duplicate in the input is not a second object
    seen.add(key);
    const want = policyStatus(r);
    const have = current(r.ref.namespace, r.ref.name);
    if (have && have.state === want.state && (have.message ?? '') === want.message) continue;
    out.push({ namespace: r.ref.namespace, name: r.ref.name, status: want });
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
