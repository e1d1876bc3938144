// Where the edge worker's CPU goes on one request path: runs the edge in Miniflare/workerd with
// the V8 inspector open, starts the CPU profiler, drives load with wrk, and prints self time per
// function (JS glue, and wasm functions by name when the build kept wasm's name section:
// `EDGEFLAGS_KEEP_WASM_NAMES=1 bash scripts/build-edge.sh`) and per group (crate / module prefix).
//
//   node bench/profile-edge.mjs [--path /api/version] [--seconds 5] [--top 40] [--out FILE]
//                               [--baseline fetch-only|cache-only]   (profile a JS baseline instead)
//                               [--cold]   (profile only the first request of the fresh runtime:
//                                           what an isolate's first request compiles and waits for)
//
// Needs what bench/request-path.mjs needs. Writes the raw .cpuprofile to --out when given
// (open it in Chrome DevTools → Performance).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { edgeMiniflareOptions } from './edge-miniflare.mjs';
import WebSocket from 'ws';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const PATH = opt('--path', '/api/version');
const SECONDS = Number(opt('--seconds', 5));
const TOP = Number(opt('--top', 40));
const OUT = opt('--out', null);
const BASELINE = opt('--baseline', null);
const COLD = args.includes('--cold');
const ORIGIN = process.env.EDGEFLAGS_ORIGIN_BIN || join(ROOT, 'target/release/edgeflags-demo-origin');
const EDGE_DIR = process.env.EDGEFLAGS_EDGE_BUILD || join(ROOT, 'edge/build');
const VISITOR = `ef_uid=${'7'.padStart(32, '0')}`;

const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

const origin = spawn(ORIGIN, ['--v1', '127.0.0.1:0', '--v2', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const listening = await new Promise((ok, fail) => {
  origin.stdout.on('data', (d) => {
    for (const line of String(d).split('\n')) {
      try { const m = JSON.parse(line); if (m.event === 'listening') ok(m); } catch { /* not JSON */ }
    }
  });
  origin.on('exit', () => fail(new Error('the demo origin exited')));
});
const kvDir = mkdtempSync(join(os.tmpdir(), 'edgeflags-profile-kv-'));
const inspectorPort = await freePort();
// The edge: both workers, as deployed (bench/edge-miniflare.mjs); the request worker is profiled.
const mf = new Miniflare(BASELINE ? {
  name: 'baseline',
  modules: true,
  scriptPath: join(ROOT, `bench/baselines/${BASELINE}.mjs`),
  compatibilityDate: '2026-04-01',
  bindings: { ORIGIN_URL: `http://${listening.v1}` },
  host: '127.0.0.1',
  port: 0,
  inspectorPort,
} : {
  ...(await edgeMiniflareOptions({ origins: { v1: `http://${listening.v1}`, v2: `http://${listening.v2}` }, kvPersist: kvDir, edgeDir: EDGE_DIR })),
  host: '127.0.0.1',
  port: 0,
  inspectorPort,
});
try {
  const url = String(await mf.ready).replace(/\/$/, '');
  if (!BASELINE) await (await mf.getKVNamespace('FLAGS')).put('flags', readFileSync(join(ROOT, 'examples/flags/demo.flagd.json'), 'utf8'));
  if (!COLD) {
    for (let i = 0; i < 3; i++) await (await fetch(url + PATH, { headers: { cookie: VISITOR } })).arrayBuffer();
    execFileSync('wrk', ['-t2', '-c16', '-d2s', '-H', `Cookie: ${VISITOR}`, url + PATH], { stdio: 'ignore' });
  }

  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const title = (t) => t.title ?? t.id ?? '';
  const target = targets.find((t) => /^(core:user:)?(edgeflags|baseline)$/.test(title(t))) ?? targets.find((t) => /edgeflags|baseline/.test(title(t)) && !/control/.test(title(t))) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok, fail) => { ws.once('open', ok); ws.once('error', fail); });
  let id = 0;
  const pending = new Map();
  ws.on('message', (m) => {
    const msg = JSON.parse(m);
    if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  });
  const send = (method, params = {}) => new Promise((ok) => { const i = ++id; pending.set(i, ok); ws.send(JSON.stringify({ id: i, method, params })); });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: 100 });
  await send('Profiler.start');
  let out;
  if (COLD) {
    const t0 = performance.now();
    const first = await fetch(url + PATH, { headers: { cookie: VISITOR } });
    await first.arrayBuffer();
    console.log(`first request: ${first.status} in ${(performance.now() - t0).toFixed(1)} ms (wall, with the profiler on)`);
    await new Promise((ok) => setTimeout(ok, 200)); // its waitUntil work
    out = '1 requests in';
  } else {
    out = execFileSync('wrk', ['-t2', '-c16', `-d${SECONDS}s`, '-H', `Cookie: ${VISITOR}`, url + PATH], { encoding: 'utf8' });
  }
  const { result } = await send('Profiler.stop');
  ws.close();
  const profile = result.profile;
  if (OUT) writeFileSync(OUT, JSON.stringify(profile));
  const requests = Number(out.match(/(\d+) requests in/)?.[1]);

  // Self time per node = samples hitting it × the mean sampling interval.
  const dt = (profile.endTime - profile.startTime) / profile.samples.length / 1000; // ms
  const hits = new Map();
  for (const s of profile.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const byFn = new Map();
  const byGroup = new Map();
  for (const node of profile.nodes) {
    const n = hits.get(node.id) ?? 0;
    if (!n) continue;
    const f = node.callFrame;
    const name = `${f.functionName || '(anonymous)'}${f.url ? ` ${f.url.split('/').pop()}:${f.lineNumber}` : ''}`;
    byFn.set(name, (byFn.get(name) ?? 0) + n);
    const fn = f.functionName || '';
    const group = /^\((idle|program|garbage collector|root)\)$/.test(fn)
      ? fn
      : f.url.endsWith('.wasm') || /^\$?[a-z_]+(::|\$)/.test(fn) || /^wasm-function/.test(fn)
        ? `wasm: ${fn.replace(/^\$/, '').split(/::|\$/).slice(0, 2).join('::').replace(/<.*$/, '')}`
        : `js: ${f.url.split('/').pop() || '(native)'}`;
    byGroup.set(group, (byGroup.get(group) ?? 0) + n);
  }
  const total = profile.samples.length;
  const busy = total - (byGroup.get('(idle)') ?? 0);
  const row = ([name, n]) => `${((n * dt * 1000) / requests).toFixed(1).padStart(8)} µs/req ${((100 * n) / busy).toFixed(1).padStart(5)} %  ${name}`;
  console.log(`${PATH}: ${requests} requests in ${SECONDS} s, ${total} samples (${dt.toFixed(3)} ms each), busy ${((busy * dt * 1000) / requests).toFixed(0)} µs/req in the profiled isolate thread`);
  console.log('\n-- by group --');
  for (const e of [...byGroup].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(row(e));
  console.log('\n-- by function (self) --');
  for (const e of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(row(e));
} finally {
  await mf.dispose();
  origin.kill();
  rmSync(kvDir, { recursive: true, force: true });
}
