// edgeflags page-side helper: registers the service worker and exposes its state — updates
// (a waiting version activates only when the user agrees; then every open tab reloads once)
// and the outbox of writes made offline.
//
//   import { registerServiceWorker } from '/sw/register.js';
//   const sw = await registerServiceWorker({
//     onUpdate: (apply) => showBanner(() => apply()),   // call apply() on consent
//     onOutbox: ({ count, entries, held }) => render(count, held), // at start, after every change
//     onMessage: (msg) => {},                             // every message from the worker
//   });
//   await sw.outbox();  await sw.replay();  await sw.flags();  await sw.checkForUpdate();
//   await sw.retry(id);  await sw.discard(id);           // decide on a held write
//
//   import { subscribePush } from '/sw/register.js';
//   const { ok, reason } = await subscribePush();        // on a user gesture: Web Push

/**
 * The worker's outbox state as the app sees it: `entries` still to be sent, `held` those
 * waiting for the app's decision (the worker lists both in `entries`, held ones with `held`).
 */
function split(state) {
  if (!state || !Array.isArray(state.entries)) return state;
  return { ...state, entries: state.entries.filter((e) => !e.held), held: state.entries.filter((e) => e.held) };
}

/** Sends `msg` to a worker and resolves with its answer (over a MessageChannel). */
function ask(worker, msg) {
  return new Promise((resolve, reject) => {
    if (!worker) {
      reject(new Error('no active service worker'));
      return;
    }
    const channel = new MessageChannel();
    channel.port1.onmessage = (event) => resolve(event.data);
    worker.postMessage(msg, [channel.port2]);
  });
}

/**
 * Registers the edgeflags service worker.
 * @param {{url?: string, type?: 'classic'|'module', onUpdate?: (apply: () => void) => void,
 *          onState?: (state: string) => void, onOutbox?: (state: object) => void,
 *          onMessage?: (msg: object) => void}} options
 */
export async function registerServiceWorker(options = {}) {
  const { url = '/sw.js', type = 'classic', onUpdate, onState = () => {}, onOutbox, onMessage } = options;
  if (!('serviceWorker' in navigator)) {
    onState('unsupported');
    return null;
  }
  const container = navigator.serviceWorker;
  const firstVisit = !container.controller;

  container.addEventListener('message', (event) => {
    const msg = event.data || {};
    if (msg.type === 'edgeflags:outbox' && onOutbox) onOutbox(split(msg));
    if (onMessage) onMessage(msg);
  });
  container.startMessages();

  const reg = await container.register(url, { type, scope: '/' });
  const target = () => container.controller || reg.active;

  let waiting = null;
  const offerUpdate = (worker) => {
    if (waiting === worker) return;
    waiting = worker;
    onState('update-waiting');
    if (onUpdate) onUpdate(() => worker.postMessage({ type: 'SKIP_WAITING' }));
  };
  if (reg.waiting && container.controller) offerUpdate(reg.waiting);
  reg.addEventListener('updatefound', () => {
    const worker = reg.installing;
    if (!worker) return;
    onState('installing');
    worker.addEventListener('statechange', () => {
      if (worker.state === 'installed') {
        if (container.controller) offerUpdate(worker);
        else onState('installed');
      }
    });
  });

  // A new version taking over reloads the page once — in every tab, since each runs this.
  // The first install taking control of an uncontrolled page is not an update.
  let controller = container.controller;
  let reloading = false;
  container.addEventListener('controllerchange', () => {
    const previous = controller;
    controller = container.controller;
    if (!previous || reloading) return;
    reloading = true;
    window.location.reload();
  });

  // Writes queued offline go out as soon as the page sees the network again (the worker's
  // `sync` event usually fires too; both share one replay).
  window.addEventListener('online', () => {
    const w = target();
    if (w) w.postMessage({ type: 'edgeflags:online' });
  });

  await container.ready;
  // On a first visit the worker did not see this page's HTML: hand it the flag bootstrap.
  const bootstrap = document.getElementById('edgeflags-bootstrap');
  if (firstVisit && bootstrap && reg.active) {
    reg.active.postMessage({ type: 'edgeflags:bootstrap', bootstrap: bootstrap.textContent });
  }
  onState('ready');
  // Writes held for the app (refused, redirected, out of retries) while no page was open:
  // the page learns of them now.
  if (onOutbox) {
    ask(target(), { type: 'edgeflags:outbox-state' }).then((s) => onOutbox(split(s)), () => {});
  }

  return {
    registration: reg,
    /** Whether a new version waits for consent. */
    get updateWaiting() {
      return Boolean(reg.waiting && container.controller);
    },
    /** Activates the waiting version (every tab then reloads once). */
    applyUpdate() {
      if (reg.waiting) reg.waiting.postMessage({ type: 'SKIP_WAITING' });
    },
    /** Asks the browser to look for a new version now. */
    checkForUpdate: () => reg.update(),
    /**
     * The outbox: `{count, entries, held}` — `entries` still to be sent, `held` waiting for
     * the app (`held`: 'answer' | 'retries' | 'retention'; `lastStatus`). Each
     * `{id, queue, method, url, idempotencyKey, queuedAt, attempts, serverFailures, ...}`.
     */
    outbox: () => ask(target(), { type: 'edgeflags:outbox-state' }).then(split),
    /** Sends a held write again (fresh retry budget; it keeps its key), then the outbox state. */
    retry: (id) => ask(target(), { type: 'edgeflags:outbox-retry', id }).then(split),
    /** Deletes a held write for good; then the outbox state. */
    discard: (id) => ask(target(), { type: 'edgeflags:outbox-discard', id }).then(split),
    /** Replays the outbox now; resolves with its state afterwards. */
    replay: () => ask(target(), { type: 'edgeflags:replay' }).then(split),
    /** What the worker keeps for offline flags. */
    flags: () => ask(target(), { type: 'edgeflags:flags-state' }),
  };
}

/** base64url (no padding) → bytes. */
function base64urlBytes(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * Web Push, as the edge delivers it (README "Notifications"): asks for permission, subscribes
 * with the edge's VAPID public key and registers the subscription with the edge, which ties it
 * to this visitor's identity (so flag audiences can pick it). Call it from a user gesture.
 * Resolves with `{ok, status?, reason?}`: `reason` is `unsupported`, the permission when not
 * `granted`, or `no-key` when the edge has no VAPID key configured.
 */
export async function subscribePush({ prefix = '/__edge' } = {}) {
  if (!('serviceWorker' in navigator) || !('PushManager' in self) || !('Notification' in self)) {
    return { ok: false, reason: 'unsupported' };
  }
  const permission = await Notification.requestPermission();
  if (permission !== 'granted') return { ok: false, reason: permission };
  const keyRes = await fetch(`${prefix}/push/vapid-public-key`);
  if (!keyRes.ok) return { ok: false, status: keyRes.status, reason: 'no-key' };
  const { publicKey } = await keyRes.json();
  const registration = await navigator.serviceWorker.ready;
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: base64urlBytes(publicKey),
  });
  const res = await fetch(`${prefix}/push/subscriptions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(subscription),
  });
  return { ok: res.ok, status: res.status };
}
