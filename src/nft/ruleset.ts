/**
 * The nft objects the compiler produces, one step above nft text. Rule bodies are assembled by the
 * compiler from typed values through the helpers in `syntax.ts`; nothing here holds input text.
 */

export type NftFamily = 'inet';

export interface NftSet {
  readonly name: string;
  readonly type: string;
  readonly flags: readonly string[];
  readonly elements: readonly string[];
}

export interface NftMapElement {
  readonly key: string;
  readonly verdict: string;
}

export interface NftMap {
  readonly name: string;
  /** e.g. `ipv4_addr . inet_proto . inet_service` */
  readonly keyType: string;
  readonly flags: readonly string[];
  readonly elements: readonly NftMapElement[];
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
  readonly rules: readonly string[];
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
