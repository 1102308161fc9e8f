/**
 * Makes the host's 127.0.0.1:<port> reachable as 127.0.0.1:<port> inside a network namespace, so
 * an agent running inside the lab's firewall namespace (as on a real firewall, where it must bind
 * the node network's address for DNS) reaches the API servers on the host's loopback. Network
 * namespaces share the filesystem: each port goes through a Unix socket, relayed on both sides.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

function pipe(a: net.Socket, b: net.Socket): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

export class NetnsRelay {
  private constructor(
    private readonly servers: net.Server[],
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {}

  static async start(ns: string, ports: readonly number[]): Promise<NetnsRelay> {
    const dir = mkdtempSync(path.join(tmpdir(), 'fwa-relay-'));
    const servers: net.Server[] = [];
    for (const port of ports) {
      const srv = net.createServer((c) => pipe(c, net.connect({ host: '127.0.0.1', port })));
      await new Promise<void>((resolve) => srv.listen(path.join(dir, `${port}.sock`), resolve));
      servers.push(srv);
    }
    const script = `const net=require('node:net');const ports=${JSON.stringify(ports)};const dir=${JSON.stringify(dir)};let n=0;
for(const p of ports){net.createServer((c)=>{const u=net.connect(dir+'/'+p+'.sock');c.pipe(u);u.pipe(c);
for(const [a,b] of [[c,u],[u,c]]){a.on('error',()=>b.destroy());a.on('close',()=>b.destroy());}})
.listen(p,'127.0.0.1',()=>{if(++n===ports.length)console.log('ready');});}`;
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const relay = new NetnsRelay(servers, child, dir);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('relay did not start')), 10_000);
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`relay exited (${code})`));
      });
    }).catch(async (e: unknown) => {
      await relay.stop();
      throw e;
    });
    return relay;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGKILL');
      await exited;
    }
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
