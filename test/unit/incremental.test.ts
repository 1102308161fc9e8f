/** planIncremental on compiled tables: typed operations, deletions before additions, identity shortcut. */
import { cleanupTransaction, planIncremental } from '../../src/nft/incremental';
import { transactionText } from '../../src/nft/serialize';
import { Obj } from '../../src/model/fields';
import { compileObjects, cwnp, exampleFirewall } from '../helpers';

function p(name: string, cidr: string, port?: number): Obj {
  return cwnp(name, { egress: [{ to: [{ cidr }], ...(port ? { ports: [{ port }] } : {}) }] });
}

const table = (...objs: Obj[]) => compileObjects([exampleFirewall(), ...objs]).compiled.table;

test('a new policy: its chain, then its element; a moved element is deleted before it is added', () => {
  const a = table(p('b', '203.0.113.0/24', 443));
  const b = table(p('a', '203.0.113.0/25', 443), p('b', '203.0.113.0/24', 443));
  const plan = planIncremental(a, b)!;
  expect(plan.staleChains).toEqual([]);
  expect(plan.staleMaps).toEqual([]);
  expect([plan.elementsAdded, plan.elementsDeleted]).toEqual([2, 1]);
  const lines = transactionText(plan.tx).trimEnd().split('\n');
  expect(lines).toEqual([
    expect.stringMatching(/^add chain inet firewall cwnp-e-[0-9a-f]{8}-a$/),
    expect.stringMatching(/^flush chain inet firewall cwnp-e-[0-9a-f]{8}-a$/),
    expect.stringMatching(/^add rule inet firewall cwnp-e-[0-9a-f]{8}-a counter accept comment "accept traffic for np a"$/),
    expect.stringMatching(/^delete element inet firewall egress_ports_v4-00000000-0 \{ 203\.0\.113\.0\/24 \. tcp \. 443 \}$/),
    expect.stringMatching(
      /^add element inet firewall egress_ports_v4-00000000-0 \{ 203\.0\.113\.0\/25 \. tcp \. 443 : goto cwnp-e-[0-9a-f]{8}-a, 203\.0\.113\.128\/25 \. tcp \. 443 : goto cwnp-e-[0-9a-f]{8}-b \}$/,
    ),
  ]);
  // and back: the chain goes stale, to be deleted in a later transaction
  const back = planIncremental(b, a)!;
  expect(back.staleChains).toEqual([expect.stringMatching(/^cwnp-e-[0-9a-f]{8}-a$/)]);
  expect(back.tx.ops.map((o) => `${o.verb} ${o.kind}`)).toEqual(['delete element', 'add element']);
});

test('the same table plans nothing; a changed Firewall or accept chain needs a full sync', () => {
  const a = table(p('a', '203.0.113.0/24', 443));
  expect(planIncremental(a, table(p('a', '203.0.113.0/24', 443)))!.tx.ops).toEqual([]);
  const fw = exampleFirewall();
  (fw.spec as Obj).logAcceptedConnections = true;
  expect(planIncremental(a, compileObjects([fw, p('a', '203.0.113.0/24', 443)]).compiled.table)).toBeUndefined();
});

test('the element list of an unchanged shard is not compared (same array: skipped)', () => {
  const a = table(p('a', '203.0.113.0/24', 443));
  // elements that throw when read: the plan must not look at a list both tables share
  const trap = [Object.defineProperty({}, 'key', { get: () => { throw new Error('compared'); } })] as never[];
  const shared = { ...a, maps: a.maps.map((x) => (x.name === 'egress_ports_v4-00000000-0' ? { ...x, elements: trap } : x)) };
  expect(planIncremental(shared, { ...shared, maps: [...shared.maps] })!.tx.ops).toEqual([]);
});

test('cleanup deletes chains before the maps they look up', () => {
  const tx = cleanupTransaction({ family: 'inet', name: 'firewall' }, ['c1', 'm1'], ['m1']);
  expect(transactionText(tx)).toBe('delete chain inet firewall c1\ndelete chain inet firewall m1\ndelete map inet firewall m1\n');
});
