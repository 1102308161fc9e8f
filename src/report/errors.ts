/** An error as one readable line, whatever threw it (fetch wraps its cause, Kubernetes errors are objects). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    // fetch wraps the reason ("fetch failed" ← connect ECONNREFUSED 127.0.0.1:443)
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error && cause.message !== err.message ? `${err.message}: ${cause.message}` : err.message;
  }
  if (err && typeof err === 'object') {
    const o = err as Record<string, unknown>;
    if (typeof o.message === 'string') return o.message;
    if (typeof o.code === 'number') return `code ${o.code}`;
  }
  return String(err);
}

/**
 * The environment cannot do what was asked (a missing binary, missing privileges, user namespaces
 * disabled), as opposed to unusable input. `hint` is one short sentence saying what would help.
 * The CLI exits 3 on it.
 */
export class EnvironmentError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** Several lines (a tool's stderr, a wrapped message) as one: lines joined with " | ", blanks dropped. */
export function oneLine(text: string, maxLength = 600): string {
  const joined = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' | ');
  return joined.length > maxLength ? `${joined.slice(0, maxLength)}…` : joined;
}
