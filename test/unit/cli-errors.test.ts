/**
 * The CLI's error contract in isolation: which exit code an error gets (0 ok, 1 refused, 2 input or
 * usage, 3 environment), that it is one line, and the RBAC input checks.
 */
import { CommanderError } from 'commander';
import { EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_NOT_DEPLOYED, EXIT_OK, exitCodeFor, reportError } from '../../src/cli';
import { parseServiceAccount, seedRbacWarnings } from '../../src/kube/rbac';
import { NftError, environmentProblem, exec } from '../../src/nft/runner';
import { EnvironmentError, oneLine } from '../../src/report/errors';
import { InputError } from '../../src/sources/files';

function nftError(stderr: string, operation = 'check'): NftError {
  return new NftError(operation, { code: 1, stdout: '', stderr });
}

function captured(fn: () => number): { code: number; lines: string[] } {
  const lines: string[] = [];
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    lines.push(...String(s).split('\n').filter((l) => l !== ''));
    return true;
  });
  try {
    return { code: fn(), lines };
  } finally {
    spy.mockRestore();
  }
}

describe('environmentProblem', () => {
  test('a missing binary, with the package to install', async () => {
    const e = await exec(['nft-that-does-not-exist']).catch((x: unknown) => x);
    const p = environmentProblem(e);
    expect(p?.message).toBe('nft-that-does-not-exist: command not found');
    const nft = environmentProblem(Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT', syscall: 'spawn nft', path: 'nft' }));
    expect(nft?.hint).toBe('install nftables (Debian: apt-get install nftables)');
  });

  test('no permission', () => {
    const p = environmentProblem(nftError('netlink: Error: cache initialization failed: Operation not permitted\n'));
    expect(p?.message).toBe('nft check: netlink: Error: cache initialization failed: Operation not permitted');
    expect(p?.hint).toContain('needs root');
  });

  test('user namespaces not available', () => {
    const p = environmentProblem(nftError('unshare: unshare failed: Operation not permitted\n'));
    expect(p?.message).toBe('nft check: cannot create a user and network namespace (unshare: unshare failed: Operation not permitted)');
    expect(p?.hint).toContain('user namespaces are not available');
  });

  test('nft refusing the ruleset is not the environment', () => {
    expect(environmentProblem(nftError('/dev/stdin:3:1-5: Error: syntax error, unexpected junk\n'))).toBeUndefined();
    expect(environmentProblem(new InputError('x'))).toBeUndefined();
    expect(environmentProblem(new Error('boom'))).toBeUndefined();
  });
});

test('exec still kills a command that runs too long, and returns at once when it cannot start', async () => {
  const slow = await exec(['sleep', '5'], undefined, 200);
  expect(slow.code).toBe(128);
  expect(slow.stderr).toBe('killed by SIGTERM\n');
  const t0 = Date.now();
  await expect(exec(['/nonexistent/nft'])).rejects.toMatchObject({ code: 'ENOENT' });
  expect(Date.now() - t0).toBeLessThan(1000);
});

describe('exit codes', () => {
  test.each([
    ['commander help/version', new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'), EXIT_OK],
    ['a commander usage error', new CommanderError(1, 'commander.unknownOption', "error: unknown option '--x'"), EXIT_BAD_INPUT],
    ['unusable input', new InputError('f.yaml: bad'), EXIT_BAD_INPUT],
    ['nft refusing', nftError('/dev/stdin:3:1-5: Error: syntax error\n'), EXIT_NOT_DEPLOYED],
    ['no permission for nft', nftError('Operation not permitted'), EXIT_ENVIRONMENT],
    ['an EnvironmentError', new EnvironmentError('x', 'y'), EXIT_ENVIRONMENT],
    ['EACCES', Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' }), EXIT_ENVIRONMENT],
  ])('%s', (_what, e, code) => {
    expect(exitCodeFor(e)).toBe(code);
  });
});

describe('reportError: one line, a stack only with --debug', () => {
  test('nft refusal: its first error, where in the transaction, and how many more', () => {
    const e = nftError('/dev/stdin:12:3-20: Error: Could not process rule: No such file or directory\n  ip saddr @x accept\n  ^^^^^^^^\n/dev/stdin:14:1-2: Error: x\n');
    const r = captured(() => reportError(e, false));
    expect(r.code).toBe(1);
    expect(r.lines).toEqual([
      'error: nft check refused the ruleset: Error: Could not process rule: No such file or directory [line 12 of the transaction that render prints] (and 1 more)',
    ]);
  });

  test('environment: the reason and a hint', () => {
    const r = captured(() => reportError(new EnvironmentError('nft: command not found', 'install nftables'), false));
    expect(r).toEqual({ code: 3, lines: ['error: nft: command not found; hint: install nftables'] });
  });

  test('an unexpected error: one line pointing at --debug; with --debug the stack', () => {
    const e = new TypeError('x is not a function');
    const plain = captured(() => reportError(e, false));
    expect(plain.lines).toEqual(['error: internal error: x is not a function (--debug shows the stack trace)']);
    const debug = captured(() => reportError(e, true));
    expect(debug.lines[0]).toBe('error: internal error: x is not a function');
    expect(debug.lines[1]).toBe('TypeError: x is not a function');
    expect(debug.lines.some((l) => /^\s+at /.test(l))).toBe(true);
  });

  test('oneLine joins lines and bounds the length', () => {
    expect(oneLine('a\n\n  b  \nc\n')).toBe('a | b | c');
    expect(oneLine('x'.repeat(700))).toHaveLength(601);
  });
});

describe('rbac inputs', () => {
  test('a ServiceAccount must be NAMESPACE/NAME', () => {
    expect(parseServiceAccount('firewall/firewall-agent')).toEqual({ ok: true, subject: { kind: 'ServiceAccount', namespace: 'firewall', name: 'firewall-agent' } });
    expect(parseServiceAccount('justname')).toEqual({ ok: false, error: '"justname" must be NAMESPACE/NAME, e.g. firewall/firewall-agent' });
    expect(parseServiceAccount('a/b/c').ok).toBe(false);
    expect(parseServiceAccount('/name')).toEqual({ ok: false, error: '"/name": namespace "" is not a valid namespace name' });
    expect(parseServiceAccount('ns/')).toEqual({ ok: false, error: '"ns/": "" is not a valid ServiceAccount name' });
    expect(parseServiceAccount('Firewall/agent').ok).toBe(false);
  });

  test('seed objects without secrets say what that leaves out', () => {
    expect(seedRbacWarnings({ secretNames: ['a', 'b'] })).toEqual([]);
    const w = seedRbacWarnings({ secretNames: [] });
    expect(w).toHaveLength(1);
    expect(w[0]).toContain("status.shootAccess");
    expect(w[0]).toContain('--shoot-kubeconfig');
  });
});
