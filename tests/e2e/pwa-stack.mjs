// Helpers for the PWA suites. `startPwaStack()` runs the harness's stack (edge in workerd +
// demo origin) but points the edge at a second demo origin that serves a private copy of
// pwa/dist — so a test can publish an updated build (`publish()`) without touching the real
// build output other suites read — and adds the origin's test switches (`stats()`,
// `faults()`). Plus browser helpers for service-worker tests (CDP kept to short sessions).
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { ROOT, startStack, waitFor } from './harness.mjs';

const ORIGIN_BIN = process.env.EDGEFLAGS_ORIGIN_BIN || join(ROOT, 'target', 'debug', 'edgeflags-demo-origin');
// EDGEFLAGS_PWA_DIST serves another build (e.g. an older one, to see a new test fail on it).
const DIST = process.env.EDGEFLAGS_PWA_DIST || join(ROOT, 'pwa', 'dist');

const extra = new Set();
process.on('exit', () => {
  for (const child of extra) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

async function startOrigin(staticDir) {
  const child = spawn(ORIGIN_BIN, ['--v1', '127.0.0.1:0', '--v2', '127.0.0.1:0', '--static', staticDir], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  extra.add(child);
  child.on('exit', () => extra.delete(child));
  const lines = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  createInterface({ input: child.stderr }).on('line', (l) => lines.push(l));
  const listening = await waitFor(
    () => lines.map((l) => { try { return JSON.parse(l); } catch { return null; } }).find((m) => m?.event === 'listening'),
    { what: 'the PWA demo origin to listen', timeoutMs: 15000 },
  );
  return { child, v1: `http://${listening.v1}`, v2: `http://${listening.v2}` };
}

/** The service-worker configuration embedded in a built sw.js. */
export function builtConfig(dist = DIST) {
  const text = readFileSync(join(dist, 'sw.js'), 'utf8');
  const start = text.indexOf('const CONFIG = ') + 'const CONFIG = '.length;
  const end = text.indexOf(';\n', start);
  return JSON.parse(text.slice(start, end));
}

export async function startPwaStack(options = {}) {
  const dist = mkdtempSync(join(tmpdir(), 'edgeflags-pwa-dist-'));
  cpSync(DIST, dist, { recursive: true });
  const origin = await startOrigin(dist);
  let stack;
  try {
    stack = await startStack({ ...options, vars: { ...options.vars, ORIGIN_URL: origin.v1, CANARY_ORIGIN_URL: origin.v2 } });
  } catch (err) {
    process.kill(-origin.child.pid, 'SIGKILL');
    throw err;
  }
  const json = async (path, init) => {
    const res = await fetch(`${origin.v1}${path}`, init);
    if (!res.ok) throw new Error(`${path}: ${res.status}`);
    return res.json();
  };
  return {
    ...stack,
    dist,
    appOrigin: origin.v1,
    /** The origin's counters: orders, order POST attempts/faults/replays, lab paths. */
    stats: () => json('/__origin/stats'),
    /** Every order, in creation order. */
    orders: async () => (await json('/api/orders')).orders,
    /** `{failNext, failNextAfterCommit, refusePrefix, labDelayMs, ...}` (demo/origin/src/api.rs). */
    faults: (settings) =>
      json('/__origin/faults', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings) }),
    /**
     * Builds the app again into the served copy, after `change(appDir)` edited a copy of
     * pwa/app (uses the wasm-bindgen output of the last scripts/build-pwa.sh).
     */
    publish(change) {
      const app = mkdtempSync(join(tmpdir(), 'edgeflags-pwa-app-'));
      cpSync(join(ROOT, 'pwa', 'app'), app, { recursive: true });
      change(app);
      const res = spawnSync(
        process.execPath,
        [join(ROOT, 'scripts', 'pwa-dist.mjs'), join(ROOT, 'target', 'pwa-bindgen'), app, join(ROOT, 'pwa', 'js'), dist],
        { encoding: 'utf8' },
      );
      rmSync(app, { recursive: true, force: true });
      if (res.status !== 0) throw new Error(`pwa-dist failed: ${res.stderr}`);
    },
    async stop() {
      await stack.stop();
      try {
        process.kill(-origin.child.pid, 'SIGTERM');
      } catch {
        // gone
      }
      rmSync(dist, { recursive: true, force: true });
    },
  };
}

/** Edits a file in place. */
export function edit(path, fn) {
  writeFileSync(path, fn(readFileSync(path, 'utf8')));
}

/** Opens the app and waits until the service worker controls the page. */
export async function openApp(context, url) {
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.documentElement.dataset.sw === 'ready', null, { timeout: 30000 });
  await page.waitForFunction(() => Boolean(navigator.serviceWorker.controller && window.edgeflagsSW), null, {
    timeout: 30000,
  });
  return page;
}

/** Runs `fn(session)` in a short CDP session with the ServiceWorker domain enabled. */
export async function withServiceWorkerCdp(page, fn) {
  const session = await page.context().newCDPSession(page);
  try {
    const registrations = [];
    const versions = new Map();
    session.on('ServiceWorker.workerRegistrationUpdated', (e) => registrations.push(...e.registrations));
    session.on('ServiceWorker.workerVersionUpdated', (e) => {
      for (const v of e.versions) versions.set(v.versionId, v);
    });
    await session.send('ServiceWorker.enable');
    await waitFor(() => registrations.length > 0 && versions.size > 0, { what: 'service-worker registrations over CDP' });
    return await fn(session, { registrations, versions });
  } finally {
    await session.detach().catch(() => {});
  }
}

/**
 * Stops every service worker of the browser (CDP) and waits until none is running. Call
 * `context.setOffline` before, not after: Playwright's setOffline waits forever on a worker
 * that CDP stopped behind its back.
 */
export async function stopAllServiceWorkers(page) {
  await withServiceWorkerCdp(page, async (session, { versions }) => {
    await session.send('ServiceWorker.stopAllWorkers');
    await waitFor(() => [...versions.values()].every((v) => v.runningStatus === 'stopped'), {
      what: 'every service worker to stop',
    });
  });
}

/** Reads IndexedDB `edgeflags-sw` / `store` from the page (the worker's own database). */
export function readStore(page, store) {
  return page.evaluate(
    (store) =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open('edgeflags-sw');
        // Never create the worker's database from the page (it would lack its stores).
        open.onupgradeneeded = () => open.transaction.abort();
        open.onerror = () => resolve([]);
        open.onsuccess = () => {
          const db = open.result;
          const req = db.transaction(store).objectStore(store).getAll();
          req.onsuccess = () => {
            db.close();
            resolve(req.result.map((v) => ({ ...v, body: undefined })));
          };
          req.onerror = () => reject(req.error);
        };
      }),
    store,
  );
}
