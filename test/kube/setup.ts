/** Setting up seed and shoot control planes the way a landscape has them. */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { ROOT } from '../helpers';
import { seedRbac, shootRbac } from '../../src/kube/rbac';
import { ControlPlane } from './controlplane';
import { KubeError, Rest, eventually } from './rest';

type Json = Record<string, unknown>;

const CRD_DIR = path.join(ROOT, 'crds');

/** Installs the project's own CRDs (crds/) and waits until they are served. */
export async function installCrds(rest: Rest, match: RegExp): Promise<void> {
  for (const file of readdirSync(CRD_DIR).filter((f) => match.test(f))) {
    const crd = parse(readFileSync(path.join(CRD_DIR, file), 'utf8')) as Json;
    await rest.apply('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd);
    const name = (crd.metadata as Json).name as string;
    await eventually(`CRD ${name} established`, async () => {
      const c = await rest.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
      const conds = ((c.status as Json | undefined)?.conditions as Json[] | undefined) ?? [];
      return conds.some((x) => x.type === 'Established' && x.status === 'True');
    });
  }
}

export async function ensureNamespace(rest: Rest, name: string): Promise<void> {
  try {
    await rest.post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  } catch (e) {
    if (!(e instanceof KubeError && e.status === 409)) throw e;
  }
}

function collectionPath(obj: Json): string {
  const [group, version] = String(obj.apiVersion).includes('/') ? String(obj.apiVersion).split('/') : ['', String(obj.apiVersion)];
  const plural = `${String(obj.kind).toLowerCase()}s`.replace(/ys$/, 'ies');
  const ns = (obj.metadata as Json).namespace as string | undefined;
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  return ns ? `${base}/namespaces/${ns}/${plural}` : `${base}/${plural}`;
}

export async function applyAll(rest: Rest, objs: Json[]): Promise<void> {
  for (const o of objs) await rest.apply(collectionPath(o), o);
}

/**
 * A service-account token bound to a Secret: deleting the Secret revokes the token, which is how
 * the tests rotate credentials under a running agent.
 */
export async function boundToken(rest: Rest, ns: string, sa: string, secretName: string): Promise<string> {
  await rest.apply(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: ns } });
  const secret = await rest.apply(`/api/v1/namespaces/${ns}/secrets`, {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName, namespace: ns },
    type: 'Opaque',
  });
  const tr = await rest.post(`/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      expirationSeconds: 3600,
      boundObjectRef: { kind: 'Secret', apiVersion: 'v1', name: secretName, uid: (secret.metadata as Json).uid },
    },
  });
  return (tr.status as Json).token as string;
}

/** Kubeconfig text; the context is named after the namespace (how the seed namespace is found). */
export function kubeconfig(cp: ControlPlane, context: string, auth: { token: string } | { tokenFile: string }): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: cp.server, 'certificate-authority-data': Buffer.from(cp.ca).toString('base64') } }],
    users: [{ name: 'u', user: auth }],
    contexts: [{ name: context, context: { cluster: 'c', user: 'u', namespace: context } }],
    'current-context': context,
  });
}

/**
 * Seed and shoot as a landscape has them: the project's CRDs, the seed namespace and `firewall` in
 * the shoot, and the agent's production RBAC for a ServiceAccount `firewall-agent` on both sides.
 */
export async function installLandscape(seed: ControlPlane, shoot: ControlPlane, seedNamespace: string): Promise<void> {
  await installCrds(seed.admin, /firewalls\.yaml$/);
  await installCrds(shoot.admin, /clusterwidenetworkpolicies|firewallmonitors/);
  await ensureNamespace(seed.admin, seedNamespace);
  await ensureNamespace(shoot.admin, 'firewall');
  await applyAll(seed.admin, seedRbac({ namespace: seedNamespace, subject: { kind: 'ServiceAccount', name: 'firewall-agent', namespace: seedNamespace } }) as Json[]);
  await applyAll(shoot.admin, shootRbac({ subject: { kind: 'ServiceAccount', name: 'firewall-agent', namespace: 'firewall' } }) as Json[]);
}
