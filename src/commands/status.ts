/** `status`: a readable summary of the running agent, from its /status and /metrics. */
import { Command } from 'commander';
import { DEFAULT_METRICS_ADDRESS, parseHostPort } from '../daemon/config';
import { EnvironmentError } from '../report/errors';
import { formatStatus } from '../report/summary';
import { InputError } from '../sources/files';
import { EXIT_OK, commandAction } from './exit-codes';

export function registerStatus(prog: Command): void {
  prog
    .command('status')
    .description('a readable summary of the running agent (state, mode, last apply, policies, top counters)')
    .option('--address <host:port>', 'where the agent serves /status and /metrics', DEFAULT_METRICS_ADDRESS)
    .option('--json', 'print the raw status JSON')
    .action(
      commandAction(async (opts: { address: string; json?: boolean }) => {
        const hp = parseHostPort(opts.address);
        if (!hp) throw new InputError(`--address ${opts.address}: must be host:port`);
        const base = `http://${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
        let status: Record<string, unknown>;
        let metrics: string;
        try {
          status = (await (await fetch(`${base}/status`)).json()) as Record<string, unknown>;
          metrics = await (await fetch(`${base}/metrics`)).text();
        } catch (e) {
          const cause = (e as { cause?: Error }).cause;
          throw new EnvironmentError(`status: the agent does not answer on ${opts.address} (${cause?.message ?? (e as Error).message})`, 'is firewall-agent.service running?');
        }
        process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, metrics));
        return EXIT_OK;
      }),
    );
}
