/**
 * Which object an accept chain counts for, as a map built on first use: metrics read it once per
 * scrape, while a change to one policy should not pay for hashing tens of thousands of chain
 * names. The accounts are collected as a list while compiling.
 */
export class LazyMap<K, V> implements ReadonlyMap<K, V> {
  private built: Map<K, V> | undefined;

  constructor(private readonly pairs: readonly (readonly [K, V])[]) {}

  private get map(): Map<K, V> {
    return (this.built ??= new Map(this.pairs));
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    this.map.forEach((v, k) => fn.call(thisArg, v, k, this));
  }

  entries(): MapIterator<[K, V]> {
    return this.map.entries();
  }

  keys(): MapIterator<K> {
    return this.map.keys();
  }

  values(): MapIterator<V> {
    return this.map.values();
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.map[Symbol.iterator]();
  }
}
