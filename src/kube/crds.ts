/**
 * The project's own CustomResourceDefinitions for the three kinds the agent reads or writes. They
 * are written against our types and must accept exactly what a landscape's CRDs accept (field
 * names, types, formats, required fields); test/unit/crds.test.ts compares them structurally with
 * the real ones. `npm run crds` writes them to crds/.
 */

type Schema = Record<string, unknown>;

const str = (description?: string): Schema => ({ type: 'string', ...(description ? { description } : {}) });
const dateTime = (): Schema => ({ type: 'string', format: 'date-time' });
const int = (format?: 'int32' | 'int64'): Schema => ({ type: 'integer', ...(format ? { format } : {}) });
const bool = (): Schema => ({ type: 'boolean' });
const arr = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const obj = (properties: Record<string, Schema>, required?: string[], description?: string): Schema => ({
  type: 'object',
  ...(description ? { description } : {}),
  properties,
  ...(required ? { required } : {}),
});
const mapOf = (values: Schema): Schema => ({ type: 'object', additionalProperties: values });
const meta = (): Record<string, Schema> => ({ apiVersion: str(), kind: str(), metadata: { type: 'object' } });

const condition = obj(
  { lastTransitionTime: dateTime(), lastUpdateTime: dateTime(), message: str(), reason: str(), status: str(), type: str() },
  ['lastTransitionTime', 'lastUpdateTime', 'message', 'reason', 'status', 'type'],
);
const egressRule = obj({ ips: arr(str()), networkID: str() }, ['ips', 'networkID'], 'Source NAT for traffic leaving into one network');
const rateLimit = obj({ networkID: str(), rate: int('int32') }, ['networkID', 'rate'], 'Incoming rate limit of one network in MiB/s');
const machineStatus = obj(
  {
    allocationTimestamp: dateTime(),
    crashLoop: bool(),
    imageID: str(),
    lastEvent: obj({ event: str(), message: str(), timestamp: dateTime() }, ['event', 'message', 'timestamp']),
    liveliness: str(),
    machineID: str(),
  },
  ['allocationTimestamp', 'liveliness', 'machineID'],
);

const ipBlock = obj({ cidr: str('A prefix, e.g. 192.0.2.0/24 or 2001:db8::/64'), except: arr(str(), { 'x-kubernetes-list-type': 'atomic' }) }, ['cidr']);
const policyPort = obj({
  endPort: int('int32'),
  port: int('int32'),
  protocol: str('TCP (default) or UDP'),
});

export const CWNP_SCHEMA: Schema = obj(
  {
    ...meta(),
    spec: obj({
      description: str('Free text; never rendered into rules'),
      egress: arr(
        obj({
          ports: arr(policyPort),
          to: arr(ipBlock),
          toFQDNs: arr(
            obj({
              matchName: { type: 'string', pattern: '^([-a-zA-Z0-9_]+[.]?)+$' },
              matchPattern: { type: 'string', pattern: '^([-a-zA-Z0-9_*]+[.]?)+$' },
            }),
          ),
        }),
      ),
      ingress: arr(obj({ from: arr(ipBlock), ports: arr(policyPort) })),
    }),
    status: obj({
      fqdn_state: mapOf(
        arr(
          obj({
            expirationTime: dateTime(),
            fqdn: str(),
            ipExpirationTimes: mapOf(dateTime()),
            ips: arr(str()),
            setName: str(),
            version: str(),
          }),
        ),
      ),
      message: str('Why the policy is deployed, ignored or rejected'),
      state: str('deployed or ignored'),
    }),
  },
  undefined,
  'ClusterwideNetworkPolicy: allowed traffic between the cluster and the outside, enforced on the firewall',
);

export const FIREWALL_SCHEMA: Schema = obj(
  {
    ...meta(),
    distance: int(),
    spec: obj(
      {
        allowedNetworks: obj({ egress: arr(str()), ingress: arr(str()) }),
        controllerURL: str(),
        controllerVersion: str(),
        dnsPort: int(),
        dnsServerAddress: str(),
        dryRun: bool(),
        egressRules: arr(egressRule),
        image: str(),
        internalPrefixes: arr(str()),
        interval: str(),
        ipv4RuleFile: str(),
        logAcceptedConnections: bool(),
        networks: arr(str()),
        nftablesExporterURL: str(),
        nftablesExporterVersion: str(),
        partition: str(),
        project: str(),
        rateLimits: arr(rateLimit),
        size: str(),
        sshPublicKeys: arr(str()),
        userdata: str(),
      },
      ['image', 'networks', 'partition', 'project', 'size'],
    ),
    status: obj(
      {
        conditions: arr(condition),
        controllerStatus: obj({ actualDistance: int(), actualVersion: str(), lastRun: dateTime(), lastRunAgainstSeed: dateTime() }),
        firewallNetworks: arr(
          obj(
            {
              asn: int('int64'),
              destinationPrefixes: arr(str()),
              ips: arr(str()),
              nat: bool(),
              networkID: str(),
              networkType: str(),
              prefixes: arr(str()),
              vrf: int('int64'),
            },
            ['asn', 'nat', 'networkID', 'networkType', 'vrf'],
          ),
        ),
        machineStatus,
        phase: str(),
        shootAccess: obj(
          { apiServerURL: str(), genericKubeconfigSecretName: str(), namespace: str(), tokenSecretName: str() },
          ['apiServerURL', 'genericKubeconfigSecretName', 'namespace', 'tokenSecretName'],
        ),
      },
      ['conditions', 'phase'],
    ),
  },
  ['distance', 'spec'],
  'Firewall: one metal-stack firewall machine in front of a cluster (seed side, read-only for the agent)',
);

const counter = obj({ bytes: int('int64'), packets: int('int64') }, ['bytes', 'packets']);

export const FIREWALL_MONITOR_SCHEMA: Schema = obj(
  {
    ...meta(),
    conditions: arr(condition),
    controllerStatus: obj({
      controllerVersion: str(),
      distance: int(),
      distanceSupported: bool(),
      lastRun: dateTime(),
      lastRunAgainstSeed: dateTime(),
      message: str(),
      nftablesExporterVersion: str(),
      stats: obj(
        {
          devices: mapOf(obj({ in: int('int64'), out: int('int64') }, ['in', 'out'])),
          idsStats: mapOf(obj({ drop: int(), invalidChecksums: int(), packets: int() }, ['drop', 'invalidChecksums', 'packets'])),
          rules: mapOf(mapOf(obj({ counter }, ['counter']))),
        },
        ['devices', 'idsStats', 'rules'],
      ),
    }),
    egressRules: arr(egressRule),
    image: str(),
    logAcceptedConnections: bool(),
    machineStatus,
    networks: arr(str()),
    partition: str(),
    project: str(),
    rateLimits: arr(rateLimit),
    size: str(),
  },
  ['conditions', 'image', 'networks', 'partition', 'project', 'size'],
  'FirewallMonitor: the firewall as seen from the cluster, with the agent status and traffic statistics',
);

interface CrdSpec {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  schema: Schema;
  subresources: Schema;
  printerColumns: Schema[];
}

function crd(s: CrdSpec): Schema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${s.plural}.${s.group}` },
    spec: {
      group: s.group,
      names: { kind: s.kind, listKind: `${s.kind}List`, plural: s.plural, shortNames: s.shortNames, singular: s.singular },
      scope: 'Namespaced',
      versions: [
        {
          additionalPrinterColumns: s.printerColumns,
          name: s.version,
          schema: { openAPIV3Schema: s.schema },
          served: true,
          storage: true,
          subresources: s.subresources,
        },
      ],
    },
  };
}

const col = (name: string, jsonPath: string, type = 'string', priority?: number): Schema => ({
  jsonPath,
  name,
  ...(priority !== undefined ? { priority } : {}),
  type,
});

export const CRDS: Record<string, Schema> = {
  'metal-stack.io_clusterwidenetworkpolicies.yaml': crd({
    group: 'metal-stack.io',
    version: 'v1',
    kind: 'ClusterwideNetworkPolicy',
    plural: 'clusterwidenetworkpolicies',
    singular: 'clusterwidenetworkpolicy',
    shortNames: ['cwnp'],
    schema: CWNP_SCHEMA,
    subresources: { status: {} },
    printerColumns: [col('Status', '.status.state'), col('Message', '.status.message')],
  }),
  'firewall.metal-stack.io_firewalls.yaml': crd({
    group: 'firewall.metal-stack.io',
    version: 'v2',
    kind: 'Firewall',
    plural: 'firewalls',
    singular: 'firewall',
    shortNames: ['fw'],
    schema: FIREWALL_SCHEMA,
    subresources: { status: {} },
    printerColumns: [
      col('Phase', '.status.phase'),
      col('Machine ID', '.status.machineStatus.machineID'),
      col('Last Event', '.status.machineStatus.lastEvent.event'),
      col('Distance', '.distance', 'string', 1),
      col('Version', '.status.controllerStatus.actualVersion'),
      col('Spec Version', '.spec.controllerVersion', 'string', 1),
      col('Age', '.status.machineStatus.allocationTimestamp', 'date'),
    ],
  }),
  'firewall.metal-stack.io_firewallmonitors.yaml': crd({
    group: 'firewall.metal-stack.io',
    version: 'v2',
    kind: 'FirewallMonitor',
    plural: 'firewallmonitors',
    singular: 'firewallmonitor',
    shortNames: ['fwmon'],
    schema: FIREWALL_MONITOR_SCHEMA,
    subresources: {},
    printerColumns: [
      col('Machine ID', '.machineStatus.machineID'),
      col('Image', '.image'),
      col('Size', '.size'),
      col('Last Event', '.machineStatus.lastEvent.event'),
      col('Age', '.machineStatus.allocationTimestamp', 'date'),
    ],
  }),
};
