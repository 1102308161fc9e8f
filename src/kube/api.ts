/**
 * The few Kubernetes calls the agent makes, behind one small facade per cluster. The seed facade
 * can only read: the agent never writes to the seed.
 */
import {
  CoreV1Api,
  CoreV1Event,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  PatchStrategy,
  V1Endpoints,
  V1EndpointSlice,
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

/** The objects that publish the agent's metrics address in the shoot (headless Service and its endpoints). */
export interface Published {
  readonly service: V1Service;
  readonly endpoints: V1Endpoints;
  readonly slices: readonly V1EndpointSlice[];
}

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * The shoot: policies and Services (read), policy status, events, the FirewallMonitor and the
 * metrics Service with its endpoints in namespace `firewall` (write).
 */
export class ShootApi {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly discovery: DiscoveryV1Api;

  constructor(readonly kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.discovery = kc.makeApiClient(DiscoveryV1Api);
  }

  readService(namespace: string, name: string): Promise<V1Service | undefined> {
    return orUndefined(this.core.readNamespacedService({ namespace, name }));
  }

  async writeService(namespace: string, body: V1Service, existing: V1Service | undefined): Promise<void> {
    const name = body.metadata!.name!;
    if (!existing) await this.core.createNamespacedService({ namespace, body });
    else await this.core.replaceNamespacedService({ namespace, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } } });
  }

  readEndpoints(namespace: string, name: string): Promise<V1Endpoints | undefined> {
    return orUndefined(this.core.readNamespacedEndpoints({ namespace, name }));
  }

  async writeEndpoints(namespace: string, body: V1Endpoints, existing: V1Endpoints | undefined): Promise<void> {
    const name = body.metadata!.name!;
    if (!existing) await this.core.createNamespacedEndpoints({ namespace, body });
    else await this.core.replaceNamespacedEndpoints({ namespace, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } } });
  }

  readEndpointSlice(namespace: string, name: string): Promise<V1EndpointSlice | undefined> {
    return orUndefined(this.discovery.readNamespacedEndpointSlice({ namespace, name }));
  }

  async writeEndpointSlice(namespace: string, body: V1EndpointSlice, existing: V1EndpointSlice | undefined): Promise<void> {
    const name = body.metadata!.name!;
    if (!existing) await this.discovery.createNamespacedEndpointSlice({ namespace, body });
    else await this.discovery.replaceNamespacedEndpointSlice({ namespace, name, body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } } });
  }

  async deleteEndpointSlice(namespace: string, name: string): Promise<void> {
    await orUndefined(this.discovery.deleteNamespacedEndpointSlice({ namespace, name }));
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
