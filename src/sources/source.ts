/**
 * Where the daemon's input comes from: the seed and shoot clusters, or a directory of files. A
 * source yields a snapshot of the objects it holds (raw, not yet parsed), says whether it is
 * synced, and calls back when anything changed. Parsing happens in one place for every source and
 * for the offline CLI (landscape.ts).
 */
import { Obj } from '../model/fields';
import { CWNP_API_VERSION, CWNP_KIND } from '../model/cwnp';
import { FIREWALL_API_VERSION, FIREWALL_KIND } from '../model/firewall';
import { displayName } from '../model/names';

export interface SnapshotObject {
  /**
   * Stable while the object means the same: parse results are cached by it. Cluster: uid and
   * generation (policies) or resourceVersion (Services); files: path, position and read serial.
   */
  readonly key: string;
  /** Where it came from, for messages (a file, a cluster resource). */
  readonly origin: string;
  readonly object: Obj;
}

export interface Snapshot {
  readonly firewalls: readonly SnapshotObject[];
  readonly policies: readonly SnapshotObject[];
  readonly services: readonly SnapshotObject[];
  /** About the input rather than one object: skipped kinds, files that do not parse. */
  readonly notes: readonly string[];
  /** Every part has been read completely and is current. */
  readonly synced: boolean;
}

export interface SourceHealth {
  readonly name: string;
  readonly synced: boolean;
  readonly lastSyncAt: number | undefined;
  readonly lastError: string | undefined;
  readonly restarts: number;
}

/** An input problem the operator must fix (a file that does not parse); its objects keep their last good version. */
export interface InputProblem {
  readonly origin: string;
  readonly error: string;
}

export interface Source {
  readonly kind: 'cluster' | 'files';
  /** Starts reading; `onChange` is called (often, cheaply) whenever the snapshot may differ. */
  start(onChange: () => void): Promise<void>;
  stop(): Promise<void>;
  snapshot(): Snapshot;
  health(): readonly SourceHealth[];
  problems(): readonly InputProblem[];
}

/** Sorts loaded objects by kind; anything else is noted and skipped. */
export function snapshotOf(objects: readonly SnapshotObject[], synced: boolean, notes: readonly string[] = []): Snapshot {
  const firewalls: SnapshotObject[] = [];
  const policies: SnapshotObject[] = [];
  const services: SnapshotObject[] = [];
  const skipped: string[] = [];
  for (const o of objects) {
    const { apiVersion, kind } = o.object;
    if (kind === CWNP_KIND && apiVersion === CWNP_API_VERSION) policies.push(o);
    else if (kind === FIREWALL_KIND && apiVersion === FIREWALL_API_VERSION) firewalls.push(o);
    else if (kind === 'Service' && apiVersion === 'v1') services.push(o);
    else skipped.push(`${o.origin}: skipped ${displayName(String(apiVersion))}/${displayName(String(kind))}`);
  }
  return { firewalls, policies, services, notes: [...notes, ...skipped], synced };
}

/** Changes whenever any object of the snapshot may mean something else (keys are per version). */
export function snapshotKey(s: Snapshot): string {
  const keys: string[] = [];
  for (const part of [s.firewalls, s.policies, s.services]) {
    for (const o of part) keys.push(o.key);
    keys.push('|');
  }
  return keys.join('\n');
}
