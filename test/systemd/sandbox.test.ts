/**
 * The packaged units under a real systemd, with every restriction of their sandbox in force.
 *
 * This machine's PID 1 is not systemd, so `systemd-run` and `systemctl` have nothing to talk to.
 * container.sh boots the host's own systemd as PID 1 of a throwaway container instead (pid, mount,
 * network, uts, ipc and cgroup namespaces; an overlay of the host's root; cgroup2), with no unit of
 * the host in it. There the .deb from `npm run package` is installed with dpkg, and the real binary
 * runs as firewall-agent.service: it applies a ruleset from files, answers DNS through its proxy
 * on port 53 and writes the FQDN set, adds an egress address and serves /metrics. Checked on top:
 * the agent's /proc status (seccomp, capabilities, no_new_privs, umask) and mounts; a probe run as
 * the unit's ExecStartPre= (the same sandbox) that finds each restriction refusing what it should,
 * and, run without a sandbox, succeeding (so the refusal is the unit's); the restart policy; the
 * boot unit; the VRF drop-in with `ip vrf exec default` and ip's BPF steps (the kernel has no VRF).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify, parse } from 'yaml';
import { ExecResult, exec } from '../../src/nft/runner';
import { EXAMPLES } from '../helpers';
import { eventually } from '../kube/rest';
import { DEB, VERSION, ensurePackage } from './artifacts';

jest.setTimeout(120_000);

const CONTAINER = path.join(__dirname, 'container.sh');
const UNIT = 'firewall-agent.service';
const DROPINS = `/etc/systemd/system/${UNIT}.d`;
let dir: string;
let started = false;

/** A bash script run inside the container (its namespaces and root); the host's view of DIR/share is /run/host. */
function inside(script: string): Promise<ExecResult> {
  // --norc: bash reads ~/.bashrc when its stdin is a socket, which node's pipes are
  return exec(['bash', CONTAINER, 'exec', dir, 'bash', '--norc', '--noprofile', '-c', `set -euo pipefail\n${script}`]);
}

async function ok(script: string): Promise<string> {
  const r = await inside(script);
  if (r.code !== 0) throw new Error(`inside the container: ${script}\nexit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function show(unit: string, property: string): Promise<string> {
  return (await ok(`systemctl show -p ${property} --value ${unit}`)).trim();
}

/** Test-only drop-ins (zz-*.conf): the probes, faster restarts, and the counter-examples a test names. */
async function dropIn(name: string, text: string | undefined): Promise<void> {
  await ok(text === undefined ? `rm -f ${DROPINS}/${name}` : `mkdir -p ${DROPINS} && cat >${DROPINS}/${name} <<'EOF'\n${text}\nEOF`);
  await ok('systemctl daemon-reload');
}

/** Where the journal ends now: what a probe prints after this is found after it. */
async function cursor(): Promise<string> {
  return /^-- cursor: (.+)$/m.exec(await ok('journalctl -n 0 --show-cursor -q'))![1]!;
}

/** The JSON line a probe printed (prefixed "PREFIX: ") to the unit's journal after `after`; the last one. */
async function probeOutput<T>(prefix: string, after: string, unit = UNIT): Promise<T> {
  return eventually(`${prefix} output of ${unit}`, async () => {
    const lines = (await ok(`journalctl -u ${unit} --after-cursor='${after}' -o cat --no-pager`)).split('\n');
    const line = lines.reverse().find((l) => l.startsWith(`${prefix}: `));
    return line === undefined ? undefined : (JSON.parse(line.slice(prefix.length + 2)) as T);
  }, 5_000, 100);
}

async function restart(): Promise<void> {
  await ok(`systemctl reset-failed ${UNIT} || true; systemctl restart ${UNIT}`);
}

async function mainPid(): Promise<number> {
  return Number(await show(UNIT, 'MainPID'));
}

beforeAll(async () => {
  await ensurePackage();
  dir = mkdtempSync(path.join(tmpdir(), 'fwa-sandbox-'));
  const share = path.join(dir, 'share');
  mkdirSync(path.join(share, 'input'), { recursive: true });
  copyFileSync(DEB, path.join(share, 'firewall-agent.deb'));
  for (const f of ['sandbox_probe.py', 'vrf_probe.py', 'dns_query.py']) copyFileSync(path.join(__dirname, f), path.join(share, f));
  // examples/baseline with an upstream resolver inside the container and an egress SNAT address
  const firewall = parse(readFileSync(path.join(EXAMPLES, 'baseline', 'firewall.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  firewall.spec.dnsServerAddress = '127.0.0.1';
  firewall.spec.dnsPort = 5353;
  firewall.spec.egressRules = [{ networkID: 'internet', ips: ['203.0.113.20'] }];
  writeFileSync(path.join(share, 'input', 'firewall.yaml'), stringify(firewall));
  for (const f of ['policies.yaml', 'services.yaml']) copyFileSync(path.join(EXAMPLES, 'baseline', f), path.join(share, 'input', f));

  const boot = await exec(['bash', CONTAINER, 'start', dir]);
  if (boot.code !== 0) throw new Error(`cannot boot systemd in a container: ${boot.stderr}`);
  started = true;
  await ok(`
    # the firewall's interfaces: node network (DNS proxy, published metrics) and internet (SNAT)
    for spec in "vlan3981 192.0.2.1/25 2001:db8:1::1/64" "vlan104009 203.0.113.1/24 2001:db8:203::1/64"; do
      set -- $spec
      ip link add "$1" type veth peer name "$1p"
      ip addr add "$2" dev "$1"; ip addr add "$3" dev "$1" nodad
      ip link set "$1" up; ip link set "$1p" up
    done
    mkdir -p /run/systemd/system
    # the resolver behind the DNS proxy
    cat >/run/systemd/system/fwa-upstream.service <<'EOF'
[Service]
ExecStart=/usr/sbin/dnsmasq -k --conf-file=/dev/null --user=root --pid-file= --port=5353 --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts --address=/example.com/198.51.100.10
EOF
    # a process of another user, for ProtectProc=
    cat >/run/systemd/system/fwa-other.service <<'EOF'
[Service]
User=nobody
ExecStart=/bin/sleep infinity
EOF
    # the probe without any sandbox, to show that what the units refuse is possible at all
    cat >/run/systemd/system/fwa-unconfined.service <<'EOF'
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'exec /usr/bin/python3 /run/host/sandbox_probe.py "$(systemctl show -p MainPID --value fwa-other)"'
EOF
    systemctl daemon-reload
    systemctl start fwa-upstream fwa-other
  `);
});

afterAll(async () => {
  if (started) await exec(['bash', CONTAINER, 'stop', dir]);
  rmSync(dir, { recursive: true, force: true });
});

describe('the .deb under systemd', () => {
  test('dpkg -i installs it and enables or starts nothing', async () => {
    const r = await inside('dpkg -i /run/host/firewall-agent.deb');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await inside(`systemctl is-enabled ${UNIT} firewall-agent-boot.service`)).stdout.split('\n').slice(0, 2)).toEqual(['disabled', 'disabled']);
    expect((await inside(`systemctl is-active ${UNIT} firewall-agent-boot.service`)).stdout.split('\n').slice(0, 2)).toEqual(['inactive', 'inactive']);
    expect(await show(UNIT, 'FragmentPath')).toBe(`/lib/systemd/system/${UNIT}`);
    expect(r.stdout).toContain(`Setting up firewall-agent (${VERSION})`); // the postinst ran (daemon-reload)
    expect((await ok("dpkg-query -W -f='${Conffiles}' firewall-agent")).trim()).toMatch(/^\/etc\/firewall-agent\/config\.yaml [0-9a-f]{32}$/);
    await ok(`cat >/etc/firewall-agent/config.yaml <<'EOF'
sourceDir: /run/host/input
firewallName: shoot--demo-firewall-a1b2c
metricsAddress: 127.0.0.1:9638
EOF`);
  });

  test('the boot unit loads the drop ruleset in its sandbox, from the packaged fallback while the state directory is empty', async () => {
    await ok('rm -rf /var/lib/firewall-agent && systemctl start firewall-agent-boot');
    expect(await show('firewall-agent-boot', 'ActiveState')).toBe('active');
    expect(await show('firewall-agent-boot', 'Result')).toBe('success');
    expect(await ok('nft list chain inet firewall forward')).toMatch(/policy drop;/);
    await eventually('the fallback', async () => (await ok('journalctl -u firewall-agent-boot -o cat')).includes('Could not open file "/var/lib/firewall-agent/disconnected.nft"'), 5_000, 100);
  });
});

describe('firewall-agent.service in its sandbox', () => {
  test('starts, reports READY after its first apply and enforces the files', async () => {
    await ok(`systemctl start ${UNIT}`); // Type=notify: returns once READY=1 arrived (the drop ruleset is in)
    expect(await show(UNIT, 'ActiveState')).toBe('active');
    await eventually('connected', async () => (await show(UNIT, 'StatusText')).startsWith('connected'), 10_000, 100);
    const table = await ok('nft list table inet firewall');
    expect(table).toContain('allow-to-example-com');
    expect(table).toContain('allow-ssh-from-ops');
    // the egress SNAT address, added with ip
    await eventually('egress address', async () => (await ok('ip -j addr show dev vlan104009')).includes('203.0.113.20'), 10_000, 100);
    // /metrics reads the kernel's counters through nft
    const metrics = await ok(`python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9638/metrics").read().decode())'`);
    expect(metrics).toMatch(/^firewall_agent_state\{state="connected"\} 1$/m);
    expect(metrics).toMatch(/^firewall_agent_policy_accepted_\w+_total\{/m); // kernel counters
    // the state directory and its files are root's alone
    expect((await ok('stat -c %a /var/lib/firewall-agent')).trim()).toBe('700');
    expect((await ok('stat -c "%a %n" /var/lib/firewall-agent/*')).trim().split('\n').every((l) => l.startsWith('600 '))).toBe(true);
  });

  test('the DNS proxy listens on port 53 (CAP_NET_BIND_SERVICE), answers through the upstream and opens the FQDN set', async () => {
    await eventually('DNS proxy listening', async () => (await ok(`journalctl -u ${UNIT} -o cat`)).includes('"msg":"DNS proxy listening"'), 5_000, 100);
    const answer = JSON.parse(await ok('python3 /run/host/dns_query.py 192.0.2.1 example.com')) as { rcode: number; addresses: string[] };
    expect(answer).toEqual({ rcode: 0, addresses: ['198.51.100.10'] });
    await eventually('FQDN set element', async () => (await ok('nft list table inet firewall')).includes('198.51.100.10'), 10_000, 100);
  });

  test('the running agent has the seccomp filter, two capabilities, no_new_privs, umask 0077 and its mounts', async () => {
    const pid = await mainPid();
    const status = await ok(`cat /proc/${pid}/status`);
    const field = (name: string) => new RegExp(`^${name}:\\s+(\\S+)$`, 'm').exec(status)![1];
    expect(field('Seccomp')).toBe('2'); // SECCOMP_MODE_FILTER
    expect(field('NoNewPrivs')).toBe('1');
    expect(field('Umask')).toBe('0077');
    const netAdminAndBindService = ((1n << 12n) | (1n << 10n)).toString(16).padStart(16, '0');
    for (const set of ['CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) expect(field(set)).toBe(netAdminAndBindService);
    const mounts = new Map(
      (await ok(`cat /proc/${pid}/mountinfo`))
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map((f) => [f[4]!, { options: f[5]!, fsOptions: f[f.length - 1]! }] as const),
    );
    expect(mounts.get('/proc')!.fsOptions).toContain('hidepid=ptraceable'); // ProtectProc=ptraceable
    for (const ro of ['/', '/proc/sys', '/sys', '/sys/fs/cgroup', '/home', '/root']) expect(mounts.get(ro)!.options).toMatch(/^ro,/);
    expect(mounts.get('/var/lib/firewall-agent')!.options).toMatch(/^rw,/);
    expect(mounts.get('/tmp')!.options).toMatch(/^rw,/); // PrivateTmp
  });

  test("a probe in the unit's own sandbox finds every added restriction refusing, and nothing else", async () => {
    const other = Number(await show('fwa-other', 'MainPID'));
    expect(other).toBeGreaterThan(0);
    const c0 = await cursor();
    await ok('systemctl start fwa-unconfined');
    const unconfined = await probeOutput<Record<string, string>>('sandbox-probe', c0, 'fwa-unconfined');
    expect(unconfined).toMatchObject({ setpriority: 'ok', sched_setaffinity: 'ok', setuid: 'ok', sysctl: 'ok', cgroup: 'ok', otherProcess: 'visible', pid1: 'visible', etc: 'ok' });

    await dropIn('zz-probe.conf', `[Service]\nExecStartPre=/bin/sh -c 'exec /usr/bin/python3 /run/host/sandbox_probe.py ${other}'`);
    try {
      const c1 = await cursor();
      await restart();
      const probe = await probeOutput<Record<string, string>>('sandbox-probe', c1);
      expect(probe).toEqual({
        umask: '0o77', // UMask=0077
        getpriority: 'ok', // @system-service
        io_uring_setup: 'ok', // @system-service (@aio): libuv uses it
        setpriority: 'EPERM', // ~@resources
        sched_setaffinity: 'EPERM', // ~@resources
        setuid: 'EPERM', // ~@privileged
        sysctl: 'EROFS', // ProtectKernelTunables=yes
        cgroup: 'EROFS', // ProtectControlGroups=yes
        otherProcess: 'invisible', // ProtectProc=ptraceable
        pid1: 'invisible',
        self: 'visible',
        etc: 'EROFS', // ProtectSystem=strict
        stateDir: 'ok', // StateDirectory=, ReadWritePaths=
      });
      expect(await show(UNIT, 'ActiveState')).toBe('active'); // and the agent still starts behind it

      // ProtectProc=invisible would hide nothing from a root service: hidepid= exempts gid 0
      await dropIn('zz-invisible.conf', '[Service]\nProtectProc=invisible');
      const c2 = await cursor();
      await restart();
      expect(await probeOutput<Record<string, string>>('sandbox-probe', c2)).toMatchObject({ otherProcess: 'visible', pid1: 'visible' });
    } finally {
      await dropIn('zz-invisible.conf', undefined);
      await dropIn('zz-probe.conf', undefined);
    }
  });

  test('MemoryDenyWriteExecute= stays off: with it V8 dies at start', async () => {
    await dropIn('zz-mdwe.conf', '[Service]\nMemoryDenyWriteExecute=yes');
    try {
      const c = await cursor();
      const r = await inside(`systemctl restart ${UNIT}`);
      expect(r.code).not.toBe(0);
      expect(await show(UNIT, 'Result')).toMatch(/^(signal|core-dump)$/); // SIGTRAP
      // V8 cannot make its code pages executable (mprotect with PROT_EXEC is refused)
      await eventually('V8 fatal error', async () => (await ok(`journalctl -u ${UNIT} --after-cursor='${c}' -o cat`)).includes('v8::base::OS::SetPermissions'), 5_000, 100);
    } finally {
      await dropIn('zz-mdwe.conf', undefined);
      await restart();
    }
    expect(await show(UNIT, 'ActiveState')).toBe('active');
  });
});

describe('restarts', () => {
  /** SIGKILLs the agent `times` times, each time once the next one is up; returns how many restarts happened before systemd gave up (or `times`). */
  async function crash(times: number): Promise<number> {
    for (let i = 0; i < times; i++) {
      const pid = await mainPid();
      await ok(`kill -KILL ${pid}`);
      const up = await eventually(
        'restarted',
        async () => {
          const [state, next] = [await show(UNIT, 'ActiveState'), await mainPid()];
          return state === 'failed' || (state === 'active' && next !== 0 && next !== pid);
        },
        15_000,
        20,
      ).then(
        async () => (await show(UNIT, 'ActiveState')) === 'active',
        () => false,
      );
      if (!up) return i;
    }
    return times;
  }

  test('StartLimitIntervalSec=0: crashing again and again, it is always restarted', async () => {
    expect(await show(UNIT, 'StartLimitIntervalUSec')).toBe('0');
    await dropIn('zz-fast.conf', '[Service]\nRestartSec=100ms'); // only faster than the packaged 2 s
    try {
      await restart();
      const before = Number(await show(UNIT, 'NRestarts'));
      expect(await crash(7)).toBe(7);
      expect(Number(await show(UNIT, 'NRestarts')) - before).toBe(7);
      expect(await show(UNIT, 'ActiveState')).toBe('active');

      // systemd's default limit (5 starts in 10 s) would have given up
      await dropIn('zz-limit.conf', '[Unit]\nStartLimitIntervalSec=10s\nStartLimitBurst=5');
      await restart();
      expect(await crash(7)).toBe(4); // the 5th crash would need a 6th start within 10 s
      expect(await show(UNIT, 'ActiveState')).toBe('failed');
      await eventually('start limit', async () => (await ok(`journalctl -u ${UNIT} -o cat -n 20`)).includes('Start request repeated too quickly.'), 5_000, 100);
    } finally {
      await dropIn('zz-limit.conf', undefined);
      await dropIn('zz-fast.conf', undefined);
      await restart();
    }
    expect(await show(UNIT, 'ActiveState')).toBe('active');
  });

  test('the boot unit loads the drop ruleset the agent keeps current', async () => {
    await ok('nft delete table inet firewall && systemctl restart firewall-agent-boot');
    expect(await show('firewall-agent-boot', 'Result')).toBe('success');
    expect(await ok('nft list chain inet firewall forward')).toMatch(/policy drop;/);
    const invocation = await show('firewall-agent-boot', 'InvocationID');
    expect(await ok(`journalctl _SYSTEMD_INVOCATION_ID=${invocation} -o cat`)).not.toContain('Could not open file');
    await restart(); // back to the policies
  });
});

describe('in a VRF: the drop-in from /usr/share/firewall-agent/vrf.conf.in', () => {
  // `default` is ip's name for no VRF: `ip vrf exec default` skips the VRF lookup (there is no VRF
  // here) and the BPF program, but creates <unit cgroup>/vrf/, moves itself there and execs the agent.
  const vrfConf = (drop?: RegExp) =>
    ok(`mkdir -p ${DROPINS} && sed s/@VRF@/default/g /usr/share/firewall-agent/vrf.conf.in ${drop ? `| grep -Ev '${drop.source}'` : ''} >${DROPINS}/vrf.conf && systemctl daemon-reload`);
  type VrfProbe = { ok: boolean; step: string; error?: string; boundTo?: string; cgroup?: string };

  afterAll(async () => {
    await dropIn('zz-probe.conf', undefined);
    await dropIn('vrf.conf', undefined);
    await restart();
  });

  test('ip vrf exec runs the agent in the vrf cgroup, and ip\'s BPF steps work in the sandbox', async () => {
    await vrfConf();
    await dropIn('zz-probe.conf', '[Service]\nExecStartPre=/usr/bin/python3 /run/host/vrf_probe.py lo');
    const c = await cursor();
    await restart();
    expect(await show(UNIT, 'ActiveState')).toBe('active');
    const pid = await mainPid();
    expect((await ok(`cat /proc/${pid}/cgroup`)).trim().split('\n').find((l) => l.startsWith('0::'))).toBe(`0::/system.slice/${UNIT}/vrf`);
    expect(await ok(`cat /proc/${pid}/comm`)).toBe('firewall-agent\n');
    // load a CGROUP_SOCK program, attach it to <unit>/vrf/lo, and a socket created there is bound
    expect(await probeOutput<VrfProbe>('vrf-probe', c)).toEqual({ ok: true, step: 'done', cgroup: `/system.slice/${UNIT}/vrf/lo`, boundTo: 'lo' });
    // the journal still says firewall-agent, not ip
    expect((await ok(`journalctl -t firewall-agent _PID=${pid} -o cat -n 1`)).trim()).not.toBe('');
    await eventually('connected', async () => (await show(UNIT, 'StatusText')).startsWith('connected'), 10_000, 100);
  });

  test('each relaxation is needed: without SystemCallFilter=bpf or CAP_BPF the program is refused, without ProtectControlGroups=no ip cannot create the cgroup', async () => {
    let c = await cursor();
    await vrfConf(/^SystemCallFilter=bpf$/);
    await restart();
    expect(await probeOutput<VrfProbe>('vrf-probe', c)).toEqual({ ok: false, step: 'load', error: 'Operation not permitted', errno: 1 });

    c = await cursor();
    await vrfConf(/^(CapabilityBoundingSet|AmbientCapabilities)=CAP_BPF$/);
    await restart();
    expect(await probeOutput<VrfProbe>('vrf-probe', c)).toEqual({ ok: false, step: 'load', error: 'Operation not permitted', errno: 1 });

    c = await cursor();
    await vrfConf(/^ProtectControlGroups=no$/);
    const r = await inside(`systemctl restart ${UNIT}`);
    expect(r.code).not.toBe(0);
    expect(await probeOutput<VrfProbe>('vrf-probe', c)).toEqual({ ok: false, step: 'cgroup', error: 'Read-only file system', errno: 30 });
    await eventually('ip failing', async () => (await ok(`journalctl -u ${UNIT} --after-cursor='${c}' -o cat`)).includes('Failed to setup vrf cgroup2 directory'), 5_000, 100);
    await ok(`systemctl stop ${UNIT}`);
  });
});
