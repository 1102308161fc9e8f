/**
 * The apply path (DESIGN §4): validate with `nft -c`, apply in one transaction, read back and
 * verify. On any failure the kernel keeps what it had; the caller reports and retries.
 */
import { Nft } from './runner';

export type ApplyResult = 'applied' | 'unchanged' | 'checked';

export class Applier {
  private appliedText: string | undefined;
  private appliedListing: string | undefined;

  constructor(
    private readonly nft: Nft,
    private readonly table: { family: string; name: string },
    private readonly dryRun: boolean,
  ) {}

  get lastApplied(): string | undefined {
    return this.appliedText;
  }

  /** Applies `text` unless it is what we applied last and the kernel still holds it. */
  async apply(text: string): Promise<ApplyResult> {
    await this.nft.check(text);
    if (this.dryRun) return 'checked';
    if (text === this.appliedText && !(await this.drifted())) return 'unchanged';
    await this.nft.apply(text);
    const listing = await this.nft.listTable(this.table.family, this.table.name, { stateless: true });
    if (listing === undefined || !/hook forward priority .*policy drop;/.test(listing)) {
      throw new Error(`read-back failed: table ${this.table.family} ${this.table.name} is not in the kernel as applied`);
    }
    this.appliedText = text;
    this.appliedListing = listing;
    return 'applied';
  }

  /** True when the kernel no longer holds what we applied (someone changed or removed the table). */
  async drifted(): Promise<boolean> {
    if (this.appliedListing === undefined) return false;
    const now = await this.nft.listTable(this.table.family, this.table.name, { stateless: true });
    return now !== this.appliedListing;
  }

  /** The stateless listing of our table as the kernel holds it now (undefined: no table). */
  current(): Promise<string | undefined> {
    return this.nft.listTable(this.table.family, this.table.name, { stateless: true });
  }
}
