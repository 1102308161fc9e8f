import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Fields, Level, Logger } from '../../src/report/log';
import { DirectorySource, DirectorySourceOptions } from '../../src/sources/directory';
import { InputError } from '../../src/sources/files';
import { Snapshot } from '../../src/sources/source';

interface Line {
  level: Level;
  msg: string;
  fields: Fields;
}

function captureLogger(lines: Line[], base: Fields = {}): Logger {
  const at = (level: Level) => (msg: string, fields?: Fields) => void lines.push({ level, msg, fields: { ...base, ...fields } });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (f) => captureLogger(lines, { ...base, ...f }) };
}

const policy = (name: string, port = 443): string =>
  `apiVersion: metal-stack.io/v1\nkind: ClusterwideNetworkPolicy\nmetadata: {name: ${name}, namespace: firewall}\nspec:\n  egress:\n  - to: [{cidr: 1.2.3.0/24}]\n    ports: [{protocol: TCP, port: ${port}}]\n`;
const firewall = 'apiVersion: firewall.metal-stack.io/v2\nkind: Firewall\nmetadata: {name: fw, namespace: default}\nspec: {}\n';
const service = JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { type: 'LoadBalancer' } });

const names = (s: Snapshot): string[] =>
  [...s.firewalls, ...s.policies, ...s.services].map((o) => String((o.object.metadata as { name: string }).name)).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves as soon as `pred` holds (checked every 5 ms); returns the time it took. */
async function waitFor(pred: () => boolean, timeoutMs = 5000): Promise<number> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
  return Date.now() - t0;
}

let dir: string;
let sources: DirectorySource[];
let lines: Line[];
let changes: number;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fwa-dir-'));
  sources = [];
  lines = [];
  changes = 0;
});

afterEach(async () => {
  for (const s of sources) await s.stop();
  await fs.rm(dir, { recursive: true, force: true });
});

async function started(opts: Partial<DirectorySourceOptions> = {}, onChange?: (s: DirectorySource) => void): Promise<DirectorySource> {
  const s = new DirectorySource({ dir, log: captureLogger(lines), ...opts });
  sources.push(s);
  await s.start(() => {
    changes++;
    onChange?.(s);
  });
  return s;
}

const write = (rel: string, text: string) => fs.mkdir(path.dirname(path.join(dir, rel)), { recursive: true }).then(() => fs.writeFile(path.join(dir, rel), text));

test('a missing directory or a plain file is an InputError naming the path', async () => {
  const missing = path.join(dir, 'nope');
  const s = new DirectorySource({ dir: missing, log: captureLogger(lines) });
  sources.push(s);
  await expect(s.start(() => {})).rejects.toThrow(InputError);
  await expect(s.start(() => {})).rejects.toThrow(missing);
  await write('f.yaml', firewall);
  const f = new DirectorySource({ dir: path.join(dir, 'f.yaml'), log: captureLogger(lines) });
  sources.push(f);
  await expect(f.start(() => {})).rejects.toThrow(`${path.join(dir, 'f.yaml')}: not a directory`);
});

test('an empty directory is synced with nothing in it', async () => {
  const s = await started();
  const snap = s.snapshot();
  expect(snap.synced).toBe(true);
  expect([snap.firewalls, snap.policies, snap.services, snap.notes]).toEqual([[], [], [], []]);
  expect(s.problems()).toEqual([]);
  expect(s.health()).toEqual([{ name: `files:${dir}`, synced: true, lastSyncAt: expect.any(Number), lastError: undefined, restarts: 0 }]);
});

test('files at any depth are read, Lists flattened, other extensions and kinds skipped', async () => {
  await write('fw.yaml', firewall);
  await write('a/b/c/deep.YML', policy('deep'));
  await write('a/svc.json', service);
  await write('a/list.yaml', `kind: List\nitems:\n- ${JSON.stringify({ apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name: 'listed' } })}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: cm}}\n`);
  await write('a/readme.txt', 'not: [yaml');
  const s = await started();
  const snap = s.snapshot();
  expect(names(snap)).toEqual(['deep', 'fw', 'listed', 'web']);
  expect(snap.policies.map((o) => o.origin)).toEqual([path.join(dir, 'a/b/c/deep.YML'), `${path.join(dir, 'a/list.yaml')}#items[0]`]);
  expect(snap.notes).toEqual([`${path.join(dir, 'a/list.yaml')}#items[1]: skipped v1/ConfigMap`]);
  expect(s.problems()).toEqual([]);
});

test('a new file, an edit and a deletion each call onChange with the new snapshot within 1 s', async () => {
  await write('sub/p.yaml', policy('p'));
  const s = await started();
  const before = changes;
  const key0 = s.snapshot().policies[0]!.key;

  await write('sub/deeper/q.yaml', policy('q'));
  await waitFor(() => names(s.snapshot()).includes('q'), 1000);
  expect(changes).toBeGreaterThan(before);

  const t0 = Date.now();
  await write('sub/p.yaml', policy('p', 8443));
  await waitFor(() => s.snapshot().policies.some((o) => o.key !== key0 && o.origin.endsWith('p.yaml')), 1000);
  const latency = Date.now() - t0;
  console.log(`directory source: edit seen after ${latency} ms`);
  expect(latency).toBeLessThan(1000);
  const edited = s.snapshot().policies.find((o) => o.origin.endsWith('p.yaml'))!;
  expect(edited.object.spec).toMatchObject({ egress: [{ ports: [{ port: 8443 }] }] });

  const n = changes;
  await fs.rm(path.join(dir, 'sub/deeper/q.yaml'));
  await waitFor(() => !names(s.snapshot()).includes('q'), 1000);
  expect(changes).toBeGreaterThan(n);
});

test('a malformed file keeps its last good objects until fixed, logged once each way', async () => {
  await write('p.yaml', policy('p'));
  await write('never.yaml', 'a: [\n');
  const s = await started({ pollMs: 30 });
  const file = path.join(dir, 'p.yaml');
  const good = s.snapshot().policies;
  expect(names(s.snapshot())).toEqual(['p']);
  expect(s.problems()).toEqual([{ origin: path.join(dir, 'never.yaml'), error: expect.stringMatching(/never\.yaml(:\d+)?: malformed YAML/) }]);

  await write('p.yaml', `${policy('p')}  broken: [\n`);
  await waitFor(() => s.problems().length === 2);
  expect(s.problems()[1]).toEqual({ origin: file, error: expect.stringContaining('malformed YAML') });
  expect(s.snapshot().policies).toEqual(good); // the same instances: nothing disappeared
  expect(s.snapshot().policies[0]).toBe(good[0]);
  expect(s.health()[0]!.lastError).toMatch(/malformed YAML.*\(and 1 more problems\)/);
  await sleep(200); // several polls
  expect(lines.filter((l) => l.level === 'error' && l.fields.file === file)).toHaveLength(1);

  await write('p.yaml', policy('p', 80));
  await waitFor(() => s.problems().length === 1);
  expect(s.snapshot().policies[0]!.key).not.toBe(good[0]!.key);
  expect(s.snapshot().policies[0]!.object.spec).toMatchObject({ egress: [{ ports: [{ port: 80 }] }] });
  expect(lines.filter((l) => l.level === 'info' && l.fields.file === file)).toHaveLength(1);

  await fs.rm(path.join(dir, 'never.yaml'));
  await waitFor(() => s.problems().length === 0);
  expect(s.health()[0]!.lastError).toBeUndefined();
});

test('a file rewritten in place is read once it settles, never half-written', async () => {
  await write('p.yaml', policy('p'));
  const seen: unknown[] = [];
  await started({ pollMs: 20, settleMs: 500 }, (s) => seen.push(...s.snapshot().policies.map((o) => o.object.spec)));
  const text = policy('p', 8443);
  const cut = text.indexOf('spec:');
  const fh = await fs.open(path.join(dir, 'p.yaml'), 'w'); // truncates: an empty file parses fine
  await sleep(40);
  await fh.write(text.slice(0, cut)); // a policy without its spec parses fine too
  await sleep(40);
  await fh.write(text.slice(cut));
  await fh.close();
  await waitFor(() => seen.length > 1);
  expect(seen).toHaveLength(2);
  expect(seen[1]).toMatchObject({ egress: [{ ports: [{ port: 8443 }] }] });
});

test('unchanged files keep the same object instances; idle polls and touches call nothing', async () => {
  await write('a.yaml', policy('a'));
  await write('b.yaml', policy('b'));
  const s = await started({ pollMs: 20 });
  const [a0, b0] = s.snapshot().policies;
  const n = changes;
  await sleep(300);
  expect(changes).toBe(n);
  const now = new Date();
  await fs.utimes(path.join(dir, 'a.yaml'), now, now); // same content: nothing to tell
  await sleep(300);
  expect(changes).toBe(n);
  expect(s.snapshot().policies[0]).toBe(a0);

  await write('b.yaml', policy('b', 22));
  await waitFor(() => s.snapshot().policies[1] !== b0);
  expect(s.snapshot().policies[0]).toBe(a0);
});

test('hidden files and directories are ignored', async () => {
  await write('.hidden/p.yaml', policy('hidden'));
  await write('.p.yaml.swp', 'garbage: [');
  const s = await started({ pollMs: 30 });
  const n = changes;
  await write('.tmp-123.yaml', 'half: [');
  await write('sub/.edit.yaml', 'half: [');
  await sleep(300);
  expect(changes).toBe(n);
  expect(names(s.snapshot())).toEqual([]);
  expect(s.problems()).toEqual([]);
  // An editor's atomic save: write a hidden temporary, then rename it over the real name.
  await write('.p.yaml.tmp', policy('p'));
  await fs.rename(path.join(dir, '.p.yaml.tmp'), path.join(dir, 'p.yaml'));
  await waitFor(() => names(s.snapshot()).includes('p'));
  expect(s.problems()).toEqual([]);
});

test('symlinks to files are followed; a deleted and re-created file gets new keys', async () => {
  await write('real/p.txt', policy('linked'));
  await fs.symlink(path.join(dir, 'real/p.txt'), path.join(dir, 'link.yaml'));
  await write('q.yaml', policy('q'));
  const s = await started({ pollMs: 30 });
  expect(names(s.snapshot())).toEqual(['linked', 'q']);
  const key = s.snapshot().policies.find((o) => o.origin.endsWith('q.yaml'))!.key;
  await fs.rm(path.join(dir, 'q.yaml'));
  await waitFor(() => names(s.snapshot()).length === 1);
  await write('q.yaml', policy('q'));
  await waitFor(() => names(s.snapshot()).length === 2);
  expect(s.snapshot().policies.find((o) => o.origin.endsWith('q.yaml'))!.key).not.toBe(key);
});

test('polling alone picks up changes when the watcher is off', async () => {
  const pollMs = 200;
  const s = await started({ watch: false, pollMs });
  await sleep(50);
  const t0 = Date.now();
  await write('late/p.yaml', policy('p'));
  await waitFor(() => names(s.snapshot()).includes('p'), pollMs + 3000);
  expect(Date.now() - t0).toBeLessThan(pollMs + 3000);
  expect(changes).toBe(2); // the first scan, then the new file
  expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
});

test('a vanished directory keeps the last objects, unsynced, and recovers', async () => {
  await write('p.yaml', policy('p'));
  const s = await started({ pollMs: 30 });
  const before = s.snapshot().policies;
  await fs.rm(dir, { recursive: true });
  await waitFor(() => !s.snapshot().synced);
  expect(s.snapshot().policies).toEqual(before);
  expect(s.problems()).toEqual([{ origin: dir, error: expect.stringContaining(dir) }]);
  expect(s.health()[0]).toMatchObject({ synced: false, lastError: expect.stringContaining('ENOENT') });

  await write('q.yaml', policy('q'));
  await waitFor(() => s.snapshot().synced && names(s.snapshot()).join() === 'q');
  expect(s.problems()).toEqual([]);
  await write('r.yaml', policy('r'));
  await waitFor(() => names(s.snapshot()).includes('r'), 1000);
});

test('stop ends watching and polling', async () => {
  const s = await started({ pollMs: 20 });
  await s.stop();
  const n = changes;
  await write('p.yaml', policy('p'));
  await sleep(200);
  expect(changes).toBe(n);
  expect(names(s.snapshot())).toEqual([]);
});
