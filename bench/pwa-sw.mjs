// Service-worker timings in Chromium, through the edge (workerd) and the demo origin:
//   - register → ready: `navigator.serviceWorker.register(...)` until `ready` resolves
//     (install: precache through the edge, wasm compile; activate), from a page no worker
//     controls, in a fresh browser context — for edgeflags' sw.js and, in the same run and
//     interleaved, for a baseline: a ten-line JS worker that precaches the same URLs with
//     `cache.addAll` (the ratio is edgeflags / baseline);
//   - the breakdown of register → ready: the same registration with a tracing prelude
//     prepended to a copy of sw.js (it wraps fetch, Cache Storage, WebAssembly, IndexedDB,
//     importScripts, clients.claim and the install/activate listeners and records when each
//     call starts and settles; read back with Playwright's service-worker evaluate). Times are
//     offsets from the register() call, on the page's and the worker's shared time origin;
//   - offline cold start: every worker stopped, browser offline, a new page: navigation start
//     → response end (worker start, wasm instantiated from Cache Storage, precache lookup);
//   - offline OFREP: a bulk evaluation the worker answers with edgeflags-core (median of 30).
// Sizes are in pwa/dist/build-report.json. Usage: node bench/pwa-sw.mjs [--runs 7]
// [--only-ready] [--compare OTHER/sw.js] (needs the builds the e2e tests need;
// EDGEFLAGS_PWA_DIST serves another build). --compare serves another build's classic sw.js
// (same wasm-bindgen output: its wasm and glue must be the ones this build serves) as
// /sw-compare.js and measures it too, in the same runs, rotated with the other two — on a
// loaded machine, the only fair way to compare two builds. Prints markdown tables; medians.
import { launchBrowser } from '../tests/e2e/browser.mjs';
import { builtConfig, openApp, startPwaStack, stopAllServiceWorkers } from '../tests/e2e/pwa-stack.mjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const onlyReady = process.argv.includes('--only-ready');
const compare = process.argv.includes('--compare') ? process.argv[process.argv.indexOf('--compare') + 1] : null;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// The tracing prelude (bench only; never shipped). Each span: [name, start, end] in ms on the
// worker's clock (performance.timeOrigin + now(), comparable with the page's).
const PRELUDE = `
const __ef = { spans: [], t: () => performance.timeOrigin + performance.now() };
self.__efTrace = __ef;
__ef.spans.push(['worker start (time origin)', performance.timeOrigin, performance.timeOrigin]);
__ef.spans.push(['script evaluation start', __ef.t(), __ef.t()]);
__ef.span = (name, p) => {
  const t0 = __ef.t();
  const row = [name, t0, null];
  __ef.spans.push(row);
  const done = () => { row[2] = __ef.t(); };
  if (p && typeof p.then === 'function') p.then(done, (e) => { row[0] += ' (failed)'; done(); });
  else done();
  return p;
};
const __path = (x) => { try { return new URL(typeof x === 'string' ? x : x.url, self.location).pathname; } catch (_) { return String(x); } };
const __wrap = (obj, key, name) => {
  const orig = obj && obj[key];
  if (typeof orig !== 'function') return;
  obj[key] = function (...args) { return __ef.span(name(args), orig.apply(this, args)); };
};
const __fetch = self.fetch;
self.fetch = function (input, init) {
  const path = __path(input);
  return __ef.span('fetch ' + path, __fetch.call(self, input, init).then((res) => {
    __ef.spans.push(['  cache-status ' + path + ': ' + (res.headers.get('cache-status') || '-'), __ef.t(), __ef.t()]);
    return res;
  }));
};
__wrap(Cache.prototype, 'put', (a) => 'cache.put ' + __path(a[0]));
__wrap(Cache.prototype, 'addAll', () => 'cache.addAll');
__wrap(Cache.prototype, 'keys', () => 'cache.keys');
__wrap(Cache.prototype, 'delete', () => 'cache.delete');
__wrap(CacheStorage.prototype, 'open', (a) => 'caches.open ' + a[0]);
__wrap(CacheStorage.prototype, 'match', (a) => 'caches.match ' + __path(a[0]));
__wrap(CacheStorage.prototype, 'keys', () => 'caches.keys');
__wrap(CacheStorage.prototype, 'delete', () => 'caches.delete');
for (const k of ['instantiateStreaming', 'instantiate', 'compileStreaming', 'compile']) __wrap(WebAssembly, k, () => 'WebAssembly.' + k);
__wrap(Clients.prototype, 'claim', () => 'clients.claim');
__wrap(self, 'skipWaiting', () => 'skipWaiting');
{
  const open = IDBFactory.prototype.open;
  IDBFactory.prototype.open = function (...args) {
    const req = open.apply(this, args);
    __ef.span('indexedDB.open ' + args[0], new Promise((r) => { req.addEventListener('success', r); req.addEventListener('error', r); }));
    return req;
  };
}
{
  const imp = self.importScripts;
  self.importScripts = function (...args) { const t0 = __ef.t(); try { return imp.apply(self, args); } finally { __ef.spans.push(['importScripts ' + args.map(__path).join(' '), t0, __ef.t()]); } };
}
{
  const add = self.addEventListener;
  self.addEventListener = function (type, listener, opts) {
    if (type !== 'install' && type !== 'activate') return add.call(this, type, listener, opts);
    return add.call(this, type, (event) => {
      const row = [type + ' event (dispatch → waitUntil settled)', __ef.t(), null];
      __ef.spans.push(row);
      const wait = event.waitUntil;
      event.waitUntil = function (p) { Promise.resolve(p).finally(() => { row[2] = __ef.t(); }); return wait.call(this, p); };
      return listener.call(this, event);
    }, opts);
  };
}
`;
const SUFFIX = `
;__ef.spans.push(['script evaluation end', __ef.t(), __ef.t()]);
if (typeof wasm_bindgen !== 'undefined') {
  for (const k of ['start', 'precache_plan']) { const f = wasm_bindgen[k]; if (typeof f === 'function') wasm_bindgen[k] = (...a) => __ef.span('wasm ' + k, f(...a)); }
}
`;

const stack = await startPwaStack();
const browser = await launchBrowser();
const { entries } = builtConfig(stack.dist).precache;
const report = JSON.parse(readFileSync(join(stack.dist, 'build-report.json'), 'utf8'));
// The baseline: what a plain JS worker does to precache the same files — the app shell and the
// wasm of the manifest, plus the glue (a first edgeflags install downloads it as a script; builds
// before issue 15 precached it too): 9 files for every build, so runs of two builds compare.
const baselineUrls = [...new Set([...entries.map((e) => e.url), '/sw/edgeflags_pwa.js'])].sort();
writeFileSync(
  join(stack.dist, 'sw-baseline.js'),
  `const URLS = ${JSON.stringify(baselineUrls)};
self.addEventListener('install', (e) => e.waitUntil(caches.open('baseline').then((c) => c.addAll(URLS.map((u) => new Request(u, { cache: 'reload' }))))));
self.addEventListener('activate', (e) => e.waitUntil(clients.claim()));
self.addEventListener('fetch', (e) => e.respondWith(caches.match(e.request).then((r) => r || fetch(e.request))));
`,
);
writeFileSync(join(stack.dist, 'sw-traced.js'), PRELUDE + readFileSync(join(stack.dist, 'sw.js'), 'utf8') + SUFFIX);
if (compare) {
  writeFileSync(join(stack.dist, 'sw-compare.js'), readFileSync(compare, 'utf8'));
  writeFileSync(join(stack.dist, 'sw-compare-traced.js'), PRELUDE + readFileSync(compare, 'utf8') + SUFFIX);
}
writeFileSync(
  join(stack.dist, 'sw-baseline-traced.js'),
  PRELUDE + readFileSync(join(stack.dist, 'sw-baseline.js'), 'utf8') + SUFFIX,
);

// register → ready in a fresh context; with `traced`, also the worker's spans and the
// page's view of the state changes, as offsets from register().
async function registerReady(script, traced) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${stack.edgeUrl}/offline.html`);
    const result = await page.evaluate(async (script) => {
      const now = () => performance.timeOrigin + performance.now();
      const states = [];
      const t0 = now();
      const reg = await navigator.serviceWorker.register(script, { scope: '/' });
      const tRegistered = now();
      const w = reg.installing;
      if (w) w.addEventListener('statechange', () => states.push([`page sees state ${w.state}`, now() - t0]));
      await navigator.serviceWorker.ready;
      const tReady = now();
      // Let activation finish, for the trace.
      if (w && w.state !== 'activated') await new Promise((r) => w.addEventListener('statechange', () => w.state === 'activated' && r()));
      return { t0, ms: tReady - t0, registered: tRegistered - t0, states };
    }, script);
    if (traced) {
      const sw = context.serviceWorkers().find((w) => w.url().endsWith(script)) || (await context.waitForEvent('serviceworker'));
      const spans = await sw.evaluate(() => self.__efTrace.spans);
      result.spans = spans.map(([name, s, e]) => [name, s - result.t0, e === null ? null : e - result.t0]);
    }
    return result;
  } finally {
    await context.close();
  }
}

const results = { ready: [], baseline: [], compare: [], coldStart: [], ofrep: [], traces: [], baselineTraces: [], compareTraces: [] };
const SCRIPTS = { ready: '/sw.js', baseline: '/sw-baseline.js', compare: '/sw-compare.js' };
try {
  for (let i = 0; i < runs; i++) {
    // Interleaved, rotating which goes first, so load on the machine hits each alike.
    const kinds = compare ? ['ready', 'baseline', 'compare'] : ['ready', 'baseline'];
    const order = kinds.map((_, k) => kinds[(i + k) % kinds.length]);
    for (const which of order) results[which].push((await registerReady(SCRIPTS[which], false)).ms);
    results.traces.push(await registerReady('/sw-traced.js', true));
    results.baselineTraces.push(await registerReady('/sw-baseline-traced.js', true));
    if (compare) results.compareTraces.push(await registerReady('/sw-compare-traced.js', true));
    if (onlyReady) continue;

    const context = await browser.newContext();
    try {
      // Let the app finish its first load (bootstrap handed over, definitions fetched).
      const app = await openApp(context, `${stack.edgeUrl}/`);
      await app.waitForFunction(async () => (await window.edgeflagsSW.flags()).definitionsVersion);
      await app.evaluate(() =>
        fetch('/ofrep/v1/evaluate/flags', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"context":{}}' }),
      );

      await context.setOffline(true);
      await stopAllServiceWorkers(app);
      const cold = await context.newPage();
      await cold.goto(`${stack.edgeUrl}/`);
      results.coldStart.push(
        await cold.evaluate(() => {
          const nav = performance.getEntriesByType('navigation')[0];
          return nav.responseEnd - nav.startTime;
        }),
      );
      results.ofrep.push(
        await cold.evaluate(async () => {
          const times = [];
          for (let n = 0; n < 30; n++) {
            const t0 = performance.now();
            const res = await fetch('/ofrep/v1/evaluate/flags', {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ context: { targetingKey: `bench-${n}`, appVersion: '2.1.0' } }),
            });
            await res.json();
            if (res.headers.get('x-edgeflags-offline') !== '1') throw new Error('not answered offline');
            times.push(performance.now() - t0);
          }
          times.sort((a, b) => a - b);
          return times[15];
        }),
      );
    } finally {
      await context.close();
    }
  }
} finally {
  await browser.close();
  await stack.stop();
}

const f = (x) => x.toFixed(1);
const ms = (xs) => `${f(median(xs))} ms (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
console.log(`| measurement (median of ${runs}, min–max) | value |`);
console.log('|---|---:|');
console.log(`| register → ready, edgeflags sw.js | ${ms(results.ready)} |`);
console.log(`| register → ready, baseline JS worker (cache.addAll of the same ${baselineUrls.length} files) | ${ms(results.baseline)} |`);
console.log(`| ratio (medians) | ${(median(results.ready) / median(results.baseline)).toFixed(2)}× |`);
if (compare) {
  console.log(`| register → ready, ${compare} | ${ms(results.compare)} |`);
  console.log(`| ratio to the baseline (medians) | ${(median(results.compare) / median(results.baseline)).toFixed(2)}× |`);
}
if (!onlyReady) {
  console.log(`| offline cold start: navigation → response end | ${ms(results.coldStart)} |`);
  console.log(`| offline OFREP bulk answer (median of 30 per run) | ${ms(results.ofrep)} |`);
}
console.log(`| wasm + glue, gzip | ${report.wasmPlusGlueGzip} B (wasm ${report.wasm.bytes} B raw) |`);

// The breakdown: per span name, the median start and end offset from register() (a name seen
// more than once in a run gets #2, #3, …).
function breakdown(traces, title) {
  const rows = new Map();
  for (const t of traces) {
    const seen = new Map();
    const all = [...t.spans, ...t.states.map(([n, at]) => [n, at, at]), ['register() resolved', t.registered, t.registered], ['ready resolved', t.ms, t.ms]];
    for (let [name, s, e] of all) {
      const n = (seen.get(name) || 0) + 1;
      seen.set(name, n);
      if (n > 1) name += ` #${n}`;
      if (!rows.has(name)) rows.set(name, { s: [], e: [] });
      rows.get(name).s.push(s);
      if (e !== null) rows.get(name).e.push(e);
    }
  }
  console.log(`\n${title} (median of ${traces.length} traced runs; ms after register())`);
  console.log('| span | start | end | duration |');
  console.log('|---|---:|---:|---:|');
  const sorted = [...rows.entries()].sort((a, b) => median(a[1].s) - median(b[1].s));
  for (const [name, { s, e }] of sorted) {
    const end = e.length ? median(e) : NaN;
    const dur = e.length === s.length ? median(e.map((x, i) => x - s[i])) : NaN;
    console.log(`| ${name}${s.length < traces.length ? ` (${s.length}/${traces.length} runs)` : ''} | ${f(median(s))} | ${e.length ? f(end) : '—'} | ${Number.isNaN(dur) ? '—' : f(dur)} |`);
  }
}
breakdown(results.traces, 'Breakdown, edgeflags sw.js (traced copy)');
breakdown(results.baselineTraces, 'Breakdown, baseline worker (traced copy)');
if (compare) breakdown(results.compareTraces, `Breakdown, ${compare} (traced copy)`);
console.log(`\ntraced register → ready: edgeflags ${ms(results.traces.map((t) => t.ms))}, baseline ${ms(results.baselineTraces.map((t) => t.ms))}`);
