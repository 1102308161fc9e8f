/** Transport protocols and port ranges as the policies and Services use them. */

export type Protocol = 'tcp' | 'udp';

/** IANA protocol numbers, used as interval values when policies are partitioned. */
export const PROTOCOL_NUMBER: Record<Protocol, number> = { tcp: 6, udp: 17 };

export function protocolFromNumber(n: number): Protocol {
  if (n === 6) return 'tcp';
  if (n === 17) return 'udp';
  throw new Error(`no protocol with number ${n}`);
}

/** Inclusive port range, 1 <= lo <= hi <= 65535 (0..65535 for "every port"). */
export interface PortRange {
  readonly lo: number;
  readonly hi: number;
}

export const ALL_PORTS: PortRange = { lo: 0, hi: 65535 };

export interface PortSpec {
  readonly protocol: Protocol;
  readonly range: PortRange;
}

export function formatPortRange(r: PortRange): string {
  return r.lo === r.hi ? String(r.lo) : `${r.lo}-${r.hi}`;
}

/**
 * Parses the `protocol` field: TCP when missing, TCP or UDP in any case otherwise. SCTP and other
 * values are refused rather than guessed (upstream silently treated anything but "UDP" as TCP).
 */
export function parseProtocol(value: unknown): { ok: true; value: Protocol } | { ok: false; error: string } {
  if (value === undefined || value === null) return { ok: true, value: 'tcp' };
  if (typeof value !== 'string') return { ok: false, error: 'must be a string (TCP or UDP)' };
  const upper = value.toUpperCase();
  if (upper === 'TCP') return { ok: true, value: 'tcp' };
  if (upper === 'UDP') return { ok: true, value: 'udp' };
  return { ok: false, error: `${JSON.stringify(value.slice(0, 32))} is not supported (TCP or UDP)` };
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}
