/**
 * Benchmarks 4–5, against real kube-apiservers and the lab: change-to-enforced latency with 5,000
 * policies loaded, and the agent's memory after syncing 10,000 policies and after rounds of 1,000
 * changes. Prints one summary line per figure.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exampleFirewall } from '../../test/helpers';
import { AgentProcess } from '../../test/kube/agent-process';
import { ControlPlane } from '../../test/kube/controlplane';
import { Rest, eventually } from '../../test/kube/rest';
import { boundToken, installLandscape, kubeconfig } from '../../test/kube/setup';
import { Lab, tcp } from '../../test/lab/lab';
import { generatePolicies, policy } from './generate';

type Json = Record<string, unknown>;
/** Node flags for the agent process: none, as the systemd unit runs it (a heap cap of 384 MiB
 * is not enough to sync 10,000 policies today, see BENCHMARKS.md). */
const NODE_FLAGS: string[] = [];
const SEED_NS = 'shoot--bench';
const FW_NAME = 'bench-firewall';
const CWNPS = '/apis/metal-stack.io/v1/namespaces/firewall/clusterwidenetworkpolicies';

function line(name: string, value: string, target?: string, met?: boolean): void {
  const verdict = met === undefined ? '' : met ? '  [target met]' : '  [target MISSED]';
  console.log(`${name.padEnd(58)} ${value}${target ? `  (target ${target})` : ''}${verdict}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Creates objects with a few requests in flight at once. */
async function createAll(rest: Rest, objs: Json[], parallel = 8): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < objs.length) {
        const o = objs[next++]!;
        await rest.post(CWNPS, o);
      }
    }),
  );
}

async function metrics(port: number): Promise<{ rss: number; heap: number; deployed: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const v = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
  return {
    rss: v(/^process_resident_memory_bytes (\S+)/m) / 2 ** 20,
    heap: v(/^nodejs_heap_size_used_bytes (\S+)/m) / 2 ** 20,
    deployed: v(/^firewall_agent_objects\{kind="ClusterwideNetworkPolicy",outcome="deployed"\} (\S+)/m),
  };
}

/** Heap used is sampled at scrape time and includes garbage not yet collected: the lowest of
 * several samples a second apart is the closer estimate of what is live. */
async function settled(port: number): Promise<{ rss: number; heap: number; heapMin: number }> {
  const samples: { rss: number; heap: number }[] = [];
  for (let i = 0; i < 10; i++) {
    samples.push(await metrics(port));
    await new Promise((r) => setTimeout(r, 1000));
  }
  return { rss: samples[samples.length - 1]!.rss, heap: samples[samples.length - 1]!.heap, heapMin: Math.min(...samples.map((m) => m.heap)) };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function main(): Promise<void> {
  const [seed, shoot] = await Promise.all([ControlPlane.start({ name: 'seed' }), ControlPlane.start({ name: 'shoot' })]);
  const lab = await Lab.create();
  let agent: AgentProcess | undefined;
  try {
    await installLandscape(seed, shoot, SEED_NS);
    const dir = mkdtempSync(path.join(tmpdir(), 'fwa-bench-'));
    writeFileSync(path.join(dir, 'seed.kubeconfig'), kubeconfig(seed, SEED_NS, { token: await boundToken(seed.admin, SEED_NS, 'firewall-agent', 't1') }));
    writeFileSync(path.join(dir, 'shoot.kubeconfig'), kubeconfig(shoot, 'shoot', { token: await boundToken(shoot.admin, 'firewall', 'firewall-agent', 't1') }));
    const fw = exampleFirewall();
    (fw.metadata as Json).name = FW_NAME;
    (fw.metadata as Json).namespace = SEED_NS;
    await seed.admin.post(`/apis/firewall.metal-stack.io/v2/namespaces/${SEED_NS}/firewalls`, { ...fw, status: undefined });
    await seed.admin.patch(`/apis/firewall.metal-stack.io/v2/namespaces/${SEED_NS}/firewalls/${FW_NAME}/status`, { status: fw.status });

    const all = generatePolicies(10000);
    let t = Date.now();
    await createAll(shoot.admin, all.slice(0, 5000));
    console.log(`# created 5,000 policies in the shoot in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    const port = await freePort();
    agent = new AgentProcess([
      '--seed-kubeconfig', path.join(dir, 'seed.kubeconfig'),
      '--shoot-kubeconfig', path.join(dir, 'shoot.kubeconfig'),
      '--firewall-name', FW_NAME,
      '--netns', lab.ns.fw,
      '--state-dir', path.join(dir, 'state'),
      '--metrics-address', `127.0.0.1:${port}`,
    ], NODE_FLAGS);
    t = Date.now();
    await eventually('5,000 policies deployed', async () => (await metrics(port)).deployed >= 5000, 240_000, 500);
    await eventually('connected', async () => agent!.logs.some((l) => l.msg.startsWith('connected')), 60_000, 200);
    line('4. start to enforcing with 5,000 policies', `${((Date.now() - t) / 1000).toFixed(1)} s (list, compile, full apply)`);
    // Latency is measured in steady state: after the agent has written the first status of every
    // policy (5,000 writes and their watch echoes load the API server and the agent for a while).
    await eventually('all statuses written', async () => {
      const list = (await shoot.admin.get(CWNPS)) as unknown as { items: { status?: { state?: string } }[] };
      return list.items.length >= 5000 && list.items.every((o) => o.status?.state);
    }, 300_000, 3000);
    console.log(`# statuses of 5,000 policies written ${((Date.now() - t) / 1000).toFixed(1)} s after the agent started`);

    // 4. change-to-enforced: create, update, delete single policies; time until traffic follows.
    const times: Record<string, number[]> = { create: [], update: [], delete: [] };
    const probe = (port: number, until: 'open' | 'closed') =>
      until === 'open'
        ? lab.probe('worker', [tcp('203.0.113.10', port, { timeoutMs: 20, retry: { everyMs: 2, forMs: 20_000 } })]).then((r) => r[0]!.ok)
        : eventually(`closed ${port}`, async () => !(await lab.reachable('worker', [tcp('203.0.113.10', port, { timeoutMs: 30 })]))[0], 20_000, 0);
    for (let i = 0; i < 50; i++) {
      const op = (['create', 'update', 'delete'] as const)[i % 3]!;
      const name = `latency-${Math.floor(i / 3)}`;
      const path1 = `${CWNPS}/${name}`;
      const start = Date.now();
      if (op === 'create') {
        const wait = probe(9000, 'open');
        await shoot.admin.post(CWNPS, policy(name, { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 9000 }] }] }));
        if (!(await wait)) throw new Error(`${name} never enforced\n${agent.dump(15)}`);
      } else if (op === 'update') {
        const wait = probe(8000, 'open');
        const cur = await shoot.admin.get(path1);
        await shoot.admin.put(path1, { ...cur, spec: { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 8000 }] }] } });
        if (!(await wait)) throw new Error(`${name} update never enforced`);
      } else {
        await shoot.admin.delete(path1);
        await probe(8000, 'closed');
      }
      times[op]!.push(Date.now() - start);
    }
    // Where the time goes inside the agent, from its own log of these applies.
    const own = agent.logs.filter((l) => l.msg === 'applied ruleset' && l.how === 'incremental').slice(-50);
    const med = (k: string) => pct(own.map((l) => Number(l[k])).sort((a, b) => a - b), 0.5);
    line('4. inside the agent (medians of its log)', `event to enforced ${med('sinceChangeMs')} ms: compile ${med('compileMs')}, apply ${med('applyMs')} ms`);
    const everything = Object.values(times).flat().sort((a, b) => a - b);
    const median = pct(everything, 0.5);
    const worst = everything[everything.length - 1]!;
    for (const [op, list] of Object.entries(times)) {
      const s = [...list].sort((a, b) => a - b);
      line(`4. change-to-enforced (5,000 policies): ${op}`, `median ${pct(s, 0.5)} ms, worst ${s[s.length - 1]} ms (${s.length} ops)`);
    }
    line('4. change-to-enforced (5,000 policies): median of 50', `${median} ms`, '< 300 ms', median < 300);
    line('4. change-to-enforced (5,000 policies): worst of 50', `${worst} ms`, '< 1000 ms', worst < 1000);

    // 5. memory after 10,000 policies and after rounds of 1,000 changes
    t = Date.now();
    await createAll(shoot.admin, all.slice(5000));
    await eventually('10,000 policies deployed', async () => (await metrics(port)).deployed >= 10000, 300_000, 500);
    await new Promise((r) => setTimeout(r, 5000));
    const synced = await settled(port);
    line('5. memory after syncing 10,000 policies', `RSS ${synced.rss.toFixed(0)} MiB, heap used ${synced.heap.toFixed(0)} MiB (lowest of 10 samples ${synced.heapMin.toFixed(0)})`, '< 150 MiB', synced.rss < 150);
    const rounds: { rss: number; heap: number; heapMin: number }[] = [];
    for (let round = 0; round < 2; round++) {
      const changes = all.slice(round * 1000, round * 1000 + 1000);
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < changes.length) {
            const o = changes[next++]!;
            const name = (o.metadata as Json).name as string;
            const cur = await shoot.admin.get(`${CWNPS}/${name}`);
            const spec = o.spec as { egress: { ports: { port?: number }[] }[] };
            const changed = { egress: spec.egress.map((e) => ({ ...e, ports: [{ protocol: 'TCP', port: 20000 + round }] })) };
            await shoot.admin.put(`${CWNPS}/${name}`, { ...cur, spec: changed });
          }
        }),
      );
      await eventually('changes applied', async () => (await metrics(port)).deployed >= 10000, 120_000, 500);
      await new Promise((r) => setTimeout(r, 5000));
      const m = await settled(port);
      rounds.push(m);
      line(`5. memory after ${round + 1} x 1,000 changes`, `RSS ${m.rss.toFixed(0)} MiB, heap used ${m.heap.toFixed(0)} MiB (lowest of 10 samples ${m.heapMin.toFixed(0)})`, '< 150 MiB', m.rss < 150);
    }
    line('5. growth between the two rounds of changes', `RSS ${(rounds[1]!.rss - rounds[0]!.rss).toFixed(0)} MiB, lowest heap ${(rounds[1]!.heapMin - rounds[0]!.heapMin).toFixed(0)} MiB`, 'no growth');
    const applied = agent.logs.filter((l) => l.msg === 'applied ruleset');
    const inc = applied.filter((l) => l.how === 'incremental').length;
    console.log(`# applies during the run: ${applied.length} (${inc} incremental, ${applied.length - inc} full)`);
  } finally {
    await agent?.stop();
    await lab.destroy();
    await Promise.all([seed.stop(), shoot.stop()]);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
