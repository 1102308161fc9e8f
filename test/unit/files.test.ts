import { flatten, parseDocuments } from '../../src/sources/files';

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

test('syntax errors name the file and line', () => {
  expect(() => parseDocuments('a: 1\nb: [\n', 'bad.yaml')).toThrow(/^bad\.yaml(:\d+)?: malformed YAML/);
  expect(() => parseDocuments('a: 1\na: 2\n', 'dup.yaml')).toThrow(/malformed YAML/);
});

test('alias bombs are refused', () => {
  const bomb = ['a: &a [x,x,x,x,x,x,x,x,x,x]', ...Array.from({ length: 8 }, (_, i) => `${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(',')}]`)].join('\n');
  expect(() => parseDocuments(bomb, 'bomb.yaml')).toThrow();
});
