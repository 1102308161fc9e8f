/**
 * The command line as an operator uses it: exit codes (0 ok, 1 not deployed / refused / changes
 * pending, 2 unusable input or usage, 3 the environment cannot do it), one-line errors on stderr,
 * `check` without root, `diff`, and apply in a real network namespace (dry-run changes nothing).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exec } from '../src/nft/runner';
import { EXAMPLES, ROOT } from './helpers';

const CLI = path.join(ROOT, 'dist', 'cli.js');
const CLEAN = path.join(ROOT, 'test', 'fixtures', 'clean');
/** Runs as the unprivileged user `nobody` (uid 65534); it can read the repository, not /tmp/fwa-cli-*. */
const NOBODY = ['runuser', '-u', 'nobody', '--'];

function cli(args: string[], prefix: string[] = []) {
  return exec([...prefix, process.execPath, CLI, ...args]);
}

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fwa-cli-'));
  tmpDirs.push(dir);
  return dir;
}

function tmpFile(name: string, text: string): string {
  const file = path.join(tmpDir(), name);
  writeFileSync(file, text);
  return file;
}

/** An error is exactly one line on stderr (besides `note:` lines about the input), without a stack trace. */
function oneErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '' && !l.startsWith('note: '));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
}

function policyFile(name: string, spec: unknown): string {
  return tmpFile(`${name}.json`, JSON.stringify({ apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name, namespace: 'firewall' }, spec }));
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
  });

  test.each([
    ['a missing path', ['/nonexistent/fw.yaml'], 'error: /nonexistent/fw.yaml: cannot read (ENOENT)'],
    ['malformed YAML', [tmpFile('bad.yaml', 'kind: Firewall\n  spec: [\n')], /^error: \/.*\/bad\.yaml:1: malformed YAML\/JSON: Nested mappings are not allowed in compact mappings \(column 7\)$/],
    ['malformed JSON', [tmpFile('bad.json', '{"kind": "Firewall",\n "spec": {]}\n')], /^error: \/.*\/bad\.json:2: malformed JSON: Expected property name or '}' \(column 11\)$/],
    ['a key given twice', [tmpFile('dup.json', '{"kind": "Firewall", "kind": "List"}')], /^error: \/.*\/dup\.json:1: malformed YAML\/JSON: Map keys must be unique \(column 22\)$/],
    ['no Firewall', [path.join(EXAMPLES, 'baseline', 'policies.yaml')], /no Firewall/],
    ['two Firewalls', [path.join(EXAMPLES, 'baseline'), path.join(EXAMPLES, 'forbidden', 'firewall.yaml')], /found 2 Firewalls/],
    [
      'an invalid Firewall',
      [tmpFile('fw.yaml', 'apiVersion: firewall.metal-stack.io/v2\nkind: Firewall\nmetadata: {name: fw, namespace: x}\nspec: {internalPrefixes: [nope]}\n')],
      /invalid Firewall: .*status.firewallNetworks has no private primary network.*spec.internalPrefixes\[0\]/,
    ],
  ])('exit 2 on unusable input, one line: %s', async (_name, files, message) => {
    const r = await cli(['render', ...files.flatMap((f) => ['-f', f])]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const line = oneErrorLine(r.stderr);
    if (typeof message === 'string') expect(line).toBe(message);
    else expect(line).toMatch(message);
    expect(line).not.toMatch(/:\s*$/); // no dangling colon
  });

  test('a directory without input files says so (not "no Firewall")', async () => {
    const dir = tmpDir();
    writeFileSync(path.join(dir, 'notes.txt'), 'nothing to see\n');
    const r = await cli(['render', '-f', dir]);
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toBe(`error: no input files in ${dir} (looked for *.yaml, *.yml, *.json)`);
  });

  test('a YAML alias bomb is refused in one line naming the file', async () => {
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x,x]', ...Array.from({ length: 8 }, (_, i) => `${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(',')}]`)].join('\n');
    const file = tmpFile('bomb.yaml', bomb);
    const r = await cli(['render', '-f', path.join(EXAMPLES, 'baseline'), '-f', file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toBe(`error: ${file}:1: refused YAML document: its aliases expand too far (more than 100 alias copies: an alias bomb?)`);
    expect(r.stderr).not.toContain('ReferenceError');
  });
});

describe('input size limits', () => {
  test('a file over 8 MiB is refused at once, naming the limit', async () => {
    const file = tmpFile('big.yaml', `# ${'x'.repeat(9 * 1024 * 1024)}\n`);
    const t0 = Date.now();
    const r = await cli(['render', '-f', file]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toBe(`error: ${file}: ${9 * 1024 * 1024 + 3} bytes, larger than 8 MiB, the limit for one input file; split it`);
  });

  test('a policy larger than an API server stores (200,000 prefixes) is refused, naming file, object and field', async () => {
    const to = Array.from({ length: 200000 }, (_, i) => ({ cidr: `10.${(i >> 15) & 255}.${(i >> 7) & 255}.${(i & 127) * 2}/32` }));
    const file = policyFile('huge', { egress: [{ to, ports: [{ port: 443 }] }] });
    const t0 = Date.now();
    const r = await cli(['render', '-f', path.join(EXAMPLES, 'baseline'), '-f', file]);
    expect(Date.now() - t0).toBeLessThan(10000); // was 12-26 s and 1.1-1.3 GiB before the limit
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(
      new RegExp(`^error: ${file}: ClusterwideNetworkPolicy firewall/huge: \\d+ bytes as JSON, more than the 1\\.5 MiB an API server stores for one object; its longest list is spec\\.egress\\[0\\]\\.to with 200000 entries$`),
    );
  });
});

describe('IPv4 inside IPv6 addresses', () => {
  test('::ffff:a.b.c.d is kept exact; the deprecated ::a.b.c.d is rejected naming the field', async () => {
    const mapped = policyFile('mapped', { egress: [{ to: [{ cidr: '::ffff:203.0.113.0/120', except: ['::ffff:203.0.113.11/128'] }], ports: [{ port: 443 }] }] });
    const compat = policyFile('compat', { egress: [{ to: [{ cidr: '::/0', except: ['::203.0.113.11/128'] }], ports: [{ port: 443 }] }] });
    const r = await cli(['render', '-f', path.join(EXAMPLES, 'baseline'), '-f', mapped, '-f', compat]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('::ffff:cb00:7100-::ffff:cb00:710a');
    expect(r.stdout).toContain('::ffff:cb00:710c-::ffff:cb00:71ff');
    expect(r.stderr).toContain(
      'firewall/compat: rejected: egress[0].to[0].except[0] "::203.0.113.11/128" is not a CIDR: "::203.0.113.11" is an IPv4-compatible IPv6 address (deprecated, RFC 4291 2.5.5.1); write 203.0.113.11 for the IPv4 address or ::ffff:203.0.113.11 for the IPv4-mapped IPv6 address',
    );
    expect(r.stderr).not.toContain('firewall/mapped');
    const check = await cli(['check', '-f', path.join(EXAMPLES, 'baseline'), '-f', compat]);
    expect(check.code).toBe(1);
  });
});

describe('usage errors exit 2 in one line; help and version exit 0', () => {
  test.each([
    [['render', '--mode', 'bogus'], "error: option '--mode <mode>' argument 'bogus' is invalid. must be one of baseline, restricted, forbidden (see --help)"],
    [['render', '--state', 'open'], "error: option '--state <state>' argument 'open' is invalid. must be one of connected, disconnected (see --help)"],
    [['render', '--mdoe', 'x'], "error: unknown option '--mdoe' (Did you mean --mode?) (see --help)"],
    [['bogus'], "error: unknown command 'bogus' (see --help)"],
    [['render', '-f'], "error: option '-f, --file <path>' argument missing (see --help)"],
    [['rbac'], "error: required option '--cluster <cluster>' not specified (see --help)"],
    [['rbac', '--cluster', 'moon'], "error: option '--cluster <cluster>' argument 'moon' is invalid. Allowed choices are seed, shoot. (see --help)"],
    [['render', 'extra'], "error: too many arguments for 'render'. Expected 0 arguments but got 1. (see --help)"],
  ])('%j', async (args, line) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toBe(line);
  });

  test('no command: the help on stderr, exit 2', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: firewall-agent [options] [command]');
    expect(r.stdout).toBe('');
  });

  test('--help, help COMMAND and --version: exit 0', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^\s+diff \[options\]/m);
    const sub = await cli(['help', 'diff']);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain('Usage: firewall-agent diff [options]');
    const version = await cli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+/);
  });

  test('render without input: exit 2; the disconnected ruleset needs none', async () => {
    const r = await cli(['render']);
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toBe('error: no input: give at least one -f PATH');
    const disc = await cli(['render', '--state', 'disconnected']);
    expect(disc.code).toBe(0);
    expect(disc.stdout).toContain('table inet firewall');
  });

  test('--debug adds the stack trace, before or after the command', async () => {
    for (const args of [['--debug', 'render', '-f', '/nonexistent'], ['render', '-f', '/nonexistent', '--debug']]) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr.split('\n')[0]).toBe('error: /nonexistent: cannot read (ENOENT)');
      expect(r.stderr).toMatch(/^\s+at .*files\.js/m);
    }
  });
});

describe('status', () => {
  test('an agent that does not answer: exit 3 with a hint', async () => {
    // a port nobody listens on: bound once, then closed
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const r = await cli(['status', '--address', `127.0.0.1:${port}`]);
    expect(r.code).toBe(3);
    expect(oneErrorLine(r.stderr)).toMatch(new RegExp(`^error: status: the agent does not answer on 127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\); hint: is firewall-agent\\.service running\\?$`));
  });

  test('a bad --address: exit 2', async () => {
    const r = await cli(['status', '--address', 'nope']);
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toBe('error: --address nope: must be host:port');
  });
});

describe('run', () => {
  test.each([
    ['a missing config file', () => '/nonexistent/config.yaml', /^error: \/nonexistent\/config\.yaml: ENOENT: no such file or directory/],
    ['an unknown setting', () => tmpFile('c.yaml', 'bogusKey: 1\n'), /^error: \/.*\/c\.yaml: bogusKey is not a known setting$/],
    ['malformed YAML', () => tmpFile('c.yaml', 'a: [\n'), /^error: \/.*\/c\.yaml: Flow sequence in block collection must be sufficiently indented and end with a \] \(line 2, column 1\)$/],
  ])('a configuration error (%s): exit 2 in one line, before anything starts', async (_what, file, line) => {
    const r = await cli(['run', '--config', file()]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toMatch(line);
  });
});

describe('crds', () => {
  test('--dir that does not exist: one line, exit 2', async () => {
    const r = await cli(['crds', '--dir', '/nonexistent']);
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toBe('error: crds --dir /nonexistent: no such directory');
  });

  test('--dir that is a file: exit 2', async () => {
    const file = tmpFile('x.yaml', '');
    const r = await cli(['crds', '--dir', file]);
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toBe(`error: crds --dir ${file}: not a directory`);
  });

  test('--dir the user may not write to: exit 3 with a hint', async () => {
    const dir = tmpDir();
    chmodSync(dir, 0o755);
    const r = await cli(['crds', '--dir', dir], NOBODY);
    expect(r.code).toBe(3);
    expect(oneErrorLine(r.stderr)).toMatch(new RegExp(`^error: crds: cannot write ${dir}/.*\\.yaml \\(EACCES\\); hint: choose a directory this user may write to$`));
  });

  test('writes one file per CRD', async () => {
    const dir = tmpDir();
    const r = await cli(['crds', '--dir', dir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});

describe('rbac', () => {
  test('--service-account must be NAMESPACE/NAME', async () => {
    const r = await cli(['rbac', '--cluster', 'shoot', '--service-account', 'justname']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneErrorLine(r.stderr)).toBe('error: rbac --service-account "justname" must be NAMESPACE/NAME, e.g. firewall/firewall-agent');
    const ok = await cli(['rbac', '--cluster', 'shoot', '--service-account', 'kube-system/agent']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('namespace: kube-system\n');
    expect(ok.stdout).toContain('name: agent\n');
  });

  test('seed without --secret: the objects, and a warning on stderr that shoot access from the Firewall is not covered', async () => {
    const r = await cli(['rbac', '--cluster', 'seed', '--namespace', 'shoot--demo']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('kind: Role\n');
    expect(r.stdout).not.toContain('secrets');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^warning: rbac: no --secret given: .*status\.shootAccess.*--shoot-kubeconfig$/);
    const withSecrets = await cli(['rbac', '--cluster', 'seed', '--namespace', 'shoot--demo', '--secret', 'generic', '--secret', 'token']);
    expect(withSecrets.code).toBe(0);
    expect(withSecrets.stderr).toBe('');
    expect(withSecrets.stdout).toContain('- secrets');
  });

  test('seed without --namespace: exit 2', async () => {
    const r = await cli(['rbac', '--cluster', 'seed']);
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(/^error: rbac --cluster seed needs --namespace/);
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
    const dir = tmpDir();
    const empty = { apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name: 'empty-fqdn', namespace: 'firewall' }, spec: { egress: [{ toFQDNs: [] }] } };
    writeFileSync(path.join(dir, 'empty.json'), JSON.stringify(empty));
    const r = await cli(['check', '-f', CLEAN, '-f', dir]);
    expect(r.stderr).toContain('firewall/empty-fqdn: not enforced: egress[0].toFQDNs is empty; this rule opens nothing');
    expect(r.code).toBe(1);
  });

  test('works without root (nft -c in a user and network namespace)', async () => {
    expect((await exec([...NOBODY, 'id', '-u'])).stdout.trim()).toBe('65534');
    const r = await cli(['check', '-f', CLEAN], NOBODY);
    expect(r.stderr).toContain('check: ok');
    expect(r.code).toBe(0);
    const forbidden = await cli(['check', '-f', path.join(EXAMPLES, 'forbidden')], NOBODY);
    expect(forbidden.stderr).toContain('check: 4 object(s) would not be fully deployed');
    expect(forbidden.code).toBe(1);
  });

  test('without root and without user namespaces: exit 3 with a hint', async () => {
    // nobody inside a user namespace whose user.max_user_namespaces is 0, as on a host that disables them
    const script = [
      'unshare --user -- sh -c \'while [ "$(id -u)" != 0 ] || [ "$(id -g)" != 0 ]; do sleep 0.01; done',
      '  exec sh -c "echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \\"\\$@\\"" sh "$@"\' sh "$@" &',
      'pid=$!',
      'while [ "$(readlink /proc/$pid/ns/user)" = "$(readlink /proc/self/ns/user)" ]; do sleep 0.01; done',
      "echo '0 0 65536' > /proc/$pid/gid_map",
      "echo '0 0 65536' > /proc/$pid/uid_map",
      'wait $pid',
    ].join('\n');
    const r = await exec(['bash', '-c', script, 'bash', process.execPath, CLI, 'check', '-f', CLEAN]);
    expect(r.code).toBe(3);
    expect(oneErrorLine(r.stderr)).toMatch(
      /^error: nft check: cannot create a user and network namespace \(unshare: unshare failed: .*\); hint: user namespaces are not available to this user .*; run as root instead$/,
    );
  });

  test('without nft: exit 3 with the package to install', async () => {
    const r = await exec(['env', 'PATH=/nonexistent', process.execPath, CLI, 'check', '-f', CLEAN]);
    expect(r.code).toBe(3);
    expect(oneErrorLine(r.stderr)).toBe('error: nft: command not found; hint: install nftables (Debian: apt-get install nftables)');
  });

  test('apply and diff without root: exit 3 with a hint', async () => {
    for (const command of ['apply', 'diff']) {
      const r = await cli([command, '-f', CLEAN], NOBODY);
      expect(r.code).toBe(3);
      expect(oneErrorLine(r.stderr)).toMatch(/^error: nft (check|list): .*Operation not permitted.*; hint: this needs root \(CAP_NET_ADMIN\); `check` also works without root$/);
    }
  });
});

describe('apply and diff in a network namespace', () => {
  const ns = `fwa-${process.pid}-${randomBytes(3).toString('hex')}-cli`;
  const inNs = ['ip', 'netns', 'exec', ns];
  const listRuleset = async () => (await exec([...inNs, 'nft', 'list', 'ruleset'])).stdout;

  beforeAll(async () => {
    const r = await exec(['ip', 'netns', 'add', ns]);
    if (r.code !== 0) throw new Error(`ip netns add ${ns}: ${r.stderr}`);
  });
  afterAll(async () => {
    await exec(['ip', 'netns', 'del', ns]);
  });

  test('diff against an empty kernel: only the unified diff, exit 1, nothing changed', async () => {
    const before = await listRuleset();
    const r = await cli(['diff', '-f', CLEAN], inNs);
    expect(r.code).toBe(1);
    expect(r.stdout.startsWith('===================================================================\n--- kernel\n+++ rendered\n@@ ')).toBe(true);
    expect(r.stdout).toMatch(/^\+\s+chain forward \{/m);
    expect(r.stdout).not.toContain('add table inet firewall'); // not the transaction
    expect(r.stdout.split('\n').filter((l) => l !== '' && !/^([-+ @=]|\\)/.test(l))).toEqual([]);
    expect(await listRuleset()).toBe(before);
  });

  test('--dry-run shows the transaction and a diff, and changes nothing', async () => {
    const before = await listRuleset();
    const r = await cli(['apply', '-f', CLEAN, '--dry-run'], inNs);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('add table inet firewall');
    expect(r.stdout).toContain('# diff against the kernel');
    expect(r.stdout).toMatch(/^\+\s+chain forward \{/m);
    expect(await listRuleset()).toBe(before);
  });

  test('applies atomically; then diff and dry run show no changes; other input shows changes', async () => {
    const r = await cli(['apply', '-f', CLEAN], inNs);
    expect(r.stderr).toContain('apply: ok');
    expect(r.code).toBe(0);
    const listing = await exec([...inNs, 'nft', 'list', 'table', 'inet', 'firewall']);
    expect(listing.stdout).toContain('accept traffic for np allow-to-https');

    const same = await cli(['diff', '-f', CLEAN], inNs);
    expect(same.code).toBe(0);
    expect(same.stdout).toBe('');
    expect(same.stderr).toContain('diff: no changes against the kernel');

    const again = await cli(['apply', '-f', CLEAN, '--dry-run'], inNs);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('# no changes against the kernel');

    const before = await listRuleset();
    const changed = await cli(['diff', '-f', path.join(EXAMPLES, 'baseline')], inNs);
    expect(changed.code).toBe(1);
    expect(changed.stdout).toMatch(/^\+.*allow-to-dns/m);
    expect(changed.stdout).toMatch(/^-.*allow-to-https/m);
    expect(await listRuleset()).toBe(before);
    const dry = await cli(['apply', '-f', path.join(EXAMPLES, 'baseline'), '--dry-run'], inNs);
    expect(dry.stdout).toMatch(/^\+.*allow-to-dns/m);
  });

  test('diff with unusable input: exit 2', async () => {
    const r = await cli(['diff', '-f', '/nonexistent'], inNs);
    expect(r.code).toBe(2);
    expect(oneErrorLine(r.stderr)).toBe('error: /nonexistent: cannot read (ENOENT)');
  });
});

describe('explain and preflight through the command line', () => {
  test('explain: exit 0 allowed, naming the policy; exit 1 dropped, naming why; exit 2 bad input', async () => {
    const ok = await cli(['explain', '-f', path.join(EXAMPLES, 'baseline'), '--from', '192.0.2.10', '--to', '203.0.113.10', '--port', '443/tcp']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ALLOWED: 192\.0\.2\.10 → 203\.0\.113\.10 443\/tcp/);
    expect(ok.stdout).toContain('firewall/allow-to-https egress[0].to[0] ports[0]');
    const no = await cli(['explain', '-f', path.join(EXAMPLES, 'baseline'), '--from', '192.0.2.10', '--to', '203.0.113.10', '--port', '22/tcp']);
    expect(no.code).toBe(1);
    expect(no.stdout).toMatch(/^DROPPED: /);
    const bad = await cli(['explain', '-f', path.join(EXAMPLES, 'baseline'), '--from', 'nowhere', '--to', '203.0.113.10', '--port', '22/tcp']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('preflight on files: findings per object and a count line; exit 1 when anything differs', async () => {
    const r = await cli(['preflight', '-f', path.join(EXAMPLES, 'forbidden')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('firewall/broken-port-range: rejected:');
    expect(r.stdout).toMatch(/^preflight: \d+ objects read: /m);
  });
});
