// Hot-path cost of measurement: the edge worker proxying GET /api/version to the demo origin,
// with metrics on (batches into the SQLite Durable Object) and off (METRICS=off), in the same
// run, alternating, straight through Miniflare/workerd on loopback. The origin alone is
// measured too, so the worker's own time (edge minus origin) can be stated.
//
//   node bench/metrics-overhead.mjs [--duration SECONDS] [--connections N] [--rounds N] [--quick]
//
// Needs: edge/build (bash scripts/build-edge.sh), target/release/edgeflags-demo-origin
// (cargo build --release -p edgeflags-demo-origin), wrk (apt-get install -y wrk).
// Prints a markdown table and writes bench/results/metrics-overhead.md.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const QUICK = args.includes('--quick');
const DURATION = Number(opt('--duration', QUICK ? 3 : 8));
const CONNECTIONS = Number(opt('--connections', 8));
const ROUNDS = Number(opt('--rounds', QUICK ? 1 : 3));
const ORIGIN = join(ROOT, 'target/release/edgeflags-demo-origin');

if (spawnSync('wrk', ['--version']).error) {
  console.error('wrk is missing: apt-get install -y wrk');
  process.exit(2);
}
if (!existsSync(ORIGIN)) {
  console.error(`${ORIGIN} is missing: cargo build --release -p edgeflags-demo-origin`);
  process.exit(2);
}

const origin = spawn(ORIGIN, ['--v1', '127.0.0.1:0', '--v2', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const listening = await new Promise((ok, fail) => {
  origin.stdout.on('data', (d) => {
    for (const line of String(d).split('\n')) {
      try { const m = JSON.parse(line); if (m.event === 'listening') ok(m); } catch { /* not JSON */ }
    }
  });
  origin.on('exit', () => fail(new Error('the demo origin exited')));
});

const flags = readFileSync(join(ROOT, 'examples/flags/demo.flagd.json'), 'utf8');
// The request worker; with metrics, the control worker beside it holds the metrics store
// (the request worker's METRICS binding names its class, as in wrangler.toml).
const edge = (metrics) => ({
  name: 'edgeflags',
  modules: true,
  scriptPath: join(ROOT, 'edge/build/index.js'),
  modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
  compatibilityDate: '2026-04-01',
  kvNamespaces: { FLAGS: 'bench' },
  durableObjects: metrics ? { METRICS: { className: 'MetricsStore', scriptName: 'edgeflags-control' } } : {},
  bindings: {
    ORIGIN_URL: `http://${listening.v1}`,
    CANARY_ORIGIN_URL: `http://${listening.v2}`,
    REFRESH_SECONDS: '3600',
    METRICS: metrics ? 'on' : 'off',
  },
});
const control = {
  name: 'edgeflags-control',
  modules: true,
  scriptPath: join(ROOT, 'edge/build-control/index.js'),
  modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
  compatibilityDate: '2026-04-01',
  kvNamespaces: { FLAGS: 'bench' },
  durableObjects: { METRICS: { className: 'MetricsStore', useSQLite: true } },
  bindings: { ORIGIN_URL: `http://${listening.v1}`, REFRESH_SECONDS: '3600' },
};
const worker = (metrics) =>
  new Miniflare({ host: '127.0.0.1', port: 0, workers: metrics ? [edge(true), control] : [edge(false)] });

const lua = join(os.tmpdir(), 'edgeflags-metrics.lua');
writeFileSync(
  lua,
  `local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/version", {["Cookie"] = string.format("ef_uid=%032x", n)})
end`,
);

function run(url) {
  const out = execFileSync('wrk', ['-t2', '-c', String(CONNECTIONS), '-d', `${DURATION}s`, '--latency', '-s', lua, url], { encoding: 'utf8' });
  const pct = (p) => out.match(new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`));
  const ms = (m) => (m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : NaN);
  return {
    rps: Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]),
    p50: ms(pct(50)),
    p99: ms(pct(99)),
    non2xx: Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0),
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const on = worker(true);
const off = worker(false);
const samples = { origin: [], off: [], on: [] };
try {
  const urls = { on: String(await on.ready), off: String(await off.ready), origin: `http://${listening.v1}` };
  for (const mf of [on, off]) await (await mf.getKVNamespace('FLAGS')).put('flags', flags);
  for (const name of ['on', 'off']) {
    const res = await fetch(new URL('/api/version', urls[name]), { headers: { cookie: `ef_uid=${'1'.padStart(32, '0')}` } });
    if (res.status !== 200) throw new Error(`metrics-${name} answered ${res.status}: ${await res.text()}`);
    execFileSync('wrk', ['-t2', '-c', String(CONNECTIONS), '-d', '2s', '-s', lua, urls[name]], { stdio: 'ignore' });
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of r % 2 ? ['on', 'off', 'origin'] : ['off', 'on', 'origin']) {
      const s = run(urls[name]);
      samples[name].push(s);
      console.error(`round ${r + 1} ${name}: ${s.rps.toFixed(0)} req/s, p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, non-2xx ${s.non2xx}`);
    }
  }
} finally {
  await on.dispose();
  await off.dispose();
  origin.kill();
}

const m = (name, k) => median(samples[name].map((s) => s[k]));
const row = (label, name) => `| ${label} | ${m(name, 'rps').toFixed(0)} | ${m(name, 'p50').toFixed(2)} | ${m(name, 'p99').toFixed(2)} | ${samples[name].reduce((a, s) => a + s.non2xx, 0)} |`;
const own = (k) => m('off', k) - m('origin', k);
const cost = (k) => m('on', k) - m('off', k);
const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model;
const lines = [
  `Proxied GET /api/version through the edge worker, metrics on vs off, ${ROUNDS} alternating round(s) of ${DURATION}s, wrk -t2 -c${CONNECTIONS}, Miniflare/workerd and the demo origin on loopback; medians of the rounds.`,
  `Machine: ${cpu}, ${os.cpus().length} cores; node ${process.version}; ${new Date().toISOString().slice(0, 10)}.`,
  '',
  '| target | req/s | p50 ms | p99 ms | non-2xx |',
  '|---|---:|---:|---:|---:|',
  row('edge, metrics on', 'on'),
  row('edge, metrics off', 'off'),
  row('origin alone', 'origin'),
  '',
  `Worker's own time (edge off − origin): p50 ${own('p50').toFixed(2)} ms, p99 ${own('p99').toFixed(2)} ms.`,
  `Cost of measurement (on − off): p50 ${cost('p50').toFixed(2)} ms (${((100 * cost('p50')) / own('p50')).toFixed(1)} % of the worker's own time), p99 ${cost('p99').toFixed(2)} ms (${((100 * cost('p99')) / own('p99')).toFixed(1)} %); throughput ${(((m('on', 'rps') - m('off', 'rps')) / m('off', 'rps')) * 100).toFixed(1)} %.`,
];
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, 'bench/results/metrics-overhead.md'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
