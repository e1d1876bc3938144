// OFREP bulk-evaluation benchmark at the worker level: the edgeflags Rust worker against a JS
// worker doing the same with @openfeature/flagd-core, in the same run, both straight through
// Miniflare/workerd on loopback (not the `wrangler dev` proxy, which caps any worker at about
// 1.5k req/s). Load comes from wrk (Debian: apt-get install wrk).
//
//   node bench/ofrep-worker.mjs [--duration SECONDS] [--connections N] [--quick]
//
// Both workers read the same 50-flag set (the first 50 `bulk-*` flags of
// examples/flags/bench.flagd.json) from local KV once, keep it compiled in memory, and answer
// `POST /ofrep/v1/evaluate/flags` with `{"flags":[...]}` for a context with a targetingKey
// that varies per request. Prints a markdown table and writes bench/results/ofrep-worker.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const QUICK = args.includes('--quick');
const DURATION = Number(opt('--duration', QUICK ? 3 : 10));
const CONNECTIONS = Number(opt('--connections', 16));

if (spawnSync('wrk', ['--version']).error) {
  console.error('wrk is missing: apt-get install -y wrk');
  process.exit(2);
}

const bench = JSON.parse(readFileSync(join(ROOT, 'examples/flags/bench.flagd.json'), 'utf8'));
const keys = Object.keys(bench.flags).filter((k) => k.startsWith('bulk-')).slice(0, 50);
const doc = { ...bench, flags: Object.fromEntries(keys.map((k) => [k, bench.flags[k]])) };
const docText = JSON.stringify(doc);

// The JS competitor: flagd-core in interpreter mode (Workers forbid new Function()).
const jsWorker = (
  await build({
    stdin: {
      contents: `
        import { FlagdCore } from '@openfeature/flagd-core';
        const silent = { error() {}, warn() {}, info() {}, debug() {} };
        let core = null;
        export default {
          async fetch(req, env) {
            if (!core) {
              const c = new FlagdCore(undefined, silent, { disableDynamicCodeGeneration: true });
              c.setConfigurations(await env.FLAGS.get('flags'));
              core = c;
            }
            let body;
            try { body = await req.json(); } catch { return Response.json({ errorCode: 'PARSE_ERROR' }, { status: 400 }); }
            const flags = core.resolveAll(body.context || {}, silent).map((r) => ({
              key: r.flagKey, value: r.value, variant: r.variant, reason: r.reason, metadata: r.flagMetadata,
            }));
            return Response.json({ flags });
          },
        };`,
      resolveDir: ROOT,
      loader: 'js',
    },
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    // flagd-core's object-hash needs node's crypto: workerd provides it under nodejs_compat,
    // and esbuild's require shim picks up a global require.
    external: ['crypto'],
    banner: {
      js: "import * as __nodeCrypto from 'node:crypto'; globalThis.require ??= (m) => { if (m === 'crypto') return __nodeCrypto; throw new Error('cannot require ' + m); };",
    },
    mainFields: ['module', 'main'],
    write: false,
    logLevel: 'silent',
  })
).outputFiles[0].text;

const compatibilityDate = '2026-04-01';
const rust = new Miniflare({
  name: 'rust',
  modules: true,
  scriptPath: join(ROOT, 'edge/build/index.js'),
  modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
  compatibilityDate,
  kvNamespaces: { FLAGS: 'bench' },
  bindings: { ORIGIN_URL: 'http://127.0.0.1:9', BOOTSTRAP: 'off', REFRESH_SECONDS: '3600' },
  host: '127.0.0.1',
  port: 0,
});
const js = new Miniflare({
  name: 'js',
  modules: [{ type: 'ESModule', path: 'worker.mjs', contents: jsWorker }],
  compatibilityDate,
  compatibilityFlags: ['nodejs_compat'],
  kvNamespaces: { FLAGS: 'bench' },
  host: '127.0.0.1',
  port: 0,
});

// Baseline: a worker that answers a fixed body of the same size, so the table shows how much
// of each figure is the runtime, the socket and wrk rather than flag evaluation.
const baseline = new Miniflare({
  name: 'baseline',
  modules: true,
  script: `let body = null;
export default { async fetch(req) { await req.text(); return new Response(body ??= JSON.stringify({ flags: Array.from({ length: 50 }, (_, i) => ({ key: 'bulk-' + i, value: 'a', variant: 'a', reason: 'STATIC', metadata: {} })) }), { headers: { 'content-type': 'application/json' } }); } };`,
  compatibilityDate: '2026-04-01',
  host: '127.0.0.1',
  port: 0,
});

const results = [];
try {
  for (const [name, mf] of [['edgeflags (Rust/wasm)', rust], ['flagd-core (JS)', js], ['baseline: fixed 50-flag body (JS)', baseline]]) {
    const url = await mf.ready;
    if (mf !== baseline) await (await mf.getKVNamespace('FLAGS')).put('flags', docText);
    // Warm-up and a correctness check: both answer 50 flags.
    const probe = await fetch(new URL('/ofrep/v1/evaluate/flags', url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { targetingKey: 'probe' } }),
    });
    const answer = await probe.json();
    if (probe.status !== 200 || answer.flags.length !== 50) {
      throw new Error(`${name} answered ${probe.status}: ${JSON.stringify(answer).slice(0, 300)}`);
    }
    const lua = join(os.tmpdir(), 'edgeflags-ofrep.lua');
    writeFileSync(
      lua,
      `local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/ofrep/v1/evaluate/flags", {["Content-Type"] = "application/json"},
    '{"context":{"targetingKey":"visitor-' .. n .. '","plan":"pro"}}')
end`,
    );
    execFileSync('wrk', ['-t2', '-c', String(CONNECTIONS), '-d', '2s', '-s', lua, String(url)], { stdio: 'ignore' });
    const out = execFileSync('wrk', ['-t2', '-c', String(CONNECTIONS), '-d', `${DURATION}s`, '--latency', '-s', lua, String(url)], {
      encoding: 'utf8',
    });
    const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
    const pct = (p) => out.match(new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`));
    const ms = (m) => (m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : NaN);
    const non2xx = out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? '0';
    results.push({ name, rps, p50: ms(pct(50)), p99: ms(pct(99)), non2xx });
    console.error(`${name}: ${rps.toFixed(0)} req/s, p50 ${ms(pct(50)).toFixed(2)} ms, p99 ${ms(pct(99)).toFixed(2)} ms`);
  }
} finally {
  await rust.dispose();
  await js.dispose();
  await baseline.dispose();
}

const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model;
const lines = [
  `OFREP bulk evaluation of 50 flags, ${DURATION}s per worker, wrk -t2 -c${CONNECTIONS}, Miniflare/workerd on loopback.`,
  `Machine: ${cpu}, ${os.cpus().length} cores; node ${process.version}; ${new Date().toISOString().slice(0, 10)}.`,
  '',
  '| worker | req/s | p50 ms | p99 ms | non-2xx |',
  '|---|---:|---:|---:|---:|',
  ...results.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.non2xx} |`),
  '',
  `Ratio (Rust / JS throughput): ${(results[0].rps / results[1].rps).toFixed(2)}×`,
];
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/ofrep-worker.md'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
