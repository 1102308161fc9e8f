'use strict';
// Removes namespaces left behind by a lab run that was killed (normal runs remove their own).
const { execFileSync } = require('node:child_process');

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

module.exports = async () => {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return; // no iproute2: the lab tests will say so themselves
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    // Test namespaces carry their run's pid (fwa-<pid>-…, fwa-<what>-<pid>): those of a run still
    // going (another jest in parallel) are left alone.
    const pid = Number((/^fwa-(\d+)-/.exec(name ?? '') ?? /^fwa-[a-z]+-(\d+)$/.exec(name ?? '') ?? [])[1]);
    if (pid && alive(pid)) continue;
    if (name && name.startsWith('fwa-')) {
      try { execFileSync('ip', ['netns', 'del', name]); } catch { /* already gone */ }
    }
  }
};
