import { readFileSync } from 'node:fs';
import path from 'node:path';
import { disconnectedTable } from '../../src/compile/compile';
import { renderTransaction } from '../../src/nft/render';
import { ROOT } from '../helpers';

test('rules/disconnected.nft is the drop ruleset the compiler renders (regenerate: npm run rules)', () => {
  const file = readFileSync(path.join(ROOT, 'rules', 'disconnected.nft'), 'utf8');
  expect(file).toBe(renderTransaction([disconnectedTable()]));
});
