import { FlagdCore } from '@openfeature/flagd-core';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
const logger = { debug(){}, info(){}, warn(){}, error(){} };
const NOW = 1764892800;
export function both(targeting, ctx, variants = { a: 'a', b: 'b' }, dv = 'a') {
  const doc = { flags: { f: { state: 'ENABLED', variants, defaultVariant: dv, targeting } } };
  const c = new FlagdCore(undefined, logger);
  c.setConfigurations(JSON.stringify(doc));
  const rn = Date.now; Date.now = () => NOW * 1000;
  const r = c.getFlag('f').evaluate(ctx, logger); Date.now = rn;
  const ref = r.reason === 'ERROR' ? `ERROR ${r.errorCode}` : `${r.reason} ${JSON.stringify(r.variant)}`;
  writeFileSync('/tmp/dt/p.json', JSON.stringify(doc)); writeFileSync('/tmp/dt/c.json', JSON.stringify(ctx));
  let ours;
  try {
    const o = JSON.parse(execFileSync('target/release/edgeflags', ['eval', '--flags', '/tmp/dt/p.json', '--flag', 'f', '--context', '@/tmp/dt/c.json', '--now', String(NOW)]).toString());
    ours = o.errorCode ? `ERROR ${o.errorCode}` : `${o.reason} ${JSON.stringify(o.variant)}`;
  } catch (e) { ours = 'CLI FAIL ' + (e.stderr?.toString() ?? e.message); }
  const mark = ref === ours ? '  ' : '!!';
  console.log(mark, JSON.stringify(targeting), JSON.stringify(ctx), '| ref:', ref, '| ours:', ours);
}
const T = (c) => ({ if: [c, 'b', 'a'] });
const cases = JSON.parse(process.argv[2]);
for (const [t, c, v, dv] of cases) both(t, c, v, dv);
