import { ObjectReport, PolicyAccount } from '../../src/compile/compile';
import { AgentMetrics } from '../../src/report/metrics';
import { ConfigError, loadConfig, parseConfig } from '../../src/daemon/config';
import { deviceStats, parseTableStats, rulesByAction } from '../../src/nft/stats';
import { policyStatus, statusChanges, warningEvents } from '../../src/report/status';
import { jsonLogger } from '../../src/report/log';
import { formatStatus } from '../../src/report/summary';

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

  test('fqdn_state: written as a merge patch; selectors gone become null; an unchanged state writes nothing', () => {
    const entry = { fqdn: 'a.example.com.', setName: 'fqdn4-x', version: 'ip', ips: ['203.0.113.9'], ipExpirationTimes: {} };
    const want: Record<string, Record<string, unknown[]>> = { same: { '*.example.com': [entry] }, moved: { 'b.example': [] }, gone: {} };
    const current: Record<string, { state: string; message: string; fqdn_state?: unknown }> = {
      same: { state: 'deployed', message: '', fqdn_state: { '*.example.com': [entry] } },
      moved: { state: 'deployed', message: '', fqdn_state: { 'a.example': [entry] } },
      gone: { state: 'deployed', message: '', fqdn_state: { 'a.example': [] } },
    };
    const changes = statusChanges(
      ['same', 'moved', 'gone'].map((n) => report(n, {})),
      (_ns, name) => current[name],
      (r) => want[r.ref.name],
    );
    expect(changes.map((c) => [c.name, c.status.fqdn_state])).toEqual([
      ['moved', { 'a.example': null, 'b.example': [] }],
      ['gone', null],
    ]);
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

describe('metrics', () => {
  // 185 bytes: nft would have cut a comment naming it; the metric label must not be
  const long = ['a', 'b', 'c'].map((l) => `p${l.repeat(60)}`).join('.');
  const cwnpAccount = (name: string, direction: 'egress' | 'ingress'): PolicyAccount => ({
    kind: 'ClusterwideNetworkPolicy',
    ref: { namespace: 'firewall', name },
    direction,
    policy: name,
  });
  const accounting = new Map<string, PolicyAccount>([
    ['cwnp-e-1-a', cwnpAccount('a', 'egress')],
    ['cwnp-e-2-long', cwnpAccount(long, 'egress')],
    ['cwnp-i-2-long', cwnpAccount(long, 'ingress')],
    ['svc-3-default/web', { kind: 'Service', ref: { namespace: 'default', name: 'web' }, direction: 'service', policy: 'default/web' }],
  ]);
  const rule = (chain: string, comment: string, packets: number) =>
    ({ rule: { chain, comment, expr: [{ counter: { packets, bytes: packets * 100 } }, { accept: null }] } }) as const;
  const stats = parseTableStats(
    JSON.stringify({
      nftables: [
        { counter: { name: 'drop_total', packets: 4, bytes: 400 } },
        { counter: { name: 'internal_out', packets: 1, bytes: 60 } },
        rule('cwnp-e-1-a', 'accept traffic for np a', 2),
        // the comment as nft lists it: cut at 128 bytes; the chain says whose it is
        rule('cwnp-e-2-long', `accept traffic for np ${long}`.slice(0, 127) + '~', 5),
        rule('cwnp-i-2-long', 'anything', 7),
        rule('svc-3-default/web', 'accept traffic for k8s service default/web', 1),
        // a comment that looks like a policy's, in a chain that is not accounted: not counted
        rule('forward', 'accept traffic for np a', 100),
      ],
    }),
  );
  const metrics = () =>
    new AgentMetrics({
      stats: async () => stats,
      accounting: () => accounting,
      snapshot: () => ({ state: 'connected', stale: false, objects: OBJECTS, watches: [], inputProblems: 0 }),
    });

  test('per-policy counters come from the accounting of the chain, with full names', async () => {
    const text = await metrics().registry.metrics();
    const lines = text.split('\n').filter((l) => l.startsWith('firewall_agent_policy_accepted_connections_total{'));
    expect(lines.sort()).toEqual(
      [
        'firewall_agent_policy_accepted_connections_total{policy="a",direction="egress"} 2',
        `firewall_agent_policy_accepted_connections_total{policy="${long}",direction="egress"} 5`,
        `firewall_agent_policy_accepted_connections_total{policy="${long}",direction="ingress"} 7`,
        'firewall_agent_policy_accepted_connections_total{policy="default/web",direction="service"} 1',
      ].sort(),
    );
    expect(text).toContain('firewall_agent_dropped_packets_total{reason="policy"} 4');
    expect(text).toContain('firewall_agent_network_bytes_total{network="internal",direction="out"} 60');
    expect(text).toContain('firewall_agent_objects{kind="ClusterwideNetworkPolicy",outcome="deployed"} 3');
    expect(text).toContain('firewall_agent_objects{kind="Service",outcome="rejected"} 0');
  });

  test('without a table there are no per-policy series', async () => {
    const m = new AgentMetrics({
      stats: async () => undefined,
      accounting: () => accounting,
      snapshot: () => ({ state: 'disconnected', stale: false, objects: OBJECTS, watches: [], inputProblems: 0 }),
    });
    const text = await m.registry.metrics();
    expect(text).not.toMatch(/^firewall_agent_policy_accepted_connections_total\{/m);
    expect(text).toContain('firewall_agent_state{state="disconnected"} 1');
    // label values exist before anything happened: rates and alerts work from the first scrape
    for (const line of [
      'firewall_agent_dropped_packets_total{reason="ratelimit"} 0',
      'firewall_agent_network_bytes_total{network="external",direction="in"} 0',
      'firewall_agent_applies_total{sync="incremental"} 0',
      'firewall_agent_sync_duration_seconds_count{sync="full"} 0',
      'firewall_agent_writeback_failures_total{kind="monitor"} 0',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).not.toMatch(/^nodejs_active_handles_total/m);
  });
});

const OBJECTS = {
  ClusterwideNetworkPolicy: { deployed: 3, ignored: 0, rejected: 0 },
  Service: { deployed: 0, ignored: 0, rejected: 0 },
};

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

describe('firewall-agent status', () => {
  test('shows why the agent is stuck, since when, the last apply of any state, and sync counts', () => {
    const text = formatStatus(
      {
        firewall: 'fw',
        namespace: 'shoot--x',
        state: 'disconnected',
        lastApply: '2026-11-21T12:00:00.000Z',
        lastApplyState: 'disconnected',
        syncs: { full: 1, incremental: 0, failuresInARow: 0 },
        problems: [{ source: 'watch seed/firewalls', error: 'cannot read /etc/firewall-controller/.seed-kubeconfig: ENOENT', since: '2026-11-21T12:00:01.000Z' }],
        policies: { deployed: 0, ignored: 0, rejected: 0 },
      },
      '',
    );
    expect(text).toContain('last apply    2026-11-21T12:00:00.000Z (disconnected ruleset)');
    expect(text).toContain('syncs         1 full, 0 incremental');
    expect(text).toContain('problem       watch seed/firewalls: cannot read /etc/firewall-controller/.seed-kubeconfig: ENOENT (since 2026-11-21T12:00:01.000Z)');
  });
});
