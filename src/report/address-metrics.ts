/** Metrics of the egress SNAT address reconciliation (src/host/reconcile.ts). */
import { Counter, Gauge, Registry } from 'prom-client';
import type { AddressReconcileResult } from '../host/reconcile';

/** Registers the metrics in `r`; returns what records one reconcile's result. */
export function addressMetrics(r: Registry): (result: AddressReconcileResult) => void {
  const errors = new Gauge({ name: 'firewall_agent_address_errors', help: 'Failures of the last SNAT address reconcile (interfaces, addresses)', registers: [r] });
  const changes = new Counter({ name: 'firewall_agent_address_changes_total', help: 'SNAT addresses added to or removed from interfaces', labelNames: ['action'], registers: [r] });
  for (const action of ['added', 'removed']) changes.inc({ action }, 0);
  return (result) => {
    errors.set(result.errors.length);
    if (result.added > 0) changes.inc({ action: 'added' }, result.added);
    if (result.removed > 0) changes.inc({ action: 'removed' }, result.removed);
  };
}
