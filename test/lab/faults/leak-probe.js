'use strict';
// Runs inside a lab namespace until SIGTERM, trying new TCP connections to targets that no policy
// allows, one at a time per target, each bounded by timeoutMs, then prints per target how many
// were tried and how many connected (leaked) as JSON. Prints "ready" once started.
const net = require('node:net');

const { targets, everyMs, timeoutMs } = JSON.parse(process.argv[2]);
const results = targets.map((t) => ({ host: t.host, port: t.port, attempts: 0, connected: 0, leakedAt: [] }));
let stopping = false;

function attempt(i) {
  if (stopping) return;
  const t = targets[i];
  const r = results[i];
  r.attempts++;
  const sock = net.connect({ host: t.host, port: t.port });
  const done = () => {
    clearTimeout(timer);
    sock.destroy();
    if (!stopping) setTimeout(() => attempt(i), everyMs);
  };
  const timer = setTimeout(done, timeoutMs);
  sock.on('connect', () => {
    r.connected++;
    r.leakedAt.push(Date.now());
    done();
  });
  sock.on('error', done);
}

process.on('SIGTERM', () => {
  stopping = true;
  process.stdout.write(`${JSON.stringify(results)}\n`, () => process.exit(0));
});
targets.forEach((_, i) => attempt(i));
process.stdout.write('ready\n');
