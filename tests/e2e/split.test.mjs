// Two workers (issue 15): the request worker (wrangler.toml) answers the visitor's path and
// hands every other /__edge/* request to the control worker (control/wrangler.toml) over the
// service binding CONTROL. Both run in one `wrangler dev`, as on Cloudflare: separate
// isolates, separate wasm, the Durable Objects only in the control worker.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, startStack } from './harness.mjs';

let stack;
before(async () => {
  // An hour between checks with the writer: what the request worker knows of a change it
  // relayed comes from the relay itself, not from a re-check that happened to be due.
  stack = await startStack({ vars: { REFRESH_SECONDS: '3600' } });
});
after(() => stack?.stop());

const auth = () => ({ authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' });

async function ofrep(flag, targetingKey) {
  const res = await fetch(`${stack.edgeUrl}/ofrep/v1/evaluate/flags/${flag}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ context: { targetingKey, email: 'ann@example.com' } }),
  });
  return res.json();
}

describe('request worker and control worker', () => {
  test('a kill switch relayed by the request worker is in effect there on the next request', async () => {
    assert.equal((await ofrep('new-checkout', 'split-1')).reason, 'TARGETING_MATCH');
    const off = await fetch(`${stack.edgeUrl}/__edge/features/disable`, {
      method: 'POST', headers: auth(), body: JSON.stringify({ flag: 'new-checkout' }),
    });
    assert.equal(off.status, 200, await off.clone().text());
    assert.equal((await ofrep('new-checkout', 'split-1')).reason, 'DISABLED');
    const on = await fetch(`${stack.edgeUrl}/__edge/features/enable`, {
      method: 'POST', headers: auth(), body: JSON.stringify({ flag: 'new-checkout' }),
    });
    assert.equal(on.status, 200);
    assert.equal((await ofrep('new-checkout', 'split-1')).reason, 'TARGETING_MATCH');
  });

  test('a relayed answer keeps the control worker\'s status, body and headers, and gets the edge\'s', async () => {
    const denied = await fetch(`${stack.edgeUrl}/__edge/flags`);
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await denied.json()).errorCode, 'UNAUTHORIZED');
    assert.ok(denied.headers.get('x-edgeflags'), 'the edge mark');
    assert.equal(denied.headers.get('x-content-type-options'), 'nosniff');
    const missing = await fetch(`${stack.edgeUrl}/__edge/no-such-endpoint`, { headers: auth() });
    assert.equal(missing.status, 404);
  });

  test('a relayed request body arrives whole, and a refused one changes nothing', async () => {
    const before = await (await fetch(`${stack.edgeUrl}/__edge/flags`, { headers: auth() })).json();
    const bad = await fetch(`${stack.edgeUrl}/__edge/flags/page-size`, {
      method: 'PATCH', headers: auth(), body: JSON.stringify({ defaultVariant: 'no-such-variant' }),
    });
    assert.equal(bad.status, 400);
    const after = await (await fetch(`${stack.edgeUrl}/__edge/flags`, { headers: auth() })).json();
    assert.equal(after.version, before.version);
  });

  test('the request worker carries no Durable Object, admin or notification code', () => {
    const request = readFileSync(join(ROOT, 'edge', 'build', 'worker.mjs'), 'utf8');
    const control = readFileSync(join(ROOT, 'edge', 'build-control', 'worker.mjs'), 'utf8');
    for (const cls of ['FlagWriter', 'MetricsStore', 'PushStore']) {
      assert.ok(control.includes(cls), `control worker exports ${cls}`);
      assert.ok(!request.includes(cls), `request worker has no ${cls}`);
    }
    const size = (dir) => readFileSync(join(ROOT, 'edge', dir, 'index_bg.wasm')).length;
    assert.ok(size('build') < size('build-control') * 0.7, `${size('build')} vs ${size('build-control')}`);
  });
});

describe('the visitor\'s path without the control worker', () => {
  // Only the request worker runs: its Durable Object bindings and its service binding point
  // at a worker that is not there (as when the control worker fails or is being redeployed).
  let alone;
  before(async () => {
    alone = await startStack({ control: false });
  });
  after(() => alone?.stop());

  test('proxied requests and OFREP are answered from the KV replica; /status says the writer is unreachable', async () => {
    const page = await fetch(`${alone.edgeUrl}/api/version`);
    assert.equal(page.status, 200);
    await page.arrayBuffer();
    const res = await fetch(`${alone.edgeUrl}/ofrep/v1/evaluate/flags/new-checkout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { targetingKey: 'alone-1', email: 'ann@example.com' } }),
    });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).reason, 'TARGETING_MATCH');
    const status = await (await fetch(`${alone.edgeUrl}/__edge/status`)).json();
    assert.equal(status.isolate.controlPlane.writerReachable, false, JSON.stringify(status.isolate));
  });

  test('the control plane\'s endpoints answer 503, and nothing the visitor does waits on them', async () => {
    const admin = await fetch(`${alone.edgeUrl}/__edge/flags`, { headers: { authorization: `Bearer ${alone.adminToken}` } });
    assert.equal(admin.status, 503);
    await admin.arrayBuffer();
    const health = await fetch(`${alone.edgeUrl}/__edge/health`);
    assert.equal(health.status, 200);
  });
});
