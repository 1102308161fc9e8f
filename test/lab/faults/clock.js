'use strict';
// Preloaded into the agent (node --require) to make its wall clock jump: Date.now() returns the
// real time plus the offset in milliseconds written in the file FWA_CLOCK_OFFSET_FILE (read every
// 100 ms; missing or empty: 0). Only Date.now() moves (what the agent's clock, caches and timers'
// bookkeeping use); timers themselves run on the monotonic clock, as on a real clock jump.
const fs = require('node:fs');

const file = process.env.FWA_CLOCK_OFFSET_FILE;
if (file) {
  const realNow = Date.now.bind(Date);
  let offset = 0;
  const read = () => {
    try {
      offset = Number(fs.readFileSync(file, 'utf8').trim()) || 0;
    } catch {
      offset = 0;
    }
  };
  read();
  setInterval(read, 100).unref();
  Date.now = () => realNow() + offset;
}
