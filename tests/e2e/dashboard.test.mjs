// The success-metrics dashboard through the real runtime (issue 17): sign-in with the admin
// token into a signed, HttpOnly, SameSite=Strict session; Origin and CSRF checks on every
// state-changing form; the kill switch from the page lands in the audit log; no script.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startStack, waitFor } from './harness.mjs';
import { makeVapidKeys, startPushService } from './push-service.mjs';

describe('dashboard', () => {
  let stack;
  let base;
  let push;
  const vapid = makeVapidKeys();
  before(async () => {
    // A loopback push service, so the page has notification deliveries to show.
    push = await startPushService({ vapidPublicKey: vapid.publicKey });
    stack = await startStack({
      vars: {
        VAPID_PUBLIC_KEY: vapid.publicKey,
        VAPID_PRIVATE_KEY: vapid.privateKey,
        VAPID_SUBJECT: 'mailto:ops@example.test',
        PUSH_ENDPOINT_HOSTS: '127.0.0.1',
        PUSH_RETRY_BASE_SECONDS: '0',
        PUSH_MAX_ATTEMPTS: '2',
      },
    });
    base = `${stack.edgeUrl}/__edge/dashboard`;
  });
  after(async () => {
    await stack?.stop();
    await push?.close();
  });

  const post = (path, fields, headers = {}) => fetch(`${base}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: stack.edgeUrl, ...headers },
    body: new URLSearchParams(fields).toString(),
  });
  const signIn = async () => {
    const res = await post('/login', { token: stack.adminToken });
    assert.equal(res.status, 303);
    return res.headers.get('set-cookie').split(';')[0];
  };

  test('without a session it shows the sign-in form, under a CSP that allows no script', async () => {
    const res = await fetch(base);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy');
    assert.match(csp, /^default-src 'none'; style-src 'sha256-/);
    assert.ok(!csp.includes('unsafe'), csp);
    const html = await res.text();
    assert.match(html, /name="token" type="password"/);
    assert.ok(!html.includes('<script'));
  });

  test('the timeline keeps per-minute and per-hour aggregates, as JSON and on the page', async () => {
    for (let i = 0; i < 30; i++) await (await fetch(`${stack.edgeUrl}/api/version`)).arrayBuffer();
    const admin = { authorization: `Bearer ${stack.adminToken}` };
    const get = (q) => fetch(`${stack.edgeUrl}/__edge/metrics/timeline${q}`, { headers: admin });
    for (const q of ['', '?resolution=hour&hours=24', '?resolution=minute&flag=backend']) {
      const res = await get(q);
      assert.equal(res.status, 200, q);
      const { points } = await res.json();
      const requests = points.reduce((n, p) => n + p.requests, 0);
      assert.ok(requests >= 30, `${q}: ${JSON.stringify(points)}`);
      for (const p of points) assert.ok(p.t % 60000 === 0 && 'p99Ms' in p && 'errorRate' in p && 'hitRatio' in p);
    }
    assert.equal((await get('?resolution=second')).status, 400);
    assert.equal((await get('?hours=0')).status, 400);
    assert.equal((await fetch(`${stack.edgeUrl}/__edge/metrics/timeline`)).status, 401, 'admin only');
    const cookie = await signIn();
    const page = await (await fetch(base, { headers: { cookie } })).text();
    assert.match(page, /<td>last hour<\/td><td>(\d+)<\/td>/);
    assert.ok(Number(page.match(/<td>last hour<\/td><td>(\d+)<\/td>/)[1]) >= 30);
    // Per flag variant over the same windows (issue 17's review: they were all-time totals,
    // so a rolled-back canary read "fail" forever).
    const variantRows = [...page.matchAll(/<td>backend=(v\d), last (hour|day)<\/td><td>(\d+)<\/td>/g)];
    assert.ok(variantRows.length >= 2, 'backend variant rows for the last hour and day');
    assert.ok(variantRows.filter((m) => m[2] === 'hour').reduce((n, m) => n + Number(m[3]), 0) >= 30);
    assert.ok(!/<td>backend=v\d<\/td>/.test(page), 'no unlabelled all-time variant rows');
    assert.match(page, /aria-label="requests and errors per minute"/);
  });

  test('the per-feature table: state, rollout %, adoption % (exposed units / all units) and errors', async () => {
    // 12 fresh visitors through the proxied route (exposed to `backend`), 4 other units that
    // only evaluate the `new-checkout` experiment over OFREP: 16 units in all.
    for (let i = 0; i < 12; i++) {
      const cookie = `ef_uid=${(0xada0 + i).toString(16).padStart(32, '0')}`;
      await (await fetch(`${stack.edgeUrl}/api/version`, { headers: { cookie } })).arrayBuffer();
    }
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${stack.edgeUrl}/ofrep/v1/evaluate/flags/new-checkout`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ context: { targetingKey: `adopter-${i}` } }),
      });
      assert.equal(res.status, 200);
    }
    const cookie = await signIn();
    const row = (html, flag) => html.match(new RegExp(`<tr><td><code>${flag}</code></td><td>(\\w+)</td><td>([^<]*)</td><td>([^<]*)</td><td>(\\d+)</td><td>(.*?)</td></tr>`));
    let page;
    await waitFor(async () => {
      page = await (await fetch(base, { headers: { cookie } })).text();
      const m = page.match(/all (\d+) distinct units/);
      return m && Number(m[1]) >= 16 && row(page, 'new-checkout')?.[3].includes('(4 units)');
    }, { what: 'the units to reach the metrics store', timeoutMs: 15000, intervalMs: 300 });
    assert.match(page, /both over the last 30 days/, 'the page says which window');
    const all = Number(page.match(/all (\d+) distinct units/)[1]);
    const backend = row(page, 'backend');
    assert.equal(backend[1], 'ENABLED');
    assert.equal(backend[2], '10 % v2', 'rollout: the treatment\'s share of the split');
    const exposed = Number(backend[3].match(/\((\d+) units\)/)[1]);
    assert.ok(exposed >= 12, backend[3]);
    assert.equal(backend[3], `${(exposed / all * 100).toFixed(1)} % (${exposed} units)`);
    assert.ok(Number(backend[4]) >= 12, 'requests the flag routed');
    assert.match(backend[5], /^0 \(0\.00 %\) <span class="pass">/, 'errors');
    const checkout = row(page, 'new-checkout');
    assert.equal(checkout[2], '50 % on');
    assert.equal(checkout[3], `${(4 / all * 100).toFixed(1)} % (4 units)`);
    assert.equal(row(page, 'theme')[2], '— (no split)');
    assert.equal(row(page, 'notifications')[1], 'DISABLED');
  });

  test('sign-in: a wrong token is 401, a cross-origin form 403, the right token a strict session cookie', async () => {
    assert.equal((await post('/login', { token: 'wrong-token-wrong-token' })).status, 401);
    assert.equal((await post('/login', { token: stack.adminToken }, { origin: 'https://evil.example' })).status, 403);
    const res = await post('/login', { token: stack.adminToken });
    assert.equal(res.status, 303);
    assert.match(res.headers.get('set-cookie'), /^ef_admin=[^;]+; Path=\/__edge\/dashboard; Max-Age=3600; HttpOnly; SameSite=Strict$/);
    const forged = await fetch(base, { headers: { cookie: 'ef_admin=61646d696e.9999999999.00' } });
    assert.match(await forged.text(), /name="token"/, 'a forged session shows the sign-in form');
  });

  test('the page shows the plan\'s overview, flags, and the kill switch works from it with CSRF and Origin checks', async () => {
    const cookie = await signIn();
    const page = await (await fetch(base, { headers: { cookie } })).text();
    for (const part of ['id="overview"', 'id="flags"', 'id="rollouts"', 'id="experiments"', 'id="audit"', 'target &lt; 200 ms', '<code>backend</code>']) {
      assert.ok(page.includes(part), `${part} missing`);
    }
    const csrf = page.match(/name="csrf" value="([0-9a-f]+)"/)[1];

    assert.equal((await post('/actions/disable', { flag: 'banner' }, { cookie })).status, 403, 'no CSRF token');
    assert.equal((await post('/actions/disable', { flag: 'banner', csrf }, { cookie, origin: 'https://evil.example' })).status, 403);
    assert.equal((await post('/actions/disable', { flag: 'banner', csrf })).status, 401, 'no session');

    const res = await post('/actions/disable', { flag: 'banner', csrf }, { cookie });
    assert.equal(res.status, 303);
    assert.match(res.headers.get('location'), /^\/__edge\/dashboard\?notice=/);
    const admin = { authorization: `Bearer ${stack.adminToken}` };
    const flags = await (await fetch(`${stack.edgeUrl}/__edge/flags`, { headers: admin })).json();
    assert.equal(flags.flagSet.flags.banner.state, 'DISABLED');
    const [latest] = (await (await fetch(`${stack.edgeUrl}/__edge/audit?limit=1`, { headers: admin })).json()).records;
    assert.deepEqual([latest.actor, latest.action, latest.flag], ['admin', 'disable', 'banner']);
    const after = await (await fetch(base, { headers: { cookie } })).text();
    assert.match(after, /banner: state ENABLED -&gt; DISABLED/, 'the notice says what happened');

    // Editing the set: refused with every error at its path and the text kept, then saved,
    // and the version history shows what changed.
    const current = await (await fetch(`${stack.edgeUrl}/__edge/flags`, { headers: admin })).json();
    const doc = current.flagSet;
    doc.flags['page-size'].state = 'disabled';
    const refused = await post('/actions/replace', { csrf, version: current.version, document: JSON.stringify(doc) }, { cookie });
    assert.equal(refused.status, 400);
    const refusedPage = await refused.text();
    assert.match(refusedPage, /Not saved:.*<code>flags\.page-size\.state<\/code>/s);
    assert.match(refusedPage, /&quot;disabled&quot;/, 'the submitted text is kept');
    doc.flags['page-size'].state = 'ENABLED';
    doc.flags['page-size'].defaultVariant = 'large';
    const stale = await post('/actions/replace', { csrf, version: '0000000000000000', document: JSON.stringify(doc) }, { cookie });
    assert.equal(stale.status, 400);
    assert.match(await stale.text(), /changed meanwhile/);
    const saved = await post('/actions/replace', { csrf, version: current.version, document: JSON.stringify(doc) }, { cookie });
    assert.equal(saved.status, 303);
    const after2 = await (await fetch(base, { headers: { cookie } })).text();
    assert.match(after2, /flags\.page-size\.defaultVariant: &quot;medium&quot; → &quot;large&quot;/);

    const out = await post('/actions/logout', { csrf }, { cookie });
    assert.match(out.headers.get('set-cookie'), /^ef_admin=; .*Max-Age=0/);
  });

  test('notification delivery per channel with its success ratio against the > 99 % target', async () => {
    const admin = { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' };
    const who = ['ok', 'down'].map((name, i) => [name, (0xd00 + i).toString(16).padStart(32, '0')]);
    for (const [name, id] of who) {
      const res = await fetch(`${stack.edgeUrl}/__edge/push/subscriptions`, {
        method: 'POST', headers: { 'content-type': 'application/json', cookie: `ef_uid=${id}` }, body: JSON.stringify(push.subscribe(name)),
      });
      assert.equal(res.status, 201, await res.text());
    }
    push.script('down', [500, 500]);
    const sent = await fetch(`${stack.edgeUrl}/__edge/notifications`, {
      method: 'POST', headers: admin, body: JSON.stringify({ title: 't', body: 'b', channels: ['push'], audience: { targetingKeys: who.map(([, id]) => id) } }),
    });
    assert.equal(sent.status, 202, await sent.clone().text());
    const { id } = await sent.json();
    await waitFor(async () => {
      const r = await (await fetch(`${stack.edgeUrl}/__edge/notifications/${id}`, { headers: admin })).json();
      return r.channels.push.queued === 0;
    }, { what: 'the notification to settle', timeoutMs: 60000, intervalMs: 200 });
    const cookie = await signIn();
    let page;
    await waitFor(async () => {
      page = await (await fetch(base, { headers: { cookie } })).text();
      return /<td>last hour<\/td><td>push<\/td><td>1<\/td><td>1<\/td>/.test(page);
    }, { what: 'the deliveries on the page', timeoutMs: 30000, intervalMs: 300 });
    assert.match(page, /delivery success \(target &gt; 99 %\)/);
    assert.match(page, /<td>last hour<\/td><td>push<\/td><td>1<\/td><td>1<\/td><td>retried 1<\/td><td>50\.00 % <span class="fail">/);
    assert.match(page, /<td>last day<\/td><td>push<\/td><td>1<\/td><td>1<\/td>/);
  });

  test('failed sign-ins are limited per address (429 with Retry-After, the right token too) and audited without the secret', async () => {
    const cookie = await signIn();
    const failures = async () => {
      const page = await (await fetch(base, { headers: { cookie } })).text();
      return { page, count: Number(page.match(/Failed sign-ins: (\d+) recorded/)?.[1] ?? 0) };
    };
    const before = await failures();
    // An address of its own (wrangler dev passes the client's CF-Connecting-IP through), so
    // no other test's failures count and no other test is limited afterwards: up to the
    // limit (10 per 15 minutes) a wrong token is 401, after it every attempt is 429.
    const address = { 'cf-connecting-ip': `198.51.100.${1 + Math.floor(Math.random() * 250)}` };
    const statuses = [];
    for (let i = 0; i < 11; i++) {
      const res = await post('/login', { token: `wrong-secret-${i}-0123456789`, name: i === 0 ? 'admin' : `nobody-${i}` }, address);
      statuses.push(res.status);
    }
    assert.deepEqual(statuses, [...Array(10).fill(401), 429]);
    const limited = await post('/login', { token: stack.adminToken }, address);
    assert.equal(limited.status, 429, 'the right token is refused too while limited');
    const wait = Number(limited.headers.get('retry-after'));
    assert.ok(wait > 0 && wait <= 900, `Retry-After ${wait}`);
    assert.equal(limited.headers.get('set-cookie'), null);
    assert.match(await limited.text(), /Too many failed sign-ins/);

    const after = await failures();
    assert.equal(after.count - before.count, 10, 'every failure before the limit is recorded, the limited ones only counted');
    assert.match(after.page, new RegExp(`<td>anonymous \\(${address['cf-connecting-ip'].replaceAll('.', '\\.')}\\)</td><td>sign-in failed</td>`));
    // Another address is not limited by this one's failures.
    assert.equal((await post('/login', { token: stack.adminToken })).status, 303);
    assert.match(after.page, /wrong admin token \(token name &quot;admin&quot;\)/, 'a known token name is recorded');
    assert.ok(!after.page.includes('nobody-1'), 'an unknown name is not');
    assert.ok(!after.page.includes('wrong-secret-'), 'never the secret');
    assert.match(after.page, /(\d+) more refused by the limit/);
    assert.ok(Number(after.page.match(/(\d+) more refused by the limit/)[1]) >= 1);
  });
});
