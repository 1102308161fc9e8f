/**
 * Metrics of the DNS proxy and FQDN policies. Labels stay bounded: transports and outcomes are
 * fixed words; no names or addresses (they are the attacker's to choose).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DnsOptions } from '../daemon/dns';

export interface DnsGauges {
  readonly addresses: number;
  readonly names: number;
  readonly listening: boolean;
}

/** Registers the DNS metrics in `r`; returns the hooks the DNS service calls. */
export function dnsMetrics(r: Registry, gauges: () => DnsGauges): NonNullable<DnsOptions['events']> {
  const queries = new Counter({
    name: 'firewall_agent_dns_queries_total',
    help: 'DNS queries the proxy handled, by transport and outcome (answered, servfail, formerr, dropped, refused-by-hook)',
    labelNames: ['transport', 'outcome'],
    registers: [r],
  });
  for (const transport of ['udp', 'tcp']) for (const outcome of ['answered', 'servfail', 'formerr', 'dropped', 'refused-by-hook']) queries.inc({ transport, outcome }, 0);
  const latency = new Histogram({
    name: 'firewall_agent_dns_query_duration_seconds',
    help: 'From a query arriving at the proxy to its answer leaving (upstream time and set writes included)',
    labelNames: ['transport'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3],
    registers: [r],
  });
  const added = new Counter({ name: 'firewall_agent_fqdn_elements_written_total', help: 'FQDN set elements added or refreshed from DNS answers', registers: [r] });
  const forbidden = new Counter({
    name: 'firewall_agent_fqdn_forbidden_addresses_total',
    help: 'Addresses in DNS answers not opened because they lie outside allowedNetworks.egress',
    registers: [r],
  });
  const evicted = new Counter({ name: 'firewall_agent_fqdn_evicted_addresses_total', help: 'Addresses removed early because an FQDN set was full', registers: [r] });
  const write = new Histogram({
    name: 'firewall_agent_fqdn_set_write_duration_seconds',
    help: 'From an answer needing new set elements to the kernel holding them (the client waits this long)',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3],
    registers: [r],
  });
  new Gauge({
    name: 'firewall_agent_fqdn_addresses',
    help: 'Addresses currently open through FQDN policies (over all sets)',
    registers: [r],
    collect() {
      this.set(gauges().addresses);
    },
  });
  new Gauge({
    name: 'firewall_agent_fqdn_names',
    help: 'DNS names remembered for fqdn_state',
    registers: [r],
    collect() {
      this.set(gauges().names);
    },
  });
  new Gauge({
    name: 'firewall_agent_dns_proxy_up',
    help: '1 while the DNS proxy listens (some policy uses toFQDNs)',
    registers: [r],
    collect() {
      this.set(gauges().listening ? 1 : 0);
    },
  });
  return {
    query: (e) => {
      queries.inc({ transport: e.transport, outcome: e.outcome });
      latency.observe({ transport: e.transport }, e.ms / 1000);
    },
    added: (n) => added.inc(n),
    forbidden: (n) => forbidden.inc(n),
    evicted: (n) => evicted.inc(n),
    writeMs: (ms) => write.observe(ms / 1000),
  };
}
