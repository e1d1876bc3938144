// Notification measurement end to end (issue 16, "Measured"): workerd through wrangler dev
// with its local Queues and Durable Objects, the loopback push service (./push-service.mjs)
// answering 201 / 500 / 410 as scripted, and the cron trigger (--test-scheduled,
// GET /__scheduled). Exact counts in /__edge/metrics and the experiment results, also when
// the metrics store's acknowledgements are lost (re-sent batches); and a guarded rollout
// with rollout.minDeliverySuccess that holds while the push channel fails. Every wait polls;
// nothing asserts timings.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { ADMIN_TOKEN, DEMO_FLAGS, startStack, waitFor } from './harness.mjs';
import { makeVapidKeys, startPushService } from './push-service.mjs';
import { startEmailService } from './email-service.mjs';

const LIMIT = { timeout: 180000 };
const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
const visitorId = (n) => n.toString(16).padStart(32, '0');

function vars(vapid, extra = {}) {
  return {
    VAPID_PUBLIC_KEY: vapid.publicKey,
    VAPID_PRIVATE_KEY: vapid.privateKey,
    VAPID_SUBJECT: 'mailto:ops@example.test',
    PUSH_ENDPOINT_HOSTS: '127.0.0.1',
    PUSH_SHARDS: '2',
    PUSH_RETRY_BASE_SECONDS: '0',
    PUSH_MAX_ATTEMPTS: '2',
    ...extra,
  };
}

/** Helpers bound to one stack and push service. */
function client(stack, push) {
  const call = async (method, path, body) => {
    const res = await fetch(`${stack.edgeUrl}/__edge${path}`, {
      method, headers: admin, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* Prometheus text */ }
    return { status: res.status, text, json };
  };
  return {
    call,
    async subscribe(who, name) {
      const res = await fetch(`${stack.edgeUrl}/__edge/push/subscriptions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie: `ef_uid=${who}` },
        body: JSON.stringify(push.subscribe(name)),
      });
      assert.equal(res.status, 201, await res.clone().text());
    },
    async send(title, targetingKeys) {
      const r = await call('POST', '/notifications', { title, body: 'b', channels: ['push'], audience: { targetingKeys } });
      assert.equal(r.status, 202, r.text);
      return r.json.id;
    },
    /** Polls the notification's status until nothing is queued; returns its push counts. */
    async settled(id) {
      return waitFor(async () => {
        const r = await call('GET', `/notifications/${id}`);
        assert.equal(r.status, 200, r.text);
        return r.json.channels.push.queued === 0 ? r.json.channels.push : null;
      }, { what: `notification ${id} to settle`, timeoutMs: 60000, intervalMs: 200 });
    },
    /** `edgeflags_notifications_total` of the push channel: {outcome: n}. */
    async pushCounts() {
      const r = await call('GET', '/metrics');
      assert.equal(r.status, 200, r.text);
      const counts = {};
      for (const m of r.text.matchAll(/^edgeflags_notifications_total\{channel="push",outcome="([a-z]+)"\} (\d+)$/gm)) {
        counts[m[1]] = Number(m[2]);
      }
      const ratio = r.text.match(/^edgeflags_notification_delivery_success_ratio\{channel="push"\} (\S+)$/m);
      return { counts, ratio: ratio ? Number(ratio[1]) : null, text: r.text };
    },
    async cron() {
      const res = await fetch(`${stack.edgeUrl}/__scheduled?cron=${encodeURIComponent('* * * * *')}`);
      assert.equal(res.status, 200, await res.text());
    },
  };
}

describe('notification metrics', () => {
  const vapid = makeVapidKeys();
  let push;
  let stack;
  let c;
  before(async () => {
    push = await startPushService({ vapidPublicKey: vapid.publicKey });
    // Every second batch the metrics store applies, its answer is "lost" (test-only fault):
    // the worker re-sends those batches with their ids, and nothing may count twice.
    stack = await startStack({ vars: vars(vapid, { METRICS_FAULT_LOSE_ACK_EVERY: '2' }) });
    c = client(stack, push);
  });
  after(async () => {
    await stack?.stop();
    await push?.close();
  });

  test('201, 500-then-201, 410 and 500-until-dead-lettered: exact counts in /__edge/metrics and the results', LIMIT, async () => {
    const who = { ok: visitorId(1), flaky: visitorId(2), gone: visitorId(3), down: visitorId(4) };
    for (const [name, id] of Object.entries(who)) await c.subscribe(id, name);
    push.script('flaky', [500, 201]);
    push.script('gone', [410]);
    push.script('down', [500, 500]);
    const id = await c.send('Measured', Object.values(who));
    const s = await c.settled(id);
    assert.deepEqual([s.delivered, s.failed, s.gone, s.retried], [2, 1, 1, 2], JSON.stringify(s));

    const expected = { delivered: 2, failed: 1, gone: 1, retried: 2, dropped: 0 };
    // The queue handler flushes at the end of each batch; the store may have lost (and the
    // worker re-sent) some answers: poll until the totals arrive.
    await waitFor(async () => {
      const { counts } = await c.pushCounts();
      return JSON.stringify(counts) === JSON.stringify(expected);
    }, { what: 'the push counts to reach the metrics store', timeoutMs: 30000, intervalMs: 300 });

    // A later delivery arrives; the earlier counts have not grown (nothing counted twice,
    // neither the re-sent metric batches nor the queue's redelivered retries).
    const sentinel = await c.send('Sentinel', [who.ok]);
    await c.settled(sentinel);
    await waitFor(async () => (await c.pushCounts()).counts.delivered === 3, {
      what: 'the sentinel delivery to be counted', timeoutMs: 30000, intervalMs: 300,
    });
    const { counts, ratio, text } = await c.pushCounts();
    assert.deepEqual(counts, { ...expected, delivered: 3 });
    assert.equal(ratio, 3 / 4, 'delivered / (delivered + failed): gone and retried are not failures');
    assert.match(text, /^# TYPE edgeflags_notifications_total counter$/m);
    assert.match(text, /^edgeflags_notifications_total\{channel="email",outcome="failed"\} 0$/m, 'every channel is shown');
    const duplicates = Number(text.match(/^edgeflags_metric_duplicate_batches_total (\d+)$/m)[1]);
    assert.ok(duplicates > 0, 're-sent batches were recognised');

    const results = await c.call('GET', '/features/experiments/results');
    assert.equal(results.status, 200, results.text);
    const pushResult = results.json.notifications.find((n) => n.channel === 'push');
    assert.deepEqual(
      [pushResult.delivered, pushResult.failed, pushResult.gone, pushResult.retried, pushResult.deliverySuccess],
      [3, 1, 1, 2, 0.75],
      JSON.stringify(pushResult),
    );
    assert.equal(results.json.notifications.find((n) => n.channel === 'email').deliverySuccess, null);
  });

  test('metrics need the admin token', async () => {
    assert.equal((await fetch(`${stack.edgeUrl}/__edge/metrics`)).status, 401);
  });
});

describe('in-app and e-mail counts', () => {
  let email;
  let stack;
  before(async () => {
    email = await startEmailService();
    stack = await startStack({
      vars: vars(makeVapidKeys(), {
        EMAIL_API_URL: email.url,
        EMAIL_API_HOSTS: '127.0.0.1',
        EMAIL_FROM: 'shop@example.test',
        EMAIL_API_AUTH: 'Bearer e2e-mail-key',
        PUSH_MAX_ATTEMPTS: '3',
      }),
    });
  });
  after(async () => {
    await stack?.stop();
    await email?.close();
  });

  test('exact edgeflags_notifications_total for inapp (fetched, read) and email (500 then 202)', LIMIT, async () => {
    const c = client(stack, null);
    const [a, b] = [visitorId(0x51), visitorId(0x52)];
    const address = (who) => `${who.slice(-4)}@mail.example.test`;
    for (const who of [a, b]) {
      const r = await c.call('PUT', '/notifications/contacts', { targetingKey: who, email: address(who) });
      assert.equal(r.status, 204, r.text);
    }
    email.script(address(b), [500, 202]);
    const sent = await c.call('POST', '/notifications', {
      title: 'Counted', body: 'b', channels: ['inapp', 'email'], audience: { targetingKeys: [a, b] },
    });
    assert.equal(sent.status, 202, sent.text);
    const id = sent.json.id;
    const s = await waitFor(async () => {
      const r = await c.call('GET', `/notifications/${id}`);
      return r.json.channels.email.queued === 0 ? r.json.channels.email : null;
    }, { what: 'the e-mails to settle', timeoutMs: 60000, intervalMs: 200 });
    assert.deepEqual([s.delivered, s.failed, s.retried], [2, 0, 1]);
    // In-app: each visitor's first fetch is a delivery (a second is not); one is read.
    const box = (who) => fetch(`${stack.edgeUrl}/__edge/inbox`, { headers: { cookie: `ef_uid=${who}` } });
    for (const who of [a, b, a]) assert.equal((await box(who)).status, 200);
    const read = await fetch(`${stack.edgeUrl}/__edge/inbox/${id}/read`, { method: 'POST', headers: { cookie: `ef_uid=${a}` } });
    assert.equal(read.status, 204);

    const counts = async (channel) => {
      const r = await c.call('GET', '/metrics');
      assert.equal(r.status, 200, r.text);
      const out = {};
      const re = new RegExp(`^edgeflags_notifications_total\\{channel="${channel}",outcome="([a-z]+)"\\} (\\d+)$`, 'gm');
      for (const m of r.text.matchAll(re)) out[m[1]] = Number(m[2]);
      return out;
    };
    const inapp = { delivered: 2, failed: 0, gone: 0, retried: 0, dropped: 0, read: 1 };
    const mail = { delivered: 2, failed: 0, gone: 0, retried: 1, dropped: 0 };
    await waitFor(async () => JSON.stringify(await counts('inapp')) === JSON.stringify(inapp)
      && JSON.stringify(await counts('email')) === JSON.stringify(mail), {
      what: 'the in-app and e-mail counts to reach the metrics store', timeoutMs: 30000, intervalMs: 300,
    });
    assert.deepEqual(await counts('inapp'), inapp);
    assert.deepEqual(await counts('email'), mail);
  });
});

describe('rollout.minDeliverySuccess', () => {
  const PLAN = {
    'rollout.stages': '50,100',
    'rollout.control': 'v1',
    'rollout.treatment': 'v2',
    'rollout.minDurationSeconds': 0,
    'rollout.minSample': 30,
    // Far-apart rates: the sequential test accepts a clean canary after ~18 visitors.
    'rollout.advanceErrorRate': 0.05,
    'rollout.rollbackErrorRate': 0.2,
    'rollout.minDeliverySuccess': 0.99,
    'rollout.deliveryChannel': 'push',
  };

  function withPlan(plan) {
    const doc = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
    const meta = doc.flags.backend.metadata;
    for (const k of Object.keys(meta)) if (k.startsWith('rollout.')) delete meta[k];
    Object.assign(meta, plan);
    return doc;
  }

  test('the write API refuses a bad minDeliverySuccess at its JSON path', LIMIT, async () => {
    const vapid = makeVapidKeys();
    const stack = await startStack({ vars: vars(vapid) });
    try {
      const doc = withPlan({ ...PLAN, 'rollout.minDeliverySuccess': 99, 'rollout.deliveryChannel': 'sms' });
      const res = await fetch(`${stack.edgeUrl}/__edge/flags`, { method: 'PUT', headers: admin, body: JSON.stringify(doc) });
      const text = await res.text();
      assert.equal(res.status, 400, text);
      const { errors } = JSON.parse(text);
      const at = (path, message) => errors.some((e) => e.path === `flags.backend.metadata.rollout.${path}` && message.test(e.message));
      assert.ok(at('minDeliverySuccess', /must be a ratio between 0 and 1/), text);
      assert.ok(at('deliveryChannel', /"sms" is not a channel/), text);
    } finally {
      await stack.stop();
    }
  });

  test('a failing push service holds the rollout (not rolled back), with the reason in the decision log', LIMIT, async () => {
    const vapid = makeVapidKeys();
    const push = await startPushService({ vapidPublicKey: vapid.publicKey });
    const stack = await startStack({ seed: { flags: withPlan(PLAN) }, vars: vars(vapid) });
    try {
      const c = client(stack, push);
      const backend = async () => (await c.call('GET', '/flags')).json.flagSet.flags.backend;
      const weights = (flag) => Object.fromEntries(flag.targeting.fractional.map(([v, w]) => [v, w]));
      await c.cron();
      assert.deepEqual(weights(await backend()), { v1: 50, v2: 50 }, 'the first evaluation starts the plan');

      // A healthy canary, by every other gate.
      let next = 100;
      const visit = async (n) => {
        await Promise.all(Array.from({ length: n }, async () => {
          const res = await fetch(`${stack.edgeUrl}/api/version`, { headers: { cookie: `ef_uid=${visitorId(next++)}` } });
          await res.arrayBuffer();
          assert.equal(res.status, 200);
        }));
      };
      for (let i = 0; i < 4; i++) await visit(50);

      // No delivery settled in the stage yet: no evidence of delivery, no advance.
      let report = (await c.call('POST', '/rollouts/evaluate?dryRun=true')).json.rollouts[0];
      assert.equal(report.decision.action, 'hold', JSON.stringify(report));
      assert.match(report.decision.reason, /no notification delivery on the push channel settled/);

      // The push service fails: one subscription delivered, one refused until dead-lettered.
      await c.subscribe(visitorId(1), 'fine');
      await c.subscribe(visitorId(2), 'broken');
      push.script('broken', [500, 500]);
      const id = await c.send('During the rollout', [visitorId(1), visitorId(2)]);
      const s = await c.settled(id);
      assert.deepEqual([s.delivered, s.failed], [1, 1]);
      await waitFor(async () => {
        const r = (await c.call('POST', '/rollouts/evaluate?dryRun=true')).json.rollouts[0];
        return r.decision.reason.includes('1 failed') && r;
      }, { what: 'the delivery outcomes to reach the controller', timeoutMs: 30000, intervalMs: 300 });

      await c.cron();
      const flag = await backend();
      assert.deepEqual(weights(flag), { v1: 50, v2: 50 }, 'held: neither advanced nor rolled back');
      assert.equal(flag.metadata['rollout.status'] ?? 'running', 'running');
      assert.equal(flag.metadata['rollout.stage'] ?? 0, 0);
      const results = (await c.call('GET', '/features/experiments/results')).json;
      const hold = results.rolloutDecisions.find((d) => d.flag === 'backend' && d.action === 'hold' && !d.dryRun);
      assert.ok(hold, JSON.stringify(results.rolloutDecisions));
      assert.match(hold.reason, /push delivery success 50\.0% \(1 delivered, 1 failed.*\) is below the minimum 99\.0% \(rollout\.minDeliverySuccess\)/);
    } finally {
      await stack.stop();
      await push.close();
    }
  });
});
