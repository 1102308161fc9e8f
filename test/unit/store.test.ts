import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FILES, StateStore } from '../../src/daemon/store';

function store(): StateStore {
  return new StateStore(path.join(mkdtempSync(path.join(tmpdir(), 'fwa-store-')), 'state'));
}

test('a successful connected apply is kept as applied and last-known-good, with its state', async () => {
  const s = store();
  await s.init();
  await s.saveApplied('connected', 'ruleset A', 'fp A');
  await s.saveApplied('disconnected', 'drop ruleset', 'fp D');
  expect(await s.read(FILES.applied)).toBe('drop ruleset');
  expect(await s.read(FILES.lastKnownGood)).toBe('ruleset A');
  expect(await s.load()).toMatchObject({ version: 2, state: 'disconnected', fingerprint: 'fp D' });
  // atomic writes leave no temp files behind
  expect(readdirSync(s.dir).sort()).toEqual([FILES.applied, FILES.lastKnownGood, FILES.state].sort());
});

test('a pending fingerprint is recorded before an apply and cleared when that apply is saved', async () => {
  const s = store();
  await s.init();
  await s.saveApplied('connected', 'A', 'fp A');
  await s.savePending('fp B');
  expect(await s.load()).toMatchObject({ fingerprint: 'fp A', pending: 'fp B' });
  await s.saveApplied('connected', 'B', 'fp B');
  const after = await s.load();
  expect(after).toMatchObject({ fingerprint: 'fp B' });
  expect(after!.pending).toBeUndefined();
  // a later pending (another apply under way) survives the save of an earlier one
  await s.savePending('fp C');
  await s.saveApplied('connected', 'B', 'fp B');
  expect(await s.load()).toMatchObject({ fingerprint: 'fp B', pending: 'fp C' });
});

test('the boot ruleset is rewritten only when it changes', async () => {
  const s = store();
  await s.init();
  expect(await s.saveBoot('drop v1')).toBe(true);
  expect(await s.saveBoot('drop v1')).toBe(false);
  expect(await s.saveBoot('drop v2')).toBe(true);
  expect(readFileSync(path.join(s.dir, FILES.boot), 'utf8')).toBe('drop v2');
});

test('a missing, truncated or old state file means "nothing applied before"', async () => {
  const s = store();
  expect(await s.load()).toBeUndefined();
  expect(await s.read(FILES.lastKnownGood)).toBeUndefined();
  await s.init();
  writeFileSync(path.join(s.dir, FILES.state), '{"version": 2, "state": "conn');
  expect(await s.load()).toBeUndefined();
  writeFileSync(path.join(s.dir, FILES.state), JSON.stringify({ version: 1, state: 'connected', listing: 'x' }));
  expect(await s.load()).toBeUndefined();
});

test('a state directory that is a file fails loudly instead of silently', async () => {
  const base = mkdtempSync(path.join(tmpdir(), 'fwa-store-'));
  writeFileSync(path.join(base, 'file'), '');
  await expect(new StateStore(path.join(base, 'file')).init()).rejects.toThrow();
  await expect(new StateStore(path.join(base, 'file')).saveApplied('connected', 'A', 'fp')).rejects.toThrow();
});
