/**
 * What a daemon's compiles keep per policy result object (unchanged while its resourceVersion is):
 * its report parts and, once deployed, its policy entry. Finding them costs no hash lookup where
 * the inputs line up with the last ones, and the names of all inputs are counted across compiles,
 * so the first-of-a-name check needs no set of 30,000 names while no name is there twice.
 */
import { PolicyResult } from '../model/cwnp';
import type { PolicyEntry } from './deployed';
import { PolicyReportParts, reportParts } from './reports';

export interface InputEntry {
  readonly report: PolicyReportParts;
  policy?: PolicyEntry;
  /** The last pass that saw it. */
  pass: number;
  /** Its name is in the counts (it was among the last inputs). */
  counted: boolean;
}

/** Entries for one compile without a cache: nothing kept, names checked with a set. */
export function freshEntries(inputs: readonly PolicyResult[]): { entries: InputEntry[]; duplicates: boolean } {
  return { entries: inputs.map((res) => ({ report: reportParts(res), pass: 0, counted: false })), duplicates: true };
}

export class InputIndex {
  private readonly entries = new WeakMap<PolicyResult, InputEntry>();
  private lastInputs: readonly PolicyResult[] = [];
  private lastEntries: readonly InputEntry[] = [];
  private passes = 0;
  /** Inputs per name (ok results only), and how many names have more than one. */
  private readonly names = new Map<string, number>();
  private shared = 0;

  /** The entry of each input, and whether some name may be there twice (the first one wins). */
  entriesOf(inputs: readonly PolicyResult[]): { entries: InputEntry[]; duplicates: boolean } {
    const pass = ++this.passes;
    const entries = this.lookup(inputs);
    let repeated = false;
    for (const e of entries) {
      if (e.pass === pass) repeated = true; // the very same object twice
      e.pass = pass;
      if (!e.counted && e.report.common) this.count(e, 1);
    }
    for (const e of this.lastEntries) if (e.counted && e.pass !== pass) this.count(e, -1);
    this.lastInputs = inputs.slice();
    this.lastEntries = entries;
    return { entries, duplicates: repeated || this.shared > 0 };
  }

  private count(e: InputEntry, by: 1 | -1): void {
    const n = this.names.get(e.report.key) ?? 0;
    if (n + by === 0) this.names.delete(e.report.key);
    else this.names.set(e.report.key, n + by);
    if (n === 1 && by === 1) this.shared++;
    if (n === 2 && by === -1) this.shared--;
    e.counted = by === 1;
  }

  /**
   * Where the inputs line up with the last ones (the same objects in the same order, a few
   * inserted, replaced or left out) the last entries are taken by position; the rest are looked up.
   */
  private lookup(inputs: readonly PolicyResult[]): InputEntry[] {
    const last = this.lastInputs;
    const out = new Array<InputEntry>(inputs.length);
    let i = 0;
    for (let j = 0; j < inputs.length; j++) {
      const res = inputs[j]!;
      if (last[i] === res) {
        out[j] = this.lastEntries[i++]!;
        continue;
      }
      if (last[i + 1] === res) {
        out[j] = this.lastEntries[i + 1]!;
        i += 2;
        continue;
      }
      let e = this.entries.get(res);
      if (!e) this.entries.set(res, (e = { report: reportParts(res), pass: 0, counted: false }));
      out[j] = e;
      if (inputs[j + 1] !== last[i]) i++; // replaced rather than inserted
    }
    return out;
  }
}
