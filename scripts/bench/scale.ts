/**
 * Benchmark 10 (issue #14): scale to 100,000 policies. For 100 … 100,000 generated policies (the same
 * seeded sequence as offline.ts, plus the one test policy) written as `List` JSON files of 5,000
 * policies: the CLI's `render -f DIR` in a child process (wall time, CPU, peak RSS), the text's size
 * and map elements, and its `nft -f` first load into an empty namespace (wall time, nft's user and
 * system CPU, nft's peak RSS); growth between consecutive sizes. At 100,000 the table is loaded into
 * the lab: the test policy's traffic passes, traffic no policy allows is dropped, and the cost of a
 * new connection is compared with the ruleset holding only the test policy.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exec } from '../../src/nft/runner';
import { EXAMPLES, ROOT } from '../../test/helpers';
import { Lab, tcp } from '../../test/lab/lab';
import { generatePolicies } from './generate';
import { Load, TARGET, TIME_FILE, inFreshNamespace, line, ms, nftLoad, render } from './offline';

/** FWA_SCALE_SIZES=100,1000 for a quick try; the lab part runs at the largest size. */
const SIZES = (process.env.FWA_SCALE_SIZES ?? '100,1000,10000,30000,100000').split(',').map(Number);
const PER_FILE = 5000;
/** The CLI as compiled with the benchmarks (same sources as the in-process figures). */
const CLI = path.join(ROOT, 'build', 'bench', 'src', 'cli.js');
const LOAD_LIMIT_MS = 5 * 60_000;
const GIB_KIB = 1024 * 1024;

interface Child {
  ms: number;
  userS: number;
  sysS: number;
  rssKiB: number;
  code: number;
  stderr: string;
}

/** Runs argv under /usr/bin/time with stdout into `outFile`; bounded by `timeoutMs`. */
function timedChild(argv: string[], outFile: string, timeoutMs: number): Promise<Child> {
  const timeFile = `${outFile}.time`;
  const out = openSync(outFile, 'w');
  const t = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-o', timeFile, '-f', '%U %S %M', ...argv], { stdio: ['ignore', out, 'pipe'] });
    const err: Buffer[] = [];
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      closeSync(out);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      closeSync(out);
      const wall = ms(t);
      let user = NaN;
      let sys = NaN;
      let rss = NaN;
      try {
        [user, sys, rss] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(/\s+/).map(Number) as [number, number, number];
      } catch {
        // killed before /usr/bin/time wrote its line
      }
      resolve({ ms: wall, userS: user, sysS: sys, rssKiB: rss, code: code ?? 137, stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** The landscape as an operator would hand it to the CLI: the Firewall, then Lists of 5,000 policies. */
function writeInput(dir: string, policies: readonly object[]): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(EXAMPLES, 'baseline', 'firewall.yaml'), path.join(dir, 'firewall.yaml'));
  for (let i = 0; i * PER_FILE < policies.length; i++) {
    const items = policies.slice(i * PER_FILE, (i + 1) * PER_FILE);
    writeFileSync(path.join(dir, `policies-${String(i).padStart(3, '0')}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  }
  writeFileSync(path.join(dir, 'target.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [TARGET] }));
}

interface Row {
  n: number;
  compile: Child;
  bytes: number;
  elements: number;
  load?: Load;
  loadError?: string;
}

function mib(kib: number): string {
  return `${(kib / 1024).toFixed(0)} MiB`;
}

function cpu(c: { userS: number; sysS: number }): string {
  return `user ${c.userS.toFixed(1)} s, sys ${c.sysS.toFixed(1)} s`;
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

async function labAtTop(file: string, n: number): Promise<{ enforced: boolean; ratio?: number }> {
  const lab = await Lab.create();
  try {
    const pass = tcp('203.0.113.10', 9000, { timeoutMs: 2000 });
    // Served in the internet namespace but allowed by no policy (and not by the Firewall's own rules).
    const blocked = [tcp('203.0.113.20', 9000, { timeoutMs: 1000 }), tcp('203.0.113.30', 9000, { timeoutMs: 1000 })];
    // Control: with no table at all, all three connect; a refusal later is the ruleset's doing.
    const control = await lab.reachable('worker', [pass, ...blocked]);
    if (control.some((ok) => !ok)) throw new Error(`lab control without a table failed: ${JSON.stringify(control)}`);

    const count = 1500;
    const small = render([TARGET]).text;
    const probe = async (name: string): Promise<number> => {
      const [r] = await lab.probe('worker', [tcp('203.0.113.10', 9000, { loop: { count }, timeoutMs: 2000 })]);
      if (!r!.ok) throw new Error(`${name}: ${r!.failed} connections failed`);
      return r!.ms!;
    };
    const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 2000));
    const smallTimes: number[] = [];
    await lab.apply(small);
    await settle();
    for (let i = 0; i < 3; i++) smallTimes.push(await probe('one policy'));

    // The 100,000-policy table replaces the small one (the same add/delete/create transaction).
    const load = await nftLoad(lab.ns.fw, { file }, LOAD_LIMIT_MS + 60_000);
    const chains = await exec(['ip', 'netns', 'exec', lab.ns.fw, 'nft', '-t', 'list', 'table', 'inet', 'firewall'], undefined, 300_000);
    const policyChains = (chains.stdout.match(/^\s*chain cwnp-e-/gm) ?? []).length;
    const [passed, ...rest] = await lab.reachable('worker', [pass, ...blocked]);
    const enforced = passed === true && rest.every((ok) => !ok);
    line(
      `10. enforced at ${fmt(n)} policies (lab)`,
      `test policy ${passed ? 'passes' : 'BLOCKED'}, ${rest.filter((ok) => !ok).length}/${rest.length} unallowed connections dropped (all ${rest.length} connect without a table); ${fmt(policyChains)} egress policy chains in the kernel; load into the lab ${(load.ms / 1000).toFixed(1)} s`,
      'test policy passes, others dropped',
      enforced,
    );
    const bigTimes: number[] = [];
    await settle();
    for (let i = 0; i < 6; i++) bigTimes.push(await probe(`${fmt(n)} policies`));

    // Back to the one-policy table; the big one is freed in the background, so wait before measuring.
    const back = await nftLoad(lab.ns.fw, { text: small }, LOAD_LIMIT_MS);
    await settle();
    for (let i = 0; i < 3; i++) smallTimes.push(await probe('one policy, after'));
    const base = Math.min(...smallTimes);
    const big = Math.min(...bigTimes);
    const ratio = big / base;
    const us = (t: number): string => `${((t * 1000) / count).toFixed(0)} us`;
    line(
      `10. new connection, ${fmt(n)} policies vs only the test policy`,
      `${us(big)} vs ${us(base)} per connection = ${ratio.toFixed(3)}x (best of 6 runs vs best of 3 before and 3 after; ${count} connections each; back to one policy: ${(back.ms / 1000).toFixed(1)} s)`,
      '<= 1.05x',
      ratio <= 1.05,
    );
    return { enforced, ratio };
  } finally {
    await lab.destroy();
  }
}

async function main(): Promise<void> {
  const started = process.hrtime.bigint();
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespaces, nft)');
  const all = generatePolicies(SIZES[SIZES.length - 1]!);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'fwa-scale-'));
  const rows: Row[] = [];
  let labResult: { enforced: boolean; ratio?: number } | undefined;
  let labSkipped: string | undefined;
  try {
    console.log(`# scale: the CLI's render -f DIR (Firewall + Lists of ${fmt(PER_FILE)} policies + the test policy) in a child; nft -f FILE in a fresh namespace`);
    for (const n of SIZES) {
      const dir = path.join(tmp, `in-${n}`);
      writeInput(dir, all.slice(0, n));
      const file = path.join(tmp, `table-${n}.nft`);
      const compile = await timedChild([process.execPath, CLI, 'render', '-f', dir], file, 10 * 60_000);
      rmSync(dir, { recursive: true, force: true });
      if (compile.code !== 0) throw new Error(`render of ${n} policies failed (${compile.code}): ${compile.stderr.trim().split('\n').slice(-5).join(' | ')}`);
      const text = readFileSync(file, 'utf8');
      const row: Row = { n, compile, bytes: statSync(file).size, elements: (text.match(/: goto /g) ?? []).length };
      try {
        row.load = await inFreshNamespace((ns) => nftLoad(ns, { file }, LOAD_LIMIT_MS));
      } catch (e) {
        row.loadError = (e as Error).message.slice(0, 200);
      }
      rows.push(row);
      const loadText = row.load
        ? `nft -f ${(row.load.ms / 1000).toFixed(2)} s (${cpu(row.load)}, nft RSS ${mib(row.load.rssKiB)})`
        : `nft -f FAILED or over ${LOAD_LIMIT_MS / 60_000} min: ${row.loadError}`;
      line(
        `10. ${fmt(n)} policies`,
        `CLI render ${(compile.ms / 1000).toFixed(2)} s (${cpu(compile)}), RSS ${mib(compile.rssKiB)}; ${(row.bytes / 1e6).toFixed(1)} MB, ${fmt(row.elements)} map elements; ${loadText}`,
      );
      if (n === SIZES[SIZES.length - 1]) {
        if (!row.load) labSkipped = `the load failed or took over ${LOAD_LIMIT_MS / 60_000} min`;
        else if (row.load.ms > LOAD_LIMIT_MS) labSkipped = `the load took ${(row.load.ms / 60_000).toFixed(1)} min, over the ${LOAD_LIMIT_MS / 60_000} min budget`;
        else labResult = await labAtTop(file, n);
      }
      rmSync(file, { force: true });
      rmSync(`${file}.time`, { force: true });
    }
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1]!;
      const b = rows[i]!;
      const g = (x: number, y: number): string => `${(y / x).toFixed(1)}x`;
      const load = a.load && b.load ? g(a.load.ms, b.load.ms) : 'n/a';
      line(
        `10. growth ${fmt(a.n)} -> ${fmt(b.n)} (${g(a.n, b.n)} policies)`,
        `render ${g(a.compile.ms, b.compile.ms)}, RSS ${g(a.compile.rssKiB, b.compile.rssKiB)}, nft -f ${load}, text ${g(a.bytes, b.bytes)}, elements ${g(a.elements, b.elements)}`,
        'close to the policies',
      );
    }
    if (labSkipped) line(`10. ${fmt(rows[rows.length - 1]!.n)} policies in the lab`, `skipped: ${labSkipped}`);
    const top = rows[rows.length - 1]!;
    const rssOk = top.compile.rssKiB < GIB_KIB;
    const ok = rssOk && top.load !== undefined && labResult?.enforced === true;
    line(
      `10. ${fmt(top.n)} policies: compiles, loads, enforces`,
      `render RSS ${mib(top.compile.rssKiB)}${rssOk ? '' : ' (over 1 GiB)'}, ${top.load ? `loaded in ${(top.load.ms / 1000).toFixed(1)} s (nft RSS ${mib(top.load.rssKiB)})` : 'NOT loaded'}, ${labResult ? (labResult.enforced ? 'enforced' : 'NOT enforced') : 'lab skipped'}`,
      'all three, render RSS < 1 GiB',
      ok,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(TIME_FILE, { force: true });
  }
  console.log(`# scale.js took ${(ms(started) / 1000).toFixed(0)} s`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
