/**
 * Publishing the metrics to the cluster, as the upstream agent does for nftables-exporter: the
 * agent serves /metrics on the firewall's node-network addresses, and keeps a headless Service
 * `firewall-agent` with classic Endpoints and EndpointSlices (one per family) in the shoot's
 * namespace `firewall` pointing there, so an in-cluster Prometheus finds it by Service discovery
 * of either kind. Created if missing, corrected when they drift from what is meant, left alone
 * otherwise: a steady state makes no writes.
 */
import type { Server } from 'node:http';
import type { V1EndpointSlice, V1Endpoints, V1Service } from '@kubernetes/client-node';
import { IpAddress, formatAddress, parseAddress } from '../model/address';
import type { PublishedAddress } from '../daemon/config';
import { FirewallConfig } from '../model/firewall';
import { POLICY_NAMESPACE } from '../model/cwnp';
import type { Published } from '../kube/api';
import type { ClusterSource } from '../sources/cluster';
import { HttpSources, startHttp } from './http';
import { Logger } from './log';

/** The published metrics addresses for a Firewall: its node network's, or the one configured. */
export function publishTarget(p: PublishedAddress, fw: FirewallConfig): { addresses: readonly IpAddress[]; port: number } | undefined {
  if (p.kind === 'node-network') return { addresses: fw.nodeNetwork.ips, port: p.port };
  const a = parseAddress(p.host);
  return a.ok ? { addresses: [a.value], port: p.port } : undefined;
}

export const PUBLISHED_NAME = 'firewall-agent';
const NS = POLICY_NAMESPACE;
const PORT_NAME = 'metrics';
export const PUBLISHED_LABELS: Readonly<Record<string, string>> = {
  app: PUBLISHED_NAME,
  'app.kubernetes.io/name': PUBLISHED_NAME,
  'app.kubernetes.io/managed-by': PUBLISHED_NAME,
};

function sliceName(family: 4 | 6): string {
  return `${PUBLISHED_NAME}-ipv${family}`;
}

/** The objects as meant: nothing else in them is ours. */
export function publishedObjects(addresses: readonly IpAddress[], port: number): Published {
  const meta = (name: string, extra: Record<string, string> = {}): { name: string; namespace: string; labels: Record<string, string> } => ({
    name,
    namespace: NS,
    labels: { ...PUBLISHED_LABELS, ...extra },
  });
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(PUBLISHED_NAME),
    spec: { clusterIP: 'None', ports: [{ name: PORT_NAME, port, targetPort: port, protocol: 'TCP' }] },
  };
  const endpoints: V1Endpoints = {
    apiVersion: 'v1',
    kind: 'Endpoints',
    // our EndpointSlices are written directly: the mirroring controller must not copy these
    metadata: meta(PUBLISHED_NAME, { 'endpointslice.kubernetes.io/skip-mirror': 'true' }),
    subsets: [{ addresses: addresses.map((a) => ({ ip: formatAddress(a) })), ports: [{ name: PORT_NAME, port, protocol: 'TCP' }] }],
  };
  const slices: V1EndpointSlice[] = ([4, 6] as const)
    .filter((fam) => addresses.some((a) => a.family === fam))
    .map((fam) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: meta(sliceName(fam), { 'kubernetes.io/service-name': PUBLISHED_NAME, 'endpointslice.kubernetes.io/managed-by': 'firewall-agent.metal-stack.io' }),
      addressType: fam === 4 ? 'IPv4' : 'IPv6',
      endpoints: [{ addresses: addresses.filter((a) => a.family === fam).map(formatAddress), conditions: { ready: true } }],
      ports: [{ name: PORT_NAME, port, protocol: 'TCP' }],
    }));
  return { service, endpoints, slices };
}

function labelsHeld(have: Record<string, string> | undefined, want: Record<string, string> | undefined): boolean {
  return Object.entries(want ?? {}).every(([k, v]) => have?.[k] === v);
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Whether the object in the cluster differs from the meant one in anything that is ours. */
export function serviceDrifted(have: V1Service | undefined, want: V1Service): boolean {
  if (!have) return true;
  const ports = (have.spec?.ports ?? []).map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol ?? 'TCP' }));
  return !labelsHeld(have.metadata?.labels, want.metadata?.labels) || have.spec?.clusterIP !== 'None' || have.spec?.selector !== undefined || !same(ports, want.spec?.ports);
}

export function endpointsDrifted(have: V1Endpoints | undefined, want: V1Endpoints): boolean {
  if (!have) return true;
  const subsets = (have.subsets ?? []).map((s) => ({
    addresses: (s.addresses ?? []).map((a) => ({ ip: a.ip })),
    ports: (s.ports ?? []).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP' })),
  }));
  return !labelsHeld(have.metadata?.labels, want.metadata?.labels) || !same(subsets, want.subsets);
}

export function sliceDrifted(have: V1EndpointSlice | undefined, want: V1EndpointSlice): boolean {
  if (!have) return true;
  const endpoints = (have.endpoints ?? []).map((e) => ({ addresses: e.addresses, conditions: { ready: e.conditions?.ready } }));
  const ports = (have.ports ?? []).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP' }));
  return !labelsHeld(have.metadata?.labels, want.metadata?.labels) || have.addressType !== want.addressType || !same(endpoints, want.endpoints) || !same(ports, want.ports);
}

export interface PublisherOptions {
  readonly source: ClusterSource | undefined;
  readonly http: Omit<HttpSources, 'status'>;
  readonly log: Logger;
  readonly failed?: () => void;
}

/**
 * Serves /metrics (and health, never /status) on the published addresses, and keeps the shoot's
 * objects pointing there. `set` after each compile; `reconcile` after each sync run.
 */
export class MetricsPublisher {
  private servers: Server[] = [];
  private listening = '';
  private target: { addresses: readonly IpAddress[]; port: number } | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** Binding changes one after the other. */
  private binding: Promise<void> = Promise.resolve();
  /** Why metrics are not published now, if so (shown in /status). */
  problem: string | undefined;

  constructor(private readonly opts: PublisherOptions) {}

  /** Where to serve: (re)binds when the addresses change; a failure is reported, never thrown. */
  set(addresses: readonly IpAddress[], port: number): Promise<void> {
    this.binding = this.binding.then(() => this.bind(addresses, port));
    return this.binding;
  }

  private async bind(addresses: readonly IpAddress[], port: number): Promise<void> {
    const key = `${addresses.map(formatAddress).sort().join(',')}:${port}`;
    this.target = { addresses, port };
    if (key === this.listening) return;
    await this.close();
    this.listening = key;
    try {
      for (const a of addresses) this.servers.push(await startHttp(formatAddress(a), port, { ...this.opts.http, status: undefined }));
      this.setProblem(undefined);
      this.opts.log.info('serving /metrics for the cluster', { addresses: addresses.map(formatAddress), port });
    } catch (err) {
      await this.close();
      this.listening = key; // not retried until the addresses change or the agent restarts
      this.setProblem(`cannot serve metrics on ${addresses.map(formatAddress).join(', ')} port ${port}: ${(err as Error).message}`);
    }
  }

  /** The shoot objects, one reconcile at a time; a request during one runs once more after it. */
  reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.publish();
      } while (this.again);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async publish(): Promise<void> {
    const api = this.opts.source?.shootApi;
    const t = this.target;
    if (!api || !t || t.addresses.length === 0) return;
    const want = publishedObjects(t.addresses, t.port);
    try {
      const svc = await api.readService(NS, PUBLISHED_NAME);
      if (serviceDrifted(svc, want.service)) await api.writeService(NS, want.service, svc);
      const ep = await api.readEndpoints(NS, PUBLISHED_NAME);
      if (endpointsDrifted(ep, want.endpoints)) await api.writeEndpoints(NS, want.endpoints, ep);
      for (const fam of [4, 6] as const) {
        const wantSlice = want.slices.find((s) => s.addressType === (fam === 4 ? 'IPv4' : 'IPv6'));
        const have = await api.readEndpointSlice(NS, sliceName(fam));
        if (wantSlice && sliceDrifted(have, wantSlice)) await api.writeEndpointSlice(NS, wantSlice, have);
        if (!wantSlice && have) await api.deleteEndpointSlice(NS, sliceName(fam));
      }
    } catch (err) {
      this.opts.failed?.();
      this.opts.log.warn('could not publish the metrics Service in the shoot', { namespace: NS, name: PUBLISHED_NAME, error: err });
    }
  }

  private setProblem(p: string | undefined): void {
    if (p !== undefined && p !== this.problem) this.opts.log.warn(p);
    this.problem = p;
  }

  summary(): Record<string, unknown> {
    return { addresses: this.target?.addresses.map(formatAddress), port: this.target?.port, serving: this.servers.length > 0, problem: this.problem };
  }

  async close(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    this.listening = '';
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  async stop(): Promise<void> {
    await this.binding;
    await this.running;
    await this.close();
  }
}
