/** `rbac`: the least-privilege RBAC objects for the seed or the shoot. */
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { parseServiceAccount, seedRbac, seedRbacWarnings, shootRbac } from '../kube/rbac';
import { InputError } from '../sources/files';
import { EXIT_OK, commandAction } from './exit-codes';
import { collect } from './options';

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function registerRbac(prog: Command): void {
  prog
    .command('rbac')
    .description('print the least-privilege RBAC objects for the seed or the shoot (multi-document YAML)')
    .addOption(new Option('--cluster <cluster>', 'seed or shoot').choices(['seed', 'shoot']).makeOptionMandatory())
    .option('--namespace <ns>', 'seed: the shoot namespace holding the Firewall')
    .option('--user <name>', 'bind to this user instead of a ServiceAccount')
    .option('--service-account <ns/name>', 'bind to this ServiceAccount (NAMESPACE/NAME)', 'firewall/firewall-agent')
    .option('--secret <name>', "seed: a shoot-access secret the agent may read (repeatable; the two named in the Firewall's status.shootAccess)", collect, [])
    .action(
      commandAction(async (opts: { cluster: 'seed' | 'shoot'; namespace?: string; user?: string; serviceAccount: string; secret: string[] }) => {
        let subject;
        if (opts.user) {
          subject = { kind: 'User', name: opts.user } as const;
        } else {
          const sa = parseServiceAccount(opts.serviceAccount);
          if (!sa.ok) throw new InputError(`rbac --service-account ${sa.error}`);
          subject = sa.subject;
        }
        let objs;
        if (opts.cluster === 'seed') {
          if (!opts.namespace) throw new InputError('rbac --cluster seed needs --namespace (the shoot namespace in the seed that holds the Firewall)');
          for (const w of seedRbacWarnings({ secretNames: opts.secret })) err(`warning: rbac: ${w}`);
          objs = seedRbac({ namespace: opts.namespace, subject, secretNames: opts.secret });
        } else {
          objs = shootRbac({ subject });
        }
        process.stdout.write(objs.map((o) => stringify(o)).join('---\n'));
        return EXIT_OK;
      }),
    );
}
