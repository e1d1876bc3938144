// The success-metrics dashboard through the real runtime (issue 17): sign-in with the admin
// token into a signed, HttpOnly, SameSite=Strict session; Origin and CSRF checks on every
// state-changing form; the kill switch from the page lands in the audit log; no script.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startStack } from './harness.mjs';

describe('dashboard', () => {
  let stack;
  let base;
  before(async () => {
    stack = await startStack();
    base = `${stack.edgeUrl}/__edge/dashboard`;
  });
  after(async () => stack?.stop());

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
    assert.match(page, /aria-label="requests and errors per minute"/);
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
});
