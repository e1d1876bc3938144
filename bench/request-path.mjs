// The request path, side by side in one run (issue #15): the edge worker against two ten-line
// JS baselines (bench/baselines/fetch-only.mjs, bench/baselines/cache-only.mjs), all in
// Miniflare/workerd straight (not the `wrangler dev` proxy), against the demo origin on
// loopback, driven by wrk. Rounds rotate the order of the targets; medians of the rounds.
//
//   node bench/request-path.mjs [--duration S] [--rounds N] [--connections N] [--threads N]
//                               [--cold N] [--zipf REQUESTS] [--skip-load] [--quick]
//                               [--browser-headers]
//
// Measures, per target: req/s, p50/p99 latency (wrk), workerd CPU per request (utime+stime
// of that Miniflare instance's workerd process from /proc, before/after each run, divided by
// the requests wrk completed), for
//   MISS: GET /api/version, which the origin answers `Cache-Control: no-store`;
//   HIT:  GET /lab/bench?cacheControl=public,max-age=3600, stored after one warm-up request;
// the origin alone (wrk straight at it); cold start (new Miniflare → first proxied 200);
// the edge wasm's gzip size; and the edge's cache hit ratio on a Zipf trace over 10,000 URLs
// with two variants next to an infinite cache on the same trace.
//
// The edge runs as deployed, two workers in one workerd (bench/edge-miniflare.mjs: the request
// worker of wrangler.toml answering, the control worker of control/wrangler.toml behind its
// service binding and Durable Object bindings), with the deploy configuration's vars and
// bindings (read by wrangler's own `unstable_getMiniflareWorkerOptions`): metrics on,
// bootstrap on, one fixed visitor cookie (unsigned id, as without IDENTITY_KEYS). Its CPU is
// that whole workerd process: both workers, and the Durable Objects the request path calls.
//
// Needs: edge/build and edge/build-control (bash scripts/build-edge.sh), target/release/edgeflags-demo-origin
// (cargo build --release -p edgeflags-demo-origin), wrk (apt-get install -y wrk).
// Prints markdown and writes bench/results/request-path.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Miniflare } from 'miniflare';
import { edgeMiniflareOptions } from './edge-miniflare.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const QUICK = args.includes('--quick');
const DURATION = Number(opt('--duration', QUICK ? 3 : 8));
const ROUNDS = Number(opt('--rounds', QUICK ? 1 : 3));
const CONNECTIONS = Number(opt('--connections', 16));
const THREADS = Number(opt('--threads', 2));
const COLD = Number(opt('--cold', QUICK ? 3 : 7));
const ZIPF = Number(opt('--zipf', QUICK ? 5000 : 30000));
const SKIP_LOAD = args.includes('--skip-load');
// `--browser-headers`: every request also carries the dozen headers a desktop Chrome sends
// on a same-origin fetch (wrk otherwise sends only Host and the visitor cookie).
const BROWSER = args.includes('--browser-headers')
  ? [
      'Accept: application/json, text/plain, */*',
      'Accept-Encoding: gzip, deflate, br, zstd',
      'Accept-Language: en-US,en;q=0.9,de;q=0.8',
      'Connection: keep-alive',
      'Referer: http://127.0.0.1/app/',
      'Sec-Ch-Ua: "Chromium";v="156", "Not.A/Brand";v="99"',
      'Sec-Ch-Ua-Mobile: ?0',
      'Sec-Ch-Ua-Platform: "Linux"',
      'Sec-Fetch-Dest: empty',
      'Sec-Fetch-Mode: cors',
      'Sec-Fetch-Site: same-origin',
      'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36',
    ].flatMap((h) => ['-H', h])
  : [];
const ORIGIN = process.env.EDGEFLAGS_ORIGIN_BIN || join(ROOT, 'target/release/edgeflags-demo-origin');
const EDGE_DIR = process.env.EDGEFLAGS_EDGE_BUILD || join(ROOT, 'edge/build');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const VISITOR = `ef_uid=${'7'.padStart(32, '0')}`;
const MISS_PATH = '/api/version';
const HIT_PATH = '/lab/bench?cacheControl=public,max-age=3600';

if (spawnSync('wrk', ['--version']).error) {
  console.error('wrk is missing: apt-get install -y wrk');
  process.exit(2);
}
for (const f of [ORIGIN, join(EDGE_DIR, 'index.js')]) {
  if (!existsSync(f)) {
    console.error(`${f} is missing (bash scripts/build-edge.sh; cargo build --release -p edgeflags-demo-origin)`);
    process.exit(2);
  }
}

// ---- the origin ---------------------------------------------------------------------------
const origin = spawn(ORIGIN, ['--v1', '127.0.0.1:0', '--v2', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const listening = await new Promise((ok, fail) => {
  origin.stdout.on('data', (d) => {
    for (const line of String(d).split('\n')) {
      try { const m = JSON.parse(line); if (m.event === 'listening') ok(m); } catch { /* not JSON */ }
    }
  });
  origin.on('exit', () => fail(new Error('the demo origin exited')));
});
const ORIGIN_V1 = `http://${listening.v1}`;
const ORIGIN_V2 = `http://${listening.v2}`;

// ---- the targets --------------------------------------------------------------------------
const kvDir = mkdtempSync(join(os.tmpdir(), 'edgeflags-bench-kv-'));
const flags = readFileSync(join(ROOT, 'examples/flags/demo.flagd.json'), 'utf8');

/** The edge (both workers) with the local origins and builds (bench/edge-miniflare.mjs). */
const BENCH_TOKEN = 'bench-admin-token-0123456789abcdef';
const edgeOptions = () =>
  edgeMiniflareOptions({ origins: { v1: ORIGIN_V1, v2: ORIGIN_V2 }, kvPersist: kvDir, vars: { ADMIN_TOKEN: BENCH_TOKEN } });

/** A Miniflare for a target: one worker named `name`, or the edge's two. */
const miniflare = (name, opts) =>
  new Miniflare(opts.workers ? { host: '127.0.0.1', port: 0, ...opts } : { name, host: '127.0.0.1', port: 0, ...opts });

const TARGETS = {
  'js-fetch': () => ({ modules: true, scriptPath: join(ROOT, 'bench/baselines/fetch-only.mjs'), compatibilityDate: '2026-04-01', bindings: { ORIGIN_URL: ORIGIN_V1 } }),
  'js-cache': () => ({ modules: true, scriptPath: join(ROOT, 'bench/baselines/cache-only.mjs'), compatibilityDate: '2026-04-01', bindings: { ORIGIN_URL: ORIGIN_V1 } }),
  // The edge's I/O and header edits without its decisions (bench/baselines/same-work.mjs).
  'js-same-work': () => ({ modules: true, scriptPath: join(ROOT, 'bench/baselines/same-work.mjs'), compatibilityDate: '2026-04-01', bindings: { ORIGIN_URL: ORIGIN_V1 } }),
  edgeflags: edgeOptions,
  // Cold start only: the JS worker in a runtime that also loads the control worker (unused),
  // so that runtime start-up is the same as the edge's and the difference is the request
  // worker's own.
  'js-fetch+control': async () => {
    const { workers, kvPersist } = await edgeOptions();
    return { kvPersist, workers: [{ ...TARGETS['js-fetch'](), name: 'js-fetch' }, workers[1]] };
  },
  // Cold start only: the edge's first proxied request once the control worker and its flag
  // writer already run — as for a new request-worker isolate in production, where the
  // control plane serves every other isolate. The warm-up (an admin read through the control
  // worker itself) is not timed.
  'edgeflags, control warm': edgeOptions,
};
// The smallest workers-rs worker that forwards (bench/baselines/rust-fetch: MISS only), when
// built (`bash bench/baselines/rust-fetch/build.sh`): what wasm-bindgen and workers-rs cost
// before any of the edge's own work.
const RUST_FETCH_DIR = join(ROOT, 'bench/baselines/rust-fetch/build');
if (existsSync(join(RUST_FETCH_DIR, 'index.js'))) {
  TARGETS['rust-fetch'] = () => ({
    modules: true,
    scriptPath: join(RUST_FETCH_DIR, 'index.js'),
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    modulesRoot: RUST_FETCH_DIR,
    compatibilityDate: '2026-04-01',
    bindings: { ORIGIN_URL: ORIGIN_V1 },
  });
}

const workerdPids = () =>
  new Set(
    readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'workerd';
        } catch {
          return false;
        }
      }),
  );

/** Starts a target; returns its URL, its workerd pid and a dispose function. */
async function start(name) {
  const before = workerdPids();
  const mf = miniflare(name, await TARGETS[name]());
  const url = String(await mf.ready).replace(/\/$/, '');
  const pid = [...workerdPids()].find((p) => !before.has(p));
  return { name, mf, url, pid };
}

const cpuTicks = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
};

function wrk(url, seconds = DURATION) {
  const out = execFileSync('wrk', [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-H', `Cookie: ${VISITOR}`, ...BROWSER, url], { encoding: 'utf8' });
  const pct = (p) => out.match(new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`));
  const ms = (m) => (m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : NaN);
  return {
    rps: Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]),
    requests: Number(out.match(/(\d+) requests in/)?.[1]),
    p50: ms(pct(50)),
    p99: ms(pct(99)),
    non2xx: Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0) + Number(out.match(/Socket errors:.*timeout (\d+)/)?.[1] ?? 0),
  };
}

/** One wrk run against a target, with the workerd CPU it cost. */
function measure(target, path) {
  const t0 = target.pid ? cpuTicks(target.pid) : 0;
  const s = wrk(target.url + path);
  const t1 = target.pid ? cpuTicks(target.pid) : 0;
  s.cpuMsPerKReq = target.pid ? (((t1 - t0) * 1000) / CLK_TCK / s.requests) * 1000 : NaN;
  return s;
}

async function get(url) {
  const res = await fetch(url, { headers: { cookie: VISITOR } });
  await res.arrayBuffer();
  return res;
}

const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

// Seed the edge's KV once (persisted: every edge instance, and each cold start, reads it).
{
  const seed = miniflare('seed', await edgeOptions());
  await seed.ready;
  await (await seed.getKVNamespace('FLAGS')).put('flags', flags);
  await seed.dispose();
}

const lines = [];
const cpuModel = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model;
const wrkVersion = spawnSync('wrk', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0].split(' [')[0];
const mfVersion = JSON.parse(readFileSync(join(ROOT, 'node_modules/miniflare/package.json'), 'utf8')).version;
const machine = `${cpuModel}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; node ${process.version}; miniflare ${mfVersion}; ${wrkVersion}; load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; ${new Date().toISOString().slice(0, 16)}Z`;

try {
  if (!SKIP_LOAD) {
    // ---- load: MISS and HIT, rotated rounds -----------------------------------------------
    const targets = {};
    for (const name of Object.keys(TARGETS)) targets[name] = await start(name);
    targets.origin = { name: 'origin', url: ORIGIN_V1, pid: null };
    // Both origins get the edge's canary share: warm every target on both paths.
    for (const t of Object.values(targets)) {
      for (const p of [MISS_PATH, HIT_PATH]) {
        const res = await get(t.url + p);
        if (res.status !== 200) throw new Error(`${t.name} ${p} answered ${res.status}`);
      }
      if (t.pid) execFileSync('wrk', ['-t1', '-c4', '-d1s', '-H', `Cookie: ${VISITOR}`, t.url + HIT_PATH], { stdio: 'ignore' });
    }
    const hit = await get(targets.edgeflags.url + HIT_PATH);
    if (!/hit/.test(hit.headers.get('cache-status') ?? '')) throw new Error(`the edge's HIT path is not a hit: ${hit.headers.get('cache-status')}`);
    const missStatus = (await get(targets.edgeflags.url + MISS_PATH)).headers.get('cache-status');
    // The same-work baseline must answer what the edge answers (header names) on both paths.
    for (const p of [MISS_PATH, HIT_PATH]) {
      const names = async (t) => [...(await get(targets[t].url + p)).headers.keys()].filter((n) => n !== 'date').join(',');
      const [edge, same] = [await names('edgeflags'), await names('js-same-work')];
      if (edge !== same) throw new Error(`js-same-work answers ${p} with other headers than the edge:\n  ${same}\n  ${edge}`);
    }
    const cacheHit = await get(targets['js-cache'].url + HIT_PATH);
    if (cacheHit.headers.get('cf-cache-status') !== 'HIT' && !cacheHit.headers.get('age')) console.error(`note: js-cache HIT path headers: ${[...cacheHit.headers].join('; ')}`);

    const plan = [
      ['miss', 'origin'], ['miss', 'js-fetch'], ['miss', 'edgeflags'],
      ['hit', 'origin'], ['hit', 'js-cache'], ['hit', 'edgeflags'],
      ['miss', 'js-same-work'], ['hit', 'js-same-work'],
      ...(TARGETS['rust-fetch'] ? [['miss', 'rust-fetch']] : []),
    ];
    const samples = {};
    for (let r = 0; r < ROUNDS; r++) {
      const order = plan.map((_, i) => plan[(i + r * 2) % plan.length]);
      for (const [kind, name] of order) {
        const s = measure(targets[name], kind === 'miss' ? MISS_PATH : HIT_PATH);
        (samples[`${kind}/${name}`] ??= []).push(s);
        console.error(`round ${r + 1} ${kind.toUpperCase()} ${name}: ${s.rps.toFixed(0)} req/s, p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, CPU ${s.cpuMsPerKReq.toFixed(0)} ms/1k req, errors ${s.non2xx}`);
      }
    }
    for (const t of Object.values(targets)) await t.mf?.dispose();

    const m = (key, k) => median(samples[key].map((s) => s[k]));
    const errs = (key) => samples[key].reduce((a, s) => a + s.non2xx, 0);
    const fmt = (x, d = 0) => (Number.isNaN(x) ? '—' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
    lines.push(
      `Request path, ${ROUNDS} rotated round(s) of ${DURATION} s per target, wrk -t${THREADS} -c${CONNECTIONS}, Miniflare/workerd straight, demo origin on loopback; medians of the rounds.`,
      `Machine: ${machine}.`,
      `Command: \`node bench/request-path.mjs ${args.join(' ')}\`.`,
      '',
      '| path | target | req/s | p50 ms | p99 ms | workerd CPU ms / 1k req | errors |',
      '|---|---|---:|---:|---:|---:|---:|',
    );
    for (const key of Object.keys(samples)) {
      const [kind, name] = key.split('/');
      lines.push(`| ${kind.toUpperCase()} | ${name} | ${fmt(m(key, 'rps'))} | ${fmt(m(key, 'p50'), 2)} | ${fmt(m(key, 'p99'), 2)} | ${fmt(m(key, 'cpuMsPerKReq'))} | ${errs(key)} |`);
    }
    const ratio = (a, b, k) => m(a, k) / m(b, k);
    lines.push(
      '',
      `edgeflags / JS, MISS (vs js-fetch): req/s ${ratio('miss/edgeflags', 'miss/js-fetch', 'rps').toFixed(2)}×, CPU per request ${ratio('miss/edgeflags', 'miss/js-fetch', 'cpuMsPerKReq').toFixed(2)}× (target ≤ 1.3×).`,
      `edgeflags / JS, HIT (vs js-cache): req/s ${ratio('hit/edgeflags', 'hit/js-cache', 'rps').toFixed(2)}×, CPU per request ${ratio('hit/edgeflags', 'hit/js-cache', 'cpuMsPerKReq').toFixed(2)}× (target ≤ 1.2×).`,
      `JS doing the edge's I/O and header edits, no decisions (js-same-work) / the ten-line JS worker: MISS ${ratio('miss/js-same-work', 'miss/js-fetch', 'cpuMsPerKReq').toFixed(2)}×, HIT ${ratio('hit/js-same-work', 'hit/js-cache', 'cpuMsPerKReq').toFixed(2)}× CPU per request; edgeflags / js-same-work: MISS ${ratio('miss/edgeflags', 'miss/js-same-work', 'cpuMsPerKReq').toFixed(2)}×, HIT ${ratio('hit/edgeflags', 'hit/js-same-work', 'cpuMsPerKReq').toFixed(2)}×.`,
      ...(samples['miss/rust-fetch']
        ? [`workers-rs forwarder / JS, MISS (rust-fetch vs js-fetch): CPU per request ${ratio('miss/rust-fetch', 'miss/js-fetch', 'cpuMsPerKReq').toFixed(2)}×; edgeflags / rust-fetch ${ratio('miss/edgeflags', 'miss/rust-fetch', 'cpuMsPerKReq').toFixed(2)}×.`]
        : []),
      `Edge Cache-Status: MISS path \`${missStatus}\`; HIT path \`${hit.headers.get('cache-status')}\`.`,
    );
  }

  // ---- cold start: new runtime → first proxied 200 ----------------------------------------
  const cold = { 'js-fetch': [], 'js-fetch+control': [], edgeflags: [], 'edgeflags, control warm': [] };
  const names = Object.keys(cold);
  for (let i = 0; i < COLD; i++) {
    // Rotated order, so no target always starts right after the same one.
    for (const name of names.map((_, k) => names[(k + i) % names.length])) {
      const opts = await TARGETS[name]();
      const t0 = performance.now();
      const mf = miniflare(name, opts);
      const url = String(await mf.ready).replace(/\/$/, '');
      const tReady = performance.now();
      let warm = 0;
      if (name === 'edgeflags, control warm') {
        const w0 = performance.now();
        const control = await mf.getWorker('edgeflags-control');
        const r = await control.fetch(`${url}/__edge/flags`, { headers: { authorization: `Bearer ${BENCH_TOKEN}` } });
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`control warm-up answered ${r.status}`);
        warm = performance.now() - w0;
      }
      const tFirst = performance.now();
      const res = await get(url + MISS_PATH);
      const t1 = performance.now();
      if (res.status !== 200) throw new Error(`${name} cold start answered ${res.status}`);
      cold[name].push({ total: t1 - t0 - warm, ready: tReady - t0, first: t1 - tFirst });
      await mf.dispose();
    }
  }
  const c = (name, k) => median(cold[name].map((s) => s[k]));
  lines.push(
    '',
    `Cold start, ${COLD} rotated runs each, medians: new Miniflare → ready → first proxied 200 (GET ${MISS_PATH}); "control warm": the control worker and its flag writer answered once before the first proxied request (not counted).`,
    '',
    '| target | new → first 200 ms | new → ready ms | ready → first 200 ms |',
    '|---|---:|---:|---:|',
    ...Object.keys(cold).map((n) => `| ${n} | ${c(n, 'total').toFixed(0)} | ${c(n, 'ready').toFixed(0)} | ${c(n, 'first').toFixed(0)} |`),
    '',
    `Ratio edgeflags / js-fetch: ${(c('edgeflags', 'total') / c('js-fetch', 'total')).toFixed(2)}× overall, ${(c('edgeflags', 'first') / c('js-fetch', 'first')).toFixed(2)}× ready → first 200 (target ≤ 1.5×).`,
    `Same runtime contents (edgeflags / js-fetch+control): ${(c('edgeflags', 'total') / c('js-fetch+control', 'total')).toFixed(2)}× overall; with the control plane warm: ${(c('edgeflags, control warm', 'total') / c('js-fetch+control', 'total')).toFixed(2)}× overall, ${(c('edgeflags, control warm', 'first') / c('js-fetch+control', 'first')).toFixed(2)}× ready → first 200.`,
  );

  // ---- size -------------------------------------------------------------------------------
  const wasm = readFileSync(join(EDGE_DIR, 'index_bg.wasm'));
  lines.push('', `Request worker wasm (edge/build/index_bg.wasm): ${wasm.length.toLocaleString('en-US')} B raw, ${gzipSync(wasm, { level: 9 }).length.toLocaleString('en-US')} B gzip -9 (target ≤ 450 KB).`);
  const control = join(ROOT, 'edge/build-control/index_bg.wasm');
  if (existsSync(control)) {
    const c = readFileSync(control);
    lines.push(`Control worker wasm (edge/build-control/index_bg.wasm, off the visitor's path): ${c.length.toLocaleString('en-US')} B raw, ${gzipSync(c, { level: 9 }).length.toLocaleString('en-US')} B gzip -9.`);
  }

  // ---- hit ratio on a Zipf trace ----------------------------------------------------------
  if (ZIPF > 0) lines.push('', ...(await zipf(ZIPF)));
} finally {
  origin.kill();
  rmSync(kvDir, { recursive: true, force: true });
}

/**
 * The edge's hit ratio on a Zipf(s = 1) trace over 10,000 URLs from 2,000 visitors (the demo
 * `backend` flag splits them 90/10 into two variants), next to an infinite cache's on the same
 * trace (every (URL, variant) pair misses once). Seeded, so every run replays the same trace;
 * 4 requests in flight.
 */
async function zipf(n) {
  const URLS = 10_000;
  const VISITORS = 2_000;
  let seed = 42;
  const rand = () => ((seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) / 2 ** 32);
  const cdf = [];
  let acc = 0;
  for (let k = 1; k <= URLS; k++) cdf.push((acc += 1 / k));
  const pick = () => {
    const x = rand() * acc;
    let lo = 0;
    let hi = URLS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const trace = Array.from({ length: n }, () => [pick(), Math.floor(rand() * VISITORS)]);
  const edge = await start('edgeflags');
  const seen = new Set();
  const counts = { hit: 0, miss: 0, other: 0 };
  const late = { hit: 0, ideal: 0 }; // the second half of the trace: steady state
  let ideal = 0;
  let next = 0;
  const worker = async () => {
    while (next < trace.length) {
      const i = next++;
      const [u, v] = trace[i];
      const res = await fetch(`${edge.url}/lab/z${u}?cacheControl=public,max-age=3600`, { headers: { cookie: `ef_uid=${(v + 1).toString(16).padStart(32, '0')}` } });
      await res.arrayBuffer();
      const variant = res.headers.get('x-edgeflags-origin');
      const key = `${u}/${variant}`;
      const secondHalf = i >= trace.length / 2;
      if (seen.has(key)) {
        ideal++;
        if (secondHalf) late.ideal++;
      } else seen.add(key);
      const cs = res.headers.get('cache-status') ?? '';
      if (/; hit/.test(cs)) {
        counts.hit++;
        if (secondHalf) late.hit++;
      }
      else if (/fwd=/.test(cs)) counts.miss++;
      else counts.other++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 4 }, worker));
  const secs = (performance.now() - t0) / 1000;
  await edge.mf.dispose();
  const pct = (x, of = n) => `${((100 * x) / of).toFixed(2)} %`;
  return [
    `Hit ratio, Zipf (s = 1) over ${URLS.toLocaleString('en-US')} URLs, ${n.toLocaleString('en-US')} requests from ${VISITORS.toLocaleString('en-US')} visitors (two variants of \`backend\`, 90/10), origin \`public, max-age=3600\`, 4 in flight, seeded trace (${secs.toFixed(0)} s):`,
    '',
    '| cache | hits | hit ratio, whole trace | hit ratio, second half (steady state) |',
    '|---|---:|---:|---:|',
    `| edgeflags (Cache API, per-variant keys) | ${counts.hit.toLocaleString('en-US')} | ${pct(counts.hit)} | ${pct(late.hit, n - Math.ceil(n / 2))} |`,
    `| ideal: infinite cache, same trace, same (URL, variant) keys | ${ideal.toLocaleString('en-US')} | ${pct(ideal)} | ${pct(late.ideal, n - Math.ceil(n / 2))} |`,
    '',
    `${seen.size.toLocaleString('en-US')} distinct (URL, variant) pairs; ${counts.other} answers without a Cache-Status.`,
  ];
}

mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/request-path.md'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
