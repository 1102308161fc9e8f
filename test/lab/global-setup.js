'use strict';
// Removes namespaces left behind by a lab run that was killed (normal runs remove their own).
const { execFileSync } = require('node:child_process');

module.exports = async () => {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return; // no iproute2: the lab tests will say so themselves
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (name && name.startsWith('fwa-')) {
      try { execFileSync('ip', ['netns', 'del', name]); } catch { /* already gone */ }
    }
  }
};
