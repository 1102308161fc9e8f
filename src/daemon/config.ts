/**
 * Daemon configuration: a YAML/JSON file, overridden by flags. Unknown keys are errors, so a typo
 * does not silently fall back to a default.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Mode, isMode } from '../compile/mode';
import { FQDN_DEFAULTS } from '../dns/fqdn-state';
import { parseAddress } from '../model/address';
import { Level } from '../report/log';

export interface DaemonConfig {
  seedKubeconfig: string;
  /** Standalone: read the Firewall, policies and Services from this directory instead of the clusters. */
  sourceDir?: string;
  shootKubeconfig?: string;
  firewallName?: string;
  firewallNamespace?: string;
  mode?: Mode;
  dryRun: boolean;
  /** Apply rules in this network namespace (`ip netns exec NAME nft …`), e.g. a test lab's firewall. */
  netns?: string;
  logLevel: Level;
  /** Applied rulesets, last-known-good and the boot drop ruleset live here. */
  stateDir: string;
  /** At start, load the last-known-good ruleset instead of the drop ruleset. */
  restoreLastKnownGood: boolean;
  /** host:port for /metrics, /healthz, /readyz and /status; empty to disable. */
  metricsAddress: string;
  /** The DNS proxy's port on the node-network addresses (FQDN policies). */
  dnsPort: number;
  /** Resolver when the Firewall names no dnsServerAddress: host or host:port (default: /etc/resolv.conf's first). */
  dnsUpstream?: string;
  /** FQDN set elements live at least / at most this long (seconds), whatever the TTL says. */
  fqdnMinTtl: number;
  fqdnMaxTtl: number;
  /** Addresses per FQDN rule and family; the ones expiring first go beyond it. */
  fqdnMaxAddresses: number;
  /** Names remembered for fqdn_state. */
  fqdnMaxNames: number;
  /**
   * Where the shoot's Prometheus scrapes: `node-network:PORT` (the firewall's node-network
   * addresses, published as Service `firewall-agent` in the shoot's namespace `firewall`), an
   * explicit host:port, or "" for none. Default `node-network:9630`, nftables-exporter's port,
   * which the metal base rules already accept from the private networks: the agent replaces it.
   */
  publishedMetricsAddress: string;
  /** The VRF the agent runs in (`ip vrf exec`), checked at start; the unit and install.sh use it. */
  vrf?: string;
}

export const DEFAULT_PUBLISHED_METRICS_ADDRESS = 'node-network:9630';

/** Integer settings with their bounds. */
const NUMBER_KEYS: Record<string, [number, number]> = {
  dnsPort: [1, 65535],
  fqdnMinTtl: [1, 86_400],
  fqdnMaxTtl: [1, 7 * 86_400],
  fqdnMaxAddresses: [1, 1_000_000],
  fqdnMaxNames: [1, 1_000_000],
};

/** Where the upstream agent finds its seed kubeconfig on a firewall image. */
export const DEFAULT_SEED_KUBECONFIG = '/etc/firewall-controller/.seed-kubeconfig';
export const DEFAULT_STATE_DIR = '/var/lib/firewall-agent';
/** Loopback only by default; set 0.0.0.0:9638 (and open the port) to let Prometheus scrape remotely. */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9638';

const STRING_KEYS = ['seedKubeconfig', 'sourceDir', 'shootKubeconfig', 'firewallName', 'firewallNamespace', 'netns', 'stateDir', 'dnsUpstream', 'vrf'] as const;
const LEVELS: Level[] = ['debug', 'info', 'warn', 'error'];

export class ConfigError extends Error {}

export function parseConfig(raw: Record<string, unknown>, origin: string): Partial<DaemonConfig> {
  const out: Partial<DaemonConfig> = {};
  for (const [k, v] of Object.entries(raw)) {
    if ((STRING_KEYS as readonly string[]).includes(k)) {
      if (typeof v !== 'string' || v === '') throw new ConfigError(`${origin}: ${k} must be a non-empty string`);
      (out as Record<string, unknown>)[k] = v;
    } else if (k in NUMBER_KEYS) {
      const [lo, hi] = NUMBER_KEYS[k]!;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new ConfigError(`${origin}: ${k} must be an integer from ${lo} to ${hi}`);
      (out as Record<string, unknown>)[k] = v;
    } else if (k === 'mode') {
      if (typeof v !== 'string' || !isMode(v)) throw new ConfigError(`${origin}: mode must be baseline, restricted or forbidden`);
      out.mode = v;
    } else if (k === 'dryRun' || k === 'restoreLastKnownGood') {
      if (typeof v !== 'boolean') throw new ConfigError(`${origin}: ${k} must be true or false`);
      out[k] = v;
    } else if (k === 'metricsAddress') {
      if (typeof v !== 'string' || (v !== '' && parseHostPort(v) === undefined)) {
        throw new ConfigError(`${origin}: metricsAddress must be host:port (or empty to disable)`);
      }
      out.metricsAddress = v;
    } else if (k === 'publishedMetricsAddress') {
      if (typeof v !== 'string' || (v !== '' && parsePublished(v) === undefined)) {
        throw new ConfigError(`${origin}: publishedMetricsAddress must be node-network:PORT, host:port or empty`);
      }
      out.publishedMetricsAddress = v;
    } else if (k === 'logLevel') {
      if (typeof v !== 'string' || !LEVELS.includes(v as Level)) throw new ConfigError(`${origin}: logLevel must be one of ${LEVELS.join(', ')}`);
      out.logLevel = v as Level;
    } else {
      throw new ConfigError(`${origin}: ${k} is not a known setting`);
    }
  }
  return out;
}

export function loadConfig(file: string | undefined, flags: Partial<DaemonConfig>): DaemonConfig {
  let fromFile: Partial<DaemonConfig> = {};
  if (file) {
    let doc: unknown;
    try {
      doc = parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConfigError(`${file}: ${(e as Error).message}`);
    }
    if (doc !== null && (typeof doc !== 'object' || Array.isArray(doc))) throw new ConfigError(`${file}: not a mapping`);
    fromFile = parseConfig((doc ?? {}) as Record<string, unknown>, file);
  }
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as Partial<DaemonConfig>;
  const config: DaemonConfig = {
    seedKubeconfig: DEFAULT_SEED_KUBECONFIG,
    dryRun: false,
    logLevel: 'info',
    stateDir: DEFAULT_STATE_DIR,
    restoreLastKnownGood: false,
    metricsAddress: DEFAULT_METRICS_ADDRESS,
    dnsPort: 53,
    fqdnMinTtl: FQDN_DEFAULTS.minTtlS,
    fqdnMaxTtl: FQDN_DEFAULTS.maxTtlS,
    fqdnMaxAddresses: FQDN_DEFAULTS.maxPerSet,
    fqdnMaxNames: FQDN_DEFAULTS.maxNames,
    publishedMetricsAddress: DEFAULT_PUBLISHED_METRICS_ADDRESS,
    ...fromFile,
    ...defined,
  };
  for (const [k, [lo, hi]] of Object.entries(NUMBER_KEYS)) {
    const v = (config as unknown as Record<string, unknown>)[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new ConfigError(`--${flagName(k)} ${String(v)}: must be an integer from ${lo} to ${hi}`);
  }
  if (config.fqdnMinTtl > config.fqdnMaxTtl) throw new ConfigError(`fqdnMinTtl ${config.fqdnMinTtl} is above fqdnMaxTtl ${config.fqdnMaxTtl}`);
  if (config.publishedMetricsAddress !== '' && parsePublished(config.publishedMetricsAddress) === undefined) {
    throw new ConfigError(`--published-metrics-address ${config.publishedMetricsAddress}: must be node-network:PORT, host:port or empty`);
  }
  if (config.vrf !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(config.vrf)) throw new ConfigError(`--vrf ${config.vrf}: not an interface name`);
  if (config.dnsUpstream !== undefined && parseUpstream(config.dnsUpstream) === undefined) {
    throw new ConfigError(`--dns-upstream ${config.dnsUpstream}: must be an IP address, optionally with :port ([v6]:port)`);
  }
  if (config.metricsAddress !== '' && parseHostPort(config.metricsAddress) === undefined) {
    throw new ConfigError(`--metrics-address ${config.metricsAddress}: must be host:port (or empty to disable)`);
  }
  return config;
}

/** `127.0.0.1:9638`, `[::1]:9638`, `0.0.0.0:9638`. */
export function parseHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `198.51.100.53`, `198.51.100.53:5353`, `2001:db8::53`, `[2001:db8::53]:5353`: an address, never a name. */
export function parseUpstream(s: string): { host: string; port: number } | undefined {
  if (parseAddress(s).ok) return { host: s, port: 53 };
  const hp = parseHostPort(s);
  return hp && parseAddress(hp.host).ok ? hp : undefined;
}

/** Where metrics are published: the node network's addresses, or one address. */
export type PublishedAddress = { readonly kind: 'node-network'; readonly port: number } | { readonly kind: 'address'; readonly host: string; readonly port: number };

export function parsePublished(s: string): PublishedAddress | undefined {
  const m = /^node-network:([0-9]{1,5})$/.exec(s);
  if (m) {
    const port = Number(m[1]);
    return port >= 1 && port <= 65535 ? { kind: 'node-network', port } : undefined;
  }
  const hp = parseHostPort(s);
  return hp && parseAddress(hp.host).ok ? { kind: 'address', ...hp } : undefined;
}
