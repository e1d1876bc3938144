#!/usr/bin/env bash
# Evaluation benchmark: edgeflags-core (Rust, criterion) against @openfeature/flagd-core
# (Node), same flag set and cases (examples/flags/bench.flagd.json + bench.cases.json).
#
#   bash bench/run.sh            # full run (criterion defaults; a few minutes)
#   bash bench/run.sh --quick    # sanity run (criterion --quick, shorter Node batches)
#
# Runs `cargo bench -p edgeflags-core --bench eval` (criterion; its median point estimate
# is read from target/criterion/<id>/new/estimates.json) and `node bench/flagd-core.mjs`
# in the same run, then prints a markdown table (case | Rust ns | flagd-core ns | ratio)
# with the machine (CPU, cores, rustc, node) and writes it to bench/results/core.md
# (gitignored; paste it into BENCHMARKS.md). Raw outputs are kept next to it:
# bench/results/flagd-core.json and bench/results/criterion.log.
# "flagd-core ns" is its default (compiled) JsonLogic mode; the interpreter mode, which
# edge runtimes that forbid new Function() (Cloudflare Workers) need, is a separate column.
# Run it on an otherwise idle machine: both sides measure wall-clock time, and on shared
# VMs whole processes can run up to 2× slower for a while (the table shows flagd-core's
# per-process range and the load average, so such runs stand out; rerun them).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

out="$ROOT/bench/results"
mkdir -p "$out"
target="${CARGO_TARGET_DIR:-$ROOT/target}"
ids=(static targeting_match fractional_3way bulk_100 datalogic_fractional_3way)

[ -d node_modules/@openfeature/flagd-core ] || { echo "bench/run.sh: run npm install first" >&2; exit 1; }

criterion_args=()
node_args=()
if [ "$quick" = 1 ]; then
  criterion_args=(--quick)
  node_args=(--quick)
fi

echo "==> cargo bench -p edgeflags-core --bench eval ${criterion_args[*]}" >&2
started=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
# Old estimates must not pass for new ones if a bench ID disappears.
for id in "${ids[@]}"; do rm -f "$target/criterion/$id/new/estimates.json"; done
cargo bench -p edgeflags-core --bench eval -- "${criterion_args[@]}" 2>&1 | tee "$out/criterion.log" >&2

echo "==> node bench/flagd-core.mjs ${node_args[*]}" >&2
node bench/flagd-core.mjs "${node_args[@]}" > "$out/flagd-core.json"

load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
cores=$(nproc 2>/dev/null || echo '?')
rustc_v=$(rustc --version)
node_v=$(node --version)

# Cross-check: the CLI (if built) and flagd-core pick the same variants for the cases.
agree=""
cli="$target/release/edgeflags"
if [ -x "$cli" ]; then
  agree=$(node --input-type=module - "$cli" <<'EOF'
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { FlagdCore } from '@openfeature/flagd-core';
const cli = process.argv[2];
const flagsPath = 'examples/flags/bench.flagd.json';
const cases = JSON.parse(readFileSync('examples/flags/bench.cases.json', 'utf8'));
const core = new FlagdCore();
core.setConfigurations(readFileSync(flagsPath, 'utf8'));
const bad = [];
for (const [id, c] of Object.entries(cases.cases)) {
  const args = ['eval', '--flags', flagsPath, '--context', JSON.stringify(c.context), '--now', String(cases.now)];
  const ours = JSON.parse(execFileSync(cli, c.flag ? [...args, '--flag', c.flag] : args, { encoding: 'utf8' }));
  const items = c.flag ? [ours] : ours.flags;
  for (const item of items) {
    const ref = core.getFlag(item.key).evaluate(c.context);
    if (ref.variant !== item.variant || ref.reason !== item.reason) bad.push(`${id}/${item.key}: ${item.variant} vs ${ref.variant}`);
  }
}
console.log(bad.length ? `NO — ${bad.slice(0, 3).join('; ')}` : 'yes (same variant and reason for every evaluation)');
EOF
) || agree="(cross-check failed to run)"
fi

RESULTS_DIR="$out" TARGET="$target" QUICK="$quick" CPU="$cpu" CORES="$cores" RUSTC_V="$rustc_v" \
  NODE_V="$node_v" AGREE="$agree" LOAD="$load_start → $load_end" ELAPSED=$(( $(date +%s) - started )) IDS="${ids[*]}" \
  node --input-type=module - <<'EOF' > "$out/core.md"
import { existsSync, readFileSync } from 'node:fs';
const env = process.env;
const node = JSON.parse(readFileSync(`${env.RESULTS_DIR}/flagd-core.json`, 'utf8'));
const rust = {};
for (const id of env.IDS.split(' ')) {
  const f = `${env.TARGET}/criterion/${id}/new/estimates.json`;
  if (!existsSync(f)) continue;
  const e = JSON.parse(readFileSync(f, 'utf8'));
  rust[id] = { median: e.median.point_estimate, mean: e.mean.point_estimate };
}
const ns = (x) => (x === undefined ? '–' : x >= 10000 ? Math.round(x).toLocaleString('en-US') : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const range = (x) => (x && x.per_process_median_ns.length > 1 ? ` (${ns(x.range_ns[0])}–${ns(x.range_ns[1])})` : '');
const ratio = (a, b) => (a === undefined || b === undefined ? '–' : `${(b / a).toFixed(1)}×`);
const labels = {
  static: 'static (no targeting)',
  targeting_match: 'targeting_match (one ends_with rule)',
  fractional_3way: 'fractional_3way (3-way split)',
  bulk_100: 'bulk_100 (all 100 flags)',
};
const lines = [];
lines.push(`Evaluation time per call, median (${env.QUICK === '1' ? 'quick run' : 'full run'}, ${new Date().toISOString().slice(0, 10)}).`);
lines.push('');
lines.push('| case | Rust ns | flagd-core ns | ratio | flagd-core interpreter ns |');
lines.push('|---|---:|---:|---:|---:|');
for (const id of ['static', 'targeting_match', 'fractional_3way', 'bulk_100']) {
  const r = rust[id]?.median;
  const cr = node.results.compiled?.[id];
  const ir = node.results.interpreter?.[id];
  lines.push(`| ${labels[id]} | ${ns(r)} | ${ns(cr?.median_ns)}${range(cr)} | ${ratio(r, cr?.median_ns)} | ${ns(ir?.median_ns)}${range(ir)} |`);
}
if (rust.datalogic_fractional_3way) {
  lines.push(`| fractional_3way via datalogic-rs (generic JsonLogic engine) | ${ns(rust.datalogic_fractional_3way.median)} | | | |`);
}
lines.push('');
lines.push('- ratio = flagd-core ns / Rust ns (how many times faster edgeflags-core is). flagd-core figures are the ' +
  'median over separate Node processes, with the range of the per-process medians in parentheses.');
lines.push('- Rust: `cargo bench -p edgeflags-core --bench eval` (criterion median point estimate; ' +
  '`FlagSet::evaluate` / `evaluate_all`, flag set compiled once).');
lines.push(`- flagd-core: ${node.implementation}, \`resolve<Type>Evaluation\` / \`resolveAll\`, ${node.method}; ` +
  'default (compiled, new Function()) and interpreter (`disableDynamicCodeGeneration`, required on edge runtimes) modes.');
lines.push('- Flags: `examples/flags/bench.flagd.json`; cases: `examples/flags/bench.cases.json`.');
if (env.AGREE) lines.push(`- Same results (edgeflags CLI vs flagd-core on these cases): ${env.AGREE}`);
lines.push(`- Machine: ${env.CPU || node.cpu}, ${env.CORES} cores; ${env.RUSTC_V}; node ${env.NODE_V}; ` +
  `load average (1/5/15 min) ${env.LOAD} (start → end; well above 0 means other work skewed the numbers).`);
lines.push(`- Command: \`bash bench/run.sh${env.QUICK === '1' ? ' --quick' : ''}\` (${env.ELAPSED} s).`);
console.log(lines.join('\n'));
EOF

echo >&2
cat "$out/core.md"
echo >&2
echo "written: bench/results/core.md (raw: bench/results/flagd-core.json, bench/results/criterion.log)" >&2
