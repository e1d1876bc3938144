// Measurement, experiment results and guarded rollouts through the real runtime: workerd
// (wrangler dev --test-scheduled, the SQLite Durable Object, local KV) in front of the demo
// origin on loopback. The cron trigger is fired with GET /__scheduled.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { FlagdCore } from '@openfeature/flagd-core';

import { DEMO_FLAGS, startStack, waitFor } from './harness.mjs';

const LIMIT = { timeout: 180000 };

/** The demo flag set with `backend`'s rollout plan replaced by `plan` (flat metadata). */
function withPlan(plan) {
  const doc = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
  const meta = doc.flags.backend.metadata;
  for (const k of Object.keys(meta)) if (k.startsWith('rollout.')) delete meta[k];
  Object.assign(meta, plan);
  return doc;
}

/** Helpers bound to one stack. */
function client(stack) {
  let nextVisitor = 1;
  const admin = async (method, path, body) => {
    const res = await fetch(`${stack.edgeUrl}/__edge${path}`, {
      method,
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* text answers (metrics, csv) */ }
    return { status: res.status, text, json, headers: res.headers };
  };
  return {
    admin,
    /** `n` fresh visitors GET /api/version, `concurrency` at a time; returns the versions seen. */
    async visit(n, concurrency = 16) {
      const ids = Array.from({ length: n }, () => (nextVisitor++).toString(16).padStart(32, '0'));
      const seen = [];
      let i = 0;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (i < ids.length) {
          const id = ids[i++];
          const res = await fetch(`${stack.edgeUrl}/api/version`, { headers: { cookie: `ef_uid=${id}` } });
          await res.arrayBuffer();
          seen.push({ id, status: res.status, version: res.headers.get('x-app-version') });
        }
      }));
      return seen;
    },
    async cron() {
      const res = await fetch(`${stack.edgeUrl}/__scheduled?cron=${encodeURIComponent('* * * * *')}`);
      assert.equal(res.status, 200, await res.text());
    },
    async backend() {
      const { json } = await admin('GET', '/flags');
      return json.flagSet.flags.backend;
    },
    async metrics() {
      const { status, text, headers } = await admin('GET', '/metrics');
      assert.equal(status, 200, text);
      assert.match(headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
      return parsePrometheus(text);
    },
    async faults(settings) {
      const res = await fetch(`${stack.originV1}/__origin/faults`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings),
      });
      assert.equal(res.status, 200);
    },
  };
}

/** Prometheus text → [{name, labels, value}] (the exposition format's sample lines). */
function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

const sum = (samples, name, where = () => true) =>
  samples.filter((s) => s.name === name && where(s.labels)).reduce((a, s) => a + s.value, 0);

/** The v1/v2 weights of backend's split. */
const weights = (flag) => Object.fromEntries(flag.targeting.fractional.map(([v, w]) => [v, w]));

describe('measurement', () => {
  let stack;
  let c;
  before(async () => {
    stack = await startStack();
    c = client(stack);
  });
  after(async () => stack?.stop());

  test('metrics count every proxied request exactly once under concurrent load, per variant and origin', LIMIT, async () => {
    const N = 450; // more than two batches (200 requests each), and a remainder
    const seen = await c.visit(N, 24);
    assert.equal(seen.length, N);
    const byVersion = { v1: 0, v2: 0 };
    for (const s of seen) byVersion[s.version]++;
    // Batches in flight settle; then the totals must be exact and stay exact.
    await waitFor(async () => sum(await c.metrics(), 'edgeflags_requests_total') === N, {
      what: `edgeflags_requests_total to reach ${N}`, timeoutMs: 15000, intervalMs: 300,
    });
    const m = await c.metrics();
    assert.equal(sum(m, 'edgeflags_requests_total'), N, 'nothing counted twice');
    for (const v of ['v1', 'v2']) {
      assert.equal(sum(m, 'edgeflags_requests_total', (l) => l.flag === 'backend' && l.variant === v), byVersion[v], `requests of variant ${v}`);
      assert.equal(sum(m, 'edgeflags_exposures_total', (l) => l.flag === 'backend' && l.variant === v), byVersion[v], `exposures of ${v}`);
    }
    assert.equal(sum(m, 'edgeflags_request_duration_seconds_count'), N);
    assert.equal(sum(m, 'edgeflags_request_duration_seconds_bucket', (l) => l.le === '+Inf'), N, 'the histogram is cumulative');
    assert.equal(sum(m, 'edgeflags_origin_errors_total'), 0);
    const origin = await (await fetch(`${stack.originV1}/__origin/stats`)).json();
    assert.equal(origin.requests.v1 + origin.requests.v2, N, 'the origin saw the same requests');
  });

  test('a batch whose acknowledgement was lost is re-sent and still counted once', LIMIT, async () => {
    // The store applies every new batch but answers 503 (test-only fault), as if the answer
    // were lost: the worker keeps each batch and re-sends it with the same id.
    const stack = await startStack({ vars: { METRICS_FAULT_LOSE_ACK_EVERY: '1' } });
    try {
      const c = client(stack);
      const N = 450;
      await c.visit(N, 24);
      const settled = (n) => waitFor(async () => {
        const m = await c.metrics();
        return sum(m, 'edgeflags_metric_duplicate_batches_total') > 0 && sum(m, 'edgeflags_requests_total') === n;
      }, { what: `re-sent batches to be recognised and the totals to settle at ${n}`, timeoutMs: 20000, intervalMs: 300 });
      await settled(N);
      // One more request stays pending in the isolate (one record, not yet due); the next
      // read's flush sends it, loses the answer, and the read still answers, with the totals
      // stored so far.
      await c.visit(1);
      const read = await c.admin('GET', '/metrics');
      assert.equal(read.status, 200, read.text);
      await settled(N + 1);
      const m = await c.metrics();
      assert.equal(sum(m, 'edgeflags_requests_total'), N + 1, 'no request counted twice');
      assert.equal(sum(m, 'edgeflags_request_duration_seconds_count'), N + 1);
      const origin = await (await fetch(`${stack.originV1}/__origin/stats`)).json();
      assert.equal(origin.requests.v1 + origin.requests.v2, N + 1, 'the origin saw the same requests');
    } finally {
      await stack.stop();
    }
  });

  test('origin errors count against the variant that failed, even when the stable retry saved the visitor', LIMIT, async () => {
    const before = await c.metrics();
    await c.faults({ v2ErrorPercent: 100 });
    try {
      const seen = await c.visit(100);
      assert.ok(seen.every((s) => s.status === 200 && s.version === 'v1'), 'every visitor was answered by v1');
      const canary = (await (await fetch(`${stack.originV1}/__origin/stats`)).json()).v2InjectedErrors;
      assert.ok(canary > 0, 'some visitors were sent to the failing canary');
      await waitFor(async () => sum(await c.metrics(), 'edgeflags_origin_errors_total') - sum(before, 'edgeflags_origin_errors_total') === canary, {
        what: 'the canary errors to be counted', timeoutMs: 15000, intervalMs: 300,
      });
      const m = await c.metrics();
      assert.equal(
        sum(m, 'edgeflags_origin_errors_total', (l) => l.variant === 'v2') - sum(before, 'edgeflags_origin_errors_total', (l) => l.variant === 'v2'),
        canary,
      );
    } finally {
      await c.faults({ v2ErrorPercent: 0 });
    }
  });

  test('metrics and results need the admin token', async () => {
    for (const path of ['/metrics', '/features/experiments/results']) {
      const res = await fetch(`${stack.edgeUrl}/__edge${path}`);
      assert.equal(res.status, 401, path);
    }
  });
});

describe('experiment results', () => {
  let stack;
  let c;
  const EXPERIMENT = {
    state: 'ENABLED',
    variants: { control: 'control', treatment: 'treatment' },
    defaultVariant: 'control',
    targeting: { fractional: [['control', 50], ['treatment', 50]] },
    metadata: { 'experiment.control': 'control', 'experiment.conversionEvent': 'purchase' },
  };
  before(async () => {
    const doc = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
    doc.flags['checkout-copy'] = EXPERIMENT;
    stack = await startStack({ seed: { flags: doc } });
    c = client(stack);
  });
  after(async () => stack?.stop());

  /** Targeting keys the reference implementation (flagd-core) puts in each variant. */
  function visitorsByVariant(countPerVariant) {
    const core = new FlagdCore(undefined, { debug() {}, info() {}, warn() {}, error() {} });
    core.setConfigurations(JSON.stringify({ flags: { 'checkout-copy': EXPERIMENT } }));
    const flag = core.getFlag('checkout-copy');
    const out = { control: [], treatment: [] };
    for (let i = 0; Object.entries(countPerVariant).some(([v, n]) => out[v].length < n); i++) {
      const key = `user-${i}`;
      const variant = flag.evaluate({ targetingKey: key }, { debug() {}, info() {}, warn() {}, error() {} }).variant;
      if (out[variant].length < countPerVariant[variant]) out[variant].push(key);
    }
    return out;
  }

  const evaluate = (key) =>
    fetch(`${stack.edgeUrl}/ofrep/v1/evaluate/flags/checkout-copy`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ context: { targetingKey: key } }),
    }).then((r) => r.json());

  const track = (events) =>
    fetch(`${stack.edgeUrl}/__edge/events`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }),
    });

  test('conversion rates, intervals, uplift, and a forced wrong split flagged as a sample-ratio mismatch', LIMIT, async () => {
    // A broken split: 160 control units for 40 treatment units where 50/50 was configured.
    // (200 evaluations: the local rate limit allows 300 OFREP calls a minute.)
    const users = visitorsByVariant({ control: 160, treatment: 40 });
    for (const [variant, keys] of Object.entries(users)) {
      for (const key of keys) {
        const answer = await evaluate(key);
        assert.equal(answer.variant, variant, 'the edge and flagd-core agree on the bucket');
      }
    }
    // 16 of 160 control units convert (10 %), 12 of 40 treatment units (30 %); a repeated
    // event by the same unit counts once.
    const events = [
      ...users.control.slice(0, 16).map((k) => ({ trackingEventName: 'purchase', context: { targetingKey: k } })),
      ...users.treatment.slice(0, 12).map((k) => ({ trackingEventName: 'purchase', context: { targetingKey: k }, trackingEventDetails: { value: 10 } })),
      { trackingEventName: 'purchase', context: { targetingKey: users.treatment[0] } },
    ];
    for (let i = 0; i < events.length; i += 50) {
      const res = await track(events.slice(i, i + 50));
      assert.equal(res.status, 202);
    }
    const results = async () => (await c.admin('GET', '/features/experiments/results')).json.experiments.find((e) => e.flag === 'checkout-copy');
    await waitFor(async () => (await results())?.variants.find((v) => v.variant === 'treatment').conversions === 12, {
      what: 'the conversions to be counted', timeoutMs: 15000, intervalMs: 300,
    });
    const r = await results();
    const [control, treatment] = ['control', 'treatment'].map((v) => r.variants.find((x) => x.variant === v));
    assert.deepEqual([control.units, control.conversions, treatment.units, treatment.conversions], [160, 16, 40, 12]);
    assert.equal(control.conversionRate, 0.1);
    assert.equal(treatment.conversionRate, 0.3);
    assert.ok(treatment.conversionInterval.low < 0.3 && 0.3 < treatment.conversionInterval.high);
    assert.ok(Math.abs(treatment.uplift.absolute - 0.2) < 1e-9);
    assert.ok(treatment.uplift.interval.low > 0, 'the uplift is significant');
    assert.equal(r.sampleRatio.mismatch, true, 'a 160/40 split against 50/50 weights is a mismatch');
    assert.ok(r.sampleRatio.pValue < 1e-6);

    const csv = await c.admin('GET', '/features/experiments/results?format=csv');
    assert.match(csv.headers.get('content-type'), /^text\/csv/);
    const lines = csv.text.trim().split('\r\n');
    assert.ok(lines[0].startsWith('flag,epoch,variant,control,'));
    const row = lines.find((l) => l.startsWith('checkout-copy,') && l.includes(',treatment,'));
    assert.ok(row?.endsWith(',true'), `the CSV row carries the mismatch: ${row}`);
  });

  test('events without a unit or with a bad shape are refused with an OFREP-style 400', async () => {
    let res = await track([{ trackingEventName: 'purchase' }]);
    assert.equal(res.status, 400);
    assert.equal((await res.json()).errorCode, 'TARGETING_KEY_MISSING');
    res = await track([{ context: { targetingKey: 'x' } }]);
    assert.equal(res.status, 400);
    assert.match((await res.json()).errorDetails, /events\[0\]\.trackingEventName/);
    res = await fetch(`${stack.edgeUrl}/__edge/events`, { method: 'POST', body: '{' });
    assert.equal(res.status, 400);
  });

  test('invented event names share one "other" series: anonymous callers cannot grow the metrics', LIMIT, async () => {
    const before = await c.metrics();
    for (let call = 0; call < 11; call++) {
      const events = Array.from({ length: 100 }, (_, i) => ({ trackingEventName: `invented-${call}-${i}`, context: { targetingKey: `k${i}` } }));
      assert.equal((await track(events)).status, 202);
    }
    assert.equal((await track([{ trackingEventName: 'purchase', context: { targetingKey: 'k1' } }])).status, 202);
    const series = await waitFor(async () => {
      const m = await c.metrics();
      const names = m.filter((x) => x.name === 'edgeflags_events_total').map((x) => x.labels.event);
      return names.includes('other') && names.includes('purchase') && names;
    }, { what: 'the events to reach the metrics store', timeoutMs: 15000, intervalMs: 300 });
    assert.deepEqual([...new Set(series)].sort(), ['other', 'purchase'], 'only the declared name and "other"');
    assert.ok(before.length > 0);
    assert.equal(sum(await c.metrics(), 'edgeflags_events_total', (l) => l.event === 'other'), 1100);
    const status = await (await fetch(`${stack.edgeUrl}/__edge/status`)).json();
    assert.ok(status.metrics.undeclaredEvents >= 1100, JSON.stringify(status.metrics));
  });
});

describe('guarded rollouts', () => {
  const PLAN = {
    'rollout.stages': '10,50,100',
    'rollout.control': 'v1',
    'rollout.treatment': 'v2',
    'rollout.minDurationSeconds': 0,
    'rollout.minSample': 30,
    'rollout.advanceErrorRate': 0.005,
    'rollout.rollbackErrorRate': 0.01,
  };

  test('a canary failing 5 % of its visitors is rolled back at the next evaluation; afterwards every visitor is on v1', LIMIT, async () => {
    // 50 % first: ~500 canary visitors, ~25 with an error — far past the sequential test's
    // rollback boundary (at 10 %, ~100 canary visitors would be too close to it to be sure).
    const stack = await startStack({ seed: { flags: withPlan({ ...PLAN, 'rollout.stages': '50,100' }) } });
    try {
      const c = client(stack);
      await c.cron();
      let flag = await c.backend();
      assert.equal(flag.metadata['rollout.status'] ?? 'running', 'running');
      assert.equal(typeof flag.metadata['rollout.stageStartedAt'], 'number', 'the first evaluation starts the plan');
      assert.deepEqual(weights(flag), { v1: 50, v2: 50 });

      await c.faults({ v2ErrorPercent: 5 });
      const seen = await c.visit(1000, 24);
      assert.ok(seen.every((s) => s.status === 200), 'the stable retry hid the failures from visitors');
      await c.cron();
      flag = await c.backend();
      assert.equal(flag.metadata['rollout.status'], 'rolled-back', JSON.stringify(flag.metadata));
      assert.deepEqual(weights(flag), { v1: 100, v2: 0 });
      assert.match(flag.metadata['rollout.reason'], /error rate/);

      const after = await c.visit(200);
      assert.deepEqual([...new Set(after.map((s) => s.version))], ['v1'], 'every visitor is on v1');

      const audit = (await c.admin('GET', '/audit')).json;
      const entries = audit.entries ?? audit.records ?? audit;
      assert.ok(entries.some((e) => e.action === 'rollout-rollback' && e.flag === 'backend'), 'the rollback is in the audit log');
      const results = (await c.admin('GET', '/features/experiments/results')).json;
      const rollback = results.rolloutDecisions.find((d) => d.flag === 'backend' && d.action === 'rollback');
      assert.ok(rollback?.applied && /error rate/.test(rollback.reason), JSON.stringify(results.rolloutDecisions));

      await c.cron();
      assert.deepEqual(weights(await c.backend()), { v1: 100, v2: 0 }, 'a rolled-back plan stays rolled back');
    } finally {
      await stack.stop();
    }
  });

  test('a canary slower than the p99 limit is rolled back by the latency gate', LIMIT, async () => {
    const stack = await startStack({ seed: { flags: withPlan({ ...PLAN, 'rollout.stages': '50,100', 'rollout.maxP99Ms': 100 }) } });
    try {
      const c = client(stack);
      await c.cron();
      assert.deepEqual(weights(await c.backend()), { v1: 50, v2: 50 });
      // Every canary answer takes 300 ms; none fails, so only the latency gate can fire.
      await c.faults({ v2DelayMs: 300 });
      const seen = await c.visit(120, 24);
      assert.ok(seen.every((s) => s.status === 200));
      assert.ok(seen.filter((s) => s.version === 'v2').length >= PLAN['rollout.minSample'], 'enough canary requests to judge');
      await c.cron();
      const flag = await c.backend();
      assert.equal(flag.metadata['rollout.status'], 'rolled-back', JSON.stringify(flag.metadata));
      assert.match(flag.metadata['rollout.reason'], /p99 latency .* is above the limit 100 ms/);
      assert.deepEqual(weights(flag), { v1: 100, v2: 0 });
    } finally {
      await stack.stop();
    }
  });

  test('a canary that converts worse than control is rolled back by the conversion gate', LIMIT, async () => {
    const plan = { ...PLAN, 'rollout.stages': '50,100', 'rollout.conversionEvent': 'checkout-completed' };
    const stack = await startStack({ seed: { flags: withPlan(plan) } });
    try {
      const c = client(stack);
      await c.cron();
      const seen = await c.visit(120, 24);
      const on = (v) => seen.filter((s) => s.version === v).map((s) => s.id);
      assert.ok(on('v1').length >= 30 && on('v2').length >= 30, 'both arms have enough units');
      // Every control visitor completes a checkout; no canary visitor does.
      const events = on('v1').map((id) => ({ trackingEventName: 'checkout-completed', context: { targetingKey: id } }));
      const res = await fetch(`${stack.edgeUrl}/__edge/events`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }),
      });
      assert.equal(res.status, 202);
      await waitFor(async () => {
        const r = (await c.admin('POST', '/rollouts/evaluate?dryRun=true')).json.rollouts[0];
        return r.decision.action === 'rollback' && r;
      }, { what: 'the conversions to reach the controller', timeoutMs: 15000, intervalMs: 500 });
      await c.cron();
      const flag = await c.backend();
      assert.equal(flag.metadata['rollout.status'], 'rolled-back', JSON.stringify(flag.metadata));
      assert.match(flag.metadata['rollout.reason'], /conversion is worse than control/);
      assert.deepEqual(weights(flag), { v1: 100, v2: 0 });
    } finally {
      await stack.stop();
    }
  });

  test('a healthy canary walks 10 → 50 → 100 %, holding while the sample is too small; dry runs change nothing', LIMIT, async () => {
    // Rates far apart, so that the sequential test accepts a clean canary after ~18 visitors
    // (ln(0.05) / ln(0.8 / 0.95)); with 0.5 % / 1 % it needs ~600 clean visitors per stage.
    const plan = { ...PLAN, 'rollout.advanceErrorRate': 0.05, 'rollout.rollbackErrorRate': 0.2 };
    const stack = await startStack({ seed: { flags: withPlan(plan) } });
    try {
      const c = client(stack);
      await c.cron();
      assert.deepEqual(weights(await c.backend()), { v1: 90, v2: 10 });

      // Too few canary requests yet: hold.
      await c.visit(20);
      let report = (await c.admin('POST', '/rollouts/evaluate')).json;
      assert.equal(report.rollouts[0].decision.action, 'hold', JSON.stringify(report));
      assert.match(report.rollouts[0].decision.reason, /waiting/);

      await c.visit(700, 24);
      report = (await c.admin('POST', '/rollouts/evaluate?dryRun=true')).json;
      assert.equal(report.rollouts[0].decision.action, 'advance');
      assert.equal(report.rollouts[0].applied, false);
      assert.deepEqual(weights(await c.backend()), { v1: 90, v2: 10 }, 'a dry run writes nothing');

      await c.cron();
      let flag = await c.backend();
      assert.deepEqual(weights(flag), { v1: 50, v2: 50 });
      assert.equal(flag.metadata['rollout.stage'], 1);

      // A new stage is a new epoch: the 10 % stage's data does not count for it.
      report = (await c.admin('POST', '/rollouts/evaluate?dryRun=true')).json;
      assert.equal(report.rollouts[0].decision.action, 'hold');
      assert.equal(report.rollouts[0].treatment.requests, 0);

      await c.visit(200, 24);
      await c.cron();
      flag = await c.backend();
      assert.deepEqual(weights(flag), { v1: 0, v2: 100 });
      const all = await c.visit(60);
      assert.deepEqual([...new Set(all.map((s) => s.version))], ['v2'], 'at 100 % every visitor is on v2');
      await c.visit(40);
      await c.cron();
      flag = await c.backend();
      assert.equal(flag.metadata['rollout.status'], 'completed');
      const m = await c.metrics();
      assert.equal(sum(m, 'edgeflags_rollout_percent', (l) => l.flag === 'backend'), 100);
    } finally {
      await stack.stop();
    }
  });

  /** A request as one visitor: `cookie` (or none, and the edge issues one); tells whether the
   * canary was chosen (it answered v2, or failed and the stable retry answered). */
  async function asVisitor(stack, cookie) {
    const res = await fetch(`${stack.edgeUrl}/api/version`, { headers: cookie ? { cookie } : {} });
    await res.arrayBuffer();
    const set = res.headers.get('set-cookie');
    const issued = set ? set.split(';')[0] : null;
    const canary = res.headers.get('x-app-version') === 'v2' || (res.headers.get('x-edgeflags-retried') ?? '').startsWith('v2');
    return { status: res.status, cookie: cookie ?? issued, canary };
  }

  test("one visitor's errors cannot trigger a rollback: 60 failed canary requests of one visitor weigh one visitor", LIMIT, async () => {
    const stack = await startStack({ seed: { flags: withPlan({ ...PLAN, 'rollout.stages': '50,100' }) } });
    try {
      const c = client(stack);
      await c.cron();
      await c.faults({ v2ErrorPercent: 100 });
      // A fresh visitor the edge puts on the canary (the edge issues the cookie).
      let visitor;
      for (let i = 0; i < 40 && !visitor; i++) {
        const v = await asVisitor(stack);
        if (v.canary) visitor = v;
      }
      assert.ok(visitor?.cookie, 'found a visitor on the canary');
      for (let i = 0; i < 60; i++) {
        const again = await asVisitor(stack, visitor.cookie);
        assert.equal(again.status, 200, 'the stable retry saves the visitor');
        assert.ok(again.canary, 'a visitor stays on its variant');
      }
      const report = (await c.admin('POST', '/rollouts/evaluate?dryRun=true')).json.rollouts[0];
      assert.equal(report.treatment.visitors, 1, JSON.stringify(report));
      assert.equal(report.treatment.errorVisitors, 1, JSON.stringify(report));
      assert.ok(report.treatment.errors >= 61, JSON.stringify(report));
      assert.equal(report.decision.action, 'hold', JSON.stringify(report));
      await c.cron();
      const flag = await c.backend();
      assert.equal(flag.metadata['rollout.status'] ?? 'running', 'running', JSON.stringify(flag.metadata));
      assert.deepEqual(weights(flag), { v1: 50, v2: 50 });
    } finally {
      await stack.stop();
    }
  });

  test('a canary failing for every visitor is rolled back at its 5th visitor, not before', LIMIT, async () => {
    const stack = await startStack({ seed: { flags: withPlan({ ...PLAN, 'rollout.stages': '50,100' }) } });
    try {
      const c = client(stack);
      await c.cron();
      await c.faults({ v2ErrorPercent: 100 });
      let canary = 0;
      const dry = async () => (await c.admin('POST', '/rollouts/evaluate?dryRun=true')).json.rollouts[0];
      for (let i = 0; i < 200 && canary < 5; i++) {
        const v = await asVisitor(stack);
        assert.equal(v.status, 200);
        if (!v.canary) continue;
        canary++;
        const report = await dry();
        assert.equal(report.treatment.errorVisitors, canary, JSON.stringify(report));
        assert.equal(report.decision.action, canary < 5 ? 'hold' : 'rollback', `after ${canary} failing canary visitors: ${JSON.stringify(report)}`);
      }
      assert.equal(canary, 5, 'five canary visitors arrived');
      await c.cron();
      const flag = await c.backend();
      assert.equal(flag.metadata['rollout.status'], 'rolled-back', JSON.stringify(flag.metadata));
      assert.match(flag.metadata['rollout.reason'], /hard stop: .*5 of 5 visitors saw an error/);
      assert.deepEqual(weights(flag), { v1: 100, v2: 0 });
    } finally {
      await stack.stop();
    }
  });
});
