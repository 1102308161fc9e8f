/**
 * Kubernetes YAML/JSON from files and directories: multi-document streams and `List` kinds are
 * flattened into single objects, each remembering where it came from.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Obj } from '../model/fields';

export interface SourceObject {
  readonly origin: string;
  readonly object: Obj;
}

export class InputError extends Error {}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
const MAX_FILE_BYTES = 64 * 1024 * 1024;

async function listFiles(p: string): Promise<string[]> {
  let st;
  try {
    st = await fs.stat(p);
  } catch (e) {
    throw new InputError(`${p}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (st.isFile()) return [p];
  if (!st.isDirectory()) throw new InputError(`${p}: not a file or directory`);
  const entries = await fs.readdir(p, { withFileTypes: true });
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

/** Parses one file's text into documents; throws InputError with the file and line on bad syntax. */
export function parseDocuments(text: string, origin: string): unknown[] {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0) {
      const err = doc.errors[0]!;
      const line = err.linePos?.[0]?.line;
      throw new InputError(`${origin}${line ? `:${line}` : ''}: malformed YAML/JSON: ${err.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** Flattens `List` kinds (kind `List` or `<Kind>List` with `items`). */
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
  out.push({ origin, object: value });
}

export async function readSources(paths: readonly string[]): Promise<{ objects: SourceObject[]; notes: string[] }> {
  if (paths.length === 0) throw new InputError('no input: give at least one -f PATH');
  const objects: SourceObject[] = [];
  const notes: string[] = [];
  for (const p of paths) {
    const files = await listFiles(p);
    for (const file of files) {
      const st = await fs.stat(file);
      if (st.size > MAX_FILE_BYTES) throw new InputError(`${file}: larger than ${MAX_FILE_BYTES} bytes`);
      const text = await fs.readFile(file, 'utf8');
      parseDocuments(text, file).forEach((doc) => flatten(doc, file, objects, notes));
    }
  }
  return { objects, notes };
}
