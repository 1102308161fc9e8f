'use strict';
// Continuous traffic from inside a lab namespace for the churn tests (atomicity.test.ts,
// soak.test.ts): one process for the whole run instead of one process per probe.
//
//   node traffic.js '{"targets":[{"id":"x","proto":"tcp","host":"203.0.113.10","port":443,"timeoutMs":3000,"pauseMs":20}],
//                     "flows":[{"id":"f","host":"203.0.113.10","port":443,"intervalMs":100}]}'
//
// Every target has its own loop: one new connection (TCP: connect, then close; UDP: a datagram from
// a new socket, then its reply), recorded as [target index, start ms, end ms, ok, source port],
// a pause, again.
// Every flow is one TCP connection to an echo peer (peer.js) held for the whole run: a numbered line
// every intervalMs, each echo checked, the longest gap between two echoes kept.
// Prints "ready" once every flow is connected; runs until stdin ends (or SIGTERM), then lets the
// attempts in flight finish, waits (at most 5 s) for the flows' outstanding echoes, writes
// { records, flows } as JSON to the file named by "out" and prints "done".
const fs = require('node:fs');
const net = require('node:net');
const dgram = require('node:dgram');

const cfg = JSON.parse(process.argv[2]);
const targets = cfg.targets || [];
const flowCfgs = cfg.flows || [];
const records = [];
let stopping = false;

// A timer that fires in the same loop iteration as the socket's event would win (timers run
// before I/O): give the I/O phase one more turn before calling it a timeout, so a busy machine
// (this process starved for a while) does not turn a connection that did succeed into a failure.
function deadline(ms, fn) {
  return setTimeout(() => setImmediate(fn), ms);
}

function tcpAttempt(t) {
  return new Promise((resolve) => {
    let settled = false;
    const sock = net.connect({ host: t.host, port: t.port });
    const done = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const port = sock.localPort ?? 0;
      sock.destroy();
      resolve([ok, port]);
    };
    const timer = deadline(t.timeoutMs || 500, () => done(false));
    sock.on('connect', () => done(true));
    sock.on('error', () => done(false));
  });
}

// UDP source ports: each UDP target cycles through a range of its own (below the ephemeral range,
// so nothing else in the namespace takes them). A port the kernel picked at random could repeat
// within conntrack's UDP timeout, and a datagram matching an entry that saw a reply is
// "established": forwarded whatever the policies say now, as a stateful firewall should. Cycling
// through UDP_PORTS_PER_TARGET ports keeps a new datagram from being part of an old flow.
const UDP_PORTS_PER_TARGET = 4000;
const udpSlot = new Map(targets.map((t, i) => [i, t]).filter(([, t]) => t.proto === 'udp').map(([i], k) => [i, k]));
if (udpSlot.size * UDP_PORTS_PER_TARGET > 22000) throw new Error('too many UDP targets for ports 10000-31999');
const udpNext = new Map();

function udpAttempt(t, index) {
  const n = udpNext.get(index) ?? 0;
  udpNext.set(index, n + 1);
  const port = 10000 + udpSlot.get(index) * UDP_PORTS_PER_TARGET + (n % UDP_PORTS_PER_TARGET);
  return new Promise((resolve) => {
    let settled = false;
    const sock = dgram.createSocket(net.isIPv6(t.host) ? 'udp6' : 'udp4');
    const done = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { sock.close(); } catch { /* closed */ }
      resolve([ok, port]);
    };
    const timer = deadline(t.timeoutMs || 500, () => done(false));
    sock.on('error', () => done(false));
    sock.on('message', () => done(true));
    sock.bind(port, () => sock.send('probe', t.port, t.host, (err) => { if (err) done(false); }));
  });
}

async function targetLoop(t, index) {
  while (!stopping) {
    const s = Date.now();
    const [ok, port] = await (t.proto === 'udp' ? udpAttempt(t, index) : tcpAttempt(t));
    records.push([index, s, Date.now(), ok ? 1 : 0, port]);
    if (!stopping) await new Promise((r) => setTimeout(r, t.pauseMs ?? 20));
  }
}

function startFlow(f) {
  return new Promise((resolve) => {
    const st = { id: f.id, connected: false, broken: null, sent: 0, echoed: 0, outOfOrder: 0, maxGapMs: 0, maxRttMs: 0, firstEchoAt: 0, lastEchoAt: 0 };
    const sentAt = new Map();
    const sock = net.connect({ host: f.host, port: f.port });
    let buf = '';
    let greeted = false;
    let tick;
    const fail = (why) => {
      if (!stopping && !st.broken) st.broken = `${why} after ${st.sent} lines`;
      clearInterval(tick);
      resolve(st);
    };
    const connectTimer = setTimeout(() => { sock.destroy(); fail('no connection'); }, 5000);
    sock.on('error', (e) => fail(`error ${e.code || e.message}`));
    sock.on('close', () => fail('closed'));
    sock.on('data', (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!greeted) {
          // peer.js greets with the address it saw; then it echoes
          greeted = true;
          clearTimeout(connectTimer);
          st.connected = true;
          tick = setInterval(() => {
            if (stopping) return clearInterval(tick);
            st.sent++;
            sentAt.set(st.sent, Date.now());
            sock.write(`${st.sent}\n`);
          }, f.intervalMs || 100);
          resolve(st);
          continue;
        }
        const n = Number(line);
        const now = Date.now();
        if (n !== st.echoed + 1) st.outOfOrder++;
        st.echoed++;
        if (st.lastEchoAt) st.maxGapMs = Math.max(st.maxGapMs, now - st.lastEchoAt);
        else st.firstEchoAt = now;
        st.lastEchoAt = now;
        if (sentAt.has(n)) {
          st.maxRttMs = Math.max(st.maxRttMs, now - sentAt.get(n));
          sentAt.delete(n);
        }
      }
    });
    st.close = () => sock.destroy();
  });
}

async function main() {
  const flows = await Promise.all(flowCfgs.map(startFlow));
  process.stdout.write('ready\n');
  const loops = targets.map(targetLoop);
  await new Promise((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.on('error', resolve);
    process.on('SIGTERM', resolve);
    process.stdin.resume();
  });
  stopping = true;
  await Promise.all(loops);
  const until = Date.now() + 5000;
  while (flows.some((f) => !f.broken && f.echoed < f.sent) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  for (const f of flows) {
    f.close?.();
    delete f.close;
  }
  // a file, not stdout: megabytes written to a pipe just before exit may not all arrive
  fs.writeFileSync(cfg.out, JSON.stringify({ records, flows }));
  process.stdout.write('done\n');
  process.exit(0);
}

main();
