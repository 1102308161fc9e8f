/**
 * A minimal JSON client for the test harness (the agent itself uses @kubernetes/client-node).
 * The harness runs inside jest, which cannot load that ESM package, so it speaks REST directly.
 */
import https from 'node:https';

export interface Credentials {
  readonly server: string;
  readonly ca: string;
  readonly token: string;
}

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`${what}: HTTP ${status} ${body.slice(0, 300)}`);
  }
}

type Json = Record<string, unknown>;

export class Rest {
  constructor(readonly creds: Credentials) {}

  request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Json> {
    const url = new URL(path, this.creds.server);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          ca: this.creds.ca,
          headers: {
            Authorization: `Bearer ${this.creds.token}`,
            Accept: 'application/json',
            ...(payload ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) } : {}),
          },
          timeout: 20_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 0) >= 300) return reject(new KubeError(res.statusCode ?? 0, text, `${method} ${path}`));
            try {
              resolve(text ? (JSON.parse(text) as Json) : {});
            } catch {
              resolve({ text }); // e.g. /readyz answers plain "ok"
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  get(path: string): Promise<Json> {
    return this.request('GET', path);
  }
  post(path: string, body: unknown): Promise<Json> {
    return this.request('POST', path, body);
  }
  put(path: string, body: unknown): Promise<Json> {
    return this.request('PUT', path, body);
  }
  patch(path: string, body: unknown): Promise<Json> {
    return this.request('PATCH', path, body, 'application/merge-patch+json');
  }
  delete(path: string): Promise<Json> {
    return this.request('DELETE', path);
  }

  async getOrUndefined(path: string): Promise<Json | undefined> {
    try {
      return await this.get(path);
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return undefined;
      throw e;
    }
  }

  /** Creates, or replaces the spec of, an object (by its collection path). */
  async apply(collection: string, obj: Json): Promise<Json> {
    const name = (obj.metadata as Json).name as string;
    const existing = await this.getOrUndefined(`${collection}/${name}`);
    if (!existing) return this.post(collection, obj);
    return this.put(`${collection}/${name}`, { ...obj, metadata: { ...(obj.metadata as Json), resourceVersion: (existing.metadata as Json).resourceVersion } });
  }
}

export async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
