// edgeflags service worker shim. Generated into pwa/dist/ by scripts/build-pwa.mjs — edit
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

self.addEventListener('install', (event) => {
  event.waitUntil(init().then((sw) => sw.on_install(event)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(init().then((sw) => sw.on_activate(event)));
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  // If the wasm cannot start, the page still gets the network.
  event.respondWith(init().then((sw) => sw.on_fetch(event)).catch(() => fetch(request)));
});

self.addEventListener('message', (event) => {
  event.waitUntil(init().then((sw) => sw.on_message(event)));
});
