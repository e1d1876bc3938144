// Write latency of flag changes through the edge's admin API, as an admin sees it (request
// → 200), on the real stack (wrangler dev + workerd + local KV + Durable Objects, loopback).
// Run it from two checkouts in one session to compare builds side by side, e.g. the KV
// read-modify-write path before issue 11 and the control-plane writer after it:
//
//   node bench/control-plane.mjs [--writes N]            # this checkout's edge/build
//   (cd OTHER_CHECKOUT && node bench/control-plane.mjs)  # the other build, same machine
//
// Each write is a kill-switch toggle (`POST /__edge/features/disable|enable`), one at a time,
// then a PATCH; prints the median and p95 in ms. Needs the builds the e2e suite needs.
import os from 'node:os';

import { startStack } from '../tests/e2e/harness.mjs';

const args = process.argv.slice(2);
const WRITES = Number(args.includes('--writes') ? args[args.indexOf('--writes') + 1] : 200);

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

// The default refresh interval (the harness's 0 would make every call re-check the flag set).
const stack = await startStack({ vars: { REFRESH_SECONDS: '5' } });
try {
  const headers = { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' };
  const timed = async (method, path, body) => {
    const t0 = performance.now();
    const res = await fetch(`${stack.edgeUrl}/__edge${path}`, { method, headers, body: JSON.stringify(body) });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status}`);
    return performance.now() - t0;
  };
  // Warm-up: the first calls start the objects and compile the worker.
  for (let i = 0; i < 10; i++) await timed('POST', `/features/${i % 2 ? 'enable' : 'disable'}`, { flag: 'banner' });
  const toggles = [];
  for (let i = 0; i < WRITES; i++) toggles.push(await timed('POST', `/features/${i % 2 ? 'enable' : 'disable'}`, { flag: 'banner' }));
  const patches = [];
  const sizes = ['small', 'medium', 'large'];
  for (let i = 0; i < WRITES; i++) patches.push(await timed('PATCH', '/flags/page-size', { defaultVariant: sizes[i % 3] }));
  const row = (name, xs) => `| ${name} | ${xs.length} | ${quantile(xs, 0.5).toFixed(1)} | ${quantile(xs, 0.95).toFixed(1)} |`;
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}`);
  console.log('| write | n | p50 ms | p95 ms |\n|---|---:|---:|---:|');
  console.log(row('kill switch (disable/enable)', toggles));
  console.log(row('PATCH defaultVariant', patches));
} finally {
  await stack.stop();
}
