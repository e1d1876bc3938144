#!/usr/bin/env bash
# Builds the workers-rs baseline (bench/baselines/rust-fetch/build/) the way
# scripts/build-edge.sh builds the edge: same release profile, worker-build offline, the same
# module entry (edge/js/entry.mjs) and the wasm name section stripped.
source "$(dirname "$0")/../../../scripts/lib.sh"
wasm_release_profile
cd "$ROOT/bench/baselines/rust-fetch"
cp "$ROOT/Cargo.lock" Cargo.lock
export CARGO_TARGET_DIR="$ROOT/target"
export WASM_BINDGEN_BIN="$CARGO_BIN/wasm-bindgen"
export WASM_OPT_BIN="$NODE_BIN/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
worker-build --release --out-dir build
mv build/index.js build/worker.mjs
cp "$ROOT/edge/js/entry.mjs" build/index.js
node "$ROOT/scripts/strip-wasm-names.mjs" build/index_bg.wasm
