'use strict';
// Tries connections from inside a lab namespace and prints one JSON result per target:
// { ok, peer } where peer is the source address the far side saw. Every attempt is bounded.
// A target with "hold" keeps the TCP connection and sends a line every intervalMs for durationMs,
// counting echoes (to watch an established flow across a ruleset change). A target with "bulk"
// sends that many bytes and reports how many were echoed back in time (to see rate limits).
const net = require('node:net');
const dgram = require('node:dgram');

const targets = JSON.parse(process.argv[2]);

function tcp(t) {
  return new Promise((resolve) => {
    const timeout = t.timeoutMs || 600;
    const sock = net.connect({ host: t.host, port: t.port, localAddress: t.source });
    let buf = '';
    let peer = null;
    let sent = 0;
    let echoes = 0;
    const done = (res) => { clearTimeout(timer); sock.destroy(); resolve(res); };
    let timer = setTimeout(() => done({ ok: false, peer: null }), timeout);
    sock.on('error', () => done({ ok: false, peer: null }));
    sock.on('data', (d) => {
      buf += d.toString();
      if (peer === null && buf.includes('\n')) {
        peer = buf.slice(0, buf.indexOf('\n'));
        buf = buf.slice(buf.indexOf('\n') + 1);
        if (t.bulk) {
          // Send `bytes` and count how many come back (echoed) within durationMs.
          clearTimeout(timer);
          let received = buf.length;
          sock.removeAllListeners('data');
          sock.on('data', (chunk) => { received += chunk.length; });
          sock.write(Buffer.alloc(t.bulk.bytes, 120));
          timer = setTimeout(() => done({ ok: true, peer, received }), t.bulk.durationMs);
          return;
        }
        if (!t.hold) return done({ ok: true, peer });
        clearTimeout(timer);
        const tick = setInterval(() => { sock.write('x\n'); sent++; }, t.hold.intervalMs);
        timer = setTimeout(() => { clearInterval(tick); done({ ok: true, peer, sent, echoes }); }, t.hold.durationMs);
        return;
      }
      echoes += (buf.match(/\n/g) || []).length;
      buf = '';
    });
  });
}

function udp(t) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(t.host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => { sock.close(); resolve({ ok: false, peer: null }); }, t.timeoutMs || 600);
    sock.on('error', () => { clearTimeout(timer); sock.close(); resolve({ ok: false, peer: null }); });
    sock.on('message', (m) => { clearTimeout(timer); sock.close(); resolve({ ok: true, peer: m.toString().trim() }); });
    const send = () => sock.send('probe', t.port, t.host);
    if (t.source) sock.bind(0, t.source, send); else send();
  });
}

// A target with "loop" makes `count` connections one after another (connect, then close) and
// reports how long they took: the cost of new connections through the firewall.
function loop(t) {
  return new Promise((resolve) => {
    let left = t.loop.count;
    let failed = 0;
    const start = process.hrtime.bigint();
    const one = () => {
      if (left-- === 0) return resolve({ ok: failed === 0, peer: null, failed, ms: Number(process.hrtime.bigint() - start) / 1e6 });
      const s = net.connect({ host: t.host, port: t.port });
      const timer = setTimeout(() => { failed++; s.destroy(); one(); }, t.timeoutMs || 1000);
      s.on('connect', () => { clearTimeout(timer); s.destroy(); one(); });
      s.on('error', () => { clearTimeout(timer); failed++; one(); });
    };
    one();
  });
}

// A target with "retry" tries again every everyMs until it succeeds or forMs has passed.
async function attempt(t) {
  if (t.loop) return loop(t);
  if (!t.retry) return t.proto === 'udp' ? udp(t) : tcp(t);
  const until = Date.now() + t.retry.forMs;
  for (;;) {
    const r = await (t.proto === 'udp' ? udp(t) : tcp(t));
    if (r.ok || Date.now() > until) return r;
    await new Promise((res) => setTimeout(res, t.retry.everyMs));
  }
}

Promise.all(targets.map(attempt)).then((r) => {
  process.stdout.write(JSON.stringify(r));
});
