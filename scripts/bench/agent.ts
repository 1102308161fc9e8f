/**
 * Benchmark 4 (issue #14 daemon targets), against real kube-apiservers and the lab: time from
 * the API write of a single policy change to traffic following, at 5,000 and at 30,000 policies,
 * and the nft processes the agent runs per change. Cold start, memory and idle cost are in idle.ts.
 *
 * Settings (environment): FWA_LATENCY_CHANGES (default 120, a multiple of 3: create, update,
 * delete), FWA_LARGE_POLICIES (default 30000), FWA_CREATE_BUDGET_SECONDS (default 420: how long
 * creating the large set may take; the latency is then measured at what was created).
 */
import path from 'node:path';
import { eventually } from '../../test/kube/rest';
import { generatePolicies, policy } from './generate';
import {
  AgentHandle,
  CWNPS,
  Json,
  Landscape,
  NftWrapper,
  deployed,
  line,
  note,
  nftKinds,
  pct,
  secs,
  sleep,
  startAgent,
  statusesWritten,
  waitTraffic,
} from './harness';

const CHANGES = Number(process.env.FWA_LATENCY_CHANGES ?? 120);
const LARGE = Number(process.env.FWA_LARGE_POLICIES ?? 30000);
const CREATE_BUDGET_MS = Number(process.env.FWA_CREATE_BUDGET_SECONDS ?? 420) * 1000;
const SMALL = 5000;

const fmt = (n: number): string => n.toLocaleString('en-US');

/** Creates objects with 16 requests in flight until done or the deadline; returns how many. */
async function createUntil(l: Landscape, objs: readonly Json[], deadline: number): Promise<number> {
  let next = 0;
  let created = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < objs.length && Date.now() < deadline) {
        const o = objs[next++]!;
        await l.api.post(CWNPS, o);
        created++;
      }
    }),
  );
  return created;
}

/** Agent start to the whole set deployed and the agent connected. */
async function started(a: AgentHandle, count: number, timeoutMs: number): Promise<number> {
  await eventually(`${count} policies deployed`, async () => {
    if (a.proc.exited) throw new Error(`agent exited: ${a.proc.stderrText}\n${a.proc.dump()}`);
    return (await deployed(a.metricsPort)) >= count;
  }, timeoutMs, 200);
  await a.proc.waitForLog((l) => l.msg === 'applied ruleset' && l.state === 'connected' && Number(l.deployed) >= count, 60_000);
  return Date.now() - a.startedAt;
}

/** Waits until the agent has applied nothing for `quietMs` (status echoes and the like are done). */
async function quiet(a: AgentHandle, quietMs: number, timeoutMs = 120_000): Promise<void> {
  await eventually('agent quiet', async () => {
    const last = [...a.proc.logs].reverse().find((l) => l.msg === 'applied ruleset');
    return !last || Date.now() - Date.parse(String(last.time)) >= quietMs;
  }, timeoutMs, 500);
}

/**
 * CHANGES single changes (create, update, delete of one policy in turn), each timed from the API
 * write to the first connection that shows it (until.js probes started before the write).
 */
async function latency(l: Landscape, a: AgentHandle, nft: NftWrapper, count: number, target: { median: number; p99?: number }): Promise<void> {
  const label = `${fmt(count)} policies`;
  const times: Record<string, number[]> = { create: [], update: [], delete: [] };
  const logFrom = a.proc.logs.length;
  const nftFrom = nft.mark();
  const loopStart = Date.now();
  for (let i = 0; i < CHANGES; i++) {
    const op = (['create', 'update', 'delete'] as const)[i % 3]!;
    const name = `latency-${Math.floor(i / 3)}`;
    const p = `${CWNPS}/${name}`;
    let start: number;
    let at: number | undefined;
    if (op === 'create') {
      const w = await waitTraffic(l, 'worker', '203.0.113.10', 9000, 'open');
      start = Date.now();
      await l.api.post(CWNPS, policy(name, { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 9000 }] }] }));
      at = await w.result;
    } else if (op === 'update') {
      const w = await waitTraffic(l, 'worker', '203.0.113.10', 8000, 'open');
      start = Date.now();
      // a merge patch (the egress list is replaced): no read first, no conflict with our status writes
      await l.api.patch(p, { spec: { egress: [{ to: [{ cidr: '203.0.113.10/32' }], ports: [{ port: 8000 }] }] } });
      at = await w.result;
    } else {
      const w = await waitTraffic(l, 'worker', '203.0.113.10', 8000, 'closed');
      start = Date.now();
      await l.api.delete(p);
      at = await w.result;
    }
    if (at === undefined) throw new Error(`${op} ${name}: traffic did not follow within 20 s\n${a.proc.dump(15)}`);
    times[op]!.push(Math.max(0, at - start));
  }
  const loopMs = Date.now() - loopStart;
  await quiet(a, 3000);
  const runs = nft.since(nftFrom);

  for (const [op, list] of Object.entries(times)) {
    const s = [...list].sort((x, y) => x - y);
    line(`4. change-to-enforced (${label}): ${op}`, `median ${pct(s, 0.5)} ms, p99 ${pct(s, 0.99)} ms, worst ${s[s.length - 1]} ms (${s.length} ops)`);
  }
  const all = Object.values(times).flat().sort((x, y) => x - y);
  const median = pct(all, 0.5);
  const p99 = pct(all, 0.99);
  line(`4. change-to-enforced (${label}): median of ${all.length}`, `${median} ms`, `≤ ${target.median} ms`, median <= target.median);
  if (target.p99 !== undefined) line(`4. change-to-enforced (${label}): p99 of ${all.length}`, `${p99} ms (worst ${all[all.length - 1]} ms)`, `≤ ${target.p99} ms`, p99 <= target.p99);
  else line(`4. change-to-enforced (${label}): p99 of ${all.length}`, `${p99} ms (worst ${all[all.length - 1]} ms)`);

  // Where the time goes inside the agent, from its own log of the applies during the loop.
  const applied = a.proc.logs.slice(logFrom).filter((x) => x.msg === 'applied ruleset');
  const inc = applied.filter((x) => x.how === 'incremental');
  const dist = (k: string): string => {
    const v = inc.map((x) => Number(x[k])).filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
    return v.length ? `${pct(v, 0.5)}/${pct(v, 0.99)}` : '-';
  };
  line(`4. inside the agent (${label}), median/p99 of its log`, `event to enforced ${dist('sinceChangeMs')} ms: compile ${dist('compileMs')}, apply ${dist('applyMs')} ms`);
  note(`${applied.length} applies during the ${CHANGES} changes (${inc.length} incremental, ${applied.length - inc.length} full), loop took ${secs(loopMs)}`);

  const writes = runs.filter((r) => r.argv === '-f -' || r.argv === '-c -f -');
  line(`4. nft processes per change (${label})`, `${(runs.length / CHANGES).toFixed(2)} (${runs.length} in ${CHANGES} changes, ${(writes.length / CHANGES).toFixed(2)} of them check/apply)`);
  note(`nft runs per change by kind (${label}, periodic checks during the ${secs(loopMs)} included): ${nftKinds(runs, CHANGES)}`);
}

async function main(): Promise<void> {
  const began = Date.now();
  const l = await Landscape.start();
  const nft = new NftWrapper();
  const stateDir = path.join(l.dir, 'state');
  let agent: AgentHandle | undefined;
  try {
    const all = generatePolicies(LARGE);
    let t = Date.now();
    await createUntil(l, all.slice(0, SMALL), Infinity);
    note(`created ${fmt(SMALL)} policies in the shoot in ${secs(Date.now() - t)} (16 requests in flight)`);

    agent = await startAgent(l, nft, stateDir);
    line(`4. start to enforcing with ${fmt(SMALL)} policies`, `${secs(await started(agent, SMALL, 240_000))} (list, compile, full apply)`);
    // Latency is measured in steady state: after the agent has written the first status of every
    // policy (5,000 writes and their watch echoes load the API server and the agent for a while).
    await statusesWritten(l.api, SMALL, 300_000);
    note(`statuses of ${fmt(SMALL)} policies written ${secs(Date.now() - agent.startedAt)} after the agent started`);
    await quiet(agent, 5000);
    await latency(l, agent, nft, SMALL, { median: 150, p99: 400 });

    // The large set: created with the agent stopped (no incremental applies and status writes
    // competing with the creation), then the agent starts on it with its state directory (the
    // kernel still holds the 5,000-policy table).
    await agent.proc.stop();
    agent = undefined;
    t = Date.now();
    const created = await createUntil(l, all.slice(SMALL), t + CREATE_BUDGET_MS);
    const total = SMALL + created;
    note(`created ${fmt(created)} more policies (${fmt(total)} in all) in ${secs(Date.now() - t)}, ${(created / ((Date.now() - t) / 1000)).toFixed(0)}/s with 16 in flight${total < LARGE ? ` (stopped at the ${CREATE_BUDGET_MS / 1000} s budget)` : ''}`);

    agent = await startAgent(l, nft, stateDir);
    line(`4. start to enforcing with ${fmt(total)} policies`, `${secs(await started(agent, total, 900_000))} (restart, table of ${fmt(SMALL)} in the kernel)`);
    const full = agent.proc.logs.find((x) => x.msg === 'applied ruleset' && x.state === 'connected');
    if (full) note(`first full apply at ${fmt(total)}: compile ${String(full.compileMs)} ms, apply ${String(full.applyMs)} ms`);
    t = Date.now();
    await statusesWritten(l.api, total, 900_000);
    note(`statuses of ${fmt(total)} policies written ${secs(Date.now() - agent.startedAt)} after the agent started`);
    await quiet(agent, 5000);
    await latency(l, agent, nft, total, { median: 300 });
    const rss = agent.proc.rssMiB();
    note(`agent RSS at ${fmt(total)} policies after the changes: ${rss.toFixed(0)} MiB`);
  } finally {
    await agent?.proc.stop();
    await l.stop();
    nft.remove();
    note(`agent benchmark took ${secs(Date.now() - began)}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
