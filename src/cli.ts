#!/usr/bin/env node
/**
 * firewall-agent command line: render, check and apply rulesets offline; `run` is the daemon.
 * Exit codes: 0 done, 1 check found something not deployed or nft refused, 2 unusable input.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { createTwoFilesPatch } from 'diff';
import { TABLE_NAME } from './compile/compile';
import { MODES, Mode, STATES, State, isMode, isState } from './compile/mode';
import { compileLandscape, loadLandscape, notFullyDeployed, reportLines } from './landscape';
import { NftCli, NftError, canonicalListing } from './nft/runner';
import { renderTransaction } from './nft/render';
import { InputError } from './sources/files';
import { VERSION } from './version';
import { Agent } from './daemon/agent';
import { DEFAULT_METRICS_ADDRESS, DEFAULT_SEED_KUBECONFIG, DEFAULT_STATE_DIR, DaemonConfig, loadConfig, parseHostPort, parsePublished, parseUpstream } from './daemon/config';
import { resolvConfUpstream } from './daemon/dns';
import { IpRoute } from './host/iproute';
import { Notifier } from './report/notify';
import { formatStatus } from './report/summary';
import { jsonLogger } from './report/log';
import { CRDS } from './kube/crds';
import { seedRbac, shootRbac } from './kube/rbac';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';

export const EXIT_OK = 0;
export const EXIT_NOT_DEPLOYED = 1;
export const EXIT_BAD_INPUT = 2;

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

async function build(opts: RenderOptions): Promise<{ text: string; notDeployed: number }> {
  const landscape = await loadLandscape(opts.file, opts.state, opts.mode);
  for (const n of landscape.notes) err(`note: ${n}`);
  const compiled = compileLandscape(landscape);
  for (const line of reportLines(compiled.reports)) err(line);
  return { text: renderTransaction([compiled.table]), notDeployed: notFullyDeployed(compiled.reports).length };
}

async function guarded(fn: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await fn();
  } catch (e) {
    if (e instanceof InputError) {
      err(`error: ${e.message}`);
      process.exitCode = EXIT_BAD_INPUT;
    } else if (e instanceof NftError) {
      err(`error: ${e.message}`);
      process.exitCode = EXIT_NOT_DEPLOYED;
    } else {
      err(`error: ${(e as Error).stack ?? String(e)}`);
      process.exitCode = EXIT_BAD_INPUT;
    }
  }
}

function withInputs(cmd: Command): Command {
  return cmd
    .option('-f, --file <path>', 'Kubernetes YAML/JSON file or directory (repeatable)', collect, [])
    .addOption(new Option('--state <state>', 'connected or disconnected').default('connected').argParser(parseState))
    .addOption(new Option('--mode <mode>', 'isolation mode; inferred from the Firewall when not given').argParser(parseMode));
}

export function program(): Command {
  const prog = new Command('firewall-agent')
    .description('Compiles ClusterwideNetworkPolicies, Services and the Firewall into one atomic nftables ruleset')
    .version(VERSION)
    .showHelpAfterError();

  withInputs(prog.command('render').description('print the complete nft transaction for the input')).action(
    (opts: RenderOptions) =>
      guarded(async () => {
        const { text } = await build(opts);
        process.stdout.write(text);
        return EXIT_OK;
      }),
  );

  withInputs(prog.command('check').description('render, then validate with nft -c; exit 1 if anything is not deployed')).action(
    (opts: RenderOptions) =>
      guarded(async () => {
        const { text, notDeployed } = await build(opts);
        await new NftCli().checkText(text);
        if (notDeployed > 0) {
          err(`check: ${notDeployed} object(s) would not be fully deployed`);
          return EXIT_NOT_DEPLOYED;
        }
        err('check: ok');
        return EXIT_OK;
      }),
  );

  withInputs(prog.command('apply').description('apply atomically in this network namespace'))
    .option('--dry-run', 'show the transaction and the diff against the kernel; change nothing')
    .action((opts: RenderOptions & { dryRun?: boolean }) =>
      guarded(async () => {
        const { text } = await build(opts);
        const nft = new NftCli();
        await nft.checkText(text);
        if (opts.dryRun) {
          process.stdout.write(text);
          const current = (await nft.listTable('inet', TABLE_NAME, { stateless: true })) ?? '';
          const next = await canonicalListing(text, 'inet', TABLE_NAME);
          const patch = createTwoFilesPatch('kernel', 'rendered', current, next, undefined, undefined, { context: 3 });
          process.stdout.write(current === next ? '\n# no changes against the kernel\n' : `\n# diff against the kernel\n${patch}`);
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

  prog
    .command('status')
    .description('a readable summary of the running agent (state, mode, last apply, policies, top counters)')
    .option('--address <host:port>', 'where the agent serves /status and /metrics', DEFAULT_METRICS_ADDRESS)
    .option('--json', 'print the raw status JSON')
    .action((opts: { address: string; json?: boolean }) =>
      guarded(async () => {
        const hp = parseHostPort(opts.address);
        if (!hp) throw new InputError(`--address ${opts.address}: must be host:port`);
        const base = `http://${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
        let status: Record<string, unknown>;
        let metrics: string;
        try {
          status = (await (await fetch(`${base}/status`)).json()) as Record<string, unknown>;
          metrics = await (await fetch(`${base}/metrics`)).text();
        } catch (e) {
          err(`status: the agent does not answer on ${opts.address} (${(e as Error).message}); is firewall-agent.service running?`);
          return EXIT_NOT_DEPLOYED;
        }
        process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, metrics));
        return EXIT_OK;
      }),
    );

  prog
    .command('crds')
    .description("print the agent's CustomResourceDefinitions (multi-document YAML), or write one file each")
    .option('--dir <dir>', 'write one file per CRD into this directory')
    .action((opts: { dir?: string }) =>
      guarded(async () => {
        if (opts.dir) {
          for (const [file, doc] of Object.entries(CRDS)) writeFileSync(path.join(opts.dir, file), stringify(doc));
        } else {
          process.stdout.write(Object.values(CRDS).map((d) => stringify(d)).join('---\n'));
        }
        return EXIT_OK;
      }),
    );

  prog
    .command('rbac')
    .description('print the least-privilege RBAC objects for the seed or the shoot (multi-document YAML)')
    .addOption(new Option('--cluster <cluster>', 'seed or shoot').choices(['seed', 'shoot']).makeOptionMandatory())
    .option('--namespace <ns>', 'seed: the shoot namespace holding the Firewall')
    .option('--user <name>', 'bind to this user instead of a ServiceAccount')
    .option('--service-account <ns/name>', 'bind to this ServiceAccount', 'firewall/firewall-agent')
    .option('--secret <name>', 'seed: a shoot-access secret the agent may read (repeatable)', collect, [])
    .action((opts: { cluster: 'seed' | 'shoot'; namespace?: string; user?: string; serviceAccount: string; secret: string[] }) =>
      guarded(async () => {
        const [saNs, saName] = opts.serviceAccount.split('/');
        const subject = opts.user
          ? ({ kind: 'User', name: opts.user } as const)
          : ({ kind: 'ServiceAccount', name: saName ?? 'firewall-agent', namespace: saNs } as const);
        if (opts.cluster === 'seed' && !opts.namespace) throw new InputError('rbac --cluster seed needs --namespace');
        const objs =
          opts.cluster === 'seed' ? seedRbac({ namespace: opts.namespace!, subject, secretNames: opts.secret }) : shootRbac({ subject });
        process.stdout.write(objs.map((o) => stringify(o)).join('---\n'));
        return EXIT_OK;
      }),
    );

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
          dryRun: opts.dryRun === true ? true : undefined,
          dnsPort: numberFlag(opts.dnsPort),
          publishedMetricsAddress: opts.publishedMetricsAddress as string | undefined,
          vrf: opts.vrf as string | undefined,
          dnsUpstream: opts.dnsUpstream as string | undefined,
          fqdnMinTtl: numberFlag(opts.fqdnMinTtl),
          fqdnMaxTtl: numberFlag(opts.fqdnMaxTtl),
        });
      } catch (e) {
        err(`error: ${(e as Error).message}`);
        process.exitCode = EXIT_BAD_INPUT;
        return;
      }
      const log = jsonLogger(undefined, config.logLevel);
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
        if (!(e instanceof InputError)) throw e;
        // A configuration error (e.g. --source-dir that does not exist): say so, change nothing more.
        err(`error: ${e.message}`);
        await agent.stop().catch(() => undefined);
        process.exit(EXIT_BAD_INPUT);
      }
    });
  return prog;
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
  program().parseAsync(process.argv).catch((e: unknown) => {
    err(`error: ${String(e)}`);
    process.exitCode = EXIT_BAD_INPUT;
  });
}
