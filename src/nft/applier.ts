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

export type ApplyResult = 'applied' | 'unchanged' | 'checked';

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

  constructor(
    private readonly nft: Nft,
    private readonly table: { family: string; name: string },
    private readonly dryRun: boolean,
  ) {}

  get last(): (Applied & { baseHash: string | undefined }) | undefined {
    return this.applied && { ...this.applied, baseHash: this.appliedBaseHash };
  }

  /** Takes over what an earlier run applied and the kernel still holds (no flap on restart). */
  adopt(baseHash: string | undefined, applied: Applied): void {
    this.appliedBaseHash = baseHash;
    this.applied = applied;
  }

  /** Applies a transaction as it is (a persisted last-known-good), with the same checks. */
  async applyText(text: string): Promise<void> {
    await this.nft.check(text);
    await this.nft.apply(text);
    this.applied = { text, listing: await this.readBack() };
    this.appliedBaseHash = undefined;
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
    const baseHash = hash(renderTransaction([table]));
    if (!this.dryRun && baseHash === this.appliedBaseHash && !(await this.drifted())) return 'unchanged';
    const stats = await this.nft.listTable(this.table.family, this.table.name, { json: true, terse: true });
    const counters = stats ? counterCarry(parseTableStats(stats)) : undefined;
    const after = opts.relaxLegacy ? await this.legacyRelax() : [];
    const text = renderTransaction([table], { counters, after });
    await this.nft.check(text);
    if (this.dryRun) return 'checked';
    await this.nft.apply(text);
    const listing = await this.readBack();
    this.appliedBaseHash = baseHash;
    this.applied = { text, listing };
    return 'applied';
  }

  private async legacyRelax(): Promise<string[]> {
    const json = await this.nft.listTable(LEGACY_TABLE.family, LEGACY_TABLE.name, { json: true, terse: true });
    if (!json) return [];
    const doc = JSON.parse(json) as { nftables?: Record<string, Record<string, unknown>>[] };
    const chain = doc.nftables?.map((i) => i.chain).find((c) => c && c.name === LEGACY_TABLE.chain && c.hook === 'forward');
    if (!chain || chain.policy !== 'drop' || typeof chain.prio !== 'number' || chain.type !== 'filter') return [];
    return [`add chain ${LEGACY_TABLE.family} ${LEGACY_TABLE.name} ${LEGACY_TABLE.chain} { type filter hook forward priority ${chain.prio}; policy accept; }`];
  }

  /** True when the kernel no longer holds what we applied (someone changed or removed the table). */
  async drifted(): Promise<boolean> {
    if (this.applied === undefined) return false;
    return (await this.current()) !== this.applied.listing;
  }

  /** The stateless listing of our table as the kernel holds it now (undefined: no table). */
  current(): Promise<string | undefined> {
    return this.nft.listTable(this.table.family, this.table.name, { stateless: true });
  }
}
