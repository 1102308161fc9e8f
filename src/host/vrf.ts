/** Which VRF this process runs in (`ip vrf identify`): the agent checks it at start when configured. */
import { exec } from '../nft/runner';

export async function currentVrf(pid: number = process.pid): Promise<{ vrf: string | undefined; error?: string }> {
  const r = await exec(['ip', 'vrf', 'identify', String(pid)], undefined, 5000).catch((e: unknown) => ({ code: 1, stdout: '', stderr: String(e) }));
  if (r.code !== 0) return { vrf: undefined, error: r.stderr.trim() || `ip vrf identify exited ${r.code}` };
  return { vrf: r.stdout.trim() || undefined };
}
