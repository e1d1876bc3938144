#!/usr/bin/env bash
# Builds the edge worker (edge/build/) with worker-build, fully offline: worker-build would
# otherwise download wasm-bindgen, wasm-opt and esbuild, so point it at local copies.
source "$(dirname "$0")/lib.sh"
wasm_release_profile
cd "$ROOT/edge"
export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
export WASM_OPT_BIN="$NODE_BIN/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
[ -x "$ESBUILD_BIN" ] || die "esbuild missing at $ESBUILD_BIN: run scripts/setup.sh"
worker-build --release
