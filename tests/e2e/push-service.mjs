// A local Web Push service on 127.0.0.1 playing the browser vendor's part (RFC 8030): it
// accepts POSTs to /push/<name>, checks the VAPID JWT (RFC 8292, ES256) against the public
// key the test gave it, decrypts the aes128gcm body (RFC 8291) with npm `http_ece` — an
// independent implementation — using the subscription's private key and auth secret the
// test generated, and answers what the test scripted for that subscription (default 201).
import { createECDH, createPublicKey, randomBytes, verify } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';

import ece from 'http_ece';

/** A browser-side subscription: P-256 key pair and auth secret, as a browser makes them. */
export function makeSubscriber() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { ecdh, p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
}

/** A VAPID key pair in the format of `edgeflags vapid generate`. */
export function makeVapidKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return {
    publicKey: ecdh.getPublicKey().toString('base64url'),
    // Node drops leading zero bytes of the scalar (one key in 256): pad to 32 bytes.
    privateKey: Buffer.from(ecdh.getPrivateKey('hex').padStart(64, '0'), 'hex').toString('base64url'),
  };
}

function verifyJwt(token, publicKeyB64, expectedAud) {
  const [h, p, s] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const raw = Buffer.from(publicKeyB64, 'base64url');
  const key = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33, 65).toString('base64url') },
    format: 'jwk',
  });
  const signatureOk = verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  const now = Math.floor(Date.now() / 1000);
  const problems = [];
  if (header.alg !== 'ES256') problems.push(`alg ${header.alg}`);
  if (!signatureOk) problems.push('signature');
  if (claims.aud !== expectedAud) problems.push(`aud ${claims.aud} != ${expectedAud}`);
  if (!(claims.exp > now && claims.exp <= now + 24 * 3600)) problems.push(`exp ${claims.exp}`);
  if (!/^(mailto:|https:)/.test(claims.sub ?? '')) problems.push(`sub ${claims.sub}`);
  return { ok: problems.length === 0, problems, claims };
}

export async function startPushService({ vapidPublicKey }) {
  const subscribers = new Map(); // name → subscriber
  const scripts = new Map(); // name → [status | {status, headers}]
  const requests = []; // every request, in arrival order
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const name = decodeURIComponent(req.url.replace(/^\/push\//, ''));
      const body = Buffer.concat(chunks);
      const entry = { name, headers: req.headers, problems: [] };
      const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '');
      if (!m) entry.problems.push(`authorization ${req.headers.authorization}`);
      else {
        if (m[2] !== vapidPublicKey) entry.problems.push('k is not the VAPID public key');
        const jwt = verifyJwt(m[1], vapidPublicKey, `http://127.0.0.1:${server.address().port}`);
        entry.jwt = jwt;
        entry.problems.push(...jwt.problems.map((p) => `jwt ${p}`));
      }
      if (req.headers['content-encoding'] !== 'aes128gcm') entry.problems.push('content-encoding');
      if (!/^\d+$/.test(req.headers.ttl ?? '')) entry.problems.push('ttl');
      const sub = subscribers.get(name);
      if (!sub) entry.problems.push('unknown subscription');
      else {
        try {
          const plain = ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth });
          entry.payload = JSON.parse(plain.toString('utf8'));
        } catch (err) {
          entry.problems.push(`decrypt: ${err.message}`);
        }
      }
      const next = scripts.get(name)?.shift() ?? 201;
      const answer = typeof next === 'number' ? { status: next } : next;
      entry.status = answer.status;
      requests.push(entry);
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...(answer.headers ?? {}) });
      res.end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    requests,
    /** Registers a subscriber under `name`; returns its browser `PushSubscription` JSON. */
    subscribe(name, subscriber = makeSubscriber()) {
      subscribers.set(name, subscriber);
      return { endpoint: `${base}/push/${encodeURIComponent(name)}`, expirationTime: null, keys: { p256dh: subscriber.p256dh, auth: subscriber.auth } };
    },
    /** The answers for the next requests to `name` (then 201). */
    script(name, answers) {
      scripts.set(name, [...answers]);
    },
    /** Requests for notification `id`, optionally only those answered `status`. */
    for(id, status) {
      return requests.filter((r) => r.payload?.id === id && (status === undefined || r.status === status));
    },
    async close() {
      server.close();
      server.closeAllConnections?.();
    },
  };
}
