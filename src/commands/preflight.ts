/**
 * `firewall-agent preflight`: before replacing firewall-controller, read the live objects (CWNPs in
 * all namespaces and Services from the shoot, the Firewall from the seed) or files, and print per
 * object what firewall-agent would reject or ignore and where it would enforce something else than
 * upstream (src/preflight.ts), ending with a count line.
 *
 * Exit codes: 0 nothing to do, 1 something is rejected / ignored / differs, 2 unusable input or
 * usage (kubeconfig unreadable, Firewall missing or invalid, bad files), 3 an API server cannot
 * be reached or refuses the request (network, TLS, authentication, authorization, timeout).
 */
import { Command, CommanderError } from 'commander';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { SeedApi } from '../kube/api';
import type { LoadedKubeconfig } from '../kube/kubeconfig';
import { Obj } from '../model/fields';
import { formatPreflight, preflight, preflightExitCode, preflightJson } from '../preflight';
import { errorMessage } from '../report/errors';
import { InputError, readSources } from '../sources/files';
import { Snapshot, SnapshotObject, snapshotOf } from '../sources/source';
import { collect } from './options';

export const PREFLIGHT_EXIT = { ok: 0, findings: 1, input: 2, unreachable: 3 } as const;

export interface PreflightOptions {
  shootKubeconfig?: string;
  seedKubeconfig?: string;
  firewallName?: string;
  firewallNamespace?: string;
  file: string[];
  json?: boolean;
  timeout: string;
}

/** The API server could not be asked (network, TLS, 401/403, timeout, server error): exit 3. */
export class UnreachableError extends Error {}

/** The Kubernetes Status message of an API error, or the HTTP code. */
function apiErrorText(err: unknown): string {
  const e = err as { code?: unknown; body?: unknown };
  if (typeof e?.code === 'number') {
    let body = e.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body) as unknown;
      } catch {
        /* plain text */
      }
    }
    const msg = typeof body === 'object' && body !== null ? (body as Obj).message : typeof body === 'string' ? body : undefined;
    return `HTTP ${e.code}${typeof msg === 'string' && msg !== '' ? `: ${msg.split('\n')[0]!.slice(0, 300)}` : ''}`;
  }
  return errorMessage(err).split('\n')[0]!;
}

class Calls {
  timedOut = false;
  constructor(private readonly timeoutMs: number) {}

  /** One API call with a deadline; every failure becomes one line naming the cluster and server. */
  async run<T>(cluster: string, loaded: LoadedKubeconfig, what: string, fn: () => Promise<T>): Promise<T> {
    const server = loaded.kc.getCurrentCluster()?.server ?? '?';
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.timedOut = true;
        reject(new UnreachableError(`cannot ${what} in the ${cluster} (${server}): no answer within ${this.timeoutMs / 1000}s`));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([fn(), deadline]);
    } catch (err) {
      if (err instanceof UnreachableError) throw err;
      if (notFound(err)) throw err; // the caller decides what a 404 means
      const http = typeof (err as { code?: unknown })?.code === 'number';
      throw new UnreachableError(
        http ? `cannot ${what} in the ${cluster} (${server}): ${apiErrorText(err)}` : `cannot reach the ${cluster} API server ${server}: ${apiErrorText(err)}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

/** 404 from the API server (as kube/api.ts's isNotFound, without loading the client). */
function notFound(err: unknown): boolean {
  const e = err as { code?: number; statusCode?: number } | undefined;
  return e?.code === 404 || e?.statusCode === 404;
}

/**
 * The Kubernetes client is loaded only when preflight reads a cluster: the other commands (and
 * tests of the command line) need not load it.
 */
function kube(): typeof import('../kube/api') & typeof import('../kube/kubeconfig') & typeof import('../kube/shootaccess') {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const api = require('../kube/api') as typeof import('../kube/api');
  const kc = require('../kube/kubeconfig') as typeof import('../kube/kubeconfig');
  const access = require('../kube/shootaccess') as typeof import('../kube/shootaccess');
  return { ...api, ...kc, ...access };
}

async function kubeconfig(file: string, which: string): Promise<LoadedKubeconfig> {
  try {
    return await kube().loadKubeconfigFile(file);
  } catch (err) {
    throw new InputError(`cannot use the ${which} kubeconfig ${file}: ${errorMessage(err).split('\n')[0]}`);
  }
}

/** Keys only need to be unique within one snapshot (the parse cache is keyed by them). */
function item(o: KubernetesObject, origin: string, key: string): SnapshotObject {
  return { key, origin, object: o as unknown as Obj };
}

interface Loaded {
  readonly firewalls: SnapshotObject[];
  readonly policies: SnapshotObject[];
  readonly services: SnapshotObject[];
  readonly notes: string[];
}

async function loadClusters(opts: PreflightOptions, calls: Calls, withFiles: boolean): Promise<Loaded> {
  const { SeedApi, ShootApi, readShootAccess, shootKubeconfigFromSeed } = kube();
  const out: Loaded = { firewalls: [], policies: [], services: [], notes: [] };
  let firewall: Obj | undefined;
  let seed: { loaded: LoadedKubeconfig; api: SeedApi } | undefined;
  if (opts.seedKubeconfig) {
    const loaded = await kubeconfig(opts.seedKubeconfig, 'seed');
    const api = new SeedApi(loaded.kc);
    seed = { loaded, api };
    const ns = opts.firewallNamespace ?? loaded.currentContext;
    const name = opts.firewallName!;
    let list: KubernetesListObject<KubernetesObject>;
    try {
      list = await calls.run('seed', loaded, `read Firewall ${ns}/${name}`, () => api.listFirewalls(ns, name));
    } catch (err) {
      if (notFound(err)) throw new InputError(`the seed (${loaded.kc.getCurrentCluster()?.server}) serves no Firewall resource (firewall.metal-stack.io/v2) in namespace ${ns}`);
      throw err;
    }
    const fw = list.items.find((f) => f.metadata?.name === name);
    if (!fw) throw new InputError(`Firewall ${ns}/${name} not found in the seed (${loaded.kc.getCurrentCluster()?.server})`);
    firewall = fw as unknown as Obj;
    out.firewalls.push(item(fw, `seed ${ns}/${name}`, 'firewall'));
  }

  let shoot: LoadedKubeconfig | undefined;
  if (opts.shootKubeconfig) {
    shoot = await kubeconfig(opts.shootKubeconfig, 'shoot');
  } else if (seed && !withFiles) {
    const access = readShootAccess(firewall);
    if (!access) throw new InputError('the Firewall has no status.shootAccess; give --shoot-kubeconfig FILE');
    try {
      shoot = await calls.run('seed', seed.loaded, `read the shoot access secrets in ${access.namespace}`, () => shootKubeconfigFromSeed(seed.api, access));
    } catch (err) {
      if (err instanceof UnreachableError) throw err;
      throw new InputError(`cannot build shoot credentials from the Firewall's status.shootAccess: ${apiErrorText(err)}`);
    }
    out.notes.push(`shoot access from the Firewall's status.shootAccess (${access.apiServerURL})`);
  }
  if (!shoot) return out;

  const api = new ShootApi(shoot.kc);
  try {
    const policies = await calls.run('shoot', shoot, 'list ClusterwideNetworkPolicies', () => api.listPolicies());
    policies.items.forEach((p, i) => out.policies.push(item(p, 'shoot', `policy#${i}`)));
  } catch (err) {
    if (!notFound(err)) throw err;
    out.notes.push('the shoot serves no ClusterwideNetworkPolicy resource (metal-stack.io/v1): no policies');
  }
  const services = await calls.run('shoot', shoot, 'list Services', () => api.listServices());
  services.items.forEach((s, i) => out.services.push(item(s, 'shoot', `service#${i}`)));
  return out;
}

/** Reads, analyses and prints; returns the exit code. Output goes to the given writers. */
export async function runPreflight(opts: PreflightOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const fail = (code: number, message: string): number => {
    err(`error: ${message}\n`);
    if (opts.json) out(`${JSON.stringify({ error: message, exitCode: code })}\n`);
    return code;
  };
  const timeoutS = Number(opts.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) return fail(PREFLIGHT_EXIT.input, `--timeout ${opts.timeout}: must be a number of seconds above 0`);
  if (!opts.shootKubeconfig && !opts.seedKubeconfig && opts.file.length === 0) {
    return fail(PREFLIGHT_EXIT.input, 'preflight needs --shoot-kubeconfig FILE (with --seed-kubeconfig FILE --firewall-name NAME for the Firewall) or -f PATH');
  }
  if (opts.seedKubeconfig && !opts.firewallName) return fail(PREFLIGHT_EXIT.input, '--seed-kubeconfig needs --firewall-name NAME');
  if (!opts.seedKubeconfig && (opts.firewallName || opts.firewallNamespace)) {
    return fail(PREFLIGHT_EXIT.input, '--firewall-name and --firewall-namespace need --seed-kubeconfig FILE');
  }
  const calls = new Calls(timeoutS * 1000);
  try {
    const fromFiles = opts.file.length > 0 ? await readSources(opts.file) : { objects: [], notes: [] };
    const files = snapshotOf(
      fromFiles.objects.map((o, i) => ({ key: `file#${i}`, origin: o.origin, object: o.object })),
      true,
      fromFiles.notes,
    );
    const cluster = await loadClusters(opts, calls, opts.file.length > 0);
    const snapshot: Snapshot = {
      firewalls: [...files.firewalls, ...cluster.firewalls],
      policies: [...files.policies, ...cluster.policies],
      services: [...files.services, ...cluster.services],
      notes: [...files.notes, ...cluster.notes],
      synced: true,
    };
    const result = preflight(snapshot);
    if (!result.ok) return fail(PREFLIGHT_EXIT.input, result.message);
    out(opts.json ? preflightJson(result.report) : formatPreflight(result.report));
    return preflightExitCode(result.report);
  } catch (e) {
    if (e instanceof InputError) return fail(PREFLIGHT_EXIT.input, e.message);
    if (e instanceof UnreachableError) return fail(PREFLIGHT_EXIT.unreachable, e.message);
    return fail(PREFLIGHT_EXIT.input, errorMessage(e).split('\n')[0]!);
  } finally {
    // A request that timed out may hold a socket for minutes: do not wait for it.
    if (calls.timedOut) setImmediate(() => process.exit(process.exitCode ?? PREFLIGHT_EXIT.unreachable));
  }
}

export function registerPreflight(prog: Command): void {
  prog
    .command('preflight')
    .description(
      'migration check: per object, what firewall-agent would reject or ignore and where it enforces something else than firewall-controller; ' +
        'exit 0 none, 1 some, 2 unusable input, 3 API server unreachable',
    )
    .option('--shoot-kubeconfig <file>', 'the shoot: ClusterwideNetworkPolicies (all namespaces) and Services')
    .option('--seed-kubeconfig <file>', 'the seed: the Firewall (mode, allowedNetworks, node network)')
    .option('--firewall-name <name>', 'the Firewall to read from the seed')
    .option('--firewall-namespace <ns>', "seed namespace (default: the seed kubeconfig's current-context)")
    .option('-f, --file <path>', 'Kubernetes YAML/JSON file or directory instead of (or besides) the clusters (repeatable)', collect, [])
    .option('--timeout <seconds>', 'deadline per API request', '20')
    .option('--json', 'print the findings as JSON')
    .exitOverride((e: CommanderError) => {
      // Help and version exit 0; any usage error is unusable input.
      process.exit(e.exitCode === 0 ? 0 : PREFLIGHT_EXIT.input);
    })
    .action(async (opts: PreflightOptions) => {
      process.exitCode = await runPreflight(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
