/**
 * The front end shared by the CLI and the daemon: a snapshot of raw objects (from files or the
 * clusters) becomes the compiler's input, through an explicit parse cache, plus the lines an
 * operator reads about things that are not one policy (skipped kinds, Firewall warnings).
 */
import { CompileCache, CompileInput, Compiled, ObjectReport, compile } from './compile/compile';
import { Mode, State } from './compile/mode';
import { PolicyResult, parsePolicy } from './model/cwnp';
import { formatProblem } from './model/fields';
import { FirewallConfig, FirewallResult, parseFirewall } from './model/firewall';
import { formatRef } from './model/names';
import { ServiceResult, parseService } from './model/service';
import { InputError, readSources } from './sources/files';
import { Snapshot, SnapshotObject, snapshotOf } from './sources/source';

/**
 * Parse results by snapshot key. The compile cache keys its work by the parsed objects, so a hit
 * here (the very same parsed object) is what lets an unchanged policy cost nothing downstream.
 */
export class ParseCache {
  private entries = new Map<string, unknown>();
  private seen = new Set<string>();

  private get<R>(o: SnapshotObject, parse: () => R): R {
    this.seen.add(o.key);
    let r = this.entries.get(o.key) as R | undefined;
    if (r === undefined) this.entries.set(o.key, (r = parse()));
    return r;
  }

  policy(o: SnapshotObject): PolicyResult {
    return this.get(o, () => parsePolicy(o.object));
  }

  service(o: SnapshotObject): ServiceResult {
    return this.get(o, () => parseService(o.object));
  }

  firewall(o: SnapshotObject): FirewallResult {
    return this.get(o, () => parseFirewall(o.object));
  }

  /** Forgets what the last build did not use (objects that are gone or changed). */
  prune(): void {
    for (const k of this.entries.keys()) if (!this.seen.has(k)) this.entries.delete(k);
    this.seen = new Set();
  }

  get size(): number {
    return this.entries.size;
  }
}

export type Built =
  | { readonly ok: true; readonly input: CompileInput; readonly firewall: FirewallConfig | undefined; readonly notes: readonly string[] }
  | { readonly ok: false; readonly problem: 'no-firewall' | 'invalid-firewall' | 'several-firewalls'; readonly message: string; readonly notes: readonly string[] };

export interface BuildOptions {
  readonly state: State;
  readonly mode?: Mode;
  readonly parseCache?: ParseCache;
  readonly compileCache?: CompileCache;
}

/** Turns a snapshot into compile input; a missing, duplicated or invalid Firewall is an outcome, not an exception. */
export function buildInput(snapshot: Snapshot, opts: BuildOptions): Built {
  const cache = opts.parseCache ?? new ParseCache();
  const notes = [...snapshot.notes];
  let firewall: FirewallConfig | undefined;
  if (snapshot.firewalls.length > 1) {
    const where = snapshot.firewalls.map((f) => f.origin).join(', ');
    return { ok: false, problem: 'several-firewalls', message: `found ${snapshot.firewalls.length} Firewalls (${where}); give exactly one`, notes };
  }
  const fw = snapshot.firewalls[0];
  if (fw) {
    const parsed = cache.firewall(fw);
    if (!parsed.ok) {
      return { ok: false, problem: 'invalid-firewall', message: `${fw.origin}: invalid Firewall: ${parsed.problems.map(formatProblem).join('; ')}`, notes };
    }
    firewall = parsed.firewall;
    for (const w of firewall.warnings) notes.push(`firewall ${formatRef(firewall.ref)}: ${formatProblem(w)}`);
  } else if (opts.state === 'connected') {
    return { ok: false, problem: 'no-firewall', message: 'no Firewall (firewall.metal-stack.io/v2) in the input; the connected ruleset needs one', notes };
  }
  const policies = snapshot.policies.map((o) => cache.policy(o));
  const services = snapshot.services.map((o) => cache.service(o));
  cache.prune();
  return {
    ok: true,
    firewall,
    notes,
    input: { firewall, policies, services, state: opts.state, mode: opts.mode, cache: opts.compileCache },
  };
}

export interface Landscape {
  readonly input: CompileInput;
  /** Notes that are not about one policy (skipped kinds, Firewall warnings). */
  readonly notes: readonly string[];
}

/** The offline CLI's input: files → snapshot (the disconnected ruleset needs no files: boot rules). */
export async function loadSnapshot(paths: readonly string[], state: State): Promise<Snapshot> {
  const { objects, notes } = paths.length === 0 && state === 'disconnected' ? { objects: [], notes: [] } : await readSources(paths);
  return snapshotOf(
    objects.map((o, i) => ({ key: `${i}`, origin: o.origin, object: o.object })),
    true,
    notes,
  );
}

/** The offline CLI's path: files → snapshot → compile input; InputError when the input is unusable. */
export async function loadLandscape(paths: readonly string[], state: State, mode: Mode | undefined): Promise<Landscape> {
  const built = buildInput(await loadSnapshot(paths, state), { state, mode });
  if (!built.ok) throw new InputError(built.message);
  return { input: built.input, notes: built.notes };
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

/**
 * The ruleset the daemon would apply: with FQDN policies, DNS interception to the proxy on the
 * node network's addresses, port 53 (the daemon's default).
 */
export function compileLandscape(l: Landscape): Compiled {
  const ips = l.input.firewall?.nodeNetwork.ips ?? [];
  return compile({ ...l.input, dnsProxy: ips.length > 0 ? { addresses: ips, port: 53 } : undefined });
}
