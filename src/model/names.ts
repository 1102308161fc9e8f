/** Kubernetes object names; validated before they may appear in chain names or comments. */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN_PART = DNS1123_LABEL;

export interface ObjectRef {
  readonly namespace: string;
  readonly name: string;
}

export function formatRef(ref: ObjectRef): string {
  return `${ref.namespace}/${ref.name}`;
}

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  return s.split('.').every((part) => part.length <= 63 && DNS1123_SUBDOMAIN_PART.test(part));
}

/**
 * A printable stand-in for an invalid name, used only in messages: control characters, quotes
 * and anything outside a conservative set become `?`.
 */
export function displayName(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) return '<unnamed>';
  const cleaned = value.replace(/[^A-Za-z0-9_.-]/g, '?');
  return cleaned.length > 80 ? `${cleaned.slice(0, 80)}…` : cleaned;
}
