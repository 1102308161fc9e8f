/** The report as lines for a human and as JSON for `--json`. Pure. */
import { formatRef } from '../model/names';
import { Difference, PreflightCounts, PreflightReport, preflightExitCode } from './findings';

export function formatDifference(d: Difference): string {
  const where = [d.path, d.input].filter((s) => s !== '').join(' ');
  return `${where ? `${where}: ` : ''}upstream: ${d.upstream}; firewall-agent: ${d.here}`;
}

/** One line per finding, `<namespace>/<name>: [Service ]<what>: …`, then the notes and the count line. */
export function formatPreflight(r: PreflightReport): string {
  const lines: string[] = [];
  for (const o of r.objects) {
    const who = `${formatRef(o.ref)}: ${o.kind === 'Service' ? 'Service ' : ''}`;
    if (o.verdict === 'rejected') lines.push(`${who}rejected: ${o.reason ?? ''}`);
    if (o.verdict === 'ignored') {
      const too = o.upstreamIgnores === undefined ? '' : o.upstreamIgnores ? ' (upstream ignores it too)' : '';
      lines.push(`${who}ignored: ${o.reason ?? ''}${too}`);
    }
    for (const d of o.differences) lines.push(`${who}differs: ${formatDifference(d)}`);
    for (const u of o.unenforced) lines.push(`${who}not enforced: ${u}`);
    for (const w of o.warnings) lines.push(`${who}warning: ${w}`);
    if (o.verdict === 'unchanged') lines.push(`${who}unchanged`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  lines.push(countLine(r.counts));
  return `${lines.join('\n')}\n`;
}

export function countLine(c: PreflightCounts): string {
  const other = c.otherServices > 0 ? `; ${c.otherServices} other Service${c.otherServices === 1 ? ' gets' : 's get'} no rule either way` : '';
  return (
    `preflight: ${c.read} object${c.read === 1 ? '' : 's'} read: ${c.rejected} would be rejected, ${c.ignored} ignored, ` +
    `${c.differ} differ in semantics, ${c.unchanged} unchanged${other}`
  );
}

/** The machine form: the report as is, with the exit code it leads to. */
export function preflightJson(r: PreflightReport): string {
  return `${JSON.stringify({ ...r, exitCode: preflightExitCode(r) }, null, 2)}\n`;
}
