/**
 * What each policy and Service contributes to the maps: boxes (one interval per dimension) with
 * the index of their owner, and the names of the owners' accept chains. A policy's part does not
 * depend on the other policies, so a daemon keeps it per parsed policy (CompileCache). Pure.
 */
import { hash } from 'node:crypto';
import { AddrRange, FAMILY_BITS, Family, prefixRange } from '../model/address';
import { EgressRule, Peers, Policy, PolicyRule } from '../model/cwnp';
import { formatRef } from '../model/names';
import { PROTOCOL_NUMBER } from '../model/ports';
import { RangeSet, fromPrefixes, normalize, subtract } from '../model/rangeset';
import { NftChainVerdict } from '../nft/ruleset';
import { NAME_MAX } from '../nft/syntax';
import { BoxTable, Coord, appendBoxes } from './boxes';
import { DeployedService } from './reports';
import type { Part } from './shardmap';

export function fullRange(family: Family): AddrRange {
  return { family, lo: 0n, hi: (1n << BigInt(FAMILY_BITS[family])) - 1n };
}

function shortHash(text: string): string {
  return hash('sha256', text, 'hex').slice(0, 8);
}

function hashedChainName(prefix: string, keyHash: string, readable: string): string {
  return `${prefix}-${keyHash}-${readable}`.slice(0, NAME_MAX);
}

/** Unique by the hash of the full key, readable by the (possibly cut) name. */
export function chainName(prefix: string, key: string, readable: string): string {
  return hashedChainName(prefix, shortHash(key), readable);
}

/** Addresses a rule's peers cover, per family (except removed, overlaps merged). */
export function peerRanges(peers: Peers): Record<Family, RangeSet> {
  if (peers.kind === 'any') return { 4: [fullRange(4)], 6: [fullRange(6)] };
  const out: Record<Family, AddrRange[]> = { 4: [], 6: [] };
  for (const b of peers.blocks) {
    const cidr = prefixRange(b.cidr);
    // Most blocks have no except: their range as it is.
    if (b.except.length === 0) out[b.cidr.family].push(cidr);
    else out[b.cidr.family].push(...subtract([cidr], fromPrefixes(b.except, b.cidr.family)));
  }
  return { 4: normalize(out[4]), 6: normalize(out[6]) };
}

/** An address as a partition coordinate: a number for IPv4 (exact in a double), a bigint for IPv6. */
function addrCoord(family: Family, v: bigint): Coord {
  return family === 4 ? Number(v) : v;
}

const NO_COORDS: readonly Coord[] = Object.freeze([]);

/**
 * peerRanges as flat [lo, hi, …] coords per family. The usual rule, IPv4 blocks without except
 * that neither overlap nor touch, is done on numbers: no range objects or bigints for the 100k+
 * prefixes of a large landscape. Anything else goes through peerRanges.
 */
function peerCoords(peers: Peers): Record<Family, readonly Coord[]> {
  if (peers.kind === 'blocks' && peers.blocks.every((b) => b.cidr.family === 4 && b.except.length === 0)) {
    const out: number[] = new Array<number>(2 * peers.blocks.length);
    peers.blocks.forEach((b, n) => {
      const lo = Number(b.cidr.network);
      // Insertion by lo: a rule has a few blocks.
      let k = 2 * n;
      for (; k > 0 && out[k - 2]! > lo; k -= 2) {
        out[k] = out[k - 2]!;
        out[k + 1] = out[k - 1]!;
      }
      out[k] = lo;
      out[k + 1] = lo + 2 ** (32 - b.cidr.length) - 1;
    });
    let apart = true;
    for (let k = 2; k < out.length; k += 2) if (out[k]! <= out[k - 1]! + 1) apart = false;
    if (apart) return { 4: out, 6: NO_COORDS };
  }
  const ranges = peerRanges(peers);
  const coords = (fam: Family): Coord[] => ranges[fam].flatMap((r) => [addrCoord(fam, r.lo), addrCoord(fam, r.hi)]);
  return { 4: coords(4), 6: coords(6) };
}

/**
 * A direction's boxes of one policy, per map and family, as flat coords (BoxTable without owners:
 * owners are set per compile).
 */
export interface DirectionDims {
  readonly any: Record<Family, readonly Coord[]>;
  readonly ports: Record<Family, readonly Coord[]>;
}

function ruleDims(rules: readonly PolicyRule[]): DirectionDims {
  // Ranges first, so that every list is allocated once at its final size (growing it by push
  // would copy it several times: 100k+ boxes).
  const ranges = rules.map((rule) => peerCoords(rule.peers));
  const dims = (fam: Family, withPorts: boolean): readonly Coord[] => {
    let n = 0;
    rules.forEach((rule, k) => {
      if (rule.ports.kind === 'list') n += withPorts ? 3 * ranges[k]![fam].length * rule.ports.ports.length : 0;
      else n += withPorts ? 0 : ranges[k]![fam].length;
    });
    if (n === 0) return NO_COORDS; // most lists are empty (IPv6, rules without ports): one shared
    const out = new Array<Coord>(n);
    let at = 0;
    rules.forEach((rule, k) => {
      if ((rule.ports.kind === 'list') !== withPorts) return;
      const addrs = ranges[k]![fam];
      for (let r = 0; r < addrs.length; r += 2) {
        const lo = addrs[r]!;
        const hi = addrs[r + 1]!;
        if (rule.ports.kind === 'any') {
          out[at++] = lo;
          out[at++] = hi;
          continue;
        }
        // dims [proto, port, addr]: the partition splits the address last, which keeps cells few.
        for (const p of rule.ports.ports) {
          out[at++] = PROTOCOL_NUMBER[p.protocol];
          out[at++] = PROTOCOL_NUMBER[p.protocol];
          out[at++] = p.range.lo;
          out[at++] = p.range.hi;
          out[at++] = lo;
          out[at++] = hi;
        }
      }
    });
    return out;
  };
  return { any: { 4: dims(4, false), 6: dims(6, false) }, ports: { 4: dims(4, true), 6: dims(6, true) } };
}

export function countDims(d: DirectionDims): number {
  return (d.any[4].length + d.any[6].length) / 2 + (d.ports[4].length + d.ports[6].length) / 6;
}

/** What a policy contributes, independent of the other policies: worth keeping per parsed policy. */
export interface PolicyItems {
  readonly egressChain: string;
  readonly ingressChain: string;
  readonly egress: DirectionDims;
  readonly ingress: DirectionDims;
  /** The verdict of the policy's elements per direction: maps can hold 100k+ elements and share them. */
  readonly verdicts: Record<'egress' | 'ingress', NftChainVerdict>;
  /** The boxes of the concatenated (ports) maps as shard map parts; undefined where there are none. */
  readonly ports: Record<'egress' | 'ingress', Record<Family, Part | undefined>>;
}

function ports(name: string, verdict: NftChainVerdict, dims: DirectionDims): Record<Family, Part | undefined> {
  const part = (fam: Family) => (dims.ports[fam].length > 0 ? { name, verdict, coords: dims.ports[fam] } : undefined);
  return { 4: part(4), 6: part(6) };
}

export function policyItems(p: Policy): PolicyItems {
  const hash = shortHash(formatRef(p.ref));
  const egressChain = hashedChainName('cwnp-e', hash, p.ref.name);
  const ingressChain = hashedChainName('cwnp-i', hash, p.ref.name);
  // toFQDNs rules open the addresses DNS answers name, through dynamic sets (fqdn.ts), not maps
  const egress = ruleDims(p.egress.filter((r: EgressRule) => !r.toFqdns));
  const ingress = ruleDims(p.ingress);
  const name = p.ref.name;
  const verdicts = { egress: { kind: 'goto', chain: egressChain }, ingress: { kind: 'goto', chain: ingressChain } } as const;
  return { egressChain, ingressChain, egress, ingress, verdicts, ports: { egress: ports(name, verdicts.egress, egress), ingress: ports(name, verdicts.ingress, ingress) } };
}

/** The boxes of every owner's rules without ports (owner = index) in one family. */
export function anyBoxes(parts: readonly DirectionDims[], fam: Family): BoxTable {
  return boxTable(1, parts.map((d) => d.any[fam]));
}

/** One table of `dims`-dimensional boxes from each owner's coords (owner = index). */
function boxTable(dims: number, coords: readonly (readonly Coord[])[]): BoxTable {
  let n = 0;
  for (let o = 0; o < coords.length; o++) n += coords[o]!.length;
  const t: BoxTable = { dims, owners: new Array<number>(n / (2 * dims)), coords: new Array<Coord>(n) };
  let box = 0;
  let at = 0;
  for (let o = 0; o < coords.length; o++) {
    const c = coords[o]!;
    for (let k = 0; k < c.length; k++) t.coords[at++] = c[k]!;
    for (let k = 0; k < c.length; k += 2 * dims) t.owners[box++] = o;
  }
  return t;
}

export function serviceChain(s: DeployedService): string {
  return chainName('svc', formatRef(s.svc.ref), `${s.svc.ref.namespace}/${s.svc.ref.name}`);
}

/**
 * A Service's boxes [proto, port, daddr, saddr] into `target`; the count added. Without source
 * ranges the source is the whole family of the IP (never the other family's ranges).
 */
export function addServiceBoxes(target: Record<Family, BoxTable>, owner: number, { svc, ips }: DeployedService): number {
  let n = 0;
  for (const ip of ips) {
    const sources: AddrRange[] = svc.sourceRanges.length === 0 ? [fullRange(ip.family)] : [...fromPrefixes(svc.sourceRanges, ip.family)];
    const addr = addrCoord(ip.family, ip.value);
    for (const p of svc.ports) {
      const proto = PROTOCOL_NUMBER[p.protocol];
      for (const src of sources) {
        appendBoxes(target[ip.family], owner, [proto, proto, p.range.lo, p.range.hi, addr, addr, addrCoord(ip.family, src.lo), addrCoord(ip.family, src.hi)]);
        n++;
      }
    }
  }
  return n;
}
