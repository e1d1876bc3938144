// Service-worker timings in Chromium, through the edge (workerd) and the demo origin:
//   - register → ready: `navigator.serviceWorker.register('/sw.js')` until `ready` resolves
//     (install: precache through the edge, wasm compile; activate), from a page the worker
//     does not control yet;
//   - offline cold start: every worker stopped, browser offline, a new page: navigation start
//     → response end (worker start, wasm instantiated from Cache Storage, precache lookup);
//   - offline OFREP: a bulk evaluation the worker answers with edgeflags-core (median of 30).
// Sizes are in pwa/dist/build-report.json. Usage: node bench/pwa-sw.mjs [--runs 5]
// (needs the builds the e2e tests need). Prints a markdown table; medians over the runs.
import { launchBrowser } from '../tests/e2e/browser.mjs';
import { openApp, startPwaStack, stopAllServiceWorkers } from '../tests/e2e/pwa-stack.mjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../tests/e2e/harness.mjs';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const stack = await startPwaStack();
const browser = await launchBrowser();
const results = { ready: [], coldStart: [], ofrep: [] };
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    try {
      // register → ready, from an uncontrolled page that does not register by itself.
      const page = await context.newPage();
      await page.goto(`${stack.edgeUrl}/offline.html`);
      results.ready.push(
        await page.evaluate(async () => {
          const t0 = performance.now();
          await navigator.serviceWorker.register('/sw.js', { scope: '/' });
          await navigator.serviceWorker.ready;
          return performance.now() - t0;
        }),
      );
      // Let the app finish its first load (bootstrap handed over, definitions fetched).
      const app = await openApp(context, `${stack.edgeUrl}/`);
      await app.waitForFunction(async () => (await window.edgeflagsSW.flags()).definitionsVersion);
      await app.evaluate(() =>
        fetch('/ofrep/v1/evaluate/flags', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"context":{}}' }),
      );

      await context.setOffline(true);
      await stopAllServiceWorkers(app);
      const cold = await context.newPage();
      await cold.goto(`${stack.edgeUrl}/`);
      results.coldStart.push(
        await cold.evaluate(() => {
          const nav = performance.getEntriesByType('navigation')[0];
          return nav.responseEnd - nav.startTime;
        }),
      );
      results.ofrep.push(
        await cold.evaluate(async () => {
          const times = [];
          for (let n = 0; n < 30; n++) {
            const t0 = performance.now();
            const res = await fetch('/ofrep/v1/evaluate/flags', {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ context: { targetingKey: `bench-${n}`, appVersion: '2.1.0' } }),
            });
            await res.json();
            if (res.headers.get('x-edgeflags-offline') !== '1') throw new Error('not answered offline');
            times.push(performance.now() - t0);
          }
          times.sort((a, b) => a - b);
          return times[15];
        }),
      );
    } finally {
      await context.close();
    }
  }
} finally {
  await browser.close();
  await stack.stop();
}

const report = JSON.parse(readFileSync(join(ROOT, 'pwa', 'dist', 'build-report.json'), 'utf8'));
const ms = (xs) => `${median(xs).toFixed(1)} ms (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
console.log(`| measurement (median of ${runs}, min–max) | value |`);
console.log('|---|---:|');
console.log(`| register → ready | ${ms(results.ready)} |`);
console.log(`| offline cold start: navigation → response end | ${ms(results.coldStart)} |`);
console.log(`| offline OFREP bulk answer (median of 30 per run) | ${ms(results.ofrep)} |`);
console.log(`| wasm + glue, gzip | ${report.wasmPlusGlueGzip} B (wasm ${report.wasm.bytes} B raw) |`);
