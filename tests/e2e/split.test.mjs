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

  test('a kill switch from the dashboard (a 303 answer) is in effect on the relaying worker at once', async () => {
    const dashboard = `${stack.edgeUrl}/__edge/dashboard`;
    const post = (path, fields, headers = {}) => fetch(`${dashboard}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: stack.edgeUrl, ...headers },
      body: new URLSearchParams(fields).toString(),
    });
    const login = await post('/login', { token: stack.adminToken });
    assert.equal(login.status, 303);
    const cookie = login.headers.get('set-cookie').split(';')[0];
    const page = await (await fetch(dashboard, { headers: { cookie } })).text();
    const csrf = page.match(/name="csrf" value="([0-9a-f]+)"/)[1];
    assert.equal((await ofrep('new-checkout', 'split-2')).reason, 'TARGETING_MATCH');
    const off = await post('/actions/disable', { flag: 'new-checkout', csrf }, { cookie });
    assert.equal(off.status, 303);
    assert.equal(off.headers.get('x-edgeflags-committed'), null, 'the hint stays between the workers');
    assert.equal((await ofrep('new-checkout', 'split-2')).reason, 'DISABLED');
    const on = await fetch(`${stack.edgeUrl}/__edge/features/enable`, {
      method: 'POST', headers: auth(), body: JSON.stringify({ flag: 'new-checkout' }),
    });
    assert.equal(on.status, 200);
    assert.equal((await ofrep('new-checkout', 'split-2')).reason, 'TARGETING_MATCH');
  });

  test('a relayed answer keeps the control worker\'s status, body and headers', async () => {
    // Only the control worker checks admin tokens: a 401 with its challenge is its answer.
    const denied = await fetch(`${stack.edgeUrl}/__edge/flags`);
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await denied.json()).errorCode, 'UNAUTHORIZED');
  });

  test('a relayed request body arrives whole, and a refused one changes nothing', async () => {
    const before = await (await fetch(`${stack.edgeUrl}/__edge/flags`, { headers: auth() })).json();
    const bad = await fetch(`${stack.edgeUrl}/__edge/flags/page-size`, {
      method: 'PATCH', headers: auth(), body: JSON.stringify({ defaultVariant: 'no-such-variant' }),
    });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(await bad.json()), /no-such-variant/, 'the refusal names what the body said');
    const after = await (await fetch(`${stack.edgeUrl}/__edge/flags`, { headers: auth() })).json();
    assert.equal(after.version, before.version);
    // A 200 KB body (under the admin API's 512 KiB) reaches the control worker intact: the
    // document it stores is the one sent.
    const doc = before.flagSet;
    doc.metadata = { ...(doc.metadata ?? {}), padding: 'x'.repeat(200_000) };
    const put = await fetch(`${stack.edgeUrl}/__edge/flags`, { method: 'PUT', headers: auth(), body: JSON.stringify(doc) });
    assert.equal(put.status, 200, await put.clone().text());
    const stored = await (await fetch(`${stack.edgeUrl}/__edge/flags`, { headers: auth() })).json();
    assert.equal(stored.flagSet.metadata.padding.length, 200_000);
    delete doc.metadata.padding;
    assert.equal((await fetch(`${stack.edgeUrl}/__edge/flags`, { method: 'PUT', headers: auth(), body: JSON.stringify(doc) })).status, 200);
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

  test('the control plane\'s endpoints answer 503 CONTROL_UNAVAILABLE, and nothing the visitor does waits on them', async () => {
    // Locally the answer in the control worker's place is wrangler's own 503 text; on
    // Cloudflare, a platform error page: neither carries the edge's mark, so the request
    // worker answers for it.
    const admin = await fetch(`${alone.edgeUrl}/__edge/flags`, { headers: { authorization: `Bearer ${alone.adminToken}` } });
    assert.equal(admin.status, 503);
    assert.equal((await admin.json()).errorCode, 'CONTROL_UNAVAILABLE');
    const health = await fetch(`${alone.edgeUrl}/__edge/health`);
    assert.equal(health.status, 200);
  });
});
