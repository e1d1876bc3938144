// Walking skeleton, through the real path: workerd (wrangler dev) + demo origin + Chromium.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';

import { DEMO_FLAGS, startStack, waitFor } from './harness.mjs';
import { launchBrowser } from './browser.mjs';

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

describe('edge worker in workerd', () => {
  test('a GET through the worker reaches the demo origin and carries the edge header', async () => {
    // A visitor the demo flag set keeps on the stable backend (a fresh one lands on the
    // canary 10 % of the time): the CLI says `backend` is v1 for this targetingKey.
    const res = await fetch(`${stack.edgeUrl}/api/version?probe=1`, {
      headers: { cookie: 'ef_uid=00000000000000000000000000000001' },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('x-edgeflags') ?? '', /^edge\/\d+\.\d+\.\d+/, 'the worker stamps its header');
    assert.equal(res.headers.get('x-app-version'), 'v1', 'the stable origin answered');
    const body = await res.json();
    assert.equal(body.version, 'v1');
    // The origin saw the forwarding headers the edge added.
    assert.equal(body.edgeHeaders['x-forwarded-proto'], 'http');
    assert.match(body.edgeHeaders['x-forwarded-host'], /^127\.0\.0\.1:\d+$/);
  });

  test('a POST body crosses the worker unchanged', async () => {
    const res = await fetch(`${stack.edgeUrl}/api/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'skeleton-1' },
      body: JSON.stringify({ item: 'pallet of screws', quantity: 3 }),
    });
    assert.equal(res.status, 201);
    const order = await res.json();
    assert.deepEqual([order.item, order.quantity], ['pallet of screws', 3]);
  });

  test('the origin being the direct answerer differs from the edge: no edge header there', async () => {
    const res = await fetch(`${stack.originV1}/api/version`);
    assert.equal(res.headers.get('x-edgeflags'), null);
  });

  test('the worker reads the flag set the harness seeded into KV', async () => {
    const seeded = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
    const res = await fetch(`${stack.edgeUrl}/__edge/status`);
    assert.equal(res.status, 200);
    const status = await res.json();
    // The control plane imported the seeded document as its first version, byte for byte.
    const seededVersion = createHash('sha256').update(readFileSync(DEMO_FLAGS)).digest('hex').slice(0, 16);
    assert.equal(status.isolate.controlPlane.version, seededVersion);
    assert.equal(status.isolate.controlPlane.writerReachable, true);
    assert.equal(status.isolate.active.version, seededVersion);
    assert.equal(status.isolate.active.flags, Object.keys(seeded.flags).length);
    assert.equal(status.isolate.active.documentVersion, seeded.metadata.version);
    assert.equal(status.error, null);
  });

  test('starting more stacks (which re-derive the wrangler config) does not stop a running one', async () => {
    // Every startStack() re-derives .wrangler/wrangler.nobuild.toml, which this running
    // `wrangler dev` watches; a half-written file used to make it reload and exit.
    const ROOT = new URL('../..', import.meta.url).pathname;
    for (let i = 0; i < 10; i++) {
      const derived = spawnSync('bash', ['-c', 'source scripts/lib.sh && nobuild_config'], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(derived.status, 0, derived.stderr);
    }
    await new Promise((r) => setTimeout(r, 1500)); // a reload, if any, would happen now
    const res = await fetch(`${stack.edgeUrl}/__edge/health`);
    assert.equal(res.status, 200, 'the running stack still answers');
  });

  test('unknown edge endpoints answer 404 with an OFREP-style error body', async () => {
    const res = await fetch(`${stack.edgeUrl}/__edge/nope`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { errorCode: 'NOT_FOUND', errorDetails: 'not found: /__edge/nope' });
  });
});

describe('service worker in Chromium', () => {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  test('the page registers the Rust/wasm service worker, which precaches the shell and serves it offline', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${stack.edgeUrl}/`);
      await page.waitForFunction(() => document.documentElement.dataset.sw === 'ready', null, { timeout: 30000 });
      // The page came through the edge.
      assert.match(await page.textContent('#edge'), /^edge\//);

      // The precache holds the shell, under revisioned keys, including the hashed wasm.
      const cached = await page.evaluate(async () => {
        const cache = await caches.open('edgeflags-precache-v1');
        return (await cache.keys()).map((r) => new URL(r.url).pathname + new URL(r.url).search);
      });
      assert.ok(cached.some((u) => u.startsWith('/index.html?__ef_rev=')), `index.html precached: ${cached}`);
      assert.ok(cached.some((u) => /^\/sw\/edgeflags_pwa\.[0-9a-f]{16}\.wasm$/.test(u)), `wasm precached: ${cached}`);
      assert.ok(cached.some((u) => u.startsWith('/app.js?')), `app.js precached: ${cached}`);

      // Controlled by the service worker (clients.claim on activate).
      await waitFor(() => page.evaluate(() => Boolean(navigator.serviceWorker.controller)), {
        what: 'the page to be controlled',
      });

      await context.setOffline(true);
      await page.reload();
      assert.equal(await page.getAttribute('#app-shell-marker', 'data-shell'), 'edgeflags-demo');
      assert.equal(await page.title(), 'Acme ERP — edgeflags demo');
      // The stylesheet came from the precache too.
      const styled = await page.evaluate(() => getComputedStyle(document.body).maxWidth);
      assert.notEqual(styled, 'none');
      await waitFor(async () => (await page.textContent('#network')) === 'offline', { what: 'offline banner' });
    } finally {
      await context.close();
    }
  });
});
