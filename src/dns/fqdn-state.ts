/**
 * What the DNS proxy has opened: per dynamic set the addresses and when they expire, and per name
 * what it resolved to (for `fqdn_state` in the policies' status). This is the agent's record; the
 * kernel holds the same elements with the same timeouts, written through the sync loop only after
 * `plan` and before `commit`. A full apply re-adds the live elements with their remaining time, a
 * restart restores them from the state directory. Pure apart from the injected clock.
 */
import { Family, IpAddress, formatAddress, parseAddress } from '../model/address';
import { ObjectRef, formatRef } from '../model/names';
import { covers } from '../model/rangeset';
import { FqdnTarget } from '../compile/fqdn';
import { NftElement } from '../nft/ruleset';
import { Clock } from '../sync/clock';
import { NameMatcher, canonicalName, selectorMatcher, selectorText } from './selector';

export interface FqdnLimits {
  /**
   * Shortest time an address stays open. Clients and libraries keep answers a little past their
   * TTL and retry connects; tiny TTLs (CDNs use 5–20 s) would otherwise close addresses under
   * them, and each refresh is a kernel write.
   */
  readonly minTtlS: number;
  /** Longest time an address stays open after its last answer: a moved name closes within a day. */
  readonly maxTtlS: number;
  /** Addresses per set; beyond it the ones expiring first are removed. */
  readonly maxPerSet: number;
  /** Names remembered for status; beyond it the least recently answered are forgotten. */
  readonly maxNames: number;
}

export const FQDN_DEFAULTS: FqdnLimits = { minTtlS: 60, maxTtlS: 86_400, maxPerSet: 4096, maxNames: 10_000 };

/** An address from an answer (answers.ts). */
export interface AnswerAddress {
  readonly address: string;
  readonly family: 4 | 6;
  readonly ttl: number;
}

/** A kernel write: add with a timeout (delete + add refreshes it), or remove (`timeoutS` absent). */
export interface ElementWrite {
  readonly set: string;
  readonly address: string;
  readonly timeoutS?: number;
  /** The element is in the set (by this record): its timeout is refreshed. */
  readonly refresh?: boolean;
}

export interface Plan {
  readonly writes: readonly ElementWrite[];
  /** Addresses outside allowedNetworks.egress (forbidden mode): never added. */
  readonly forbidden: readonly { readonly policy: ObjectRef; readonly address: string }[];
  /** Addresses removed early because a set was full. */
  readonly evicted: number;
  /** Targets the answer matched. */
  readonly matched: number;
  /** What commit records for status. */
  readonly names: readonly { readonly name: string; readonly address: string; readonly family: Family; readonly expires: number }[];
}

interface Target {
  readonly target: FqdnTarget;
  readonly matchers: readonly NameMatcher[];
}

/** `fqdn_state` entry (upstream's IPSet shape). */
export interface FqdnStatusEntry {
  fqdn: string;
  setName: string;
  version: 'ip' | 'ip6';
  ips: string[];
  ipExpirationTimes: Record<string, string>;
}

const PERSIST_VERSION = 1;
/** Bounds of `fqdn_state` in a status: a CWNP object must stay far below etcd's 1.5 MiB. */
export const STATUS_MAX_NAMES = 64;
export const STATUS_MAX_IPS = 32;

export class FqdnState {
  private targets: Target[] = [];
  private readonly sets = new Map<string, Map<string, number>>();
  /** name → address → { family, expires }; Map order is least recently answered first. */
  private readonly names = new Map<string, Map<string, { family: Family; expires: number }>>();

  constructor(
    private readonly clock: Clock,
    readonly limits: FqdnLimits = FQDN_DEFAULTS,
  ) {}

  /** The deployed toFQDNs rules, after each apply: sets that are gone lose their addresses. */
  setTargets(targets: readonly FqdnTarget[]): void {
    this.targets = targets.map((target) => ({ target, matchers: target.selectors.map(selectorMatcher) }));
    const live = new Set(targets.flatMap((t) => [t.sets[4], t.sets[6]]));
    for (const name of this.sets.keys()) if (!live.has(name)) this.sets.delete(name);
  }

  get active(): boolean {
    return this.targets.length > 0;
  }

  /** The writes an answer needs before the client may see it. */
  plan(chain: readonly string[], addresses: readonly AnswerAddress[]): Plan {
    const now = this.clock.now();
    const names = chain.map(canonicalName);
    const writes: ElementWrite[] = [];
    const forbidden: { policy: ObjectRef; address: string }[] = [];
    const recorded: Plan['names'][number][] = [];
    let evicted = 0;
    let matched = 0;
    for (const { target, matchers } of this.targets) {
      const name = names.find((n) => matchers.some((m) => m(n)));
      if (name === undefined) continue;
      matched++;
      const fresh = new Map<string, string[]>();
      for (const a of addresses) {
        const parsed = parseAddress(a.address);
        if (!parsed.ok || parsed.value.family !== a.family) continue;
        const address = formatAddress(parsed.value);
        if (target.allowed && !inside(target.allowed, parsed.value)) {
          forbidden.push({ policy: target.policy, address });
          continue;
        }
        const set = target.sets[a.family];
        const ttl = Math.max(0, Math.floor(a.ttl));
        const timeoutS = this.timeoutFor(ttl);
        recorded.push({ name, address, family: a.family, expires: now + timeoutS * 1000 });
        const expires = this.sets.get(set)?.get(address);
        // Still open for as long as the client may use this answer: no write.
        if (expires !== undefined && expires - now >= Math.min(ttl, this.limits.maxTtlS) * 1000) continue;
        writes.push({ set, address, timeoutS, ...(expires !== undefined && expires > now ? { refresh: true } : {}) });
        fresh.set(set, [...(fresh.get(set) ?? []), address]);
      }
      for (const [set, added] of fresh) evicted += this.evictions(set, added, now, writes);
    }
    return { writes, forbidden, evicted, matched, names: recorded };
  }

  /**
   * The timeout written: the TTL plus a quarter, clamped. The quarter lets answers whose TTL does
   * not count down (an authoritative server) refresh an element at most every TTL/4.
   */
  private timeoutFor(ttl: number): number {
    const { minTtlS, maxTtlS } = this.limits;
    return Math.min(maxTtlS, Math.max(minTtlS, Math.ceil(ttl * 1.25)));
  }

  /** Removals keeping `set` within the cap once `added` are in: the ones expiring first go. */
  private evictions(set: string, added: readonly string[], now: number, writes: ElementWrite[]): number {
    const current = this.sets.get(set) ?? new Map<string, number>();
    const addedSet = new Set(added);
    const others = [...current].filter(([a, exp]) => exp > now && !addedSet.has(a));
    const over = others.length + added.length - this.limits.maxPerSet;
    if (over <= 0) return 0;
    others.sort((x, y) => x[1] - y[1]);
    const gone = others.slice(0, Math.min(over, others.length));
    for (const [address] of gone) writes.push({ set, address });
    // An answer alone larger than the cap keeps its first addresses.
    const drop = over - gone.length;
    if (drop > 0) {
      const keep = new Set(added.slice(0, added.length - drop));
      for (let i = writes.length - 1; i >= 0; i--) {
        const w = writes[i]!;
        if (w.set === set && w.timeoutS !== undefined && addedSet.has(w.address) && !keep.has(w.address)) writes.splice(i, 1);
      }
    }
    return over;
  }

  /** Records a plan whose writes the kernel took. */
  commit(plan: Plan): void {
    const now = this.clock.now();
    for (const w of plan.writes) {
      let s = this.sets.get(w.set);
      if (w.timeoutS === undefined) {
        s?.delete(w.address);
        continue;
      }
      if (!s) this.sets.set(w.set, (s = new Map()));
      s.set(w.address, now + w.timeoutS * 1000);
    }
    for (const r of plan.names) {
      let m = this.names.get(r.name);
      if (m) this.names.delete(r.name); // re-inserted last: most recently answered
      else m = new Map();
      this.names.set(r.name, m);
      m.set(r.address, { family: r.family, expires: r.expires });
    }
    while (this.names.size > this.limits.maxNames) this.names.delete(this.names.keys().next().value!);
  }

  /** The live elements of a set with their remaining timeouts (a full apply re-adds them). */
  elements(set: string): NftElement[] {
    const now = this.clock.now();
    const out: NftElement[] = [];
    for (const [address, expires] of this.sets.get(set) ?? []) {
      const left = Math.ceil((expires - now) / 1000);
      if (left >= 1) out.push({ key: [address], timeout: left });
    }
    return out;
  }

  /** Forgets what has expired (the kernel removes its elements by itself). */
  prune(): void {
    const now = this.clock.now();
    for (const [name, s] of this.sets) {
      for (const [a, exp] of s) if (exp <= now) s.delete(a);
      if (s.size === 0) this.sets.delete(name);
    }
    for (const [name, m] of this.names) {
      for (const [a, r] of m) if (r.expires <= now) m.delete(a);
      if (m.size === 0) this.names.delete(name);
    }
  }

  /** Addresses open now, over all sets. */
  get addressCount(): number {
    const now = this.clock.now();
    let n = 0;
    for (const s of this.sets.values()) for (const exp of s.values()) if (exp > now) n++;
    return n;
  }

  get nameCount(): number {
    return this.names.size;
  }

  /** `fqdn_state` for one policy: selector → what its names resolved to, bounded. */
  status(policy: ObjectRef, wall: (t: number) => string = (t) => new Date(t).toISOString()): Record<string, FqdnStatusEntry[]> {
    const out: Record<string, FqdnStatusEntry[]> = {};
    const key = formatRef(policy);
    for (const { target, matchers } of this.targets) {
      if (formatRef(target.policy) !== key) continue;
      target.selectors.forEach((sel, i) => {
        const entries = (out[selectorText(sel)] ??= []);
        for (const [name, addrs] of this.names) {
          if (entries.length >= STATUS_MAX_NAMES) break;
          if (!matchers[i]!(name)) continue;
          for (const fam of [4, 6] as const) {
            const ips = [...addrs].filter(([, r]) => r.family === fam).slice(0, STATUS_MAX_IPS);
            if (ips.length === 0) continue;
            entries.push({
              fqdn: `${name}.`,
              setName: target.sets[fam],
              version: fam === 4 ? 'ip' : 'ip6',
              ips: ips.map(([a]) => a),
              ipExpirationTimes: Object.fromEntries(ips.map(([a, r]) => [a, wall(r.expires)])),
            });
          }
        }
      });
    }
    return out;
  }

  /** What the state directory keeps (absolute expiry times of the clock). */
  toJSON(): unknown {
    this.prune();
    return {
      version: PERSIST_VERSION,
      sets: Object.fromEntries([...this.sets].map(([n, s]) => [n, [...s]])),
      names: [...this.names].map(([n, m]) => [n, [...m].map(([a, r]) => [a, r.family, r.expires])]),
    };
  }

  /** Restores a saved state; anything malformed is skipped, addresses are parsed again. */
  restore(data: unknown): number {
    if (!isObj(data) || data.version !== PERSIST_VERSION) return 0;
    const now = this.clock.now();
    let n = 0;
    if (isObj(data.sets)) {
      for (const [set, entries] of Object.entries(data.sets)) {
        if (!/^fqdn[46]-[0-9a-f]{8}-[-a-z0-9.]*$/.test(set) || !Array.isArray(entries)) continue;
        const s = new Map<string, number>();
        for (const e of entries.slice(0, this.limits.maxPerSet)) {
          const a = Array.isArray(e) ? parseAddress(e[0]) : undefined;
          const exp = Array.isArray(e) ? e[1] : undefined;
          if (!a?.ok || typeof exp !== 'number' || exp <= now || a.value.family !== (set.startsWith('fqdn4') ? 4 : 6)) continue;
          s.set(formatAddress(a.value), Math.min(exp, now + this.limits.maxTtlS * 1000));
          n++;
        }
        if (s.size > 0) this.sets.set(set, s);
      }
    }
    if (Array.isArray(data.names)) {
      for (const row of data.names.slice(-this.limits.maxNames)) {
        if (!Array.isArray(row) || typeof row[0] !== 'string' || !Array.isArray(row[1]) || !/^[-a-z0-9_.]{1,253}$/.test(row[0])) continue;
        const m = new Map<string, { family: Family; expires: number }>();
        for (const e of row[1] as unknown[]) {
          if (!Array.isArray(e)) continue;
          const a = parseAddress(e[0]);
          if (!a.ok || typeof e[2] !== 'number' || e[2] <= now) continue;
          m.set(formatAddress(a.value), { family: a.value.family, expires: e[2] });
        }
        if (m.size > 0) this.names.set(row[0], m);
      }
    }
    return n;
  }
}

function inside(allowed: NonNullable<FqdnTarget['allowed']>, a: IpAddress): boolean {
  return covers(allowed[a.family], { family: a.family, lo: a.value, hi: a.value });
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
