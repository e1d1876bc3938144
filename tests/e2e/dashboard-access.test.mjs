// The dashboard behind Cloudflare Access, through the real runtime (issue 17): with
// ACCESS_TEAM_DOMAIN and ACCESS_AUD set, a request carrying Access's JWT (the
// Cf-Access-Jwt-Assertion header, or the CF_Authorization cookie) signs in as the token's
// e-mail. The team's keys are served on loopback at <team>/cdn-cgi/access/certs (an RSA key
// made here); the worker verifies through WebCrypto with the same verifier as JWT identity.
// A wrong audience, an expired token, an unknown key or a foreign issuer is refused and
// audited as a failed sign-in.
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';

import { startStack } from './harness.mjs';

const AUD = 'e2e-access-aud-4714f1c8';
const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const team = generateKeyPairSync('rsa', { modulusLength: 2048 });
const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });

function rs256(payload, { key = team.privateKey, kid = 'access-1' } = {}) {
  const input = `${b64({ alg: 'RS256', kid, typ: 'JWT' })}.${b64(payload)}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

describe('dashboard sign-in through Cloudflare Access', () => {
  let stack;
  let certs;
  let teamDomain;
  let certsHits = 0;
  before(async () => {
    certs = createServer((req, res) => {
      if (req.url !== '/cdn-cgi/access/certs') {
        res.writeHead(404).end();
        return;
      }
      certsHits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        keys: [{ ...team.publicKey.export({ format: 'jwk' }), kid: 'access-1', alg: 'RS256', use: 'sig' }],
      }));
    });
    certs.listen(0, '127.0.0.1');
    await once(certs, 'listening');
    teamDomain = `http://127.0.0.1:${certs.address().port}`;
    stack = await startStack({ vars: { ACCESS_TEAM_DOMAIN: teamDomain, ACCESS_AUD: AUD } });
  });
  after(async () => {
    await stack?.stop();
    certs?.close();
  });

  const claims = (extra = {}) => ({
    sub: '7335d417-61da-459d-899c-0a01c76a2f94',
    email: 'alice@example.com',
    iss: teamDomain,
    aud: [AUD],
    iat: now(),
    exp: now() + 300,
    ...extra,
  });
  const dashboard = (headers) => fetch(`${stack.edgeUrl}/__edge/dashboard`, { headers, redirect: 'manual' });

  test('a valid Access JWT signs in as its e-mail, from the header or from the cookie', async () => {
    const res = await dashboard({ 'cf-access-jwt-assertion': rs256(claims()) });
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /Signed in as <b>alice@example\.com<\/b>/);
    const session = res.headers.get('set-cookie');
    assert.match(session, /^ef_admin=[^;]+; Path=\/__edge\/dashboard; Max-Age=3600; HttpOnly; SameSite=Strict$/);
    assert.ok(certsHits >= 1, 'the keys came from <team>/cdn-cgi/access/certs');

    // The session then works on its own, and actions are audited under the e-mail.
    const cookie = session.split(';')[0];
    const page = await (await dashboard({ cookie })).text();
    const csrf = page.match(/name="csrf" value="([0-9a-f]+)"/)[1];
    const off = await fetch(`${stack.edgeUrl}/__edge/dashboard/actions/disable`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, origin: stack.edgeUrl, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ flag: 'banner', csrf }).toString(),
    });
    assert.equal(off.status, 303);
    const admin = { authorization: `Bearer ${stack.adminToken}` };
    const [latest] = (await (await fetch(`${stack.edgeUrl}/__edge/audit?limit=1`, { headers: admin })).json()).records;
    assert.deepEqual([latest.actor, latest.action, latest.flag], ['alice@example.com', 'disable', 'banner']);

    const viaCookie = await dashboard({ cookie: `CF_Authorization=${rs256(claims({ email: 'bob@example.com' }))}` });
    assert.match(await viaCookie.text(), /Signed in as <b>bob@example\.com<\/b>/);
  });

  test('a wrong audience, an expired token, an unknown key, a foreign issuer or no e-mail is refused and audited', async () => {
    const bad = {
      'wrong audience': rs256(claims({ aud: ['another-application'] })),
      expired: rs256(claims({ exp: now() - 3600 })),
      'not yet valid': rs256(claims({ nbf: now() + 3600 })),
      'unknown key': rs256(claims(), { key: stranger.privateKey, kid: 'access-2' }),
      'known kid, other key': rs256(claims(), { key: stranger.privateKey }),
      'foreign issuer': rs256(claims({ iss: 'https://evil.cloudflareaccess.com' })),
      'service token without e-mail': rs256(claims({ email: undefined, common_name: 'svc' })),
      garbage: 'not-a-jwt',
    };
    for (const [what, token] of Object.entries(bad)) {
      const res = await dashboard({ 'cf-access-jwt-assertion': token });
      assert.equal(res.status, 401, what);
      assert.equal(res.headers.get('set-cookie'), null, `${what}: no session`);
      const html = await res.text();
      assert.match(html, /Cloudflare Access token refused/, what);
      assert.ok(!html.includes('Signed in as'), what);
    }
    // Audited as failed sign-ins (seen by a signed-in admin).
    const signedIn = await dashboard({ 'cf-access-jwt-assertion': rs256(claims()) });
    const page = await signedIn.text();
    for (const reason of ['wrong audience', 'expired', 'no key for this token', 'wrong issuer', 'bad signature']) {
      assert.match(page, new RegExp(`<td>sign-in failed</td><td></td><td></td><td>Cloudflare Access token refused: ${reason}</td>`), reason);
    }
  });

  test('ACCESS_ONLY=true turns the token sign-in off: no form, the right admin token refused, Access still signs in', async () => {
    const only = await startStack({ vars: { ACCESS_TEAM_DOMAIN: teamDomain, ACCESS_AUD: AUD, ACCESS_ONLY: 'true' } });
    try {
      const url = `${only.edgeUrl}/__edge/dashboard`;
      const page = await fetch(url);
      assert.equal(page.status, 401);
      const html = await page.text();
      assert.ok(!html.includes('name="token"'), 'no token form');
      assert.match(html, /ACCESS_ONLY/);
      const login = await fetch(`${url}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { origin: only.edgeUrl, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: only.adminToken }).toString(),
      });
      assert.equal(login.status, 403);
      assert.equal(login.headers.get('set-cookie'), null, 'no session from the token');
      const refused = await fetch(url, { headers: { 'cf-access-jwt-assertion': rs256(claims({ exp: now() - 3600 })) } });
      assert.equal(refused.status, 401);
      assert.ok(!(await refused.text()).includes('name="token"'), 'no token form after a refused JWT either');
      const viaAccess = await fetch(url, { headers: { 'cf-access-jwt-assertion': rs256(claims()) } });
      assert.equal(viaAccess.status, 200);
      assert.match(await viaAccess.text(), /Signed in as <b>alice@example\.com<\/b>/);
    } finally {
      await only.stop();
    }
  });

  test('without Access configured, the JWT is ignored and the token sign-in is shown', async () => {
    const plain = await startStack();
    try {
      const res = await fetch(`${plain.edgeUrl}/__edge/dashboard`, { headers: { 'cf-access-jwt-assertion': rs256(claims()) } });
      assert.equal(res.status, 200);
      assert.match(await res.text(), /name="token" type="password"/);
    } finally {
      await plain.stop();
    }
  });
});
