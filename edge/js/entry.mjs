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

export default {
  fetch(request, env, ctx) {
    Object.defineProperty(request, 'cf', { value: undefined });
    return call('fetch', request, env, ctx);
  },
  queue(batch, env, ctx) {
    return call('queue', batch, env, ctx);
  },
  scheduled(event, env, ctx) {
    return call('scheduled', event, env, ctx);
  },
};
