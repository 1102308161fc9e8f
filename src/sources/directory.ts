/**
 * The daemon's input for standalone firewalls: a directory tree of the same YAML/JSON that
 * `render -f` reads, kept current by inotify (fs.watch) with polling as a safety net. Each file
 * keeps its last good parse, so a half-written or broken file never removes what it held before;
 * it is reported as a problem until fixed.
 */
import { createHash } from 'node:crypto';
import { FSWatcher, Stats, promises as fs, watch } from 'node:fs';
import path from 'node:path';
import { Logger } from '../report/log';
import { InputError, SourceObject, flatten, parseDocuments, MAX_FILE_BYTES } from './files';
import { InputProblem, Snapshot, SnapshotObject, Source, SourceHealth, snapshotOf } from './source';

export interface DirectorySourceOptions {
  readonly dir: string;
  readonly log: Logger;
  /** Rescan interval; catches what inotify misses (directories created later, network filesystems). */
  readonly pollMs?: number;
  /** Use fs.watch for fast reaction (default true); off, only polling notices changes. */
  readonly watch?: boolean;
  /** A changed file is read once it has been left alone this long (default 100). */
  readonly settleMs?: number;
}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
/** Editors and `kubectl cp` write in bursts: one rescan shortly after the first event covers them. */
const COALESCE_MS = 40;

interface FileState {
  /** Size, times and inode at the last read: unchanged means not read again (ctime, so a chmod retries an unreadable file). */
  sig: string;
  /** Hash of the last good text: a touch or a rewrite with the same content changes nothing. */
  hash: string | undefined;
  objects: readonly SnapshotObject[];
  notes: readonly string[];
  /** Why the current content is not used (parse error, too large, unreadable). */
  error: string | undefined;
}

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? String(e);
const sigOf = (st: Stats): string => `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;

export class DirectorySource implements Source {
  readonly kind = 'files';
  private readonly dir: string;
  private readonly log: Logger;
  private readonly pollMs: number;
  private readonly useWatch: boolean;
  private readonly settleMs: number;

  private files = new Map<string, FileState>();
  /** Directories below DIR that could not be listed: their files are kept as they were. */
  private dirErrors = new Map<string, string>();
  /** DIR itself is missing or not a directory (after start). */
  private rootError: string | undefined;
  private scanned = false;
  private lastSyncAt: number | undefined;
  /** Source-wide, so a file deleted and created again never reuses a key a cache may still hold. */
  private reads = 0;
  private current: Snapshot = snapshotOf([], false);
  private currentProblems: readonly InputProblem[] = [];

  private onChange: () => void = () => {};
  private watcher: FSWatcher | undefined;
  private watchWarned = false;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  private scanning: Promise<void> | undefined;
  private rescanAfter = false;
  private stopped = false;

  constructor(opts: DirectorySourceOptions) {
    this.dir = opts.dir;
    this.log = opts.log;
    this.pollMs = opts.pollMs ?? 1000;
    this.useWatch = opts.watch ?? true;
    this.settleMs = opts.settleMs ?? 100;
  }

  async start(onChange: () => void): Promise<void> {
    let st: Stats;
    try {
      st = await fs.stat(this.dir);
    } catch (e) {
      throw new InputError(`${this.dir}: cannot read (${errCode(e)})`);
    }
    if (!st.isDirectory()) throw new InputError(`${this.dir}: not a directory`);
    this.onChange = onChange;
    this.stopped = false;
    // Watch before the first scan, so a change made during it causes another scan.
    this.startWatcher();
    await this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.closeWatcher();
    await this.scanning;
  }

  snapshot(): Snapshot {
    return this.current;
  }

  problems(): readonly InputProblem[] {
    return this.currentProblems;
  }

  health(): readonly SourceHealth[] {
    const p = this.currentProblems;
    const lastError = p.length === 0 ? undefined : `${p[0]!.error}${p.length > 1 ? ` (and ${p.length - 1} more problems)` : ''}`;
    return [{ name: `files:${this.dir}`, synced: this.current.synced, lastSyncAt: this.lastSyncAt, lastError, restarts: 0 }];
  }

  private startWatcher(): void {
    if (!this.useWatch || this.stopped) return;
    this.closeWatcher();
    const fallBack = (e: unknown): void => {
      if (!this.watchWarned) this.log.warn('cannot watch the input directory; relying on polling', { dir: this.dir, pollMs: this.pollMs, error: errCode(e) });
      this.watchWarned = true;
      this.closeWatcher();
    };
    try {
      this.watcher = watch(this.dir, { recursive: true }, () => this.wake(COALESCE_MS));
      this.watcher.on('error', fallBack);
    } catch (e) {
      fallBack(e);
    }
  }

  private closeWatcher(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  /** Schedules a rescan in `delayMs` unless one is already due sooner. */
  private wake(delayMs: number): void {
    if (this.stopped) return;
    const due = Date.now() + delayMs;
    if (this.timer !== undefined && this.timerDue <= due) return;
    clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, delayMs);
  }

  /** One rescan at a time: a request during a scan is remembered and served right after it. */
  private run(): Promise<void> {
    if (this.scanning) {
      this.rescanAfter = true;
      return this.scanning;
    }
    this.scanning = this.loop();
    return this.scanning;
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.rescanAfter = false;
        try {
          if ((await this.rescan()) && !this.stopped) this.onChange();
        } catch (e) {
          this.log.error('scanning the input directory failed', { dir: this.dir, error: e as Error });
        }
      } while (this.rescanAfter && !this.stopped);
    } finally {
      this.scanning = undefined;
      this.wake(this.pollMs);
    }
  }

  /** Brings the state up to date; true when the snapshot or the problems changed. */
  private async rescan(): Promise<boolean> {
    let changed = !this.scanned;
    const rootError = await fs.stat(this.dir).then(
      (st) => (st.isDirectory() ? undefined : `${this.dir}: not a directory`),
      (e) => `${this.dir}: cannot read (${errCode(e)})`,
    );
    if (rootError !== this.rootError) {
      if (rootError) this.log.error('input directory is gone; keeping the last objects read from it', { dir: this.dir, error: rootError });
      else {
        this.log.info('input directory is back', { dir: this.dir });
        this.startWatcher(); // the old watcher died with the directory
      }
      this.rootError = rootError;
      changed = true;
    }
    if (!rootError) changed = (await this.refresh()) || changed;
    if (changed) this.publish();
    if (!rootError) this.lastSyncAt = Date.now();
    this.scanned = true;
    return changed;
  }

  /** Walks the tree, reads new and changed files, forgets deleted ones. */
  private async refresh(): Promise<boolean> {
    let changed = false;
    const dirErrors = new Map<string, string>();
    const found = await this.walk(this.dir, dirErrors);
    for (const [file, st] of found) changed = (await this.update(file, st)) || changed;
    const next = new Map<string, FileState>();
    for (const file of found.keys()) {
      const state = this.files.get(file);
      if (state) next.set(file, state);
    }
    for (const [file, state] of this.files) {
      if (next.has(file)) continue;
      const under = [...dirErrors.keys()].some((d) => !path.relative(d, file).startsWith('..'));
      if (under) next.set(file, state); // cannot tell whether it still exists: keep it
      else changed = true;
    }
    const newErrors = [...dirErrors].filter(([d, e]) => this.dirErrors.get(d) !== e);
    for (const [d, error] of newErrors) this.log.error('cannot list an input directory; keeping the files read from it', { dir: d, error });
    if (newErrors.length > 0 || dirErrors.size !== this.dirErrors.size) changed = true;
    this.files = next;
    this.dirErrors = dirErrors;
    return changed;
  }

  /**
   * Input files below `dir` in `render -f` order, with their stat. Hidden names are skipped (editor
   * swap files, atomic-rename temporaries, a ConfigMap volume's `..data`); symlinks count when they
   * point at files, never at directories (no loops).
   */
  private async walk(dir: string, dirErrors: Map<string, string>): Promise<Map<string, Stats>> {
    const out = new Map<string, Stats>();
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (e) {
      const code = errCode(e);
      // A subdirectory removed while walking takes its files along; DIR itself never does.
      if (dir === this.dir || (code !== 'ENOENT' && code !== 'ENOTDIR')) dirErrors.set(dir, `${dir}: cannot list (${code})`);
      return out;
    }
    entries = entries.filter((e) => !e.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name));
    const stats = await Promise.all(
      entries.map((e) => (e.isDirectory() || !EXTENSIONS.has(path.extname(e.name).toLowerCase()) ? undefined : fs.stat(path.join(dir, e.name)).catch(() => undefined))),
    );
    for (const [i, e] of entries.entries()) {
      const full = path.join(dir, e.name);
      const st = stats[i];
      if (e.isDirectory()) for (const [f, s] of await this.walk(full, dirErrors)) out.set(f, s);
      else if (st?.isFile()) out.set(full, st); // a dangling link or a vanished file counts as gone
    }
    return out;
  }

  /** Re-reads one file if its stat changed; true when what it contributes changed. */
  private async update(file: string, st: Stats): Promise<boolean> {
    const old = this.files.get(file);
    const sig = sigOf(st);
    if (old && old.sig === sig) return false;
    // Written in place, a file passes through truncated and partial states that often parse (an
    // empty file is valid YAML): read it once it has been left alone for a moment. The first scan
    // reads what is there, so that start() returns the whole picture.
    const age = Date.now() - st.mtimeMs;
    if (this.scanned && age >= 0 && age < this.settleMs) {
      this.wake(this.settleMs - age);
      return false;
    }
    const state: FileState = { ...(old ?? { hash: undefined, objects: [], notes: [], error: undefined }), sig };
    let text: string;
    try {
      if (st.size > MAX_FILE_BYTES) throw new InputError(`${file}: larger than ${MAX_FILE_BYTES} bytes`);
      text = await fs.readFile(file, 'utf8');
      // Still being written (a slow `>` redirect): a YAML prefix often parses, so wait for it to settle.
      if (sigOf(await fs.stat(file)) !== sig) {
        this.wake(COALESCE_MS);
        return false;
      }
    } catch (e) {
      if (errCode(e) === 'ENOENT') return false; // deleted since the walk: the next scan drops it
      this.files.set(file, state);
      return this.setError(file, state, e instanceof InputError ? e.message : `${file}: cannot read (${errCode(e)})`);
    }
    this.files.set(file, state);
    // Same text as the last good read (a touch, an atomic rewrite, a broken file restored): keep
    // the same object instances and keys, so nothing downstream is parsed again.
    const hash = createHash('sha256').update(text).digest('hex');
    if (hash === state.hash) return this.setError(file, state, undefined);
    try {
      const objects: SourceObject[] = [];
      const notes: string[] = [];
      parseDocuments(text, file).forEach((doc) => flatten(doc, file, objects, notes));
      const serial = ++this.reads;
      state.objects = objects.map((o, i) => ({ key: `${file}#${i}@${serial}`, origin: o.origin, object: o.object }));
      state.notes = notes;
      state.hash = hash;
      this.setError(file, state, undefined);
      return true;
    } catch (e) {
      // Not only InputError: the YAML library throws its own errors for alias bombs and the like.
      return this.setError(file, state, e instanceof InputError ? e.message : `${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Records a file's error state, logging only transitions; true when the problem changed. */
  private setError(file: string, state: FileState, error: string | undefined): boolean {
    if (state.error === error) return false;
    if (error) this.log.error(state.hash === undefined ? 'input file does not parse' : 'input file does not parse; keeping its last good objects', { file, error });
    else if (state.error) this.log.info('input file is fine again', { file });
    state.error = error;
    return true;
  }

  private publish(): void {
    const objects: SnapshotObject[] = [];
    const notes: string[] = [];
    const problems: InputProblem[] = [];
    if (this.rootError) problems.push({ origin: this.dir, error: this.rootError });
    for (const [d, error] of this.dirErrors) problems.push({ origin: d, error });
    for (const [file, state] of this.files) {
      objects.push(...state.objects);
      notes.push(...state.notes);
      if (state.error) problems.push({ origin: file, error: state.error });
    }
    this.current = snapshotOf(objects, this.rootError === undefined, notes);
    this.currentProblems = problems;
  }
}
