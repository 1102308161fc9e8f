/**
 * The offline commands on an input: `render` prints the nft transaction, `check` validates it with
 * nft -c, `diff` compares it with the kernel's table, `apply` loads it atomically.
 */
import { Command, Option } from 'commander';
import { Compiled, TABLE_NAME } from '../compile/compile';
import { Mode, State } from '../compile/mode';
import { compileLandscape, loadLandscape, notFullyDeployed, reportLines } from '../landscape';
import { renderTransaction, writeTransaction } from '../nft/render';
import type { NftCli } from '../nft/runner';
import { EXIT_NOT_DEPLOYED, EXIT_OK, commandAction } from './exit-codes';
import { collect, parseMode, parseState } from './options';

interface RenderOptions {
  file: string[];
  state: State;
  mode?: Mode;
}

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * The nft edge, loaded by the commands that run nft: `render` does not, and loading it (with
 * child_process) is a noticeable part of rendering a small landscape.
 */
function nftRunner(): typeof import('../nft/runner') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../nft/runner') as typeof import('../nft/runner');
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The compiled input; the parsed input is garbage once this returns (a large one is tens of MiB). */
async function compiledInput(opts: RenderOptions): Promise<Compiled> {
  const landscape = await loadLandscape(opts.file, opts.state, opts.mode);
  for (const n of landscape.notes) err(`note: ${n}`);
  return compileLandscape(landscape);
}

/** The compiled input, with its report on stderr. */
async function compiled(opts: RenderOptions): Promise<Compiled> {
  const c = await compiledInput(opts);
  for (const line of reportLines(c.reports)) err(line);
  return c;
}

async function build(opts: RenderOptions): Promise<{ text: string; notDeployed: number }> {
  const c = await compiled(opts);
  return { text: renderTransaction([c.table]), notDeployed: notFullyDeployed(c.reports).length };
}

/** The unified diff from the kernel's table to what `text` would make of it; undefined when they are the same. */
async function kernelDiff(nft: NftCli, text: string): Promise<string | undefined> {
  const current = (await nft.listTable('inet', TABLE_NAME, { stateless: true })) ?? '';
  const next = await nftRunner().canonicalListing(text, 'inet', TABLE_NAME);
  if (current === next) return undefined;
  // Loaded here: only diff and apply --dry-run need it, and it costs render a noticeable part of its start.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createTwoFilesPatch } = require('diff') as typeof import('diff');
  return createTwoFilesPatch('kernel', 'rendered', current, next, undefined, undefined, { context: 3 });
}

function withInputs(cmd: Command): Command {
  return cmd
    .option('-f, --file <path>', 'Kubernetes YAML/JSON file or directory (repeatable)', collect, [])
    .addOption(new Option('--state <state>', 'connected or disconnected').default('connected').argParser(parseState))
    .addOption(new Option('--mode <mode>', 'isolation mode; inferred from the Firewall when not given').argParser(parseMode));
}

export function registerRender(prog: Command): void {
  withInputs(prog.command('render').description('print the complete nft transaction for the input')).action(
    commandAction(async (opts: RenderOptions) => {
      // In pieces, never joined: the text of a large landscape is megabytes. Written once all are
      // made, so stdout gets nothing unless the whole transaction rendered.
      const pieces: string[] = [];
      writeTransaction([(await compiled(opts)).table], (piece) => pieces.push(piece));
      for (const piece of pieces) process.stdout.write(piece);
      return EXIT_OK;
    }),
  );
}

export function registerCheck(prog: Command): void {
  withInputs(
    prog.command('check').description('render, then validate with nft -c (without root: in a user namespace); exit 1 if anything is not deployed'),
  ).action(
    commandAction(async (opts: RenderOptions) => {
      const { text, notDeployed } = await build(opts);
      // Without root, nft may not even read the kernel's cache; a user namespace (root there) with its
      // own network namespace lets CI pipelines validate the ruleset against the same kernel.
      const { NftCli, UNPRIVILEGED_PREFIX } = nftRunner();
      await new NftCli(isRoot() ? [] : UNPRIVILEGED_PREFIX).checkText(text);
      if (notDeployed > 0) {
        err(`check: ${notDeployed} object(s) would not be fully deployed`);
        return EXIT_NOT_DEPLOYED;
      }
      err('check: ok');
      return EXIT_OK;
    }),
  );
}

export function registerDiff(prog: Command): void {
  withInputs(
    prog.command('diff').description("unified diff from the kernel's table to what apply would load; exit 0 no changes, 1 changes (like kubectl diff)"),
  ).action(
    commandAction(async (opts: RenderOptions) => {
      const { text } = await build(opts);
      const patch = await kernelDiff(new (nftRunner().NftCli)(), text);
      if (patch === undefined) {
        err('diff: no changes against the kernel');
        return EXIT_OK;
      }
      process.stdout.write(patch);
      return EXIT_NOT_DEPLOYED;
    }),
  );
}

export function registerApply(prog: Command): void {
  withInputs(prog.command('apply').description('apply atomically in this network namespace'))
    .option('--dry-run', 'show the transaction and the diff against the kernel; change nothing')
    .action(
      commandAction(async (opts: RenderOptions & { dryRun?: boolean }) => {
        const { text } = await build(opts);
        const nft = new (nftRunner().NftCli)();
        await nft.checkText(text);
        if (opts.dryRun) {
          process.stdout.write(text);
          const patch = await kernelDiff(nft, text);
          process.stdout.write(patch === undefined ? '\n# no changes against the kernel\n' : `\n# diff against the kernel\n${patch}`);
          return EXIT_OK;
        }
        await nft.applyText(text);
        const applied = await nft.listTable('inet', TABLE_NAME, { stateless: true });
        if (applied === undefined || !/hook forward priority/.test(applied)) {
          err('error: the table is not in the kernel after apply');
          return EXIT_NOT_DEPLOYED;
        }
        err('apply: ok');
        return EXIT_OK;
      }),
    );
}
