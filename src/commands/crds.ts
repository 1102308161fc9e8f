/** `crds`: the agent's CustomResourceDefinitions, printed or written one file each. */
import { Command } from 'commander';
import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { CRDS } from '../kube/crds';
import { EnvironmentError } from '../report/errors';
import { InputError } from '../sources/files';
import { EXIT_OK, commandAction } from './exit-codes';

export function registerCrds(prog: Command): void {
  prog
    .command('crds')
    .description("print the agent's CustomResourceDefinitions (multi-document YAML), or write one file each")
    .option('--dir <dir>', 'write one file per CRD into this directory')
    .action(
      commandAction(async (opts: { dir?: string }) => {
        if (!opts.dir) {
          process.stdout.write(Object.values(CRDS).map((d) => stringify(d)).join('---\n'));
          return EXIT_OK;
        }
        let isDir: boolean;
        try {
          isDir = statSync(opts.dir).isDirectory();
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? String(e);
          throw new InputError(`crds --dir ${opts.dir}: ${code === 'ENOENT' ? 'no such directory' : `cannot use it (${code})`}`);
        }
        if (!isDir) throw new InputError(`crds --dir ${opts.dir}: not a directory`);
        for (const [file, doc] of Object.entries(CRDS)) {
          const target = path.join(opts.dir, file);
          try {
            writeFileSync(target, stringify(doc));
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code ?? String(e);
            throw new EnvironmentError(`crds: cannot write ${target} (${code})`, 'choose a directory this user may write to');
          }
        }
        return EXIT_OK;
      }),
    );
}
