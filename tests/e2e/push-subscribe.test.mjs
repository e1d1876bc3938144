// The demo's "Enable notifications" button in Chromium (issue 16): the page-side helper asks
// for permission, subscribes with the edge's VAPID key and registers the subscription with the
// edge. Chromium's pushManager.subscribe needs a vendor push service, so the test stands in for
// it (and checks the key it is given); the endpoint is on loopback where nothing listens, and
// nothing is sent.
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { launchBrowser } from './browser.mjs';
import { makeVapidKeys } from './push-service.mjs';
import { openApp, startPwaStack } from './pwa-stack.mjs';

const vapid = makeVapidKeys();

describe('Web Push subscription from the demo app', () => {
  let stack;
  let browser;
  before(async () => {
    stack = await startPwaStack({
      vars: {
        VAPID_PUBLIC_KEY: vapid.publicKey,
        VAPID_PRIVATE_KEY: vapid.privateKey,
        VAPID_SUBJECT: 'mailto:ops@example.test',
        PUSH_ENDPOINT_HOSTS: '127.0.0.1',
      },
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('the button subscribes with the edge\'s VAPID key and the edge stores the subscription', async () => {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const fake = {
      endpoint: 'http://127.0.0.1:9/push/e2e-subscription',
      expirationTime: null,
      keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') },
    };
    const context = await browser.newContext();
    try {
      await context.grantPermissions(['notifications'], { origin: stack.edgeUrl });
      await context.addInitScript((sub) => {
        // The vendor push service's part: remember the key we were given, hand out a subscription.
        PushManager.prototype.subscribe = async function (options) {
          const key = new Uint8Array(options.applicationServerKey);
          window.__pushKey = btoa(String.fromCharCode(...key)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
          return { ...sub, toJSON: () => sub };
        };
      }, fake);
      const page = await openApp(context, `${stack.edgeUrl}/`);
      await page.click('#push-subscribe');
      // The page says how it ended (the edge's status when it refused).
      await page.waitForFunction(() => !['', '…'].includes(document.getElementById('push-state').textContent));
      assert.equal(await page.textContent('#push-state'), 'subscribed');
      assert.equal(await page.evaluate(() => window.__pushKey), vapid.publicKey, 'subscribed with the edge\'s VAPID key');
      // Stored: subscribing the same endpoint again updates it rather than failing.
      const again = await fetch(`${stack.edgeUrl}/__edge/push/subscriptions`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(fake),
      });
      assert.ok(again.ok, `${again.status}`);
    } finally {
      await context.close();
    }
  });
});
