/**
 * The program's exit codes (the README's "Command line" has the table) and the action wrapper that
 * turns a command body's result into one. Here rather than in cli.ts so that commands can use
 * them without importing the program that imports them.
 */

export const EXIT_OK = 0;
/** Something would not be deployed, nft refused the ruleset, or (diff) the apply would change something. */
export const EXIT_NOT_DEPLOYED = 1;
/** Unusable input or a usage error. */
export const EXIT_BAD_INPUT = 2;
/** The environment cannot do it: a missing binary, missing privileges, no user namespaces. */
export const EXIT_ENVIRONMENT = 3;

/** A command body whose result is the exit code; what it throws becomes one line and a code (`exitCodeFor`). */
export function commandAction<A extends unknown[]>(body: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    process.exitCode = await body(...args);
  };
}
