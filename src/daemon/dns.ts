/**
 * FQDN policies in the daemon: runs the DNS proxy while some deployed policy has `toFQDNs`, and
 * for every answer opens the matching policies' sets through the sync loop before the client gets
 * it. Keeps the record (fqdn-state.ts) across full applies (the loop re-adds it) and restarts (the
 * state directory, written atomically at most every few seconds).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Packet } from 'dns-packet';
import { DnsProxyAddress, FqdnTarget } from '../compile/fqdn';
import { formatAddress } from '../model/address';
import { FirewallConfig } from '../model/firewall';
import { ObjectRef, formatRef } from '../model/names';
import { NftElement } from '../nft/ruleset';
import { DynamicWrite } from '../nft/transaction';
import { DnsProxy, ProxyEvent, Upstream } from '../dns/proxy';
import { resolvedAddresses } from '../dns/answers';
import { FQDN_DEFAULTS, FqdnLimits, FqdnState, FqdnStatusEntry, Plan } from '../dns/fqdn-state';
import { Logger } from '../report/log';
import { Clock, realClock } from '../sync/clock';
import { atomicWrite } from './store';

export const FQDN_FILE = 'fqdn.json';
/** At most one state-file write per this many ms: an answer is not a disk write. */
const PERSIST_EVERY_MS = 5000;
/** Forbidden addresses are logged at most this often (they are counted always). */
const FORBIDDEN_LOG_EVERY_MS = 10_000;

export interface DnsOptions {
  /** Listen port on the node-network addresses (the interception's DNAT target). */
  readonly port: number;
  /** Upstream when the Firewall names no dnsServerAddress (config, else resolv.conf). */
  readonly fallbackUpstream: Upstream | undefined;
  readonly limits?: FqdnLimits;
  readonly stateDir?: string;
  readonly log: Logger;
  readonly clock?: Clock;
  /** What the policies' fqdn_state would show changed (called at most every few seconds). */
  readonly changed?: () => void;
  /** The sync loop's writer of dynamic set elements. */
  readonly write: (writes: readonly DynamicWrite[], commit: (live: ReadonlySet<string>) => void) => Promise<void>;
  /** Metrics hooks. */
  readonly events?: {
    query?(e: ProxyEvent): void;
    added?(n: number): void;
    forbidden?(n: number): void;
    evicted?(n: number): void;
    writeMs?(ms: number): void;
  };
}

export class DnsService {
  readonly state: FqdnState;
  private readonly clock: Clock;
  private proxy: DnsProxy | undefined;
  listening: DnsProxyAddress | undefined;
  private starting: Promise<void> | undefined;
  private upstream: Upstream | undefined;
  private persistTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<void> | undefined;
  private lastForbiddenLog = 0;
  /** Why FQDN policies cannot be served now (shown in /status), if so. */
  problem: string | undefined;

  constructor(private readonly opts: DnsOptions) {
    this.clock = opts.clock ?? realClock;
    this.state = new FqdnState(this.clock, opts.limits ?? FQDN_DEFAULTS);
  }

  /** Loads what a previous run opened; before the first apply, which re-adds it. */
  async restore(): Promise<void> {
    if (!this.opts.stateDir) return;
    let text: string;
    try {
      text = await fs.readFile(path.join(this.opts.stateDir, FQDN_FILE), 'utf8');
    } catch {
      return; // first start
    }
    try {
      const n = this.state.restore(JSON.parse(text));
      if (n > 0) this.opts.log.info('restored addresses opened by DNS answers before the restart', { addresses: n });
    } catch (err) {
      this.opts.log.warn('the saved FQDN state does not parse; starting without it', { file: FQDN_FILE, error: err });
    }
  }

  /** The proxy's address for the compiler: interception only while it listens where the Firewall says. */
  address(fw: FirewallConfig): DnsProxyAddress | undefined {
    const l = this.listening;
    if (!l || l.port !== this.opts.port) return undefined;
    const want = fw.nodeNetwork.ips.map(formatAddress).sort().join(',');
    return l.addresses.map(formatAddress).sort().join(',') === want ? l : undefined;
  }

  /**
   * After each compile: start the proxy when FQDN policies are deployed (then `ready` asks for
   * another run, which adds the interception). Stopping waits for `enforced`: the interception
   * must leave the kernel before the proxy does.
   */
  reconcile(fw: FirewallConfig, wanted: boolean, ready: () => void): void {
    this.upstream = fw.dnsServer ? { host: formatAddress(fw.dnsServer), port: fw.dnsPort } : this.opts.fallbackUpstream;
    if (!wanted || this.starting || this.address(fw)) return;
    if (fw.nodeNetwork.ips.length === 0) {
      this.setProblem('the node network has no address in the Firewall status: FQDN policies open nothing');
      return;
    }
    this.starting = this.listen(fw).then(
      () => {
        this.setProblem(undefined);
        ready();
      },
      (err) => this.setProblem(`the DNS proxy cannot listen on port ${this.opts.port}: ${(err as Error).message}; FQDN policies open nothing`),
    ).finally(() => (this.starting = undefined));
  }

  private async listen(fw: FirewallConfig): Promise<void> {
    await this.stopProxy();
    const addresses = fw.nodeNetwork.ips;
    const proxy = new DnsProxy({
      listen: addresses.map((a) => ({ host: formatAddress(a), port: this.opts.port })),
      upstream: () => this.upstream,
      beforeAnswer: (response) => this.beforeAnswer(response),
      onEvent: (e) => this.opts.events?.query?.(e),
    });
    await proxy.start();
    this.proxy = proxy;
    this.listening = { addresses, port: this.opts.port };
    this.opts.log.info('DNS proxy listening', { addresses: addresses.map(formatAddress), port: this.opts.port, upstream: this.upstream && `${this.upstream.host}:${this.upstream.port}` });
  }

  /** After each apply: the sets that exist now; the proxy stops once nothing intercepts DNS. */
  enforced(targets: readonly FqdnTarget[], intercepted: boolean): void {
    this.state.setTargets(targets);
    if (targets.length === 0 && !intercepted && this.proxy) {
      void this.stopProxy().then(() => this.opts.log.info('DNS proxy stopped: no policy uses toFQDNs'));
    }
    this.persistSoon();
  }

  private async stopProxy(): Promise<void> {
    const p = this.proxy;
    this.proxy = undefined;
    this.listening = undefined;
    await p?.stop();
  }

  /** Every NOERROR answer: open what it names before the client sees it. */
  private async beforeAnswer(response: Packet): Promise<void> {
    if (!this.state.active) return;
    const { names, addresses } = resolvedAddresses(response);
    if (names.length === 0) return;
    const plan = this.state.plan(names, addresses);
    if (plan.forbidden.length > 0) this.forbidden(plan);
    if (plan.writes.length === 0) {
      if (plan.names.length > 0) this.state.commit(plan);
      return;
    }
    const started = this.clock.now();
    await this.opts.write(groupWrites(plan), (live) => {
      this.state.commit({ ...plan, writes: plan.writes.filter((w) => live.has(w.set)) });
    });
    this.opts.events?.writeMs?.(this.clock.now() - started);
    this.opts.events?.added?.(plan.writes.filter((w) => w.timeoutS !== undefined).length);
    if (plan.evicted > 0) {
      this.opts.events?.evicted?.(plan.evicted);
      this.opts.log.warn('an FQDN set is full: the addresses expiring first were removed', { evicted: plan.evicted, max: this.state.limits.maxPerSet });
    }
    this.persistSoon();
  }

  private forbidden(plan: Plan): void {
    this.opts.events?.forbidden?.(plan.forbidden.length);
    const now = this.clock.now();
    if (now - this.lastForbiddenLog < FORBIDDEN_LOG_EVERY_MS) return;
    this.lastForbiddenLog = now;
    const first = plan.forbidden[0]!;
    this.opts.log.warn('a DNS answer names an address outside allowedNetworks.egress; not opened', {
      policy: formatRef(first.policy),
      address: first.address,
      count: plan.forbidden.length,
    });
  }

  /** Live elements of a set for a full apply. */
  elements(set: string): readonly NftElement[] {
    return this.state.elements(set);
  }

  /** For /status. */
  summary(): Record<string, unknown> {
    return {
      listening: this.listening && { addresses: this.listening.addresses.map(formatAddress), port: this.listening.port },
      upstream: this.upstream && `${this.upstream.host}:${this.upstream.port}`,
      addresses: this.state.addressCount,
      names: this.state.nameCount,
      problem: this.problem,
    };
  }

  status(policy: ObjectRef): Record<string, FqdnStatusEntry[]> | undefined {
    const s = this.state.status(policy);
    return Object.keys(s).length > 0 ? s : undefined;
  }

  private setProblem(p: string | undefined): void {
    if (p !== undefined && p !== this.problem) this.opts.log.error(p);
    this.problem = p;
  }

  /** The state file and status, at most every PERSIST_EVERY_MS. */
  private persistSoon(): void {
    const dir = this.opts.stateDir;
    if (this.persistTimer) return;
    if (!dir) {
      this.persistTimer = setTimeout(() => {
        this.persistTimer = undefined;
        this.opts.changed?.();
      }, PERSIST_EVERY_MS);
      this.persistTimer.unref();
      return;
    }
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persisting = this.persist(dir);
      this.opts.changed?.();
    }, PERSIST_EVERY_MS);
    this.persistTimer.unref();
  }

  private async persist(dir: string): Promise<void> {
    try {
      await atomicWrite(dir, FQDN_FILE, `${JSON.stringify(this.state.toJSON())}\n`);
    } catch (err) {
      this.opts.log.warn('could not save the FQDN state; a restart would forget the opened addresses until asked again', { error: err });
    }
  }

  async stop(): Promise<void> {
    if (this.persistTimer) {
      clearTimeout(this.persistTimer);
      this.persistTimer = undefined;
      if (this.opts.stateDir) await this.persist(this.opts.stateDir);
    }
    await this.persisting;
    await this.starting;
    await this.stopProxy();
  }
}

/** Plan writes grouped per set, as the loop's transaction takes them. */
function groupWrites(plan: Plan): DynamicWrite[] {
  const by = new Map<string, { add: { address: string; timeoutS: number }[]; refresh: { address: string; timeoutS: number }[]; remove: string[] }>();
  for (const w of plan.writes) {
    let g = by.get(w.set);
    if (!g) by.set(w.set, (g = { add: [], refresh: [], remove: [] }));
    if (w.timeoutS === undefined) g.remove.push(w.address);
    else (w.refresh ? g.refresh : g.add).push({ address: w.address, timeoutS: w.timeoutS });
  }
  return [...by].map(([set, g]) => ({ set, ...g }));
}

/** The first `nameserver` of a resolv.conf, port 53. */
export function resolvConfUpstream(text: string): Upstream | undefined {
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+([0-9a-fA-F:.]+)(?:%\S+)?\s*$/.exec(line);
    if (m) return { host: m[1]!, port: 53 };
  }
  return undefined;
}
