/**
 * A real, isolated Kubernetes control plane for tests: etcd and kube-apiserver on loopback with
 * random free ports, a temporary data dir, self-generated serving certificates and service-account
 * keys, RBAC authorization and token authentication. Binaries come from the project's build
 * (scripts/controlplane/build.sh, cached outside the repo). stop() ends every process it started.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { Rest, eventually } from './rest';

export function controlPlaneBin(): string {
  const dir = process.env.FWA_CONTROLPLANE_BIN;
  if (!dir) throw new Error('FWA_CONTROLPLANE_BIN is not set: run the tests with `npm test` (it builds the control plane)');
  return dir;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

function startProcess(bin: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: string[] = [];
  const keep = (d: Buffer): void => {
    chunks.push(d.toString());
    if (chunks.length > 400) chunks.splice(0, 200);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('exit', () => {
    running.delete(child);
    writeFileSync(logFile, chunks.join(''));
  });
  running.add(child);
  return child;
}

async function stopProcess(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

export interface ControlPlaneOptions {
  readonly name: string;
  /** Write an audit log of every request (to prove who wrote what). */
  readonly audit?: boolean;
}

export class ControlPlane {
  readonly dir: string;
  readonly adminToken = randomBytes(16).toString('hex');
  private etcd: ChildProcess | undefined;
  private apiserver: ChildProcess | undefined;
  private etcdPort = 0;
  private peerPort = 0;
  port = 0;
  ca = '';

  private constructor(readonly opts: ControlPlaneOptions) {
    this.dir = mkdtempSync(path.join(tmpdir(), `fwa-${opts.name}-`));
  }

  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const cp = new ControlPlane(opts);
    try {
      cp.etcdPort = await freePort();
      cp.peerPort = await freePort();
      cp.port = await freePort();
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      writeFileSync(path.join(cp.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
      writeFileSync(path.join(cp.dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
      writeFileSync(path.join(cp.dir, 'tokens.csv'), `${cp.adminToken},admin,admin,"system:masters"\n`);
      writeFileSync(path.join(cp.dir, 'audit.yaml'), stringify({ apiVersion: 'audit.k8s.io/v1', kind: 'Policy', rules: [{ level: 'Metadata' }] }));
      await cp.startEtcd();
      await cp.startApiserver();
    } catch (e) {
      await cp.stop();
      throw e;
    }
    return cp;
  }

  get server(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get admin(): Rest {
    return new Rest({ server: this.server, ca: this.ca, token: this.adminToken });
  }

  client(token: string): Rest {
    return new Rest({ server: this.server, ca: this.ca, token });
  }

  private async startEtcd(): Promise<void> {
    const bin = path.join(controlPlaneBin(), 'etcd');
    const client = `http://127.0.0.1:${this.etcdPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.etcd = startProcess(
      bin,
      [
        `--name=${this.opts.name}`,
        `--data-dir=${path.join(this.dir, 'etcd')}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${this.opts.name}=${peer}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      path.join(this.dir, 'etcd.log'),
    );
    await eventually(
      'etcd health',
      async () => {
        const r = await fetch(`${client}/health`);
        return r.ok;
      },
      30_000,
      200,
    );
  }

  async startApiserver(): Promise<void> {
    const bin = path.join(controlPlaneBin(), 'kube-apiserver');
    const args = [
      `--etcd-servers=http://127.0.0.1:${this.etcdPort}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${this.port}`,
      '--advertise-address=127.0.0.1',
      `--cert-dir=${path.join(this.dir, 'certs')}`,
      `--service-account-issuer=https://${this.opts.name}.test`,
      `--service-account-key-file=${path.join(this.dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(this.dir, 'sa.key')}`,
      '--authorization-mode=RBAC',
      `--token-auth-file=${path.join(this.dir, 'tokens.csv')}`,
      '--service-cluster-ip-range=198.18.0.0/24',
      '--enable-priority-and-fairness=false',
      '--v=0',
    ];
    if (this.opts.audit) {
      args.push(`--audit-policy-file=${path.join(this.dir, 'audit.yaml')}`, `--audit-log-path=${path.join(this.dir, 'audit.log')}`);
    }
    this.apiserver = startProcess(bin, args, path.join(this.dir, 'apiserver.log'));
    const certFile = path.join(this.dir, 'certs', 'apiserver.crt');
    this.ca = await eventually('serving certificate', async () => readFileSync(certFile, 'utf8'), 30_000, 200);
    await eventually('kube-apiserver ready', async () => (await this.admin.get('/readyz')).text === 'ok', 90_000, 300);
  }

  /** Stops only the API server (etcd keeps the data), as in an API-server outage. */
  async stopApiserver(): Promise<void> {
    await stopProcess(this.apiserver);
    this.apiserver = undefined;
  }

  auditLog(): string {
    try {
      return readFileSync(path.join(this.dir, 'audit.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    await stopProcess(this.apiserver);
    await stopProcess(this.etcd);
    if (!process.env.FWA_KEEP_CONTROLPLANE) rmSync(this.dir, { recursive: true, force: true });
  }
}
