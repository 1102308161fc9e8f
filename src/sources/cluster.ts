/**
 * The cluster source: the Firewall from the seed (read only), policies and Services from the
 * shoot, each through a watch that restarts and relists on its own. Credentials rotate: the seed
 * kubeconfig (and a token file it names) and the shoot access are re-read every few seconds, and a
 * change reconnects the watches.
 */
import { KubernetesObject, V1Service } from '@kubernetes/client-node';
import { SeedApi, ShootApi, Unstructured } from '../kube/api';
import { LoadedKubeconfig, loadKubeconfigFile } from '../kube/kubeconfig';
import { readShootAccess, shootKubeconfigFromSeed } from '../kube/shootaccess';
import { ResourceWatch, errorMessage } from '../kube/watch';
import { Obj } from '../model/fields';
import { Logger } from '../report/log';
import { InputProblem, Snapshot, SnapshotObject, Source, SourceHealth } from './source';

export interface ClusterSourceOptions {
  readonly seedKubeconfig: string;
  /** When absent, shoot access comes from the Firewall's status.shootAccess secrets. */
  readonly shootKubeconfig?: string;
  readonly firewallName: string;
  /** When absent, the seed kubeconfig's current-context. */
  readonly firewallNamespace?: string;
  readonly log: Logger;
  readonly resyncMs?: number;
  readonly pollMs?: number;
}

function item(o: KubernetesObject, origin: string, version: string | undefined): SnapshotObject {
  return { key: `${o.metadata?.uid ?? `${o.metadata?.namespace}/${o.metadata?.name}`}@${version ?? ''}`, origin, object: o as unknown as Obj };
}

export class ClusterSource implements Source {
  readonly kind = 'cluster' as const;
  private readonly log: Logger;
  private seed: { loaded: LoadedKubeconfig; api: SeedApi; namespace: string } | undefined;
  private shoot: { loaded: LoadedKubeconfig; api: ShootApi } | undefined;
  private readonly firewallWatch: ResourceWatch<Unstructured>;
  private readonly policyWatch: ResourceWatch<Unstructured>;
  private readonly serviceWatch: ResourceWatch<V1Service>;
  private poll: NodeJS.Timeout | undefined;
  private onChange: () => void = () => undefined;
  private credentialProblems = new Map<string, string>();
  private stopped = false;

  constructor(private readonly opts: ClusterSourceOptions) {
    this.log = opts.log;
    const resyncMs = opts.resyncMs ?? 5 * 60_000;
    const changed = (): void => this.onChange();
    this.firewallWatch = new ResourceWatch<Unstructured>({
      name: 'seed/firewall',
      path: '', // set when the namespace is known
      list: () => this.seed!.api.listFirewalls(this.seed!.namespace, opts.firewallName),
      fieldSelector: `metadata.name=${opts.firewallName}`,
      resyncMs,
      // Shoot access may come from the Firewall's status: connect as soon as it is known.
      onChange: () => {
        if (!this.shoot) void this.refreshShoot();
        changed();
      },
      onHealth: changed,
      log: this.log,
    });
    this.policyWatch = new ResourceWatch<Unstructured>({
      name: 'shoot/clusterwidenetworkpolicies',
      path: ShootApi.policiesPath,
      list: () => this.shoot!.api.listPolicies(),
      // Only spec changes matter (they bump the generation); our own status writes do not.
      fingerprint: (o) => `${o.metadata?.uid ?? ''}/${o.metadata?.generation ?? o.metadata?.resourceVersion ?? ''}`,
      resyncMs,
      onChange: changed,
      onHealth: changed,
      log: this.log,
    });
    this.serviceWatch = new ResourceWatch<V1Service>({
      name: 'shoot/services',
      path: ShootApi.servicesPath,
      list: () => this.shoot!.api.listServices(),
      resyncMs,
      onChange: changed,
      onHealth: changed,
      log: this.log,
    });
  }

  async start(onChange: () => void): Promise<void> {
    this.onChange = onChange;
    this.stopped = false;
    await this.refresh();
    this.poll = setInterval(() => void this.refresh(), this.opts.pollMs ?? 2000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poll);
    this.firewallWatch.stop();
    this.policyWatch.stop();
    this.serviceWatch.stop();
  }

  /** Where the Firewall is read (for status and the FirewallMonitor). */
  get namespace(): string | undefined {
    return this.seed?.namespace;
  }

  /** The shoot's API for write-back, once connected. */
  get shootApi(): ShootApi | undefined {
    return this.shoot?.api;
  }

  firewallObject(): Unstructured | undefined {
    return this.firewallWatch.list().find((f) => f.metadata?.name === this.opts.firewallName);
  }

  policyObjects(): readonly Unstructured[] {
    return this.policyWatch.list();
  }

  serviceObjects(): readonly V1Service[] {
    return this.serviceWatch.list();
  }

  snapshot(): Snapshot {
    const fw = this.firewallObject();
    const ns = this.seed?.namespace ?? '?';
    return {
      // policies are keyed by generation: our status writes do not make them new to the parse cache
      firewalls: fw ? [item(fw, `seed ${ns}/${this.opts.firewallName}`, fw.metadata?.resourceVersion)] : [],
      policies: this.policyWatch.list().map((o) => item(o, 'shoot', o.metadata?.generation !== undefined ? `g${o.metadata.generation}` : o.metadata?.resourceVersion)),
      services: this.serviceWatch.list().map((o) => item(o, 'shoot', o.metadata?.resourceVersion)),
      notes: [],
      synced: this.health().every((h) => h.synced),
    };
  }

  health(): readonly SourceHealth[] {
    return [this.firewallWatch.status, this.policyWatch.status, this.serviceWatch.status];
  }

  problems(): readonly InputProblem[] {
    return [...this.credentialProblems].map(([origin, error]) => ({ origin, error }));
  }

  /** Whether the Firewall has been looked for and is not there (a deleted Firewall). */
  firewallMissing(): boolean {
    return this.firewallWatch.status.synced && !this.firewallObject();
  }

  private problem(origin: string, err: unknown | undefined, message: string): void {
    if (err === undefined) {
      this.credentialProblems.delete(origin);
      return;
    }
    const text = errorMessage(err);
    if (this.credentialProblems.get(origin) !== text) this.log.warn(message, { file: origin, error: text });
    this.credentialProblems.set(origin, text);
  }

  private async refresh(): Promise<void> {
    if (this.stopped) return;
    await this.refreshSeed();
    await this.refreshShoot();
  }

  private async refreshSeed(): Promise<void> {
    let loaded: LoadedKubeconfig;
    try {
      loaded = await loadKubeconfigFile(this.opts.seedKubeconfig);
      this.problem(this.opts.seedKubeconfig, undefined, '');
    } catch (err) {
      this.problem(this.opts.seedKubeconfig, err, 'cannot read the seed kubeconfig');
      return;
    }
    if (this.stopped || (this.seed && this.seed.loaded.fingerprint === loaded.fingerprint)) return;
    const namespace = this.opts.firewallNamespace ?? loaded.currentContext;
    this.log.info(this.seed ? 'seed credentials changed; reconnecting' : 'connecting to the seed', { namespace, firewall: this.opts.firewallName });
    this.seed = { loaded, api: new SeedApi(loaded.kc), namespace };
    this.firewallWatch.start(loaded.kc, SeedApi.firewallsPath(namespace));
  }

  private async refreshShoot(): Promise<void> {
    let loaded: LoadedKubeconfig | undefined;
    const origin = this.opts.shootKubeconfig ?? 'shoot access (Firewall status.shootAccess)';
    try {
      if (this.opts.shootKubeconfig) {
        loaded = await loadKubeconfigFile(this.opts.shootKubeconfig);
      } else if (this.seed) {
        const access = readShootAccess(this.firewallObject());
        if (!access) return; // not known yet: the Firewall has to be read first
        loaded = await shootKubeconfigFromSeed(this.seed.api, access);
      }
      this.problem(origin, undefined, '');
    } catch (err) {
      this.problem(origin, err, 'cannot build shoot credentials');
      return;
    }
    if (this.stopped || !loaded || (this.shoot && this.shoot.loaded.fingerprint === loaded.fingerprint)) return;
    this.log.info(this.shoot ? 'shoot credentials changed; reconnecting' : 'connecting to the shoot');
    this.shoot = { loaded, api: new ShootApi(loaded.kc) };
    this.policyWatch.start(loaded.kc);
    this.serviceWatch.start(loaded.kc);
  }
}
