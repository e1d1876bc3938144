// The request worker's fast path (issue 15: edge/src/host/request/fast.rs, edge/js/entry.mjs) against
// the full path it stands in for: two stacks, one as deployed (fast path on) and one with
// FAST_PATH=off, each in front of its own copy of a scripted origin pair, get the same
// requests in the same order. Every answer must be the same — status, headers (but the
// per-request id, the date and the new visitor id), body — and the first stack's status
// endpoint must show that its fast path answered them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import net from 'node:net';

import { scriptedOrigin, startStack } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One stack and its own origins. */
async function side(vars) {
  const v1 = scriptedOrigin('v1');
  const v2 = scriptedOrigin('v2');
  const [o1, o2] = [await v1.listen(), await v2.listen()];
  const stack = await startStack({
    vars: {
      ORIGIN_URL: o1,
      CANARY_ORIGIN_URL: o2,
      ...vars,
    },
  });
  return {
    v1, v2, stack,
    stop: async () => {
      await stack.stop();
      for (const o of [v1, v2]) o.server.close();
    },
  };
}

/**
 * A GET over a raw socket: Node's fetch refuses a header value with a control character on
 * the way out and in, which the Fetch standard and workerd allow. Returns what `answer` reads.
 */
function rawGet(base, path, headers) {
  const { hostname, port } = new URL(base);
  return new Promise((ok, fail) => {
    const c = net.connect(Number(port), hostname, () => {
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      c.write(`GET ${path} HTTP/1.1\r\nhost: ${hostname}:${port}\r\n${lines}connection: close\r\n\r\n`, 'latin1');
    });
    const chunks = [];
    c.on('data', (d) => chunks.push(d));
    c.on('error', fail);
    c.on('end', () => {
      const all = Buffer.concat(chunks).toString('latin1');
      const cut = all.indexOf('\r\n\r\n');
      const [statusLine, ...lines] = all.slice(0, cut).split('\r\n');
      const list = lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]);
      let body = all.slice(cut + 4);
      if (list.some(([n, v]) => n === 'transfer-encoding' && /chunked/.test(v))) {
        let out = '';
        for (let at = 0; ;) {
          const eol = body.indexOf('\r\n', at);
          const size = parseInt(body.slice(at, eol), 16);
          if (!size) break;
          out += body.slice(eol + 2, eol + 2 + size);
          at = eol + 2 + size + 2;
        }
        body = out;
      }
      const fetched = list.filter(([n]) => n !== 'transfer-encoding' && n !== 'connection' && n !== 'content-length');
      ok({ status: Number(statusLine.split(' ')[1]), headers: fetched, text: async () => Buffer.from(body, 'latin1').toString('utf8') });
    });
  });
}

/** What must agree between the two paths. */
async function answer(res) {
  const headers = {};
  for (const [n, v] of res.headers) {
    if (n === 'date' || n === 'x-edgeflags-request-id') headers[n] = '(varies)';
    // A second may pass between the two stacks' answers.
    else if (n === 'age') headers[n] = '(n)';
    else if (n === 'cache-status') headers[n] = v.replace(/ttl=-?\d+/, 'ttl=(n)');
    else if (n === 'set-cookie') headers[n] = v.replace(/ef_uid=[^;]+/, 'ef_uid=(new)');
    else headers[n] = v;
  }
  // The bootstrap payload carries its evaluation time; each stack has its own ports.
  const body = (await res.text())
    .replace(/"(at|time|evaluatedAt)":\s*\d+/g, '"$1":0')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:(port)');
  return { status: res.status, headers, body };
}

let fast;
let full;
before(async () => {
  // The harness's default REFRESH_SECONDS=0 makes every request check the flag set, which
  // only the full path does: an hour between checks, as a deployment's steady state.
  [fast, full] = await Promise.all([
    side({ REFRESH_SECONDS: '3600' }),
    side({ REFRESH_SECONDS: '3600', FAST_PATH: 'off' }),
  ]);
});
after(async () => {
  await Promise.all([fast?.stop(), full?.stop()]);
});

/** A visitor whose variant of `backend` picks `want` on both stacks (same flags, same split). */
async function visitorOn(want) {
  for (let i = 2; i < 400; i++) {
    const cookie = `ef_uid=${i.toString(16).padStart(32, '0')}`;
    const res = await fetch(`${fast.stack.edgeUrl}/r/probe-${i}?cc=no-store`, { headers: { cookie } });
    await res.text();
    if (res.headers.get('x-edgeflags-origin') === want) return cookie;
  }
  throw new Error(`no visitor on ${want}`);
}

const visitor = `ef_uid=${'1'.padStart(32, '0')}`;

/** Sends the same request to both stacks, one after the other; returns both answers. */
async function both(path, { method = 'GET', headers = { cookie: visitor }, before: setUp, raw = false } = {}) {
  const out = [];
  for (const s of [fast, full]) {
    setUp?.(s);
    const res = raw ? await rawGet(s.stack.edgeUrl, path, headers) : await fetch(`${s.stack.edgeUrl}${path}`, { method, headers });
    out.push(await answer(res));
  }
  return out;
}

/** Both paths' answers, equal; returns the fast path's. */
async function same(path, opts) {
  const [a, b] = await both(path, opts);
  assert.deepEqual(a, b, `${opts?.method ?? 'GET'} ${path}`);
  return a;
}

/** How many requests a stack's fast path answered (its status endpoint). */
async function fastAnswered(s) {
  const status = await (await fetch(`${s.stack.edgeUrl}/__edge/status`)).json();
  return status.proxy.fastPath;
}

describe('the fast path answers as the full path does', () => {
  test('warm-up: the first request of an isolate takes the full path on both', async () => {
    await same('/r/warm?cc=no-store');
  });

  test('uncacheable answers, the second one without a lookup', async () => {
    const a = await same('/r/nostore?cc=no-store');
    assert.match(a.headers['cache-status'], /fwd=uri-miss/);
    const b = await same('/r/nostore?cc=no-store');
    assert.match(b.headers['cache-status'], /detail=no-store/);
  });

  test('stored, then a hit; HEAD; a hit answered 304 to the visitor\'s own validator', async () => {
    const miss = await same('/r/stored?cc=max-age=60&etag=e1');
    assert.match(miss.headers['cache-status'], /stored/);
    await sleep(100); // the puts (waitUntil)
    const hit = await same('/r/stored?cc=max-age=60&etag=e1');
    assert.match(hit.headers['cache-status'], /hit/);
    const head = await same('/r/stored?cc=max-age=60&etag=e1', { method: 'HEAD' });
    assert.equal(head.body, '');
    const notModified = await same('/r/stored?cc=max-age=60&etag=e1', { headers: { cookie: visitor, 'if-none-match': '"e1"' } });
    assert.equal(notModified.status, 304);
  });

  test('the origin gets the same request: path, query and forwarding headers', async () => {
    const headers = { cookie: visitor, 'x-forwarded-for': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-edgeflags-origin': 'v2', accept: 'application/json' };
    const a = await same('/r/echo?cc=no-store&echo=1&q=%C3%A9', { headers });
    const seen = JSON.parse(a.body);
    assert.equal(seen.url, '/r/echo?cc=no-store&echo=1&q=%C3%A9');
    assert.notEqual(seen.headers['x-forwarded-for'], '6.6.6.6');
    assert.equal(seen.headers['x-edgeflags-origin'], undefined);
  });

  test('a control character in a visitor\'s header value cuts none of the edge\'s own headers short', async () => {
    // The visitor's Surrogate-Capability travels on with the edge's member appended. Node's
    // HTTP parser (the scripted origin) refuses the control character with a 400: the same
    // 400 on both paths shows the header went on whole, with what follows it.
    const headers = { cookie: visitor, 'surrogate-capability': 'a\u0001b' };
    const a = await same('/r/echo-odd?cc=no-store&echo=1', { headers, raw: true });
    assert.equal(a.status, 400);
  });

  test('an origin header value with a control character is relayed and stored like any other', async () => {
    const p = '/r/odd?cc=max-age=60&odd=1';
    const raw = { headers: { cookie: visitor }, raw: true };
    const miss = await same(p, raw);
    assert.equal(miss.headers['x-odd'], 'a\u0001b');
    assert.match(miss.headers['cache-status'], /stored/);
    await sleep(100);
    const hit = await same(p, raw);
    assert.match(hit.headers['cache-status'], /hit/);
    assert.equal(hit.headers['x-odd'], 'a\u0001b');
  });

  test('a stale-while-revalidate entry (the full path\'s case) is answered alike', async () => {
    const p = '/r/swr?cc=max-age=1,stale-while-revalidate=60';
    await same(p);
    await sleep(2100);
    const stale = await same(p);
    assert.match(stale.headers['cache-status'], /stale-while-revalidate/);
  });

  test('a new visitor gets an id cookie (a random id: the origin it picks may differ)', async () => {
    const [a, b] = await both('/r/newcomer?cc=no-store', { headers: {} });
    for (const x of [a, b]) {
      assert.equal(x.status, 200);
      assert.match(x.headers['set-cookie'], /^ef_uid=\(new\); /);
    }
    assert.equal(a.headers['set-cookie'], b.headers['set-cookie']);
  });

  test('the origin\'s own security header wins; a Connection-listed header never reaches the visitor', async () => {
    const a = await same('/r/headers?cc=no-store&xfo=SAMEORIGIN&hop=secret');
    assert.equal(a.headers['x-frame-options'], 'SAMEORIGIN');
    assert.equal(a.headers['x-hop'], undefined);
    assert.equal(a.headers['x-content-type-options'], 'nosniff');
  });

  test('an upstream cache\'s Cache-Status is kept, the edge\'s member after it (RFC 9211 §2)', async () => {
    const p = '/r/upstream?cc=max-age=60&cs=origin-cache%3B%20hit';
    const miss = await same(p);
    assert.match(miss.headers['cache-status'], /^origin-cache; hit, edgeflags; fwd=uri-miss/);
    await sleep(100);
    const hit = await same(p);
    assert.match(hit.headers['cache-status'], /^origin-cache; hit, edgeflags; hit/);
  });

  test('a failing canary is retried on the stable origin, and the retry is not stored', async () => {
    const onV2 = await visitorOn('v2');
    const down = (s) => { s.v2.state.fail = true; };
    try {
      const a = await same('/r/retry?cc=max-age=60', { headers: { cookie: onV2 }, before: down });
      assert.equal(a.headers['x-edgeflags-retried'], 'v2->v1');
      assert.doesNotMatch(a.headers['cache-status'], /stored/);
    } finally {
      for (const s of [fast, full]) s.v2.state.fail = false;
    }
  });

  test('both origins unreachable: the same 502 with its JSON body', async () => {
    const onV2 = await visitorOn('v2');
    const down = (s) => { s.v1.state.down = true; s.v2.state.down = true; };
    try {
      const a = await same('/r/gone?cc=no-store', { headers: { cookie: onV2 }, before: down });
      assert.equal(a.status, 502);
      assert.equal(JSON.parse(a.body).errorCode, 'ORIGIN_UNREACHABLE');
    } finally {
      for (const s of [fast, full]) { s.v1.state.down = false; s.v2.state.down = false; }
    }
  });

  test('an HTML page gets the bootstrap on both paths', async () => {
    const a = await same('/r/page?cc=no-cache&ct=text/html;charset=utf-8');
    assert.match(a.body, /<script[^>]*id="edgeflags-bootstrap"/);
  });

  test('more requests waiting on a slow origin than the fast path keeps between calls: every one is answered', async () => {
    // The fast path keeps 1,024 requests' state per isolate (crate::traffic::in_flight); one
    // more takes the full path. Before, the oldest state was dropped and its request got a 502.
    const n = 1100;
    const cookie = await visitorOn('v1'); // also warms the isolate up: the fast path is on
    let open;
    fast.v1.state.gate = new Promise((r) => { open = r; });
    fast.v1.state.waiting = 0;
    try {
      const all = Array.from({ length: n }, (_, i) =>
        fetch(`${fast.stack.edgeUrl}/r/slow-${i}?cc=no-store&hold=1`, { headers: { cookie } })
          .then(async (res) => ({ status: res.status, body: await res.text() })));
      const deadline = Date.now() + 60000;
      while (fast.v1.state.waiting < n && Date.now() < deadline) await sleep(50);
      assert.equal(fast.v1.state.waiting, n, 'every request reached the origin before any was answered');
      open();
      const answers = await Promise.all(all);
      const failed = answers.filter((a) => a.status !== 200);
      assert.equal(failed.length, 0, `${failed.length} of ${n} failed, e.g. ${JSON.stringify(failed[0])}`);
    } finally {
      open?.();
      fast.v1.state.gate = null;
    }
  });

  test('the fast path answered (the status endpoint counts it), the reference never did', async () => {
    const answered = await fastAnswered(fast);
    assert.ok(answered >= 8, `fast path answers: ${answered}`);
    assert.equal(await fastAnswered(full), 0);
  });
});
