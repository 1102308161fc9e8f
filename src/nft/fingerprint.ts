/**
 * Fingerprints of a table's content: what the agent meant (the IR) and what the kernel holds (nft's
 * stateless listing) reduce to the same fingerprint exactly when they hold the same objects. Drift
 * is judged against what the agent meant, never adopted from the kernel, and a restart keeps the
 * kernel's table only when its fingerprint is one the agent recorded.
 *
 * A table is a set of items (a set or map declaration, one element, a named counter, a chain with
 * its rules in order); the fingerprint is the XOR of the items' SHA-1 digests. Elements of dynamic
 * sets (FQDN answers, with timeouts) are not items: they change by the second. XOR makes it
 * composable: a map whose elements did not change keeps its cached digest, and a table's digest is
 * the XOR of its objects'. It detects changes; it is not a defence against someone who can already
 * write the kernel's ruleset (and the state directory).
 */
import { createHash } from 'node:crypto';
import { NftChain, NftMap, NftSet, NftTable, TableRef } from './ruleset';
import { baseChainText, chainLines, elementText, mapLines, setLines } from './serialize';
import { identifier } from './syntax';

export type Digest = Uint32Array;

const WORDS = 4;

export function emptyDigest(): Digest {
  return new Uint32Array(WORDS);
}

function itemDigest(item: string): Digest {
  const b = createHash('sha1').update(item).digest();
  return new Uint32Array([b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)]);
}

/** XORs `b` into `a` (in place) and returns `a`. */
export function mix(a: Digest, b: Digest): Digest {
  for (let i = 0; i < WORDS; i++) a[i] = (a[i]! ^ b[i]!) >>> 0;
  return a;
}

export function hex(d: Digest): string {
  return Array.from(d, (w) => w.toString(16).padStart(8, '0')).join('');
}

/** Base-chain priorities as nft names them (`filter + 1`, `srcnat - 1`). */
const PRIORITY_NAMES: Record<string, number> = { raw: -300, mangle: -150, dstnat: -100, filter: 0, security: 50, srcnat: 100, out: 100 };

function normalizeBaseLine(line: string): string {
  return line.replace(/priority ([a-z]+)(?: ([+-]) (\d+))?;/, (m, name: string, sign?: string, n?: string) => {
    const base = PRIORITY_NAMES[name];
    if (base === undefined) return m;
    return `priority ${base + (sign === '-' ? -Number(n) : Number(n ?? 0))};`;
  });
}

/** nft lists anonymous sets in its own order: sort their members. Counter values are not content. */
function normalizeRule(line: string): string {
  // A persisted transaction carries counter values; a stateless listing does not.
  return line.replace(/\bcounter packets \d+ bytes \d+/, 'counter').replace(/\{ ([^{}]*) \}/g, (_m, inner: string) => `{ ${inner.split(', ').sort().join(', ')} }`);
}

interface Block {
  readonly kind: string;
  readonly name: string;
  readonly lines: string[];
}

/** Splits a listing (`table … { … }`) into its top-level objects. */
function blocks(text: string): Block[] {
  const out: Block[] = [];
  let cur: Block | undefined;
  for (const raw of text.split('\n')) {
    if (cur) {
      if (raw === '\t}') {
        out.push(cur);
        cur = undefined;
      } else if (raw.trim() !== '') cur.lines.push(raw.trim());
      continue;
    }
    const m = /^\t(set|map|counter|chain) (\S+) \{$/.exec(raw);
    if (m) cur = { kind: m[1]!, name: m[2]!, lines: [] };
  }
  return out;
}

/** The items of one object, given its body lines (trimmed). */
function blockDigest(b: Block): Digest {
  const d = emptyDigest();
  if (b.kind === 'counter') return mix(d, itemDigest(`counter ${b.name}`)); // values are not content
  if (b.kind === 'chain') {
    const lines = b.lines.map((l, i) => (i === 0 && l.startsWith('type ') ? normalizeBaseLine(l) : normalizeRule(l)));
    return mix(d, itemDigest(`chain ${b.name}\n${lines.join('\n')}`));
  }
  const header: string[] = [];
  let elements: string | undefined;
  for (const l of b.lines) {
    if (elements !== undefined) elements += ` ${l}`;
    else if (l.startsWith('elements = {')) elements = l.slice('elements = {'.length);
    else header.push(l);
  }
  mix(d, itemDigest(`${b.kind} ${b.name}\n${header.join('\n')}`));
  // The elements of a dynamic set (flags timeout) come and go at run time: not content.
  const dynamic = header.some((l) => /^flags (?:\S+,)*timeout(?:,|$)/.test(l));
  if (elements !== undefined && !dynamic) {
    const body = elements.replace(/\}\s*$/, '');
    for (const e of body.split(',')) {
      const t = e.trim();
      if (t !== '') mix(d, itemDigest(`${b.kind} ${b.name} elem ${t}`));
    }
  }
  return d;
}

/** The fingerprint of nft's stateless listing of a table (or of our own rendering of one). */
export function listingDigest(text: string): Digest {
  const d = emptyDigest();
  for (const b of blocks(text)) mix(d, blockDigest(b));
  return d;
}

function linesBlock(lines: string[]): Block {
  const head = /^\t(set|map|counter|chain) (\S+) \{$/.exec(lines[0]!)!;
  return { kind: head[1]!, name: head[2]!, lines: lines.slice(1, -1).map((l) => l.trim()).filter((l) => l !== '') };
}

/** Digests by object identity: unchanged shards and chains are not hashed again. */
const chainCache = new WeakMap<NftChain, Digest>();
const elementCache = new WeakMap<object, { name: string; digest: Digest }>();

export function chainDigest(c: NftChain): Digest {
  let d = chainCache.get(c);
  if (!d) chainCache.set(c, (d = blockDigest(linesBlock(chainLines(c)))));
  return d;
}

function collectionDigest(kind: 'set' | 'map', o: NftSet | NftMap): Digest {
  const head = kind === 'set' ? setLines({ ...(o as NftSet), elements: [] }) : mapLines(o as NftMap, false);
  const d = blockDigest(linesBlock(head));
  const hit = elementCache.get(o.elements);
  if (hit && hit.name === o.name) return mix(d, hit.digest);
  const e = emptyDigest();
  for (const el of o.elements) mix(e, itemDigest(`${kind} ${o.name} elem ${elementText(el)}`));
  elementCache.set(o.elements, { name: o.name, digest: e });
  return mix(d, e);
}

export function setDigest(s: NftSet): Digest {
  return collectionDigest('set', s);
}

export function mapDigest(m: NftMap): Digest {
  return collectionDigest('map', m);
}

/** A map as it stays in the kernel after an incremental update emptied it (until cleanup). */
export function emptyMapDigest(m: NftMap): Digest {
  return blockDigest(linesBlock(mapLines(m, false)));
}

export function counterDigest(name: string): Digest {
  return itemDigest(`counter ${name}`);
}

/** The fingerprint of a table as the agent means it. */
export function tableDigest(t: NftTable): Digest {
  const d = emptyDigest();
  for (const s of t.sets) mix(d, setDigest(s));
  for (const c of t.counters) mix(d, counterDigest(c));
  for (const m of t.maps) mix(d, mapDigest(m));
  for (const c of t.chains) mix(d, chainDigest(c));
  return d;
}

/*
 * The chains fingerprint: each chain's name and base declaration, nothing else. It is what
 * `nft list chains` shows, which nft 1.0.6 answers from the chains alone (60 ms at 10,000
 * policies, against 2 s for a full listing that loads every element): a cheap check, run every
 * interval, that sees the table deleted or replaced, chains added or removed and base chains
 * changed. Rules and elements are left to the full fingerprint.
 */

function chainsItem(name: string, baseLine: string | undefined): string {
  return `${name} ${baseLine === undefined ? '' : normalizeBaseLine(baseLine)}`;
}

/** One hash over the sorted items: cheaper than a digest per chain (13,000 at 10,000 policies). */
function sortedDigest(items: string[]): Digest {
  return itemDigest(`chains\n${items.sort().join('\n')}`);
}

/** The chains fingerprint of one table's listing: full, chains only, or our own rendering. */
export function chainsDigest(text: string): Digest {
  const items: string[] = [];
  for (const b of blocks(text)) {
    if (b.kind !== 'chain') continue;
    const first = b.lines[0];
    items.push(chainsItem(b.name, first !== undefined && first.startsWith('type ') ? first : undefined));
  }
  return sortedDigest(items);
}

/** The chains fingerprint of a table as the agent means it, with chains still waiting for cleanup. */
export function tableChainsDigest(t: NftTable, extra: Iterable<NftChain> = []): Digest {
  const items: string[] = [];
  for (const c of [...t.chains, ...extra]) items.push(chainsItem(identifier(c.name), c.base && baseChainText(c.base)));
  return sortedDigest(items);
}

/** `table`'s part of a listing of several tables (`nft list chains inet`); undefined when absent. */
export function tablePart(text: string, table: TableRef): string | undefined {
  const lines = text.split('\n');
  const start = lines.indexOf(`table ${table.family} ${table.name} {`);
  if (start < 0) return undefined;
  const end = lines.indexOf('}', start);
  return lines.slice(start, end < 0 ? undefined : end + 1).join('\n');
}
