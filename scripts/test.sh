#!/usr/bin/env bash
# Runs every check and test: installs what is missing (incl. Debian's chromium), then
# fmt, clippy (native and wasm32), native tests, both wasm builds, the offline deploy check,
# and the end-to-end suites (workerd + demo origin + Chromium; differential test against
# @openfeature/flagd-core). Ends with one line "N passed, N failed"; exits non-zero on any
# failure. Steps after a failure still run, so one run shows everything that is wrong.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

passed=0
failed=0
failures=()
logdir="$ROOT/target/test-logs"
mkdir -p "$logdir"

# step NAME CMD... — one check, counted once.
step() {
  local name="$1"; shift
  local log="$logdir/${name// /-}.log" t0=$SECONDS
  say "$name"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); printf '    ok (%ss)\n' $((SECONDS - t0)) >&2
  else
    failed=$((failed + 1)); failures+=("$name"); printf '    FAILED (%ss) — last lines of %s:\n' $((SECONDS - t0)) "$log" >&2
    tail -n 40 "$log" | sed 's/^/    | /' >&2
  fi
}

# cargo_tests — runs the native test suites and counts individual tests.
cargo_tests() {
  local log="$logdir/cargo-test.log" t0=$SECONDS
  say "native tests (cargo test --workspace)"
  local rc=0
  cargo test --workspace --quiet >"$log" 2>&1 || rc=$?
  local p f
  p=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^passed;?$/) s += $(i-1) } END { print s + 0 }' "$log")
  f=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i ~ /^failed;?$/) s += $(i-1) } END { print s + 0 }' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; failures+=("cargo test (did not finish: see $log)"); fi
  [ "$f" -gt 0 ] && failures+=("cargo test: $f failed") && grep -E '^(test .* FAILED|---- )' "$log" | head -20 | sed 's/^/    | /' >&2
  passed=$((passed + p)); failed=$((failed + f))
  printf '    %s passed, %s failed (%ss)\n' "$p" "$f" $((SECONDS - t0)) >&2
}

# node_tests NAME DIR — runs a node --test suite and counts individual tests.
node_tests() {
  local name="$1" dir="$2" tap="$logdir/${1// /-}.tap" t0=$SECONDS
  say "$name"
  local rc=0
  # A hung test fails after 3 minutes instead of holding CI; the harness kills its processes.
  node --test --test-concurrency=1 --test-timeout=180000 --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" "$dir"/*.test.mjs || rc=$?
  local p f
  p=$(awk '/^# pass / { print $3 }' "$tap" | tail -n1); f=$(awk '/^# fail / { print $3 }' "$tap" | tail -n1)
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  [ "$f" -gt 0 ] && failures+=("$name: $f failed")
  passed=$((passed + p)); failed=$((failed + f))
  printf '    %s passed, %s failed (%ss)\n' "$p" "$f" $((SECONDS - t0)) >&2
}

# Both workers as `wrangler deploy` would upload them (request worker first line, control
# worker second).
deploy_dry_run() {
  local name config out raw gz
  : > "$logdir/deploy-size.txt"
  for name in request control; do
    if [ "$name" = request ]; then config=$(nobuild_config); else config=$(nobuild_control_config); fi
    out="$ROOT/target/deploy-dry-run/$name"
    rm -rf "$out"
    "$NODE_BIN/wrangler" deploy --dry-run --outdir "$out" --config "$config" || return 1
    raw=$(du -cb "$out"/* | tail -n1 | cut -f1)
    gz=$(cat "$out"/*.wasm "$out"/*.js 2>/dev/null | gzip -9 | wc -c)
    echo "$name worker deploy bundle: $raw bytes, $gz bytes gzip" | tee -a "$logdir/deploy-size.txt"
  done
}

# The two workers read the same settings: [vars] must be the same in both configs.
same_vars() {
  python3 - "$ROOT/wrangler.toml" "$ROOT/control/wrangler.toml" <<'PY'
import sys, tomllib
a, b = (tomllib.load(open(p, "rb")).get("vars", {}) for p in sys.argv[1:])
if a != b:
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    sys.exit(f"[vars] differ between wrangler.toml and control/wrangler.toml: {diff}")
PY
}

t_start=$SECONDS
bash scripts/setup.sh --browser || die "setup failed: see the message above"

step "cargo fmt --check" cargo fmt --all -- --check
step "clippy native" cargo clippy --workspace --all-targets --quiet -- -D warnings
step "clippy wasm32" cargo clippy -p edgeflags-core -p edgeflags-edge -p edgeflags-pwa \
  --target wasm32-unknown-unknown --quiet -- -D warnings
step "clippy wasm32 (control worker)" cargo clippy -p edgeflags-edge --features control \
  --target wasm32-unknown-unknown --quiet -- -D warnings
step "same [vars] in both worker configs" same_vars
cargo_tests
step "core without diagnostics (as the service worker builds it)" \
  cargo test -p edgeflags-core --no-default-features --test without_diagnostics --quiet
step "build native binaries" bash -c 'cargo build -p edgeflags-demo-origin --quiet && cargo build --release -p edgeflags-cli --quiet'
step "build pwa (wasm32)" bash scripts/build-pwa.sh
step "build edge (wasm32)" bash scripts/build-edge.sh
step "wrangler deploy --dry-run" deploy_dry_run
[ -f "$logdir/deploy-size.txt" ] && sed 's/^/    /' "$logdir/deploy-size.txt" >&2
[ -f pwa/dist/build-report.json ] && printf '    pwa: %s\n' "$(tr -d '\n ' < pwa/dist/build-report.json)" >&2
[ -d tests/differential ] && node_tests "differential test vs flagd-core" tests/differential
node_tests "end-to-end (workerd + origin + chromium)" tests/e2e

printf '\n' >&2
for f in "${failures[@]}"; do printf '  failed: %s\n' "$f" >&2; done
printf 'total time %ss\n' $((SECONDS - t_start)) >&2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
