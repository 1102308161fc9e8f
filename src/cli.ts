#!/usr/bin/env node
/**
 * firewall-agent command line: render, check, diff and apply rulesets offline; `run` is the daemon.
 *
 * Exit codes (the README's "Command line" has the table):
 *   0 done; 1 something would not be deployed, nft refused, or (diff) changes are pending;
 *   2 unusable input or a usage error; 3 the environment cannot do it (no nft, no permission).
 * Every error is one line on stderr; `--debug` adds the stack trace.
 *
 * Adding a command: write `registerX(prog: Command)` (here or in src/commands/) and add it to
 * COMMANDS below. A command's action either returns its exit code through `commandAction` (errors it
 * throws are classified by `exitCodeFor`) or sets process.exitCode itself.
 */
import { registerExplain } from './commands/explain';
import { registerPreflight } from './commands/preflight';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { createTwoFilesPatch } from 'diff';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { TABLE_NAME } from './compile/compile';
import { MODES, Mode, STATES, State, isMode, isState } from './compile/mode';
import { DEFAULT_METRICS_ADDRESS, DEFAULT_SEED_KUBECONFIG, DEFAULT_STATE_DIR, DaemonConfig, loadConfig, parseHostPort, parsePublished, parseUpstream } from './daemon/config';
import { resolvConfUpstream } from './daemon/dns';
import { IpRoute } from './host/iproute';
import { CRDS } from './kube/crds';
import { parseServiceAccount, seedRbac, seedRbacWarnings, shootRbac } from './kube/rbac';
import { compileLandscape, loadLandscape, notFullyDeployed, reportLines } from './landscape';
import { renderTransaction } from './nft/render';
import { NftCli, NftError, UNPRIVILEGED_PREFIX, canonicalListing, environmentProblem } from './nft/runner';
import { EnvironmentError, oneLine } from './report/errors';
import { jsonLogger } from './report/log';
import { Notifier } from './report/notify';
import { formatStatus } from './report/summary';
import { InputError } from './sources/files';
import { VERSION } from './version';

export const EXIT_OK = 0;
/** Something would not be deployed, nft refused the ruleset, or (diff) the apply would change something. */
export const EXIT_NOT_DEPLOYED = 1;
/** Unusable input or a usage error. */
export const EXIT_BAD_INPUT = 2;
/** The environment cannot do it: a missing binary, missing privileges, no user namespaces. */
export const EXIT_ENVIRONMENT = 3;

interface RenderOptions {
  file: string[];
  state: State;
  mode?: Mode;
}

function parseState(v: string): State {
  if (!isState(v)) throw new InvalidArgumentError(`must be one of ${STATES.join(', ')}`);
  return v;
}

function parseMode(v: string): Mode {
  if (!isMode(v)) throw new InvalidArgumentError(`must be one of ${MODES.join(', ')}`);
  return v;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** A command body whose result is the exit code; what it throws becomes one line and a code (`exitCodeFor`). */
export function commandAction<A extends unknown[]>(body: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    process.exitCode = await body(...args);
  };
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

async function build(opts: RenderOptions): Promise<{ text: string; notDeployed: number }> {
  const landscape = await loadLandscape(opts.file, opts.state, opts.mode);
  for (const n of landscape.notes) err(`note: ${n}`);
  const compiled = compileLandscape(landscape);
  for (const line of reportLines(compiled.reports)) err(line);
  return { text: renderTransaction([compiled.table]), notDeployed: notFullyDeployed(compiled.reports).length };
}

/** The unified diff from the kernel's table to what `text` would make of it; undefined when they are the same. */
async function kernelDiff(nft: NftCli, text: string): Promise<string | undefined> {
  const current = (await nft.listTable('inet', TABLE_NAME, { stateless: true })) ?? '';
  const next = await canonicalListing(text, 'inet', TABLE_NAME);
  return current === next ? undefined : createTwoFilesPatch('kernel', 'rendered', current, next, undefined, undefined, { context: 3 });
}

function withInputs(cmd: Command): Command {
  return cmd
    .option('-f, --file <path>', 'Kubernetes YAML/JSON file or directory (repeatable)', collect, [])
    .addOption(new Option('--state <state>', 'connected or disconnected').default('connected').argParser(parseState))
    .addOption(new Option('--mode <mode>', 'isolation mode; inferred from the Firewall when not given').argParser(parseMode));
}

function registerRender(prog: Command): void {
  withInputs(prog.command('render').description('print the complete nft transaction for the input')).action(
    commandAction(async (opts: RenderOptions) => {
      const { text } = await build(opts);
      process.stdout.write(text);
      return EXIT_OK;
    }),
  );
}

function registerCheck(prog: Command): void {
  withInputs(
    prog.command('check').description('render, then validate with nft -c (without root: in a user namespace); exit 1 if anything is not deployed'),
  ).action(
    commandAction(async (opts: RenderOptions) => {
      const { text, notDeployed } = await build(opts);
      // Without root, nft may not even read the kernel's cache; a user namespace (root there) with its
      // own network namespace lets CI pipelines validate the ruleset against the same kernel.
      await new NftCli(isRoot() ? [] : UNPRIVILEGED_PREFIX).checkText(text);
      if (notDeployed > 0) {
        err(`check: ${notDeployed} object(s) would not be fully deployed`);
        return EXIT_NOT_DEPLOYED;
      }
      err('check: ok');
      return EXIT_OK;
    }),
  );
}

function registerDiff(prog: Command): void {
  withInputs(
    prog.command('diff').description("unified diff from the kernel's table to what apply would load; exit 0 no changes, 1 changes (like kubectl diff)"),
  ).action(
    commandAction(async (opts: RenderOptions) => {
      const { text } = await build(opts);
      const patch = await kernelDiff(new NftCli(), text);
      if (patch === undefined) {
        err('diff: no changes against the kernel');
        return EXIT_OK;
      }
      process.stdout.write(patch);
      return EXIT_NOT_DEPLOYED;
    }),
  );
}

function registerApply(prog: Command): void {
  withInputs(prog.command('apply').description('apply atomically in this network namespace'))
    .option('--dry-run', 'show the transaction and the diff against the kernel; change nothing')
    .action(
      commandAction(async (opts: RenderOptions & { dryRun?: boolean }) => {
        const { text } = await build(opts);
        const nft = new NftCli();
        await nft.checkText(text);
        if (opts.dryRun) {
          process.stdout.write(text);
          const patch = await kernelDiff(nft, text);
          process.stdout.write(patch === undefined ? '\n# no changes against the kernel\n' : `\n# diff against the kernel\n${patch}`);
          return EXIT_OK;
        }
        await nft.applyText(text);
        const applied = await nft.listTable('inet', TABLE_NAME, { stateless: true });
        if (applied === undefined || !/hook forward priority/.test(applied)) {
          err('error: the table is not in the kernel after apply');
          return EXIT_NOT_DEPLOYED;
        }
        err('apply: ok');
        return EXIT_OK;
      }),
    );
}

function registerStatus(prog: Command): void {
  prog
    .command('status')
    .description('a readable summary of the running agent (state, mode, last apply, policies, top counters)')
    .option('--address <host:port>', 'where the agent serves /status and /metrics', DEFAULT_METRICS_ADDRESS)
    .option('--json', 'print the raw status JSON')
    .action(
      commandAction(async (opts: { address: string; json?: boolean }) => {
        const hp = parseHostPort(opts.address);
        if (!hp) throw new InputError(`--address ${opts.address}: must be host:port`);
        const base = `http://${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
        let status: Record<string, unknown>;
        let metrics: string;
        try {
          status = (await (await fetch(`${base}/status`)).json()) as Record<string, unknown>;
          metrics = await (await fetch(`${base}/metrics`)).text();
        } catch (e) {
          const cause = (e as { cause?: Error }).cause;
          throw new EnvironmentError(`status: the agent does not answer on ${opts.address} (${cause?.message ?? (e as Error).message})`, 'is firewall-agent.service running?');
        }
        process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, metrics));
        return EXIT_OK;
      }),
    );
}

function registerCrds(prog: Command): void {
  prog
    .command('crds')
    .description("print the agent's CustomResourceDefinitions (multi-document YAML), or write one file each")
    .option('--dir <dir>', 'write one file per CRD into this directory')
    .action(
      commandAction(async (opts: { dir?: string }) => {
        if (!opts.dir) {
          process.stdout.write(Object.values(CRDS).map((d) => stringify(d)).join('---\n'));
          return EXIT_OK;
        }
        let isDir: boolean;
        try {
          isDir = statSync(opts.dir).isDirectory();
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? String(e);
          throw new InputError(`crds --dir ${opts.dir}: ${code === 'ENOENT' ? 'no such directory' : `cannot use it (${code})`}`);
        }
        if (!isDir) throw new InputError(`crds --dir ${opts.dir}: not a directory`);
        for (const [file, doc] of Object.entries(CRDS)) {
          const target = path.join(opts.dir, file);
          try {
            writeFileSync(target, stringify(doc));
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code ?? String(e);
            throw new EnvironmentError(`crds: cannot write ${target} (${code})`, 'choose a directory this user may write to');
          }
        }
        return EXIT_OK;
      }),
    );
}

function registerRbac(prog: Command): void {
  prog
    .command('rbac')
    .description('print the least-privilege RBAC objects for the seed or the shoot (multi-document YAML)')
    .addOption(new Option('--cluster <cluster>', 'seed or shoot').choices(['seed', 'shoot']).makeOptionMandatory())
    .option('--namespace <ns>', 'seed: the shoot namespace holding the Firewall')
    .option('--user <name>', 'bind to this user instead of a ServiceAccount')
    .option('--service-account <ns/name>', 'bind to this ServiceAccount (NAMESPACE/NAME)', 'firewall/firewall-agent')
    .option('--secret <name>', "seed: a shoot-access secret the agent may read (repeatable; the two named in the Firewall's status.shootAccess)", collect, [])
    .action(
      commandAction(async (opts: { cluster: 'seed' | 'shoot'; namespace?: string; user?: string; serviceAccount: string; secret: string[] }) => {
        let subject;
        if (opts.user) {
          subject = { kind: 'User', name: opts.user } as const;
        } else {
          const sa = parseServiceAccount(opts.serviceAccount);
          if (!sa.ok) throw new InputError(`rbac --service-account ${sa.error}`);
          subject = sa.subject;
        }
        let objs;
        if (opts.cluster === 'seed') {
          if (!opts.namespace) throw new InputError('rbac --cluster seed needs --namespace (the shoot namespace in the seed that holds the Firewall)');
          for (const w of seedRbacWarnings({ secretNames: opts.secret })) err(`warning: rbac: ${w}`);
          objs = seedRbac({ namespace: opts.namespace, subject, secretNames: opts.secret });
        } else {
          objs = shootRbac({ subject });
        }
        process.stdout.write(objs.map((o) => stringify(o)).join('---\n'));
        return EXIT_OK;
      }),
    );
}

function registerRun(prog: Command): void {
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
      const log = jsonLogger(undefined, config.logLevel);
      // Loaded here: the daemon pulls in the Kubernetes client, which alone takes most of a second
      // to load, and no other command needs it.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
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
        nft: new NftCli(config.netns ? ['ip', 'netns', 'exec', config.netns] : []),
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
 * Every command of the program, in the order `--help` lists them. New commands: add their
 * `register…(prog)` here.
 */
const COMMANDS: readonly ((prog: Command) => void)[] = [
  registerRender,
  registerCheck,
  registerDiff,
  registerApply,
  registerStatus,
  registerCrds,
  registerRbac,
  registerExplain,
  registerPreflight,
  registerRun,
];

export function program(): Command {
  const prog = new Command('firewall-agent')
    .description('Compiles ClusterwideNetworkPolicies, Services and the Firewall into one atomic nftables ruleset')
    .version(VERSION)
    .option('--debug', 'print the stack trace of an error')
    // Commander's own errors (unknown option, bad argument) are usage errors: one line, exit 2 (see
    // main). Both settings are inherited by every command added below.
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`${str.split('\n').map((l) => l.trim()).filter(Boolean).join(' ')} (see --help)\n`) });
  for (const register of COMMANDS) register(prog);
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
    await program().parseAsync([...argv]);
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
