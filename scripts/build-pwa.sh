#!/usr/bin/env bash
# Builds the service worker: Rust → wasm (size profile) → wasm-bindgen glue for a classic and
# a module service worker → wasm-opt → pwa/dist/ with a content-hashed wasm and a generated
# precache manifest (scripts/pwa-dist.mjs).
source "$(dirname "$0")/lib.sh"
wasm_release_profile
cd "$ROOT"
cargo build -p edgeflags-pwa --target wasm32-unknown-unknown --release --quiet
raw="$ROOT/target/wasm32-unknown-unknown/release/edgeflags_pwa.wasm"
out="$ROOT/target/pwa-bindgen"
rm -rf "$out"; mkdir -p "$out/classic" "$out/module"
wasm-bindgen "$raw" --out-dir "$out/classic" --target no-modules --no-typescript --remove-name-section --remove-producers-section
wasm-bindgen "$raw" --out-dir "$out/module" --target web --no-typescript --remove-name-section --remove-producers-section
# npm's binaryen, never Debian's: binaryen 108 breaks wasm-bindgen 0.2.130 output.
for variant in classic module; do
  "$NODE_BIN/wasm-opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-reference-types --enable-multivalue \
    "$out/$variant/edgeflags_pwa_bg.wasm" -o "$out/$variant/edgeflags_pwa_bg.wasm"
done
node scripts/pwa-dist.mjs "$out" "$ROOT/pwa/app" "$ROOT/pwa/js" "$ROOT/pwa/dist"
