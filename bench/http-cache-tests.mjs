// Runs the public HTTP caching test suite `http-cache-tests` (npm, BSD-3-Clause, by Mark
// Nottingham — the suite behind cache-tests.fyi) against the edge worker: the suite's origin
// server sits behind the worker (ORIGIN_URL), its client runs against the worker, and the
// package's own scoring counts the passes per kind.
//
//   node bench/http-cache-tests.mjs            # needs edge/build (bash scripts/build-edge.sh)
//
// The suite is installed on demand into .cache/http-cache-tests (exact version below), not
// into the project's dependencies: it drags in npm 6 and old node-fetch. Writes
// bench/results/http-cache-tests.json and prints a summary line.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT, freePort, startStack, waitFor } from '../tests/e2e/harness.mjs';

const VERSION = '0.4.5';
const DIR = join(ROOT, '.cache', 'http-cache-tests');
const PKG = join(DIR, 'node_modules', 'http-cache-tests');

if (!existsSync(join(PKG, 'package.json'))) {
  mkdirSync(DIR, { recursive: true });
  writeFileSync(join(DIR, 'package.json'), JSON.stringify({ private: true }));
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `http-cache-tests@${VERSION}`], {
    cwd: DIR,
    stdio: 'inherit',
  });
  if (r.status !== 0) process.exit(2);
}

// Preloads: the origin server listens on every interface unless told otherwise, and the
// client's keep-alive (Node >= 19 default) reuses sockets a cache closes ("socket hang up").
const preload = join(DIR, 'preload.cjs');
writeFileSync(
  preload,
  `const http = require('node:http');
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  return typeof port === 'number' || typeof port === 'string' ? listen.call(this, Number(port), '127.0.0.1', ...rest.filter((a) => typeof a === 'function')) : listen.call(this, port, ...rest);
};
http.globalAgent = new http.Agent({ keepAlive: false });
`,
);

const originPort = await freePort();
const origin = spawn(process.execPath, ['--require', preload, join(PKG, 'server', 'server.mjs')], {
  cwd: DIR,
  env: { ...process.env, npm_config_protocol: 'http', npm_config_port: String(originPort), npm_config_pidfile: join(DIR, 'server.pid') },
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
const stopOrigin = () => {
  try {
    process.kill(-origin.pid, 'SIGKILL');
  } catch {
    // gone
  }
};
process.on('exit', stopOrigin);

let stack;
try {
  await waitFor(async () => (await fetch(`http://127.0.0.1:${originPort}/`)).status > 0, { what: 'the test origin' });
  // Start the origin first: the cache must find it up. No canary, no bootstrap, and an
  // identity from a header so the edge adds no cookie of its own.
  stack = await startStack({
    vars: {
      ORIGIN_URL: `http://127.0.0.1:${originPort}`,
      CANARY_ORIGIN_URL: '',
      BOOTSTRAP: 'off',
      IDENTITY_SOURCE: 'header:x-visitor',
      REFRESH_SECONDS: process.env.HCT_REFRESH ?? '5',
      CSP: 'off',
      FRAME_OPTIONS: 'off',
      REFERRER_POLICY: 'off',
    },
  });
  const run = spawnSync(process.execPath, ['--require', preload, '--no-warnings', join(PKG, 'cli.mjs')], {
    cwd: DIR,
    // Both spellings: the client reads npm_config_id || npm_package_config_id and needs ''.
    env: { ...process.env, npm_config_base: stack.edgeUrl, npm_config_id: process.env.HCT_ID ?? '', npm_package_config_id: process.env.HCT_ID ?? '' },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    timeout: 15 * 60 * 1000,
  });
  if (run.status !== 0) throw new Error(`the suite's client failed: ${run.stderr}`);
  if (process.env.HCT_ID) {
    console.log(run.stdout);
    process.exit(0);
  }
  const results = JSON.parse(run.stdout.slice(run.stdout.indexOf('{')));
  const { default: tests } = await import(join(PKG, 'tests', 'index.mjs'));
  const { default: surrogate } = await import(join(PKG, 'tests', 'surrogate-control.mjs'));
  tests.push(surrogate);
  const display = await import(join(PKG, 'lib', 'display.mjs'));
  const counts = {};
  const failedRequired = [];
  for (const suite of tests) {
    for (const t of suite.tests) {
      const kind = t.kind ?? 'required';
      const outcome = display.determineTestResult(tests, t.id, results, false);
      const passed = outcome === display.resultTypes?.pass || outcome === display.resultTypes?.yes || outcome?.[0] === 'pass';
      counts[kind] ??= { passed: 0, total: 0 };
      counts[kind].total += 1;
      if (passed || results[t.id] === true) counts[kind].passed += 1;
      else if (kind === 'required') failedRequired.push(t.id);
    }
  }
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(ROOT, 'bench', 'results', 'http-cache-tests.json'),
    JSON.stringify({ version: VERSION, counts, failedRequired, results }, null, 2),
  );
  const line = Object.entries(counts)
    .map(([k, c]) => `${k}: ${c.passed}/${c.total}`)
    .join(', ');
  console.log(`http-cache-tests ${VERSION} against the edge worker — ${line}`);
  console.log(`failed required tests: ${failedRequired.join(' ')}`);
} finally {
  await stack?.stop();
  stopOrigin();
}
