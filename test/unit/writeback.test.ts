/** Write-back's dedup maps stay bounded over churn: entries of vanished objects are pruned. */
import { ObjectReport } from '../../src/compile/compile';
import { jsonLogger } from '../../src/report/log';
import { WriteBack } from '../../src/report/writeback';
import type { ClusterSource } from '../../src/sources/cluster';

type Obj = { metadata: { name: string; namespace: string; uid: string }; status?: unknown };

function rejected(name: string): ObjectReport {
  return { kind: 'ClusterwideNetworkPolicy', ref: { namespace: 'firewall', name }, outcome: 'rejected', reason: 'bad port', warnings: [], unenforced: [] };
}

test('a day of churn: statuses and events are written once per change, and what vanished is forgotten', async () => {
  let policies: Obj[] = [];
  const patched: string[] = [];
  const created: string[] = [];
  const api = {
    patchPolicyStatus: async (_ns: string, name: string) => void patched.push(name),
    createEvent: async (_ns: string, e: { involvedObject: { name: string } }) => void created.push(e.involvedObject.name),
  };
  const source = { shootApi: api, policyObjects: () => policies, serviceObjects: () => [], firewallObject: () => undefined } as unknown as ClusterSource;
  const wb = new WriteBack({ source, name: 'fw', log: jsonLogger(() => undefined), stats: async () => undefined, view: () => ({ lastRun: undefined, lastRunAgainstSeed: undefined, message: '' }) });
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 5));
  for (let round = 0; round < 200; round++) {
    const names = [`p${round}`, `q${round}`];
    policies = names.map((n) => ({ metadata: { name: n, namespace: 'firewall', uid: `${n}-uid` } }));
    const reports = names.map(rejected);
    wb.report(reports);
    await settle();
    wb.report(reports); // the same again: nothing new to write
    await settle();
  }
  expect(patched).toHaveLength(400);
  expect(created).toHaveLength(400);
  expect(wb.tracked.written).toBeLessThanOrEqual(2);
  expect(wb.tracked.emitted).toBeLessThanOrEqual(2);
  await wb.stop();
});
