/**
 * Kubernetes YAML/JSON from files and directories: multi-document streams and `List` kinds are
 * flattened into single objects, each remembering where it came from.
 *
 * Input size is bounded so that a mistaken or hostile file costs what its size warrants and no
 * more: a file may hold at most MAX_FILE_BYTES, and one object at most MAX_OBJECT_BYTES as JSON
 * (what a Kubernetes API server stores for one object, so nothing a cluster could hold is refused).
 * JSON is parsed with JSON.parse (about 80 times faster than the YAML parser); YAML documents are
 * composed one at a time, so a long stream never holds all syntax trees at once.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Composer, Document, LineCounter, Parser } from 'yaml';
import { Obj } from '../model/fields';
import { EnvironmentError } from '../report/errors';

export interface SourceObject {
  readonly origin: string;
  readonly object: Obj;
}

export class InputError extends Error {}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/**
 * One input file. YAML costs about 0.7 s and up to 100 MiB of memory per MiB of text (the yaml
 * library; JSON a tenth of that): 8 MiB holds about 35,000 small policies, three times the
 * largest landscape the benchmarks compile, and costs at most about 5 s and 850 MiB to read.
 */
export const MAX_FILE_BYTES = 8 * 1024 * 1024;
/** One object as JSON: etcd's default request limit (1.5 MiB), the most an API server stores. */
export const MAX_OBJECT_BYTES = 1536 * 1024;
/** Aliases a YAML document may expand (the yaml library's own default). */
const MAX_ALIAS_COUNT = 100;

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MiB`;
}

function errnoCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

/** A file-system error on a path the user named: permission problems are the environment's. */
function readError(p: string, e: unknown): Error {
  const code = errnoCode(e);
  if (code === 'EACCES' || code === 'EPERM') {
    return new EnvironmentError(`${p}: cannot read (${code})`, 'run as a user who may read it');
  }
  return new InputError(`${p}: cannot read (${code})`);
}

const PLAIN_NAME = /^[0-9a-z._-]*$/;
const ALNUM = /[0-9a-z]/;

/**
 * Whether the default locale (ICU reads LC_ALL, LC_MESSAGES, LANG) collates digits and a-z like
 * ICU's root: C, POSIX and English do; some languages do not (Danish "aa", Estonian "z").
 */
function rootLikeLocale(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(C|POSIX|en)([._@-]|$)/.test(env.LC_ALL || env.LC_MESSAGES || env.LANG || 'C');
}

/**
 * localeCompare's order of file names (the order of the objects follows it). Its first call costs
 * milliseconds (ICU's collator loads), more than reading a small landscape, so plain names
 * compare by code unit where that gives the same answer: one is a prefix of the other, or they
 * first differ in two digits or lower-case letters (ordered alike at the primary level).
 */
export function compareNames(a: string, b: string, env?: NodeJS.ProcessEnv): number {
  if (!rootLikeLocale(env) || !PLAIN_NAME.test(a) || !PLAIN_NAME.test(b)) return a.localeCompare(b);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  if (i === a.length || i === b.length) return a.length - b.length;
  if (ALNUM.test(a[i]!) && ALNUM.test(b[i]!)) return a.charCodeAt(i) - b.charCodeAt(i);
  return a.localeCompare(b);
}

async function listFiles(p: string): Promise<string[]> {
  let st;
  try {
    st = await fs.stat(p);
  } catch (e) {
    throw readError(p, e);
  }
  if (st.isFile()) return [p];
  if (!st.isDirectory()) throw new InputError(`${p}: not a file or directory`);
  let entries;
  try {
    entries = await fs.readdir(p, { withFileTypes: true });
  } catch (e) {
    throw readError(p, e);
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => compareNames(a.name, b.name))) {
    const full = path.join(p, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(full)));
    else if (e.isFile() && EXTENSIONS.has(path.extname(e.name).toLowerCase())) out.push(full);
  }
  return out;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `yaml`'s messages may end in ` at line 3, column 7:` followed by a source excerpt; keep the sentence. */
function cleanMessage(message: string): string {
  const first = message.split('\n')[0] ?? '';
  return first.replace(/ at line \d+, column \d+:?\s*$/, '').replace(/[\s:]+$/, '');
}

/** Keys in valid JSON text: the strings followed by a colon. Repeated keys count every time. */
function textKeys(text: string): number {
  let n = 0;
  // indexOf jumps from quote to quote (natively, megabytes per millisecond).
  for (let i = text.indexOf('"'); i >= 0; i = text.indexOf('"', i + 1)) {
    let end = text.indexOf('"', i + 1);
    while (escaped(text, end)) end = text.indexOf('"', end + 1);
    let k = end + 1;
    for (let c = text.charCodeAt(k); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = text.charCodeAt(k)) k++;
    if (text.charCodeAt(k) === 0x3a /* : */) n++;
    i = end;
  }
  return n;
}

/** Whether the quote at `at` is escaped: preceded by an odd number of backslashes. */
function escaped(text: string, at: number): boolean {
  let backslashes = 0;
  while (text.charCodeAt(at - 1 - backslashes) === 0x5c /* \ */) backslashes++;
  return backslashes % 2 === 1;
}

/** Own keys of every object in a parsed JSON value. */
function valueKeys(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let n = 0;
  if (Array.isArray(v)) {
    for (const item of v) n += valueKeys(item);
    return n;
  }
  for (const k in v) n += 1 + valueKeys((v as Obj)[k]);
  return n;
}

/**
 * Whether some object in valid JSON text has a key twice. JSON.parse keeps the last silently; the
 * YAML parser refuses (a repeated field must not quietly override the first). JSON.parse makes
 * one property per distinct key, so the parsed value has fewer keys than the text exactly when
 * some key is repeated (however it is escaped); counting needs no per-object sets.
 */
function hasDuplicateKeys(text: string, value: unknown): boolean {
  return textKeys(text) !== valueKeys(value);
}

/** Line and column (from 1) of a character offset. */
function position(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, col: offset - lineStart + 1 };
}

/**
 * JSON.parse when the text is plain JSON without repeated keys; undefined means "let the YAML
 * parser judge" (YAML flow syntax, repeated keys). A `.json` file that is not JSON is reported
 * with JSON's own message.
 */
function parseJson(text: string, origin: string): unknown[] | undefined {
  // The first character that is not white space (a regular expression over the whole text would copy it).
  let i = 0;
  while (i < text.length && /\s/.test(text[i]!)) i++;
  if (text[i] !== '{' && text[i] !== '[') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    if (path.extname(origin).toLowerCase() !== '.json') return undefined;
    const message = e instanceof Error ? e.message : String(e);
    const at = /at position (\d+)/.exec(message);
    const pos = at ? position(text, Number(at[1])) : undefined;
    const reason = message.replace(/ in JSON at position \d+.*$/, '').replace(/ \(line \d+ column \d+\)$/, '').replace(/, ".*" is not valid JSON$/s, '');
    throw new InputError(pos ? `${origin}:${pos.line}: malformed JSON: ${reason} (column ${pos.col})` : `${origin}: malformed JSON: ${reason}`);
  }
  if (hasDuplicateKeys(text, value)) return undefined;
  return [value];
}

/** Parses one file's text into documents; throws InputError with the file and line on bad syntax. */
export function parseDocuments(text: string, origin: string): unknown[] {
  if (text.length > MAX_FILE_BYTES) {
    throw new InputError(`${origin}: larger than ${mib(MAX_FILE_BYTES)}, the limit for one input file; split it`);
  }
  const json = parseJson(text, origin);
  if (json) return json;
  const lines = new LineCounter();
  const where = (offset: number): string => `${origin}:${lines.linePos(offset).line}`;
  const column = (offset: number): string => ` (column ${lines.linePos(offset).col})`;
  const composer = new Composer({ uniqueKeys: true });
  const out: unknown[] = [];
  // One document at a time: its syntax tree is garbage as soon as its value is taken.
  const take = (doc: Document.Parsed): void => {
    const err = doc.errors[0];
    if (err) throw new InputError(`${where(err.pos[0])}: malformed YAML/JSON: ${cleanMessage(err.message)}${column(err.pos[0])}`);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      // The yaml library throws a ReferenceError for alias bombs ("Excessive alias count …").
      const message = e instanceof Error ? e.message : String(e);
      const reason = /Excessive alias count/.test(message)
        ? `its aliases expand too far (more than ${MAX_ALIAS_COUNT} alias copies: an alias bomb?)`
        : cleanMessage(message);
      const start = (doc.contents as { range?: [number] } | null)?.range?.[0] ?? doc.range[0];
      throw new InputError(`${where(start)}: refused YAML document: ${reason}`);
    }
    if (value !== null && value !== undefined) out.push(value);
  };
  for (const doc of composer.compose(new Parser(lines.addNewLine).parse(text))) take(doc);
  return out;
}

/** `Kind namespace/name` as far as the object says, for messages. */
function describeObject(o: Obj): string {
  const meta = isObj(o.metadata) ? o.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name.slice(0, 80) : '<unnamed>';
  const ns = typeof meta.namespace === 'string' ? `${meta.namespace.slice(0, 80)}/` : '';
  return `${typeof o.kind === 'string' ? o.kind.slice(0, 80) : 'object'} ${ns}${name}`;
}

/** The longest list inside `v` and its field path, to point at what made an object too large. */
function longestList(v: unknown, at = ''): { path: string; length: number } | undefined {
  let best: { path: string; length: number } | undefined;
  const consider = (c: { path: string; length: number } | undefined): void => {
    if (c && (!best || c.length > best.length)) best = c;
  };
  if (Array.isArray(v)) {
    consider({ path: at, length: v.length });
    v.forEach((item, i) => consider(longestList(item, `${at}[${i}]`)));
  } else if (isObj(v)) {
    for (const [k, item] of Object.entries(v)) consider(longestList(item, at ? `${at}.${k}` : k));
  }
  return best;
}

/**
 * An upper bound of the UTF-8 length of JSON.stringify(v), without making the text: a string
 * costs at most 6 bytes per UTF-16 unit (\uXXXX), a number at most 24 characters; Infinity for
 * anything else.
 */
function jsonBytesBound(v: unknown): number {
  switch (typeof v) {
    case 'string':
      return 2 + 6 * v.length;
    case 'number':
      return 24;
    case 'boolean':
      return 5;
    case 'object': {
      if (v === null) return 4;
      let n = 2;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) n += jsonBytesBound(v[i]) + 1;
        return n;
      }
      for (const k in v) n += 2 + 6 * k.length + 1 + jsonBytesBound((v as Obj)[k]) + 1;
      return n;
    }
    default:
      return Infinity;
  }
}

function checkSize(o: Obj, origin: string): void {
  // Objects are checked by the thousand; most are far below the limit even by this bound.
  if (jsonBytesBound(o) <= MAX_OBJECT_BYTES) return;
  const bytes = Buffer.byteLength(JSON.stringify(o));
  if (bytes <= MAX_OBJECT_BYTES) return;
  const list = longestList(o);
  const hint = list && list.length > 1 ? `; its longest list is ${list.path} with ${list.length} entries` : '';
  throw new InputError(
    `${origin}: ${describeObject(o)}: ${bytes} bytes as JSON, more than the ${mib(MAX_OBJECT_BYTES)} an API server stores for one object${hint}`,
  );
}

/** Flattens `List` kinds (kind `List` or `<Kind>List` with `items`); every object is size-checked. */
export function flatten(value: unknown, origin: string, out: SourceObject[], notes: string[]): void {
  if (!isObj(value)) {
    notes.push(`${origin}: skipped a document that is not an object`);
    return;
  }
  const kind = typeof value.kind === 'string' ? value.kind : undefined;
  if (kind !== undefined && kind.endsWith('List') && Array.isArray(value.items)) {
    value.items.forEach((item, i) => flatten(item, `${origin}#items[${i}]`, out, notes));
    return;
  }
  checkSize(value, origin);
  out.push({ origin, object: value });
}

export async function readSources(paths: readonly string[]): Promise<{ objects: SourceObject[]; notes: string[] }> {
  if (paths.length === 0) throw new InputError('no input: give at least one -f PATH');
  const objects: SourceObject[] = [];
  const notes: string[] = [];
  for (const p of paths) {
    const files = await listFiles(p);
    if (files.length === 0) throw new InputError(`no input files in ${p} (looked for ${[...EXTENSIONS].map((x) => `*${x}`).join(', ')})`);
    for (const file of files) {
      let text: string;
      try {
        const st = await fs.stat(file);
        if (st.size > MAX_FILE_BYTES) {
          throw new InputError(`${file}: ${st.size} bytes, larger than ${mib(MAX_FILE_BYTES)}, the limit for one input file; split it`);
        }
        text = await fs.readFile(file, 'utf8');
      } catch (e) {
        if (e instanceof InputError) throw e;
        throw readError(file, e);
      }
      parseDocuments(text, file).forEach((doc) => flatten(doc, file, objects, notes));
    }
  }
  return { objects, notes };
}
