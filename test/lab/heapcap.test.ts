/**
 * The heap cap the systemd unit sets (NODE_OPTIONS=--max-old-space-size) is enough for the largest
 * landscape we support: the agent started with exactly that cap syncs 10,000 and 30,000 policies,
 * enforces them (traffic through one of them passes, anything else is dropped) and stays up.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generatePolicies } from '../../scripts/bench/generate';
import { EXAMPLES, ROOT, cwnp } from '../helpers';
import { AgentProcess } from '../kube/agent-process';
import { eventually } from '../kube/rest';
import { Lab, tcp } from './lab';

jest.setTimeout(300_000);

let lab: Lab;
let dir: string;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  lab = await Lab.create();
  dir = mkdtempSync(path.join(tmpdir(), 'fwa-heapcap-'));
});

afterAll(async () => {
  await agent?.stop();
  await lab?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** The node options the unit sets, e.g. ['--max-old-space-size=512']. */
function unitNodeOptions(): string[] {
  const unit = readFileSync(path.join(ROOT, 'systemd', 'firewall-agent.service'), 'utf8');
  const m = /^Environment=NODE_OPTIONS=(.+)$/m.exec(unit);
  if (!m) throw new Error('systemd/firewall-agent.service sets no NODE_OPTIONS');
  return m[1]!.trim().split(/\s+/);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

test.each([10_000, 30_000])('under the unit heap cap, the agent syncs and enforces %d policies', async (count) => {
  const flags = unitNodeOptions();
  expect(flags.some((f) => /^--max-old-space-size=\d+$/.test(f))).toBe(true);
  await agent?.stop();
  const input = path.join(dir, `input-${count}`);
  const all = generatePolicies(count);
  mkdirSync(input);
  for (let i = 0; i < all.length; i += 5000) writeFileSync(path.join(input, `policies-${i}.json`), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: all.slice(i, i + 5000) }));
  writeFileSync(path.join(input, 'target.json'), JSON.stringify(cwnp('heapcap-target', { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 9000 }] }] })));
  writeFileSync(path.join(input, 'firewall.yaml'), readFileSync(path.join(EXAMPLES, 'baseline', 'firewall.yaml')));
  const port = await freePort();
  agent = new AgentProcess(
    ['--source-dir', input, '--state-dir', path.join(dir, `state-${count}`), '--netns', lab.ns.fw, '--metrics-address', `127.0.0.1:${port}`, '--firewall-name', 'heapcap'],
    flags,
  );
  await eventually(
    `${count + 1} policies deployed`,
    async () => {
      const s = (await (await fetch(`http://127.0.0.1:${port}/status`)).json().catch(() => undefined)) as { state?: string; policies?: { deployed: number } } | undefined;
      return s?.state === 'connected' && s.policies?.deployed === count + 1 ? true : undefined;
    },
    240_000,
    500,
  ).catch((e: unknown) => {
    throw new Error(`${String(e)}\n${agent!.dump(20)}`);
  });
  await eventually('the target policy enforced', async () => (await lab.reachable('worker', [tcp('203.0.113.10', 9000, { timeoutMs: 500 })]))[0] || undefined, 60_000, 200);
  expect((await lab.reachable('worker', [tcp('203.0.113.10', 9001, { timeoutMs: 300 })]))[0]).toBe(false);
  const m = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const heapMiB = Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(m)?.[1]) / 2 ** 20;
  const rssMiB = Number(/^process_resident_memory_bytes (\S+)$/m.exec(m)?.[1]) / 2 ** 20;
  console.log(`heap cap ${flags.join(' ')}: ${count + 1} policies synced; heap used ${heapMiB.toFixed(0)} MiB, RSS ${rssMiB.toFixed(0)} MiB`);
  expect(agent.exited).toBe(false);
});
