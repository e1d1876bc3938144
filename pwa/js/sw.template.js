// edgeflags service worker shim. Generated into pwa/dist/ by scripts/pwa-dist.mjs — edit
// pwa/js/sw.template.js, not the output. All logic lives in Rust (pwa/src); this file only
// registers every listener synchronously (the platform requires it) and forwards each event
// after one shared wasm init. The wasm is loaded from Cache Storage first, so the worker
// starts offline; its file name carries a content hash, so a new wasm changes this script
// and the browser sees an update.
/*__IMPORT__*/
const WASM_URL = new URL(/*__WASM_PATH__*/, self.location).href;
const CONFIG = /*__CONFIG__*/;

// IndexedDB as one promise per operation, for the Rust side (pwa/src/host/idb.rs decides what
// is stored; this is only the request/transaction plumbing, which costs far more as wasm).
// Stores: outbox (in-line auto-increment ids = replay order), usage (in-line ids), flags
// (out-of-line keys). A newer worker upgrading the schema is never blocked by this one.
const STORES = [['outbox', { keyPath: 'id', autoIncrement: true }], ['usage', { keyPath: 'id' }], ['flags', {}]];
let database = null;
function openDatabase(name) {
  if (!database) {
    database = new Promise((resolve, reject) => {
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => {
        for (const [store, options] of STORES) {
          if (!open.result.objectStoreNames.contains(store)) open.result.createObjectStore(store, options);
        }
      };
      open.onsuccess = () => {
        const db = open.result;
        db.onversionchange = () => {
          db.close();
          database = null;
        };
        resolve(db);
      };
      open.onerror = () => reject(open.error);
    });
    database.catch(() => {
      database = null;
    });
  }
  return database;
}
self.edgeflags = {
  // op: get | getAll | put | delete. Settles when the transaction has committed.
  idb: (name, store, op, key, value) =>
    openDatabase(name).then(
      (db) =>
        new Promise((resolve, reject) => {
          const tx = db.transaction(store, op === 'get' || op === 'getAll' ? 'readonly' : 'readwrite');
          const s = tx.objectStore(store);
          const req = op === 'put' ? (key === undefined ? s.put(value) : s.put(value, key)) : s[op](key);
          tx.oncomplete = () => resolve(req.result);
          tx.onerror = tx.onabort = () => reject(tx.error || req.error || new Error('IndexedDB transaction aborted'));
        }),
    ),
};

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
const isWrite = (request, url) => WRITES.some((w) => w.methods.includes(request.method) && url.pathname.startsWith(w.prefix));
function claims(request, url) {
  if (request.method === 'GET') return true;
  if (OFREP && request.method === 'POST' && (url.pathname === OFREP || url.pathname.startsWith(OFREP + '/'))) return true;
  return isWrite(request, url);
}

self.addEventListener('install', (event) => {
  event.waitUntil(init().then((sw) => sw.on_install(event)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(init().then((sw) => sw.on_activate(event)));
});

self.addEventListener('fetch', (event) => {
  let { request } = event;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || !claims(request, url)) return;
  // A write gets its Idempotency-Key here (the app's own is kept), so the network fallback
  // below — the wasm failed, perhaps after it had sent the write — repeats the same key and
  // the server answers the first result: never a duplicate.
  if (request.method !== 'GET' && isWrite(request, url) && !request.headers.get('idempotency-key')) {
    const headers = new Headers(request.headers);
    headers.set('idempotency-key', crypto.randomUUID());
    request = new Request(request, { headers });
  }
  // A body can be read once: keep a copy for the network fallback if the wasm fails.
  const spare = request.method === 'GET' ? request : request.clone();
  event.respondWith(init().then((sw) => sw.on_fetch(event, request)).catch(() => fetch(spare)));
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
