// edgeflags service worker shim. Generated into pwa/dist/ by scripts/pwa-dist.mjs — edit
// pwa/js/sw.template.js, not the output. All logic lives in Rust (pwa/src); this file only
// registers every listener synchronously (the platform requires it) and forwards each event
// after one shared wasm init. The wasm is loaded from Cache Storage first, so the worker
// starts offline; its file name carries a content hash, so a new wasm changes this script
// and the browser sees an update.
/*__IMPORT__*/
const WASM_URL = new URL(/*__WASM_PATH__*/, self.location).href;
const CONFIG = /*__CONFIG__*/;

let ready = null;
function init() {
  if (!ready) {
    ready = (async () => {
      let source = null;
      try {
        source = await caches.match(WASM_URL);
      } catch (_) {
        // Cache Storage unavailable (private mode quirks): fall back to the network.
      }
      await initWasm({ module_or_path: source || fetch(WASM_URL) });
      wasm().start(JSON.stringify(CONFIG));
      return wasm();
    })();
    // A failed init (offline before the first install) is retried by the next event.
    ready.catch(() => {
      ready = null;
    });
  }
  return ready;
}

// Script-constructed events cannot be extended; everything else can.
function keepAlive(event, promise) {
  try {
    event.waitUntil(promise);
  } catch (_) {
    promise.catch(() => {});
  }
}

// Which non-GET requests the worker takes (the rest never reach it): writes to
// background-sync routes, and the OFREP endpoints when offline flags are configured. Rust
// routing decides the rest; this only avoids waking the wasm for requests it never handles.
const WRITES = CONFIG.routes
  .filter((r) => r.backgroundSync)
  .map((r) => ({ prefix: r.match.pathPrefix || '/', methods: r.match.methods || [] }));
const OFREP = CONFIG.flags ? CONFIG.flags.ofrepPath || '/ofrep/v1/evaluate/flags' : null;
function claims(request, url) {
  if (request.method === 'GET') return true;
  if (OFREP && request.method === 'POST' && (url.pathname === OFREP || url.pathname.startsWith(OFREP + '/'))) return true;
  return WRITES.some((w) => w.methods.includes(request.method) && url.pathname.startsWith(w.prefix));
}

self.addEventListener('install', (event) => {
  event.waitUntil(init().then((sw) => sw.on_install(event)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(init().then((sw) => sw.on_activate(event)));
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || !claims(request, url)) return;
  // A body can be read once: keep a copy for the network fallback if the wasm cannot start.
  const spare = request.method === 'GET' ? request : request.clone();
  event.respondWith(init().then((sw) => sw.on_fetch(event)).catch(() => fetch(spare)));
});

self.addEventListener('message', (event) => {
  keepAlive(event, init().then((sw) => sw.on_message(event)));
});

// web-sys has no SyncEvent: the tag is read here.
self.addEventListener('sync', (event) => {
  event.waitUntil(init().then((sw) => sw.on_sync(event, String(event.tag))));
});

self.addEventListener('push', (event) => {
  keepAlive(event, init().then((sw) => sw.on_push(event)));
});

self.addEventListener('notificationclick', (event) => {
  keepAlive(event, init().then((sw) => sw.on_notification_click(event)));
});
