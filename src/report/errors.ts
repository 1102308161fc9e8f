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
