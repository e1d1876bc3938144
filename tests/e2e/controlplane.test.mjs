// The control plane through the real runtime (issue 11): one writer (a SQLite Durable Object)
// for every flag change. Two admins at once, the kill switch racing the rollout controller,
// documents written straight into KV, strict write rules, rollback to the seeded version,
// and an audit record for every change — purges included.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { DEMO_FLAGS, startStack, waitFor } from './harness.mjs';

const LIMIT = { timeout: 180000 };
const demoText = readFileSync(DEMO_FLAGS, 'utf8');
const demo = () => JSON.parse(demoText);
/** The edge's version of a document: the first 16 hex digits of its SHA-256. */
const versionOf = (text) => createHash('sha256').update(text).digest('hex').slice(0, 16);

/** Admin calls against one stack. */
function adminClient(stack) {
  return async (method, path, body, headers = {}) => {
    const res = await fetch(`${stack.edgeUrl}/__edge${path}`, {
      method,
      headers: { authorization: `Bearer ${stack.adminToken}`, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json, headers: res.headers };
  };
}

describe('one writer for every flag change', () => {
  let stack;
  let admin;
  before(async () => {
    stack = await startStack();
    admin = adminClient(stack);
  });
  after(async () => {
    await stack?.stop();
  });

  const flags = async () => (await admin('GET', '/flags')).json;

  test('the seeded document is the first version of the history', async () => {
    const seeded = versionOf(demoText);
    assert.equal((await flags()).version, seeded);
    const versions = (await admin('GET', '/versions')).json;
    assert.equal(versions.current, seeded);
    assert.deepEqual(versions.versions.map((v) => v.version), [seeded]);
    const [imported] = (await admin('GET', '/audit')).json.records;
    assert.equal(imported.actor, 'kv');
    assert.equal(imported.action, 'import');
  });

  test('parallel PATCHes of different flags all survive, in one audited chain, and reach KV', LIMIT, async () => {
    const patches = {
      'new-checkout': 'on', theme: 'fresh', notifications: 'off', 'page-size': 'large', banner: 'maintenance',
    };
    const answers = await Promise.all(Object.entries(patches).map(([flag, variant]) =>
      admin('PATCH', `/flags/${flag}`, { defaultVariant: variant })));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200], JSON.stringify(answers.map((a) => a.json)));
    const now = await flags();
    for (const [flag, variant] of Object.entries(patches)) {
      assert.equal(now.flagSet.flags[flag].defaultVariant, variant, `${flag} kept its change`);
    }
    // Serialised: each record starts from the version the previous one made.
    const records = (await admin('GET', '/audit?limit=5')).json.records.reverse();
    assert.deepEqual(records.map((r) => r.action), ['patch', 'patch', 'patch', 'patch', 'patch']);
    for (let i = 1; i < records.length; i++) assert.equal(records[i].fromVersion, records[i - 1].toVersion);
    assert.equal(records.at(-1).toVersion, now.version);
    // KV is the replica: it holds the head once the writer answered.
    assert.equal(versionOf(stack.kvGet('flags')), now.version);
  });

  test('of five parallel PUTs holding the same If-Match exactly one wins, in each of three trials', LIMIT, async () => {
    for (let trial = 0; trial < 3; trial++) {
      const { version } = await flags();
      const answers = await Promise.all([0, 1, 2, 3, 4].map((i) => {
        const doc = demo();
        doc.metadata = { ...doc.metadata, version: `race-${trial}-${i}` };
        return admin('PUT', '/flags', doc, { 'if-match': `"${version}"` });
      }));
      const statuses = answers.map((a) => a.status).sort();
      assert.deepEqual(statuses, [200, 412, 412, 412, 412], `trial ${trial}: ${JSON.stringify(answers.map((a) => a.json))}`);
      const winner = answers.find((a) => a.status === 200).json.version;
      assert.equal((await flags()).version, winner);
      for (const lost of answers.filter((a) => a.status === 412)) assert.equal(lost.json.errorCode, 'VERSION_MISMATCH');
    }
  });

  test('If-Match takes a list of versions and compares strongly', async () => {
    const { version } = await flags();
    const weak = await admin('POST', '/features/enable', { flag: 'banner' }, { 'if-match': `W/"${version}"` });
    assert.equal(weak.status, 412, 'a weak entity-tag never matches If-Match');
    const list = await admin('POST', '/features/disable', { flag: 'banner' }, { 'if-match': `"0000000000000000", "${version}"` });
    assert.equal(list.status, 200, JSON.stringify(list.json));
    assert.equal((await flags()).flagSet.flags.banner.state, 'DISABLED');
    const junk = await admin('POST', '/features/enable', { flag: 'banner' }, { 'if-match': 'not-a-tag' });
    assert.equal(junk.status, 400);
  });

  test('writes an admin makes are held to strict rules: 400 with the JSON path, nothing stored', LIMIT, async () => {
    const before = (await flags()).version;
    const variants = (doc, v) => { doc.flags.theme.variants = v; doc.flags.theme.defaultVariant = Object.keys(v)[0]; delete doc.flags.theme.targeting; };
    const weight = (w) => (doc) => { doc.flags['new-checkout'].targeting = { fractional: [['on', w], ['off', 50]] }; };
    const cases = [
      ['a lower-case state', (doc) => { doc.flags.banner.state = 'disabled'; }, 'flags.banner.state'],
      ['a negative weight', weight(-5), 'flags.new-checkout.targeting.fractional[0][1]'],
      ['a fractional weight', weight(1.5), 'flags.new-checkout.targeting.fractional[0][1]'],
      ['a weight of 2^31', weight(2 ** 31), 'flags.new-checkout.targeting.fractional[0][1]'],
      ['a weight of 1e308', weight(1e308), 'flags.new-checkout.targeting.fractional[0][1]'],
      ['an empty flag', (doc) => { doc.flags.empty = {}; }, 'flags.empty.variants'],
      ['a flag key with CR/LF', (doc) => { doc.flags['a\r\nb'] = doc.flags.banner; }, 'flags.a\r\nb'],
      ['a variant name with CR/LF', (doc) => variants(doc, { 'x\r\nSet-Cookie: a=b': 1 }), 'flags.theme.variants.x\r\nSet-Cookie: a=b'],
    ];
    for (const [what, change, path] of cases) {
      const doc = demo();
      change(doc);
      const res = await admin('PUT', '/flags', doc);
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.json)}`);
      assert.equal(res.json.errorCode, 'PARSE_ERROR');
      assert.ok(res.json.errors.some((e) => e.path === path), `${what}: ${JSON.stringify(res.json.errors)}`);
    }
    const patched = await admin('PATCH', '/flags/banner', { state: 'disabled' });
    assert.equal(patched.status, 400);
    assert.equal((await flags()).version, before, 'nothing was stored');
  });

  test('rollback reaches the seeded version after API changes', async () => {
    const seeded = versionOf(demoText);
    assert.notEqual((await flags()).version, seeded);
    const rb = await admin('POST', `/versions/${seeded}/rollback`);
    assert.equal(rb.status, 200, JSON.stringify(rb.json));
    assert.equal(rb.json.version, seeded);
    assert.equal((await flags()).version, seeded);
    assert.equal((await admin('POST', '/versions/ffffffffffffffff/rollback')).status, 404);
  });

  test('a cache purge is audited like every other change', async () => {
    const res = await admin('POST', '/cache/purge', { prefix: '/api/' });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const [latest] = (await admin('GET', '/audit?limit=1')).json.records;
    assert.equal(latest.action, 'purge');
    assert.equal(latest.actor, 'admin');
    assert.match(latest.summary, /\/api\//);
  });

  test('a document written straight into KV is adopted as a version audited as "kv"', async () => {
    const doc = demo();
    doc.flags['page-size'].defaultVariant = 'small';
    const text = JSON.stringify(doc, null, 1);
    const file = join(stack.persistDir, 'by-hand.json');
    writeFileSync(file, text);
    stack.kvPut('flags', file);
    await waitFor(async () => (await flags()).version === versionOf(text), { what: 'the hand-written document to be adopted' });
    const [latest] = (await admin('GET', '/audit?limit=1')).json.records;
    assert.deepEqual([latest.actor, latest.action, latest.toVersion], ['kv', 'adopt', versionOf(text)]);
    const res = await fetch(`${stack.edgeUrl}/ofrep/v1/evaluate/flags/page-size`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ context: { targetingKey: 'k' } }),
    });
    assert.equal((await res.json()).variant, 'small');
  });

  test('a KV document that cannot be loaded is refused, shown on /status, and KV is put back', async () => {
    const head = (await flags()).version;
    const broken = '{"flags": ["not", "flags"]}';
    const file = join(stack.persistDir, 'broken-by-hand.json');
    writeFileSync(file, broken);
    stack.kvPut('flags', file);
    const status = await waitFor(async () => {
      const s = await (await fetch(`${stack.edgeUrl}/__edge/status`)).json();
      return s.isolate.controlPlane.kvRefused?.version === versionOf(broken) && s;
    }, { what: 'the refusal on /status' });
    assert.ok(status.isolate.controlPlane.kvRefused.errors.length > 0, JSON.stringify(status.isolate.controlPlane));
    assert.equal(status.isolate.active.version, head, 'still serving the head');
    assert.equal((await flags()).version, head);
    await waitFor(() => versionOf(stack.kvGet('flags')) === head, { what: 'KV to hold the head again' });
  });
});

describe('the kill switch wins over the rollout controller', () => {
  const PLAN = {
    'rollout.stages': '10,50,100', 'rollout.control': 'v1', 'rollout.treatment': 'v2',
    'rollout.minDurationSeconds': 0, 'rollout.minSample': 1,
  };
  /** The demo set with backend's plan replaced by `plan` (not started). */
  const withPlan = (plan) => {
    const doc = demo();
    const meta = doc.flags.backend.metadata;
    for (const k of Object.keys(meta)) if (k.startsWith('rollout.')) delete meta[k];
    Object.assign(meta, plan);
    return doc;
  };
  let stack;
  let admin;
  before(async () => {
    stack = await startStack({ seed: { flags: withPlan(PLAN) } });
    admin = adminClient(stack);
  });
  after(async () => {
    await stack?.stop();
  });
  const backend = async () => (await admin('GET', '/flags')).json.flagSet.flags.backend;

  test('disable racing a rollout evaluation that starts the plan: disabled 60 times out of 60', LIMIT, async () => {
    for (let trial = 0; trial < 60; trial++) {
      // A fresh, enabled, unstarted plan: the evaluation wants to write (Start) every time.
      const reset = await admin('PUT', '/flags', withPlan(PLAN));
      assert.equal(reset.status, 200, JSON.stringify(reset.json));
      const [evaluation, disable] = await Promise.all([
        admin('POST', '/rollouts/evaluate'),
        // Spread the disable over the evaluation's run, so different interleavings are tried.
        new Promise((r) => setTimeout(r, trial % 20)).then(() => admin('POST', '/features/disable', { flag: 'backend' })),
      ]);
      assert.equal(evaluation.status, 200, JSON.stringify(evaluation.json));
      assert.equal(disable.status, 200, JSON.stringify(disable.json));
      assert.equal((await backend()).state, 'DISABLED', `trial ${trial}: the kill switch was undone`);
    }
  });

  test('a rollout whose flag a person changed is paused, says so in the decision log, and resumes on request', LIMIT, async () => {
    assert.equal((await admin('PUT', '/flags', withPlan(PLAN))).status, 200);
    assert.equal((await admin('POST', '/rollouts/evaluate')).json.rollouts[0].decision.action, 'start');
    const started = await backend();
    assert.deepEqual(started.targeting.fractional, [['v1', 90], ['v2', 10]]);

    assert.equal((await admin('POST', '/features/disable', { flag: 'backend' })).status, 200);
    const report = (await admin('POST', '/rollouts/evaluate')).json.rollouts[0];
    assert.equal(report.applied, true, JSON.stringify(report));
    assert.match(report.reason, /paused: the flag was disabled/);
    let flag = await backend();
    assert.equal(flag.state, 'DISABLED', 'the controller never re-enables');
    assert.equal(flag.metadata['rollout.status'], 'paused');
    assert.deepEqual(flag.targeting.fractional, started.targeting.fractional, 'the split is left alone');
    const results = (await admin('GET', '/features/experiments/results')).json;
    assert.ok(results.rolloutDecisions.some((d) => d.flag === 'backend' && d.action === 'pause'), JSON.stringify(results.rolloutDecisions));

    // Re-enabling does not resume by itself; the admin resumes explicitly.
    assert.equal((await admin('POST', '/features/enable', { flag: 'backend' })).status, 200);
    assert.equal((await admin('POST', '/rollouts/evaluate')).json.rollouts[0].decision.action, 'idle');
    const resumed = await admin('POST', '/rollouts/backend/resume');
    assert.equal(resumed.status, 200, JSON.stringify(resumed.json));
    flag = await backend();
    assert.equal(flag.metadata['rollout.status'], 'running');
    assert.notEqual((await admin('POST', '/rollouts/evaluate')).json.rollouts[0].decision.action, 'idle');
    assert.equal((await admin('POST', '/rollouts/backend/resume')).status, 409, 'only a paused rollout resumes');
  });
});
