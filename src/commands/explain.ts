/**
 * `firewall-agent explain -f PATH… --from ADDR --to ADDR --port PORT/PROTO`: allowed or dropped,
 * and why (src/explain.ts), for the ruleset `render` would print for the same input.
 * Exit codes: 0 allowed, 1 dropped, 2 unusable input (bad address, port, option or file).
 */
import { Command } from 'commander';
import { buildInput, compileLandscape, loadSnapshot } from '../landscape';
import { MODES, Mode, STATES, State, isMode, isState } from '../compile/mode';
import { DIRECTIONS, DirectionOption, ExplainSource, explain, explanationJson, formatExplanation, parsePacket } from '../explain';
import { Obj } from '../model/fields';
import { InputError } from '../sources/files';
import { collect } from './options';

export const EXPLAIN_ALLOWED = 0;
export const EXPLAIN_DROPPED = 1;
export const EXPLAIN_BAD_INPUT = 2;

export interface ExplainCommandOptions {
  file: string[];
  from?: string;
  to?: string;
  port?: string;
  state: string;
  mode?: string;
  direction: string;
  json?: boolean;
}

/**
 * Reads the input as `render -f` does (landscape.ts: files → snapshot → compile input) and keeps
 * the raw objects beside the parse results, so explain can tell what a rejected object would have
 * matched. InputError when the input is unusable.
 */
export async function loadExplainSource(paths: readonly string[], state: State, mode: Mode | undefined): Promise<{ source: ExplainSource; notes: readonly string[] }> {
  const snapshot = await loadSnapshot(paths, state);
  const built = buildInput(snapshot, { state, mode });
  if (!built.ok) throw new InputError(built.message);
  const landscape = { input: built.input, notes: built.notes };
  const raw: { policies: Obj[]; services: Obj[] } = {
    policies: snapshot.policies.map((o) => o.object),
    services: snapshot.services.map((o) => o.object),
  };
  // The daemon's ruleset, as `render` prints it (DNS interception included).
  const compiled = landscape.input.firewall || state === 'disconnected' ? compileLandscape(landscape) : undefined;
  return { source: { input: built.input, raw, compiled }, notes: built.notes };
}

/** The whole command: options in, text out, an exit code back. Never throws for bad input. */
export async function runExplain(opts: ExplainCommandOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const bad = (line: string): number => {
    err(`error: explain: ${line}\n`);
    return EXPLAIN_BAD_INPUT;
  };
  const missing = (['from', 'to', 'port'] as const).filter((k) => !opts[k]);
  if (missing.length > 0) return bad(`missing ${missing.map((k) => `--${k}`).join(', ')} (usage: explain -f PATH --from ADDR --to ADDR --port PORT/PROTO)`);
  if (!isState(opts.state)) return bad(`--state ${JSON.stringify(opts.state)} must be one of ${STATES.join(', ')}`);
  if (opts.mode !== undefined && !isMode(opts.mode)) return bad(`--mode ${JSON.stringify(opts.mode)} must be one of ${MODES.join(', ')}`);
  if (!(DIRECTIONS as readonly string[]).includes(opts.direction)) return bad(`--direction ${JSON.stringify(opts.direction)} must be one of ${DIRECTIONS.join(', ')}`);
  const packet = parsePacket(opts.from!, opts.to!, opts.port!);
  if (!packet.ok) return bad(packet.error);
  let loaded;
  try {
    loaded = await loadExplainSource(opts.file, opts.state, opts.mode as Mode | undefined);
  } catch (e) {
    if (e instanceof InputError) return bad(e.message);
    throw e;
  }
  for (const n of loaded.notes) err(`note: ${n}\n`);
  const e = explain(loaded.source, packet.value, { direction: opts.direction as DirectionOption });
  out(opts.json ? `${JSON.stringify(explanationJson(e), null, 2)}\n` : formatExplanation(e));
  return e.verdict === 'allowed' ? EXPLAIN_ALLOWED : EXPLAIN_DROPPED;
}

/** Adds `explain` to the program; sets process.exitCode (0 allowed, 1 dropped, 2 unusable input). */
export function registerExplain(prog: Command): void {
  prog
    .command('explain')
    .description('would a new connection be allowed or dropped, and why (from the compiled model, no kernel); exit 0 allowed, 1 dropped, 2 bad input')
    .option('-f, --file <path>', 'Kubernetes YAML/JSON file or directory (repeatable)', collect, [])
    .option('--from <address>', 'source address (IPv4 or IPv6)')
    .option('--to <address>', 'destination address (same family)')
    .option('--port <port/proto>', 'destination port and protocol: 443/tcp, 53/udp (a bare port is TCP), or icmp (echo request)')
    .option('--state <state>', `${STATES.join(' or ')}`, 'connected')
    .option('--mode <mode>', `${MODES.join(', ')}; inferred from the Firewall when not given`)
    .option('--direction <direction>', 'auto (from the node network prefixes and LoadBalancer IPs), egress (arrives from the node network) or ingress (leaves towards it)', 'auto')
    .option('--json', 'print the explanation as JSON')
    .action(async (opts: ExplainCommandOptions) => {
      try {
        process.exitCode = await runExplain(
          opts,
          (s) => process.stdout.write(s),
          (s) => process.stderr.write(s),
        );
      } catch (e) {
        process.stderr.write(`error: explain: ${(e as Error).message}\n`);
        process.exitCode = EXPLAIN_BAD_INPUT;
      }
    });
}
