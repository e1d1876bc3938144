// Edge proxy through the real runtime against the real origins: flag-driven traffic split,
// stickiness, weight changes, retry on the stable origin, security headers, rate limiting.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DEMO_FLAGS, ROOT, startStack } from './harness.mjs';

const CLI = process.env.EDGEFLAGS_CLI || join(ROOT, 'target', 'release', 'edgeflags');
const VISITORS = 400;

let stack;
before(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run cargo build --release -p edgeflags-cli`);
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

const visitorId = (i) => (i + 1).toString(16).padStart(32, '0');
const asVisitor = (i) => ({ cookie: `ef_uid=${visitorId(i)}` });
const admin = (method, path, body) =>
  fetch(`${stack.edgeUrl}/__edge${path}`, {
    method,
    headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });

/** Which origin version answers each visitor. */
async function originsOf(n) {
  const out = [];
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, (_, k) =>
        fetch(`${stack.edgeUrl}/api/version`, { headers: asVisitor(i + k) }).then((r) => r.headers.get('x-app-version')),
      ),
    );
    out.push(...batch);
  }
  return out;
}

/** What the core (through the CLI) says `backend` is for each visitor, for a given flag file. */
function expectedBackends(flagFile, n) {
  return Array.from({ length: n }, (_, i) => {
    const out = execFileSync(CLI, ['eval', '--flags', flagFile, '--flag', 'backend', '--context', JSON.stringify({ targetingKey: visitorId(i) })], {
      encoding: 'utf8',
    });
    return JSON.parse(out).value;
  });
}

describe('traffic split', () => {
  let before90;
  test('each visitor lands on the origin the backend flag names for them, ~90/10 overall', async () => {
    before90 = await originsOf(VISITORS);
    assert.deepEqual(before90, expectedBackends(DEMO_FLAGS, VISITORS));
    const canary = before90.filter((v) => v === 'v2').length;
    // 10 % of 400 = 40; binomial sd ≈ 6: allow ±4 sd.
    assert.ok(canary >= 16 && canary <= 64, `canary share ${canary}/${VISITORS}`);
  });

  test('assignment is sticky, and the origin learns the visitor\'s variant and a request id', async () => {
    const seen = new Set();
    for (let k = 0; k < 5; k++) {
      const res = await fetch(`${stack.edgeUrl}/api/version`, { headers: asVisitor(7) });
      const body = await res.json();
      seen.add(body.version);
      assert.equal(res.headers.get('x-edgeflags-origin'), body.version);
      assert.equal(body.edgeHeaders['x-edgeflags-variants'], `backend=${body.version}`);
      assert.match(body.edgeHeaders['x-edgeflags-request-id'], /^[0-9a-f]{32}$/);
    }
    assert.equal(seen.size, 1);
  });

  test('forwarding headers a visitor writes never reach the origin; the edge sets its own', async () => {
    const hostile = {
      'x-edgeflags-variants': 'backend=v2',
      'x-edgeflags-request-id': 'forged',
      forwarded: 'for=6.6.6.6;host=evil.example;proto=https',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
      'x-forwarded-prefix': '/evil',
      'x-forwarded-port': '8443',
      'x-real-ip': '6.6.6.6',
      'true-client-ip': '6.6.6.6',
      'x-original-url': '/admin',
      'x-rewrite-url': '/admin',
    };
    const res = await fetch(`${stack.edgeUrl}/api/version`, { headers: { ...asVisitor(7), ...hostile } });
    const { version, edgeHeaders } = await res.json();
    assert.equal(edgeHeaders['x-edgeflags-variants'], `backend=${version}`, 'only the edge\'s own variant header');
    assert.match(edgeHeaders['x-edgeflags-request-id'], /^[0-9a-f]{32}$/);
    const edgeHost = new URL(stack.edgeUrl).host;
    assert.equal(edgeHeaders['x-forwarded-host'], edgeHost);
    assert.equal(edgeHeaders['x-forwarded-proto'], 'http');
    assert.match(edgeHeaders.forwarded, new RegExp(`^(for=[^;]+;)?host="${edgeHost}";proto=http$`));
    for (const name of ['x-forwarded-prefix', 'x-forwarded-port', 'true-client-ip', 'x-original-url', 'x-rewrite-url']) {
      assert.equal(edgeHeaders[name], undefined, `${name} reached the origin`);
    }
    for (const [name, value] of Object.entries(edgeHeaders)) {
      assert.ok(!/6\.6\.6\.6|evil/.test(value), `${name}: ${value}`);
    }
  });

  test('raising the canary to 50 % moves only visitors from v1 to v2 — nobody goes back', async () => {
    const doc = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
    doc.flags.backend.targeting = { fractional: [['v1', 50], ['v2', 50]] };
    const res = await admin('PUT', '/flags', doc);
    assert.equal(res.status, 200);
    const after50 = await originsOf(VISITORS);
    const file = join(stack.persistDir, 'fifty.json');
    writeFileSync(file, JSON.stringify(doc));
    assert.deepEqual(after50, expectedBackends(file, VISITORS));
    const backToV1 = before90.filter((v, i) => v === 'v2' && after50[i] === 'v1').length;
    const moved = before90.filter((v, i) => v === 'v1' && after50[i] === 'v2').length;
    assert.equal(backToV1, 0);
    assert.ok(moved > 100, `moved ${moved}`);
    await admin('PUT', '/flags', JSON.parse(readFileSync(DEMO_FLAGS, 'utf8')));
  });

  test('a failing canary is retried once on the stable origin for GETs, and counted', async () => {
    // A route table whose canary is a closed port: every canary connect fails.
    const routes = {
      origins: { v1: stack.originV1, v2: 'http://127.0.0.1:9' },
      stable: 'v1',
      routes: [{ path: '/', flag: 'backend' }],
    };
    const file = join(stack.persistDir, 'routes.json');
    writeFileSync(file, JSON.stringify(routes));
    stack.kvPut('routes', file);
    try {
      const canaryVisitor = before90.indexOf('v2');
      assert.ok(canaryVisitor >= 0);
      const res = await fetch(`${stack.edgeUrl}/api/version`, { headers: asVisitor(canaryVisitor) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-app-version'), 'v1');
      assert.equal(res.headers.get('x-edgeflags-retried'), 'v2->v1');
      const post = await fetch(`${stack.edgeUrl}/api/orders`, {
        method: 'POST',
        headers: { ...asVisitor(canaryVisitor), 'content-type': 'application/json' },
        body: JSON.stringify({ item: 'not retried' }),
      });
      assert.equal(post.status, 502, 'a POST is not replayed on another origin');
      const status = await (await fetch(`${stack.edgeUrl}/__edge/status`)).json();
      assert.ok(status.proxy.retries >= 1, JSON.stringify(status.proxy));
    } finally {
      writeFileSync(file, JSON.stringify({ ...routes, origins: { v1: stack.originV1, v2: stack.originV2 } }));
      stack.kvPut('routes', file);
    }
  });

  test('a malformed route document is reported with JSON paths and routing keeps working', async () => {
    const file = join(stack.persistDir, 'bad-routes.json');
    writeFileSync(file, JSON.stringify({ origins: { v1: 'ftp://nope' }, stable: 'v9', routes: [{ path: 'api' }] }));
    stack.kvPut('routes', file);
    const res = await fetch(`${stack.edgeUrl}/api/version`, { headers: asVisitor(1) });
    assert.equal(res.status, 200);
    const status = await (await fetch(`${stack.edgeUrl}/__edge/status`)).json();
    assert.ok(status.routeProblems.some((p) => p.startsWith('origins.v1:')), JSON.stringify(status.routeProblems));
    assert.ok(status.routeProblems.some((p) => p.startsWith('routes[0].path:')));
  });

  test('a route problem never shows a variable\'s value, and origins with credentials are refused', async () => {
    const file = join(stack.persistDir, 'leaky-routes.json');
    const withCredentials = stack.originV2.replace('http://', 'http://user:pw@');
    writeFileSync(file, JSON.stringify({
      origins: { v1: '$ADMIN_TOKEN', v2: withCredentials }, stable: 'v1', routes: [{ path: '/', origin: 'v1' }],
    }));
    stack.kvPut('routes', file);
    // Routing keeps the last good table (and this request makes the edge read the new one).
    assert.equal((await fetch(`${stack.edgeUrl}/api/version`, { headers: asVisitor(1) })).status, 200);
    const status = await (await fetch(`${stack.edgeUrl}/__edge/status`)).json();
    const problems = JSON.stringify(status.routeProblems);
    assert.ok(status.routeProblems.some((p) => p.startsWith('origins.v1:') && p.includes('$ADMIN_TOKEN')), problems);
    assert.ok(status.routeProblems.some((p) => p.startsWith('origins.v2:')), problems);
    assert.ok(!problems.includes(stack.adminToken), 'the public status endpoint leaked a secret');
    assert.ok(!JSON.stringify(status).includes(stack.adminToken));
  });
});

describe('hardening', () => {
  test('proxied and own responses carry the security headers; hop-by-hop headers are gone', async () => {
    const page = await fetch(`${stack.edgeUrl}/`);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('referrer-policy'), 'strict-origin-when-cross-origin');
    assert.match(page.headers.get('content-security-policy'), /wasm-unsafe-eval/);
    assert.equal(page.headers.get('strict-transport-security'), null, 'no HSTS over plain http');
    const api = await fetch(`${stack.edgeUrl}/__edge/health`);
    assert.equal(api.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'");
  });

  test("a security header the origin sets itself is kept, not replaced by the edge's default", async () => {
    const res = await fetch(`${stack.edgeUrl}/lab/own-frame-options?frameOptions=SAMEORIGIN`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-frame-options'), 'SAMEORIGIN');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', 'the others are still added');
  });

  test('a burst against OFREP is answered 429 with Retry-After, with an error body', async () => {
    const statuses = [];
    let limited;
    for (let i = 0; i < 40 && !limited; i++) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, () =>
          fetch(`${stack.edgeUrl}/ofrep/v1/evaluate/flags`, { method: 'POST', body: '{"context":{}}' }),
        ),
      );
      statuses.push(...batch.map((r) => r.status));
      limited = batch.find((r) => r.status === 429);
    }
    assert.ok(limited, `no 429 in ${statuses.length} requests`);
    assert.equal(limited.headers.get('retry-after'), '60');
    assert.equal((await limited.json()).errorCode, 'RATE_LIMITED');
  });
});
