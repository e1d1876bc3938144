// Assembles pwa/dist/: the app's static files, the wasm-bindgen glue, the content-hashed wasm,
// and the service-worker shims (classic sw.js, module sw.mjs) with the precache manifest and
// configuration embedded. Any changed file changes sw.js, so browsers see an update.
// Usage: node scripts/pwa-dist.mjs BINDGEN_DIR APP_DIR JS_DIR OUT_DIR
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

const [bindgen, appDir, jsDir, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node scripts/pwa-dist.mjs BINDGEN_DIR APP_DIR JS_DIR OUT_DIR');
  process.exit(2);
}
const hash = (buf) => createHash('sha256').update(buf).digest('hex');

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'sw'), { recursive: true });
cpSync(appDir, out, { recursive: true });
cpSync(join(jsDir, 'register.js'), join(out, 'sw', 'register.js'));

// Both glue flavours load the same wasm module; ship one copy per distinct binary.
const wasmFor = {};
for (const variant of ['classic', 'module']) {
  const wasm = readFileSync(join(bindgen, variant, 'edgeflags_pwa_bg.wasm'));
  const name = `edgeflags_pwa.${hash(wasm).slice(0, 16)}.wasm`;
  writeFileSync(join(out, 'sw', name), wasm);
  wasmFor[variant] = { name, bytes: wasm.length, gzip: gzipSync(wasm, { level: 9 }).length };
}
// The classic glue ships inlined in sw.js; the file stays for the size report (and for pages
// or tools that load the glue on its own).
cpSync(join(bindgen, 'classic', 'edgeflags_pwa.js'), join(out, 'sw', 'edgeflags_pwa.js'));
cpSync(join(bindgen, 'module', 'edgeflags_pwa.js'), join(out, 'sw', 'edgeflags_pwa.mjs'));

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

// Manifest: every app file and the worker's wasm; hashed file names need no revision. Not the
// glue: the worker loads it as a script (importScripts / import), and the browser keeps a
// worker's scripts with that version, offline too — precaching it downloaded it twice.
const entries = walk(out)
  .map((p) => '/' + relative(out, p).split('\\').join('/'))
  .filter((url) => !url.endsWith('.wasm') || Object.values(wasmFor).some((w) => url === `/sw/${w.name}`))
  .sort()
  .map((url) => {
    const hashed = /\.[0-9a-f]{16}\.wasm$/.test(url);
    return { url, revision: hashed ? null : hash(readFileSync(join(out, url))).slice(0, 16) };
  });

const GLUE = ['/sw/edgeflags_pwa.js', '/sw/edgeflags_pwa.mjs'];
const template = readFileSync(join(jsDir, 'sw.template.js'), 'utf8');
const variants = {
  'sw.js': {
    wasm: wasmFor.classic.name,
    // The no-modules glue, inlined: loaded with importScripts it was one more request before
    // install could start (issue 15). It declares `let wasm_bindgen` in the global lexical
    // scope (not on self).
    glue: `${readFileSync(join(bindgen, 'classic', 'edgeflags_pwa.js'), 'utf8').trim()}\nconst initWasm = wasm_bindgen;\nconst wasm = () => wasm_bindgen;`,
    manifest: entries.filter((e) => !GLUE.includes(e.url) && !(e.url.endsWith('.wasm') && e.url !== `/sw/${wasmFor.classic.name}`)),
  },
  'sw.mjs': {
    wasm: wasmFor.module.name,
    glue: "import initWasm, * as bindings from '/sw/edgeflags_pwa.mjs';\nconst wasm = () => bindings;",
    manifest: entries.filter((e) => !GLUE.includes(e.url) && !(e.url.endsWith('.wasm') && e.url !== `/sw/${wasmFor.module.name}`)),
  },
};

// The demo app's service-worker configuration (format: pwa/README.md). Everything but the
// precache manifest is the same for both flavours.
const DAY_MINUTES = 24 * 60;
const appRoutes = [
  // Orders created offline go to the outbox and are replayed, in order, exactly once.
  {
    match: { pathPrefix: '/api/orders', methods: ['POST'] },
    backgroundSync: { queue: 'orders', retentionMinutes: 7 * DAY_MINUTES, initialRetryMs: 1000, maxRetryMs: 30000, retriesPerReplay: 5 },
  },
  // Pages: fresh when the network answers within 4 s; else the precached shell / offline page.
  { match: { navigation: true }, strategy: 'networkFirst', networkTimeoutMs: 4000 },
  // The in-app inbox (per visitor: `private, no-cache`, kept in this browser only): fresh
  // online, the last good copy offline; the worker adds pushed items (notifications.inboxPath).
  // Read marks made offline wait in the outbox (the edge's read endpoint is idempotent).
  { match: { pathPrefix: '/__edge/inbox/', methods: ['POST'] }, backgroundSync: { queue: 'inbox' } },
  {
    match: { pathPrefix: '/__edge/inbox' },
    strategy: 'networkFirst',
    cacheName: 'inbox',
    networkTimeoutMs: 4000,
    cacheable: { statuses: [200], allowPrivate: true },
  },
  // API reads: fresh online, the last answer offline. The demo origin marks its API
  // `no-store`; this app opts in to keeping the last copy on the device anyway.
  {
    match: { pathPrefix: '/api/' },
    strategy: 'networkFirst',
    cacheName: 'api',
    networkTimeoutMs: 4000,
    expiration: { maxEntries: 50, maxAgeSeconds: 24 * 60 * 60 },
    cacheable: { statuses: [200], allowNoStore: true },
  },
];
// The demo's strategy lab: one path per strategy on the demo origin's /lab/ endpoint, so each
// strategy can be watched (and is tested) on its own.
const labRoutes = [
  { match: { pathPrefix: '/lab/cache-first/' }, strategy: 'cacheFirst', cacheName: 'lab-cache-first' },
  { match: { pathPrefix: '/lab/network-first/' }, strategy: 'networkFirst', cacheName: 'lab-network-first', networkTimeoutMs: 1000 },
  { match: { pathPrefix: '/lab/stale-while-revalidate/' }, strategy: 'staleWhileRevalidate', cacheName: 'lab-swr' },
  { match: { pathPrefix: '/lab/network-only/' }, strategy: 'networkOnly' },
  { match: { pathPrefix: '/lab/cache-only/' }, strategy: 'cacheOnly', cacheName: 'lab-cache-only' },
  {
    match: { pathPrefix: '/lab/expiration/' },
    strategy: 'cacheFirst',
    cacheName: 'lab-expiration',
    expiration: { maxEntries: 3, maxAgeSeconds: 60 * 60 },
  },
];

for (const [file, v] of Object.entries(variants)) {
  const config = {
    cachePrefix: 'edgeflags',
    precache: { entries: v.manifest, directoryIndex: 'index.html' },
    navigationFallback: '/offline.html',
    routes: [...appRoutes, ...labRoutes],
    flags: { ofrepPath: '/ofrep/v1/evaluate/flags', clientFlagsPath: '/__edge/client-flags', maxSnapshots: 8 },
    notifications: { defaultTitle: 'Acme ERP', icon: '/icon.svg', defaultUrl: '/', inboxPath: '/__edge/inbox' },
  };
  // For the build-time check (scripts/build-pwa.sh runs edgeflags-sw-config on it): the
  // shipped worker reads field types only.
  writeFileSync(join(bindgen, `sw-config.${file}.json`), JSON.stringify(config, null, 2));
  const script = template
    .replace('/*__IMPORT__*/', () => v.glue)
    .replace('/*__WASM_PATH__*/', JSON.stringify(`/sw/${v.wasm}`))
    .replace('/*__CONFIG__*/', JSON.stringify(config, null, 2));
  writeFileSync(join(out, file), script);
}

// Sizes, as shipped (gzip -9). Budget (issue #6): wasm + glue ≤ 120 KB gzip, including the
// flag evaluator (edgeflags-core).
const gz = (path) => gzipSync(readFileSync(path), { level: 9 }).length;
const BUDGET_GZIP = 120 * 1024;
const glueGzip = gz(join(out, 'sw', 'edgeflags_pwa.js'));
const moduleGlueGzip = gz(join(out, 'sw', 'edgeflags_pwa.mjs'));
// The classic sw.js carries the glue inlined: the shim is the rest of it.
const shimGzip = gzipSync(readFileSync(join(out, 'sw.js'), 'utf8').replace(readFileSync(join(out, 'sw', 'edgeflags_pwa.js'), 'utf8').trim(), ''), { level: 9 }).length;
const report = {
  wasm: wasmFor.classic,
  glueGzip,
  moduleGlueGzip,
  shimGzip,
  // What the budget counts: the wasm and the wasm-bindgen glue of the classic build.
  wasmPlusGlueGzip: wasmFor.classic.gzip + glueGzip,
  // Everything a first start downloads for the worker itself (plus register.js on the page):
  // the wasm and sw.js (shim + glue).
  workerTotalGzip: wasmFor.classic.gzip + gz(join(out, 'sw.js')),
  budgetGzip: BUDGET_GZIP,
  withinBudget: wasmFor.classic.gzip + glueGzip <= BUDGET_GZIP,
  sameWasmForBothFlavours: wasmFor.classic.name === wasmFor.module.name,
  precacheEntries: variants['sw.js'].manifest.length,
};
writeFileSync(join(out, 'build-report.json'), JSON.stringify(report, null, 2) + '\n');
console.error(
  `pwa: wasm ${report.wasm.bytes} B (${report.wasm.gzip} B gzip) + glue ${glueGzip} B gzip = ${report.wasmPlusGlueGzip} B gzip ` +
    `(budget ${BUDGET_GZIP}: ${report.withinBudget ? 'within' : 'OVER'}); shim ${shimGzip} B gzip; ${report.precacheEntries} precached files`,
);
