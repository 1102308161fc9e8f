/**
 * The apply path (DESIGN §4): carry counters over, validate with `nft -c`, apply in one
 * transaction, read back and verify. On any failure the kernel keeps what it had; the caller
 * reports and retries.
 */
import { createHash } from 'node:crypto';
import { renderTransaction } from './render';
import { NftTable } from './ruleset';
import { Nft } from './runner';
import { counterCarry, parseTableStats } from './stats';
import { cleanupStatements, planIncremental } from './incremental';

export type ApplyResult = 'applied' | 'unchanged' | 'checked';

/** Every so often the whole table is sent again even when an incremental update would do. */
export const FULL_RESYNC_MS = 30 * 60_000;

export interface Applied {
  /** The transaction as sent, with carried counter values. */
  readonly text: string;
  /** `nft -s list table` right after the apply: what drift is measured against. */
  readonly listing: string;
}

/** The installer's legacy base table, whose forward policy may be relaxed only together with ours. */
export const LEGACY_TABLE = { family: 'inet', name: 'metal', chain: 'forward' } as const;

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class Applier {
  private appliedBaseHash: string | undefined;
  private applied: Applied | undefined;
  /** The table as last applied (full or incremental); incremental plans start from it. */
  private appliedTable: NftTable | undefined;
  private needFull = true;
  private lastFullAt = 0;
  private staleChains: string[] = [];
  private staleMaps: string[] = [];
  /** After an incremental apply the listing baseline is refreshed lazily (listing is expensive). */
  private listingStale = false;
  /** How the last apply was made. */
  lastMode: 'full' | 'incremental' | undefined;
  lastElements: { added: number; deleted: number } | undefined;

  constructor(
    private readonly nft: Nft,
    private readonly table: { family: string; name: string },
    private readonly dryRun: boolean,
  ) {}

  /** The table of the last incremental apply, rendered only when someone asks (persistence). */
  private unrendered: NftTable | undefined;

  get last(): (Applied & { baseHash: string | undefined }) | undefined {
    this.materialize();
    return this.applied && { ...this.applied, baseHash: this.appliedBaseHash };
  }

  private materialize(): void {
    if (!this.unrendered) return;
    const text = renderTransaction([this.unrendered]);
    this.unrendered = undefined;
    this.appliedBaseHash = hash(text);
    this.applied = { text, listing: this.applied?.listing ?? '' };
  }

  /** Takes over what an earlier run applied and the kernel still holds (no flap on restart). */
  adopt(baseHash: string | undefined, applied: Applied): void {
    this.unrendered = undefined;
    this.appliedBaseHash = baseHash;
    this.applied = applied;
    this.needFull = true;
  }

  /** The next apply sends the whole table, even if unchanged (after a failure, when drift was seen). */
  requireFull(): void {
    this.needFull = true;
    this.appliedBaseHash = undefined;
  }

  /** Applies a transaction as it is (a persisted last-known-good), with the same checks. */
  async applyText(text: string): Promise<void> {
    await this.nft.check(text);
    await this.nft.apply(text);
    this.applied = { text, listing: await this.readBack() };
    this.appliedBaseHash = undefined;
    this.appliedTable = undefined;
    this.unrendered = undefined;
    this.needFull = true;
  }

  private async readBack(): Promise<string> {
    const listing = await this.nft.listTable(this.table.family, this.table.name, { stateless: true });
    if (listing === undefined || !/hook forward priority .*policy drop;/.test(listing)) {
      throw new Error(`read-back failed: table ${this.table.family} ${this.table.name} is not in the kernel as applied`);
    }
    return listing;
  }

  /**
   * Applies `table` unless it is what we applied last and the kernel still holds it. With
   * `relaxLegacy`, a legacy `inet metal` forward chain with policy drop is switched to accept in
   * the same transaction (never alone, never first).
   */
  async apply(table: NftTable, opts: { relaxLegacy: boolean }): Promise<ApplyResult> {
    // Between full syncs a change is planned against the table applied last: no render, no hash
    // of the whole table on the path of a single change.
    const plan =
      !this.dryRun && !this.needFull && this.appliedTable && Date.now() - this.lastFullAt < FULL_RESYNC_MS
        ? planIncremental(this.appliedTable, table)
        : undefined;
    if (plan && plan.statements.length === 0 && plan.staleChains.length === 0 && plan.staleMaps.length === 0) {
      this.appliedTable = table;
      return 'unchanged';
    }
    let base: string | undefined;
    if (!plan) {
      base = renderTransaction([table]);
      // Drift is the periodic check's business (listing a large table costs far more than this).
      if (!this.dryRun && !this.needFull) {
        this.materialize(); // only here is the hash of what was applied last needed
        if (hash(base) === this.appliedBaseHash) return 'unchanged';
      }
    }
    // The legacy table is relaxed with the transaction that loads our forward chain; an
    // incremental one changes only elements and chains behind it (a reload of the legacy table
    // flushes ours too, which the drift check repairs with a full apply).
    const after = opts.relaxLegacy && !plan ? await this.legacyRelax() : [];
    try {
      if (plan) {
        const text = `${[...plan.statements, ...after].join('\n')}\n`;
        await this.nft.check(text);
        await this.nft.apply(text);
        // nft committed the transaction as a whole; listing a large table costs more than the
        // update, so the drift baseline is refreshed at the next periodic check instead.
        this.staleChains.push(...plan.staleChains);
        this.staleMaps.push(...plan.staleMaps);
        this.listingStale = true;
        this.unrendered = table;
        this.lastMode = 'incremental';
        this.lastElements = { added: plan.elementsAdded, deleted: plan.elementsDeleted };
      } else {
        const stats = await this.nft.listTable(this.table.family, this.table.name, { json: true, terse: true });
        const counters = stats ? counterCarry(parseTableStats(stats)) : undefined;
        const text = renderTransaction([table], { counters, after });
        await this.nft.check(text);
        if (this.dryRun) return 'checked';
        await this.nft.apply(text);
        this.applied = { text, listing: await this.readBack() };
        this.appliedBaseHash = hash(base!);
        this.unrendered = undefined;
        this.staleChains = [];
        this.staleMaps = [];
        this.listingStale = false;
        this.lastFullAt = Date.now();
        this.lastMode = 'full';
        this.lastElements = undefined;
      }
    } catch (err) {
      this.needFull = true;
      throw err;
    }
    this.appliedTable = table;
    this.needFull = false;
    return 'applied';
  }

  /** Deletes chains and maps no longer referenced, in a transaction of their own (see incremental.ts). */
  async cleanup(): Promise<number> {
    // Anything a later incremental apply brought back stays.
    const live = new Set([...(this.appliedTable?.chains ?? []), ...(this.appliedTable?.maps ?? [])].map((o) => o.name));
    const chains = [...new Set(this.staleChains)].filter((c) => !live.has(c));
    const maps = [...new Set(this.staleMaps)].filter((m) => !live.has(m));
    this.staleChains = [];
    this.staleMaps = [];
    if (this.dryRun || chains.length + maps.length === 0) return 0;
    try {
      await this.nft.apply(`${cleanupStatements(this.table, chains, maps).join('\n')}\n`);
      this.listingStale = true;
      return chains.length + maps.length;
    } catch (err) {
      this.needFull = true; // a full sync removes them anyway
      throw err;
    }
  }

  private async legacyRelax(): Promise<string[]> {
    const json = await this.nft.listTable(LEGACY_TABLE.family, LEGACY_TABLE.name, { json: true, terse: true });
    if (!json) return [];
    const doc = JSON.parse(json) as { nftables?: Record<string, Record<string, unknown>>[] };
    const chain = doc.nftables?.map((i) => i.chain).find((c) => c && c.name === LEGACY_TABLE.chain && c.hook === 'forward');
    if (!chain || chain.policy !== 'drop' || typeof chain.prio !== 'number' || chain.type !== 'filter') return [];
    return [`add chain ${LEGACY_TABLE.family} ${LEGACY_TABLE.name} ${LEGACY_TABLE.chain} { type filter hook forward priority ${chain.prio}; policy accept; }`];
  }

  /**
   * Compares the kernel with what was applied: `drifted` when someone changed or removed the
   * table; `baseline` when this was the first look after incremental updates (the listing becomes
   * the new baseline, worth persisting); `ok` otherwise.
   */
  async verify(): Promise<'ok' | 'drifted' | 'baseline'> {
    if (this.applied === undefined) return 'ok';
    const now = await this.current();
    if (this.listingStale && now !== undefined && /hook forward priority .*policy drop;/.test(now)) {
      this.applied = { ...this.applied, listing: now };
      this.listingStale = false;
      return 'baseline';
    }
    return now === this.applied.listing ? 'ok' : 'drifted';
  }

  async drifted(): Promise<boolean> {
    return (await this.verify()) === 'drifted';
  }

  /** The stateless listing of our table as the kernel holds it now (undefined: no table). */
  current(): Promise<string | undefined> {
    return this.nft.listTable(this.table.family, this.table.name, { stateless: true });
  }
}
