/**
 * What `explain` is given (the parsed landscape, optionally the raw objects and the compiled
 * table) and what it answers: the verdict, the reason, and the rules behind them.
 */
import { Compiled, CompileInput } from '../compile/compile';
import { Mode, State } from '../compile/mode';
import { Family } from '../model/address';
import { Obj } from '../model/fields';
import { DirectionOption, PacketProtocol } from './packet';

export interface ExplainSource {
  /** The compile input as the CLI or the daemon builds it (landscape.ts). */
  readonly input: CompileInput;
  /**
   * The raw objects behind `input.policies` and `input.services`, in the same order: with them,
   * explain can say whether a rejected object would have matched.
   */
  readonly raw?: { readonly policies?: readonly Obj[]; readonly services?: readonly Obj[] };
  /**
   * The compiled ruleset to cross-check against and to take DNS interception from. Default:
   * `compile(input)` with the DNS proxy on the node network's addresses, as compileLandscape does.
   */
  readonly compiled?: Compiled;
}

export interface ExplainOptions {
  /** auto: from addresses; egress: the packet arrives from the node network; ingress: it leaves towards it. */
  readonly direction?: DirectionOption;
}

export type Side = 'egress' | 'ingress' | 'service';

/** A deployed rule that allows the packet. */
export interface AllowMatch {
  readonly kind: 'ClusterwideNetworkPolicy' | 'Service';
  /** `namespace/name` */
  readonly ref: string;
  readonly direction: Side;
  /** Where in the object, e.g. `egress[0].to[1] ports[0]`. */
  readonly path: string;
  /** What matched, e.g. `203.0.113.0/24, 443/TCP`. */
  readonly detail: string;
}

export type CandidateWhy = 'ignored' | 'rejected' | 'forbidden-ip' | 'fqdn' | 'connected';

/** Something that would have allowed the packet but does not (or only under a condition). */
export interface Candidate {
  readonly kind: 'ClusterwideNetworkPolicy' | 'Service' | 'State';
  readonly ref: string;
  readonly why: CandidateWhy;
  /** false: the object is invalid where it matters; it might have matched. */
  readonly certain: boolean;
  /** e.g. `ignored in forbidden mode`, `rejected`, `resolved at run time`. */
  readonly status: string;
  readonly path?: string;
  /** The sentence an operator reads. */
  readonly text: string;
}

export interface CompiledCheck {
  readonly verdict: 'allowed' | 'dropped';
  /** Map lookups that hit, in the forward chain's order: `egress_ports_v4 → firewall/allow-to-https (egress)`. */
  readonly hits: readonly { readonly map: string; readonly chain: string; readonly ref?: string; readonly direction?: Side }[];
  /** A rule outside the maps that decides (the underlay drop, the DNS interception). */
  readonly decidedBy?: string;
  /** The compiled maps say the same as the model (verdict, and every owner is among the allowing objects). */
  readonly agrees: boolean;
}

export interface Explanation {
  readonly verdict: 'allowed' | 'dropped';
  readonly packet: { readonly from: string; readonly to: string; readonly protocol: PacketProtocol; readonly port?: number; readonly family: Family };
  readonly state: State;
  readonly mode: Mode | undefined;
  /** How the packet passes the firewall, as decided from the addresses (or --direction). */
  readonly direction: 'egress' | 'ingress' | 'egress+ingress' | 'none' | 'local-output' | 'local-input' | 'unknown';
  /** One sentence: why. */
  readonly reason: string;
  readonly allowedBy: readonly AllowMatch[];
  /** Would allow it, but: ignored, rejected, forbidden, FQDN (run time), or only when connected. */
  readonly candidates: readonly Candidate[];
  /** Rules that match part of the packet (address but not port, an except, a source range). */
  readonly nearMisses: readonly string[];
  readonly notModelled: readonly string[];
  readonly notes: readonly string[];
  /** Set when DNS interception redirects the packet to the firewall's DNS proxy. */
  readonly redirectedTo?: string;
  readonly compiled?: CompiledCheck;
}

