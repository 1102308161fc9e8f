/**
 * Reading untyped Kubernetes objects field by field, collecting every problem with its field path
 * (`egress[0].ports[1].endPort`) instead of stopping at the first.
 */

export interface Problem {
  readonly path: string;
  readonly message: string;
}

export function formatProblem(p: Problem): string {
  return p.path ? `${p.path} ${p.message}` : p.message;
}

export type Obj = Record<string, unknown>;

export class Reader {
  readonly problems: Problem[] = [];

  fail(path: string, message: string): void {
    this.problems.push({ path, message });
  }

  get ok(): boolean {
    return this.problems.length === 0;
  }

  /** An object, or undefined when missing/null. `known` lists allowed keys; others are errors. */
  /**
   * A list item that must be an object: an empty item (YAML's `-` with nothing after it) is an
   * error, never an empty object, which would mean "everything" for a rule.
   */
  item(value: unknown, path: string, known?: readonly string[]): Obj | undefined {
    if (value === undefined || value === null) {
      this.fail(path, 'is empty; a list item must be an object');
      return undefined;
    }
    return this.object(value, path, known);
  }

  object(value: unknown, path: string, known?: readonly string[]): Obj | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.fail(path, 'must be an object');
      return undefined;
    }
    const obj = value as Obj;
    if (known) {
      // for-in, not Object.keys: this runs for every object of every policy.
      for (const key in obj) {
        if (Object.hasOwn(obj, key) && !known.includes(key)) this.fail(join(path, safeKey(key)), 'is not a known field');
      }
    }
    return obj;
  }

  /** An array, or [] when missing/null. */
  array(value: unknown, path: string): unknown[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.fail(path, 'must be a list');
      return [];
    }
    return value;
  }

  string(value: unknown, path: string, maxLength = 1024): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') {
      this.fail(path, 'must be a string');
      return undefined;
    }
    if (value.length > maxLength) {
      this.fail(path, `is longer than ${maxLength} characters`);
      return undefined;
    }
    return value;
  }

  boolean(value: unknown, path: string): boolean | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') {
      this.fail(path, 'must be true or false');
      return undefined;
    }
    return value;
  }

  integer(value: unknown, path: string, min: number, max: number): number | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      this.fail(path, 'must be a whole number');
      return undefined;
    }
    if (value < min || value > max) {
      this.fail(path, `${value} is outside ${min}..${max}`);
      return undefined;
    }
    return value;
  }
}

export function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

export function index(path: string, i: number): string {
  return `${path}[${i}]`;
}

/** Field names from input end up in messages only; keep them printable and short. */
export function safeKey(key: string): string {
  const cleaned = key.replace(/[^A-Za-z0-9_.-]/g, '?');
  return cleaned.length > 40 ? `${cleaned.slice(0, 40)}…` : cleaned;
}

/** Shortened, quoted rendering of an input value for messages. */
export function quote(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}
