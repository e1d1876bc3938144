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
cpSync(join(bindgen, 'classic', 'edgeflags_pwa.js'), join(out, 'sw', 'edgeflags_pwa.js'));
cpSync(join(bindgen, 'module', 'edgeflags_pwa.js'), join(out, 'sw', 'edgeflags_pwa.mjs'));

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

// Manifest: every app file plus the glue; hashed file names need no revision.
const entries = walk(out)
  .map((p) => '/' + relative(out, p).split('\\').join('/'))
  .filter((url) => !url.endsWith('.wasm') || Object.values(wasmFor).some((w) => url === `/sw/${w.name}`))
  .sort()
  .map((url) => {
    const hashed = /\.[0-9a-f]{16}\.wasm$/.test(url);
    return { url, revision: hashed ? null : hash(readFileSync(join(out, url))).slice(0, 16) };
  });

const template = readFileSync(join(jsDir, 'sw.template.js'), 'utf8');
const variants = {
  'sw.js': {
    wasm: wasmFor.classic.name,
    // The no-modules glue declares `let wasm_bindgen` in the global lexical scope (not on self).
    glue: "importScripts('/sw/edgeflags_pwa.js');\nconst initWasm = wasm_bindgen;\nconst wasm = () => wasm_bindgen;",
    manifest: entries.filter((e) => e.url !== '/sw/edgeflags_pwa.mjs' && !(e.url.endsWith('.wasm') && e.url !== `/sw/${wasmFor.classic.name}`)),
  },
  'sw.mjs': {
    wasm: wasmFor.module.name,
    glue: "import initWasm, * as bindings from '/sw/edgeflags_pwa.mjs';\nconst wasm = () => bindings;",
    manifest: entries.filter((e) => e.url !== '/sw/edgeflags_pwa.js' && !(e.url.endsWith('.wasm') && e.url !== `/sw/${wasmFor.module.name}`)),
  },
};

for (const [file, v] of Object.entries(variants)) {
  const config = {
    cachePrefix: 'edgeflags',
    precache: { entries: v.manifest, directoryIndex: 'index.html' },
    navigationFallback: '/index.html',
    routes: [
      { match: { navigation: true }, strategy: 'networkFirst', networkTimeoutMs: 4000 },
      { match: { pathPrefix: '/api/' }, strategy: 'networkFirst', cacheName: 'api', networkTimeoutMs: 4000 },
    ],
  };
  const script = template
    .replace('/*__IMPORT__*/', v.glue)
    .replace('/*__WASM_PATH__*/', JSON.stringify(`/sw/${v.wasm}`))
    .replace('/*__CONFIG__*/', JSON.stringify(config, null, 2));
  writeFileSync(join(out, file), script);
}

const glue = readFileSync(join(out, 'sw', 'edgeflags_pwa.js'));
const shim = readFileSync(join(out, 'sw.js'));
const report = {
  wasm: wasmFor.classic,
  glueGzip: gzipSync(glue, { level: 9 }).length,
  shimGzip: gzipSync(shim, { level: 9 }).length,
  sameWasmForBothFlavours: wasmFor.classic.name === wasmFor.module.name,
  precacheEntries: variants['sw.js'].manifest.length,
};
writeFileSync(join(out, 'build-report.json'), JSON.stringify(report, null, 2) + '\n');
console.error(
  `pwa: wasm ${report.wasm.bytes} B (${report.wasm.gzip} B gzip) + glue ${report.glueGzip} B gzip + shim ${report.shimGzip} B gzip; ${report.precacheEntries} precached files`,
);
