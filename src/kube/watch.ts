/**
 * A list+watch of one resource that does not give up. client-node's ListWatch relists on 410 Gone
 * and reconnects after watch timeouts, but stops for good on any other error; this wrapper restarts
 * it with backoff, relists periodically as a safety net, and keeps health for reporting.
 */
import { KubeConfig, KubernetesListObject, KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import { Logger } from '../report/log';
import { errorMessage } from '../report/errors';

export interface WatchHealth {
  readonly name: string;
  /** The initial list succeeded and no error has happened since the last successful list. */
  readonly synced: boolean;
  readonly lastSyncAt: number | undefined;
  readonly lastError: string | undefined;
  readonly restarts: number;
}

export interface WatchOptions<T extends KubernetesObject> {
  readonly name: string;
  /** Watch path; may also be given (or changed) at start. */
  readonly path: string;
  readonly list: (kc: KubeConfig) => Promise<KubernetesListObject<T>>;
  readonly fieldSelector?: string;
  /**
   * What about an object matters; an update that leaves it unchanged (e.g. only the status the
   * agent itself wrote) does not trigger a reconcile. Default: any change.
   */
  readonly fingerprint?: (obj: T) => string;
  readonly resyncMs: number;
  readonly onChange: () => void;
  readonly onHealth?: (h: WatchHealth) => void;
  readonly log: Logger;
}

const BACKOFF_MIN_MS = 500;

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * Drops what the agent never reads from a cached object, in place (the informer's cache holds the
 * same object): managedFields and kubectl's copy of the last applied object are each about as
 * large as the spec. At 10,000 policies that is tens of MiB of heap.
 */
export function slim(o: KubernetesObject): void {
  const meta = o.metadata;
  if (!meta) return;
  delete meta.managedFields;
  if (meta.annotations && LAST_APPLIED in meta.annotations) delete meta.annotations[LAST_APPLIED];
}
const BACKOFF_MAX_MS = 30_000;

export class ResourceWatch<T extends KubernetesObject> {
  /** The informer whose cache is served: the newest one that completed a list. */
  private active: ListWatch<T> | undefined;
  /** A newer informer that has not listed yet (after a restart); it replaces `active` once it has. */
  private pending: ListWatch<T> | undefined;
  private kc: KubeConfig | undefined;
  private stopped = true;
  private backoffMs = BACKOFF_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private generation = 0;
  private health: WatchHealth;
  private path: string;

  constructor(private readonly opts: WatchOptions<T>) {
    this.health = { name: opts.name, synced: false, lastSyncAt: undefined, lastError: undefined, restarts: 0 };
    this.path = opts.path;
  }

  get status(): WatchHealth {
    return this.health;
  }

  /** The last complete view: a restart never exposes a half-filled cache. */
  list(): readonly T[] {
    return this.active?.list() ?? [];
  }

  /** (Re)starts with a client; used at start and whenever the credentials change. */
  start(kc: KubeConfig, path?: string): void {
    this.kc = kc;
    if (path !== undefined) this.path = path;
    this.stopped = false;
    this.restart('start');
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    void this.active?.stop();
    void this.pending?.stop();
    this.active = undefined;
    this.pending = undefined;
  }

  private setHealth(patch: Partial<WatchHealth>): void {
    this.health = { ...this.health, ...patch };
    this.opts.onHealth?.(this.health);
  }

  private restart(reason: string): void {
    if (this.stopped || !this.kc) return;
    const gen = ++this.generation;
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    if (this.pending) void this.pending.stop();
    const kc = this.kc;
    const listFn = async (): Promise<KubernetesListObject<T>> => {
      const list = await this.opts.list(kc);
      if (gen === this.generation) {
        this.backoffMs = BACKOFF_MIN_MS;
        // ListWatch fills its cache right after this returns; switch over once it has.
        setImmediate(() => {
          if (gen !== this.generation) return;
          if (this.active && this.active !== informer) void this.active.stop();
          this.active = informer;
          this.pending = undefined;
          this.setHealth({ synced: true, lastSyncAt: Date.now(), lastError: undefined });
          this.opts.onChange();
        });
      }
      return list;
    };
    const informer: ListWatch<T> = new ListWatch<T>(this.path, new Watch(kc), listFn, false, undefined, this.opts.fieldSelector);
    this.pending = informer;
    const changed = (): void => {
      if (this.active === informer) this.opts.onChange();
    };
    const fp = this.opts.fingerprint;
    const seen = new Map<string, string>();
    const key = (o: T): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    informer.on('add', (o: T) => {
      slim(o);
      if (fp) seen.set(key(o), fp(o));
      changed();
    });
    informer.on('update', (o: T) => {
      slim(o);
      if (fp) {
        const f = fp(o);
        if (seen.get(key(o)) === f) return;
        seen.set(key(o), f);
      }
      changed();
    });
    informer.on('delete', (o: T) => {
      seen.delete(key(o));
      changed();
    });
    informer.on('error', (err: unknown) => {
      if (this.stopped || (informer !== this.active && informer !== this.pending)) return;
      if (this.pending && informer !== this.pending) return; // a restart is already under way
      const message = errorMessage(err);
      this.setHealth({ synced: false, lastError: message });
      this.opts.log.warn('watch failed; restarting', { watch: this.opts.name, error: message, retryInMs: this.backoffMs });
      this.retryTimer = setTimeout(() => {
        this.setHealth({ restarts: this.health.restarts + 1 });
        this.restart('error');
      }, this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    });
    this.resyncTimer = setInterval(() => this.restart('periodic relist'), this.opts.resyncMs);
    this.resyncTimer.unref?.();
    this.opts.log.debug('watch starting', { watch: this.opts.name, reason });
    informer.start().catch((err: unknown) => {
      if (gen === this.generation) this.opts.log.warn('watch start failed', { watch: this.opts.name, error: errorMessage(err) });
    });
  }
}

export { errorMessage } from '../report/errors';
