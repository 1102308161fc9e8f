'use strict';
// Resolves names from inside a lab namespace and, right after each answer, connects to the first
// address on a TCP port: the client's view of "the set holds the address before I have it".
// Input (argv[2]): { server, tries: [{ name, type: 'A'|'AAAA', tcp?, connect?: { port, timeoutMs } }] }.
// Output: one JSON array, per try { rcode, addresses, ttls, connected, dnsMs, error? }. Every step
// is bounded in time; wire format by dns-packet (the project's dependency).
const dgram = require('node:dgram');
const net = require('node:net');
const { randomInt } = require('node:crypto');
const dnsPacket = require('dns-packet');

const input = JSON.parse(process.argv[2]);
const DNS_TIMEOUT_MS = input.dnsTimeoutMs || 3000;

function query(name, type, id) {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
}

function udp(server, msg, id) {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => { sock.close(); reject(new Error('dns timeout')); }, DNS_TIMEOUT_MS);
    sock.on('error', (e) => { clearTimeout(timer); sock.close(); reject(e); });
    sock.on('message', (buf) => {
      let p;
      try { p = dnsPacket.decode(buf); } catch { return; }
      if (p.id !== id) return;
      clearTimeout(timer);
      sock.close();
      resolve(p);
    });
    sock.send(msg, 53, server);
  });
}

function tcp(server, msg, id) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: server, port: 53 });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('dns timeout')); }, DNS_TIMEOUT_MS);
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('connect', () => sock.write(dnsPacket.streamEncode(dnsPacket.decode(msg))));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      clearTimeout(timer);
      sock.destroy();
      try {
        const p = dnsPacket.streamDecode(buf);
        if (p.id !== id) reject(new Error('wrong id'));
        else resolve(p);
      } catch (e) { reject(e); }
    });
  });
}

function connect(host, port, timeoutMs) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok) => { clearTimeout(timer); sock.destroy(); resolve(ok); };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('error', () => done(false));
    // the lab's peers greet with a line: the connection was accepted end to end
    sock.on('data', () => done(true));
  });
}

async function one(t) {
  const id = randomInt(0, 65536);
  const started = Date.now();
  try {
    const p = await (t.tcp ? tcp : udp)(input.server, query(t.name, t.type || 'A', id), id);
    const dnsMs = Date.now() - started;
    const records = (p.answers || []).filter((a) => a.type === (t.type || 'A'));
    const addresses = records.map((a) => a.data);
    const out = { rcode: p.rcode, addresses, ttls: records.map((a) => a.ttl), dnsMs, connected: null };
    // at once: no pause between the answer and the SYN
    if (t.connect && addresses.length > 0) out.connected = await connect(addresses[0], t.connect.port, t.connect.timeoutMs || 800);
    return out;
  } catch (e) {
    return { rcode: null, addresses: [], ttls: [], dnsMs: Date.now() - started, connected: null, error: String(e.message || e) };
  }
}

(async () => {
  const out = [];
  for (const t of input.tries) out.push(await one(t));
  process.stdout.write(JSON.stringify(out));
})();
