// Runs the public HTTP caching test suite `http-cache-tests` (npm, BSD-3-Clause, by Mark
// Nottingham — the suite behind cache-tests.fyi) against the edge worker: the suite's origin
// server sits behind the worker (ORIGIN_URL), its client runs against the worker, and the
// package's own scoring counts the passes per kind.
//
//   node bench/http-cache-tests.mjs [--config default|tuned]   # needs edge/build
//
// `default` (the figure to report) runs the worker as the README's configuration table has it:
// only ORIGIN_URL set (no canary), cookie identity, bootstrap and security headers on.
// `tuned` is a separate, labelled row: identity from a header (no Set-Cookie of the edge's
// own), no bootstrap, no CSP / frame / referrer headers.
//
// Scoring is the package's own (`lib/display.mjs` `determineTestResult`, dependencies
// honoured): a test whose `depends_on` tests did not pass is "not run", never a pass.
//
// The suite is installed on demand into .cache/http-cache-tests (exact version below), not
// into the project's dependencies: it drags in npm 6 and old node-fetch. Writes
// bench/results/http-cache-tests.json and prints a summary line.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT, freePort, startStack, waitFor } from '../tests/e2e/harness.mjs';

const VERSION = '0.4.5';
const args = process.argv.slice(2);
const CONFIG = args.includes('--config') ? args[args.indexOf('--config') + 1] : 'default';
if (!['default', 'tuned'].includes(CONFIG)) {
  console.error('--config must be default or tuned');
  process.exit(2);
}
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
  // Start the origin first: the cache must find it up. The harness passes test vars (a
  // canary, REFRESH_SECONDS=0); they are put back to the defaults here.
  const defaults = { ORIGIN_URL: `http://127.0.0.1:${originPort}`, CANARY_ORIGIN_URL: '', REFRESH_SECONDS: '5' };
  const tuned = {
    BOOTSTRAP: 'off', IDENTITY_SOURCE: 'header:x-visitor', CSP: 'off', FRAME_OPTIONS: 'off', REFERRER_POLICY: 'off',
  };
  stack = await startStack({ vars: CONFIG === 'tuned' ? { ...defaults, ...tuned } : defaults });
  // Asynchronously: a synchronous child would stop this process from reading wrangler's
  // output, and a full pipe would stall the dev server under test.
  const client = spawn(process.execPath, ['--require', preload, '--no-warnings', join(PKG, 'cli.mjs')], {
    cwd: DIR,
    // Both spellings: the client reads npm_config_id || npm_package_config_id and needs ''.
    env: { ...process.env, npm_config_base: stack.edgeUrl, npm_config_id: process.env.HCT_ID ?? '', npm_package_config_id: process.env.HCT_ID ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = [];
  const err = [];
  client.stdout.on('data', (d) => out.push(d));
  client.stderr.on('data', (d) => err.push(d));
  const timer = setTimeout(() => client.kill('SIGKILL'), 15 * 60 * 1000);
  const [code] = await once(client, 'exit');
  clearTimeout(timer);
  const run = { status: code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
  if (run.status !== 0) throw new Error(`the suite's client failed: ${run.stderr}`);
  if (process.env.HCT_ID) {
    console.log(run.stdout);
    if (process.env.HCT_LOGS) {
      await new Promise((r) => setTimeout(r, 1000)); // let the last log lines arrive
      console.log(stack.logs().edge);
    }
    process.exit(0);
  }
  const results = JSON.parse(run.stdout.slice(run.stdout.indexOf('{')));
  const { default: tests } = await import(join(PKG, 'tests', 'index.mjs'));
  const { default: surrogate } = await import(join(PKG, 'tests', 'surrogate-control.mjs'));
  tests.push(surrogate);
  const display = await import(join(PKG, 'lib', 'display.mjs'));
  const counts = {};
  const failedRequired = [];
  const notRunRequired = [];
  let originErrors = 0;
  for (const suite of tests) {
    for (const t of suite.tests) {
      const kind = t.kind ?? 'required';
      // The third element is the package's plain-text mark: ✅ pass, Y yes, ⚪️ dependency failed.
      const mark = display.determineTestResult(tests, t.id, results, true)[2];
      counts[kind] ??= { passed: 0, notRun: 0, total: 0 };
      counts[kind].total += 1;
      if (mark === '✅' || mark === 'Y') counts[kind].passed += 1;
      else if (mark === '⚪️') {
        counts[kind].notRun += 1;
        if (kind === 'required') notRunRequired.push(t.id);
      } else if (kind === 'required') failedRequired.push(t.id);
      if (JSON.stringify(results[t.id] ?? '').includes('502')) originErrors += 1;
    }
  }
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(
    join(ROOT, 'bench', 'results', `http-cache-tests.${CONFIG}.json`),
    JSON.stringify({ version: VERSION, config: CONFIG, counts, failedRequired, notRunRequired, originErrors, results }, null, 2),
  );
  const line = Object.entries(counts)
    .map(([k, c]) => `${k}: ${c.passed}/${c.total} (${c.notRun} not run)`)
    .join(', ');
  console.log(`http-cache-tests ${VERSION} against the edge worker, ${CONFIG} configuration — ${line}`);
  console.log(`results mentioning a 502: ${originErrors}`);
  console.log(`failed required tests: ${failedRequired.join(' ')}`);
  console.log(`required tests not run (a dependency failed): ${notRunRequired.join(' ')}`);
} finally {
  await stack?.stop();
  stopOrigin();
}
