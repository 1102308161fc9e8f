/**
 * Raw-object helpers: the differences are read from the objects as written (the parsed model
 * normalises exactly what we need to compare, e.g. the case of names), and must cope with
 * objects the parser rejects.
 */
import { Prefix, formatRange, parsePrefix } from '../model/address';
import { Obj } from '../model/fields';
import { RangeSet, subtract } from '../model/rangeset';

export function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

export function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

export function missingOrEmpty(v: unknown): string {
  return present(v) ? 'is empty' : 'is missing';
}

export function show(v: unknown): string {
  const s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}

export function prefixOf(v: unknown): Prefix | undefined {
  const p = parsePrefix(v);
  return p.ok ? p.value : undefined;
}

export function rangesText(s: RangeSet): string {
  return s.map(formatRange).join(', ');
}

export function intersect(a: RangeSet, b: RangeSet): RangeSet {
  return subtract(a, subtract(a, b));
}
