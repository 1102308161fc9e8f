/**
 * The nft objects the compiler produces: a typed IR one step above nft text. Rules carry their
 * matches, counter, statement and comment as fields; set and map elements are key tuples with a
 * typed verdict. Every string in here was built by the helpers in `syntax.ts` from typed values;
 * nothing holds input text. `serialize.ts` is the one place that turns this into nft text.
 */

export type NftFamily = 'inet';

export interface TableRef {
  readonly family: string;
  readonly name: string;
}

/** A verdict that ends a rule or an element. */
export type NftVerdict =
  | { readonly kind: 'accept' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'jump' | 'goto'; readonly chain: string };

/** A jump or goto, the only verdicts our map elements carry. */
export type NftChainVerdict = Extract<NftVerdict, { kind: 'jump' | 'goto' }>;

/** A lookup of a named set: `ip saddr @cluster_prefixes`, `ip daddr != @internal_prefixes`. */
export interface NftSetMatch {
  readonly kind: 'set';
  /** The selector, e.g. `ip saddr`. */
  readonly expr: string;
  readonly set: string;
  readonly negate?: boolean;
}

/** A match expression as nft text (from syntax.ts) or a typed lookup of a named set. */
export type NftMatch = string | NftSetMatch;

/** What follows the counter: a verdict, a verdict-map lookup, or another statement (log, nat). */
export type NftStatement =
  | NftVerdict
  | { readonly kind: 'vmap'; readonly expr: string; readonly map: string }
  | { readonly kind: 'text'; readonly text: string };

export type NftCounterRef = { readonly kind: 'anonymous' } | { readonly kind: 'named'; readonly name: string };

export interface NftRule {
  readonly match: readonly NftMatch[];
  readonly counter?: NftCounterRef;
  readonly statement?: NftStatement;
  /** Already safe for nft (syntax.safeComment): the exact text nft lists back. */
  readonly comment?: string;
}

export interface NftElement {
  /** The parts of a (concatenated) key, e.g. [`203.0.113.0/24`, `tcp`, `443`]. */
  readonly key: readonly string[];
  /** Map elements only. */
  readonly verdict?: NftChainVerdict;
  /** Seconds until the kernel removes the element; sets with the `timeout` flag only. */
  readonly timeout?: number;
}

export interface NftSet {
  readonly name: string;
  readonly type: string;
  /**
   * With `timeout`, a set is dynamic: its elements are not part of the table's content (they
   * come and go at run time, e.g. FQDN answers) and `elements` is empty in the IR.
   */
  readonly flags: readonly string[];
  readonly elements: readonly NftElement[];
}

/** A set whose elements come and go at run time (they carry timeouts). */
export function isDynamicSet(s: { readonly flags: readonly string[] }): boolean {
  return s.flags.includes('timeout');
}

export interface NftMap {
  readonly name: string;
  /** e.g. `ipv4_addr . inet_proto . inet_service` */
  readonly keyType: string;
  readonly flags: readonly string[];
  readonly elements: readonly NftElement[];
}

export interface NftBaseChain {
  readonly type: 'filter' | 'nat';
  readonly hook: 'forward' | 'postrouting' | 'prerouting' | 'input' | 'output';
  readonly priority: number;
  readonly policy: 'accept' | 'drop';
}

export interface NftChain {
  readonly name: string;
  readonly base?: NftBaseChain;
  readonly rules: readonly NftRule[];
}

export interface NftTable {
  readonly family: NftFamily;
  readonly name: string;
  readonly sets: readonly NftSet[];
  readonly counters: readonly string[];
  /** In dependency order: a map may jump to the lookup chains of maps before it. */
  readonly maps: readonly NftMap[];
  /**
   * Regular chains (targets of verdict maps) first, base chains after. A regular chain with the
   * name of a map is the chain that looks that map up; it is rendered right after its map.
   */
  readonly chains: readonly NftChain[];
}

export interface CounterValue {
  readonly packets: number;
  readonly bytes: number;
}

/** One element's key as nft prints it. */
export function elementKey(e: NftElement): string {
  return e.key.length === 1 ? e.key[0]! : e.key.join(' . ');
}
