// Baseline for bench/request-path.mjs: a JS worker that answers from caches.default and,
// on a miss, fetches the origin and puts the answer (the Cache API honours its Cache-Control).
export default {
  async fetch(request, env, ctx) {
    const hit = await caches.default.match(request);
    if (hit) return hit;
    const url = new URL(request.url);
    const res = await fetch(env.ORIGIN_URL + url.pathname + url.search, { headers: request.headers, redirect: 'manual' });
    if (request.method === 'GET' && res.status === 200) ctx.waitUntil(caches.default.put(request, res.clone()));
    return res;
  },
};
