/**
 * The release artifacts for the tests: build/firewall-agent (built by scripts/test.sh with
 * `npm run build:binary`) and what `npm run package` makes of it, built at most once per run and
 * only when an input is newer than the package.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { exec } from '../../src/nft/runner';
import { ROOT } from '../helpers';

export const BINARY = path.join(ROOT, 'build', 'firewall-agent');
export const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
export const ARCH = process.arch === 'arm64' ? 'arm64' : 'amd64';
export const PACKAGE_DIR = path.join(ROOT, 'build', 'package');
export const DEB = path.join(PACKAGE_DIR, `firewall-agent_${VERSION}_${ARCH}.deb`);
export const TARBALL = path.join(PACKAGE_DIR, `firewall-agent-${VERSION}-linux-${ARCH}.tar.gz`);

const INPUTS = [
  'build/firewall-agent',
  'build/firewall-agent.js.map',
  'scripts/package.sh',
  'scripts/install.sh',
  'systemd/firewall-agent.service',
  'systemd/firewall-agent-boot.service',
  'systemd/vrf.conf.in',
  'rules/disconnected.nft',
  'examples/config.yaml',
  'README.md',
  'package.json',
];

function mtime(file: string): number {
  return existsSync(file) ? statSync(file).mtimeMs : Infinity;
}

let packaged: Promise<void> | undefined;

/** `npm run package`, unless its outputs are newer than all of its inputs. */
export function ensurePackage(): Promise<void> {
  packaged ??= (async () => {
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run npm run build:binary (scripts/test.sh does)`);
    const outputs = [DEB, TARBALL, `${DEB}.sha256`, `${TARBALL}.sha256`];
    const oldest = Math.min(...outputs.map((f) => (existsSync(f) ? statSync(f).mtimeMs : -Infinity)));
    const newest = Math.max(...INPUTS.map((f) => mtime(path.join(ROOT, f))).filter(Number.isFinite));
    if (oldest > newest) return;
    const r = await exec(['bash', path.join(ROOT, 'scripts', 'package.sh')]);
    if (r.code !== 0) throw new Error(`scripts/package.sh failed (${r.code}): ${r.stderr}`);
  })();
  return packaged;
}
