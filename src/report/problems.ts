/**
 * What is wrong now, per source, and since when: `/status` and `firewall-agent status` show it so
 * an operator sees why the agent is stuck without reading the journal. A problem's start is kept
 * while the same error lasts; a changed error starts anew.
 */

export interface Problem {
  readonly source: string;
  readonly error: string;
  /** ISO time the agent first saw this error from this source. */
  readonly since: string;
}

export class Problems {
  private since = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The current problems given every source's current error (undefined: fine). */
  update(current: readonly (readonly [source: string, error: string | undefined])[]): Problem[] {
    const seen = new Map<string, number>();
    const out: Problem[] = [];
    for (const [source, error] of current) {
      if (!error) continue;
      const key = `${source}\0${error}`;
      const since = this.since.get(key) ?? this.now();
      seen.set(key, since);
      out.push({ source, error, since: new Date(since).toISOString() });
    }
    this.since = seen;
    return out;
  }
}
