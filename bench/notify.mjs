// Web Push delivery throughput of the edge's Queue consumer (issue 16), through workerd
// (`wrangler dev`, its local Queue and Durable Objects) and a push service on 127.0.0.1,
// side by side with baselines run the same way in the same run: a ten-line JavaScript Worker
// whose queue consumer only POSTs (bench/notify-baseline-worker.mjs), the same plus the
// WebCrypto work of one delivery, and the same plus two Durable Object calls per delivery.
//
//   node bench/notify.mjs [--n 200] [--runs 3] [--json] [--short: edge, plain baseline, METRICS=off]
//     [--refresh0: also the edge with REFRESH_SECONDS=0]
//
// Needs the edge built (scripts/build-edge.sh); the build is copied first, so a rebuild by
// someone else during the run changes nothing. Every row uses wrangler.toml's queue settings
// (max_batch_size 10, max_batch_timeout 1 s) except the one labelled "tuned". The time is
// from the send request until the push service has received every message; Miniflare's
// per-batch log lines ("QUEUE … 10/10 (312ms)") give the time spent inside the consumer.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { cpus } from 'node:os';
import { join } from 'node:path';

import ece from 'http_ece';

import { controlConfig, freePort, ROOT, waitFor } from '../tests/e2e/harness.mjs';
import { makeSubscriber, makeVapidKeys } from '../tests/e2e/push-service.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const N = Number(arg('n', 200));
const RUNS = Number(arg('runs', 3));
const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');
const TOKEN = 'bench-admin-token-0123456789abcdef';
const env = {
  ...process.env,
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  XDG_CONFIG_HOME: join(ROOT, '.cache', 'xdg-config'),
  WRANGLER_LOG_PATH: join(ROOT, '.cache', 'wrangler-logs'),
  WRANGLER_REGISTRY_PATH: join(ROOT, '.cache', 'wrangler-registry'),
};

/** A push service that answers 201 at once and notes when each request arrived. */
async function pushService() {
  const arrivals = [];
  const bodies = new Map();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      arrivals.push(performance.now());
      if (bodies.size < 3) bodies.set(req.url, { headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(201).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    arrivals,
    bodies,
    reset() { arrivals.length = 0; bodies.clear(); },
    close() { server.close(); server.closeAllConnections?.(); },
  };
}

/** `wrangler dev` on `config` (in `dir`), log level info (the queue's batch lines). */
async function wrangler(dir, configs, vars = {}) {
  const port = await freePort();
  const inspector = await freePort();
  const child = spawn(WRANGLER, [
    'dev', ...[configs].flat().flatMap((c) => ['--config', c]), '--local', '--ip', '127.0.0.1', '--port', String(port),
    '--inspector-port', String(inspector), '--persist-to', join(dir, 'state'),
    '--show-interactive-dev-session=false', '--log-level', 'info',
    ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ], { cwd: dir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  for (const s of [child.stdout, child.stderr]) s.on('data', (d) => log.push(...d.toString().split('\n')));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
    await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 5000))]);
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
  };
  process.on('exit', () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } });
  return { url, log, stop };
}

/** Queue batches Miniflare logged since `from`: [{size, ms}]. */
function batches(log, from, queue) {
  const plain = log.slice(from).map((l) => l.replace(/\x1b\[[0-9;]*m/g, ''));
  return plain
    .map((l) => l.match(new RegExp(`QUEUE ${queue} (\\d+)/(\\d+) \\((\\d+)ms\\)`)))
    .filter(Boolean)
    .map((m) => ({ size: Number(m[2]), ms: Number(m[3]) }));
}

/** The batch lines of one run, once Miniflare logged all N messages (or 10 s passed). */
async function logged(log, from, queue) {
  await waitFor(() => batches(log, from, queue).reduce((a, b) => a + b.size, 0) >= N, {
    what: 'the queue batch log lines', timeoutMs: 10000, intervalMs: 50,
  }).catch(() => {});
  return batches(log, from, queue);
}

/** Waits until the push service has `n` more arrivals than `before`; returns the last time. */
async function arrived(push, before, n) {
  await waitFor(() => push.arrivals.length >= before + n, { what: `${n} deliveries`, timeoutMs: 300000, intervalMs: 5 });
  return push.arrivals[before + n - 1];
}

function summarise(name, runs, note) {
  const rates = runs.map((r) => r.rate).sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)];
  const batchMs = runs.flatMap((r) => r.batches);
  const full = batchMs.filter((b) => b.size >= 10);
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    name,
    note,
    deliveriesPerSecond: Math.round(median * 10) / 10,
    runs: rates.map((r) => Math.round(r * 10) / 10),
    batches: Math.round(batchMs.length / runs.length),
    meanBatchMs: mean(full.map((b) => b.ms)) && Math.round(mean(full.map((b) => b.ms))),
    consumerShare: Math.round((100 * mean(runs.map((r) => r.consumerMs / r.totalMs)))) / 100,
  };
}

/** The edge with wrangler.toml's settings (`batchSize` overrides the push queue's). */
async function edgeSetup(push, batchSize, extraVars = {}) {
  const derived = spawnSync('bash', ['-c', 'source scripts/lib.sh && nobuild_config'], { cwd: ROOT, encoding: 'utf8' });
  if (derived.status !== 0) throw new Error(derived.stderr);
  const dir = mkdtempSync(join(ROOT, '.wrangler', 'bench-notify-'));
  cpSync(join(ROOT, 'edge', 'build'), join(dir, 'build'), { recursive: true });
  const config = readFileSync(join(ROOT, '.wrangler', 'wrangler.nobuild.toml'), 'utf8')
    .replace(/^main = .*$/m, 'main = "build/index.js"');
  writeFileSync(join(dir, 'wrangler.toml'), config);
  const vapid = makeVapidKeys();
  const vars = {
    ADMIN_TOKEN: TOKEN, VAPID_PUBLIC_KEY: vapid.publicKey, VAPID_PRIVATE_KEY: vapid.privateKey,
    VAPID_SUBJECT: 'mailto:bench@example.test', PUSH_ENDPOINT_HOSTS: '127.0.0.1', IDENTITY_KEYS: '',
    ...extraVars,
  };
  // The queue, its consumer and the push store are the control worker's (control/wrangler.toml).
  const control = controlConfig(dir, vars, (text) => {
    if (!batchSize) return text;
    const edited = text.replace(/(queue = "edgeflags-push"\nmax_batch_size = )\d+/, `$1${batchSize}`);
    if (!edited.includes(`max_batch_size = ${batchSize}`)) throw new Error('could not set max_batch_size');
    return edited;
  });
  const kv = spawnSync(WRANGLER, ['kv', 'key', 'put', 'flags', '--path', join(ROOT, 'examples', 'flags', 'demo.flagd.json'),
    '--binding', 'FLAGS', '--local', '--persist-to', join(dir, 'state'), '--config', join(dir, 'wrangler.toml')],
  { cwd: dir, env, encoding: 'utf8' });
  if (kv.status !== 0) throw new Error(kv.stderr);
  const w = await wrangler(dir, [join(dir, 'wrangler.toml'), control], vars);
  try {
    await waitFor(async () => (await fetch(`${w.url}/__edge/health`)).ok, { what: 'the edge', timeoutMs: 60000, intervalMs: 200 });
    const keys = Array.from({ length: N }, (_, i) => (i + 1).toString(16).padStart(32, '0'));
    const subscriber = makeSubscriber();
    for (let i = 0; i < N; i += 10) {
      await Promise.all(keys.slice(i, i + 10).map(async (key) => {
        const res = await fetch(`${w.url}/__edge/push/subscriptions`, {
          method: 'POST', headers: { 'content-type': 'application/json', cookie: `ef_uid=${key}` },
          body: JSON.stringify({ endpoint: `${push.base}/push/${key}`, expirationTime: null, keys: { p256dh: subscriber.p256dh, auth: subscriber.auth } }),
        });
        if (res.status !== 201) throw new Error(`subscribe: ${res.status} ${await res.text()}`);
      }));
    }
    const run = async (r) => {
      push.reset();
      const from = w.log.length;
      const t0 = performance.now();
      const res = await fetch(`${w.url}/__edge/notifications`, {
        method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ title: `bench ${r}`, body: 'b', channels: ['push'], audience: { targetingKeys: keys } }),
      });
      const sent = await res.json();
      if (res.status !== 202 || sent.channels.push.queued !== N) throw new Error(`send: ${res.status} ${JSON.stringify(sent)}`);
      const tEnd = await arrived(push, 0, N);
      const b = await logged(w.log, from, 'edgeflags-push');
      if (r === 0) {
        // The deliveries are real: one body decrypts with the subscriber's keys (RFC 8291).
        const [{ body }] = [...push.bodies.values()];
        const plain = JSON.parse(ece.decrypt(body, { version: 'aes128gcm', privateKey: subscriber.ecdh, authSecret: subscriber.auth }).toString());
        if (plain.title !== 'bench 0') throw new Error(`decrypted ${JSON.stringify(plain)}`);
      }
      return { rate: N / ((tEnd - t0) / 1000), totalMs: tEnd - t0, consumerMs: b.reduce((a, x) => a + x.ms, 0), batches: b };
    };
    return { run, stop: () => stopIn(w, dir) };
  } catch (e) {
    await stopIn(w, dir);
    throw e;
  }
}

async function stopIn(w, dir) {
  await w.stop();
  rmSync(dir, { recursive: true, force: true });
}

async function baselineSetup(push, mode) {
  const dir = mkdtempSync(join(ROOT, '.wrangler', 'bench-notify-base-'));
  cpSync(join(ROOT, 'bench', 'notify-baseline-worker.mjs'), join(dir, 'worker.mjs'));
  writeFileSync(join(dir, 'wrangler.toml'), `name = "notify-baseline"
main = "worker.mjs"
compatibility_date = "2026-04-01"
[vars]
MODE = "${mode}"
[[durable_objects.bindings]]
name = "STORE"
class_name = "Store"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["Store"]
[[queues.producers]]
binding = "QUEUE"
queue = "baseline"
[[queues.consumers]]
queue = "baseline"
max_batch_size = 10
max_batch_timeout = 1
`);
  const w = await wrangler(dir, join(dir, 'wrangler.toml'));
  try {
    await waitFor(async () => (await fetch(`${w.url}/`, { method: 'POST', body: '{"n":0,"url":""}' })).ok, { what: 'the baseline worker', timeoutMs: 60000, intervalMs: 200 });
    const run = async () => {
      push.reset();
      const from = w.log.length;
      const t0 = performance.now();
      const res = await fetch(`${w.url}/`, { method: 'POST', body: JSON.stringify({ n: N, url: `${push.base}/push` }) });
      if (!res.ok) throw new Error(`enqueue: ${res.status}`);
      const tEnd = await arrived(push, 0, N);
      const b = await logged(w.log, from, 'baseline');
      return { rate: N / ((tEnd - t0) / 1000), totalMs: tEnd - t0, consumerMs: b.reduce((a, x) => a + x.ms, 0), batches: b };
    };
    return { run, stop: () => stopIn(w, dir) };
  } catch (e) {
    await stopIn(w, dir);
    throw e;
  }
}

// Every consumer is started first; then the runs go round-robin (run 1 of each, run 2 of
// each, …), so that other work on a shared machine weighs on every row alike.
const push = await pushService();
const variants = [
  ['edge consumer (wrangler.toml: batch 10, timeout 1 s)', 'default', () => edgeSetup(push)],
  ['baseline: JS consumer, plain POST', 'baseline', () => baselineSetup(push, 'post')],
  ['edge consumer, METRICS=off (no end-of-batch flush)', 'attribution', () => edgeSetup(push, 0, { METRICS: 'off' })],
];
if (!process.argv.includes('--short')) {
  variants.push(
    ['baseline + WebCrypto of one delivery', 'attribution', () => baselineSetup(push, 'post+crypto')],
    ['baseline + 2 Durable Object calls (SQLite write)', 'attribution', () => baselineSetup(push, 'post+do')],
    ['baseline + 2 Durable Object calls (read only)', 'attribution', () => baselineSetup(push, 'post+doread')],
    ['baseline + WebCrypto + 2 DO calls (write)', 'attribution', () => baselineSetup(push, 'post+crypto+do')],
    ['edge consumer, tuned: max_batch_size 100', 'tuned, not the default', () => edgeSetup(push, 100)],
  );
}
if (process.argv.includes('--refresh0')) {
  // As the e2e suites run it: the flag set re-checked with the writer on every evaluation.
  variants.push(['edge consumer, REFRESH_SECONDS=0 (as in the e2e suites)', 'attribution', () => edgeSetup(push, 0, { REFRESH_SECONDS: '0' })]);
}
const started = [];
const rows = [];
const load = [];
try {
  for (const [name, note, setup] of variants) started.push({ name, note, consumer: await setup(), runs: [] });
  load.push(readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '));
  for (let r = 0; r < RUNS; r++) {
    for (const v of started) v.runs.push(await v.consumer.run(r));
  }
  load.push(readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '));
  for (const v of started) rows.push(summarise(v.name, v.runs, v.note));
} finally {
  for (const v of started) await v.consumer.stop();
  push.close();
}
const machine = { nproc: cpus().length, cpu: cpus()[0]?.model, node: process.version, n: N, runs: RUNS, load };
if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ machine, rows }, null, 2));
} else {
  console.log(`# ${N} deliveries per run, median of ${RUNS} runs (round-robin); ${machine.nproc} × ${machine.cpu}, node ${machine.node}; load average ${load.join(' → ')}`);
  console.log('| consumer | deliveries/s | runs | batches | mean ms per full batch | share of time inside the consumer |');
  console.log('|---|---:|---|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.deliveriesPerSecond} | ${r.runs.join(', ')} | ${r.batches} | ${r.meanBatchMs ?? '–'} | ${Math.round(r.consumerShare * 100)} % |`);
  }
  const base = rows[1].deliveriesPerSecond;
  console.log(`\nedge / baseline (plain POST): ${(rows[0].deliveriesPerSecond / base).toFixed(2)}`);
}
