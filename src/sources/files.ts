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
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
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

/**
 * Whether some object in valid JSON text has a key twice. JSON.parse keeps the last silently; the
 * YAML parser refuses (a repeated field must not quietly override the first).
 */
function hasDuplicateKeys(text: string): boolean {
  const stack: (Set<string> | undefined)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j += 2;
        } else if (d === 0x22) break;
        else j++;
      }
      const keys = stack[stack.length - 1];
      if (expectKey && keys) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(undefined);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] !== undefined;
    }
  }
  return false;
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
  const start = /\S/.exec(text)?.[0];
  if (start !== '{' && start !== '[') return undefined;
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
  if (hasDuplicateKeys(text)) return undefined;
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

function checkSize(o: Obj, origin: string): void {
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
