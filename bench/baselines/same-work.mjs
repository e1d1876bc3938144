// Baseline for bench/request-path.mjs: a JS worker that does the I/O and the header work the
// edge's fast path does for the bench's two requests — the same cache key, lookup, fetch, put
// and Response, the same header edits in the same order (origin-bound: forwarding headers,
// request id, variant; response: Cache-Status, origin, request id, the edge's mark, four
// security headers; a hit's entry unwrapped: Age, Cache-Control, six metadata headers) —
// and none of its decisions: no routing, identity, flag evaluation, cache policy, metrics.
// The edge's CPU over this worker's is what deciding in Rust costs; this worker's over the
// ten-line ones is what the features' header work costs any worker (issue 15's targets are
// against the ten-line ones). The edit lists were read off the edge's answers to the bench's
// requests (edge_plan / edge_stored / edge_fetched, 2026-12-03, at e2321ef).
const SECURITY = [
  ['x-content-type-options', 'nosniff'],
  ['referrer-policy', 'strict-origin-when-cross-origin'],
  ['x-frame-options', 'DENY'],
  [
    'content-security-policy',
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; frame-ancestors 'none'; base-uri 'self'",
  ],
];
const META = ['x-ef-cache-control', 'x-ef-format', 'x-ef-request-time', 'x-ef-response-time', 'x-ef-status', 'x-ef-stored-at'];
// Keys whose answer was `no-store`: fetched without a lookup, as the edge's pass memory does.
const pass = new Set();

function requestId() {
  let s = '';
  for (const b of crypto.getRandomValues(new Uint8Array(16))) s += b.toString(16).padStart(2, '0');
  return s;
}

function answered(h, cacheStatus, id, hit) {
  h.set('cache-status', cacheStatus);
  if (!hit) h.set('x-edgeflags-origin', 'v1'); // a stored entry already holds it
  h.set('x-edgeflags-request-id', id);
  h.set('x-edgeflags', 'edge/0.1.0');
  for (const [n, v] of SECURITY) h.set(n, v);
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const id = requestId();
    const key = `https://edgeflags.cache/http/${url.host}/v=backend:v1${url.pathname}${url.search}`;
    if (!pass.has(key)) {
      const entry = await caches.default.match(key);
      if (entry) {
        const h = new Headers(entry.headers);
        h.set('age', '1');
        h.set('cache-control', h.get('x-ef-cache-control') ?? '');
        for (const n of META) h.delete(n);
        answered(h, 'edgeflags; hit; ttl=3599', id, true);
        return new Response(request.method === 'HEAD' ? null : entry.body, { status: 200, headers: h });
      }
    }
    const ip = request.headers.get('cf-connecting-ip'); // Miniflare always sets it
    const headers = new Headers(request.headers);
    headers.delete('cf-connecting-ip');
    headers.delete('connection');
    headers.delete('host');
    headers.append('x-forwarded-proto', url.protocol.slice(0, -1));
    headers.append('x-forwarded-for', ip);
    headers.append('x-real-ip', ip);
    headers.append('x-forwarded-host', url.host);
    headers.append('forwarded', `for=${ip};host="${url.host}";proto=${url.protocol.slice(0, -1)}`);
    headers.append('surrogate-capability', 'edgeflags="Surrogate/1.0"');
    headers.append('x-edgeflags-request-id', id);
    headers.append('x-edgeflags-variants', 'backend=v1');
    const sent = Date.now();
    const res = await fetch(env.ORIGIN_URL + url.pathname + url.search, { method: request.method, headers, redirect: 'manual' });
    const h = new Headers(res.headers);
    const cc = res.headers.get('cache-control') ?? '';
    if (cc.includes('no-store')) {
      pass.add(key);
      answered(h, 'edgeflags; fwd=uri-miss; fwd-status=200; detail=no-store', id);
    } else {
      const now = Date.now();
      const entry = new Headers();
      for (const n of ['content-length', 'content-type', 'date', 'x-app-version']) {
        const v = res.headers.get(n);
        if (v !== null) entry.append(n, v);
      }
      entry.append('x-ef-format', '1');
      entry.append('x-ef-status', String(res.status));
      entry.append('x-ef-stored-at', String(now));
      entry.append('x-ef-request-time', String(sent));
      entry.append('x-ef-response-time', String(now));
      entry.append('x-ef-cache-control', cc);
      entry.append('cache-control', 's-maxage=3599');
      entry.append('x-edgeflags-origin', 'v1');
      answered(h, 'edgeflags; fwd=uri-miss; fwd-status=200; ttl=3600; stored', id);
      ctx.waitUntil(caches.default.put(key, new Response(res.clone().body, { status: 200, headers: entry })));
    }
    return new Response(res.body, { status: res.status, headers: h });
  },
};
