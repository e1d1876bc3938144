// JWT identity through the real runtime (issue 12, item 7): with IDENTITY_SOURCE=jwt the
// edge verifies HS256 (JWT_SECRET) and RS256/ES256 (keys from JWT_JWKS_URL, served here on
// loopback) through WebCrypto, with exp/nbf/iss/aud; any token it cannot verify makes the
// visitor anonymous (the edge cookie), never the token's subject.
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';

import { startStack } from './harness.mjs';

const SECRET = 'e2e-jwt-secret-0123456789abcdef';
const ISSUER = 'https://id.example';
const AUDIENCE = 'edgeflags-e2e';

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const claims = (sub, extra = {}) => ({ sub, iss: ISSUER, aud: AUDIENCE, exp: now() + 300, ...extra });

/** A compact JWS signed by `signer(signingInput) → Buffer`. */
function jws(header, payload, signer) {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${signer(Buffer.from(input)).toString('base64url')}`;
}
const hs256 = (payload, secret = SECRET) =>
  jws({ alg: 'HS256', typ: 'JWT' }, payload, (d) => createHmac('sha256', secret).update(d).digest());

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaOther = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rs256 = (payload, key = rsa.privateKey, kid = 'rsa-1') =>
  jws({ alg: 'RS256', kid }, payload, (d) => sign('sha256', d, key));
const es256 = (payload) =>
  jws({ alg: 'ES256', kid: 'ec-1' }, payload, (d) => sign('sha256', d, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }));

describe('JWT identity, verified at the edge', () => {
  let stack;
  let jwks;
  let jwksHits = 0;
  before(async () => {
    jwks = createServer((req, res) => {
      jwksHits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({
        keys: [
          { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
          { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', use: 'sig' },
        ],
      }));
    });
    jwks.listen(0, '127.0.0.1');
    await once(jwks, 'listening');
    stack = await startStack({
      vars: {
        IDENTITY_SOURCE: 'jwt',
        JWT_SECRET: SECRET,
        JWT_ISSUER: ISSUER,
        JWT_AUDIENCE: AUDIENCE,
        JWT_JWKS_URL: `http://127.0.0.1:${jwks.address().port}/jwks.json`,
      },
    });
  });
  after(async () => {
    await stack?.stop();
    jwks?.close();
  });

  /** The targetingKey the edge used for a page request with this bearer token. */
  async function keyFor(token) {
    const res = await fetch(`${stack.edgeUrl}/`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const html = await res.text();
    const m = html.match(/<script id="edgeflags-bootstrap" type="application\/json">(.*?)<\/script>/s);
    assert.ok(m, html.slice(0, 200));
    return { key: JSON.parse(m[1]).targetingKey, cookie: res.headers.get('set-cookie') };
  }
  const anonymous = ({ key, cookie }) => /^[0-9a-f]{32}$/.test(key) && /ef_uid=/.test(cookie ?? '');

  test('verified tokens name the visitor: HS256, RS256 and ES256', async () => {
    assert.equal((await keyFor(hs256(claims('alice')))).key, 'alice');
    assert.equal((await keyFor(rs256(claims('bob')))).key, 'bob');
    assert.equal((await keyFor(es256(claims('carol')))).key, 'carol');
  });

  test('a token the edge cannot verify leaves the visitor anonymous, never its subject', async () => {
    const cases = {
      'alg none': `${b64({ alg: 'none' })}.${b64(claims('alice'))}.`,
      'wrong secret': hs256(claims('alice'), 'another-secret-another-secret'),
      'tampered payload': (() => {
        const [h, , s] = hs256(claims('mallory')).split('.');
        return `${h}.${b64(claims('alice'))}.${s}`;
      })(),
      expired: hs256(claims('alice', { exp: now() - 3600 })),
      'not yet valid': hs256(claims('alice', { nbf: now() + 3600 })),
      'wrong issuer': hs256(claims('alice', { iss: 'https://evil.example' })),
      'wrong audience': hs256(claims('alice', { aud: 'someone-else' })),
      'RS256 by an unknown key': rs256(claims('alice'), rsaOther.privateKey),
      'RS256 with an unknown kid': rs256(claims('alice'), rsa.privateKey, 'rsa-404'),
      // Key confusion: the RSA public key used as an HMAC secret.
      'HS256 keyed with the RSA public key': hs256(claims('alice'), rsa.publicKey.export({ type: 'spki', format: 'pem' })),
      'not a JWT': 'not-a-jwt',
    };
    for (const [what, token] of Object.entries(cases)) {
      const seen = await keyFor(token);
      assert.ok(anonymous(seen), `${what}: ${JSON.stringify(seen)}`);
    }
  });

  test('invented key ids do not make the edge hammer the key server', async () => {
    const before = jwksHits;
    for (let i = 0; i < 20; i++) await keyFor(rs256(claims('x'), rsa.privateKey, `invented-${i}`));
    assert.ok(jwksHits - before <= 1, `${jwksHits - before} key-set fetches for 20 unknown kids`);
  });
});
