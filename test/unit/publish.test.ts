/**
 * The metrics Service in the shoot: what is meant, and when the cluster's copy has drifted from it
 * (only what is ours counts: labels others add, fields the API server fills in do not).
 */
import { parseAddress } from '../../src/model/address';
import { endpointsDrifted, publishedObjects, serviceDrifted, sliceDrifted } from '../../src/report/publish';
import { compileObjects, exampleFirewall } from '../helpers';

const ips = ['192.0.2.1', '2001:db8:1::1'].map((a) => {
  const r = parseAddress(a);
  if (!r.ok) throw new Error(r.error);
  return r.value;
});

test('a headless Service without selector, classic Endpoints (not mirrored) and one EndpointSlice per family', () => {
  const p = publishedObjects(ips, 9630);
  expect(p.service.spec).toEqual({ clusterIP: 'None', ports: [{ name: 'metrics', port: 9630, targetPort: 9630, protocol: 'TCP' }] });
  expect(p.service.metadata).toMatchObject({ name: 'firewall-agent', namespace: 'firewall', labels: { app: 'firewall-agent' } });
  expect(p.endpoints.subsets).toEqual([{ addresses: [{ ip: '192.0.2.1' }, { ip: '2001:db8:1::1' }], ports: [{ name: 'metrics', port: 9630, protocol: 'TCP' }] }]);
  expect(p.endpoints.metadata?.labels?.['endpointslice.kubernetes.io/skip-mirror']).toBe('true');
  expect(p.slices.map((s) => [s.metadata?.name, s.addressType, s.endpoints![0]!.addresses, s.metadata?.labels?.['kubernetes.io/service-name']])).toEqual([
    ['firewall-agent-ipv4', 'IPv4', ['192.0.2.1'], 'firewall-agent'],
    ['firewall-agent-ipv6', 'IPv6', ['2001:db8:1::1'], 'firewall-agent'],
  ]);
});

test('drift: only what is ours counts', () => {
  const want = publishedObjects(ips, 9630);
  // as the API server returns it: defaults filled in, other labels and annotations added
  const svc = { ...want.service, metadata: { ...want.service.metadata, labels: { ...want.service.metadata!.labels, team: 'x' }, resourceVersion: '7' }, spec: { ...want.service.spec, sessionAffinity: 'None', type: 'ClusterIP' } };
  expect(serviceDrifted(svc, want.service)).toBe(false);
  expect(serviceDrifted(undefined, want.service)).toBe(true);
  expect(serviceDrifted({ ...svc, spec: { ...svc.spec, ports: [{ name: 'metrics', port: 9100, targetPort: 9100, protocol: 'TCP' }] } }, want.service)).toBe(true);
  expect(serviceDrifted({ ...svc, spec: { ...svc.spec, selector: { app: 'x' } } }, want.service)).toBe(true);
  expect(serviceDrifted({ ...svc, metadata: { ...svc.metadata, labels: { team: 'x' } } }, want.service)).toBe(true);
  expect(endpointsDrifted(want.endpoints, want.endpoints)).toBe(false);
  expect(endpointsDrifted({ ...want.endpoints, subsets: [{ addresses: [{ ip: '192.0.2.9' }], ports: want.endpoints.subsets![0]!.ports }] }, want.endpoints)).toBe(true);
  const slice = want.slices[0]!;
  expect(sliceDrifted({ ...slice, endpoints: [{ ...slice.endpoints![0]!, nodeName: 'n' }] }, slice)).toBe(false);
  expect(sliceDrifted({ ...slice, endpoints: [{ addresses: ['192.0.2.9'], conditions: { ready: true } }] }, slice)).toBe(true);
});

test('the published port is accepted from the node network only, in our own input chain', () => {
  const { text } = compileObjects([exampleFirewall()], {});
  expect(text).not.toContain('hook input');
  const withPort = compileObjects([exampleFirewall()], { metricsPort: 9630 }).text;
  expect(withPort).toContain('type filter hook input priority 0; policy accept;');
  expect(withPort).toContain('iifname { "vlan3981", "vrf3981" } tcp dport 9630 counter accept comment "metrics scrapes from the node network"');
  expect(withPort).toContain('tcp dport 9630 counter drop comment "metrics only from the node network"');
});
