#!/usr/bin/env node
/**
 * firewall-agent command line: render, check, diff and apply rulesets offline; `run` is the daemon.
 *
 * Exit codes (the README's "Command line" has the table):
 *   0 done; 1 something would not be deployed, nft refused, or (diff) changes are pending;
 *   2 unusable input or a usage error; 3 the environment cannot do it (no nft, no permission).
 * Every error is one line on stderr; `--debug` adds the stack trace.
 *
 * Adding a command: write `registerX(prog: Command)` in src/commands/ and add it to COMMANDS
 * below. A command's action either returns its exit code through `commandAction` (errors it
 * throws are classified by `exitCodeFor`) or sets process.exitCode itself.
 */
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_NOT_DEPLOYED, EXIT_OK } from './commands/exit-codes';
import { parseMode } from './commands/options';
import { Mode } from './compile/mode';
import type { DaemonConfig } from './daemon/config';
import type { NftError } from './nft/runner';
import { EnvironmentError, oneLine } from './report/errors';
import { InputError } from './sources/files';
import { VERSION } from './version';

export { EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_NOT_DEPLOYED, EXIT_OK, commandAction } from './commands/exit-codes';

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

/* eslint-disable @typescript-eslint/no-require-imports -- commands and the daemon's modules load on demand (see COMMANDS) */

/** The nft edge (and child_process): only errors, the daemon and the commands that run nft need it. */
function nftRunner(): typeof import('./nft/runner') {
  return require('./nft/runner') as typeof import('./nft/runner');
}

function registerRun(prog: Command): void {
  const { DEFAULT_METRICS_ADDRESS, DEFAULT_SEED_KUBECONFIG, DEFAULT_STATE_DIR, loadConfig, parseHostPort, parsePublished, parseUpstream } =
    require('./daemon/config') as typeof import('./daemon/config');
  prog
    .command('run')
    .description('the daemon: drop until connected to seed and shoot, then enforce and report')
    .option('--config <file>', 'configuration file (YAML/JSON); flags override it')
    .option('--source-dir <dir>', 'standalone: read the Firewall, policies and Services from files in this directory instead of the clusters')
    .option('--seed-kubeconfig <file>', `seed kubeconfig (default ${DEFAULT_SEED_KUBECONFIG})`)
    .option('--shoot-kubeconfig <file>', "shoot kubeconfig (default: from the Firewall's status.shootAccess)")
    .option('--firewall-name <name>', 'the Firewall to read (default: the hostname)')
    .option('--firewall-namespace <ns>', "seed namespace (default: the seed kubeconfig's current-context)")
    .addOption(new Option('--mode <mode>', 'isolation mode; inferred from the Firewall when not given').argParser(parseMode))
    .option('--netns <name>', 'apply rules in this network namespace')
    .option('--state-dir <dir>', `applied rulesets, last-known-good, boot drop ruleset (default ${DEFAULT_STATE_DIR})`)
    .option('--restore-last-known-good', 'at start, load the last-known-good ruleset instead of dropping until connected')
    .option('--metrics-address <host:port>', `Prometheus /metrics, /healthz, /readyz, /status (default ${DEFAULT_METRICS_ADDRESS}; "" disables)`)
    .option('--dry-run', 'render and check, never change the kernel')
    .addOption(new Option('--log-level <level>', 'debug, info, warn or error (default info)').choices(['debug', 'info', 'warn', 'error']))
    .option('--published-metrics-address <address>', 'where the shoot scrapes metrics: node-network:PORT, host:port or "" (default node-network:9630)')
    .option('--vrf <name>', 'the VRF the agent is started in (ip vrf exec); checked at start')
    .option('--dns-port <port>', 'FQDN policies: the DNS proxy port on the node-network addresses (default 53)')
    .option('--dns-upstream <address>', "FQDN policies: resolver when the Firewall has no dnsServerAddress (default: /etc/resolv.conf's first nameserver)")
    .option('--fqdn-min-ttl <seconds>', 'FQDN policies: shortest time a resolved address stays open (default 60)')
    .option('--fqdn-max-ttl <seconds>', 'FQDN policies: longest time a resolved address stays open after its last answer (default 86400)')
    .action(async (opts: Record<string, string | boolean | undefined>) => {
      let config: DaemonConfig;
      try {
        config = loadConfig(opts.config as string | undefined, {
          seedKubeconfig: opts.seedKubeconfig as string | undefined,
          sourceDir: opts.sourceDir as string | undefined,
          shootKubeconfig: opts.shootKubeconfig as string | undefined,
          firewallName: opts.firewallName as string | undefined,
          firewallNamespace: opts.firewallNamespace as string | undefined,
          mode: opts.mode as Mode | undefined,
          netns: opts.netns as string | undefined,
          stateDir: opts.stateDir as string | undefined,
          restoreLastKnownGood: opts.restoreLastKnownGood === true ? true : undefined,
          metricsAddress: opts.metricsAddress as string | undefined,
          logLevel: opts.logLevel as DaemonConfig['logLevel'] | undefined,
          dryRun: opts.dryRun === true ? true : undefined,
          dnsPort: numberFlag(opts.dnsPort),
          publishedMetricsAddress: opts.publishedMetricsAddress as string | undefined,
          vrf: opts.vrf as string | undefined,
          dnsUpstream: opts.dnsUpstream as string | undefined,
          fqdnMinTtl: numberFlag(opts.fqdnMinTtl),
          fqdnMaxTtl: numberFlag(opts.fqdnMaxTtl),
        });
      } catch (e) {
        // The yaml library appends " at line L, column C:" and an excerpt of the file: keep the position only.
        throw new InputError((e as Error).message.replace(/ at line (\d+), column (\d+):[\s\S]*$/, ' (line $1, column $2)'));
      }
      const { jsonLogger } = require('./report/log') as typeof import('./report/log');
      const { IpRoute } = require('./host/iproute') as typeof import('./host/iproute');
      const { Notifier } = require('./report/notify') as typeof import('./report/notify');
      const log = jsonLogger(undefined, config.logLevel);
      // Loaded here: the daemon pulls in the Kubernetes client, which alone takes most of a second
      // to load, and no other command needs it.
      const { Agent } = require('./daemon/agent') as typeof import('./daemon/agent');
      const agent = new Agent({
        input: config.sourceDir
          ? { sourceDir: config.sourceDir }
          : { cluster: { seedKubeconfig: config.seedKubeconfig, shootKubeconfig: config.shootKubeconfig, firewallNamespace: config.firewallNamespace } },
        firewallName: config.firewallName,
        mode: config.mode,
        dryRun: config.dryRun,
        stateDir: config.stateDir,
        restoreLastKnownGood: config.restoreLastKnownGood,
        nft: new (nftRunner().NftCli)(config.netns ? ['ip', 'netns', 'exec', config.netns] : []),
        log,
        http: config.metricsAddress ? parseHostPort(config.metricsAddress) : undefined,
        publish: config.publishedMetricsAddress ? parsePublished(config.publishedMetricsAddress) : undefined,
        vrf: config.vrf,
        ip: new IpRoute(config.netns ? ['ip', 'netns', 'exec', config.netns] : []),
        notifier: new Notifier(),
        dns: {
          port: config.dnsPort,
          upstream: config.dnsUpstream !== undefined ? parseUpstream(config.dnsUpstream) : systemResolver(),
          limits: { minTtlS: config.fqdnMinTtl, maxTtlS: config.fqdnMaxTtl, maxPerSet: config.fqdnMaxAddresses, maxNames: config.fqdnMaxNames },
        },
      });
      const shutdown = (signal: string): void => {
        log.info('signal received; stopping', { signal });
        void agent.stop().then(() => process.exit(0));
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      try {
        await agent.start();
      } catch (e) {
        // E.g. --source-dir that does not exist: say so in one line, release what started, stop.
        await agent.stop().catch(() => undefined);
        process.exit(reportError(e, debugRequested(process.argv)));
      }
    });
}

/**
 * Every command of the program, in the order `--help` lists them. Each is loaded only when it is
 * registered, and a command line that names one command registers only that one: loading all of
 * them (explain, preflight, the daemon's configuration, …) costs more than rendering a small
 * landscape. New commands: add their `register…(prog)` here.
 */
const COMMANDS: readonly { readonly name: string; readonly register: () => (prog: Command) => void }[] = [
  { name: 'render', register: () => (require('./commands/render') as typeof import('./commands/render')).registerRender },
  { name: 'check', register: () => (require('./commands/render') as typeof import('./commands/render')).registerCheck },
  { name: 'diff', register: () => (require('./commands/render') as typeof import('./commands/render')).registerDiff },
  { name: 'apply', register: () => (require('./commands/render') as typeof import('./commands/render')).registerApply },
  { name: 'status', register: () => (require('./commands/status') as typeof import('./commands/status')).registerStatus },
  { name: 'crds', register: () => (require('./commands/crds') as typeof import('./commands/crds')).registerCrds },
  { name: 'rbac', register: () => (require('./commands/rbac') as typeof import('./commands/rbac')).registerRbac },
  { name: 'explain', register: () => (require('./commands/explain') as typeof import('./commands/explain')).registerExplain },
  { name: 'preflight', register: () => (require('./commands/preflight') as typeof import('./commands/preflight')).registerPreflight },
  { name: 'run', register: () => registerRun },
];

/** The command a command line names: its first word that is not an option (global options take no value). */
function commandName(argv: readonly string[]): string | undefined {
  return argv.slice(2).find((a) => !a.startsWith('-'));
}

/** The program; given the command line, with only the command it names (all of them for help or an unknown command). */
export function program(argv?: readonly string[]): Command {
  const prog = new Command('firewall-agent')
    .description('Compiles ClusterwideNetworkPolicies, Services and the Firewall into one atomic nftables ruleset')
    .version(VERSION)
    .option('--debug', 'print the stack trace of an error')
    // Commander's own errors (unknown option, bad argument) are usage errors: one line, exit 2 (see
    // main). Both settings are inherited by every command added below.
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`${str.split('\n').map((l) => l.trim()).filter(Boolean).join(' ')} (see --help)\n`) });
  const named = argv === undefined ? undefined : COMMANDS.filter((c) => c.name === commandName(argv));
  for (const c of named?.length ? named : COMMANDS) c.register()(prog);
  return prog;
}

function debugRequested(argv: readonly string[]): boolean {
  return argv.slice(2).includes('--debug');
}

/** A file-system or system-call error from Node (`ENOENT: no such file or directory, open '…'`). */
function isErrno(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return e instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

/** The exit code for an error a command threw. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_BAD_INPUT;
  const { NftError, environmentProblem } = nftRunner();
  if (e instanceof EnvironmentError || environmentProblem(e)) return EXIT_ENVIRONMENT;
  if (e instanceof NftError) return EXIT_NOT_DEPLOYED;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOSPC') return EXIT_ENVIRONMENT;
  return EXIT_BAD_INPUT;
}

/** nft's complaint in one line: its error lines, and where in the transaction (as `render` prints it). */
function nftRefusal(e: NftError): string {
  const lines = e.result.stderr.split('\n').filter((l) => l.trim() !== '');
  const errors = lines.filter((l) => /Error:/.test(l));
  const first = errors[0] ?? lines[0] ?? `exit ${e.result.code}`;
  const at = /^\/dev\/stdin:(\d+):/.exec(first);
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  const where = at ? ` [line ${at[1]} of the transaction that render prints]` : '';
  return `nft ${e.operation} refused the ruleset: ${first.replace(/^\/dev\/stdin:[\d:-]+\s*/, '')}${where}${more}`;
}

/** Prints an error as one line (plus the stack with --debug) and returns its exit code. */
export function reportError(e: unknown, debug: boolean): number {
  const code = exitCodeFor(e);
  if (e instanceof CommanderError) return code; // commander has printed it (outputError)
  const { NftError, environmentProblem } = nftRunner();
  const env = e instanceof EnvironmentError ? e : environmentProblem(e);
  let line: string;
  if (env) line = `${oneLine(env.message)}; hint: ${env.hint}`;
  else if (e instanceof NftError) line = nftRefusal(e);
  else if (e instanceof InputError) line = oneLine(e.message);
  else if (isErrno(e)) line = `${oneLine(e.message)}${code === EXIT_ENVIRONMENT ? '; hint: check the permissions and space of that path' : ''}`;
  else line = `internal error: ${oneLine(e instanceof Error ? e.message : String(e))}${debug ? '' : ' (--debug shows the stack trace)'}`;
  err(`error: ${line}`);
  if (debug) {
    if (e instanceof NftError) err(e.result.stderr.trimEnd());
    if (e instanceof Error && e.stack) err(e.stack);
  }
  return code;
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  try {
    await program(argv).parseAsync([...argv]);
    return Number(process.exitCode ?? EXIT_OK);
  } catch (e) {
    return reportError(e, debugRequested(argv));
  }
}

/** A numeric flag as given; loadConfig checks the range (NaN included). */
function numberFlag(v: string | boolean | undefined): number | undefined {
  return typeof v === 'string' ? Number(v) : undefined;
}

/** The firewall's own resolver, the DNS proxy's upstream when nothing else is set. */
function systemResolver(): { host: string; port: number } | undefined {
  const { resolvConfUpstream } = require('./daemon/dns') as typeof import('./daemon/dns');
  try {
    return resolvConfUpstream(readFileSync('/etc/resolv.conf', 'utf8'));
  } catch {
    return undefined;
  }
}

if (require.main === module) {
  void main().then((code) => {
    process.exitCode = code;
  });
}
