// In-app inbox and e-mail end to end (issue 16): workerd through wrangler dev with its local
// Queues and Durable Objects, and an e-mail API on loopback (./email-service.mjs) that
// records every request and answers what the test scripts. Every wait polls the status
// endpoint or the e-mail service's log; nothing asserts timings.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ADMIN_TOKEN, DEMO_FLAGS, startStack, waitFor } from './harness.mjs';
import { startEmailService } from './email-service.mjs';

const visitor = (n) => n.toString(16).padStart(32, '0');
const ALICE = visitor(0xa11ce);
const BOB = visitor(0xb0b);
const CAROL = visitor(0xca201);
const DAVE = visitor(0xda7e);
const ERIN = visitor(0xe214);
const FRANK = visitor(0xf2a4c);
const mail = (who) => `${who.slice(-6)}@mail.example.test`;

// A provider's body shape (SendGrid-like), to check the template is what is sent.
const TEMPLATE = JSON.stringify({
  personalizations: [{ to: [{ email: '{{to}}' }] }],
  from: { email: '{{from}}' },
  subject: '{{subject}}',
  content: [{ type: 'text/plain', value: '{{text}}' }],
});

let stack;
let email;

function flagFile() {
  const flags = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
  assert.equal(flags.flags['notifications.inapp']?.defaultVariant, 'on', 'the demo set has the in-app switch');
  assert.equal(flags.flags['notifications.email']?.defaultVariant, 'on', 'the demo set has the e-mail switch');
  flags.flags['news-audience'] = {
    state: 'ENABLED', variants: { yes: true, no: false }, defaultVariant: 'no',
    targeting: { if: [{ in: [{ var: 'targetingKey' }, [ALICE, BOB]] }, 'yes', 'no'] },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'ef-inbox-')), 'flags.json');
  writeFileSync(file, JSON.stringify(flags));
  return file;
}

before(async () => {
  email = await startEmailService({ to: (b) => b.personalizations?.[0]?.to?.[0]?.email });
  stack = await startStack({
    seed: { flags: { path: flagFile() } },
    vars: {
      EMAIL_API_URL: email.url,
      EMAIL_API_HOSTS: '127.0.0.1',
      EMAIL_FROM: 'Shop <shop@example.test>',
      EMAIL_API_AUTH: 'Bearer e2e-mail-key',
      EMAIL_BODY_TEMPLATE: TEMPLATE,
      EMAIL_LINK_BASE: 'https://shop.example.test',
      PUSH_SHARDS: '4',
      PUSH_RETRY_BASE_SECONDS: '0',
      PUSH_MAX_ATTEMPTS: '3',
      EMAIL_API_TIMEOUT_SECONDS: '1',
    },
  });
});
after(async () => {
  await stack?.stop();
  await email?.close();
});

const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
const as = (who) => ({ cookie: `ef_uid=${who}` });

async function register(who, address = mail(who)) {
  const res = await fetch(`${stack.edgeUrl}/__edge/notifications/contacts`, {
    method: 'PUT', headers: admin, body: JSON.stringify({ targetingKey: who, email: address }),
  });
  assert.equal(res.status, 204, await res.text());
}

async function send(body) {
  const res = await fetch(`${stack.edgeUrl}/__edge/notifications`, {
    method: 'POST', headers: admin, body: JSON.stringify({ channels: ['inapp', 'email'], body: 'b', ...body }),
  });
  const json = await res.json();
  assert.equal(res.status, 202, JSON.stringify(json));
  return json;
}

async function status(id) {
  const res = await fetch(`${stack.edgeUrl}/__edge/notifications/${id}`, { headers: admin });
  assert.equal(res.status, 200);
  return (await res.json()).channels;
}

/** Polls until no e-mail of `id` is queued any more; returns the final e-mail counts. */
async function settled(id, what) {
  return waitFor(async () => {
    const s = (await status(id)).email;
    return s.queued === 0 ? s : null;
  }, { what: `notification ${id} to settle (${what})`, timeoutMs: 60000, intervalMs: 200 });
}

async function inbox(who) {
  const res = await fetch(`${stack.edgeUrl}/__edge/inbox`, { headers: as(who) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  assert.equal(res.headers.get('cache-control'), 'private, no-cache');
  return res.json();
}

const markRead = (who, id) => fetch(`${stack.edgeUrl}/__edge/inbox/${id}/read`, { method: 'POST', headers: as(who) });

describe('in-app inbox and e-mail through workerd', () => {
  test('the e-mail service records the status it answered (404 off its path, the script untouched)', async () => {
    const who = 'probe@mail.example.test';
    email.script(who, [500]);
    const wrong = await fetch(`${email.url}/elsewhere`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ personalizations: [{ to: [{ email: who }] }] }),
    });
    assert.equal(wrong.status, 404);
    assert.equal(email.requests.at(-1).status, 404);
    const right = await fetch(email.url, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ personalizations: [{ to: [{ email: who }] }] }),
    });
    assert.equal(right.status, 500, 'the scripted answer is still there');
    assert.equal(email.requests.at(-1).status, 500);
    email.requests.length = 0;
  });

  test('contacts are registered by the app (admin token), checked, never from the send request', async () => {
    const anon = await fetch(`${stack.edgeUrl}/__edge/notifications/contacts`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ targetingKey: ALICE, email: mail(ALICE) }),
    });
    assert.equal(anon.status, 401);
    for (const bad of [
      { targetingKey: ALICE, email: 'not-an-address' },
      { targetingKey: ALICE, email: 'a@b.example\r\nBcc: x@y.example' },
      { targetingKey: '', email: 'a@b.example' },
      { targetingKey: ALICE },
      { targetingKey: ALICE, email: 'a@b.example', extra: 1 },
    ]) {
      const res = await fetch(`${stack.edgeUrl}/__edge/notifications/contacts`, { method: 'PUT', headers: admin, body: JSON.stringify(bad) });
      assert.equal(res.status, 400, JSON.stringify(bad));
    }
    for (const who of [ALICE, BOB, CAROL, DAVE, ERIN]) await register(who);
    // A send request naming recipients' addresses is refused (unknown field).
    const res = await fetch(`${stack.edgeUrl}/__edge/notifications`, {
      method: 'POST', headers: admin,
      body: JSON.stringify({ title: 't', body: '', channels: ['email'], audience: { targetingKeys: [ALICE] }, to: 'x@evil.example' }),
    });
    assert.equal(res.status, 400);
    // The visitor's own registration needs a verified JWT (the stack uses cookies).
    const own = await fetch(`${stack.edgeUrl}/__edge/inbox/email`, { method: 'POST', headers: as(CAROL) });
    assert.equal(own.status, 403);
  });

  let news;
  test('a flag audience: exactly the targeted visitors see the item and get one e-mail each', async () => {
    news = await send({
      title: 'Your order shipped', body: 'Order 42 is on its way.', url: '/orders/42', tag: 'order-42',
      audience: { flag: 'news-audience', variant: 'yes' },
    });
    assert.equal(news.channels.inapp.state, 'on');
    assert.equal(news.channels.email.state, 'on');
    assert.equal(news.channels.email.queued, 2);
    const s = await settled(news.id, 'flag audience');
    assert.deepEqual([s.targeted, s.delivered, s.failed], [2, 2, 0]);
    const sent = email.for(news.id);
    assert.deepEqual(sent.map((r) => r.to).sort(), [mail(ALICE), mail(BOB)].sort());
    const r = sent[0];
    assert.equal(r.headers.authorization, 'Bearer e2e-mail-key');
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.deepEqual(r.body.from, { email: 'Shop <shop@example.test>' });
    assert.equal(r.body.subject, 'Your order shipped');
    assert.equal(r.body.content[0].value, 'Order 42 is on its way.\n\nhttps://shop.example.test/orders/42');

    const a = await inbox(ALICE);
    assert.equal(a.unread, 1);
    assert.deepEqual(a.items, [{
      id: news.id, title: 'Your order shipped', body: 'Order 42 is on its way.', url: '/orders/42',
      tag: 'order-42', createdAt: a.items[0].createdAt, read: false,
    }]);
    assert.ok(Math.abs(a.items[0].createdAt - Date.now()) < 10 * 60 * 1000, 'createdAt is unix milliseconds');
    assert.equal((await inbox(BOB)).items.length, 1);
    assert.deepEqual(await inbox(CAROL), { items: [], unread: 0 }, 'outside the audience');
    assert.deepEqual(email.requests.filter((q) => q.to === mail(CAROL)), []);
    const inapp = (await status(news.id)).inapp;
    assert.deepEqual([inapp.delivered, inapp.read, inapp.state, inapp.enabled], [2, 0, 'on', true]);
  });

  test('mark read: 204 for the visitor’s own item, 404 for anything else', async () => {
    const res = await markRead(ALICE, news.id);
    assert.equal(res.status, 204);
    assert.equal((await markRead(ALICE, news.id)).status, 204, 'idempotent');
    const a = await inbox(ALICE);
    assert.deepEqual([a.unread, a.items[0].read], [0, true]);
    assert.equal((await inbox(BOB)).items[0].read, false, 'read marks are per visitor');
    const outsider = await markRead(CAROL, news.id);
    assert.equal(outsider.status, 404);
    const unknown = await markRead(ALICE, `n${'0'.repeat(24)}`);
    assert.equal(unknown.status, 404);
    assert.equal(typeof (await unknown.json()).errorCode, 'string', 'the edge’s JSON error body');
    for (const bad of ['x', '..%2F..%2Fetc', `${news.id}x`, 'n'.repeat(5000)]) {
      const r = await markRead(ALICE, bad);
      assert.equal(r.status, 404, bad.slice(0, 40));
    }
    const wrongMethod = await fetch(`${stack.edgeUrl}/__edge/inbox/${news.id}/read`, { headers: as(ALICE) });
    assert.equal(wrongMethod.status, 405);
    const inapp = (await status(news.id)).inapp;
    assert.deepEqual([inapp.delivered, inapp.read], [2, 1]);
  });

  test('500 then 202: one e-mail, one retry', async () => {
    email.script(mail(DAVE), [500, 202]);
    const sent = await send({ title: 'Flaky provider', channels: ['email'], audience: { targetingKeys: [DAVE] } });
    const s = await settled(sent.id, '500 then 202');
    assert.deepEqual([s.delivered, s.failed, s.retried], [1, 0, 1]);
    assert.deepEqual(email.for(sent.id).map((r) => r.status), [500, 202]);
    const keys = new Set(email.for(sent.id).map((r) => r.headers['idempotency-key']));
    assert.equal(keys.size, 1, 'the retry repeats the Idempotency-Key');
  });

  test('an e-mail API that never answers: the call is aborted (inside the lease) and retried', async () => {
    await register(FRANK);
    email.script(mail(FRANK), ['hang', 202]);
    const sent = await send({ title: 'Slow provider', channels: ['email'], audience: { targetingKeys: [FRANK] } });
    const s = await settled(sent.id, 'a hung call, then 202');
    assert.deepEqual([s.delivered, s.failed, s.retried], [1, 0, 1]);
    assert.deepEqual(email.for(sent.id).map((r) => r.status), ['hang', 202]);
  });

  test('retries exhausted → dead-letter queue → failed; a manual retry sends it', async () => {
    email.script(mail(ERIN), [503, 503, { status: 429, headers: { 'retry-after': '1' } }]);
    const sent = await send({ title: 'Stubborn', channels: ['email'], audience: { targetingKeys: [ERIN] } });
    const s = await settled(sent.id, 'dead letter');
    assert.deepEqual([s.delivered, s.failed, s.retried], [0, 1, 2]);
    const res = await fetch(`${stack.edgeUrl}/__edge/notifications/${sent.id}/retry`, { method: 'POST', headers: admin });
    assert.equal(res.status, 202);
    assert.equal((await res.json()).channels.email, 1);
    const again = await settled(sent.id, 'manual retry');
    assert.deepEqual([again.delivered, again.failed], [1, 0]);
    assert.equal(email.for(sent.id, 202).length, 1);
  });

  test('the same idempotency key never sends twice', async () => {
    const body = { title: 'Once', audience: { targetingKeys: [BOB] }, idempotencyKey: 'inbox-once-2026-12-02' };
    const first = await send(body);
    await settled(first.id, 'first send');
    const again = await send(body);
    assert.deepEqual([again.id, again.duplicate, again.channels.email.queued], [first.id, true, 0]);
    const sentinel = await send({ title: 'Sentinel', channels: ['email'], audience: { targetingKeys: [BOB] } });
    await settled(sentinel.id, 'sentinel');
    assert.equal(email.for(first.id).length, 1);
    assert.equal((await inbox(BOB)).items.filter((i) => i.id === first.id).length, 1);
  });

  test('the kill switch on notifications.email: nothing is sent; on notifications.inapp: inboxes empty', async () => {
    const flag = (action, key) => fetch(`${stack.edgeUrl}/__edge/features/${action}`, {
      method: 'POST', headers: admin, body: JSON.stringify({ flag: key }),
    });
    assert.equal((await flag('disable', 'notifications.email')).status, 200);
    const muted = await send({ title: 'Muted', audience: { flag: 'news-audience', variant: 'yes' } });
    assert.deepEqual([muted.channels.email.state, muted.channels.email.queued], ['disabled', 0]);
    assert.equal(muted.channels.inapp.state, 'on');
    const s = (await status(muted.id)).email;
    assert.deepEqual([s.targeted, s.enabled], [0, false]);
    const retry = await fetch(`${stack.edgeUrl}/__edge/notifications/${muted.id}/retry`, { method: 'POST', headers: admin });
    assert.equal(retry.status, 409);
    assert.equal((await flag('enable', 'notifications.email')).status, 200);
    const sentinel = await send({ title: 'Back', channels: ['email'], audience: { targetingKeys: [ALICE] } });
    await settled(sentinel.id, 'after the switch');
    assert.equal(email.for(muted.id).length, 0);
    assert.equal(email.for(sentinel.id, 202).length, 1);

    assert.ok((await inbox(ALICE)).items.some((i) => i.id === muted.id));
    assert.equal((await flag('disable', 'notifications.inapp')).status, 200);
    assert.deepEqual(await inbox(ALICE), { items: [], unread: 0 });
    assert.equal((await markRead(ALICE, muted.id)).status, 404);
    const hidden = await send({ title: 'Hidden', channels: ['inapp'], audience: { targetingKeys: [ALICE] } });
    assert.equal(hidden.channels.inapp.state, 'disabled');
    assert.equal((await flag('enable', 'notifications.inapp')).status, 200);
    const back = await inbox(ALICE);
    assert.ok(back.items.some((i) => i.id === muted.id));
    assert.ok(!back.items.some((i) => i.id === hidden.id), 'sent while off: never stored');
  });

  test('the demo audience notifications.v2 (30 %): exactly the visitors in its "on" variant see the item', async () => {
    const sent = await send({ title: 'Notifications v2', channels: ['inapp'], audience: { flag: 'notifications.v2', variant: 'on' } });
    assert.equal(sent.channels.inapp.state, 'on');
    const seen = [];
    const on = [];
    for (let i = 0; i < 20; i += 1) {
      const who = visitor(0x3000 + i);
      const ofrep = await fetch(`${stack.edgeUrl}/ofrep/v1/evaluate/flags/notifications.v2`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ context: { targetingKey: who } }),
      });
      if ((await ofrep.json()).variant === 'on') on.push(who);
      if ((await inbox(who)).items.some((it) => it.id === sent.id)) seen.push(who);
    }
    assert.deepEqual(seen, on);
    assert.ok(on.length > 0 && on.length < 20, `a split, not all or none: ${on.length} of 20`);
  });

  test('hostile input is refused with 4xx', async () => {
    const post = (body, headers = admin) => fetch(`${stack.edgeUrl}/__edge/notifications`, { method: 'POST', headers, body });
    const huge = await post(JSON.stringify({ title: 't', body: 'x'.repeat(64 * 1024), channels: ['inapp'], audience: { targetingKeys: [ALICE] } }));
    assert.equal(huge.status, 413);
    for (const bad of [
      { title: 't', body: 'x'.repeat(2001), channels: ['inapp'], audience: { targetingKeys: [ALICE] } },
      { title: 't', body: '', channels: ['inapp', 'inapp'], audience: { targetingKeys: [ALICE] } },
      { title: 't', body: '', channels: ['sms'], audience: { targetingKeys: [ALICE] } },
      { title: '', body: '', channels: ['inapp'], audience: { targetingKeys: [ALICE] } },
      { title: 't', body: '', channels: ['inapp'], audience: { targetingKeys: [] } },
    ]) {
      const res = await post(JSON.stringify(bad));
      assert.equal(res.status, 400, JSON.stringify(bad).slice(0, 80));
    }
    assert.equal((await post('{not json')).status, 400);
    const hugeContact = await fetch(`${stack.edgeUrl}/__edge/notifications/contacts`, {
      method: 'PUT', headers: admin, body: JSON.stringify({ targetingKey: 'k'.repeat(100000), email: 'a@b.example' }),
    });
    assert.equal(hugeContact.status, 413);
    const inboxPost = await fetch(`${stack.edgeUrl}/__edge/inbox`, { method: 'POST', headers: as(ALICE), body: 'x'.repeat(1000) });
    assert.equal(inboxPost.status, 405);
    const deep = await fetch(`${stack.edgeUrl}/__edge/inbox/a/b/c/d`, { headers: as(ALICE) });
    assert.equal(deep.status, 404);
    const forged = await fetch(`${stack.edgeUrl}/__edge/inbox`, { headers: { cookie: 'ef_uid=../../etc' } });
    assert.equal(forged.status, 200, 'a malformed id is a new visitor');
    assert.deepEqual((await forged.json()).items, []);
  });

  test('a cookieless inbox read gets no id, no items, and writes and counts nothing', async () => {
    // An audience every visitor is in: an id minted for a cookieless read would be in it.
    const all = await send({ title: 'For everyone', channels: ['inapp'], audience: { flag: 'notifications.inapp', variant: 'on' } });
    const answers = [];
    for (let i = 0; i < 5; i += 1) {
      const res = await fetch(`${stack.edgeUrl}/__edge/inbox`);
      assert.equal(res.status, 200);
      answers.push({ cookie: res.headers.get('set-cookie'), body: await res.json() });
    }
    assert.equal((await status(all.id)).inapp.delivered, 0, 'no delivery counted for cookieless reads');
    for (const a of answers) {
      assert.equal(a.cookie, null, 'no id issued on an inbox read');
      assert.deepEqual(a.body, { items: [], unread: 0 });
    }
    assert.ok((await inbox(CAROL)).items.some((i) => i.id === all.id), 'a visitor with an id sees it');
    assert.equal((await status(all.id)).inapp.delivered, 1);
  });
});

// The visitor's own address from a verified JWT `email` claim (IDENTITY_SOURCE=jwt, HS256).
describe('an address from a verified JWT', () => {
  const SECRET = 'e2e-jwt-secret-0123456789abcdef';
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const token = (claims, secret = SECRET) => {
    const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 300, ...claims })}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const bearer = (t) => ({ authorization: `Bearer ${t}` });
  let jwtStack;

  before(async () => {
    jwtStack = await startStack({
      seed: { flags: { path: DEMO_FLAGS } },
      vars: {
        IDENTITY_SOURCE: 'jwt',
        JWT_SECRET: SECRET,
        EMAIL_API_URL: email.url,
        EMAIL_API_HOSTS: '127.0.0.1',
        EMAIL_FROM: 'shop@example.test',
        EMAIL_API_AUTH: 'Bearer e2e-mail-key',
        EMAIL_BODY_TEMPLATE: TEMPLATE,
        PUSH_SHARDS: '2',
        PUSH_RETRY_BASE_SECONDS: '0',
      },
    });
  });
  after(async () => {
    await jwtStack?.stop();
  });

  test('the verified claim is registered; a forged or unverified one is not', async () => {
    const url = `${jwtStack.edgeUrl}/__edge/inbox/email`;
    const forged = await fetch(url, { method: 'POST', headers: bearer(token({ sub: 'jwt-1', email: 'victim@mail.example.test' }, 'wrong-secret-0123456789abcdef')) });
    assert.equal(forged.status, 403);
    const unverified = await fetch(url, { method: 'POST', headers: bearer(token({ sub: 'jwt-1', email: 'x@mail.example.test', email_verified: false })) });
    assert.equal(unverified.status, 400);
    // No `email_verified` at all: many providers omit it for an address nobody confirmed.
    const unsaid = await fetch(url, { method: 'POST', headers: bearer(token({ sub: 'jwt-1', email: 'y@mail.example.test' })) });
    assert.equal(unsaid.status, 400);
    const ok = await fetch(url, { method: 'POST', headers: bearer(token({ sub: 'jwt-1', email: 'jwt-1@mail.example.test', email_verified: true })) });
    assert.equal(ok.status, 204, await ok.text());

    const post = async (body) => {
      const res = await fetch(`${jwtStack.edgeUrl}/__edge/notifications`, {
        method: 'POST', headers: admin, body: JSON.stringify({ body: '', channels: ['inapp', 'email'], audience: { targetingKeys: ['jwt-1'] }, ...body }),
      });
      assert.equal(res.status, 202);
      return res.json();
    };
    const sent = await post({ title: 'Signed in' });
    assert.equal(sent.channels.email.queued, 1);
    await waitFor(() => email.for(sent.id, 202).length === 1 || null, { what: 'the e-mail to the JWT address', timeoutMs: 60000, intervalMs: 200 });
    assert.deepEqual(email.for(sent.id).map((r) => r.to), ['jwt-1@mail.example.test']);
    const box = await fetch(`${jwtStack.edgeUrl}/__edge/inbox`, { headers: bearer(token({ sub: 'jwt-1' })) });
    assert.deepEqual((await box.json()).items.map((i) => i.id), [sent.id]);

    const removed = await fetch(url, { method: 'DELETE', headers: bearer(token({ sub: 'jwt-1' })) });
    assert.equal(removed.status, 204);
    assert.equal((await post({ title: 'After removal' })).channels.email.queued, 0);
  });
});
