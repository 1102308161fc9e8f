/**
 * The command line as an operator uses it: exit codes, stdout/stderr contract, and apply in a real
 * network namespace (dry-run changes nothing).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exec } from '../src/nft/runner';
import { EXAMPLES, ROOT } from './helpers';

const CLI = path.join(ROOT, 'dist', 'cli.js');
const CLEAN = path.join(ROOT, 'test', 'fixtures', 'clean');

function cli(args: string[], prefix: string[] = []) {
  return exec([...prefix, process.execPath, CLI, ...args]);
}

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fwa-cli-'));
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('render', () => {
  test('prints one transaction that replaces only the agent table', async () => {
    const r = await cli(['render', '-f', path.join(EXAMPLES, 'baseline')]);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('add table inet firewall\ndelete table inet firewall\ntable inet firewall {')).toBe(true);
    expect(r.stdout).not.toContain('flush ruleset');
    expect(r.stdout.match(/^table /gm)).toHaveLength(1);
    // the example's toFQDNs policy is enforced: its sets, and DNS interception to the proxy
    expect(r.stderr).not.toContain('not enforced');
    expect(r.stdout).toMatch(/ip daddr @fqdn4-[0-9a-f]{8}-allow-to-example-com tcp dport 443 jump /);
    expect(r.stdout).toContain('dnat ip to 192.0.2.1:53');
  });

  test('one stderr line per rejected or ignored object, as <namespace>/<name>: <reason>', async () => {
    const r = await cli(['render', '-f', path.join(EXAMPLES, 'forbidden')]);
    expect(r.code).toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'firewall/allow-to-internet: ignored: egress[0].to[0].cidr 0.0.0.0/0 is outside allowedNetworks.egress',
        'firewall/broken-port-range: rejected: egress[0].ports[0].endPort 8000 is below port 8010',
        'default/outside: Service ignored: load balancer IP 203.0.113.99 is outside allowedNetworks.ingress; no rule',
      ]),
    );
    expect(lines.filter((l) => l.startsWith('firewall/allow-to-dns'))).toEqual([]);
  });

  test('List kinds and JSON are read; other kinds are skipped with a note', async () => {
    const r = await cli(['render', '-f', CLEAN]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('accept traffic for np allow-to-https');
    expect(r.stderr).toMatch(/note: .*policies\.json#items\[1\]: skipped v1\/ConfigMap/);
  });

  test('--mode and --state override', async () => {
    const forced = await cli(['render', '-f', path.join(EXAMPLES, 'baseline'), '--mode', 'forbidden']);
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain('firewall/allow-to-ntp: ignored');
    const disc = await cli(['render', '-f', path.join(EXAMPLES, 'baseline', 'policies.yaml'), '--state', 'disconnected']);
    expect(disc.code).toBe(0);
    expect(disc.stdout).not.toContain('vmap');
    const bad = await cli(['render', '-f', CLEAN, '--mode', 'open']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('must be one of baseline, restricted, forbidden');
  });

  test.each([
    ['a missing path', ['/nonexistent/fw.yaml'], /cannot read \(ENOENT\)/],
    ['malformed YAML', [tmpFile('bad.yaml', 'kind: Firewall\n  spec: [\n')], /malformed YAML/],
    ['no Firewall', [path.join(EXAMPLES, 'baseline', 'policies.yaml')], /no Firewall/],
    ['two Firewalls', [path.join(EXAMPLES, 'baseline'), path.join(EXAMPLES, 'forbidden', 'firewall.yaml')], /found 2 Firewalls/],
    [
      'an invalid Firewall',
      [tmpFile('fw.yaml', 'apiVersion: firewall.metal-stack.io/v2\nkind: Firewall\nmetadata: {name: fw, namespace: x}\nspec: {internalPrefixes: [nope]}\n')],
      /invalid Firewall: .*status.firewallNetworks has no private primary network.*spec.internalPrefixes\[0\]/,
    ],
  ])('exit 2 on unusable input: %s', async (_name, files, message) => {
    const r = await cli(['render', ...files.flatMap((f) => ['-f', f])]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(message);
  });
});

describe('check', () => {
  test('exit 0 when everything is deployed and nft accepts it', async () => {
    const r = await cli(['check', '-f', CLEAN]);
    expect(r.stderr).toContain('check: ok');
    expect(r.code).toBe(0);
  });

  test('exit 1 when a policy is rejected, ignored or not fully enforced', async () => {
    expect((await cli(['check', '-f', path.join(EXAMPLES, 'forbidden')])).code).toBe(1);
    expect((await cli(['check', '-f', path.join(EXAMPLES, 'baseline')])).code).toBe(0);
    const dir = mkdtempSync(path.join(tmpdir(), 'fwa-cli-'));
    const empty = { apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name: 'empty-fqdn', namespace: 'firewall' }, spec: { egress: [{ toFQDNs: [] }] } };
    writeFileSync(path.join(dir, 'empty.json'), JSON.stringify(empty));
    const r = await cli(['check', '-f', CLEAN, '-f', dir]);
    expect(r.stderr).toContain('firewall/empty-fqdn: not enforced: egress[0].toFQDNs is empty; this rule opens nothing');
    expect(r.code).toBe(1);
  });
});

describe('apply', () => {
  const ns = `fwa-cli-${process.pid}`;
  const inNs = ['ip', 'netns', 'exec', ns];

  beforeAll(async () => {
    await exec(['ip', 'netns', 'add', ns]);
  });
  afterAll(async () => {
    await exec(['ip', 'netns', 'del', ns]);
  });

  test('--dry-run shows the transaction and a diff, and changes nothing', async () => {
    const before = await exec([...inNs, 'nft', 'list', 'ruleset']);
    const r = await cli(['apply', '-f', CLEAN, '--dry-run'], inNs);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('add table inet firewall');
    expect(r.stdout).toContain('# diff against the kernel');
    expect(r.stdout).toMatch(/^\+\s+chain forward \{/m);
    const after = await exec([...inNs, 'nft', 'list', 'ruleset']);
    expect(after.stdout).toBe(before.stdout);
  });

  test('applies atomically, then a dry run of the same input shows no changes', async () => {
    const r = await cli(['apply', '-f', CLEAN], inNs);
    expect(r.stderr).toContain('apply: ok');
    expect(r.code).toBe(0);
    const listing = await exec([...inNs, 'nft', 'list', 'table', 'inet', 'firewall']);
    expect(listing.stdout).toContain('accept traffic for np allow-to-https');
    const again = await cli(['apply', '-f', CLEAN, '--dry-run'], inNs);
    expect(again.stdout).toContain('# no changes against the kernel');
    const changed = await cli(['apply', '-f', path.join(EXAMPLES, 'baseline'), '--dry-run'], inNs);
    expect(changed.stdout).toMatch(/^\+.*allow-to-dns/m);
  });
});
