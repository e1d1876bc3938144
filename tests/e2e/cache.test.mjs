// Per-variant caching through the real runtime (workerd + Cache API) against a scripted
// origin on loopback: freshness, variant purity, never-shared responses, SWR, stale-if-error,
// 304 revalidation, invalidation and purge. Every response carries Cache-Status.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { scriptedOrigin, startStack } from './harness.mjs';

const v1 = scriptedOrigin('v1');
const v2 = scriptedOrigin('v2');
let stack;
before(async () => {
  const [o1, o2] = [await v1.listen(), await v2.listen()];
  stack = await startStack({
    vars: {
      ORIGIN_URL: o1,
      CANARY_ORIGIN_URL: o2,
      BOOTSTRAP: 'off',
    },
  });
});
after(async () => {
  await stack?.stop();
  for (const o of [v1, v2]) o.server.close();
});

let uniq = 0;
const path = (name) => `/r/${name}-${++uniq}`;
const get = (p, headers = {}) => fetch(`${stack.edgeUrl}${p}`, { headers: { cookie: 'ef_uid=' + '1'.padStart(32, '0'), ...headers } });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A visitor id the demo's 90/10 `backend` split sends to `want` (found by asking the edge). */
async function visitorOn(want) {
  for (let i = 2; i < 400; i++) {
    const id = i.toString(16).padStart(32, '0');
    const res = await fetch(`${stack.edgeUrl}/__edge/status`, { headers: { cookie: `ef_uid=${id}` } });
    await res.text();
    const probe = await fetch(`${stack.edgeUrl}/r/probe-${id}?cc=no-store`, { headers: { cookie: `ef_uid=${id}` } });
    await probe.text();
    if (probe.headers.get('x-edgeflags-origin') === want) return `ef_uid=${id}`;
  }
  throw new Error(`no visitor on ${want}`);
}

describe('HTTP caching at the edge', () => {
  test('a fresh response is served from the cache with Age and Cache-Status: hit', async () => {
    const p = `${path('fresh')}?cc=max-age=60`;
    const first = await get(p);
    assert.match(first.headers.get('cache-status'), /^edgeflags; fwd=uri-miss; fwd-status=200; ttl=\d+; stored$/);
    const body = await first.text();
    await sleep(50); // the put happens after the response (waitUntil)
    const second = await get(p);
    assert.match(second.headers.get('cache-status'), /^edgeflags; hit; ttl=\d+/);
    assert.equal(await second.text(), body);
    assert.match(second.headers.get('age'), /^\d+$/);
    assert.equal(v1.counts.get(p.split('?')[0]), 1, 'the origin saw one request');
  });

  test('responses never stored: no-store, private, Set-Cookie, and requests with Authorization', async () => {
    for (const [q, headers, detail] of [
      ['?cc=no-store', {}, 'no-store'],
      ['?cc=private,max-age=60', {}, 'private'],
      ['?cc=max-age=60&cookie=secret', {}, 'set-cookie'],
      ['?cc=max-age=60', { authorization: 'Bearer abc' }, 'authorization'],
    ]) {
      const p = path('never') + q;
      const a = await get(p, headers);
      assert.match(a.headers.get('cache-status'), new RegExp(`detail=${detail}`), `${q}: ${a.headers.get('cache-status')}`);
      await a.text();
      await sleep(50);
      const b = await get(p, headers);
      assert.doesNotMatch(b.headers.get('cache-status'), /hit/, q);
      const text = await b.text();
      assert.match(text, /#2$/, `${q}: the second visitor got a fresh origin answer`);
      if (q.includes('cookie')) assert.equal(b.headers.get('set-cookie')?.includes('secret-1'), false);
    }
  });

  test('each variant has its own entry: no response crosses to another variant', async () => {
    const onV1 = await visitorOn('v1');
    const onV2 = await visitorOn('v2');
    const p = `${path('variant')}?cc=max-age=60`;
    const a = await get(p, { cookie: onV1 });
    assert.match(await a.text(), /^v1 /);
    await sleep(50);
    const b = await get(p, { cookie: onV2 });
    assert.match(b.headers.get('cache-status'), /fwd=uri-miss/, 'v2 does not hit the v1 entry');
    assert.match(await b.text(), /^v2 /);
    await sleep(50);
    const c = await get(p, { cookie: onV1 });
    assert.match(c.headers.get('cache-status'), /hit/);
    assert.match(await c.text(), /^v1 /);
  });

  test('a stable retry for a failing canary is not stored under the canary variant', async () => {
    const onV2 = await visitorOn('v2');
    const p = `${path('retried')}?cc=max-age=60`;
    v2.state.fail = true;
    try {
      const saved = await get(p, { cookie: onV2 });
      assert.equal(saved.status, 200);
      assert.equal(saved.headers.get('x-edgeflags-retried'), 'v2->v1');
      assert.match(await saved.text(), /^v1 /);
      assert.doesNotMatch(saved.headers.get('cache-status'), /stored/, saved.headers.get('cache-status'));
    } finally {
      v2.state.fail = false;
    }
    await sleep(50); // a put would have happened by now (waitUntil)
    const next = await get(p, { cookie: onV2 });
    assert.doesNotMatch(next.headers.get('cache-status'), /hit/, 'the canary visitor gets no stable answer from the cache');
    assert.match(await next.text(), /^v2 /);
  });

  test('a background revalidation answered by the stable retry leaves the canary entry alone', async () => {
    const onV2 = await visitorOn('v2');
    const p = `${path('retried-swr')}?cc=max-age=1,stale-while-revalidate=60`;
    assert.match(await (await get(p, { cookie: onV2 })).text(), /^v2 /);
    await sleep(2100);
    v2.state.fail = true;
    try {
      const stale = await get(p, { cookie: onV2 });
      assert.match(stale.headers.get('cache-status'), /detail=stale-while-revalidate/);
      assert.match(await stale.text(), /^v2 /);
      await sleep(300); // the background revalidation fails on v2 and is retried on v1
      assert.ok((v1.counts.get(p.split('?')[0]) ?? 0) >= 1, 'the background revalidation was retried on v1');
    } finally {
      v2.state.fail = false;
    }
    const after = await get(p, { cookie: onV2 });
    assert.doesNotMatch(await after.text(), /^v1 /, 'no v1 body under the canary key');
  });

  test('stale-while-revalidate serves stale at once and refreshes in the background', async () => {
    const p = `${path('swr')}?cc=max-age=1,stale-while-revalidate=60`;
    await (await get(p)).text();
    await sleep(2100);
    const stale = await get(p);
    assert.match(stale.headers.get('cache-status'), /hit; ttl=-\d+; detail=stale-while-revalidate/);
    assert.match(await stale.text(), /#1$/);
    await sleep(300);
    assert.equal(v1.counts.get(p.split('?')[0]), 2, 'the background revalidation reached the origin');
    const fresh = await get(p);
    assert.match(fresh.headers.get('cache-status'), /hit/);
    assert.match(await fresh.text(), /#2$/);
  });

  test('stale-if-error serves the stored response while the origin fails', async () => {
    const p = `${path('sie')}?cc=max-age=1,stale-if-error=60`;
    await (await get(p)).text();
    await sleep(2100);
    v1.state.fail = true;
    try {
      const res = await get(p);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('cache-status'), /detail=stale-if-error/);
      assert.match(await res.text(), /#1$/);
    } finally {
      v1.state.fail = false;
    }
  });

  test('a stale entry with a validator is revalidated with If-None-Match, and a 304 refreshes it', async () => {
    const p = `${path('etag')}?cc=max-age=1&etag=abc`;
    await (await get(p)).text();
    await sleep(2100);
    const res = await get(p);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('cache-status'), /fwd=stale; fwd-status=304/);
    assert.match(await res.text(), /#1$/, 'the stored body was reused');
    const conditional = await get(p, { 'if-none-match': '"abc"' });
    assert.equal(conditional.status, 304, 'the visitor\'s own validator is answered from the cache');
  });

  test('a successful POST invalidates the URL, for every variant', async () => {
    const p = `${path('inv')}?cc=max-age=60`;
    await (await get(p)).text();
    await sleep(50);
    assert.match((await get(p)).headers.get('cache-status'), /hit/);
    const post = await fetch(`${stack.edgeUrl}${p}`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 200);
    await sleep(100);
    const after = await get(p);
    assert.match(after.headers.get('cache-status'), /fwd=uri-miss/);
  });

  test('purge by URL and by prefix through the admin API', async () => {
    const auth = { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' };
    const a = `${path('purge-url')}?cc=max-age=60`;
    const b = `/r/purge-prefix/${++uniq}?cc=max-age=60`;
    for (const p of [a, b]) await (await get(p)).text();
    await sleep(50);
    for (const p of [a, b]) assert.match((await get(p)).headers.get('cache-status'), /hit/);
    const byUrl = await fetch(`${stack.edgeUrl}/__edge/cache/purge`, { method: 'POST', headers: auth, body: JSON.stringify({ url: `${stack.edgeUrl}${a}` }) });
    assert.equal(byUrl.status, 200, await byUrl.text());
    const byPrefix = await fetch(`${stack.edgeUrl}/__edge/cache/purge`, { method: 'POST', headers: auth, body: JSON.stringify({ prefix: '/r/purge-prefix/' }) });
    assert.equal(byPrefix.status, 200);
    await sleep(100);
    for (const p of [a, b]) assert.doesNotMatch((await get(p)).headers.get('cache-status'), /hit/, p);
    const bad = await fetch(`${stack.edgeUrl}/__edge/cache/purge`, { method: 'POST', headers: auth, body: '{}' });
    assert.equal(bad.status, 400);
  });
});
