// The edge worker's module entry (copied to edge/build/index.js by scripts/build-edge.sh; the
// module worker-build generated becomes edge/build/worker.mjs).
//
// Why not worker-build's own entry: it exports a `WorkerEntrypoint` class wrapped in a Proxy
// whose construct trap builds a second Proxy per request, and whose `get` trap wraps `fetch` in
// a third — three Proxies and a `Reflect.construct` for every request, measured at ~30 µs of
// the isolate's time per request (bench/profile-edge.mjs). Here the handlers are called
// directly, and worker-build's wrapper is used only for what it is for: after a wasm trap
// (a `WebAssembly.RuntimeError`, e.g. an abort), the next request goes through it, and it
// re-instantiates the module before running it.
//
// The proxied GET/HEAD's fast path (below; edge/src/host/request/fast.rs, ARCHITECTURE.md
// "The request path") does its I/O here and asks Rust only for decisions; everything else goes
// to the handlers as before.
//
// `request.cf`: workers-rs' `Request::from` reads it for every request, which makes workerd
// parse the cf object (~25 µs). The edge never reads `cf` (it reads headers such as
// `cf-connecting-ip`), so the request it hands to Rust carries none.
import Recovering from './worker.mjs';

export * from './worker.mjs';

const handlers = Recovering.prototype;
const state = globalThis.__worker_init_state;

function call(name, arg, env, ctx) {
  if (state.criticalError) {
    // Reinitialises the wasm instance (see worker-build's shim), then runs the handler.
    return new Recovering(ctx, env)[name](arg);
  }
  try {
    return handlers[name].call({ env, ctx }, arg);
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) state.criticalError = true;
    throw e;
  }
}

// ---- The proxied GET/HEAD's fast path (edge/src/host/request/fast.rs) ---------------------
// Rust decides, in a few synchronous calls that each return one string; this code only does
// the I/O it is told to: the cache lookup, the origin fetch (and the stable retry), the put,
// the response. A plan of `undefined` or an answer `x`, given before any I/O, hands the
// request to the full path in Rust. Fixed fields first, separated by U+0001; then, as the
// rest of the answer (a header value may hold U+0001, never NUL), the header edits as
// NUL-separated (op, name, value) triples, the format of edge/src/host/request/headers_js.rs,
// plus op `S`: append to the header map of the entry to store.
const SEP = '\u0001';
const fastPath = typeof handlers.edge_plan === 'function'; // the request worker only

function joined(headers) {
  let s = '';
  headers.forEach((v, n) => {
    s += n + '\u0000' + v + '\u0000';
  });
  return s;
}

/** `n` fixed fields of an answer, then the rest. */
function fields(s, n) {
  const out = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const next = s.indexOf(SEP, at);
    out.push(s.slice(at, next));
    at = next + 1;
  }
  out.push(s.slice(at));
  return out;
}

function edit(h, ops, store) {
  const p = ops.split('\u0000');
  for (let i = 0; i + 2 < p.length; i += 3) {
    if (p[i] === 'S') store.append(p[i + 1], p[i + 2]);
    else if (p[i] === 'd') h.delete(p[i + 1]);
    else if (p[i] === 'a') h.append(p[i + 1], p[i + 2]);
    else if (p[i] === 'k') { if (!h.has(p[i + 1])) h.set(p[i + 1], p[i + 2]); }
    else h.set(p[i + 1], p[i + 2]);
  }
}

/** A call into wasm; a trap marks the instance for re-initialisation (see `call`). */
function wasm(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) state.criticalError = true;
    throw e;
  }
}

async function send(url, init) {
  try {
    return await fetch(url, init);
  } catch (e) {
    return e;
  }
}

const told = (id, res) =>
  wasm(() => res instanceof Response
    ? handlers.edge_fetched(id, res.status, joined(res.headers))
    : handlers.edge_fetched(id, 0, String(res))); // `Name: message`, as workers-rs renders it

function respond(id, res, env, ctx, due, boot) {
  if (due === '1') ctx.waitUntil(handlers.edge_flush(env));
  return boot === '1' ? wasm(() => handlers.edge_bootstrap(id, res)) : res;
}

async function proxied(plan, request, env, ctx) {
  let [ids, mode, key, target, requestEdits] = fields(plan, 4);
  const id = Number(ids);
  try {
    if (mode === 'l') {
      const entry = await caches.default.match(key);
      const a = wasm(() => handlers.edge_stored(id, entry ? joined(entry.headers) : undefined));
      if (a === 'x') return call('fetch', request, env, ctx);
      if (a[0] === 'f') requestEdits = a.slice(2);
      else {
        const [, status, fresh, due, boot, ops] = fields(a, 5);
        const s = Number(status);
        const h = fresh === '1' ? new Headers() : new Headers(entry.headers);
        edit(h, ops);
        const empty = request.method === 'HEAD' || s === 204 || s === 205 || s === 304;
        return respond(id, new Response(empty ? null : entry.body, { status: s, headers: h }), env, ctx, due, boot);
      }
    }
    const headers = new Headers(request.headers);
    edit(headers, requestEdits);
    const init = { method: request.method, headers, redirect: 'manual' };
    let res = await send(target, init);
    let a = told(id, res);
    if (a[0] === 'r') {
      const first = res;
      res = await send(a.slice(2), init);
      a = told(id, res);
      if (a[0] === 'p') res = first;
    }
    if (a === 'e') return wasm(() => handlers.edge_error(id));
    const [, store, due, boot, ops] = fields(a, 4);
    const h = new Headers(res.headers);
    const entry = new Headers();
    edit(h, ops, entry);
    if (store === '1') {
      ctx.waitUntil(caches.default.put(key, new Response(res.clone().body, { status: 200, headers: entry })));
    }
    return respond(id, new Response(res.body, { status: res.status, headers: h }), env, ctx, due, boot);
  } catch (e) {
    // A throw between the calls (a rejected lookup, say) would leave the request's state in wasm.
    if (!state.criticalError) {
      try { handlers.edge_drop(id); } catch { /* the first error is the one to report */ }
    }
    throw e;
  }
}

export default {
  fetch(request, env, ctx) {
    Object.defineProperty(request, 'cf', { value: undefined });
    if (fastPath && !state.criticalError) {
      let plan;
      try {
        plan = handlers.edge_plan(request.method, request.url, joined(request.headers));
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError) state.criticalError = true;
      }
      if (plan !== undefined) return proxied(plan, request, env, ctx);
    }
    return call('fetch', request, env, ctx);
  },
  queue(batch, env, ctx) {
    return call('queue', batch, env, ctx);
  },
  scheduled(event, env, ctx) {
    return call('scheduled', event, env, ctx);
  },
};
