/**
 * ClusterwideNetworkPolicy (metal-stack.io/v1): from an untyped object to a typed policy, or a
 * rejection naming every offending field. Semantics follow the CRD descriptions:
 * missing/empty `ports` = every port and protocol, missing/empty `to`/`from` = every address.
 */
import { Prefix, formatPrefix, parsePrefix, prefixContains } from './address';
import { Obj, Problem, Reader, index, join, quote } from './fields';
import { ObjectRef, displayName, isDns1123Label, isDns1123Subdomain } from './names';
import { ALL_PORTS, PortSpec, isPort, parseProtocol } from './ports';

export const CWNP_API_VERSION = 'metal-stack.io/v1';
export const CWNP_KIND = 'ClusterwideNetworkPolicy';
/** Only policies in this namespace take effect. */
export const POLICY_NAMESPACE = 'firewall';

export interface IpBlock {
  readonly cidr: Prefix;
  readonly except: readonly Prefix[];
}

export type Peers = { readonly kind: 'any' } | { readonly kind: 'blocks'; readonly blocks: readonly IpBlock[] };
export type Ports = { readonly kind: 'any' } | { readonly kind: 'list'; readonly ports: readonly PortSpec[] };

export interface FqdnSelector {
  readonly kind: 'matchName' | 'matchPattern';
  /** Lower-case, with a trailing dot. */
  readonly value: string;
}

export interface PolicyRule {
  readonly path: string;
  readonly peers: Peers;
  readonly ports: Ports;
}

export interface EgressRule extends PolicyRule {
  /** A toFQDNs rule: it opens the addresses the DNS proxy sees in answers for its selectors. */
  readonly toFqdns: boolean;
  readonly fqdns: readonly FqdnSelector[];
}

export interface Policy {
  readonly ref: ObjectRef;
  readonly ingress: readonly PolicyRule[];
  readonly egress: readonly EgressRule[];
  /** Things the operator should know that do not stop the policy (e.g. host bits masked). */
  readonly warnings: readonly Problem[];
  /** Parts of the policy that are valid but not enforced (they open nothing). */
  readonly unenforced: readonly Problem[];
}

export type PolicyResult =
  | { readonly ok: true; readonly policy: Policy }
  | { readonly ok: false; readonly ref: ObjectRef; readonly problems: readonly Problem[] };

const SPEC_FIELDS = ['description', 'ingress', 'egress'];
const INGRESS_FIELDS = ['from', 'ports'];
const EGRESS_FIELDS = ['to', 'toFQDNs', 'ports'];
const BLOCK_FIELDS = ['cidr', 'except'];
const PORT_FIELDS = ['protocol', 'port', 'endPort'];
const FQDN_FIELDS = ['matchName', 'matchPattern'];

/** Reads the object's namespace/name; kubectl's default namespace applies when it is missing. */
export function objectRef(obj: Obj, r: Reader): ObjectRef | undefined {
  const meta = r.object(obj.metadata, 'metadata');
  const name = r.string(meta?.name, 'metadata.name', 253);
  const namespace = r.string(meta?.namespace, 'metadata.namespace', 63) ?? 'default';
  if (name === undefined) {
    if (meta?.name === undefined) r.fail('metadata.name', 'is missing');
    return undefined;
  }
  if (!isDns1123Subdomain(name)) {
    r.fail('metadata.name', `${quote(name)} is not a valid Kubernetes name`);
    return undefined;
  }
  if (!isDns1123Label(namespace)) {
    r.fail('metadata.namespace', `${quote(namespace)} is not a valid namespace`);
    return undefined;
  }
  return { namespace, name };
}

export function displayRef(obj: Obj): ObjectRef {
  const meta = (typeof obj.metadata === 'object' && obj.metadata !== null ? obj.metadata : {}) as Obj;
  const ns = typeof meta.namespace === 'string' ? meta.namespace : 'default';
  return { namespace: displayName(ns), name: displayName(meta.name) };
}

const NO_EXCEPT: readonly Prefix[] = Object.freeze([]);

function parseBlock(value: unknown, path: string, r: Reader, warnings: Problem[]): IpBlock | undefined {
  const obj = r.object(value, path, BLOCK_FIELDS);
  if (!obj) {
    if (value === undefined || value === null) r.fail(path, 'must be an object with a cidr');
    return undefined;
  }
  if (obj.cidr === undefined || obj.cidr === null) {
    r.fail(join(path, 'cidr'), 'is missing');
    return undefined;
  }
  const parsed = parsePrefix(obj.cidr);
  if (!parsed.ok) {
    r.fail(join(path, 'cidr'), parsed.error.replace(/^"[^"]*" /, `${quote(obj.cidr)} `));
    return undefined;
  }
  const cidr = parsed.value;
  if (parsed.hostBitsMasked) {
    warnings.push({ path: join(path, 'cidr'), message: `${quote(obj.cidr)} has host bits set; using ${formatPrefix(cidr)}` });
  }
  const exceptList = r.array(obj.except, join(path, 'except'));
  // Most blocks have no except: they share one empty list (policies hold tens of thousands of blocks).
  if (exceptList.length === 0) return { cidr, except: NO_EXCEPT };
  const except: Prefix[] = [];
  exceptList.forEach((e, i) => {
    const ePath = index(join(path, 'except'), i);
    const ep = parsePrefix(e);
    if (!ep.ok) {
      r.fail(ePath, ep.error);
      return;
    }
    if (ep.value.family !== cidr.family) {
      r.fail(ePath, `${quote(e)} is not of the same address family as cidr ${formatPrefix(cidr)}`);
      return;
    }
    if (!prefixContains(cidr, ep.value)) {
      r.fail(ePath, `${quote(e)} is not inside cidr ${formatPrefix(cidr)}`);
      return;
    }
    if (ep.hostBitsMasked) {
      warnings.push({ path: ePath, message: `${quote(e)} has host bits set; using ${formatPrefix(ep.value)}` });
    }
    except.push(ep.value);
  });
  return { cidr, except };
}

function parsePeers(value: unknown, path: string, r: Reader, warnings: Problem[]): Peers {
  const list = r.array(value, path);
  if (list.length === 0) return { kind: 'any' };
  const blocks: IpBlock[] = [];
  list.forEach((b, i) => {
    const block = parseBlock(b, index(path, i), r, warnings);
    if (block) blocks.push(block);
  });
  return { kind: 'blocks', blocks: blocks.slice() }; // exact size: pushing left room for more
}

function parsePorts(value: unknown, path: string, r: Reader): Ports {
  const list = r.array(value, path);
  if (list.length === 0) return { kind: 'any' };
  const ports: PortSpec[] = [];
  list.forEach((p, i) => {
    const pPath = index(path, i);
    const obj = r.object(p, pPath, PORT_FIELDS);
    if (!obj) {
      if (p === undefined || p === null) r.fail(pPath, 'must be an object');
      return;
    }
    const proto = parseProtocol(obj.protocol);
    if (!proto.ok) {
      r.fail(join(pPath, 'protocol'), proto.error);
      return;
    }
    const port = obj.port;
    const endPort = obj.endPort;
    if (port === undefined || port === null) {
      if (endPort !== undefined && endPort !== null) {
        r.fail(join(pPath, 'endPort'), 'needs port to be set');
        return;
      }
      // Like a Kubernetes NetworkPolicyPort without a port: every port of that protocol.
      ports.push({ protocol: proto.value, range: ALL_PORTS });
      return;
    }
    if (typeof port === 'string') {
      r.fail(join(pPath, 'port'), `${quote(port)}: named ports are not supported, give a number`);
      return;
    }
    if (!isPort(port)) {
      r.fail(join(pPath, 'port'), `${quote(port)} is not a port between 1 and 65535`);
      return;
    }
    if (endPort === undefined || endPort === null) {
      ports.push({ protocol: proto.value, range: { lo: port, hi: port } });
      return;
    }
    if (!isPort(endPort)) {
      r.fail(join(pPath, 'endPort'), `${quote(endPort)} is not a port between 1 and 65535`);
      return;
    }
    if (endPort < port) {
      r.fail(join(pPath, 'endPort'), `${endPort} is below port ${port}`);
      return;
    }
    ports.push({ protocol: proto.value, range: { lo: port, hi: endPort } });
  });
  return { kind: 'list', ports: ports.slice() }; // exact size: pushing left room for more
}

const FQDN_LABEL = /^[-a-zA-Z0-9_]+$/;
const FQDN_PATTERN_LABEL = /^[-a-zA-Z0-9_*]+$/;

/** Validates label by label (the CRD regex backtracks badly on long input). */
export function parseFqdn(value: unknown, pattern: boolean): { ok: true; value: string } | { ok: false; error: string } {
  if (typeof value !== 'string') return { ok: false, error: 'must be a string' };
  if (value.length === 0 || value.length > 254) return { ok: false, error: `${quote(value)} is not a DNS name` };
  const trimmed = value.endsWith('.') ? value.slice(0, -1) : value;
  const labels = trimmed.split('.');
  const labelRe = pattern ? FQDN_PATTERN_LABEL : FQDN_LABEL;
  if (trimmed.length > 253 || labels.some((l) => l.length === 0 || l.length > 63 || !labelRe.test(l))) {
    return { ok: false, error: `${quote(value)} is not a valid DNS ${pattern ? 'pattern' : 'name'}` };
  }
  return { ok: true, value: `${trimmed.toLowerCase()}.` };
}

function parseFqdns(value: unknown, path: string, r: Reader): FqdnSelector[] {
  const out: FqdnSelector[] = [];
  r.array(value, path).forEach((s, i) => {
    const sPath = index(path, i);
    const obj = r.item(s, sPath, FQDN_FIELDS);
    if (!obj) return;
    const hasName = obj.matchName !== undefined && obj.matchName !== null;
    const hasPattern = obj.matchPattern !== undefined && obj.matchPattern !== null;
    if (hasName === hasPattern) {
      r.fail(sPath, 'needs exactly one of matchName or matchPattern');
      return;
    }
    const kind = hasName ? 'matchName' : 'matchPattern';
    const parsed = parseFqdn(obj[kind], kind === 'matchPattern');
    if (!parsed.ok) {
      r.fail(join(sPath, kind), parsed.error);
      return;
    }
    out.push({ kind, value: parsed.value });
  });
  return out;
}

export function parsePolicy(obj: Obj): PolicyResult {
  const r = new Reader();
  const warnings: Problem[] = [];
  const unenforced: Problem[] = [];
  const ref = objectRef(obj, r);
  const spec = r.object(obj.spec, 'spec', SPEC_FIELDS);
  r.string(spec?.description, 'spec.description', 65536);

  const ingress: PolicyRule[] = [];
  r.array(spec?.ingress, 'spec.ingress').forEach((rule, i) => {
    const path = `ingress[${i}]`;
    const o = r.item(rule, path, INGRESS_FIELDS);
    if (!o) return; // an empty rule is an error (the policy is rejected), never "everything"
    ingress.push({
      path,
      peers: parsePeers(o.from, join(path, 'from'), r, warnings),
      ports: parsePorts(o.ports, join(path, 'ports'), r),
    });
  });

  const egress: EgressRule[] = [];
  r.array(spec?.egress, 'spec.egress').forEach((rule, i) => {
    const path = `egress[${i}]`;
    const o = r.item(rule, path, EGRESS_FIELDS);
    if (!o) return; // an empty rule is an error (the policy is rejected), never "everything"
    const hasFqdnField = o.toFQDNs !== undefined && o.toFQDNs !== null;
    const fqdns = parseFqdns(o.toFQDNs, join(path, 'toFQDNs'), r);
    const peers = parsePeers(o.to, join(path, 'to'), r, warnings);
    const ports = parsePorts(o.ports, join(path, 'ports'), r);
    if (hasFqdnField && peers.kind === 'blocks') {
      const toFqdnList = Array.isArray(o.toFQDNs) ? o.toFQDNs : [];
      if (toFqdnList.length > 0) {
        r.fail(path, 'sets both to and toFQDNs; a rule takes one of them');
        return;
      }
    }
    // A present toFQDNs (even empty) with no `to` must never turn into "every destination".
    const fqdnRule = hasFqdnField && peers.kind === 'any';
    if (fqdnRule && fqdns.length === 0) {
      unenforced.push({ path: join(path, 'toFQDNs'), message: 'is empty; this rule opens nothing' });
    }
    egress.push({ path, peers, ports, toFqdns: fqdnRule, fqdns: fqdnRule ? fqdns : [] });
  });

  // Errors in spec paths are reported without the leading "spec." to match how users read policies.
  const problems = r.problems.map((p) => ({ ...p, path: p.path.replace(/^spec\./, '') }));
  if (problems.length > 0 || !ref) {
    return { ok: false, ref: ref ?? displayRef(obj), problems };
  }
  return { ok: true, policy: { ref, ingress, egress, warnings, unenforced } };
}
