/**
 * The edge to the kernel's interface addresses, through iproute2's `ip`.
 *
 * Why `ip -j` rather than a netlink library: Node has no well-kept netlink library (the npm
 * packages are unmaintained native addons or partial pure-JS codecs, one more thing to audit in a
 * firewall), whereas iproute2 is on every firewall image, is what operators use to check the result,
 * and its JSON output (`ip -j addr show`) is a stable, documented format. Reading and changing a
 * few addresses per reconcile costs a few processes, which is negligible next to `nft`.
 *
 * A command prefix (e.g. `ip netns exec NS`) aims at another network namespace, as NftCli does.
 * Every argument is a separate argv entry (no shell); addresses are canonical text from the model.
 */
import { Family, FAMILY_BITS } from '../model/address';
import { exec, ExecResult } from '../nft/runner';
import { PresentAddress, canonicalAddress } from './addresses';

/** What the reconciler needs; `IpRoute` is the real one, tests may pass a fake. */
export interface AddressOps {
  /** The addresses on each interface; rejects, naming the interface, if one cannot be listed. */
  addresses(ifnames: readonly string[]): Promise<Map<string, PresentAddress[]>>;
  add(ifname: string, address: string, family: Family): Promise<void>;
  remove(ifname: string, address: string, prefixLen: number): Promise<void>;
}

export class IpRouteError extends Error {
  constructor(
    readonly ifname: string,
    readonly operation: string,
    readonly result: ExecResult,
  ) {
    super(`ip ${operation} on ${ifname} failed (exit ${result.code}): ${result.stderr.trim().split('\n').slice(0, 4).join('; ')}`);
  }
}

/** The interface does not exist (in this namespace). */
export class MissingInterfaceError extends IpRouteError {
  constructor(ifname: string, operation: string, result: ExecResult) {
    super(ifname, operation, result);
    this.message = `interface ${ifname} does not exist`;
  }
}

/** Linux interface names: at most 15 bytes, no slash or whitespace; checked before use in argv. */
export function isInterfaceName(text: string): boolean {
  return /^[A-Za-z0-9_.:-]{1,15}$/.test(text);
}

function checkIfname(ifname: string): void {
  if (!isInterfaceName(ifname)) throw new Error(`${JSON.stringify(ifname)} is not an interface name`);
}

function checkAddress(address: string): string {
  const c = canonicalAddress(address);
  if (c === undefined) throw new Error(`${JSON.stringify(address)} is not an IP address`);
  return c;
}

interface IpJsonLink {
  ifname?: unknown;
  addr_info?: { family?: unknown; local?: unknown; prefixlen?: unknown }[];
}

/** Parses `ip -j addr show dev IF`; entries that are not inet/inet6 addresses are skipped. */
export function parseAddrShow(json: string): PresentAddress[] {
  const links = JSON.parse(json) as IpJsonLink[];
  const out: PresentAddress[] = [];
  for (const link of Array.isArray(links) ? links : []) {
    for (const a of link.addr_info ?? []) {
      if ((a.family !== 'inet' && a.family !== 'inet6') || typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      const address = canonicalAddress(a.local);
      if (address !== undefined) out.push({ address, prefixLen: a.prefixlen });
    }
  }
  return out;
}

export class IpRoute implements AddressOps {
  constructor(
    private readonly prefix: readonly string[] = [],
    private readonly binary = 'ip',
  ) {}

  private run(args: string[]): Promise<ExecResult> {
    return exec([...this.prefix, this.binary, ...args], undefined, 30_000);
  }

  async addresses(ifnames: readonly string[]): Promise<Map<string, PresentAddress[]>> {
    const out = new Map<string, PresentAddress[]>();
    for (const ifname of ifnames) {
      checkIfname(ifname);
      const r = await this.run(['-j', 'addr', 'show', 'dev', ifname]);
      if (r.code !== 0) {
        if (/does not exist|Cannot find device/.test(r.stderr)) throw new MissingInterfaceError(ifname, 'addr show', r);
        throw new IpRouteError(ifname, 'addr show', r);
      }
      try {
        out.set(ifname, parseAddrShow(r.stdout));
      } catch (e) {
        throw new Error(`ip -j addr show dev ${ifname}: unreadable output: ${(e as Error).message}`);
      }
    }
    return out;
  }

  /**
   * Adds `address` as a host address. IPv6 with `nodad`: a tentative address answers no neighbour
   * solicitations, so replies to SNATed traffic would be lost for the duration of DAD.
   */
  async add(ifname: string, address: string, family: Family): Promise<void> {
    checkIfname(ifname);
    const a = checkAddress(address);
    const args = family === 6 ? ['-6', 'addr', 'add', `${a}/128`, 'dev', ifname, 'nodad'] : ['-4', 'addr', 'add', `${a}/32`, 'dev', ifname];
    const r = await this.run(args);
    if (r.code !== 0) throw this.error(ifname, `addr add ${a}`, r);
  }

  async remove(ifname: string, address: string, prefixLen: number): Promise<void> {
    checkIfname(ifname);
    const a = checkAddress(address);
    const family: Family = a.includes(':') ? 6 : 4;
    if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > FAMILY_BITS[family]) {
      throw new Error(`${prefixLen} is not a prefix length for ${a}`);
    }
    const r = await this.run([`-${family}`, 'addr', 'del', `${a}/${prefixLen}`, 'dev', ifname]);
    if (r.code !== 0) throw this.error(ifname, `addr del ${a}/${prefixLen}`, r);
  }

  private error(ifname: string, operation: string, r: ExecResult): IpRouteError {
    return /does not exist|Cannot find device/.test(r.stderr) ? new MissingInterfaceError(ifname, operation, r) : new IpRouteError(ifname, operation, r);
  }
}
