// The in-app inbox in Chromium (issue 16), through the edge (workerd) and the demo origin:
// a message sent through the edge's inapp channel shows in the demo's inbox; a push
// delivered by the browser (CDP ServiceWorker.deliverPushMessage) is shown as a notification
// and lands in the inbox at once; offline, the inbox still renders (the last good copy plus
// the pushed item) and a read mark made offline is queued and sent once when back online.
// Also (issue 15): a first install downloads the wasm once, not once to run and once to
// precache. Every wait polls; nothing asserts timings.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ADMIN_TOKEN, waitFor } from './harness.mjs';
import { launchBrowser } from './browser.mjs';
import { openApp, startPwaStack, withServiceWorkerCdp } from './pwa-stack.mjs';

let stack;
let browser;
before(async () => {
  stack = await startPwaStack();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

const LIMIT = { timeout: 180000 };
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

/** The inbox as the demo page shows it: [{id, text, read}] and the unread badge. */
function shownInbox(page) {
  return page.evaluate(() => ({
    unread: Number(document.getElementById('inbox-unread').textContent),
    items: [...document.querySelectorAll('#inbox-list li')].map((li) => ({
      id: li.dataset.id,
      title: li.querySelector('a').textContent,
      read: li.classList.contains('read'),
    })),
  }));
}

async function waitForInbox(page, what, check) {
  return waitFor(async () => {
    const shown = await shownInbox(page);
    return check(shown) ? shown : null;
  }, { what, timeoutMs: 30000, intervalMs: 100 });
}

/** Delivers a push message to the page's service worker, as the browser would. */
function deliverPush(page, payload) {
  return withServiceWorkerCdp(page, (session, { registrations }) =>
    session.send('ServiceWorker.deliverPushMessage', {
      origin: new URL(stack.edgeUrl).origin,
      registrationId: registrations[0].registrationId,
      data: JSON.stringify(payload),
    }),
  );
}

const notifications = (page) =>
  page.evaluate(async () =>
    (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, tag: n.tag, url: n.data?.url })),
  );

describe('in-app inbox in the demo app', () => {
  test('an inapp message shows in the inbox; a pushed one is shown and lands there too; offline both stay readable and a read mark is sent once back online', LIMIT, async () => {
    const context = await browser.newContext();
    try {
      await context.grantPermissions(['notifications'], { origin: stack.edgeUrl });
      const page = await openApp(context, `${stack.edgeUrl}/`);
      const uid = (await context.cookies(stack.edgeUrl)).find((c) => c.name === 'ef_uid')?.value;
      assert.ok(uid, 'the edge gave this browser a visitor id');

      // The real path: the edge's inapp channel, to this visitor.
      const res = await fetch(`${stack.edgeUrl}/__edge/notifications`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({
          title: 'Invoice ready', body: 'Invoice 7 is ready.', url: '/?invoice=7', tag: 'invoice-7',
          channels: ['inapp'], audience: { targetingKeys: [uid] },
        }),
      });
      const sent = await res.json();
      assert.equal(res.status, 202, JSON.stringify(sent));
      await page.reload();
      await waitForInbox(page, 'the inapp message in the inbox', (s) => s.items.some((i) => i.id === sent.id));

      // A push of an inbox item (`"inbox": true`: sent on inapp too) the edge's inbox does
      // not list yet: the worker keeps it until a copy does.
      const pushed = { id: 'push-e2e-1', inbox: true, title: 'Order shipped', body: '#12 is on its way', tag: 'order-12', url: '/?order=12' };
      await deliverPush(page, pushed);
      await waitFor(async () => (await notifications(page)).length === 1, { what: 'the notification' });
      assert.deepEqual(await notifications(page), [{ title: 'Order shipped', tag: 'order-12', url: `${stack.edgeUrl}/?order=12` }]);
      // The worker told the page, which read the inbox again: the pushed item is listed first.
      const online = await waitForInbox(page, 'the pushed item in the inbox', (s) => s.items.length === 2);
      assert.deepEqual(online, {
        unread: 2,
        items: [
          { id: 'push-e2e-1', title: 'Order shipped', read: false },
          { id: sent.id, title: 'Invoice ready', read: false },
        ],
      });
      // A push-only message (no `inbox` mark: the edge's inbox will never list it) is shown
      // but is no inbox item. The worker keeps an item before it shows the notification,
      // so once the notification is there the worker has handled the push.
      await deliverPush(page, { id: 'push-only-1', title: 'Flash sale', tag: 'sale' });
      await waitFor(async () => (await notifications(page)).length === 2, { what: 'the push-only notification' });
      await page.reload();
      const afterPushOnly = await waitForInbox(page, 'the inbox after a push-only message', (s) => s.items.length >= 2);
      assert.deepEqual(afterPushOnly, online, 'a push-only message is not in the inbox');

      // The same item pushed again (another tag, so its notification shows that the worker
      // handled this push too) is still one item.
      await deliverPush(page, { ...pushed, tag: 'order-12-again' });
      await waitFor(async () => (await notifications(page)).length === 3, { what: 'the repeated push to be handled' });
      await page.reload();
      assert.deepEqual(await waitForInbox(page, 'the inbox after a repeated push', (s) => s.items.length >= 2), online);

      // Offline: a reload renders the app from the precache and the inbox from the worker
      // (the last good copy of the edge's inbox plus the pushed item).
      await context.setOffline(true);
      await page.reload();
      const offline = await waitForInbox(page, 'the inbox offline', (s) => s.items.length === 2);
      assert.deepEqual(offline, online);

      // A read mark made offline is queued (202) and already counted by the worker's inbox.
      await page.click(`#inbox-list li[data-id="${sent.id}"] button`);
      await waitForInbox(page, 'the read mark offline', (s) => s.unread === 1);
      await page.waitForFunction(() => document.getElementById('inbox-status').textContent.startsWith('Marked read offline'));
      await page.reload();
      const afterReload = await waitForInbox(page, 'the inbox offline after a reload', (s) => s.items.length === 2);
      assert.deepEqual(afterReload.items.map((i) => [i.id, i.read]), [['push-e2e-1', false], [sent.id, true]]);

      // Back online the outbox sends it: the edge has it read, and the outbox is empty.
      // Playwright lifts the offline emulation from the page and from the worker one after
      // the other, so the replay that going online triggers (sync, the page's `online`) can
      // meet a network error and then waits for the next trigger (Chromium retries sync
      // after minutes): the wait also asks for a replay (the demo's "Send now") each round.
      // Replays are exactly once whatever their number (tests/e2e/pwa.test.mjs).
      await context.setOffline(false);
      const edgeInbox = () =>
        fetch(`${stack.edgeUrl}/__edge/inbox`, { headers: { cookie: `ef_uid=${uid}` } }).then((r) => r.json());
      await waitFor(
        async () => {
          if ((await edgeInbox()).items.find((i) => i.id === sent.id)?.read === true) return true;
          await page.click('#outbox-replay');
          return false;
        },
        { what: 'the read mark to reach the edge', timeoutMs: 60000, intervalMs: 250 },
      );
      await waitFor(async () => (await page.evaluate(() => window.edgeflagsSW.outbox())).count === 0, {
        what: 'the outbox to drain',
      });
      assert.equal((await edgeInbox()).unread, 0);
    } finally {
      await context.close();
    }
  });
});

describe('first install', () => {
  test('a first install downloads the wasm once (runs it and precaches the same response)', LIMIT, async () => {
    const context = await browser.newContext();
    try {
      const wasm = [];
      context.on('request', (req) => {
        if (new URL(req.url()).pathname.endsWith('.wasm')) wasm.push(req.url());
      });
      const page = await openApp(context, `${stack.edgeUrl}/`);
      const precached = await page.evaluate(async () => {
        const cache = await caches.open('edgeflags-precache-v1');
        return (await cache.keys()).map((r) => new URL(r.url).pathname).filter((p) => p.endsWith('.wasm'));
      });
      assert.equal(precached.length, 1, 'the wasm is precached');
      assert.deepEqual(wasm.map((u) => new URL(u).pathname), precached, 'requested once, by the worker');
    } finally {
      await context.close();
    }
  });
});
