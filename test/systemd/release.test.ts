/**
 * Running on a firewall: the single executable, the installer, the systemd units, the notify and
 * watchdog protocol over a real Unix datagram socket, and stopping without touching the ruleset.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exec } from '../../src/nft/runner';
import { renderTransaction } from '../../src/nft/render';
import { disconnectedTable } from '../../src/compile/compile';
import { EXAMPLES, ROOT, compileObjects, cwnp, exampleFirewall } from '../helpers';
import { eventually } from '../kube/rest';

const BINARY = path.join(ROOT, 'build', 'firewall-agent');

function tmp(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `fwa-${prefix}-`));
}

describe('the single executable', () => {
  test('is built by npm run build:binary and renders like the CLI', async () => {
    expect(existsSync(BINARY)).toBe(true); // scripts/test.sh builds it before the tests
    const viaBinary = await exec([BINARY, 'render', '-f', path.join(EXAMPLES, 'forbidden')]);
    const viaNode = await exec([process.execPath, path.join(ROOT, 'dist', 'cli.js'), 'render', '-f', path.join(EXAMPLES, 'forbidden')]);
    expect(viaBinary.code).toBe(0);
    expect(viaBinary.stdout).toBe(viaNode.stdout);
    expect(viaBinary.stderr).toBe(viaNode.stderr);
    expect(viaBinary.stdout).toContain('table inet firewall {');
  });
});

describe('install.sh', () => {
  test('installs binary, units (enabled), boot rules, state dir and a default config into a root', async () => {
    const root = tmp('root');
    const r = await exec(['bash', path.join(ROOT, 'scripts', 'install.sh'), root]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(statSync(path.join(root, 'usr/local/bin/firewall-agent')).mode & 0o111).toBeTruthy();
    expect(readlinkSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/firewall-agent.service'))).toBe(
      '/etc/systemd/system/firewall-agent.service',
    );
    expect(lstatSync(path.join(root, 'etc/systemd/system/network-pre.target.wants/firewall-agent-boot.service')).isSymbolicLink()).toBe(true);
    expect(statSync(path.join(root, 'var/lib/firewall-agent')).mode & 0o777).toBe(0o700);
    const boot = readFileSync(path.join(root, 'var/lib/firewall-agent/disconnected.nft'), 'utf8');
    expect(boot).toBe(renderTransaction([disconnectedTable()]));
    expect(readFileSync(path.join(root, 'usr/lib/firewall-agent/disconnected.nft'), 'utf8')).toBe(boot);
    // an operator's config is never overwritten
    writeFileSync(path.join(root, 'etc/firewall-agent/config.yaml'), 'firewallName: mine\n');
    expect((await exec(['bash', path.join(ROOT, 'scripts', 'install.sh'), root])).code).toBe(0);
    expect(readFileSync(path.join(root, 'etc/firewall-agent/config.yaml'), 'utf8')).toBe('firewallName: mine\n');
  });

  test('the installed config is valid for the daemon', async () => {
    const r = await exec([process.execPath, '-e', `require(${JSON.stringify(path.join(ROOT, 'dist/daemon/config.js'))}).loadConfig(${JSON.stringify(path.join(EXAMPLES, 'config.yaml'))}, {})`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('systemd units', () => {
  /** A root with the host's unit library, /bin/sh and the installed files, for `systemd-analyze verify --root`. */
  async function verifyRoot(): Promise<string> {
    const root = tmp('verify');
    expect((await exec(['bash', path.join(ROOT, 'scripts', 'install.sh'), root])).code).toBe(0);
    mkdirSync(path.join(root, 'usr/lib/systemd'), { recursive: true });
    await exec(['cp', '-r', '/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/')]);
    mkdirSync(path.join(root, 'bin'), { recursive: true });
    await exec(['cp', '/bin/sh', path.join(root, 'bin/sh')]);
    return root;
  }

  const units = ['/etc/systemd/system/firewall-agent.service', '/etc/systemd/system/firewall-agent-boot.service'];

  test('systemd-analyze verify finds nothing to complain about', async () => {
    const root = await verifyRoot();
    const r = await exec(['systemd-analyze', 'verify', `--root=${root}`, ...units]);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  test('the check would catch a broken unit', async () => {
    const root = await verifyRoot();
    const file = path.join(root, units[0]!);
    writeFileSync(file, readFileSync(file, 'utf8').replace('NotifyAccess=all', 'NotifyAccess=everyone'));
    const r = await exec(['systemd-analyze', 'verify', `--root=${root}`, units[0]!]);
    expect(r.stdout + r.stderr).toMatch(/notify access/i);
  });

  test('the boot unit runs before the network and loads the drop rules; the service is hardened', () => {
    const boot = readFileSync(path.join(ROOT, 'systemd/firewall-agent-boot.service'), 'utf8');
    expect(boot).toMatch(/^Before=network-pre\.target/m);
    expect(boot).toMatch(/^WantedBy=network-pre\.target/m);
    expect(boot).toMatch(/^DefaultDependencies=no$/m);
    expect(boot).toMatch(/nft -f \/var\/lib\/firewall-agent\/disconnected\.nft/);
    const svc = readFileSync(path.join(ROOT, 'systemd/firewall-agent.service'), 'utf8');
    for (const line of [
      'StartLimitIntervalSec=0',
      'Type=notify',
      'Restart=always',
      'WatchdogSec=30s',
      'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE',
      'NoNewPrivileges=yes',
      'UMask=0077',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/firewall-agent',
      'ProtectKernelTunables=yes',
      'ProtectProc=ptraceable',
      'SystemCallFilter=@system-service',
      'SystemCallFilter=~@privileged @resources',
      'SystemCallErrorNumber=EPERM',
      'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    ]) {
      expect(svc).toContain(`\n${line}\n`);
    }
    expect(svc.indexOf('StartLimitIntervalSec=0')).toBeLessThan(svc.indexOf('[Service]')); // a [Unit] setting
    expect(svc).not.toMatch(/^MemoryDenyWriteExecute/m); // sandbox.test.ts: V8 dies with it
    expect(svc).not.toMatch(/^ExecStop/m);
    for (const line of ['CapabilityBoundingSet=CAP_NET_ADMIN', 'ProtectKernelTunables=yes', 'MemoryDenyWriteExecute=yes', 'SystemCallFilter=@system-service', 'UMask=0077']) {
      expect(boot).toContain(`\n${line}\n`);
    }
  });
});

describe('the notify and watchdog protocol, and stopping', () => {
  let ns: string;
  let listener: ChildProcess;
  const messages: { t: number; vars: string[] }[] = [];

  beforeAll(async () => {
    ns = `fwa-notify-${process.pid}`;
    await exec(['ip', 'netns', 'add', ns]);
  });

  afterAll(async () => {
    listener?.kill('SIGKILL');
    await exec(['ip', 'netns', 'del', ns]);
  });

  test('READY=1 after the first ruleset is in the kernel, STATUS= with the state, WATCHDOG=1 while healthy; stop keeps the ruleset', async () => {
    const dir = tmp('notify');
    const sock = path.join(dir, 'notify.sock');
    listener = spawn('python3', [path.join(__dirname, 'notify_socket.py'), sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    listener.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const m = JSON.parse(buf.slice(0, i)) as { t?: number; vars?: string[] };
        buf = buf.slice(i + 1);
        if (m.vars) messages.push({ t: m.t!, vars: m.vars });
      }
    });
    await eventually('notify socket', async () => existsSync(sock), 10_000, 50);
    writeFileSync(
      path.join(dir, 'seed.kubeconfig'),
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: seed-ns, context: {cluster: c, user: u}}]\ncurrent-context: seed-ns\n',
    );
    const agent = spawn(
      BINARY,
      ['run', '--seed-kubeconfig', path.join(dir, 'seed.kubeconfig'), '--firewall-name', 'fw', '--netns', ns, '--state-dir', path.join(dir, 'state'), '--metrics-address', ''],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: sock, WATCHDOG_USEC: '1000000' } },
    );
    const logs: { time: string; msg: string }[] = [];
    agent.stdout!.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(l) as { time: string; msg: string });
    });
    try {
      await eventually('three watchdog pings', async () => messages.filter((m) => m.vars.includes('WATCHDOG=1')).length >= 3, 15_000, 100);
      const ready = messages.find((m) => m.vars.includes('READY=1'))!;
      const applied = logs.find((l) => l.msg.startsWith('applied the disconnected ruleset'))!;
      expect(Date.parse(applied.time)).toBeLessThanOrEqual(ready.t);
      expect(ready.vars.find((v) => v.startsWith('STATUS='))).toMatch(/^STATUS=disconnected; 0 deployed/);
      const pings = messages.filter((m) => m.vars.includes('WATCHDOG=1')).map((m) => m.t);
      expect(pings[2]! - pings[0]!).toBeLessThan(2500); // every WATCHDOG_USEC / 2
    } finally {
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
    }
    expect(agent.exitCode).toBe(0);
    // never flushed on stop: the drop ruleset is still there
    const listing = await exec(['ip', 'netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'firewall']);
    expect(listing.stdout).toMatch(/hook forward priority (1|filter \+ 1); policy drop;/);
    expect(readFileSync(path.join(dir, 'state', 'disconnected.nft'), 'utf8')).toBe(renderTransaction([disconnectedTable()]));
  });
});

describe('what the agent loads at start', () => {
  const ns = `fwa-start-${process.pid}`;
  const seedConfig = 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: seed-ns, context: {cluster: c, user: u}}]\ncurrent-context: seed-ns\n';

  beforeEach(async () => {
    await exec(['ip', 'netns', 'add', ns]);
  });
  afterEach(async () => {
    await exec(['ip', 'netns', 'del', ns]);
  });

  /** Runs the agent (no API server reachable) until it logged its startup decision. */
  async function start(dir: string, extra: string[]): Promise<string> {
    writeFileSync(path.join(dir, 'seed.kubeconfig'), seedConfig);
    const agent = spawn(
      BINARY,
      ['run', '--seed-kubeconfig', path.join(dir, 'seed.kubeconfig'), '--firewall-name', 'fw', '--netns', ns, '--state-dir', path.join(dir, 'state'), '--metrics-address', '', ...extra],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    agent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await eventually('startup decision', async () => /restored the last-known-good|applied the disconnected ruleset|applied before the restart/.test(out), 15_000, 50);
    } finally {
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
    }
    return out;
  }

  function lastKnownGood(dir: string): string {
    const { text } = compileObjects([exampleFirewall(), cwnp('allow-https', { egress: [{ to: [{ cidr: '203.0.113.0/24' }], ports: [{ port: 443 }] }] })]);
    mkdirSync(path.join(dir, 'state'), { recursive: true, mode: 0o700 });
    writeFileSync(path.join(dir, 'state', 'last-known-good.nft'), text);
    return text;
  }

  test('by default: drop until connected, even with a last-known-good ruleset on disk', async () => {
    const dir = tmp('start');
    lastKnownGood(dir);
    expect(await start(dir, [])).toContain('applied the disconnected ruleset');
    const listing = (await exec(['ip', 'netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'firewall'])).stdout;
    expect(listing).not.toContain('vmap');
  });

  test('--restore-last-known-good loads the last connected ruleset instead', async () => {
    const dir = tmp('start');
    lastKnownGood(dir);
    expect(await start(dir, ['--restore-last-known-good'])).toContain('restored the last-known-good ruleset');
    const listing = (await exec(['ip', 'netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'firewall'])).stdout;
    expect(listing).toContain('accept traffic for np allow-https');
  });

  test('a restart keeps what the kernel holds when it is what was applied last', async () => {
    const dir = tmp('start');
    await start(dir, []); // applies and records the disconnected ruleset
    await exec(['ip', 'netns', 'exec', ns, 'nft', 'reset', 'counters', 'table', 'inet', 'firewall']);
    expect(await start(dir, [])).toContain('the kernel holds the ruleset applied before the restart; keeping it');
  });
});
