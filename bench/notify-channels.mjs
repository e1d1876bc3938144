// The in-app and e-mail channels beside Web Push (issue 16), through workerd (`wrangler dev`
// via the e2e harness: local Queue and Durable Objects, wrangler.toml's queue settings) in
// one run on one stack:
//   1. deliveries per second of the edge's Queue consumer, e-mail (loopback e-mail API that
//      answers 202 at once) beside push (loopback push service that answers 201 at once) —
//      the same queue, the same batch settings, N recipients each, RUNS runs alternating;
//   2. the latency of `GET /__edge/inbox` for a visitor who sees 50 items, beside
//      `GET /__edge/health` (the edge's cheapest answer) — sequential requests, medians.
//
//   node bench/notify-channels.mjs [--n 100] [--runs 3] [--gets 120]
//
// N and GETS stay under the rate limit of wrangler.toml (300 per minute per class).
import { createServer } from 'node:http';
import { once } from 'node:events';
import { cpus } from 'node:os';

import { ADMIN_TOKEN, DEMO_FLAGS, startStack, waitFor } from '../tests/e2e/harness.mjs';
import { makeSubscriber, makeVapidKeys } from '../tests/e2e/push-service.mjs';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('n', 100);
const RUNS = arg('runs', 3);
const GETS = arg('gets', 120);

/** A server on 127.0.0.1 answering `status` at once and noting when each request arrived. */
async function sink(status) {
  const arrivals = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      arrivals.push(performance.now());
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { base: `http://127.0.0.1:${server.address().port}`, arrivals, close: () => { server.close(); server.closeAllConnections?.(); } };
}

const push = await sink(201);
const mail = await sink(202);
const vapid = makeVapidKeys();
const flags = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
flags.flags['bench-audience'] = { state: 'ENABLED', variants: { yes: true, no: false }, defaultVariant: 'yes' };
const flagFile = join(mkdtempSync(join(tmpdir(), 'ef-bench-')), 'flags.json');
writeFileSync(flagFile, JSON.stringify(flags));
const stack = await startStack({
  seed: { flags: { path: flagFile } },
  vars: {
    VAPID_PUBLIC_KEY: vapid.publicKey, VAPID_PRIVATE_KEY: vapid.privateKey, VAPID_SUBJECT: 'mailto:ops@example.test',
    PUSH_ENDPOINT_HOSTS: '127.0.0.1', EMAIL_API_URL: `${mail.base}/send`, EMAIL_API_HOSTS: '127.0.0.1',
    EMAIL_FROM: 'shop@example.test', EMAIL_API_AUTH: 'Bearer bench',
  },
});
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
const key = (i) => i.toString(16).padStart(32, '0');
try {
  const keys = [];
  for (let i = 1; i <= N; i++) {
    keys.push(key(i));
    const sub = makeSubscriber();
    const s = await fetch(`${stack.edgeUrl}/__edge/push/subscriptions`, {
      method: 'POST', headers: { 'content-type': 'application/json', cookie: `ef_uid=${key(i)}` },
      body: JSON.stringify({ endpoint: `${push.base}/push/${i}`, keys: { p256dh: sub.p256dh, auth: sub.auth } }),
    });
    if (s.status !== 201) throw new Error(`subscribe: ${s.status}`);
    const c = await fetch(`${stack.edgeUrl}/__edge/notifications/contacts`, {
      method: 'PUT', headers: admin, body: JSON.stringify({ targetingKey: key(i), email: `u${i}@mail.example.test` }),
    });
    if (c.status !== 204) throw new Error(`contact: ${c.status}`);
  }
  const rows = { push: [], email: [] };
  for (let run = 0; run < RUNS; run++) {
    for (const [channel, service] of [['push', push], ['email', mail]]) {
      const before = service.arrivals.length;
      const t0 = performance.now();
      const res = await fetch(`${stack.edgeUrl}/__edge/notifications`, {
        method: 'POST', headers: admin,
        body: JSON.stringify({ title: `bench ${run}`, body: 'b', channels: [channel], audience: { targetingKeys: keys } }),
      });
      if (res.status !== 202) throw new Error(`send: ${res.status} ${await res.text()}`);
      await waitFor(() => service.arrivals.length >= before + N || null, { what: `${N} ${channel} deliveries`, timeoutMs: Number(process.env.BENCH_TIMEOUT_MS || 300000), intervalMs: 5 }).catch((e) => { console.error(channel, service.arrivals.length - before, 'arrived'); console.error(stack.logs().edge.split('\n').slice(-60).join('\n')); throw e; });
      const seconds = (service.arrivals[before + N - 1] - t0) / 1000;
      rows[channel].push(N / seconds);
    }
  }
  // Inbox: 50 items this visitor sees (a flag audience everybody is in).
  for (let i = 0; i < 50; i++) {
    const res = await fetch(`${stack.edgeUrl}/__edge/notifications`, {
      method: 'POST', headers: admin,
      body: JSON.stringify({ title: `item ${i}`, body: 'b', channels: ['inapp'], audience: { flag: 'bench-audience', variant: 'yes' } }),
    });
    if (res.status !== 202) throw new Error(`inapp send: ${res.status}`);
  }
  const first = await (await fetch(`${stack.edgeUrl}/__edge/inbox`, { headers: { cookie: `ef_uid=${key(1)}` } })).json();
  if (first.items.length !== 50) throw new Error(`inbox has ${first.items.length} items`);
  const time = async (url, headers) => {
    const ms = [];
    for (let i = 0; i < GETS; i++) {
      const t = performance.now();
      const res = await fetch(url, { headers });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
      ms.push(performance.now() - t);
    }
    ms.sort((a, b) => a - b);
    return { median: ms[Math.floor(ms.length / 2)], p90: ms[Math.floor(ms.length * 0.9)] };
  };
  const health = await time(`${stack.edgeUrl}/__edge/health`, {});
  const inbox = await time(`${stack.edgeUrl}/__edge/inbox`, { cookie: `ef_uid=${key(1)}` });
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const out = {
    machine: `${cpus().length} × ${cpus()[0]?.model}`, node: process.version, n: N, runs: RUNS, gets: GETS,
    deliveriesPerSecond: { push: median(rows.push), email: median(rows.email), pushRuns: rows.push, emailRuns: rows.email },
    ratioEmailToPush: median(rows.email) / median(rows.push),
    latencyMs: { health, inbox50: inbox, ratioMedian: inbox.median / health.median },
  };
  console.log(JSON.stringify(out, null, 2));
} finally {
  await stack.stop();
  push.close();
  mail.close();
}
