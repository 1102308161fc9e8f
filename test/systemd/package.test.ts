/**
 * `npm run package`: the .deb holds what README "Install" lists (paths, modes, owner, conffile,
 * fields, maintainer scripts) and nothing else, unpacks into a scratch root with runnable contents
 * and units that systemd-analyze accepts; the tarball installs with its own install.sh, and both
 * .sha256 files verify (and catch a changed byte). The small executable: stripped and minified,
 * with its source map beside it. Installing the .deb with dpkg under a real systemd:
 * sandbox.test.ts.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exec } from '../../src/nft/runner';
import { EXAMPLES, ROOT } from '../helpers';
import { ARCH, BINARY, DEB, PACKAGE_DIR, TARBALL, VERSION, ensurePackage } from './artifacts';

jest.setTimeout(120_000);

function tmp(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `fwa-${prefix}-`));
}

async function ok(argv: string[]): Promise<string> {
  const r = await exec(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** The package's files as README "Install" lists them: `| \`/path\` | 0644 | … |`. */
function readmeContents(): Map<string, string> {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const install = readme.slice(readme.indexOf('### Install'), readme.indexOf('### Units'));
  return new Map([...install.matchAll(/^\| `(\/[^`]+)` \| (0[0-7]{3}) \|/gm)].map((m) => [m[1]!, m[2]!]));
}

beforeAll(async () => {
  await ensurePackage();
});

describe('the executable', () => {
  test('is the stripped runtime with the minified bundle; the source map lies beside it, not in it', async () => {
    const size = statSync(BINARY).size;
    expect(size).toBeLessThan(120e6); // 144 MB before: 125 MB unstripped runtime + 19 MB bundle
    const sections = await ok(['readelf', '-S', '-W', BINARY]);
    expect(sections).not.toContain('.symtab');
    expect(sections).not.toContain('.debug_info');
    const bundle = readFileSync(path.join(ROOT, 'build', 'firewall-agent.js'), 'utf8');
    expect(bundle.length).toBeLessThan(8e6);
    expect(bundle).not.toContain('sourceMappingURL'); // not embedded, not referenced
    const map = JSON.parse(readFileSync(path.join(ROOT, 'build', 'firewall-agent.js.map'), 'utf8')) as { sources: string[] };
    expect(map.sources).toContain('../src/cli.ts'); // through tsc's maps back to the TypeScript
    expect(map.sources).toContain('../src/daemon/agent.ts');
    expect((await exec([BINARY, '--version'])).stdout.trim()).toBe(VERSION);
  });
});

describe('the .deb', () => {
  test('has the fields README describes', async () => {
    const field = async (name: string) => (await ok(['dpkg-deb', '--field', DEB, name])).trim();
    expect(await field('Package')).toBe('firewall-agent');
    expect(await field('Version')).toBe(VERSION);
    expect(await field('Architecture')).toBe(ARCH);
    expect(await field('Maintainer')).toMatch(/^.+ <.+@.+>$/);
    expect(await field('Section')).toBe('net');
    const depends = (await field('Depends')).split(/,\s*/).map((d) => d.split(' ')[0]);
    expect(depends).toEqual(expect.arrayContaining(['nftables', 'iproute2', 'libc6', 'libstdc++6']));
    expect(Number(await field('Installed-Size'))).toBeGreaterThan(statSync(BINARY).size / 1024);
  });

  test('contains exactly the files README lists, with their modes, owned by root', async () => {
    const listed = readmeContents();
    expect(listed.size).toBeGreaterThanOrEqual(7);
    const lines = (await ok(['dpkg-deb', '--contents', DEB])).trim().split('\n');
    const files = new Map<string, string>();
    for (const line of lines) {
      const [perms, owner, , , , name] = line.split(/\s+/);
      expect(owner).toBe('root/root');
      if (perms!.startsWith('d')) {
        expect(`${perms} ${name}`).toBe(`drwxr-xr-x ${name}`);
        continue;
      }
      expect(perms!.startsWith('-')).toBe(true); // no links, no devices
      const mode = [1, 4, 7].map((i) => perms!.slice(i, i + 3).split('').reduce((n, c) => n * 2 + (c === '-' ? 0 : 1), 0)).join('');
      files.set(name!.replace(/^\./, ''), `0${mode}`);
    }
    expect(Object.fromEntries(files)).toEqual(Object.fromEntries(listed));
  });

  test('keeps the config as a conffile; its maintainer scripts reload systemd and enable or start nothing', async () => {
    const dir = tmp('control');
    await ok(['dpkg-deb', '--control', DEB, dir]);
    expect(readFileSync(path.join(dir, 'conffiles'), 'utf8')).toBe('/etc/firewall-agent/config.yaml\n');
    const scripts = readdirSync(dir).filter((f) => !['control', 'conffiles', 'md5sums'].includes(f)).sort();
    expect(scripts).toEqual(['postinst', 'postrm', 'prerm']);
    for (const s of scripts) {
      const text = readFileSync(path.join(dir, s), 'utf8');
      expect(statSync(path.join(dir, s)).mode & 0o777).toBe(0o755);
      expect(text.startsWith('#!/bin/sh\nset -e\n')).toBe(true);
      expect((await exec(['sh', '-n', path.join(dir, s)])).code).toBe(0);
      const commands = text.split('\n').filter((l) => l.includes('systemctl')).map((l) => l.trim());
      expect(commands).toEqual([s === 'prerm' ? 'systemctl stop firewall-agent.service || true' : 'systemctl daemon-reload || true']);
      expect(text).not.toMatch(/\b(enable|start|restart|deb-systemd-invoke)\b/);
    }
  });

  test('unpacks into a scratch root: the files are the build outputs, the binary runs, the units verify', async () => {
    const root = tmp('deb-root');
    await ok(['dpkg-deb', '-x', DEB, root]);
    const same = (installed: string, source: string) =>
      expect(readFileSync(path.join(root, installed)).equals(readFileSync(path.join(ROOT, source)))).toBe(true);
    same('usr/local/bin/firewall-agent', 'build/firewall-agent');
    same('lib/systemd/system/firewall-agent.service', 'systemd/firewall-agent.service');
    same('lib/systemd/system/firewall-agent-boot.service', 'systemd/firewall-agent-boot.service');
    same('usr/lib/firewall-agent/disconnected.nft', 'rules/disconnected.nft');
    same('usr/share/firewall-agent/vrf.conf.in', 'systemd/vrf.conf.in');
    same('etc/firewall-agent/config.yaml', 'examples/config.yaml');
    expect(statSync(path.join(root, 'etc/firewall-agent/config.yaml')).mode & 0o777).toBe(0o600);

    // the units start what the package installs, where it installs it
    const unit = readFileSync(path.join(root, 'lib/systemd/system/firewall-agent.service'), 'utf8');
    const execStart = /^ExecStart=(\S+) run --config (\S+)$/m.exec(unit)!;
    expect(existsSync(path.join(root, execStart[1]!))).toBe(true);
    expect(existsSync(path.join(root, execStart[2]!))).toBe(true);
    const boot = readFileSync(path.join(root, 'lib/systemd/system/firewall-agent-boot.service'), 'utf8');
    expect(boot).toContain('/usr/lib/firewall-agent/disconnected.nft');
    expect(readFileSync(path.join(root, 'usr/share/firewall-agent/vrf.conf.in'), 'utf8')).toContain(`ip vrf exec @VRF@ ${execStart[1]} run`);

    const bin = path.join(root, 'usr/local/bin/firewall-agent');
    expect((await exec([bin, '--version'])).stdout.trim()).toBe(VERSION);
    const rendered = await exec([bin, 'render', '-f', path.join(EXAMPLES, 'baseline')]);
    expect(rendered.stdout).toContain('table inet firewall {');

    // systemd-analyze verify against the unpacked root, with the host's unit library
    mkdirSync(path.join(root, 'usr/lib/systemd'), { recursive: true });
    await ok(['cp', '-r', '/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/')]);
    mkdirSync(path.join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/sh', path.join(root, 'bin/sh'));
    const verify = await exec(['systemd-analyze', 'verify', `--root=${root}`, '/lib/systemd/system/firewall-agent.service', '/lib/systemd/system/firewall-agent-boot.service']);
    expect(verify.stdout + verify.stderr).toBe('');
    expect(verify.code).toBe(0);
  });
});

describe('the tarball', () => {
  test('both .sha256 files verify, and fail for a changed byte', async () => {
    for (const file of [TARBALL, DEB]) {
      const sum = readFileSync(`${file}.sha256`, 'utf8');
      expect(sum).toMatch(new RegExp(`^[0-9a-f]{64}  ${path.basename(file).replace(/\./g, '\\.')}\\n$`));
      const r = await exec(['sh', '-c', `cd ${PACKAGE_DIR} && sha256sum -c ${path.basename(file)}.sha256`]);
      expect(r.stdout).toBe(`${path.basename(file)}: OK\n`);
      expect(r.code).toBe(0);
    }
    const dir = tmp('sum');
    const name = path.basename(TARBALL);
    const bytes = readFileSync(TARBALL);
    const middle = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 1, middle);
    writeFileSync(path.join(dir, name), bytes);
    copyFileSync(`${TARBALL}.sha256`, path.join(dir, `${name}.sha256`));
    const bad = await exec(['sh', '-c', `cd ${dir} && sha256sum -c ${name}.sha256`]);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toContain('FAILED');
  });

  test('unpacks to one directory whose install.sh installs its own executable', async () => {
    const dir = tmp('tar');
    await ok(['tar', '-xzf', TARBALL, '-C', dir]);
    const name = `firewall-agent-${VERSION}-linux-${ARCH}`;
    expect(readdirSync(dir)).toEqual([name]);
    const top = path.join(dir, name);
    const listing = (await ok(['tar', '-tzvf', TARBALL])).trim().split('\n');
    expect(listing.every((l) => l.split(/\s+/)[1] === '0/0')).toBe(true);
    expect(listing.map((l) => l.split(/\s+/).pop()).filter((f) => !f!.endsWith('/')).sort()).toEqual(
      [
        'README.md',
        'build/firewall-agent',
        'build/firewall-agent.js.map',
        'examples/config.yaml',
        'rules/disconnected.nft',
        'scripts/install.sh',
        'systemd/firewall-agent-boot.service',
        'systemd/firewall-agent.service',
        'systemd/vrf.conf.in',
      ].map((f) => `${name}/${f}`),
    );
    const root = tmp('tar-root');
    const r = await exec(['bash', path.join(top, 'scripts/install.sh'), '--vrf', 'vrf104009', root]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(path.join(root, 'usr/local/bin/firewall-agent')).equals(readFileSync(BINARY))).toBe(true);
    expect(readFileSync(path.join(root, 'etc/systemd/system/firewall-agent.service'), 'utf8')).toBe(
      readFileSync(path.join(ROOT, 'systemd/firewall-agent.service'), 'utf8'),
    );
    expect(readFileSync(path.join(root, 'etc/systemd/system/firewall-agent.service.d/vrf.conf'), 'utf8')).toContain('ip vrf exec vrf104009 ');
  });
});
