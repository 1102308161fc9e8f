/** Log lines: journald priorities, error codes, and problems that repeat logged at most once a minute. */
import { jsonLogger } from '../../src/report/log';

function capture(opts: { priorities?: boolean } = {}): { lines: string[]; clock: { t: number }; log: ReturnType<typeof jsonLogger> } {
  const lines: string[] = [];
  const clock = { t: 1_700_000_000_000 };
  return { lines, clock, log: jsonLogger((l) => lines.push(l), 'debug', {}, { ...opts, now: () => clock.t }) };
}

test('under the journal each line starts with its syslog priority', () => {
  const { lines, log } = capture({ priorities: true });
  log.error('e');
  log.warn('w');
  log.info('i');
  log.debug('d');
  expect(lines.map((l) => l.slice(0, 3))).toEqual(['<3>', '<4>', '<6>', '<7>']);
  expect(JSON.parse(lines[0]!.slice(3))).toMatchObject({ level: 'error', msg: 'e' });
  const plain = capture({ priorities: false });
  plain.log.info('i');
  expect(plain.lines[0]!.startsWith('{')).toBe(true);
});

test('errors keep their code', () => {
  const { lines, log } = capture();
  const err = Object.assign(new Error('open /etc/x: permission denied'), { code: 'EACCES' });
  log.error('cannot read', { error: err });
  expect(JSON.parse(lines[0]!)).toMatchObject({ error: 'open /etc/x: permission denied', errorCode: 'EACCES' });
});

test('the same problem is logged once, then at most every minute with the number of repeats; a changed one at once', () => {
  const { lines, clock, log } = capture();
  for (let i = 0; i < 30; i++) {
    log.warn('cannot read the seed kubeconfig', { error: 'ENOENT: /etc/fc/seed' });
    clock.t += 2000; // a retry every 2 s
  }
  expect(lines).toHaveLength(1);
  log.warn('cannot read the seed kubeconfig', { error: 'ENOENT: /etc/fc/seed' }); // 60 s after the first
  expect(lines).toHaveLength(2);
  expect(JSON.parse(lines[1]!).repeated).toBe(29);
  log.warn('cannot read the seed kubeconfig', { error: 'EACCES: /etc/fc/seed' }); // a different problem
  expect(lines).toHaveLength(3);
  log.info('applied ruleset', { applyMs: 5 });
  log.info('applied ruleset', { applyMs: 5 }); // not a problem: never held back
  expect(lines).toHaveLength(5);
});
