/**
 * Sorted and parsed objects for tests and benchmarks that compile in-memory objects: the same
 * sorting by kind as every source (snapshotOf), then each object parsed.
 */
import { snapshotOf } from '../sources/source';
import { Obj } from './fields';
import { PolicyResult, parsePolicy } from './cwnp';
import { FirewallResult, parseFirewall } from './firewall';
import { ServiceResult, parseService } from './service';

export interface Inventory {
  readonly firewalls: readonly { origin: string; result: FirewallResult }[];
  readonly policies: readonly PolicyResult[];
  readonly services: readonly ServiceResult[];
  readonly notes: readonly string[];
}

export function classify(objects: readonly { origin: string; object: Obj }[]): Inventory {
  const s = snapshotOf(
    objects.map((o, i) => ({ key: `${i}`, ...o })),
    true,
  );
  return {
    firewalls: s.firewalls.map((o) => ({ origin: o.origin, result: parseFirewall(o.object) })),
    policies: s.policies.map((o) => parsePolicy(o.object)),
    services: s.services.map((o) => parseService(o.object)),
    notes: s.notes,
  };
}
