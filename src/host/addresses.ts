/**
 * Which egress SNAT addresses belong on which interface, and what to change to get there: a pure
 * planner, so every ownership rule is testable without a kernel (reconcile.ts applies the plan).
 *
 * The postrouting chain SNATs node traffic to `spec.egressRules` addresses; the upstream router
 * only sends the replies if someone answers its neighbour lookups for them, so each address must
 * sit on the external network's interface `vlan<vrf>`. Host prefixes (/32, /128) add no
 * connected route that could compete with the network's own prefix.
 *
 * Ownership: interfaces also carry addresses put there by metal-networker (the network's
 * allocation ips) or by an operator. We only ever remove what we added ourselves (the `owned`
 * record, kept by the caller across restarts) and never an allocation ip.
 */
import { Family, FAMILY_BITS, IpAddress, formatAddress, parseAddress } from '../model/address';
import { FirewallConfig } from '../model/firewall';

/** An address as the kernel lists it on an interface; `address` in canonical text. */
export interface PresentAddress {
  readonly address: string;
  readonly prefixLen: number;
}

/** An address this agent put on an interface; `address` in canonical text. */
export interface OwnedAddress {
  readonly ifname: string;
  readonly address: string;
}

export interface AddressAdd {
  readonly ifname: string;
  readonly address: string;
  readonly family: Family;
}

export interface AddressRemove {
  readonly ifname: string;
  readonly address: string;
  /** As listed; always the host length, since we only remove what we added as a host address. */
  readonly prefixLen: number;
}

export interface AddressPlanInput {
  /**
   * The addresses on each involved interface. An interface missing here could not be listed: it
   * is left alone and what we own on it stays recorded.
   */
  readonly current: ReadonlyMap<string, readonly PresentAddress[]>;
  readonly wanted: ReadonlyMap<string, readonly IpAddress[]>;
  readonly owned: readonly OwnedAddress[];
  /** Canonical text of every network's allocation ips: never removed, whoever added them. */
  readonly protected: ReadonlySet<string>;
}

export interface AddressPlan {
  readonly add: AddressAdd[];
  readonly remove: AddressRemove[];
  /**
   * The record once the plan is carried out: without the removals, with the additions. The caller
   * keeps a removal that failed and drops an addition that failed.
   */
  readonly owned: OwnedAddress[];
}

/** `vlan<vrf>` of every external network with egressRules → its SNAT addresses, deduplicated. */
export function wantedAddresses(fw: FirewallConfig): Map<string, IpAddress[]> {
  const out = new Map<string, IpAddress[]>();
  for (const rule of fw.egressRules) {
    const net = rule.network;
    // parseFirewall already rejects other networks; checked again because the interface name
    // depends on it.
    if (net.role !== 'external' || net.vrf === undefined) continue;
    const ifname = `vlan${net.vrf}`;
    const list = out.get(ifname) ?? [];
    for (const ip of rule.ips) {
      if (!list.some((x) => x.family === ip.family && x.value === ip.value)) list.push(ip);
    }
    out.set(ifname, list);
  }
  return out;
}

/** Canonical text of the allocation ips of every network (`status.firewallNetworks[].ips`). */
export function protectedAddresses(fw: FirewallConfig): Set<string> {
  return new Set(fw.networks.flatMap((n) => n.ips.map(formatAddress)));
}

/** Canonical text, or undefined for text that is not an address (e.g. from a damaged record). */
export function canonicalAddress(text: string): string | undefined {
  const a = parseAddress(text);
  return a.ok ? formatAddress(a.value) : undefined;
}

const key = (ifname: string, address: string): string => `${ifname} ${address}`;

export function planAddresses(input: AddressPlanInput): AddressPlan {
  const add: AddressAdd[] = [];
  const remove: AddressRemove[] = [];
  const owned: OwnedAddress[] = [];
  const ownedKeys = new Set(input.owned.map((o) => key(o.ifname, o.address)));
  const wantedKeys = new Set<string>();

  for (const [ifname, ips] of input.wanted) {
    const present = input.current.get(ifname);
    for (const ip of ips) {
      const address = formatAddress(ip);
      wantedKeys.add(key(ifname, address));
      const mine = ownedKeys.has(key(ifname, address));
      if (present === undefined) {
        if (mine) owned.push({ ifname, address }); // not listable: keep the record as it was
        continue;
      }
      const listed = present.filter((p) => p.address === address);
      if (listed.length === 0) {
        // Absent (never there, or an address of ours that someone removed): ours from now on.
        add.push({ ifname, address, family: ip.family });
        owned.push({ ifname, address });
      } else if (mine && listed.some((p) => p.prefixLen === FAMILY_BITS[ip.family])) {
        owned.push({ ifname, address });
      }
      // Present but not ours, or ours replaced by someone with another prefix length: theirs.
    }
  }

  for (const o of input.owned) {
    if (wantedKeys.has(key(o.ifname, o.address))) continue;
    const present = input.current.get(o.ifname);
    if (present === undefined) {
      owned.push(o); // could not look: decide next time
      continue;
    }
    // Allocation ips stay even if we once added them; the record forgets them, so they are theirs.
    if (input.protected.has(o.address)) continue;
    const family: Family = o.address.includes(':') ? 6 : 4;
    const hostLen = FAMILY_BITS[family];
    // Only our own form of it: the same address with another length was put there by someone else.
    if (present.some((p) => p.address === o.address && p.prefixLen === hostLen)) {
      remove.push({ ifname: o.ifname, address: o.address, prefixLen: hostLen });
    }
    // Absent: gone already, nothing left to own.
  }
  return { add, remove, owned: dedupe(owned) };
}

function dedupe(list: OwnedAddress[]): OwnedAddress[] {
  const seen = new Set<string>();
  return list.filter((o) => {
    const k = key(o.ifname, o.address);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
