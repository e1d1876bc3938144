// Baseline for bench/request-path.mjs: a JS worker that only forwards to the origin.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.ORIGIN_URL + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      redirect: 'manual',
    });
  },
};
