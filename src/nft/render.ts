/**
 * The full transaction replacing owned tables: declare (so the delete cannot fail on a first run),
 * delete, and define again. nft applies the whole text atomically, so the kernel holds either the
 * old table or the new one, never a mix. Written by the one serializer (serialize.ts).
 */
import { NftTable } from './ruleset';
import { transactionText } from './serialize';
import { CounterCarry, Op, fullTransaction } from './transaction';

export interface RenderOptions {
  readonly counters?: CounterCarry;
  /** Operations after the table definitions, in the same transaction. */
  readonly after?: readonly Op[];
}

export function renderTransaction(tables: readonly NftTable[], opts: RenderOptions = {}): string {
  return tables.map((t, i) => transactionText(fullTransaction(t, { carry: opts.counters, after: i === tables.length - 1 ? opts.after : [] }))).join('');
}
