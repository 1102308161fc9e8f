'use strict';
// A lab host's services: TCP and UDP listeners on every address of its namespace that answer with
// the peer address they saw (so tests can check NAT), and echo TCP lines (for long-lived flows).
// Usage: node peer.js '{"tcp":[22,443],"udp":[53]}'   — runs until killed.
const net = require('node:net');
const dgram = require('node:dgram');
const os = require('node:os');

const cfg = JSON.parse(process.argv[2]);
const plain = (a) => (a && a.startsWith('::ffff:') ? a.slice(7) : a);
let pending = cfg.tcp.length + cfg.udp.length;
const ready = () => { if (--pending === 0) process.stdout.write('ready\n'); };

for (const port of cfg.tcp) {
  const srv = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.write(`${plain(sock.remoteAddress)}\n`);
    sock.on('data', (d) => sock.write(d));
  });
  srv.listen({ host: '::', port, ipv6Only: false }, ready);
}
// UDP replies must come from the address that was asked, or conntrack on the firewall would not
// see them as replies: one socket per local address instead of one wildcard socket.
const locals = Object.values(os.networkInterfaces()).flat().filter((a) => !a.address.startsWith('fe80:'));
pending += cfg.udp.length * locals.length - cfg.udp.length;
for (const port of cfg.udp) {
  for (const a of locals) {
    const s = dgram.createSocket(a.family === 'IPv6' ? { type: 'udp6', ipv6Only: true } : 'udp4');
    s.on('message', (_msg, rinfo) => s.send(`${plain(rinfo.address)}\n`, rinfo.port, rinfo.address));
    s.bind(port, a.address, ready);
  }
}
