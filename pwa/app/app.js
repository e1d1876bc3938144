// Demo front end: which backend version and edge served the page, the service-worker state
// (update banner, outbox of orders made offline), the orders API and the flags this visitor
// gets. Plain browser code; the logic under test lives in the edge worker and the Rust
// service worker.
import { registerServiceWorker, subscribePush } from '/sw/register.js';

const $ = (id) => document.getElementById(id);
let sw = null;

async function showBackend() {
  try {
    const res = await fetch('/api/version', { headers: { accept: 'application/json' } });
    const body = await res.json();
    $('backend-version').textContent = `${body.version} (${body.channel})`;
    $('edge').textContent = res.headers.get('x-edgeflags') || 'not through the edge';
  } catch (err) {
    $('backend-version').textContent = 'unreachable (offline?)';
  }
}

async function showOrders() {
  const list = $('order-list');
  try {
    const res = await fetch('/api/orders');
    const body = await res.json();
    list.replaceChildren(
      ...body.orders.map((o) => {
        const li = document.createElement('li');
        li.textContent = `#${o.id} ${o.item} × ${o.quantity}` + (o.etaDays ? ` — ETA ${o.etaDays} days` : '');
        return li;
      }),
    );
  } catch (err) {
    list.replaceChildren(Object.assign(document.createElement('li'), { textContent: 'Orders unavailable offline.' }));
  }
}

$('new-order').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const status = $('order-status');
  try {
    const res = await fetch('/api/orders', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ item: form.get('item'), quantity: Number(form.get('quantity')) }),
    });
    const body = await res.json();
    if (res.status === 202 && body.queued) {
      status.className = 'queued';
      status.textContent = `Saved offline — number ${body.position} in the outbox; it is sent when the network is back.`;
    } else if (res.ok) {
      status.className = '';
      status.textContent = `Order #${body.id} created.`;
      // A conversion for the edge's experiment results (OpenFeature tracking shape; the
      // edge's visitor cookie is the unit, as for this visitor's flag exposures).
      fetch('/__edge/events', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ trackingEventName: 'checkout-completed', trackingEventDetails: { value: Number(form.get('quantity')) } }),
      }).catch(() => {});
    } else {
      status.className = '';
      status.textContent = `Refused: ${body.error || res.status}`;
    }
  } catch (err) {
    status.textContent = `Could not save the order: ${err.message}`;
  }
  event.target.reset();
  showOrders();
});

// The in-app inbox: the edge's GET /__edge/inbox, which the service worker answers with the
// last good copy offline, plus the items pushed to this browser and the read marks still in
// its outbox. A read mark is a POST the worker queues when offline (sent exactly once later).
async function showInbox() {
  const list = $('inbox-list');
  try {
    const res = await fetch('/__edge/inbox', { headers: { accept: 'application/json' } });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const { items = [], unread = 0 } = await res.json();
    $('inbox-unread').textContent = String(unread);
    document.documentElement.dataset.inboxUnread = String(unread);
    $('inbox-status').textContent = items.length ? '' : 'No messages.';
    list.replaceChildren(
      ...items.map((item) => {
        const li = document.createElement('li');
        li.dataset.id = item.id;
        li.className = item.read ? 'read' : 'unread';
        const link = Object.assign(document.createElement('a'), { href: item.url || '/', textContent: item.title || '(no title)' });
        li.append(link);
        if (item.body) li.append(` — ${item.body}`);
        if (!item.read) {
          const button = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Mark read' });
          button.addEventListener('click', () => markRead(item.id));
          li.append(button);
        }
        return li;
      }),
    );
  } catch (err) {
    $('inbox-status').textContent = `Inbox unavailable (${err.message}).`;
  }
}

async function markRead(id) {
  let note = '';
  try {
    const res = await fetch(`/__edge/inbox/${encodeURIComponent(id)}/read`, { method: 'POST' });
    if (res.status === 202) note = 'Marked read offline; the edge is told when the network is back.';
    else if (!res.ok) note = `Could not mark read: HTTP ${res.status}`;
  } catch (err) {
    note = `Could not mark read: ${err.message}`;
  }
  await showInbox();
  if (note) $('inbox-status').textContent = note;
}

// Flags: the edge's bootstrap first (no flicker), then a fresh OFREP evaluation — which the
// service worker answers from its snapshot and the client-side definitions when offline.
function renderFlags(items, source) {
  $('flag-rows').replaceChildren(
    ...items.map((f) => {
      const tr = document.createElement('tr');
      tr.dataset.flag = f.key;
      for (const text of [f.key, f.variant ?? (f.errorCode ? `error: ${f.errorCode}` : 'code default'), f.reason ?? '', source]) {
        tr.appendChild(Object.assign(document.createElement('td'), { textContent: text }));
      }
      return tr;
    }),
  );
}

async function showFlags() {
  const bootstrap = $('edgeflags-bootstrap');
  if (bootstrap) renderFlags(JSON.parse(bootstrap.textContent).flags, 'bootstrap');
  try {
    const res = await fetch('/ofrep/v1/evaluate/flags', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { appVersion: '2.1.0' } }),
    });
    if (!res.ok) return;
    const body = await res.json();
    renderFlags(body.flags, res.headers.get('x-edgeflags-offline') ? 'service worker (offline)' : 'edge (OFREP)');
  } catch (_) {
    // Offline before the service worker kept anything: the bootstrap stays.
  }
}

function showNetwork() {
  $('network').textContent = navigator.onLine ? 'online' : 'offline';
}
addEventListener('online', showNetwork);
addEventListener('offline', showNetwork);

$('outbox-replay').addEventListener('click', async () => {
  if (sw) await sw.replay().catch(() => {});
});
$('update-apply').addEventListener('click', () => {
  if (sw) sw.applyUpdate();
});

showNetwork();
showBackend();
showOrders();
showInbox();
showFlags();
registerServiceWorker({
  onState: (state) => {
    $('sw-state').textContent = state;
    document.documentElement.dataset.sw = state;
  },
  // Consent: the banner's button activates the new version (every tab then reloads once).
  onUpdate: () => {
    $('update-banner').hidden = false;
  },
  // Also called once at start: writes held while no page was open are shown then.
  onOutbox: ({ count, held = [] }) => {
    $('outbox-count').textContent = String(count);
    document.documentElement.dataset.outbox = String(count);
    document.documentElement.dataset.outboxHeld = String(held.length);
    if (held.length) {
      const why = held.map((e) => (e.held === 'answer' ? `HTTP ${e.lastStatus || 'redirect'}` : e.held));
      $('order-status').textContent = `${held.length} offline write(s) need attention (${why.join(', ')}).`;
    }
  },
  onMessage: (msg) => {
    if (msg.type === 'edgeflags:outbox-sent') {
      showOrders();
      showInbox();
    }
    // A pushed message was added to the inbox.
    if (msg.type === 'edgeflags:inbox') showInbox();
  },
})
  .then((registered) => {
    sw = registered;
    // For the console (and the end-to-end tests): the page-side helper.
    window.edgeflagsSW = sw;
    // The helper reports the outbox once it is ready (onOutbox above).
  })
  .catch((err) => {
    $('sw-state').textContent = `failed: ${err.message}`;
  });

// Web Push: subscribe on a click (browsers ask for permission only on a user gesture).
$('push-subscribe').addEventListener('click', async () => {
  $('push-state').textContent = '…';
  try {
    const { ok, status, reason } = await subscribePush();
    $('push-state').textContent = ok ? 'subscribed' : `not subscribed (${reason || status})`;
  } catch (err) {
    $('push-state').textContent = `not subscribed (${err.message})`;
  }
});
