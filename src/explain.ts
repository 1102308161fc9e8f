/**
 * `explain`: would the firewall forward the first packet of a new connection from one address to
 * another on a port, and why. Computed from the parsed, deployed policies and Services (the same
 * model the compiler partitions into map elements), without a kernel, and cross-checked against
 * the compiled table's verdict-map elements (a lookup of the packet's key in the maps the forward
 * chain consults). Pure: no I/O.
 *
 * What is modelled: the forward chain's decisions for a new connection (underlay drop, the egress,
 * ingress and Service verdict maps, FQDN rules, DNS interception, the disconnected state, forbidden
 * mode). What is not: routing (the direction comes from addresses), rate limits, the ping-flood
 * guard, conntrack states other than new, and the addresses of FQDN rules (known only at run time).
 *
 * Here: the decision (direction, underlay, DNS interception, verdict and reason). The rule matching
 * is in explain/match.ts (deployed), explain/rejected.ts and explain/candidates.ts (not deployed),
 * the cross-check in explain/compiled.ts, the output in explain/format.ts.
 */
import { resolveMode } from './compile/mode';
import { policyReports, serviceReports } from './compile/reports';
import { IpAddress, addressInPrefix, formatAddress } from './model/address';
import { FirewallConfig, FirewallNetwork } from './model/firewall';
import { formatRef } from './model/names';
import { fqdnCandidates, policyCandidates, serviceCandidates } from './explain/candidates';
import { compiledCheck, defaultCompiled, underlayCheck } from './explain/compiled';
import { AllowMatch, Candidate, CompiledCheck, ExplainOptions, ExplainSource, Explanation } from './explain/explanation';
import { policyHits, serviceHit } from './explain/match';
import { Packet, inPrefixes, sameAddress } from './explain/packet';
import { rawServiceIps } from './explain/rejected';
import { list, packetText, prefixesText } from './explain/text';

export type { AllowMatch, Candidate, CandidateWhy, CompiledCheck, ExplainOptions, ExplainSource, Explanation, Side } from './explain/explanation';
export type { DirectionOption, Packet, PacketProtocol, Parsed } from './explain/packet';
export { DIRECTIONS, parsePacket, parsePortSpec } from './explain/packet';
export { explanationJson, formatExplanation } from './explain/format';

/** The network a source address arrives from, judged by addresses: the longest prefix of any network. */
function arrivalNetwork(fw: FirewallConfig, a: IpAddress): FirewallNetwork | undefined {
  let best: { net: FirewallNetwork; len: number } | undefined;
  for (const net of fw.networks) {
    for (const p of [...net.prefixes, ...net.destinationPrefixes]) {
      if (addressInPrefix(p, a) && (!best || p.length > best.len)) best = { net, len: p.length };
    }
  }
  return best?.net;
}

function notModelledLines(fw: FirewallConfig | undefined, pkt: Packet, fromNode: boolean): string[] {
  const out = ['only the first packet of a new connection: established/related packets always pass, ct state invalid is dropped'];
  if (fw && fw.rateLimits.length > 0) {
    const net = fromNode ? fw.nodeNetwork : arrivalNetwork(fw, pkt.src);
    const limits = fw.rateLimits.filter((r) => !net || r.network.id === net.id);
    for (const r of limits) out.push(`rate limit: traffic arriving from network ${r.network.id}${net ? ' (judged by address)' : ''} above ${r.mibPerSecond} MiB/s is dropped (spec.rateLimits)`);
  }
  if (pkt.protocol === 'icmp') out.push('ping floods: echo requests above 10/s (burst 4) are dropped');
  out.push('routing: the direction is judged from addresses (node network prefixes, LoadBalancer IPs), not from routes or interfaces');
  return out;
}

export function explain(source: ExplainSource, pkt: Packet, opts: ExplainOptions = {}): Explanation {
  const input = source.input;
  const fw = input.firewall;
  const compiled = source.compiled ?? defaultCompiled(input);
  const direction = opts.direction ?? 'auto';
  const packet = {
    from: formatAddress(pkt.src),
    to: formatAddress(pkt.dst),
    protocol: pkt.protocol,
    ...(pkt.port !== undefined ? { port: pkt.port } : {}),
    family: pkt.src.family,
  };
  const own = fw ? fw.networks.flatMap((n) => n.ips) : [];
  const base = { packet, state: input.state, mode: input.state === 'connected' && fw ? resolveMode(input.mode, fw) : input.mode, candidates: [] as Candidate[], nearMisses: [] as string[], allowedBy: [] as AllowMatch[] };
  const notes: string[] = [];
  // The firewall's own traffic: the table filters forwarded packets only (and the metrics port).
  if (own.some((a) => sameAddress(a, pkt.src))) {
    return {
      ...base,
      verdict: 'allowed',
      direction: 'local-output',
      reason: `${packet.from} is the firewall's own address: its own traffic is not filtered by this table (only forwarded traffic is)`,
      notModelled: [],
      notes,
    };
  }
  if (own.some((a) => sameAddress(a, pkt.dst))) {
    const dns = compiled.dnsIntercepted && pkt.protocol !== 'icmp' && pkt.port === 53 && fw !== undefined && fw.nodeNetwork.ips.some((a) => sameAddress(a, pkt.dst));
    return {
      ...base,
      verdict: 'allowed',
      direction: 'local-input',
      reason: `${packet.to} is the firewall's own address: traffic to the firewall itself is not filtered by this table${dns ? ' (the DNS proxy answers here)' : ''}`,
      notModelled: ["the published metrics port (the daemon accepts it from the node network only) and the system's other tables"],
      notes,
    };
  }

  if (input.state === 'disconnected') {
    const candidates: Candidate[] = [];
    if (fw) {
      const connected = explain({ ...source, input: { ...input, state: 'connected' }, compiled: undefined }, pkt, opts);
      if (connected.verdict === 'allowed') {
        const by = connected.allowedBy.map((m) => `${m.ref} ${m.path}`);
        candidates.push({
          kind: 'State',
          ref: 'connected',
          why: 'connected',
          certain: true,
          status: 'only when connected',
          text: by.length > 0 ? `when connected it would be allowed by ${list(by)}` : `when connected it would be allowed: ${connected.reason}`,
        });
      } else notes.push(`when connected it would be dropped too: ${connected.reason}`);
    }
    return {
      verdict: 'dropped',
      packet,
      state: 'disconnected',
      mode: input.mode,
      direction: 'unknown',
      reason: 'the state is disconnected: the forward chain accepts only established/related flows and drops every new connection',
      allowedBy: [],
      candidates,
      nearMisses: [],
      notModelled: ['established/related flows pass in this state; they are not modelled'],
      notes,
      compiled: { verdict: 'dropped', hits: [], agrees: compiled.state === 'disconnected' },
    };
  }
  if (!fw) throw new Error('explain: the connected state needs a Firewall');
  const mode = resolveMode(input.mode, fw);
  const node = fw.nodeNetwork;

  // Direction, from the addresses (or as given).
  // LoadBalancer IPs are routed into the node network; a rejected Service's IPs count too (to name it).
  const lbIps = input.services.flatMap((s, i) => (s.ok ? (s.service?.ips ?? []) : rawServiceIps(source.raw?.services?.[i])));
  const srcInNode = inPrefixes(node.prefixes, pkt.src);
  const dstInNode = inPrefixes(node.prefixes, pkt.dst);
  const dstIsLb = lbIps.some((a) => sameAddress(a, pkt.dst));
  const fromNode = direction === 'egress' || (direction === 'auto' && srcInNode);
  const toNode = direction === 'ingress' || (direction === 'auto' && (dstInNode || dstIsLb));
  // The egress maps are consulted only for sources in the node network's prefixes (cluster_prefixes).
  const egressSide = fromNode && srcInNode;
  const ingressSide = toNode;
  const dirName: Explanation['direction'] = fromNode && toNode ? 'egress+ingress' : fromNode ? 'egress' : toNode ? 'ingress' : 'none';
  if (fromNode && !srcInNode) {
    notes.push(`${packet.from} is not in the node network's prefixes (${prefixesText(node.prefixes, pkt.src.family)}): the egress maps are consulted only for the cluster's sources`);
  }
  if (srcInNode && dstInNode && direction === 'auto') notes.push('both addresses are in the node network: such traffic does not normally pass the firewall');
  const notModelled = notModelledLines(fw, pkt, fromNode);
  const check = (allowed: boolean, allowedBy: readonly AllowMatch[]): CompiledCheck => {
    const c = compiledCheck(compiled, pkt, egressSide, ingressSide);
    const refs = new Set(allowedBy.map((m) => `${m.ref}#${m.direction}`));
    const agrees = (c.verdict === 'allowed') === allowed && c.hits.every((h) => refs.has(`${h.ref}#${h.direction}`));
    return { ...c, agrees };
  };

  // The underlay is never forwarded to (even established flows).
  if (!toNode) {
    const underlay = fw.networks.find((n) => n.role === 'underlay' && n.vrf !== undefined && inPrefixes(n.prefixes, pkt.dst));
    if (underlay) {
      return {
        ...base,
        verdict: 'dropped',
        direction: dirName,
        reason: `${packet.to} is in the underlay network ${underlay.id} (${prefixesText(underlay.prefixes, pkt.dst.family)}): the firewall never forwards to the underlay, whatever the policies say`,
        notModelled,
        notes,
        compiled: underlayCheck(compiled, underlay),
      };
    }
  }

  // DNS interception: the node network's DNS goes to the proxy on the firewall (nat prerouting).
  const proxy = node.ips.find((a) => a.family === pkt.dst.family);
  if (compiled.dnsIntercepted && egressSide && pkt.protocol !== 'icmp' && pkt.port === 53 && proxy) {
    const to = pkt.dst.family === 4 ? `${formatAddress(proxy)}:53` : `[${formatAddress(proxy)}]:53`;
    return {
      ...base,
      verdict: 'allowed',
      direction: dirName,
      redirectedTo: to,
      reason: `DNS from the node network is redirected to the firewall's DNS proxy at ${to} while toFQDNs policies are deployed: the proxy answers (through its upstream), ${packet.to} is never contacted`,
      notModelled: [...notModelled, 'whether the DNS proxy runs (the daemon renders the interception only while it listens)'],
      notes,
      compiled: {
        verdict: 'allowed',
        hits: [],
        decidedBy: 'chain dns_intercept redirects it (nat prerouting)',
        agrees: compiled.table.chains.some((c) => c.name === 'dns_intercept' && c.rules.some((r) => r.statement?.kind === 'text' && r.statement.text.endsWith(` to ${to}`))),
      },
    };
  }

  // Deployed policies and Services, and what is not deployed.
  const pol = policyReports(input.policies, mode, fw);
  const svc = serviceReports(input.services, mode, fw);
  const allowedBy: AllowMatch[] = [];
  const nearMisses: string[] = [];
  const candidates: Candidate[] = [];
  for (const p of pol.deployed) {
    const ref = formatRef(p.ref);
    for (const { side, hits } of policyHits(p, pkt, egressSide, ingressSide)) {
      for (const h of hits.hits) allowedBy.push({ kind: 'ClusterwideNetworkPolicy', ref, direction: side, path: h.path, detail: h.detail });
      for (const n of hits.near) nearMisses.push(`${ref} ${n}`);
    }
  }
  if (ingressSide) {
    for (const s of svc.services) {
      const ref = formatRef(s.svc.ref);
      const r = serviceHit(s.svc, s.ips, pkt);
      for (const h of r.hits) allowedBy.push({ kind: 'Service', ref, direction: 'service', path: h.path, detail: h.detail });
      for (const n of r.near) nearMisses.push(`Service ${ref}: ${n}`);
    }
  }

  // FQDN rules, then policies and Services not deployed that would have matched.
  const scope = { input, raw: source.raw, pkt, packet, fw, mode, pol, svc, fromNode, toNode, egressSide, ingressSide };
  if (egressSide) candidates.push(...fqdnCandidates(scope));
  candidates.push(...policyCandidates(scope));
  if (ingressSide) candidates.push(...serviceCandidates(scope));

  const allowed = allowedBy.length > 0;
  let reason: string;
  if (allowed) {
    const objs = [...new Set(allowedBy.map((m) => m.ref))];
    const where = dirName === 'egress' ? 'egress from the node network' : dirName === 'ingress' ? 'ingress towards the node network' : 'traffic from and to the node network';
    reason = `${where}: allowed by ${objs.length} object${objs.length === 1 ? '' : 's'} (${list(objs)})`;
  } else if (!fromNode && !toNode) {
    reason =
      `neither ${packet.from} nor ${packet.to} is in the node network (${prefixesText(node.prefixes, pkt.src.family)}) and ${packet.to} is no LoadBalancer IP: ` +
      'the forward chain accepts new connections only from the node network or towards it';
  } else if (fromNode && !srcInNode && !toNode) {
    reason = `${packet.from} is not in the node network's prefixes: only the cluster's sources are allowed out`;
  } else {
    const blocked = candidates.filter((c) => c.why !== 'fqdn' && c.certain);
    const fqdn = candidates.find((c) => c.why === 'fqdn' && c.certain);
    const side = egressSide && ingressSide ? 'from and to the node network' : egressSide ? `egress to ${packet.to}` : `ingress from ${packet.from}`;
    reason = `no deployed policy${ingressSide ? ' or Service' : ''} allows ${side} on ${packetText(pkt)}`;
    if (blocked.length > 0) reason += `; ${list([...new Set(blocked.map((c) => `${c.kind === 'Service' ? 'Service ' : ''}${c.ref}`))], 3)} would, but ${blocked.length === 1 ? 'is' : 'are'} ${list([...new Set(blocked.map((c) => c.status))], 3)}`;
    else if (fqdn) reason += `; ${fqdn.ref} would if DNS resolved one of its names to ${packet.to} (known only at run time)`;
  }
  return {
    ...base,
    verdict: allowed ? 'allowed' : 'dropped',
    direction: dirName,
    reason,
    allowedBy,
    candidates,
    nearMisses,
    notModelled,
    notes,
    compiled: check(allowed, allowedBy),
  };
}
