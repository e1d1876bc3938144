// Demo front end: shows which backend version and edge served the page, the service-worker
// state, and the orders API. Everything here is plain browser code; the logic under test
// lives in the edge worker and the Rust service worker.
import { registerServiceWorker } from '/sw/register.js';

const $ = (id) => document.getElementById(id);

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
  await fetch('/api/orders', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ item: form.get('item'), quantity: Number(form.get('quantity')) }),
  }).catch(() => {});
  event.target.reset();
  showOrders();
});

function showNetwork() {
  $('network').textContent = navigator.onLine ? 'online' : 'offline';
}
addEventListener('online', showNetwork);
addEventListener('offline', showNetwork);

showNetwork();
showBackend();
showOrders();
registerServiceWorker({
  onState: (state) => {
    $('sw-state').textContent = state;
    document.documentElement.dataset.sw = state;
  },
  onUpdate: (apply) => {
    if (confirm('A new version of Acme ERP is ready. Reload now?')) apply();
  },
}).catch((err) => {
  $('sw-state').textContent = `failed: ${err.message}`;
});
