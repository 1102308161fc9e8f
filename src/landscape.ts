/**
 * One offline landscape: what a set of files says about one firewall. Turns the sorted objects into
 * a compile input and the lines an operator reads on stderr.
 */
import { Compiled, CompileInput, ObjectReport, compile } from './compile/compile';
import { Mode, State } from './compile/mode';
import { formatProblem } from './model/fields';
import { FirewallConfig } from './model/firewall';
import { classify } from './model/inventory';
import { formatRef } from './model/names';
import { InputError, readSources } from './sources/files';

export interface Landscape {
  readonly input: CompileInput;
  /** Notes that are not about one policy (skipped kinds, Firewall warnings). */
  readonly notes: readonly string[];
}

/** Reads files and builds the compile input; InputError when the input is unusable. */
export async function loadLandscape(paths: readonly string[], state: State, mode: Mode | undefined): Promise<Landscape> {
  // The disconnected ruleset depends on nothing, so it can be rendered without input (boot rules).
  const { objects, notes } = paths.length === 0 && state === 'disconnected' ? { objects: [], notes: [] } : await readSources(paths);
  const inv = classify(objects);
  const allNotes = [...notes, ...inv.notes];
  let firewall: FirewallConfig | undefined;
  if (inv.firewalls.length > 1) {
    throw new InputError(`found ${inv.firewalls.length} Firewalls (${inv.firewalls.map((f) => f.origin).join(', ')}); give exactly one`);
  }
  const fw = inv.firewalls[0];
  if (fw) {
    if (!fw.result.ok) {
      throw new InputError(`${fw.origin}: invalid Firewall: ${fw.result.problems.map(formatProblem).join('; ')}`);
    }
    firewall = fw.result.firewall;
    for (const w of firewall.warnings) allNotes.push(`firewall ${formatRef(firewall.ref)}: ${formatProblem(w)}`);
  } else if (state === 'connected') {
    throw new InputError('no Firewall (firewall.metal-stack.io/v2) in the input; the connected ruleset needs one');
  }
  return { input: { firewall, policies: inv.policies, services: inv.services, state, mode }, notes: allNotes };
}

export function compileLandscape(l: Landscape): Compiled {
  return compile(l.input);
}

/** `<namespace>/<name>: <reason>` for every object not deployed, plus warnings and unenforced parts. */
export function reportLines(reports: readonly ObjectReport[]): string[] {
  const lines: string[] = [];
  for (const r of reports) {
    const who = formatRef(r.ref);
    const kind = r.kind === 'Service' ? 'Service ' : '';
    if (r.outcome !== 'deployed') lines.push(`${who}: ${kind}${r.outcome}: ${r.reason ?? ''}`);
    for (const u of r.unenforced) lines.push(`${who}: ${kind}not enforced: ${u}`);
    for (const w of r.warnings) lines.push(`${who}: ${kind}warning: ${w}`);
  }
  return lines;
}

/** Objects that would not be fully enforced: rejected, ignored, or with unenforced parts. */
export function notFullyDeployed(reports: readonly ObjectReport[]): ObjectReport[] {
  return reports.filter((r) => r.outcome !== 'deployed' || r.unenforced.length > 0);
}
