/**
 * Firewall (firewall.metal-stack.io/v2) from the seed: the networks the firewall sits in, and the
 * operator's settings. Unlike policies, the Firewall is all-or-nothing: a Firewall with an error
 * is unusable and the previous ruleset (or the drop ruleset) stays.
 */
import {
  IpAddress,
  Prefix,
  addressInPrefix,
  formatAddress,
  formatPrefix,
  parseAddress,
  parsePrefix,
} from './address';
import { Obj, Problem, Reader, index, join, quote } from './fields';
import { ObjectRef } from './names';
import { objectRef } from './cwnp';

export const FIREWALL_API_VERSION = 'firewall.metal-stack.io/v2';
export const FIREWALL_KIND = 'Firewall';

export type NetworkRole = 'node' | 'private' | 'external' | 'underlay' | 'other';

export interface FirewallNetwork {
  readonly id: string;
  readonly type: string;
  readonly role: NetworkRole;
  /** VRF id; interfaces are `vlan<vrf>` and `vrf<vrf>`. Undefined when the network has none. */
  readonly vrf: number | undefined;
  readonly prefixes: readonly Prefix[];
  readonly ips: readonly IpAddress[];
  readonly nat: boolean;
  readonly destinationPrefixes: readonly Prefix[];
}

export interface EgressSnat {
  readonly network: FirewallNetwork;
  readonly ips: readonly IpAddress[];
}

export interface RateLimit {
  readonly network: FirewallNetwork;
  readonly mibPerSecond: number;
}

export interface FirewallConfig {
  readonly ref: ObjectRef;
  readonly networks: readonly FirewallNetwork[];
  readonly nodeNetwork: FirewallNetwork;
  /** Present when spec.allowedNetworks has any entry. */
  readonly allowedNetworks: { readonly egress: readonly Prefix[]; readonly ingress: readonly Prefix[] } | undefined;
  readonly egressRules: readonly EgressSnat[];
  readonly rateLimits: readonly RateLimit[];
  readonly internalPrefixes: readonly Prefix[];
  readonly logAcceptedConnections: boolean;
  readonly intervalMs: number;
  readonly dryRun: boolean;
  readonly dnsServer: IpAddress | undefined;
  readonly dnsPort: number;
  readonly warnings: readonly Problem[];
}

export type FirewallResult =
  | { readonly ok: true; readonly firewall: FirewallConfig }
  | { readonly ok: false; readonly problems: readonly Problem[] };

export const DEFAULT_INTERVAL_MS = 10_000;
/**
 * spec.interval paces the drift check and the FirewallMonitor: more often than every second would
 * keep nft busy listing the table, less often than hourly would leave drift unrepaired too long.
 */
export const INTERVAL_MIN_MS = 1000;
export const INTERVAL_MAX_MS = 3_600_000;

const ROLE_BY_TYPE: Record<string, NetworkRole> = {
  privateprimaryunshared: 'node',
  privateprimaryshared: 'node',
  privatesecondaryshared: 'private',
  external: 'external',
  underlay: 'underlay',
};

/** metal-api network ids: UUIDs or operator-chosen names. They appear in rule comments. */
const NETWORK_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function networkId(r: Reader, value: unknown, path: string): string | undefined {
  const id = r.string(value, path, 256);
  if (id === undefined) {
    if (value === undefined || value === null) r.fail(path, 'is missing');
    return undefined;
  }
  if (!NETWORK_ID.test(id)) {
    r.fail(path, `${quote(id)} is not a network id (letters, digits, . _ : -)`);
    return undefined;
  }
  return id;
}

export function interfaceNames(net: FirewallNetwork): string[] {
  return net.vrf === undefined ? [] : [`vlan${net.vrf}`, `vrf${net.vrf}`];
}

const DURATION_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go `time.ParseDuration` syntax, as FCM writes `spec.interval` ("10s", "1m30s"). */
export function parseGoDuration(text: string): number | undefined {
  if (!/^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g)) {
    ms += Number(m[1]) * DURATION_UNIT_MS[m[2]!]!;
  }
  return ms;
}

function prefixList(r: Reader, value: unknown, path: string, warnings: Problem[]): Prefix[] {
  const out: Prefix[] = [];
  r.array(value, path).forEach((v, i) => {
    const p = parsePrefix(v);
    if (!p.ok) r.fail(index(path, i), p.error);
    else {
      if (p.hostBitsMasked) warnings.push({ path: index(path, i), message: `${quote(v)} has host bits set; using ${formatPrefix(p.value)}` });
      out.push(p.value);
    }
  });
  return out;
}

function addressList(r: Reader, value: unknown, path: string): IpAddress[] {
  const out: IpAddress[] = [];
  r.array(value, path).forEach((v, i) => {
    const a = parseAddress(v);
    if (!a.ok) r.fail(index(path, i), a.error);
    else out.push(a.value);
  });
  return out;
}

function parseNetworks(r: Reader, status: Obj | undefined, warnings: Problem[]): FirewallNetwork[] {
  const nets: FirewallNetwork[] = [];
  const seen = new Set<string>();
  const seenVrf = new Set<number>();
  r.array(status?.firewallNetworks, 'status.firewallNetworks').forEach((n, i) => {
    const path = index('status.firewallNetworks', i);
    const o = r.object(n, path);
    if (!o) return;
    const id = networkId(r, o.networkID, join(path, 'networkID'));
    const type = r.string(o.networkType, join(path, 'networkType'), 64);
    if (type === undefined) r.fail(join(path, 'networkType'), 'is missing');
    const vrfRaw = r.integer(o.vrf, join(path, 'vrf'), 0, 4294967295);
    const vrf = vrfRaw === undefined || vrfRaw === 0 ? undefined : vrfRaw;
    const prefixes = prefixList(r, o.prefixes, join(path, 'prefixes'), warnings);
    const destinationPrefixes = prefixList(r, o.destinationPrefixes, join(path, 'destinationPrefixes'), warnings);
    const ips = addressList(r, o.ips, join(path, 'ips'));
    const nat = r.boolean(o.nat, join(path, 'nat')) ?? false;
    if (id === undefined || type === undefined) return;
    if (seen.has(id)) r.fail(join(path, 'networkID'), `${quote(id)} is listed twice`);
    seen.add(id);
    if (vrf !== undefined) {
      if (seenVrf.has(vrf)) r.fail(join(path, 'vrf'), `${vrf} is used by two networks`);
      seenVrf.add(vrf);
    }
    let role = ROLE_BY_TYPE[type];
    if (role === undefined) {
      warnings.push({ path: join(path, 'networkType'), message: `${quote(type)} is not a known network type; no rules refer to it` });
      role = 'other';
    }
    nets.push({ id, type, role, vrf, prefixes, ips, nat, destinationPrefixes });
  });
  return nets;
}

export function parseFirewall(obj: Obj): FirewallResult {
  const r = new Reader();
  const warnings: Problem[] = [];
  const ref = objectRef(obj, r);
  const spec = r.object(obj.spec, 'spec') ?? {};
  const status = r.object(obj.status, 'status');

  const networks = parseNetworks(r, status, warnings);
  const nodeNets = networks.filter((n) => n.role === 'node');
  if (nodeNets.length === 0) {
    r.fail('status.firewallNetworks', 'has no private primary network (the node network)');
  } else if (nodeNets.length > 1) {
    r.fail('status.firewallNetworks', `has ${nodeNets.length} private primary networks; exactly one is the node network`);
  } else if (nodeNets[0]!.vrf === undefined) {
    r.fail('status.firewallNetworks', `node network ${quote(nodeNets[0]!.id)} has no vrf`);
  } else if (nodeNets[0]!.prefixes.length === 0) {
    r.fail('status.firewallNetworks', `node network ${quote(nodeNets[0]!.id)} has no prefixes`);
  }
  const byId = new Map(networks.map((n) => [n.id, n]));

  const allowed = r.object(spec.allowedNetworks, 'spec.allowedNetworks', ['egress', 'ingress']);
  const allowedEgress = prefixList(r, allowed?.egress, 'spec.allowedNetworks.egress', warnings);
  const allowedIngress = prefixList(r, allowed?.ingress, 'spec.allowedNetworks.ingress', warnings);

  const egressRules: EgressSnat[] = [];
  r.array(spec.egressRules, 'spec.egressRules').forEach((e, i) => {
    const path = index('spec.egressRules', i);
    const o = r.object(e, path, ['networkID', 'ips']);
    if (!o) return;
    const id = networkId(r, o.networkID, join(path, 'networkID'));
    const ips = addressList(r, o.ips, join(path, 'ips'));
    if (id === undefined) return;
    const net = byId.get(id);
    if (!net) return r.fail(join(path, 'networkID'), `${quote(id)} is not one of the firewall's networks`);
    if (net.role !== 'external') return r.fail(join(path, 'networkID'), `${quote(id)} is not an external network`);
    if (net.vrf === undefined) return r.fail(join(path, 'networkID'), `${quote(id)} has no vrf`);
    if (ips.length === 0) return r.fail(join(path, 'ips'), 'is empty');
    ips.forEach((ip, j) => {
      if (!net.prefixes.some((p) => addressInPrefix(p, ip))) {
        r.fail(index(join(path, 'ips'), j), `${formatAddress(ip)} is not inside the prefixes of network ${quote(id)}`);
      }
    });
    egressRules.push({ network: net, ips });
  });

  const rateLimits: RateLimit[] = [];
  r.array(spec.rateLimits, 'spec.rateLimits').forEach((l, i) => {
    const path = index('spec.rateLimits', i);
    const o = r.object(l, path, ['networkID', 'rate']);
    if (!o) return;
    const id = networkId(r, o.networkID, join(path, 'networkID'));
    const rate = r.integer(o.rate, join(path, 'rate'), 1, 2147483647);
    if (o.rate === undefined || o.rate === null) r.fail(join(path, 'rate'), 'is missing');
    if (id === undefined || rate === undefined) return;
    const net = byId.get(id);
    if (!net || net.role === 'underlay' || net.vrf === undefined) {
      warnings.push({ path, message: `network ${quote(id)} is unknown, underlay or has no vrf; no rate limit applied` });
      return;
    }
    rateLimits.push({ network: net, mibPerSecond: rate });
  });

  const internalPrefixes = prefixList(r, spec.internalPrefixes, 'spec.internalPrefixes', warnings);
  const logAcceptedConnections = r.boolean(spec.logAcceptedConnections, 'spec.logAcceptedConnections') ?? false;
  const dryRun = r.boolean(spec.dryRun, 'spec.dryRun') ?? false;
  let intervalMs = DEFAULT_INTERVAL_MS;
  const interval = r.string(spec.interval, 'spec.interval', 64);
  if (interval !== undefined && interval !== '') {
    const ms = parseGoDuration(interval);
    if (ms === undefined || ms <= 0) r.fail('spec.interval', `${quote(interval)} is not a duration like 10s`);
    else if (ms < INTERVAL_MIN_MS) {
      warnings.push({ path: 'spec.interval', message: `${quote(interval)} is below the minimum 1s; using 1s` });
      intervalMs = INTERVAL_MIN_MS;
    } else if (ms > INTERVAL_MAX_MS) {
      warnings.push({ path: 'spec.interval', message: `${quote(interval)} is above the maximum 1h; using 1h` });
      intervalMs = INTERVAL_MAX_MS;
    } else intervalMs = ms;
  }
  let dnsServer: IpAddress | undefined;
  const dns = r.string(spec.dnsServerAddress, 'spec.dnsServerAddress', 64);
  if (dns !== undefined && dns !== '') {
    const a = parseAddress(dns);
    if (!a.ok) r.fail('spec.dnsServerAddress', a.error);
    else dnsServer = a.value;
  }
  const dnsPort = r.integer(spec.dnsPort, 'spec.dnsPort', 1, 65535) ?? 53;

  if (!r.ok || !ref || nodeNets.length !== 1) return { ok: false, problems: r.problems };
  return {
    ok: true,
    firewall: {
      ref,
      networks,
      nodeNetwork: nodeNets[0]!,
      allowedNetworks:
        allowedEgress.length + allowedIngress.length > 0 ? { egress: allowedEgress, ingress: allowedIngress } : undefined,
      egressRules,
      rateLimits,
      internalPrefixes,
      logAcceptedConnections,
      intervalMs,
      dryRun,
      dnsServer,
      dnsPort,
      warnings,
    },
  };
}
