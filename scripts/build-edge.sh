#!/usr/bin/env bash
# Builds the edge workers (edge/build/: request worker, edge/build-control/: control worker)
# with worker-build, fully offline: worker-build would
# otherwise download wasm-bindgen, wasm-opt and esbuild, so point it at local copies.
source "$(dirname "$0")/lib.sh"
wasm_release_profile
cd "$ROOT/edge"
export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
export WASM_OPT_BIN="$NODE_BIN/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
[ -x "$ESBUILD_BIN" ] || die "esbuild missing at $ESBUILD_BIN: run scripts/setup.sh"
# Two workers (issue 15): the request worker (default features) and the control worker
# (`--features control`, control/wrangler.toml). Same target dir; only the edge crate builds twice.
build_one() {
  local out="$1"; shift
  worker-build --release --out-dir "$out" "$@"
  # Our own module entry calls the handlers without worker-build's per-request Proxies (why:
  # edge/js/entry.mjs); worker-build's module stays beside it as worker.mjs.
  mv "$ROOT/edge/$out/index.js" "$ROOT/edge/$out/worker.mjs"
  cp "$ROOT/edge/js/entry.mjs" "$ROOT/edge/$out/index.js"
  # worker-build keeps wasm's name section (~300 KB raw, ~80 KB gzip); workerd does not need
  # it. EDGEFLAGS_KEEP_WASM_NAMES=1 keeps it for profiling (bench/profile-edge.mjs reads them).
  if [ "${EDGEFLAGS_KEEP_WASM_NAMES:-}" != 1 ]; then
    node "$ROOT/scripts/strip-wasm-names.mjs" "$ROOT/edge/$out/index_bg.wasm"
  fi
}
build_one build
# EDGEFLAGS_REQUEST_ONLY=1: only the request worker (iterating on the request path).
[ "${EDGEFLAGS_REQUEST_ONLY:-}" = 1 ] || build_one build-control -- --features control
