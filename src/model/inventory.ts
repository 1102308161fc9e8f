/**
 * Sorting loaded objects into what the compiler takes: the Firewall, policies and Services.
 * Everything else is skipped with a note.
 */
import { Obj } from './fields';
import { CWNP_API_VERSION, CWNP_KIND, PolicyResult, parsePolicy } from './cwnp';
import { FIREWALL_API_VERSION, FIREWALL_KIND, FirewallResult, parseFirewall } from './firewall';
import { ServiceResult, parseService } from './service';
import { displayName } from './names';

export interface Inventory {
  readonly firewalls: readonly { origin: string; result: FirewallResult }[];
  readonly policies: readonly PolicyResult[];
  readonly services: readonly ServiceResult[];
  readonly notes: readonly string[];
}

export function classify(objects: readonly { origin: string; object: Obj }[]): Inventory {
  const firewalls: { origin: string; result: FirewallResult }[] = [];
  const policies: PolicyResult[] = [];
  const services: ServiceResult[] = [];
  const notes: string[] = [];
  for (const { origin, object } of objects) {
    const apiVersion = object.apiVersion;
    const kind = object.kind;
    if (kind === CWNP_KIND && apiVersion === CWNP_API_VERSION) policies.push(parsePolicy(object));
    else if (kind === FIREWALL_KIND && apiVersion === FIREWALL_API_VERSION) firewalls.push({ origin, result: parseFirewall(object) });
    else if (kind === 'Service' && apiVersion === 'v1') services.push(parseService(object));
    else notes.push(`${origin}: skipped ${displayName(String(apiVersion))}/${displayName(String(kind))}`);
  }
  return { firewalls, policies, services, notes };
}
