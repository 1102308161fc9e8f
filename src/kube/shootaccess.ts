/**
 * Shoot access the way the firewall-controller-manager hands it out: Firewall.status.shootAccess
 * names a generic kubeconfig secret (whose user reads its token from a file) and a token secret,
 * both in the seed namespace. We combine them into one kubeconfig with the token inlined.
 */
import { parse, stringify } from 'yaml';
import { LoadedKubeconfig, kubeconfigFromText } from './kubeconfig';
import { SeedApi } from './api';

export interface ShootAccess {
  readonly apiServerURL: string;
  readonly genericKubeconfigSecretName: string;
  readonly namespace: string;
  readonly tokenSecretName: string;
}

type Obj = Record<string, unknown>;

export function readShootAccess(firewall: Obj | undefined): ShootAccess | undefined {
  const status = firewall?.status as Obj | undefined;
  const sa = status?.shootAccess as Obj | undefined;
  if (!sa) return undefined;
  const fields = ['apiServerURL', 'genericKubeconfigSecretName', 'namespace', 'tokenSecretName'] as const;
  if (!fields.every((f) => typeof sa[f] === 'string' && sa[f] !== '')) return undefined;
  return sa as unknown as ShootAccess;
}

function secretValue(data: Record<string, string> | undefined, key: string, what: string): string {
  const v = data?.[key];
  if (v === undefined) throw new Error(`${what} has no key ${key}`);
  return Buffer.from(v, 'base64').toString('utf8');
}

export async function shootKubeconfigFromSeed(seed: SeedApi, access: ShootAccess): Promise<LoadedKubeconfig> {
  const ns = access.namespace;
  const generic = await seed.readSecret(ns, access.genericKubeconfigSecretName);
  const tokenSecret = await seed.readSecret(ns, access.tokenSecretName);
  const kubeconfig = parse(secretValue(generic.data, 'kubeconfig', `secret ${ns}/${access.genericKubeconfigSecretName}`)) as Obj;
  const token = secretValue(tokenSecret.data, 'token', `secret ${ns}/${access.tokenSecretName}`).trim();
  for (const u of (kubeconfig.users as Obj[] | undefined) ?? []) {
    const user = (u.user ?? {}) as Obj;
    delete user.tokenFile;
    delete user['token-file'];
    user.token = token;
    u.user = user;
  }
  for (const c of (kubeconfig.clusters as Obj[] | undefined) ?? []) {
    const cluster = (c.cluster ?? {}) as Obj;
    cluster.server = access.apiServerURL;
    c.cluster = cluster;
  }
  return kubeconfigFromText(stringify(kubeconfig), '/', `shoot access from seed secrets in ${ns}`);
}
