/** Isolation modes (DESIGN §2) and how one is chosen when none is given. */
import { FirewallConfig } from '../model/firewall';

export const MODES = ['baseline', 'restricted', 'forbidden'] as const;
export type Mode = (typeof MODES)[number];

export const STATES = ['connected', 'disconnected'] as const;
export type State = (typeof STATES)[number];

export function isMode(s: string): s is Mode {
  return (MODES as readonly string[]).includes(s);
}

export function isState(s: string): s is State {
  return (STATES as readonly string[]).includes(s);
}

/**
 * Explicit mode wins. Otherwise, as the landscape configures firewalls: allowedNetworks set means
 * forbidden, a partition DNS server means restricted, else baseline.
 */
export function resolveMode(explicit: Mode | undefined, fw: FirewallConfig): Mode {
  if (explicit) return explicit;
  if (fw.allowedNetworks) return 'forbidden';
  if (fw.dnsServer) return 'restricted';
  return 'baseline';
}
