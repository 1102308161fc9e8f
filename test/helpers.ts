/** Shared test helpers: rendering landscapes from files or in-memory objects. */
import path from 'node:path';
import { parse } from 'yaml';
import { Compiled, DnsProxyAddress, compile } from '../src/compile/compile';
import { Mode, State } from '../src/compile/mode';
import { loadLandscape } from '../src/landscape';
import { Obj } from '../src/model/fields';
import { classify } from '../src/model/inventory';
import { renderTransaction } from '../src/nft/render';
import { existsSync, readFileSync } from 'node:fs';

/** The repository root, also when this file runs compiled from build/bench (benchmarks). */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'examples'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no repository root above ${__dirname}`);
  }
}

export const ROOT = repoRoot();
export const EXAMPLES = path.join(ROOT, 'examples');

export async function renderPaths(
  paths: string[],
  opts: { state?: State; mode?: Mode } = {},
): Promise<{ text: string; compiled: Compiled }> {
  const l = await loadLandscape(paths, opts.state ?? 'connected', opts.mode);
  const compiled = compile(l.input);
  return { text: renderTransaction([compiled.table]), compiled };
}

export function compileObjects(
  objects: Obj[],
  opts: { state?: State; mode?: Mode; shardMax?: number; dnsProxy?: DnsProxyAddress; metricsPort?: number } = {},
): { text: string; compiled: Compiled } {
  const inv = classify(objects.map((object) => ({ origin: 'test', object })));
  const fw = inv.firewalls[0]?.result;
  if (fw && !fw.ok) throw new Error(`invalid Firewall: ${JSON.stringify(fw.problems)}`);
  const compiled = compile({
    firewall: fw?.ok ? fw.firewall : undefined,
    policies: inv.policies,
    services: inv.services,
    state: opts.state ?? 'connected',
    mode: opts.mode,
    shardMax: opts.shardMax,
    dnsProxy: opts.dnsProxy,
    metricsPort: opts.metricsPort,
  });
  return { text: renderTransaction([compiled.table]), compiled };
}

/** The example Firewall as an object, for tests that vary it. */
export function exampleFirewall(variant: 'baseline' | 'forbidden' = 'baseline'): Obj {
  return parse(readFileSync(path.join(EXAMPLES, variant, 'firewall.yaml'), 'utf8')) as Obj;
}

export function cwnp(name: string, spec: unknown, namespace = 'firewall'): Obj {
  return { apiVersion: 'metal-stack.io/v1', kind: 'ClusterwideNetworkPolicy', metadata: { name, namespace }, spec };
}

export function lbService(name: string, spec: Obj, namespace = 'default', status?: Obj): Obj {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { type: 'LoadBalancer', ...spec }, status };
}
