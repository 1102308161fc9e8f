/**
 * The fixed part of the table: named counters, the forward and postrouting base chains, the
 * per-object accept chains and the disconnected table. Rules are written in the form nft lists
 * them back (default limit bursts omitted), so a listing compares equal to what we meant.
 */
import { Family } from '../model/address';
import { FirewallConfig, interfaceNames } from '../model/firewall';
import { NftChain, NftMap, NftMatch, NftRule, NftSet, NftSetMatch, NftTable } from '../nft/ruleset';
import { ifname, ifnameSet, ipKeyword, logPrefix, range, safeComment } from '../nft/syntax';

export const TABLE_NAME = 'firewall';
export const FORWARD_PRIORITY = 1;
/** Before the legacy base table's masquerade at priority 0, so egressRules SNAT wins. */
export const POSTROUTING_PRIORITY = -1;

export const COUNTERS = [
  'internal_in',
  'internal_out',
  'external_in',
  'external_out',
  'drop_total',
  'drop_ratelimit',
  'drop_invalid',
  'drop_pingflood',
] as const;

export const FAMILIES: readonly Family[] = [4, 6];

/** `limit rate 10/second`: nft's default burst (5 packets) is left out, as nft lists it. */
const LOG_LIMIT = 'limit rate 10/second';

function sfx(fam: Family): 'v4' | 'v6' {
  return fam === 4 ? 'v4' : 'v6';
}

export function clusterSaddr(fam: Family): NftSetMatch {
  return { kind: 'set', expr: `${ipKeyword(fam)} saddr`, set: fam === 4 ? 'cluster_prefixes' : 'cluster_prefixes_v6' };
}

// Rules are never changed once made: the accept chains (one per policy and direction, tens of
// thousands) share these parts.
const NO_MATCH: readonly NftMatch[] = Object.freeze([]);
const ANONYMOUS_COUNTER: NftRule['counter'] = Object.freeze({ kind: 'anonymous' });
const ACCEPT: NftRule['statement'] = Object.freeze({ kind: 'accept' });

/** counter + accept, the rule every per-object chain ends with; its counter is what metrics read. */
function countedAccept(match: readonly NftMatch[], text: string): NftRule {
  return { match, counter: ANONYMOUS_COUNTER, statement: ACCEPT, comment: safeComment(text) };
}

function countedDrop(match: NftMatch[], counter: string | undefined, text: string): NftRule {
  return {
    match,
    counter: counter ? { kind: 'named', name: counter } : { kind: 'anonymous' },
    statement: { kind: 'drop' },
    comment: safeComment(text),
  };
}

/** A per-policy or per-service chain: optionally log (rate-limited), then count and accept. */
export function acceptChain(name: string, text: string, logAccepted: boolean): NftChain {
  const accept = countedAccept(NO_MATCH, text);
  if (!logAccepted) return { name, rules: [accept] };
  return { name, rules: [{ match: [LOG_LIMIT], statement: { kind: 'text', text: logPrefix('nftables-firewall-accepted: ') } }, accept] };
}

export function baseTable(sets: NftSet[], maps: NftMap[], chains: NftChain[]): NftTable {
  return { family: 'inet', name: TABLE_NAME, sets, counters: [...COUNTERS], maps, chains };
}

function dropTail(): NftRule[] {
  return [
    { match: [], counter: { kind: 'named', name: 'drop_total' }, comment: safeComment('count dropped packets') },
    { match: [LOG_LIMIT], statement: { kind: 'text', text: logPrefix('nftables-firewall-dropped: ') } },
  ];
}

const ESTABLISHED = countedAccept(['ct state established,related'], 'accept established connections');

function forwardChain(rules: NftRule[]): NftChain {
  return { name: 'forward', base: { type: 'filter', hook: 'forward', priority: FORWARD_PRIORITY, policy: 'drop' }, rules };
}

/**
 * The nat chain is always present, even empty: when the last nat hook of a namespace goes away the
 * kernel drops the NAT bindings of existing connections, which would cut established (masqueraded)
 * flows on a switch to disconnected. Measured in the lab: 4 of 14 echoes without it, 14 of 14 with.
 */
export function postroutingChain(rules: NftRule[]): NftChain {
  return { name: 'postrouting', base: { type: 'nat', hook: 'postrouting', priority: POSTROUTING_PRIORITY, policy: 'accept' }, rules };
}

/** Disconnected: forward nothing new; keep established flows; the firewall's own traffic is not touched. */
export function disconnectedTable(): NftTable {
  return baseTable([], [], [forwardChain([ESTABLISHED, ...dropTail()]), postroutingChain([])]);
}

/**
 * The forward chain: accounting, fixed protections, then a fixed number of verdict-map lookups
 * (whatever the number of policies), then the counted, logged drop.
 */
export function forwardBaseChain(fw: FirewallConfig, fqdn = false): NftChain {
  const priv = ifnameSet(interfaceNames(fw.nodeNetwork));
  const rules: NftRule[] = [];
  // Traffic accounting: "in" = towards the cluster, "out" = from it.
  for (const [dir, ifkw, addrkw] of [
    ['in', 'oifname', 'saddr'],
    ['out', 'iifname', 'daddr'],
  ] as const) {
    for (const fam of FAMILIES) {
      const lookup = (negate: boolean): NftSetMatch => ({
        kind: 'set',
        expr: `${ipKeyword(fam)} ${addrkw}`,
        set: fam === 4 ? 'internal_prefixes' : 'internal_prefixes_v6',
        ...(negate ? { negate: true } : {}),
      });
      rules.push(
        { match: [`${ifkw} ${priv}`, lookup(true)], counter: { kind: 'named', name: `external_${dir}` } },
        { match: [`${ifkw} ${priv}`, lookup(false)], counter: { kind: 'named', name: `internal_${dir}` } },
      );
    }
  }
  for (const net of fw.networks) {
    if (net.role === 'underlay' && net.vrf !== undefined) {
      rules.push(countedDrop([`oifname ${ifnameSet(interfaceNames(net))}`], undefined, `never forward to the underlay ${net.id}`));
    }
  }
  for (const rl of fw.rateLimits) {
    const limit = `limit rate over ${rl.mibPerSecond} mbytes/second`;
    rules.push(countedDrop([`iifname ${ifnameSet(interfaceNames(rl.network))}`, limit], 'drop_ratelimit', `rate limit ${rl.network.id}`));
  }
  // burst 4 is not nft's default (5), so nft lists it and it stays.
  const pingLimit = 'limit rate over 10/second burst 4 packets';
  rules.push(
    ESTABLISHED,
    countedDrop(['ct state invalid'], 'drop_invalid', 'drop packets with invalid ct state'),
    countedDrop(['icmp type echo-request', pingLimit], 'drop_pingflood', 'drop ping floods'),
    countedDrop(['icmpv6 type echo-request', pingLimit], 'drop_pingflood', 'drop ping floods'),
    countedAccept(['icmp type { destination-unreachable, time-exceeded, parameter-problem }'], 'accept icmp errors'),
    countedAccept(['icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem }'], 'accept icmpv6 errors'),
  );
  for (const fam of FAMILIES) {
    const ip = ipKeyword(fam);
    const s = sfx(fam);
    const vmap = (expr: string, map: string): NftRule['statement'] => ({ kind: 'vmap', expr: `${ip} ${expr}`, map });
    rules.push(
      { match: [`iifname ${priv}`, clusterSaddr(fam)], statement: vmap('daddr', `egress_any_${s}`) },
      { match: [`iifname ${priv}`, clusterSaddr(fam)], statement: vmap('daddr', `egress_ports_${s}`) },
      { match: [`oifname ${priv}`], statement: vmap('saddr', `ingress_any_${s}`) },
      { match: [`oifname ${priv}`], statement: vmap('saddr', `ingress_ports_${s}`) },
      { match: [`oifname ${priv}`], statement: vmap('daddr', `services_${s}`) },
    );
  }
  if (fqdn) rules.push({ match: [`iifname ${priv}`], statement: { kind: 'jump', chain: 'fqdn_egress' } });
  rules.push(...dropTail());
  return forwardChain(rules);
}

/**
 * Scrapes of the published metrics port are accepted from the node network and dropped from
 * anywhere else; nothing else reaching the firewall itself is touched (policy accept). The legacy
 * base table's input chain decides the rest (it accepts 9630 from the private networks).
 */
export function metricsInputChain(fw: FirewallConfig, port: number): NftChain {
  const priv = ifnameSet(interfaceNames(fw.nodeNetwork));
  return {
    name: 'input',
    base: { type: 'filter', hook: 'input', priority: 0, policy: 'accept' },
    rules: [
      { match: [`iifname ${priv}`, `tcp dport ${port}`], counter: { kind: 'anonymous' }, statement: { kind: 'accept' }, comment: safeComment('metrics scrapes from the node network') },
      { match: [`tcp dport ${port}`], counter: { kind: 'anonymous' }, statement: { kind: 'drop' }, comment: safeComment('metrics only from the node network') },
    ],
  };
}

/** egressRules become SNAT to the given addresses; other NAT networks masquerade. */
export function postroutingBaseChain(fw: FirewallConfig): NftChain {
  const rules: NftRule[] = [];
  const snatNetworks = new Set<string>();
  const host = (fam: Family, value: bigint): string => range({ family: fam, lo: value, hi: value });
  for (const e of fw.egressRules) {
    const out = ifname(`vlan${e.network.vrf!}`);
    for (const fam of FAMILIES) {
      const ips = e.ips.filter((a) => a.family === fam);
      if (ips.length === 0) continue;
      const ip = ipKeyword(fam);
      const target =
        ips.length === 1
          ? host(fam, ips[0]!.value)
          : `jhash ${ip} saddr mod ${ips.length} map { ${ips.map((a, i) => `${i} : ${host(fam, a.value)}`).join(', ')} }`;
      rules.push({
        match: [`oifname ${out}`, clusterSaddr(fam)],
        counter: { kind: 'anonymous' },
        statement: { kind: 'text', text: `snat ${ip} to ${target}` },
        comment: safeComment(`snat for ${e.network.id}`),
      });
      snatNetworks.add(`${e.network.id}/${fam}`);
    }
  }
  for (const net of fw.networks) {
    if (net.role !== 'external' || !net.nat || net.vrf === undefined) continue;
    for (const fam of FAMILIES) {
      if (snatNetworks.has(`${net.id}/${fam}`)) continue;
      rules.push({
        match: [`oifname ${ifname(`vlan${net.vrf}`)}`, clusterSaddr(fam)],
        counter: { kind: 'anonymous' },
        statement: { kind: 'text', text: 'masquerade random' },
        comment: safeComment(`masquerade for ${net.id}`),
      });
    }
  }
  return postroutingChain(rules);
}
