/**
 * JSON lines to stdout (journald keeps them); one object per event, with a level and a time.
 *
 * Under systemd (stdout connected to the journal, `JOURNAL_STREAM` set) each line starts with its
 * syslog priority (`<3>` error … `<7>` debug), which journald strips and stores, so
 * `journalctl -p warning` works. A line about a problem (one with an `error` field) that repeats
 * unchanged is written once and then at most once a minute while it lasts, with the count of
 * repeats in between: a retry every 2 s does not bury the journal.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** syslog priorities: err 3, warning 4, info 6, debug 7. */
const PRIORITY: Record<Level, number> = { error: 3, warn: 4, info: 6, debug: 7 };
export const REPEAT_MS = 60_000;

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
}

/** Errors become their message, and their code (ENOENT, EACCES, …) when they have one. */
function errorFields(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Error || (typeof v === 'object' && v !== null && 'message' in v && typeof (v as Error).message === 'string')) {
      const e = v as Error & { code?: unknown };
      out[k] = e.message;
      if (typeof e.code === 'string' || typeof e.code === 'number') out[`${k}Code`] = e.code;
    } else out[k] = v;
  }
  return out;
}

export interface LoggerOptions {
  /** Prefix syslog priorities (default: when stdout goes to the journal). */
  readonly priorities?: boolean;
  readonly now?: () => number;
}

export function jsonLogger(write: (line: string) => void = (l) => process.stdout.write(l), min: Level = 'info', base: Fields = {}, opts: LoggerOptions = {}): Logger {
  const priorities = opts.priorities ?? process.env.JOURNAL_STREAM !== undefined;
  const now = opts.now ?? Date.now;
  const repeats = new Map<string, { at: number; suppressed: number }>();
  const make = (fields0: Fields): Logger => {
    const emit = (level: Level, msg: string, fields?: Fields): void => {
      if (ORDER[level] < ORDER[min]) return;
      const f = errorFields({ ...fields0, ...(fields ?? {}) });
      let repeated: number | undefined;
      if (f.error !== undefined) {
        const key = `${level}\0${msg}\0${String(f.error)}`;
        const seen = repeats.get(key);
        const t = now();
        if (seen && t - seen.at < REPEAT_MS) {
          seen.suppressed++;
          return;
        }
        repeated = seen?.suppressed || undefined;
        repeats.set(key, { at: t, suppressed: 0 });
        if (repeats.size > 1000) repeats.delete(repeats.keys().next().value!);
      }
      const line = JSON.stringify({ time: new Date(now()).toISOString(), level, msg, ...f, ...(repeated ? { repeated } : {}) });
      write(`${priorities ? `<${PRIORITY[level]}>` : ''}${line}\n`);
    };
    return {
      debug: (m, f) => emit('debug', m, f),
      info: (m, f) => emit('info', m, f),
      warn: (m, f) => emit('warn', m, f),
      error: (m, f) => emit('error', m, f),
      child: (f) => make({ ...fields0, ...f }),
    };
  };
  return make(base);
}
