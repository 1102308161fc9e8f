/** `firewall-agent status` for a human on the firewall: the agent's /status plus top counters. */

type Obj = Record<string, unknown>;

function metricLines(metrics: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

export function formatStatus(status: Obj, metrics: string): string {
  const p = (status.policies ?? {}) as Record<string, number>;
  const lines = [
    `firewall      ${String(status.namespace ?? '?')}/${String(status.firewall)}`,
    `state         ${String(status.state)}${status.stale ? ' (stale: lost contact, enforcing the last applied ruleset)' : ''}${status.dryRun ? ' (dry run)' : ''}`,
    `mode          ${String(status.mode ?? '-')}`,
    `last apply    ${status.lastApply ? `${String(status.lastApply)}${status.lastApplyState ? ` (${String(status.lastApplyState)} ruleset)` : ''}` : 'never'}`,
    `policies      ${p.deployed ?? 0} deployed, ${p.ignored ?? 0} ignored, ${p.rejected ?? 0} rejected`,
  ];
  const syncs = status.syncs as Record<string, number> | undefined;
  if (syncs) lines.push(`syncs         ${syncs.full ?? 0} full, ${syncs.incremental ?? 0} incremental${syncs.failuresInARow ? `, ${syncs.failuresInARow} failed in a row` : ''}`);
  const checks = status.checks as Record<string, number> | undefined;
  if (checks) lines.push(`drift checks  chains every ${checks.chainsEverySeconds} s, everything every ${checks.fullEverySeconds} s; counters read every ${checks.countersEverySeconds} s`);
  const problems = (status.problems ?? []) as Obj[];
  for (const p2 of problems) lines.push(`problem       ${String(p2.source)}: ${String(p2.error)} (since ${String(p2.since)})`);
  if (problems.length === 0 && status.lastError) lines.push(`last error    ${String(status.lastError)}`);
  const notDeployed = (status.notDeployed ?? []) as Obj[];
  for (const n of notDeployed.slice(0, 20)) lines.push(`  ${String(n.outcome)}  ${String(n.namespace)}/${String(n.name)}: ${String(n.reason ?? '')}`);
  for (const w of (status.watches ?? []) as Obj[]) {
    lines.push(`watch         ${String(w.name)}: ${w.synced ? 'synced' : `not synced${w.lastError ? ` (${String(w.lastError)})` : ''}`}, ${String(w.restarts)} restarts`);
  }
  const top = metricLines(metrics, 'firewall_agent_policy_accepted_connections_total')
    .sort((a, b) => b.value - a.value)
    .slice(0, 10);
  if (top.length > 0) {
    lines.push('top policies  (new connections accepted)');
    for (const t of top) lines.push(`  ${String(t.value).padStart(12)}  ${t.labels.direction ?? ''} ${t.labels.policy ?? ''}`);
  }
  const drops = metricLines(metrics, 'firewall_agent_dropped_packets_total');
  if (drops.length > 0) lines.push(`dropped       ${drops.map((d) => `${d.labels.reason}=${d.value}`).join(', ')}`);
  return `${lines.join('\n')}\n`;
}
