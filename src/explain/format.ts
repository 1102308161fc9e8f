/** The explanation as text for a human (one screen) and as JSON for `--json`. Pure. */
import { Explanation } from './explanation';

/** The explanation for `--json`: the verdict and reason first, then the details. */
export function explanationJson(e: Explanation): Record<string, unknown> {
  const { verdict, reason, packet, direction, state, mode, allowedBy, candidates, nearMisses, notes, notModelled, redirectedTo, compiled } = e;
  return { verdict, reason, packet, direction, state, mode, redirectedTo, allowedBy, candidates, nearMisses, notes, notModelled, compiled };
}

const MAX_LINES = 6;

function capped(lines: readonly string[], indent: string): string[] {
  const out = lines.slice(0, MAX_LINES).map((l) => `${indent}${l}`);
  if (lines.length > MAX_LINES) out.push(`${indent}… and ${lines.length - MAX_LINES} more (--json lists all)`);
  return out;
}

/** One screen for a human. */
export function formatExplanation(e: Explanation): string {
  const p = e.packet;
  const what = `${p.from} → ${p.to} ${p.protocol === 'icmp' ? (p.family === 4 ? 'icmp echo-request' : 'icmpv6 echo-request') : `${p.port}/${p.protocol}`}`;
  const lines = [`${e.verdict.toUpperCase()}: ${what}`];
  const dir: Record<Explanation['direction'], string> = {
    egress: 'egress from the node network',
    ingress: 'ingress towards the node network',
    'egress+ingress': 'from the node network towards the node network',
    none: 'neither from nor towards the node network',
    'local-output': "the firewall's own traffic",
    'local-input': 'to the firewall itself',
    unknown: 'direction not judged',
  };
  lines.push(`  ${dir[e.direction]}; state ${e.state}${e.mode ? `, ${e.mode} mode` : ''}`);
  lines.push(`  why: ${e.reason}`);
  if (e.allowedBy.length > 0) {
    lines.push('  allowed by:');
    lines.push(...capped(e.allowedBy.map((m) => `${m.kind === 'Service' ? 'Service ' : ''}${m.ref} ${m.path}  (${m.detail})`), '    '));
  }
  if (e.candidates.length > 0) {
    lines.push(e.verdict === 'allowed' ? '  also:' : '  would allow it, but:');
    lines.push(...capped(e.candidates.map((c) => c.text), '    '));
  }
  if (e.verdict === 'dropped' && e.nearMisses.length > 0) {
    lines.push('  near misses:');
    lines.push(...capped(e.nearMisses, '    '));
  }
  for (const n of e.notes) lines.push(`  note: ${n}`);
  if (e.compiled) {
    const hits = e.compiled.hits.map((h) => `${h.map} → ${h.ref ?? h.chain}`);
    const text =
      e.compiled.decidedBy ?? (e.state === 'disconnected' ? 'the disconnected table (no verdict maps)' : hits.length > 0 ? hits.join(', ') : 'no verdict-map element matches');
    lines.push(`  compiled ruleset: ${text}${e.compiled.agrees ? '' : '  (DISAGREES with the model: please report)'}`);
  }
  if (e.notModelled.length > 0) {
    lines.push('  not modelled:');
    lines.push(...e.notModelled.map((l) => `    ${l}`));
  }
  return `${lines.join('\n')}\n`;
}
