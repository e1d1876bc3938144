// The criterion cases of shared/benches/eval.rs (`static`, `targeting_match`,
// `fractional_3way`, `bulk_100`) run through the reference evaluator
// @openfeature/flagd-core in Node, with the same flag set (examples/flags/bench.flagd.json)
// and the same flag/context per case (examples/flags/bench.cases.json).
//
//   node bench/flagd-core.mjs [--quick] [--mode compiled|interpreter|both] [--procs N]
//
// Prints one JSON object: per flagd-core mode and case, the median ns/op (and ops/s),
// with the per-process medians it was taken from. Progress goes to stderr.
//
// What is timed is what an OpenFeature provider calls per evaluation: the typed
// `resolve<Type>Evaluation(flagKey, default, context, logger)` for one flag and
// `resolveAll(context, logger)` for the bulk case (flagd-core's bulk evaluation of every
// flag). The flag set is loaded once, outside the timing; the context object is reused.
// flagd-core's two JsonLogic modes are measured: `compiled` (the default, which
// generates JavaScript with new Function()) and `interpreter`
// (`disableDynamicCodeGeneration: true`, the mode edge runtimes such as Cloudflare Workers
// require, since they forbid dynamic code generation).
//
// Method: each mode runs in PROCS fresh Node processes (run after run; JIT and GC state
// differ between processes, and on a shared VM single runs vary by up to 2× — the
// BigInt-heavy fractional path most). In each process: every case is warmed up for
// ≥ WARMUP_MS (so the JIT has optimized the hot path) and its batch size calibrated
// (≈ BATCH_MS per batch); then BATCHES rounds time one batch of every case in turn
// (interleaved, so drift affects all cases alike) with process.hrtime.bigint(). A
// process's figure is the median of its per-batch ns/op; the reported figure is the
// median over the processes, with their range. Every result feeds a checksum that is
// printed, so the work cannot be optimized away.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { FlagdCore } from '@openfeature/flagd-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SELF = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const QUICK = args.includes('--quick');
const WORKER = args.includes('--worker');
const modeArg = opt('--mode', 'both');
const MODES = modeArg === 'both' ? ['compiled', 'interpreter'] : [modeArg];
const PROCS = Number(opt('--procs', QUICK ? 2 : 5));
if (!MODES.every((m) => m === 'compiled' || m === 'interpreter') || !(PROCS >= 1)) {
  console.error('usage: node bench/flagd-core.mjs [--quick] [--mode compiled|interpreter|both] [--procs N]');
  process.exit(2);
}
const WARMUP_MS = QUICK ? 300 : 1000;
const BATCH_MS = QUICK ? 20 : 50;
const BATCHES = QUICK ? 15 : 40;
const CASE_IDS = ['static', 'targeting_match', 'fractional_3way', 'bulk_100'];

const flagsText = readFileSync(join(ROOT, 'examples/flags/bench.flagd.json'), 'utf8');
const cases = JSON.parse(readFileSync(join(ROOT, 'examples/flags/bench.cases.json'), 'utf8'));
const silent = { debug() {}, info() {}, warn() {}, error() {} };
let checksum = 0;

/** Builds the operation for one case: a closure returning something to fold into the checksum. */
function operation(core, id) {
  const c = cases.cases[id];
  if (!c) throw new Error(`case ${id} missing from bench.cases.json`);
  const ctx = c.context;
  if (c.flag === null) {
    const n = core.getFlags().size;
    const check = core.resolveAll(ctx, silent);
    if (check.length !== n) throw new Error(`${id}: resolveAll returned ${check.length} of ${n} flags`);
    return { op: () => core.resolveAll(ctx, silent).length, expect: `${n} flags` };
  }
  const flag = core.getFlag(c.flag);
  if (!flag) throw new Error(`${id}: flag ${c.flag} not in bench.flagd.json`);
  const value = flag.variants.get(flag.defaultVariant);
  const type = typeof value === 'object' ? 'object' : typeof value;
  const resolve = {
    boolean: (k, d) => core.resolveBooleanEvaluation(k, d, ctx, silent),
    string: (k, d) => core.resolveStringEvaluation(k, d, ctx, silent),
    number: (k, d) => core.resolveNumberEvaluation(k, d, ctx, silent),
    object: (k, d) => core.resolveObjectEvaluation(k, d, ctx, silent),
  }[type];
  const key = c.flag;
  const first = resolve(key, value);
  if (first.reason === 'ERROR') throw new Error(`${id}: flagd-core error ${first.errorCode}: ${first.errorMessage}`);
  return { op: () => resolve(key, value).variant.length, expect: `${first.reason} ${first.variant}` };
}

function timeBatch(op, n) {
  let acc = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) acc += op();
  const t1 = process.hrtime.bigint();
  checksum = (checksum + acc) % 1000000007;
  return Number(t1 - t0);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x) => Math.round(x * 10) / 10;

/** One process, one mode: every case warmed up, calibrated, then measured interleaved. */
function worker(mode) {
  const core = new FlagdCore(undefined, silent, { disableDynamicCodeGeneration: mode === 'interpreter' });
  core.setConfigurations(flagsText);
  const runs = CASE_IDS.map((id) => ({ id, ...operation(core, id), samples: [] }));
  for (const run of runs) {
    let n = 1;
    let spent = 0;
    while (spent < WARMUP_MS * 1e6) {
      spent += timeBatch(run.op, n);
      if (n < 1 << 20) n *= 2;
    }
    const probe = Math.max(1000, n);
    const perOp = timeBatch(run.op, probe) / probe;
    run.iters = Math.max(100, Math.round((BATCH_MS * 1e6) / perOp));
  }
  for (let b = 0; b < BATCHES; b++) {
    for (const run of runs) run.samples.push(timeBatch(run.op, run.iters) / run.iters);
  }
  const out = {};
  for (const run of runs) {
    out[run.id] = { median_ns: round(median(run.samples)), min_ns: round(Math.min(...run.samples)), max_ns: round(Math.max(...run.samples)), iters_per_batch: run.iters, result: run.expect };
  }
  return { mode, checksum, results: out };
}

if (WORKER) {
  console.log(JSON.stringify(worker(MODES[0])));
  process.exit(0);
}

const results = {};
let sum = 0;
for (const mode of MODES) {
  const perProc = [];
  for (let p = 0; p < PROCS; p++) {
    const child = spawnSync(process.execPath, [SELF, '--worker', '--mode', mode, ...(QUICK ? ['--quick'] : [])], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`worker (${mode}) failed with status ${child.status}`);
    const w = JSON.parse(child.stdout);
    sum = (sum + w.checksum) % 1000000007;
    perProc.push(w.results);
    process.stderr.write(`flagd-core ${mode} process ${p + 1}/${PROCS}: ${CASE_IDS.map((id) => `${id} ${w.results[id].median_ns} ns`).join(', ')}\n`);
  }
  results[mode] = {};
  for (const id of CASE_IDS) {
    const medians = perProc.map((r) => r[id].median_ns);
    const m = round(median(medians));
    results[mode][id] = {
      median_ns: m,
      ops_per_sec: Math.round(1e9 / m),
      per_process_median_ns: medians,
      range_ns: [Math.min(...medians), Math.max(...medians)],
      result: perProc[0][id].result,
    };
  }
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules/@openfeature/flagd-core/package.json'), 'utf8'));
console.log(
  JSON.stringify(
    {
      implementation: `@openfeature/flagd-core ${pkg.version}`,
      node: process.version,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      quick: QUICK,
      method:
        `${PROCS} process${PROCS > 1 ? 'es' : ''} per mode; in each, warm-up ≥ ${WARMUP_MS} ms per case, ` +
        `${BATCHES} interleaved batches of ≈ ${BATCH_MS} ms per case, median of per-batch ns/op; ` +
        'median over the processes',
      checksum: sum,
      results,
    },
    null,
    2,
  ),
);
