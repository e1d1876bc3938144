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
// Stores: outbox (in-line auto-increment ids = replay order), usage (in-line ids), flags and
// inbox (out-of-line keys). A newer worker upgrading the schema is never blocked by this one;
// version 2 added inbox (the upgrade creates only the stores that are missing).
const STORES = [['outbox', { keyPath: 'id', autoIncrement: true }], ['usage', { keyPath: 'id' }], ['flags', {}], ['inbox', {}]];
let database = null;
function openDatabase(name) {
  if (!database) {
    database = new Promise((resolve, reject) => {
      const open = indexedDB.open(name, 2);
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
  // Posts a message to every window of this origin, controlled or not (the Rust side decides
  // what and when; as wasm bindings, matchAll + postMessage cost more than these two lines).
  post: (message) =>
    clients.matchAll({ type: 'window', includeUncontrolled: true }).then((all) => all.forEach((c) => c.postMessage(message))),
};

let ready = null;
// The wasm response this worker started from when it came from the network (a first
// install): the precache stores it instead of downloading the wasm a second time.
let started = null;
let precacheName = null;
function init() {
  if (!ready) {
    ready = (async () => {
      let source = null;
      try {
        source = await caches.match(WASM_URL);
      } catch (_) {
        // Cache Storage unavailable (private mode quirks): fall back to the network.
      }
      if (!source) {
        source = await fetch(WASM_URL);
        if (source.ok) started = source.clone();
      }
      await initWasm({ module_or_path: source });
      precacheName = wasm().start(JSON.stringify(CONFIG));
      return wasm();
    })();
    // A failed init (offline before the first install) is retried by the next event.
    ready.catch(() => {
      ready = null;
    });
  }
  return ready;
}
// A version evaluated for the first time ('parsed': its install comes next) starts loading
// the wasm now, while the browser dispatches install: install cannot plan without it.
if (self.serviceWorker && self.serviceWorker.state === 'parsed') init();

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

// Install and activate: Rust decides what to fetch and delete (pwa/src/host/lifecycle.rs);
// these are the Cache Storage calls. Entries are stored as they arrive, so an install that
// fails partway keeps what it fetched and the retry fetches only the rest. Up to
// PRECACHE_PARALLEL fetches run at once (a browser's connections per host over HTTP/1.1):
// one by one, install waited for every answer in turn (bench/pwa-sw.mjs measured the wait).
const PRECACHE_PARALLEL = 6;
const keysOf = async (cache) => (await cache.keys()).map((r) => r.url);
self.addEventListener('install', (event) => {
  event.waitUntil(
    init().then(async (sw) => {
      const cache = await caches.open(precacheName);
      const [missing] = sw.precache_plan(await keysOf(cache), []);
      let failed = null;
      let next = 0;
      const lane = async () => {
        while (next < missing.length) {
          const [url, key] = [missing[next], missing[next + 1]];
          next += 2;
          try {
            const mine = url === WASM_URL && started;
            started = mine ? null : started;
            // Bypass the HTTP cache: the revision says the file changed.
            const res = mine || (await fetch(url, { cache: 'reload' }));
            if (!res.ok) throw new Error(`precache: ${url} answered ${res.status}`);
            await cache.put(key, res);
          } catch (err) {
            failed = failed || err;
          }
        }
      };
      await Promise.all(Array.from({ length: PRECACHE_PARALLEL }, lane));
      if (failed) throw failed;
    }),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    init().then(async (sw) => {
      const cache = await caches.open(precacheName);
      const [, stale, gone] = sw.precache_plan(await keysOf(cache), await caches.keys());
      for (const key of stale) await cache.delete(key);
      for (const name of gone) await caches.delete(name);
      started = null; // Not precached by an install (it was cached already): let it go.
      await clients.claim();
    }),
  );
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

// Notifications: Rust decides what to show and what a click does (pwa/src/notify.rs); the
// platform calls are made here (as wasm bindings they cost ~1.3 KB gzip of the budget).
self.addEventListener('push', (event) => {
  keepAlive(
    event,
    init()
      .then((sw) => sw.on_push(event))
      .then((n) => self.registration.showNotification(n.title, { body: n.body, icon: n.icon, tag: n.tag, data: { url: n.url } })),
  );
});

self.addEventListener('notificationclick', (event) => {
  const { notification } = event;
  notification.close();
  keepAlive(
    event,
    init().then(async (sw) => {
      const windows = await clients.matchAll({ type: 'window', includeUncontrolled: true });
      const [action, i, url] = sw.on_notification_click(windows.map((w) => w.url), notification.data && notification.data.url);
      if (action === 'focus') return windows[i].focus();
      // An uncontrolled tab cannot be steered (navigate rejects or gives null): open instead.
      const steered = action === 'navigate' && (await windows[i].navigate(url).catch(() => null));
      return steered ? steered.focus() : clients.openWindow(url);
    }),
  );
});
