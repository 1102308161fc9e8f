/**
 * The least rights the agent needs, as RBAC objects (`firewall-agent rbac` prints them):
 * - seed: read its Firewall and the two shoot-access secrets in the shoot's namespace; nothing else,
 *   and no write of any kind;
 * - shoot: watch policies and Services, write policy status, record events, manage its
 *   FirewallMonitor in namespace `firewall`.
 */
import { isDns1123Label, isDns1123Subdomain } from '../model/names';

export interface Subject {
  readonly kind: 'ServiceAccount' | 'User';
  readonly name: string;
  readonly namespace?: string;
}

type Obj = Record<string, unknown>;

/** A ServiceAccount given as `namespace/name`; both parts must be Kubernetes names (DNS-1123 labels / subdomains). */
export function parseServiceAccount(text: string): { ok: true; subject: Subject } | { ok: false; error: string } {
  const parts = text.split('/');
  const shown = JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
  if (parts.length !== 2) return { ok: false, error: `${shown} must be NAMESPACE/NAME, e.g. firewall/firewall-agent` };
  const [namespace, name] = parts as [string, string];
  if (!isDns1123Label(namespace)) return { ok: false, error: `${shown}: namespace ${JSON.stringify(namespace)} is not a valid namespace name` };
  if (!isDns1123Subdomain(name)) return { ok: false, error: `${shown}: ${JSON.stringify(name)} is not a valid ServiceAccount name` };
  return { ok: true, subject: { kind: 'ServiceAccount', name, namespace } };
}

/**
 * What the seed objects cannot do as asked, for stderr. Without secret names the agent cannot read
 * the shoot access that the Firewall's status.shootAccess names (its default way to reach the
 * shoot), so it needs a shoot kubeconfig file (`--shoot-kubeconfig`).
 */
export function seedRbacWarnings(opts: { secretNames?: readonly string[] }): string[] {
  if (opts.secretNames && opts.secretNames.length > 0) return [];
  return [
    'no --secret given: the agent may not read the shoot-access secrets that the Firewall\'s status.shootAccess names ' +
      '(genericKubeconfigSecretName, tokenSecretName), its default way to reach the shoot; give both with --secret, ' +
      'or run the agent with --shoot-kubeconfig',
  ];
}

function subjects(s: Subject): Obj[] {
  return [s.kind === 'ServiceAccount' ? { kind: s.kind, name: s.name, namespace: s.namespace } : { kind: s.kind, name: s.name, apiGroup: 'rbac.authorization.k8s.io' }];
}

export function seedRbac(opts: { namespace: string; subject: Subject; secretNames?: readonly string[] }): Obj[] {
  const name = 'firewall-agent';
  const rules: Obj[] = [{ apiGroups: ['firewall.metal-stack.io'], resources: ['firewalls'], verbs: ['get', 'list', 'watch'] }];
  if (opts.secretNames && opts.secretNames.length > 0) {
    rules.push({ apiGroups: [''], resources: ['secrets'], resourceNames: [...opts.secretNames], verbs: ['get'] });
  }
  return [
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: opts.namespace }, rules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: opts.namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: subjects(opts.subject),
    },
  ];
}

export function shootRbac(opts: { subject: Subject }): Obj[] {
  const name = 'firewall-agent';
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name },
      rules: [
        { apiGroups: ['metal-stack.io'], resources: ['clusterwidenetworkpolicies'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['metal-stack.io'], resources: ['clusterwidenetworkpolicies/status'], verbs: ['get', 'update', 'patch'] },
        { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: subjects(opts.subject),
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name, namespace: 'firewall' },
      rules: [
        { apiGroups: ['firewall.metal-stack.io'], resources: ['firewallmonitors'], verbs: ['get', 'create', 'update', 'patch'] },
        // the published metrics Service and its endpoints: create (not restrictable by name), then only these names
        { apiGroups: [''], resources: ['services', 'endpoints'], verbs: ['create'] },
        { apiGroups: [''], resources: ['services', 'endpoints'], resourceNames: ['firewall-agent'], verbs: ['get', 'update'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['create'] },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], resourceNames: ['firewall-agent-ipv4', 'firewall-agent-ipv6'], verbs: ['get', 'update', 'delete'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: 'firewall' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: subjects(opts.subject),
    },
  ];
}
