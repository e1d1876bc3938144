// End-to-end harness: the real stack on loopback. Starts the demo origin (both versions) and
// the edge worker in workerd through `wrangler dev` (a config without [build]: everything is
// built beforehand by scripts/build-*.sh), with a fresh --persist-to directory, seeds local KV,
// waits until both answer, and stops every process by PID — also when a test fails, times out
// or the runner is killed.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer as httpServer } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Agent, setGlobalDispatcher } from 'undici';

// One connection per request for every test's fetch(): wrangler's dev proxy closes a
// connection after some answers (e.g. an error before a request body was read), and
// reusing such a socket fails the *next* request with "fetch failed" at random.
setGlobalDispatcher(new Agent({ pipelining: 0 }));

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');
const ORIGIN_BIN = process.env.EDGEFLAGS_ORIGIN_BIN || join(ROOT, 'target', 'debug', 'edgeflags-demo-origin');
const NOBUILD_CONFIG = join(ROOT, '.wrangler', 'wrangler.nobuild.toml');
const NOBUILD_CONTROL_CONFIG = join(ROOT, '.wrangler', 'control.nobuild.toml');
export const DEMO_FLAGS = join(ROOT, 'examples', 'flags', 'demo.flagd.json');
/** Admin token every test stack gets (as a var; in production it is a secret). */
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef';

const offlineEnv = {
  ...process.env,
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  XDG_CONFIG_HOME: join(ROOT, '.cache', 'xdg-config'),
  WRANGLER_LOG_PATH: join(ROOT, '.cache', 'wrangler-logs'),
  WRANGLER_REGISTRY_PATH: join(ROOT, '.cache', 'wrangler-registry'),
};

/** Every child started by this process, killed on exit whatever happens. */
const children = new Set();
function killAll(signal = 'SIGKILL') {
  for (const child of children) {
    try {
      process.kill(-child.pid, signal); // the whole group: wrangler's workerd children too
    } catch {
      // already gone
    }
  }
}
process.on('exit', () => killAll());
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

function startChild(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.log = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      child.log.push(line);
      if (child.log.length > 400) child.log.shift();
      if (process.env.EDGEFLAGS_E2E_VERBOSE) console.error(`[${cmd.split('/').pop()}] ${line}`);
    });
  }
  return child;
}

async function stopChild(child) {
  if (!children.has(child)) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, 5000);
  await once(child, 'exit').catch(() => {});
  clearTimeout(timer);
}

/**
 * A scripted origin on 127.0.0.1 (cache and fast-path tests): `/r/<name>?...` answers with
 * what the query names — `cc` (Cache-Control), `etag` (and 304 to a matching If-None-Match),
 * `cookie` (a Set-Cookie), `status`, `ct` (Content-Type, default text/plain; `text/html`
 * gets a small page), `xfo` (its own X-Frame-Options), `cs` (a Cache-Status, as from a cache
 * in front of it), `hop` (a header listed in Connection), `echo` (the body is the request
 * it got, but the per-request id), `odd` (an `x-odd` header whose value holds U+0001) — with `x-app-version` and `x-served` (the request count
 * of the path), and a body naming the version, path and count. `state.fail` makes it answer
 * 503, `state.down` close the connection. Call `listen()` before use.
 */
export function scriptedOrigin(version) {
  const counts = new Map();
  // `gate`: a promise that requests with `hold=1` wait for (counted in `waiting`) before
  // they are answered.
  const state = { fail: false, down: false, gate: null, waiting: 0 };
  const server = httpServer(async (req, res) => {
    const url = new URL(req.url, 'http://o');
    const n = (counts.get(url.pathname) ?? 0) + 1;
    counts.set(url.pathname, n);
    if (url.searchParams.get('hold') && state.gate) {
      state.waiting++;
      await state.gate;
    }
    if (state.down) return req.socket.destroy();
    if (state.fail) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      return res.end('down');
    }
    const q = url.searchParams;
    const etag = q.get('etag');
    if (etag && req.headers['if-none-match'] === `"${etag}"`) {
      res.writeHead(304, { etag: `"${etag}"`, 'cache-control': q.get('cc') ?? 'max-age=60' });
      return res.end();
    }
    const headers = { 'content-type': q.get('ct') ?? 'text/plain', 'x-app-version': version, 'x-served': String(n) };
    if (q.get('cc')) headers['cache-control'] = q.get('cc');
    if (etag) headers.etag = `"${etag}"`;
    if (q.get('cookie')) headers['set-cookie'] = `session=${q.get('cookie')}-${n}`;
    if (q.get('xfo')) headers['x-frame-options'] = q.get('xfo');
    if (q.get('cs')) headers['cache-status'] = q.get('cs');
    if (q.get('hop')) {
      headers.connection = 'x-hop';
      headers['x-hop'] = q.get('hop');
    }
    if (q.get('odd')) {
      // A header value with a control character (U+0001: allowed by the Fetch standard and
      // relayed by workerd, refused by Node's own writer), written raw.
      const body = `${version} ${url.pathname} #${n}`;
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      return req.socket.end(`HTTP/1.1 200 OK\r\n${lines}x-odd: a\u0001b\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`, 'latin1');
    }
    res.writeHead(Number(q.get('status') ?? 200), headers);
    if (q.get('echo')) {
      const seen = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== 'x-edgeflags-request-id'));
      return res.end(JSON.stringify({ url: req.url, method: req.method, headers: seen }));
    }
    const html = (q.get('ct') ?? '').startsWith('text/html');
    res.end(html ? `<!doctype html><html><head><title>${version}</title></head><body>#${n}</body></html>` : `${version} ${url.pathname} #${n}`);
  });
  const listen = async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${server.address().port}`;
  };
  return { server, counts, state, listen };
}

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Polls `probe` until it returns truthy or `timeoutMs` passes. */
export async function waitFor(probe, { timeoutMs = 30000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
}

function requireBuilt() {
  const missing = [
    [join(ROOT, 'edge', 'build', 'index.js'), 'scripts/build-edge.sh'],
    [join(ROOT, 'edge', 'build-control', 'index.js'), 'scripts/build-edge.sh'],
    [ORIGIN_BIN, 'cargo build -p edgeflags-demo-origin'],
    [join(ROOT, 'pwa', 'dist', 'sw.js'), 'scripts/build-pwa.sh'],
  ].filter(([p]) => !existsSync(p));
  if (missing.length) {
    throw new Error(`not built: ${missing.map(([p, how]) => `${p} (run ${how})`).join(', ')} — or run \`make test\``);
  }
  // Always re-derive: wrangler.toml may have changed since the last run.
  const derived = spawnSync('bash', ['-c', 'source scripts/lib.sh && nobuild_config'], { cwd: ROOT, encoding: 'utf8' });
  if (derived.status !== 0) throw new Error(`cannot derive ${NOBUILD_CONFIG}: ${derived.stderr}`);
}

/** Sum of VmRSS of the processes in process group `pgid` whose name is `name`. */
function processGroupRss(pgid, name) {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (comm !== name || Number(fields[2]) !== pgid) continue; // fields[2] = pgrp
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (rss) total += Number(rss[1]) * 1024;
    } catch {
      // the process ended meanwhile
    }
  }
  return total;
}

/** Runs `wrangler kv ...` against the local store of a stack. */
function kv(persistDir, args, input) {
  const res = spawnSync(
    WRANGLER,
    ['kv', ...args, '--binding', 'FLAGS', '--local', '--persist-to', persistDir, '--config', NOBUILD_CONFIG],
    { cwd: ROOT, env: offlineEnv, encoding: 'utf8', input, timeout: 60000 },
  );
  if (res.status !== 0) throw new Error(`wrangler kv ${args.join(' ')} failed: ${res.stderr || res.stdout}`);
  return res.stdout;
}

/**
 * The control worker's config for one stack: the derived config with `vars` in its [vars]
 * table (replacing the same names) and an absolute `main`, written into the stack's own
 * directory — so no developer's .dev.vars sits beside it, and each stack's control worker
 * sees the same settings as its request worker (which gets them as `--var`).
 */
export function controlConfig(persistDir, vars, edit = (text) => text) {
  let inVars = false;
  const lines = [];
  for (const line of readFileSync(NOBUILD_CONTROL_CONFIG, 'utf8').split('\n')) {
    if (/^\[/.test(line)) inVars = line.trim() === '[vars]';
    const key = /^([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line)?.[1];
    if (inVars && key && key in vars) continue;
    if (/^main\s*=/.test(line)) {
      lines.push(`main = ${JSON.stringify(join(ROOT, 'edge', 'build-control', 'index.js'))}`);
      continue;
    }
    lines.push(line);
    if (line.trim() === '[vars]') {
      for (const [k, v] of Object.entries(vars)) lines.push(`${k} = ${JSON.stringify(String(v))}`);
    }
  }
  const file = join(persistDir, 'control.wrangler.toml');
  writeFileSync(file, edit(lines.join('\n')));
  return file;
}

/**
 * Starts origin + edge (the request worker and the control worker in one `wrangler dev`). Options: `seed` (KV key → file path or string value; default seeds
 * `flags` with the demo flag set), `vars` (extra worker vars).
 */
export async function startStack({ seed = { flags: { path: DEMO_FLAGS } }, vars = {}, control: withControl = true } = {}) {
  requireBuilt();
  mkdirSync(join(ROOT, '.wrangler'), { recursive: true });
  const persistDir = mkdtempSync(join(ROOT, '.wrangler', 'e2e-'));

  const origin = startChild(ORIGIN_BIN, [
    '--v1', '127.0.0.1:0', '--v2', '127.0.0.1:0', '--static', join(ROOT, 'pwa', 'dist'),
  ]);
  const listening = await waitFor(
    () => origin.log.map((l) => { try { return JSON.parse(l); } catch { return null; } }).find((m) => m?.event === 'listening'),
    { what: 'the demo origin to listen', timeoutMs: 15000 },
  );

  for (const [key, value] of Object.entries(seed)) {
    if (value.path) kv(persistDir, ['key', 'put', key, '--path', value.path]);
    else {
      const file = join(persistDir, `seed-${key}.txt`);
      writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
      kv(persistDir, ['key', 'put', key, '--path', file]);
    }
  }

  const allVars = {
    ORIGIN_URL: `http://${listening.v1}`,
    CANARY_ORIGIN_URL: `http://${listening.v2}`,
    ADMIN_TOKEN,
    // Every request re-checks KV, so a test's hand-written KV change is seen at once
    // (the refresh interval itself is unit-tested in edge/src/flags/live.rs).
    REFRESH_SECONDS: '0',
    // Unsigned visitor ids unless a test asks for signing: a developer's .dev.vars (which
    // scripts/dev.sh fills, and wrangler reads beside the derived config) must not change
    // what the suites see.
    IDENTITY_KEYS: '',
    ...vars,
  };
  const control = controlConfig(persistDir, allVars);
  // A port found free can be taken again before wrangler binds it (workerd binds several
  // ports of its own): then wrangler exits at once with "Address already in use", and the
  // stack starts again on other ports instead of failing the suite.
  const launch = async () => {
    const port = await freePort();
    const inspector = await freePort();
    const child = startChild(WRANGLER, [
      'dev', '--config', NOBUILD_CONFIG, ...(withControl ? ['--config', control] : []), '--local', '--ip', '127.0.0.1', '--port', String(port),
      '--inspector-port', String(inspector), '--persist-to', persistDir,
      '--show-interactive-dev-session=false', '--log-level', process.env.EDGEFLAGS_E2E_LOG_LEVEL || 'warn', '--test-scheduled',
      ...Object.entries(allVars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
      // A dev registry of the stack's own: wrangler dev resolves a service or Durable Object
      // binding whose worker it does not run itself through the machine's registry, so another
      // stack's (or a developer's `make dev`) control worker would otherwise answer for this one.
    ], { cwd: ROOT, env: { ...offlineEnv, WRANGLER_REGISTRY_PATH: join(persistDir, 'registry') } });
    return { child, url: `http://127.0.0.1:${port}` };
  };
  const portTaken = (child) => child.log.some((l) => l.includes('Address already in use'));
  let edge;
  let edgeUrl;
  for (let attempt = 1; ; attempt++) {
    ({ child: edge, url: edgeUrl } = await launch());
    let up;
    try {
      up = await waitFor(
        async () => (portTaken(edge) ? 'port taken' : (await fetch(`${edgeUrl}/__edge/health`)).ok),
        { what: `wrangler dev on ${edgeUrl}`, timeoutMs: 60000, intervalMs: 200 },
      );
    } catch (err) {
      await Promise.all([stopChild(edge), stopChild(origin)]);
      throw new Error(`${err.message}\n--- wrangler log ---\n${edge.log.join('\n')}`);
    }
    if (up === true) {
      // Another process may hold the port and have answered the probe: ours then exits with
      // "Address already in use" — give it a moment to say so before trusting the answer.
      await new Promise((r) => setTimeout(r, 300));
      if (!portTaken(edge) && edge.exitCode === null) break;
    }
    await stopChild(edge);
    if (attempt === 3) {
      await stopChild(origin);
      throw new Error(`wrangler dev found its port taken three times\n--- wrangler log ---\n${edge.log.join('\n')}`);
    }
  }

  const stack = {
    edgeUrl,
    originV1: `http://${listening.v1}`,
    originV2: `http://${listening.v2}`,
    persistDir,
    adminToken: ADMIN_TOKEN,
    kvPut: (key, file) => kv(persistDir, ['key', 'put', key, '--path', file]),
    // `wrangler kv key get` prints the value and a newline of its own.
    kvGet: (key) => kv(persistDir, ['key', 'get', key, '--text']).replace(/\n$/, ''),
    logs: () => ({ origin: origin.log.join('\n'), edge: edge.log.join('\n') }),
    /** Resident memory (bytes) of the workerd processes serving this stack (Linux /proc). */
    edgeRss: () => processGroupRss(edge.pid, 'workerd'),
    async stop() {
      await Promise.all([stopChild(edge), stopChild(origin)]);
    },
  };
  return stack;
}
