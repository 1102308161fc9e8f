/**
 * The few Kubernetes calls the agent makes, behind one small facade per cluster. The seed facade
 * can only read: the agent never writes to the seed.
 */
import {
  CoreV1Api,
  CoreV1Event,
  CustomObjectsApi,
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  PatchStrategy,
  V1Secret,
  V1Service,
  setHeaderOptions,
} from '@kubernetes/client-node';

export type Unstructured = KubernetesObject & Record<string, unknown>;

export const CWNP = { group: 'metal-stack.io', version: 'v1', plural: 'clusterwidenetworkpolicies' } as const;
export const FIREWALL = { group: 'firewall.metal-stack.io', version: 'v2', plural: 'firewalls' } as const;
export const MONITOR = { group: 'firewall.metal-stack.io', version: 'v2', plural: 'firewallmonitors' } as const;

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: number; statusCode?: number } | undefined;
  return e?.code === 404 || e?.statusCode === 404;
}

/** Read-only access to the seed: the Firewall and the shoot-access secrets. */
export class SeedApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(readonly kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  static firewallsPath(namespace: string): string {
    return `/apis/${FIREWALL.group}/${FIREWALL.version}/namespaces/${namespace}/${FIREWALL.plural}`;
  }

  listFirewalls(namespace: string, name: string): Promise<KubernetesListObject<Unstructured>> {
    return this.custom.listNamespacedCustomObject({ ...FIREWALL, namespace, fieldSelector: `metadata.name=${name}` }) as Promise<
      KubernetesListObject<Unstructured>
    >;
  }

  readSecret(namespace: string, name: string): Promise<V1Secret> {
    return this.core.readNamespacedSecret({ namespace, name });
  }
}

/** The shoot: policies and Services (read), policy status, events and the FirewallMonitor (write). */
export class ShootApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(readonly kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  static readonly policiesPath = `/apis/${CWNP.group}/${CWNP.version}/${CWNP.plural}`;
  static readonly servicesPath = '/api/v1/services';

  listPolicies(): Promise<KubernetesListObject<Unstructured>> {
    return this.custom.listClusterCustomObject({ ...CWNP }) as Promise<KubernetesListObject<Unstructured>>;
  }

  listServices(): Promise<KubernetesListObject<V1Service>> {
    return this.core.listServiceForAllNamespaces();
  }

  async patchPolicyStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void> {
    await this.custom.patchNamespacedCustomObjectStatus({ ...CWNP, namespace, name, body: { status } }, MERGE);
  }

  async createEvent(namespace: string, event: CoreV1Event): Promise<void> {
    await this.core.createNamespacedEvent({ namespace, body: event });
  }

  async getMonitor(namespace: string, name: string): Promise<Unstructured | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ ...MONITOR, namespace, name })) as Unstructured;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async createMonitor(namespace: string, body: Unstructured): Promise<void> {
    await this.custom.createNamespacedCustomObject({ ...MONITOR, namespace, body });
  }

  async patchMonitor(namespace: string, name: string, patch: Record<string, unknown>): Promise<void> {
    await this.custom.patchNamespacedCustomObject({ ...MONITOR, namespace, name, body: patch }, MERGE);
  }
}
