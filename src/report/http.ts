/** The agent's HTTP endpoints: /metrics (Prometheus), /healthz, /readyz and /status (JSON). */
import http from 'node:http';
import { Registry } from 'prom-client';

export interface HttpSources {
  readonly registry: Registry;
  /** Process alive and its loop not stuck. */
  readonly healthy: () => boolean;
  /** First ruleset applied and sources synced. */
  readonly ready: () => boolean;
  /** Absent where the cluster scrapes: /status names policies and errors, for the firewall's operator only. */
  readonly status: (() => unknown) | undefined;
}

export function startHttp(host: string, port: number, src: HttpSources): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return reply(405, 'text/plain', 'method not allowed\n');
    if (path === '/metrics') {
      src.registry
        .metrics()
        .then((text) => reply(200, src.registry.contentType, text))
        .catch((e: unknown) => reply(500, 'text/plain', `${String(e)}\n`));
      return;
    }
    if (path === '/healthz') return src.healthy() ? reply(200, 'text/plain', 'ok\n') : reply(503, 'text/plain', 'stuck\n');
    if (path === '/readyz') return src.ready() ? reply(200, 'text/plain', 'ok\n') : reply(503, 'text/plain', 'not ready\n');
    if (path === '/status' && src.status) return reply(200, 'application/json', `${JSON.stringify(src.status(), null, 2)}\n`);
    reply(404, 'text/plain', 'not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
