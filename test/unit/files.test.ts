import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { InputError, MAX_FILE_BYTES, MAX_OBJECT_BYTES, flatten, parseDocuments, readSources } from '../../src/sources/files';

test('multi-document YAML and nested Lists are flattened with their origin', () => {
  const docs = parseDocuments('a: 1\n---\nkind: List\nitems: [{kind: X}, {kind: FooList, items: [{kind: Y}]}]\n---\n', 'f.yaml');
  const out: { origin: string; object: Record<string, unknown> }[] = [];
  const notes: string[] = [];
  docs.forEach((d) => flatten(d, 'f.yaml', out, notes));
  expect(out.map((o) => [o.origin, o.object.kind ?? o.object.a])).toEqual([
    ['f.yaml', 1],
    ['f.yaml#items[0]', 'X'],
    ['f.yaml#items[1]#items[0]', 'Y'],
  ]);
});

test('syntax errors name the file and line, and end in the reason, not a dangling colon', () => {
  expect(() => parseDocuments('a: 1\nb: [\n', 'bad.yaml')).toThrow(/^bad\.yaml(:\d+)?: malformed YAML/);
  expect(() => parseDocuments('a: 1\na: 2\n', 'dup.yaml')).toThrow(/malformed YAML/);
  expect(() => parseDocuments('kind: Firewall\n  spec: [\n', 'bad.yaml')).toThrow(
    new InputError('bad.yaml:1: malformed YAML/JSON: Nested mappings are not allowed in compact mappings (column 7)'),
  );
  for (const text of ['a: 1\nb: [\n', 'kind: Firewall\n  spec: [\n', 'a: "x\n', '- a\nb: c\n', 'a: 1\na: 2\n']) {
    let message = '';
    try {
      parseDocuments(text, 'f.yaml');
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/^f\.yaml:\d+: malformed YAML\/JSON: /);
    expect(message).not.toMatch(/:\s*$|\n/);
    expect(message).not.toContain(' at line ');
  }
});

function bomb(): string {
  return ['a: &a [x,x,x,x,x,x,x,x,x,x]', ...Array.from({ length: 8 }, (_, i) => `${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(',')}]`)].join('\n');
}

test('alias bombs are refused as unusable input naming the file, without a stack of yaml internals', () => {
  expect(() => parseDocuments(bomb(), 'bomb.yaml')).toThrow(InputError);
  expect(() => parseDocuments(bomb(), 'bomb.yaml')).toThrow(
    /^bomb\.yaml:1: refused YAML document: its aliases expand too far \(more than 100 alias copies: an alias bomb\?\)$/,
  );
  // the document's own line in a stream
  expect(() => parseDocuments(`a: 1\n---\n${bomb()}`, 'bomb.yaml')).toThrow(/^bomb\.yaml:3: refused YAML document/);
  // a few aliases are fine
  expect(parseDocuments('a: &x [1, 2]\nb: *x\nc: *x\n', 'ok.yaml')).toEqual([{ a: [1, 2], b: [1, 2], c: [1, 2] }]);
  expect(() => parseDocuments('a: *nope\n', 'u.yaml')).toThrow(/^u\.yaml:1: refused YAML document: Unresolved alias/);
});

describe('JSON', () => {
  const list = { apiVersion: 'v1', kind: 'List', items: [{ kind: 'A', n: 1.5, s: 'é\u2028', t: true, z: null, e: [] }, { kind: 'B', o: {} }] };

  test('parses to what the YAML parser gives for the same text', () => {
    const text = JSON.stringify(list, null, 2);
    expect(parseDocuments(text, 'l.json')).toEqual([list]);
    expect(parseDocuments(text, 'l.json')).toEqual(parseAllDocuments(text).map((d) => d.toJS()));
  });

  test('a key given twice is refused with its line (JSON.parse would keep the last silently)', () => {
    expect(() => parseDocuments('{"kind": "List",\n "items": [{"a": 1}, {"b": 2, "b": 3}]}', 'dup.json')).toThrow(
      /^dup\.json:2: malformed YAML\/JSON: Map keys must be unique/,
    );
    expect(() => parseDocuments('{"a": {"x\\u0041": 1, "xA": 2}}', 'esc.json')).toThrow(/Map keys must be unique/);
    // the same key in different objects, and as a value, is fine
    expect(parseDocuments('[{"a": "a"}, {"a": {"a": ["a"]}}]', 'ok.json')).toEqual([[{ a: 'a' }, { a: { a: ['a'] } }]]);
    expect(parseDocuments('{"a\\"b": 1, "a": "\\\\", "c": "{\\"a\\": 1, \\"a\\": 2}"}', 'q.json')).toEqual([{ 'a"b': 1, a: '\\', c: '{"a": 1, "a": 2}' }]);
  });

  test('broken JSON in a .json file says what JSON.parse says, with the line', () => {
    expect(() => parseDocuments('{"kind": "List",\n "items": [{"a": 1}, \n{"b": 2 "b": 3}]}', 'broken.json')).toThrow(
      new InputError("broken.json:3: malformed JSON: Expected ',' or '}' after property value (column 9)"),
    );
  });

  test('YAML flow syntax starting with a brace still parses as YAML', () => {
    expect(parseDocuments('{a: 1, b: [x]}\n', 'flow.yaml')).toEqual([{ a: 1, b: ['x'] }]);
  });

  test('a large JSON file is cheap', () => {
    const items = Array.from({ length: 20000 }, (_, i) => ({ kind: 'ClusterwideNetworkPolicy', metadata: { name: `p${i}`, namespace: 'firewall' }, spec: { egress: [{ to: [{ cidr: '10.0.0.0/8' }] }] } }));
    const text = JSON.stringify({ kind: 'List', items });
    const t0 = Date.now();
    const docs = parseDocuments(text, 'big.json');
    expect(Date.now() - t0).toBeLessThan(1500);
    expect((docs[0] as { items: unknown[] }).items).toHaveLength(20000);
  });
});

describe('size limits', () => {
  test('a file larger than the limit is refused naming the limit', () => {
    expect(MAX_FILE_BYTES).toBe(8 * 1024 * 1024);
    const text = `# ${'x'.repeat(MAX_FILE_BYTES)}\n`;
    expect(() => parseDocuments(text, 'huge.yaml')).toThrow(new InputError('huge.yaml: larger than 8 MiB, the limit for one input file; split it'));
  });

  test('an object larger than an API server stores is refused naming the file, the object and its longest list', () => {
    expect(MAX_OBJECT_BYTES).toBe(1536 * 1024);
    const to = Array.from({ length: 70000 }, (_, i) => ({ cidr: `10.${(i >> 15) & 255}.${(i >> 7) & 255}.${(i & 127) * 2}/32` }));
    const policy = { apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name: 'huge', namespace: 'firewall' }, spec: { egress: [{ to }] } };
    const out: { origin: string; object: Record<string, unknown> }[] = [];
    expect(() => flatten(policy, 'p.json', out, [])).toThrow(
      /^p\.json: ClusterwideNetworkPolicy firewall\/huge: \d+ bytes as JSON, more than the 1\.5 MiB an API server stores for one object; its longest list is spec\.egress\[0\]\.to with 70000 entries$/,
    );
    // in a List: the item is named
    expect(() => flatten({ kind: 'List', items: [{ kind: 'X' }, policy] }, 'l.json', out, [])).toThrow(/^l\.json#items\[1\]: ClusterwideNetworkPolicy firewall\/huge: /);
    // a List may be larger than one object may be
    const many = Array.from({ length: 3 }, (_, i) => ({ ...policy, metadata: { name: `p${i}`, namespace: 'firewall' }, spec: { egress: [{ to: to.slice(0, 30000) }] } }));
    const listOut: typeof out = [];
    flatten({ kind: 'List', items: many }, 'l.json', listOut, []);
    expect(listOut).toHaveLength(3);
  });
});

describe('readSources', () => {
  test('a directory without any .yaml/.yml/.json file is "no input files", not "no Firewall"', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fwa-files-'));
    writeFileSync(path.join(dir, 'README.md'), '# nothing\n');
    mkdirSync(path.join(dir, 'sub'));
    await expect(readSources([dir])).rejects.toThrow(new InputError(`no input files in ${dir} (looked for *.yaml, *.yml, *.json)`));
    rmSync(dir, { recursive: true, force: true });
  });

  test('a missing path is unusable input', async () => {
    await expect(readSources(['/nonexistent/fw.yaml'])).rejects.toThrow(new InputError('/nonexistent/fw.yaml: cannot read (ENOENT)'));
  });
});
