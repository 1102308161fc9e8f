/**
 * Our CRDs accept the same objects as the landscape's: same names, scope, versions, subresources,
 * printer columns, and structurally the same schema (properties, types, formats, patterns, list
 * types, required fields), compared with ../shared/crds field by field.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { CRDS } from '../../src/kube/crds';
import { ROOT } from '../helpers';

const SHARED = path.join(ROOT, '..', 'shared', 'crds');

type S = Record<string, unknown>;

/** Everything about a schema that decides what it accepts; descriptions left out. */
function shape(s: S, at = '$'): string[] {
  const own = ['type', 'format', 'pattern', 'x-kubernetes-list-type', 'nullable', 'enum', 'minimum', 'maximum']
    .filter((k) => s[k] !== undefined)
    .map((k) => `${at} ${k}=${JSON.stringify(s[k])}`);
  if (s.required) own.push(`${at} required=${JSON.stringify([...(s.required as string[])].sort())}`);
  const props = (s.properties ?? {}) as Record<string, S>;
  for (const k of Object.keys(props).sort()) own.push(`${at} has ${k}`, ...shape(props[k]!, `${at}.${k}`));
  if (s.items) own.push(...shape(s.items as S, `${at}[]`));
  if (s.additionalProperties) own.push(...shape(s.additionalProperties as S, `${at}{}`));
  return own;
}

function versionOf(crd: S): S {
  return ((crd.spec as S).versions as S[])[0]!;
}

describe.each(Object.keys(CRDS))('%s', (file) => {
  const ours = CRDS[file] as S;

  test('is written to crds/ (npm run crds)', () => {
    expect(readFileSync(path.join(ROOT, 'crds', file), 'utf8')).toBe(stringify(ours));
  });

  const upstreamPath = path.join(SHARED, file);
  // ../shared sits beside the checkout (as on CI); without it this comparison cannot be made and fails.
  const maybe = test;

  maybe('matches the landscape CRD in names, scope, versions and printer columns', () => {
    const theirs = parse(readFileSync(upstreamPath, 'utf8')) as S;
    expect((ours.metadata as S).name).toBe((theirs.metadata as S).name);
    const o = ours.spec as S;
    const t = theirs.spec as S;
    expect([o.group, o.scope, o.names]).toEqual([t.group, t.scope, t.names]);
    const ov = versionOf(ours);
    const tv = versionOf(theirs);
    expect([ov.name, ov.served, ov.storage, ov.subresources, ov.additionalPrinterColumns]).toEqual([
      tv.name,
      tv.served,
      tv.storage,
      tv.subresources,
      tv.additionalPrinterColumns,
    ]);
  });

  maybe('has the same schema structure as the landscape CRD', () => {
    const theirs = parse(readFileSync(upstreamPath, 'utf8')) as S;
    const o = shape((versionOf(ours).schema as S).openAPIV3Schema as S);
    const t = shape((versionOf(theirs).schema as S).openAPIV3Schema as S);
    expect(o).toEqual(t);
  });
});
