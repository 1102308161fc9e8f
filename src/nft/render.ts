/**
 * The full transaction replacing owned tables: declare (so the delete cannot fail on a first run),
 * delete, and define again. nft applies the whole text atomically, so the kernel holds either the
 * old table or the new one, never a mix. Written by the one serializer (serialize.ts).
 */
import { NftTable } from './ruleset';
import { transactionPieces, transactionText } from './serialize';
import { CounterCarry, Op, Transaction, fullTransaction } from './transaction';

export interface RenderOptions {
  readonly counters?: CounterCarry;
  /** Operations after the table definitions, in the same transaction. */
  readonly after?: readonly Op[];
}

function transactions(tables: readonly NftTable[], opts: RenderOptions): Transaction[] {
  return tables.map((t, i) => fullTransaction(t, { carry: opts.counters, after: i === tables.length - 1 ? opts.after : [] }));
}

export function renderTransaction(tables: readonly NftTable[], opts: RenderOptions = {}): string {
  return transactions(tables, opts).map(transactionText).join('');
}

/** renderTransaction's text in pieces of whole lines as they are made: a large table's text need never be one string. */
export function writeTransaction(tables: readonly NftTable[], write: (piece: string) => void, opts: RenderOptions = {}): void {
  for (const tx of transactions(tables, opts)) transactionPieces(tx, write);
}
