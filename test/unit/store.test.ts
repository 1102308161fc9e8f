import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FILES, StateStore } from '../../src/daemon/store';

function store(): StateStore {
  return new StateStore(path.join(mkdtempSync(path.join(tmpdir(), 'fwa-store-')), 'state'));
}

test('a successful connected apply is kept as applied and last-known-good, with its state', async () => {
  const s = store();
  await s.init();
  await s.saveApplied('connected', 'ruleset A', 'listing A', 'hash A');
  await s.saveApplied('disconnected', 'drop ruleset', 'listing D', 'hash D');
  expect(await s.read(FILES.applied)).toBe('drop ruleset');
  expect(await s.read(FILES.lastKnownGood)).toBe('ruleset A');
  expect(await s.load()).toMatchObject({ version: 1, state: 'disconnected', listing: 'listing D', baseHash: 'hash D' });
  // atomic writes leave no temp files behind
  expect(readdirSync(s.dir).sort()).toEqual([FILES.applied, FILES.lastKnownGood, FILES.state].sort());
});

test('the boot ruleset is rewritten only when it changes', async () => {
  const s = store();
  await s.init();
  expect(await s.saveBoot('drop v1')).toBe(true);
  expect(await s.saveBoot('drop v1')).toBe(false);
  expect(await s.saveBoot('drop v2')).toBe(true);
  expect(readFileSync(path.join(s.dir, FILES.boot), 'utf8')).toBe('drop v2');
});

test('a missing or unreadable state file means "nothing applied before"', async () => {
  const s = store();
  expect(await s.load()).toBeUndefined();
  expect(await s.read(FILES.lastKnownGood)).toBeUndefined();
});
