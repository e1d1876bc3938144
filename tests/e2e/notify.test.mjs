// Web Push end to end (issue 16, the push channel): workerd through wrangler dev with its
// local Queues and Durable Objects, a push service on loopback (./push-service.mjs) that
// verifies VAPID and decrypts with npm http_ece. Every wait polls the status endpoint or
// the push service's log; nothing asserts timings.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ADMIN_TOKEN, DEMO_FLAGS, startStack, waitFor } from './harness.mjs';
import { makeVapidKeys, startPushService } from './push-service.mjs';

const visitor = (n) => n.toString(16).padStart(32, '0');
const ALICE = visitor(0xa11ce);
const BOB = visitor(0xb0b);
const CAROL = visitor(0xca201);
const DAVE = visitor(0xda7e);
const ERIN = visitor(0xe214);
const FRANK = visitor(0xf2a4c);
const GRACE = visitor(0x62ace);

const vapid = makeVapidKeys();
let stack;
let push;

function flagFile() {
  const flags = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
  flags.flags['notifications.push'] = {
    state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on',
  };
  // The audience: a flag like any other (a fractional split works the same way).
  flags.flags['push-audience'] = {
    state: 'ENABLED', variants: { yes: true, no: false }, defaultVariant: 'no',
    targeting: { if: [{ in: [{ var: 'targetingKey' }, [ALICE, BOB]] }, 'yes', 'no'] },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'ef-notify-')), 'flags.json');
  writeFileSync(file, JSON.stringify(flags));
  return file;
}

before(async () => {
  push = await startPushService({ vapidPublicKey: vapid.publicKey });
  stack = await startStack({
    seed: { flags: { path: flagFile() } },
    vars: {
      VAPID_PUBLIC_KEY: vapid.publicKey,
      VAPID_PRIVATE_KEY: vapid.privateKey,
      VAPID_SUBJECT: 'mailto:ops@example.test',
      PUSH_ENDPOINT_HOSTS: '127.0.0.1',
      PUSH_SHARDS: '4',
      PUSH_RETRY_BASE_SECONDS: '0',
      PUSH_MAX_ATTEMPTS: '3',
    },
  });
});
after(async () => {
  await stack?.stop();
  await push?.close();
});

const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

async function subscribe(who, name) {
  const res = await fetch(`${stack.edgeUrl}/__edge/push/subscriptions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie: `ef_uid=${who}` },
    body: JSON.stringify(push.subscribe(name)),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return res.json();
}

async function send(body) {
  const res = await fetch(`${stack.edgeUrl}/__edge/notifications`, {
    method: 'POST', headers: admin, body: JSON.stringify({ channels: ['push'], body: 'b', ...body }),
  });
  const json = await res.json();
  assert.equal(res.status, 202, JSON.stringify(json));
  return json;
}

async function status(id) {
  const res = await fetch(`${stack.edgeUrl}/__edge/notifications/${id}`, { headers: admin });
  assert.equal(res.status, 200);
  return (await res.json()).channels.push;
}

/** Polls until nothing of `id` is queued any more; returns the final counts. */
async function settled(id, what) {
  return waitFor(async () => {
    const s = await status(id);
    return s.queued === 0 ? s : null;
  }, { what: `notification ${id} to settle (${what})`, timeoutMs: 60000, intervalMs: 200 });
}

function cleanRequests(id) {
  for (const r of push.for(id)) assert.deepEqual(r.problems, [], `request to ${r.name}`);
}

describe('web push through workerd', () => {
  test('the VAPID public key is public; subscriptions are checked', async () => {
    const res = await fetch(`${stack.edgeUrl}/__edge/push/vapid-public-key`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).publicKey, vapid.publicKey);
    const foreign = { ...push.subscribe('x'), endpoint: 'https://evil.example/push/x' };
    const bad = await fetch(`${stack.edgeUrl}/__edge/push/subscriptions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(foreign),
    });
    assert.equal(bad.status, 400);
    const anon = await fetch(`${stack.edgeUrl}/__edge/notifications`, { method: 'POST', body: '{}' });
    assert.equal(anon.status, 401);
  });

  test('a flag audience: exactly the targeted subscriptions get a payload that decrypts to the message', async () => {
    await subscribe(ALICE, 'alice');
    await subscribe(BOB, 'bob');
    await subscribe(CAROL, 'carol');
    const unknown = await fetch(`${stack.edgeUrl}/__edge/notifications`, {
      method: 'POST', headers: admin,
      body: JSON.stringify({ title: 't', body: 'b', channels: ['push'], audience: { flag: 'no-such-flag', variant: 'on' } }),
    });
    assert.equal(unknown.status, 404);
    const sent = await send({
      title: 'Order shipped', body: 'Your pallet is on its way', url: '/orders/42', tag: 'order-42',
      ttl: 3600, urgency: 'high', audience: { flag: 'push-audience', variant: 'yes' },
    });
    assert.equal(sent.channels.push.queued, 2);
    const s = await settled(sent.id, 'flag audience');
    assert.deepEqual([s.targeted, s.delivered, s.failed, s.gone], [2, 2, 0, 0]);
    cleanRequests(sent.id);
    const got = push.for(sent.id, 201);
    assert.deepEqual(got.map((r) => r.name).sort(), ['alice', 'bob']);
    for (const r of got) {
      assert.deepEqual(r.payload, { id: sent.id, title: 'Order shipped', body: 'Your pallet is on its way', url: '/orders/42', tag: 'order-42' });
      assert.equal(r.headers.ttl, '3600');
      assert.equal(r.headers.urgency, 'high');
      assert.equal(r.headers.topic, 'order-42');
      assert.equal(r.jwt.claims.sub, 'mailto:ops@example.test');
    }
  });

  test('a push sent on inapp too marks its payload as an inbox item; a push-only one does not', async () => {
    const who = visitor(0x1b0c);
    await subscribe(who, 'inbox-mark');
    const both = await send({ title: 'Both', channels: ['push', 'inapp'], audience: { targetingKeys: [who] } });
    assert.equal(both.channels.inapp.state, 'on');
    const only = await send({ title: 'Only push', audience: { targetingKeys: [who] } });
    for (const id of [both.id, only.id]) await settled(id, 'inbox mark');
    assert.deepEqual(push.for(both.id, 201).map((r) => r.payload), [{ id: both.id, inbox: true, title: 'Both', body: 'b' }]);
    assert.deepEqual(push.for(only.id, 201).map((r) => r.payload), [{ id: only.id, title: 'Only push', body: 'b' }]);
  });

  test('500 twice then 201: delivered once, retried twice; 429 honours Retry-After', async () => {
    await subscribe(DAVE, 'dave');
    await subscribe(ERIN, 'erin');
    push.script('dave', [500, 500, 201]);
    push.script('erin', [{ status: 429, headers: { 'retry-after': '1' } }, 201]);
    const sent = await send({ title: 'Retry me', audience: { targetingKeys: [DAVE, ERIN] } });
    const s = await settled(sent.id, 'retries');
    assert.deepEqual([s.targeted, s.delivered, s.failed, s.retried], [2, 2, 0, 3]);
    cleanRequests(sent.id);
    assert.deepEqual(push.for(sent.id).filter((r) => r.name === 'dave').map((r) => r.status), [500, 500, 201]);
    assert.deepEqual(push.for(sent.id).filter((r) => r.name === 'erin').map((r) => r.status), [429, 201]);
  });

  test('410 removes the subscription', async () => {
    await subscribe(FRANK, 'frank');
    push.script('frank', [410]);
    const first = await send({ title: 'Gone?', audience: { targetingKeys: [FRANK] } });
    const s = await settled(first.id, '410');
    assert.deepEqual([s.targeted, s.gone, s.delivered], [1, 1, 0]);
    const second = await send({ title: 'Anyone?', audience: { targetingKeys: [FRANK] } });
    assert.equal(second.channels.push.queued, 0, 'the subscription was removed');
    assert.equal((await status(second.id)).targeted, 0);
  });

  test('retries exhausted → dead-letter queue → failed; a manual retry delivers', async () => {
    await subscribe(GRACE, 'grace');
    push.script('grace', [503, 503, 503]);
    const sent = await send({ title: 'Stubborn', audience: { targetingKeys: [GRACE] } });
    const s = await settled(sent.id, 'dead letter');
    assert.deepEqual([s.delivered, s.failed, s.retried], [0, 1, 2]);
    const res = await fetch(`${stack.edgeUrl}/__edge/notifications/${sent.id}/retry`, { method: 'POST', headers: admin });
    assert.equal(res.status, 202);
    assert.equal((await res.json()).requeued, 1);
    const after = await settled(sent.id, 'manual retry');
    assert.deepEqual([after.delivered, after.failed], [1, 0]);
    assert.equal(push.for(sent.id, 201).length, 1);
  });

  test('the same idempotency key never sends twice', async () => {
    const body = { title: 'Once', audience: { targetingKeys: [ALICE] }, idempotencyKey: 'release-2026-12-02' };
    const first = await send(body);
    assert.equal(first.duplicate, false);
    await settled(first.id, 'first send');
    const again = await send(body);
    assert.equal(again.id, first.id);
    assert.equal(again.duplicate, true);
    assert.equal(again.channels.push.queued, 0);
    // A later notification to the same visitor arrives; the repeated one never did.
    const sentinel = await send({ title: 'Sentinel', audience: { targetingKeys: [ALICE] } });
    await settled(sentinel.id, 'sentinel');
    assert.equal(push.for(first.id).length, 1);
    const s = await status(first.id);
    assert.deepEqual([s.targeted, s.delivered], [1, 1]);
  });

  test('a send naming a channel this deployment has no settings for: 409 with its path, nothing stored', async () => {
    // This stack configures VAPID but no e-mail API.
    const body = { title: 'Nowhere', body: 'b', channels: ['push', 'email'], audience: { targetingKeys: [ALICE] }, idempotencyKey: 'no-email-here' };
    const res = await fetch(`${stack.edgeUrl}/__edge/notifications`, { method: 'POST', headers: admin, body: JSON.stringify(body) });
    const json = await res.json();
    assert.equal(res.status, 409, JSON.stringify(json));
    assert.equal(json.errorCode, 'CONFLICT');
    assert.match(json.errorDetails, /^channels\[1\]: the email channel is not configured/);
    // Nothing was stored under the idempotency key: the same key with push alone is a first send.
    const first = await send({ ...body, channels: ['push'] });
    assert.equal(first.duplicate, false);
    await settled(first.id, 'push-only send');
  });

  test('the kill switch on notifications.push: nothing is sent', async () => {
    const off = await fetch(`${stack.edgeUrl}/__edge/features/disable`, {
      method: 'POST', headers: admin, body: JSON.stringify({ flag: 'notifications.push' }),
    });
    assert.equal(off.status, 200, await off.text());
    const sent = await send({ title: 'Muted', audience: { flag: 'push-audience', variant: 'yes' } });
    assert.equal(sent.channels.push.state, 'disabled');
    assert.equal(sent.channels.push.queued, 0);
    const s = await status(sent.id);
    assert.deepEqual([s.targeted, s.enabled], [0, false]);
    const retry = await fetch(`${stack.edgeUrl}/__edge/notifications/${sent.id}/retry`, { method: 'POST', headers: admin });
    assert.equal(retry.status, 409);
    const on = await fetch(`${stack.edgeUrl}/__edge/features/enable`, {
      method: 'POST', headers: admin, body: JSON.stringify({ flag: 'notifications.push' }),
    });
    assert.equal(on.status, 200);
    const sentinel = await send({ title: 'Back', audience: { targetingKeys: [BOB] } });
    await settled(sentinel.id, 'after the switch');
    assert.equal(push.for(sent.id).length, 0);
    assert.equal(push.for(sentinel.id, 201).length, 1);
  });

  test('a visitor unsubscribes (only their own subscription)', async () => {
    const unsubscribe = (who) => fetch(`${stack.edgeUrl}/__edge/push/subscriptions`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json', cookie: `ef_uid=${who}` },
      body: JSON.stringify({ endpoint: push.subscribe('carol').endpoint }),
    });
    const foreign = await unsubscribe(DAVE);
    assert.equal(foreign.status, 200);
    assert.equal((await foreign.json()).removed, false);
    const res = await unsubscribe(CAROL);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).removed, true);
    const sent = await send({ title: 'Bye', audience: { targetingKeys: [CAROL] } });
    assert.equal(sent.channels.push.queued, 0);
  });
});
