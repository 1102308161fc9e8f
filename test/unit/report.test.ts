import { ObjectReport } from '../../src/compile/compile';
import { ConfigError, loadConfig, parseConfig } from '../../src/daemon/config';
import { deviceStats, parseTableStats, rulesByAction } from '../../src/nft/stats';
import { policyStatus, statusChanges, warningEvents } from '../../src/report/status';
import { jsonLogger } from '../../src/report/log';

function report(name: string, patch: Partial<ObjectReport>): ObjectReport {
  return { kind: 'ClusterwideNetworkPolicy', ref: { namespace: 'firewall', name }, outcome: 'deployed', warnings: [], unenforced: [], ...patch };
}

describe('policy status', () => {
  test('deployed, ignored and rejected map onto the CRD states with a reason', () => {
    expect(policyStatus(report('a', {}))).toEqual({ state: 'deployed', message: '' });
    expect(policyStatus(report('b', { unenforced: ['egress[0].toFQDNs is not enforced yet'] }))).toEqual({
      state: 'deployed',
      message: 'not enforced: egress[0].toFQDNs is not enforced yet',
    });
    expect(policyStatus(report('c', { outcome: 'ignored', reason: 'x is outside' }))).toEqual({ state: 'ignored', message: 'x is outside' });
    expect(policyStatus(report('d', { outcome: 'rejected', reason: 'bad port' }))).toEqual({ state: 'ignored', message: 'rejected: bad port' });
  });

  test('only changed statuses are written', () => {
    const reports = [report('same', {}), report('changed', { outcome: 'ignored', reason: 'r' }), report('new', {})];
    const current: Record<string, { state: string; message: string }> = {
      same: { state: 'deployed', message: '' },
      changed: { state: 'deployed', message: '' },
    };
    expect(statusChanges(reports, (_ns, name) => current[name]).map((c) => c.name)).toEqual(['changed', 'new']);
  });

  test('events: ForbiddenCIDR for forbidden mode, Inapplicable otherwise, none for deployed', () => {
    const ev = warningEvents([
      report('ok', {}),
      report('f', { outcome: 'ignored', forbidden: true, reason: 'outside' }),
      report('bad', { outcome: 'rejected', reason: 'broken' }),
    ]);
    expect(ev.map((e) => [e.name, e.reason, e.message])).toEqual([
      ['f', 'ForbiddenCIDR', 'ignored: outside'],
      ['bad', 'Inapplicable', 'rejected: broken'],
    ]);
  });
});

describe('nft counters', () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { json_schema_version: 1 } },
      { counter: { family: 'inet', name: 'external_in', table: 'firewall', handle: 1, packets: 3, bytes: 300 } },
      { counter: { family: 'inet', name: 'internal_out', table: 'firewall', handle: 2, packets: 1, bytes: 60 } },
      { rule: { chain: 'c1', comment: 'accept traffic for np a', expr: [{ counter: { packets: 2, bytes: 120 } }, { accept: null }] } },
      { rule: { chain: 'c2', comment: 'accept traffic for np a', expr: [{ counter: { packets: 1, bytes: 60 } }, { accept: null }] } },
      { rule: { chain: 'f', comment: 'never forward', expr: [{ counter: { packets: 5, bytes: 500 } }, { drop: null }] } },
      { rule: { chain: 'p', comment: 'masquerade', expr: [{ counter: { packets: 7, bytes: 700 } }, { masquerade: null }] } },
      { rule: { chain: 'f', comment: 'no counter', expr: [{ accept: null }] } },
    ],
  });

  test('rules by action and comment, summed per comment; devices from the accounting counters', () => {
    const s = parseTableStats(json);
    expect(rulesByAction(s)).toEqual({
      accept: { 'accept traffic for np a': { counter: { packets: 3, bytes: 180 } } },
      drop: { 'never forward': { counter: { packets: 5, bytes: 500 } } },
      other: { masquerade: { counter: { packets: 7, bytes: 700 } } },
    });
    expect(deviceStats(s)).toEqual({ internal: { in: 0, out: 60 }, external: { in: 300, out: 0 } });
  });
});

describe('daemon config', () => {
  test('flags override the file, defaults fill the rest', () => {
    const c = loadConfig(undefined, { firewallName: 'fw', dryRun: undefined });
    expect(c).toMatchObject({ seedKubeconfig: '/etc/firewall-controller/.seed-kubeconfig', firewallName: 'fw', dryRun: false, logLevel: 'info' });
  });

  test('unknown keys and bad values are errors naming the file', () => {
    expect(() => parseConfig({ seedKubeconfg: 'x' }, 'agent.yaml')).toThrow(new ConfigError('agent.yaml: seedKubeconfg is not a known setting'));
    expect(() => parseConfig({ mode: 'open' }, 'agent.yaml')).toThrow(/mode must be baseline, restricted or forbidden/);
    expect(() => parseConfig({ dryRun: 'yes' }, 'agent.yaml')).toThrow(/dryRun must be true or false/);
  });
});

test('logs are one JSON object per line with level, time and message', () => {
  const lines: string[] = [];
  const log = jsonLogger((l) => lines.push(l), 'info').child({ component: 'test' });
  log.debug('hidden');
  log.warn('something', { error: new Error('boom'), n: 1 });
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'warn', msg: 'something', component: 'test', error: 'boom', n: 1 });
});
