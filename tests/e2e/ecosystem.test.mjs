// Ecosystem test: the official OpenFeature web SDK with the OFREP web provider, in headless
// Chromium, evaluates flags against the edge and gets exactly what the `edgeflags eval` CLI
// computes for the same context from the same flag file.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

import { DEMO_FLAGS, ROOT, startStack } from './harness.mjs';
import { launchBrowser } from './browser.mjs';

const CLI = process.env.EDGEFLAGS_CLI || join(ROOT, 'target', 'release', 'edgeflags');

let stack;
let browser;
before(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run cargo build --release -p edgeflags-cli`);
  stack = await startStack();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** The web SDK + OFREP provider, bundled for the page (esbuild ships with wrangler). */
async function sdkBundle() {
  const out = await build({
    stdin: {
      contents: `
        import { OpenFeature } from '@openfeature/web-sdk';
        import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
        window.evaluateWithOpenFeature = async (baseUrl, context, flags) => {
          await OpenFeature.setContext(context);
          await OpenFeature.setProviderAndWait(new OFREPWebProvider({ baseUrl }));
          const client = OpenFeature.getClient();
          const get = { boolean: 'getBooleanDetails', string: 'getStringDetails', number: 'getNumberDetails', object: 'getObjectDetails' };
          const fallback = { boolean: false, string: '', number: -1, object: {} };
          const out = {};
          for (const [key, type] of flags) {
            const d = client[get[type]](key, fallback[type]);
            out[key] = { value: d.value, variant: d.variant, reason: d.reason, errorCode: d.errorCode };
          }
          return out;
        };`,
      resolveDir: ROOT,
      loader: 'js',
    },
    bundle: true,
    format: 'iife',
    write: false,
    platform: 'browser',
    logLevel: 'silent',
  });
  return out.outputFiles[0].text;
}

const typeOf = (v) => (typeof v === 'object' ? 'object' : typeof v);

test('@openfeature/web-sdk with the OFREP web provider gets the CLI\'s answers from the edge', async () => {
  const doc = JSON.parse(readFileSync(DEMO_FLAGS, 'utf8'));
  const flags = Object.entries(doc.flags).map(([key, f]) => [key, typeOf(Object.values(f.variants)[0])]);
  const contexts = [
    { targetingKey: 'eco-visitor-1' },
    { targetingKey: 'eco-visitor-2', email: 'lee@example.com', appVersion: '2.1.0' },
    { targetingKey: 'eco-visitor-3', email: 'kim@other.example', appVersion: '1.9.9' },
  ];
  const bundle = await sdkBundle();
  for (const context of contexts) {
    // The demo's CSP (rightly) forbids inline scripts; the test injects the SDK bundle inline.
    const browserContext = await browser.newContext({ bypassCSP: true });
    const page = await browserContext.newPage();
    try {
      await page.goto(`${stack.edgeUrl}/offline.html`);
      await page.addScriptTag({ content: bundle });
      const got = await page.evaluate(([base, ctx, fl]) => window.evaluateWithOpenFeature(base, ctx, fl), [
        stack.edgeUrl,
        context,
        flags,
      ]);
      const cli = JSON.parse(
        execFileSync(CLI, ['eval', '--flags', DEMO_FLAGS, '--context', JSON.stringify(context)], { encoding: 'utf8' }),
      );
      for (const want of cli.flags) {
        const have = got[want.key];
        if (want.reason === 'DISABLED') {
          // OpenFeature clients use their code default for a disabled flag.
          assert.equal(have.reason, 'DISABLED', `${want.key} for ${JSON.stringify(context)}`);
          continue;
        }
        assert.deepEqual(
          { value: have.value, variant: have.variant, reason: have.reason },
          { value: want.value, variant: want.variant, reason: want.reason },
          `${want.key} for ${JSON.stringify(context)}`,
        );
      }
    } finally {
      await browserContext.close();
    }
  }
});
