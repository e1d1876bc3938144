// Identities the edge can vouch for (issue 14, items 1 and 6), through the real runtime: with
// IDENTITY_KEYS set, visitor ids are HMAC-signed, a forged or unsigned id is replaced, and
// targetingKeys an anonymous caller invents are served but move no experiment (units,
// exposures, conversions); a server with an evaluation API key may pass its own. The
// origin's control endpoints are not reachable through the edge.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { DEMO_FLAGS, startStack, waitFor } from './harness.mjs';

const API_KEY = 'e2e-evaluation-key-0123456789';
const EXPERIMENT = {
  state: 'ENABLED',
  variants: { control: 'control', treatment: 'treatment' },
  defaultVariant: 'control',
  targeting: { fractional: [['control', 50], ['treatment', 50]] },
  metadata: { 'experiment.control': 'control', 'experiment.conversionEvent': 'purchase' },
};

describe('vouched identities', () => {
  let stack;
  before(async () => {
    const doc = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
    doc.flags['checkout-copy'] = EXPERIMENT;
    stack = await startStack({
      seed: { flags: doc },
      vars: { IDENTITY_KEYS: 'e2e-identity-key-0123456789abcdef', EVALUATION_KEYS: `backend-svc:${API_KEY}` },
    });
  });
  after(async () => stack?.stop());

  const evaluate = (body, headers = {}) => fetch(`${stack.edgeUrl}/ofrep/v1/evaluate/flags/checkout-copy`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
  });
  const units = async () => {
    const res = await fetch(`${stack.edgeUrl}/__edge/features/experiments/results`, {
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    const r = (await res.json()).experiments.find((e) => e.flag === 'checkout-copy');
    return r.variants.reduce((n, v) => ({ units: n.units + v.units, conversions: n.conversions + v.conversions }), { units: 0, conversions: 0 });
  };

  test('a forged or unsigned visitor id is replaced by a signed one of the edge\'s own', async () => {
    const forged = 'ab'.repeat(16);
    for (const cookie of [`ef_uid=${forged}`, `ef_uid=${forged}.${'0'.repeat(32)}`]) {
      const res = await fetch(`${stack.edgeUrl}/`, { headers: { cookie } });
      const html = await res.text();
      const boot = JSON.parse(html.match(/<script id="edgeflags-bootstrap" type="application\/json">(.*?)<\/script>/s)[1]);
      assert.notEqual(boot.targetingKey, forged, `${cookie} was honoured`);
      assert.match(res.headers.get('set-cookie'), /^ef_uid=[0-9a-f]{32}\.[0-9a-f]{32};/);
    }
    const status = await (await fetch(`${stack.edgeUrl}/__edge/status`)).json();
    assert.equal(status.identity.signedIds, true);
  });

  test('invented targetingKeys are served but add no units or conversions; a signed visitor and an API-keyed server do', async () => {
    const start = await units();
    for (let i = 0; i < 30; i++) {
      const res = await evaluate({ context: { targetingKey: `invented-${i}` } });
      assert.equal(res.status, 200, 'still served');
    }
    const events = Array.from({ length: 30 }, (_, i) => ({ trackingEventName: 'purchase', context: { targetingKey: `invented-${i}` } }));
    const tracked = await fetch(`${stack.edgeUrl}/__edge/events`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }),
    });
    assert.equal(tracked.status, 202);

    // A visitor the edge signed counts once, and a server with an evaluation key counts its key.
    const first = await fetch(`${stack.edgeUrl}/`, {});
    await first.arrayBuffer();
    const cookie = first.headers.get('set-cookie').split(';')[0];
    assert.equal((await evaluate({ context: {} }, { cookie })).status, 200);
    assert.equal((await evaluate({ context: { targetingKey: 'server-user-1' } }, { authorization: `Bearer ${API_KEY}` })).status, 200);
    const converted = await fetch(`${stack.edgeUrl}/__edge/events`, {
      method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify({ trackingEventName: 'purchase' }),
    });
    assert.equal(converted.status, 202);

    const end = await waitFor(async () => {
      const u = await units();
      return u.units >= start.units + 2 && u.conversions >= start.conversions + 1 && u;
    }, { what: 'the vouched units to be counted', timeoutMs: 15000, intervalMs: 300 });
    assert.deepEqual(end, { units: start.units + 2, conversions: start.conversions + 1 }, 'only the vouched ones count');
  });

  test('the origin\'s control endpoints are not reachable through the edge', async () => {
    const through = await fetch(`${stack.edgeUrl}/__origin/faults`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ v2ErrorPercent: 100 }),
    });
    assert.equal(through.status, 404);
    assert.equal((await fetch(`${stack.edgeUrl}/__origin/stats`)).status, 404);
    const direct = await fetch(`${stack.originV1}/__origin/stats`);
    assert.equal(direct.status, 200, 'the origin itself still answers on its own port');
  });
});
