/**
 * Applying tables (DESIGN §4), called only by the sync loop: carry counters over, apply in one
 * transaction (atomic: a refused one changes nothing, so no separate `nft -c` is run first);
 * between full syncs send only what changed. It keeps what the
 * kernel should hold (the table applied last plus chains and maps waiting for cleanup) as a
 * fingerprint, so drift is judged against what was meant, never adopted from the kernel. On any
 * failure the kernel keeps what it had and the next apply is a full one.
 */
import { Clock, realClock } from '../sync/clock';
import { Digest, chainDigest, chainsDigest, emptyMapDigest, hex, listingDigest, mix, tableChainsDigest, tableDigest, tablePart } from './fingerprint';
import { cleanupTransaction, planIncremental } from './incremental';
import { NftChain, NftElement, NftMap, NftTable, TableRef } from './ruleset';
import { Nft } from './runner';
import { counterCarry } from './stats';
import { Op, carryDynamic, fullTransaction, rawTransaction, tableRef } from './transaction';

export type ApplyResult = 'applied' | 'unchanged';

/** A table's full fingerprint and its chains fingerprint (fingerprint.ts). */
export interface KernelFingerprint {
  readonly full: Digest;
  readonly chains: Digest;
}


/** Every so often the whole table is sent again even when an incremental update would do. */
export const FULL_RESYNC_MS = 30 * 60_000;

/** The installer's legacy base table, whose forward policy may be relaxed only together with ours. */
export const LEGACY_TABLE: TableRef & { chain: string } = { family: 'inet', name: 'metal', chain: 'forward' };

/** The legacy forward chain as `nft list chains` shows it when it drops (metal's rules file reloaded). */
const LEGACY_DROP = /\tchain forward \{\n\t\ttype filter hook forward [^\n]*policy drop;/;

export interface ApplierOptions {
  readonly clock?: Clock;
  /** Called with the fingerprint of what is about to be sent, before it is (write-ahead). */
  readonly beforeSend?: (fingerprint: string) => Promise<void>;
  /** The live elements of a dynamic set, which a full apply re-adds with their remaining timeouts. */
  readonly dynamicElements?: (set: string) => readonly NftElement[];
}

export class Applier {
  private readonly clock: Clock;
  /** The table applied last (undefined after adopting or restoring a ruleset we only know as text). */
  private applied: NftTable | undefined;
  /** What the kernel should hold, when known; and its chains alone (the cheap check). */
  private expectedDigest: Digest | undefined;
  private expectedChains: Digest | undefined;
  private needFull = true;
  /** The expected fingerprint was adopted from a table kept across a restart (not applied by us). */
  private adopted = false;
  private lastFullAt = 0;
  /** Chains and maps no longer used, still in the kernel until cleanup (flushed, in the case of maps). */
  private staleChains = new Map<string, NftChain>();
  private staleMaps = new Map<string, NftMap>();
  /** How the last apply was made. */
  lastMode: 'full' | 'incremental' | undefined;
  lastElements: { added: number; deleted: number } | undefined;

  constructor(
    private readonly nft: Nft,
    private readonly table: TableRef,
    private readonly opts: ApplierOptions = {},
  ) {
    this.clock = opts.clock ?? realClock;
  }

  /** The table applied last, if it was applied from the IR. */
  get current(): NftTable | undefined {
    return this.applied;
  }

  /** Fingerprint of what the kernel should hold, or undefined when nothing is known. */
  get expected(): string | undefined {
    return this.expectedDigest && hex(this.expectedDigest);
  }

  /** Takes over a table an earlier run applied and the kernel still holds (no flap on restart). */
  adopt(fingerprint: KernelFingerprint): void {
    this.applied = undefined;
    this.expectedDigest = fingerprint.full;
    this.expectedChains = fingerprint.chains;
    this.staleChains.clear();
    this.staleMaps.clear();
    this.needFull = true;
    this.adopted = true;
  }

  /** The next apply sends the whole table, even if unchanged (after a failure, when drift was seen). */
  requireFull(): void {
    this.needFull = true;
    this.adopted = false;
  }

  /** Validates the full transaction of `table` without applying it (dry runs). */
  async check(table: NftTable): Promise<void> {
    await this.nft.check(fullTransaction(table));
  }

  /** Applies a persisted ruleset as it is (the last-known-good), with the same check first. */
  async applyRaw(text: string): Promise<void> {
    const tx = rawTransaction(text);
    const digest = listingDigest(text);
    await this.nft.check(tx);
    await this.opts.beforeSend?.(hex(digest));
    try {
      await this.nft.apply(tx);
    } finally {
      this.needFull = true;
    }
    this.applied = undefined;
    this.adopted = false;
    this.expectedDigest = digest;
    this.expectedChains = chainsDigest(text);
    this.staleChains.clear();
    this.staleMaps.clear();
  }

  /**
   * Applies `table` unless it is what was applied last. With `relaxLegacy`, a legacy `inet metal`
   * forward chain with policy drop is switched to accept in the same transaction that loads our
   * forward chain (never alone, never first).
   */
  async apply(table: NftTable, opts: { relaxLegacy: boolean }): Promise<ApplyResult> {
    const incremental = !this.needFull && this.applied !== undefined && this.clock.now() - this.lastFullAt < FULL_RESYNC_MS;
    if (!incremental) return this.applyFull(table, opts.relaxLegacy);
    // The very table applied last (a periodic run, nothing changed): no diff of 10,000s of elements.
    if (table === this.applied) return 'unchanged';
    const plan = planIncremental(this.applied!, table);
    if (!plan) return this.applyFull(table, opts.relaxLegacy);
    if (plan.tx.ops.length === 0 && plan.staleChains.length === 0 && plan.staleMaps.length === 0) {
      this.applied = table;
      return 'unchanged';
    }
    // What stays behind until cleanup: chains no element points to, maps emptied.
    const staleChains = new Map(this.staleChains);
    const staleMaps = new Map(this.staleMaps);
    const prevChains = new Map(this.applied!.chains.map((c) => [c.name, c]));
    const prevMaps = new Map(this.applied!.maps.map((m) => [m.name, m]));
    for (const name of plan.staleChains) staleChains.set(name, prevChains.get(name)!);
    for (const name of plan.staleMaps) staleMaps.set(name, prevMaps.get(name)!);
    for (const c of table.chains) staleChains.delete(c.name);
    for (const m of table.maps) staleMaps.delete(m.name);
    const expected = this.digestWith(table, staleChains, staleMaps);
    try {
      // No `nft -c` first, as for full loads: one nft process per change, not two.
      await this.opts.beforeSend?.(hex(expected));
      await this.nft.apply(plan.tx);
    } catch (err) {
      this.needFull = true;
      throw err;
    }
    this.applied = table;
    this.expectedDigest = expected;
    this.expectedChains = tableChainsDigest(table, staleChains.values());
    this.staleChains = staleChains;
    this.staleMaps = staleMaps;
    this.lastMode = 'incremental';
    this.lastElements = { added: plan.elementsAdded, deleted: plan.elementsDeleted };
    return 'applied';
  }

  private async applyFull(table: NftTable, relaxLegacy: boolean): Promise<ApplyResult> {
    const expected = tableDigest(table);
    const kept = this.adopted;
    this.adopted = false;
    if (kept && this.expectedDigest && hex(expected) === hex(this.expectedDigest) && !(await this.legacyDropsOrUnknown(relaxLegacy))) {
      // Kept across a restart and exactly what is wanted now: nothing to send (a full load of
      // 10,000 policies is 2 s of nft). From here on changes are incremental against it.
      this.applied = table;
      this.needFull = false;
      this.lastFullAt = this.clock.now();
      return 'unchanged';
    }
    // Same table, kernel known to hold it: nothing to send (drift is verify()'s business).
    if (!this.needFull && this.expectedDigest && hex(expected) === hex(this.expectedDigest) && this.staleChains.size + this.staleMaps.size === 0) {
      this.applied = table;
      return 'unchanged';
    }
    try {
      const after = relaxLegacy ? await this.legacyRelax() : [];
      const stats = await this.nft.counters(this.table);
      const dynamic = this.opts.dynamicElements ? carryDynamic(table, this.opts.dynamicElements) : [];
      const tx = fullTransaction(table, { carry: stats ? counterCarry(stats) : undefined, after: [...dynamic, ...after] });
      // No separate `nft -c`: the transaction is atomic (one the kernel refuses changes nothing),
      // and a check would double the time of a full load (1.5 s more at 10,000 policies).
      await this.opts.beforeSend?.(hex(expected));
      await this.nft.apply(tx);
    } catch (err) {
      this.needFull = true;
      throw err;
    }
    this.applied = table;
    this.expectedDigest = expected;
    this.expectedChains = tableChainsDigest(table);
    this.staleChains.clear();
    this.staleMaps.clear();
    this.needFull = false;
    this.lastFullAt = this.clock.now();
    this.lastMode = 'full';
    this.lastElements = undefined;
    return 'applied';
  }

  private digestWith(table: NftTable, chains: Map<string, NftChain>, maps: Map<string, NftMap>): Digest {
    const d = tableDigest(table);
    for (const c of chains.values()) mix(d, chainDigest(c));
    for (const m of maps.values()) mix(d, emptyMapDigest(m));
    return d;
  }

  /** Deletes chains and maps left unused by incremental updates, in a transaction of their own. */
  async cleanup(): Promise<number> {
    const n = this.staleChains.size + this.staleMaps.size;
    if (n === 0 || !this.applied) return 0;
    try {
      await this.nft.apply(cleanupTransaction(this.table, [...this.staleChains.keys()], [...this.staleMaps.keys()]));
    } catch (err) {
      this.needFull = true; // a full sync removes them anyway
      throw err;
    }
    this.staleChains.clear();
    this.staleMaps.clear();
    this.expectedDigest = tableDigest(this.applied);
    this.expectedChains = tableChainsDigest(this.applied);
    return n;
  }

  /** Stale objects waiting for cleanup. */
  get staleCount(): number {
    return this.staleChains.size + this.staleMaps.size;
  }

  /** Whether a kept table still needs the legacy relax (or that cannot be told): then it is sent. */
  private async legacyDropsOrUnknown(relaxLegacy: boolean): Promise<boolean> {
    if (!relaxLegacy) return false;
    try {
      return (await this.quickCheck()).legacyDrop;
    } catch {
      return true;
    }
  }

  /**
   * The legacy base table's forward chain is back at policy drop (nftables.service reloaded
   * metal's rules file): our table is unchanged, so only this says the relax must be redone.
   */
  async legacyReverted(): Promise<boolean> {
    return (await this.legacyRelax()).length > 0;
  }

  private async legacyRelax(): Promise<Op[]> {
    const chain = await this.nft.baseChain(LEGACY_TABLE, LEGACY_TABLE.chain);
    if (!chain || chain.policy !== 'drop' || chain.type !== 'filter' || chain.hook !== 'forward') return [];
    return [{ verb: 'add', kind: 'chain', table: tableRef(LEGACY_TABLE), name: LEGACY_TABLE.chain, base: { ...chain, policy: 'accept' } }];
  }

  /**
   * Compares the kernel with what should be there: `drifted` when someone changed or removed the
   * table, `ok` when it holds exactly that, `unknown` when nothing was applied or adopted yet.
   */
  async verify(): Promise<'ok' | 'drifted' | 'unknown'> {
    if (!this.expectedDigest) return 'unknown';
    const listing = await this.nft.list(this.table);
    if (listing === undefined) return 'drifted';
    return hex(listingDigest(listing)) === hex(this.expectedDigest) ? 'ok' : 'drifted';
  }

  async drifted(): Promise<boolean> {
    return (await this.verify()) === 'drifted';
  }

  /**
   * The cheap check, from one `nft list chains` (tens of milliseconds at any size): our table's
   * chains against what should be there (`drifted` when the table is gone or replaced, a chain
   * added, removed or redeclared; `unknown` before anything was applied or adopted), and whether
   * the legacy base table's forward chain is back at policy drop.
   */
  async quickCheck(): Promise<{ ours: 'ok' | 'drifted' | 'unknown'; legacyDrop: boolean }> {
    const text = await this.nft.chains(this.table.family);
    const legacy = this.table.family === LEGACY_TABLE.family ? tablePart(text, LEGACY_TABLE) : undefined;
    const legacyDrop = legacy !== undefined && LEGACY_DROP.test(legacy);
    if (!this.expectedChains) return { ours: 'unknown', legacyDrop };
    const part = tablePart(text, this.table);
    const ours = part !== undefined && hex(chainsDigest(part)) === hex(this.expectedChains) ? 'ok' : 'drifted';
    return { ours, legacyDrop };
  }

  /** The fingerprints of what the kernel holds now, or undefined when our table is absent. */
  async kernelFingerprint(): Promise<KernelFingerprint | undefined> {
    const listing = await this.nft.list(this.table);
    return listing === undefined ? undefined : { full: listingDigest(listing), chains: chainsDigest(listing) };
  }
}
