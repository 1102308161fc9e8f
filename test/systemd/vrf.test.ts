/**
 * The agent in a VRF: `install.sh --vrf NAME` writes the drop-in that starts it with `ip vrf exec`
 * and relaxes only what that needs. This kernel has no VRF support, so `ip vrf exec NAME` itself
 * cannot run: here the rendered drop-in, `systemd-analyze verify` and `systemd-analyze security`
 * (which merges unit and drop-in) are checked; sandbox.test.ts runs the drop-in under systemd with
 * `ip vrf exec default` and ip's BPF steps; README "In a VRF" says how to check a firewall.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exec } from '../../src/nft/runner';
import { EXAMPLES, ROOT } from '../helpers';

const VRF = 'vrf104009';
const INSTALL = path.join(ROOT, 'scripts', 'install.sh');
const UNIT = '/etc/systemd/system/firewall-agent.service';
const BOOT_UNIT = '/etc/systemd/system/firewall-agent-boot.service';
const DROPIN = '/etc/systemd/system/firewall-agent.service.d/vrf.conf';
const packagedUnit = readFileSync(path.join(ROOT, 'systemd', 'firewall-agent.service'), 'utf8');

function tmp(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `fwa-${prefix}-`));
}

/** A stand-in for build/firewall-agent: install.sh and systemd-analyze only need an executable. */
function fakeBinary(): string {
  const file = path.join(tmp('bin'), 'firewall-agent');
  writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return file;
}

async function install(root: string, ...opts: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return exec(['bash', INSTALL, ...opts, root, fakeBinary()]);
}

/** The settings of a unit file or drop-in, in order, without comments and section headers. */
function settings(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('['));
}

function execStart(unit: string): string {
  const lines = settings(unit).filter((l) => l.startsWith('ExecStart='));
  expect(lines).toHaveLength(1);
  return lines[0]!.slice('ExecStart='.length);
}

/** An installed root with the host's unit library, /bin/sh and /bin/ip, for `systemd-analyze --root`. */
async function analyzableRoot(...opts: string[]): Promise<string> {
  const root = tmp('vrf-root');
  const r = await install(root, ...opts);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  mkdirSync(path.join(root, 'usr/lib/systemd'), { recursive: true });
  await exec(['cp', '-r', '/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/')]);
  mkdirSync(path.join(root, 'bin'), { recursive: true });
  await exec(['cp', '/bin/sh', '/bin/ip', path.join(root, 'bin/')]);
  return root;
}

type SecurityCheck = { name: string; set: boolean | null; exposure: string | null };

async function security(root: string): Promise<Map<string, SecurityCheck>> {
  const r = await exec(['systemd-analyze', 'security', '--offline=yes', `--root=${root}`, '--json=short', 'firewall-agent.service']);
  expect(r.code).toBe(0);
  return new Map((JSON.parse(r.stdout) as SecurityCheck[]).map((c) => [c.name, c]));
}

describe('install.sh --vrf: the agent in a VRF', () => {
  test('without --vrf no drop-in is written: the unit is the packaged one', async () => {
    const root = tmp('novrf');
    const r = await install(root);
    expect(r.code).toBe(0);
    expect(existsSync(path.join(root, 'etc/systemd/system/firewall-agent.service.d'))).toBe(false);
    expect(readFileSync(path.join(root, UNIT), 'utf8')).toBe(packagedUnit);
  });

  test('--vrf NAME writes a drop-in that starts the agent with ip vrf exec and relaxes only CAP_BPF and ProtectControlGroups', async () => {
    const root = tmp('vrf');
    const r = await install(root, '--vrf', VRF);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`starts in VRF ${VRF}`);
    const file = path.join(root, DROPIN);
    expect(statSync(file).mode & 0o777).toBe(0o644);
    const dropin = readFileSync(file, 'utf8');
    expect(dropin).toMatch(/^\[Service\]$/m);
    expect(dropin).not.toContain('@VRF@');
    // exactly these settings: the reset, the agent's own command line behind ip vrf exec, and the two relaxations
    expect(settings(dropin)).toEqual([
      'ExecStart=',
      `ExecStart=/bin/ip vrf exec ${VRF} ${execStart(packagedUnit)} --vrf ${VRF}`,
      'CapabilityBoundingSet=CAP_BPF',
      'AmbientCapabilities=CAP_BPF',
      'ProtectControlGroups=no',
      'SystemCallFilter=bpf',
    ]);
    // the unit itself stays as strict as packaged
    expect(readFileSync(path.join(root, UNIT), 'utf8')).toBe(packagedUnit);
    expect(settings(packagedUnit)).toContain('ProtectControlGroups=yes');
    expect(settings(packagedUnit)).toContain('CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE');
    // the unit's filter has no bpf(): the drop-in adds it back (allow-list entries after it add to it)
    expect(settings(packagedUnit).filter((l) => l.startsWith('SystemCallFilter='))).toEqual(['SystemCallFilter=@system-service', 'SystemCallFilter=~@privileged @resources']);
    expect((await exec(['systemd-analyze', 'syscall-filter', '@system-service'])).stdout).not.toMatch(/^\s+bpf$/m);
  });

  test('systemd-analyze verify accepts the units with the drop-in', async () => {
    const root = await analyzableRoot('--vrf', VRF);
    const r = await exec(['systemd-analyze', 'verify', `--root=${root}`, UNIT, BOOT_UNIT]);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  test('the check reads the drop-in: without the ExecStart= reset it is refused', async () => {
    const root = await analyzableRoot('--vrf', VRF);
    const file = path.join(root, DROPIN);
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^ExecStart=\n/m, ''));
    const r = await exec(['systemd-analyze', 'verify', `--root=${root}`, UNIT]);
    expect(r.stdout + r.stderr).toMatch(/more than one ExecStart/i);
  });

  test('merged by systemd, the drop-in changes exactly ProtectControlGroups, CAP_BPF and the filter (for bpf)', async () => {
    const plain = await security(await analyzableRoot());
    const inVrf = await security(await analyzableRoot('--vrf', VRF));
    expect([...inVrf.keys()].sort()).toEqual([...plain.keys()].sort());
    const changed = [...inVrf.values()].filter((c) => JSON.stringify(c) !== JSON.stringify(plain.get(c.name))).map((c) => c.name);
    expect(changed.sort()).toEqual(['CapabilityBoundingSet=~CAP_BPF', 'ProtectControlGroups=', 'SystemCallFilter=~@privileged']);
    expect(plain.get('ProtectControlGroups=')!.set).toBe(true);
    expect(inVrf.get('ProtectControlGroups=')!.set).toBe(false);
    expect(inVrf.get('CapabilityBoundingSet=~CAP_SYS_ADMIN')!.set).toBe(true); // not CAP_SYS_ADMIN
  });

  test('systemd-analyze security rates the units as README "Units" says', async () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const claim = /rates\s+`firewall-agent\.service`\s+([\d.]+)\s+\(was\s+[\d.]+\),\s+with\s+the\s+VRF\s+drop-in\s+([\d.]+)\s+\(was\s+[\d.]+\),\s+and\s+`firewall-agent-boot\.service`\s+([\d.]+)/.exec(readme);
    expect(claim).not.toBeNull();
    const overall = async (root: string, unit: string) => {
      const r = await exec(['systemd-analyze', 'security', '--offline=yes', `--root=${root}`, unit]);
      return /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout + r.stderr)![1];
    };
    const plain = await analyzableRoot();
    expect(await overall(plain, 'firewall-agent.service')).toBe(claim![1]);
    expect(await overall(await analyzableRoot('--vrf', VRF), 'firewall-agent.service')).toBe(claim![2]);
    expect(await overall(plain, 'firewall-agent-boot.service')).toBe(claim![3]);
  });

  test('a reinstall without --vrf keeps the drop-in (a rollback stays in the VRF); --no-vrf removes it', async () => {
    const root = tmp('keep');
    expect((await install(root, '--vrf', VRF)).code).toBe(0);
    const again = await install(root);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('keeping');
    expect(readFileSync(path.join(root, DROPIN), 'utf8')).toContain(`ip vrf exec ${VRF} `);
    expect((await install(root, '--vrf=vrf3981')).code).toBe(0);
    expect(readFileSync(path.join(root, DROPIN), 'utf8')).toContain('ip vrf exec vrf3981 ');
    expect((await install(root, '--no-vrf')).code).toBe(0);
    expect(existsSync(path.join(root, DROPIN))).toBe(false);
    expect(existsSync(path.join(root, 'etc/systemd/system/firewall-agent.service.d'))).toBe(false);
  });

  test('what is not a VRF device name is refused before anything is written', async () => {
    for (const bad of ['', 'default', '-x', '.x', 'vrf 1', 'vrf1;reboot', 'vrf$(id)', 'a/b', 'abcdefghijklmnop']) {
      const root = path.join(tmp('bad'), 'root');
      const r = await install(root, '--vrf', bad);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('is not the name of a VRF device');
      expect(existsSync(root)).toBe(false);
    }
    const both = await install(path.join(tmp('bad'), 'root'), '--vrf', VRF, '--no-vrf');
    expect(both.code).toBe(2);
    const unknown = await install(path.join(tmp('bad'), 'root'), '--vfr', VRF);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown option --vfr');
  });

  test('the agent takes the VRF the drop-in passes (config and the built executable)', async () => {
    const r = await exec([
      process.execPath,
      '-e',
      `require(${JSON.stringify(path.join(ROOT, 'dist/daemon/config.js'))}).loadConfig(${JSON.stringify(path.join(EXAMPLES, 'config.yaml'))}, { vrf: ${JSON.stringify(VRF)} })`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const help = await exec([path.join(ROOT, 'build', 'firewall-agent'), 'run', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--vrf <name>');
  });
});
