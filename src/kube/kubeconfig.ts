/**
 * Kubeconfigs that rotate. The file (and a token file it names) is read as text and re-read when
 * either changes, so a rotated token or certificate is picked up without a restart. The seed
 * namespace is the kubeconfig's current-context, as the firewall-controller-manager writes it.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';

export interface LoadedKubeconfig {
  readonly kc: KubeConfig;
  /** Changes whenever anything that affects the connection changes. */
  readonly fingerprint: string;
  readonly currentContext: string;
}

type Obj = Record<string, unknown>;

/**
 * Builds a KubeConfig from kubeconfig text. A user's `tokenFile` is read here and inlined, so the
 * fingerprint covers the token and a rotation is noticed like any other change.
 */
export async function kubeconfigFromText(text: string, baseDir: string, origin: string): Promise<LoadedKubeconfig> {
  const doc = parse(text) as Obj;
  if (!doc || typeof doc !== 'object') throw new Error(`${origin}: not a kubeconfig`);
  const tokens: string[] = [];
  for (const u of (doc.users as Obj[] | undefined) ?? []) {
    const user = (u.user ?? {}) as Obj;
    const file = user.tokenFile ?? user['token-file'];
    if (typeof file === 'string' && user.token === undefined) {
      const token = (await fs.readFile(path.resolve(baseDir, file), 'utf8')).trim();
      user.token = token;
      delete user.tokenFile;
      delete user['token-file'];
      tokens.push(token);
    }
  }
  // Relative file references are relative to the kubeconfig, not to our working directory.
  const absolute = (o: Obj, key: string): void => {
    if (typeof o[key] === 'string') o[key] = path.resolve(baseDir, o[key] as string);
  };
  for (const c of (doc.clusters as Obj[] | undefined) ?? []) absolute((c.cluster ?? {}) as Obj, 'certificate-authority');
  for (const u of (doc.users as Obj[] | undefined) ?? []) {
    absolute((u.user ?? {}) as Obj, 'client-certificate');
    absolute((u.user ?? {}) as Obj, 'client-key');
  }
  const kc = new KubeConfig();
  kc.loadFromString(stringify(doc));
  const currentContext = kc.getCurrentContext();
  if (!currentContext || !kc.getCurrentCluster()) throw new Error(`${origin}: no current-context with a cluster`);
  const fingerprint = createHash('sha256').update(text).update('\0').update(tokens.join('\0')).digest('hex');
  return { kc, fingerprint, currentContext };
}

export async function loadKubeconfigFile(file: string): Promise<LoadedKubeconfig> {
  const text = await fs.readFile(file, 'utf8');
  return kubeconfigFromText(text, path.dirname(path.resolve(file)), file);
}
