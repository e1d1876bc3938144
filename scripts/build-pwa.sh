#!/usr/bin/env bash
# Builds the service worker: Rust → wasm (size profile) → wasm-bindgen glue for a classic and
# a module service worker → wasm-opt → pwa/dist/ with a content-hashed wasm, a generated
# precache manifest and build-report.json (sizes) (scripts/pwa-dist.mjs).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
# The service worker has its own cargo profile, `pwa`, defined here through the environment:
# release + LTO, one codegen unit, panic=abort, and opt-level "z" (smallest code; the
# worker's work is I/O-bound). Its artifacts live in target/wasm32-unknown-unknown/pwa/, so
# this build never invalidates the edge's release artifacts (same target dir, no
# rebuild ping-pong) — the price is that dependencies shared with the edge are compiled
# once more, for this profile. EDGEFLAGS_PWA_OPT_LEVEL=s trades ~17 KB gzip for speed.
export CARGO_PROFILE_PWA_INHERITS=release
export CARGO_PROFILE_PWA_OPT_LEVEL="${EDGEFLAGS_PWA_OPT_LEVEL:-z}"
export CARGO_PROFILE_PWA_LTO=true
export CARGO_PROFILE_PWA_CODEGEN_UNITS=1
export CARGO_PROFILE_PWA_PANIC=abort
export CARGO_PROFILE_PWA_DEBUG=false
# Without `config-checks`: the configuration is checked here, at build time (below).
cargo build -p edgeflags-pwa --lib --no-default-features --target wasm32-unknown-unknown --profile pwa --quiet
raw="$ROOT/target/wasm32-unknown-unknown/pwa/edgeflags_pwa.wasm"
out="$ROOT/target/pwa-bindgen"
rm -rf "$out"; mkdir -p "$out/classic" "$out/module"
# The name section is kept here for wasm-opt's by-name function order, and stripped by it.
wasm-bindgen "$raw" --out-dir "$out/classic" --target no-modules --no-typescript --remove-producers-section
wasm-bindgen "$raw" --out-dir "$out/module" --target web --no-typescript --remove-producers-section
# npm's binaryen, never Debian's: binaryen 108 breaks wasm-bindgen 0.2.130 output.
# What ships is gzip, and these are the passes that gzip smallest here (measured):
# - -O1, not -Oz/-Os/-O2: those make the wasm ~6% smaller raw but ~4% *larger* gzipped (their
#   inlining and code motion compress worse); --dae-optimizing -O1 (dead arguments) −0.9 KB;
# - --reorder-functions-by-name puts the instantiations of one generic function next to each
#   other, inside gzip's 32 KB window (−0.6 KB); --strip-debug then drops the names.
read -r -a wasm_opt_passes <<< "${EDGEFLAGS_PWA_WASM_OPT:--O1 --dae-optimizing -O1 --reorder-functions-by-name}"
for variant in classic module; do
  "$NODE_BIN/wasm-opt" "${wasm_opt_passes[@]}" --strip-debug --strip-producers --strip-target-features \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-reference-types --enable-multivalue \
    "$out/$variant/edgeflags_pwa_bg.wasm" -o "$out/$variant/edgeflags_pwa_bg.wasm"
done
# The glue, minified (esbuild comes with wrangler): −2.3 KB gzip. Names the shims use stay:
# the classic glue's top-level `wasm_bindgen`, the module glue's exports.
"$NODE_BIN/esbuild" "$out/classic/edgeflags_pwa.js" --minify --target=es2020 --log-level=warning \
  --outfile="$out/classic/edgeflags_pwa.js" --allow-overwrite
"$NODE_BIN/esbuild" "$out/module/edgeflags_pwa.js" --minify --format=esm --target=es2020 --log-level=warning \
  --outfile="$out/module/edgeflags_pwa.js" --allow-overwrite
node scripts/pwa-dist.mjs "$out" "$ROOT/pwa/app" "$ROOT/pwa/js" "$ROOT/pwa/dist"
# The embedded configuration, with every check the shipped worker leaves out (unknown
# fields, rules between fields): a mistake fails the build, not the user's browser.
cargo run --quiet -p edgeflags-pwa --bin edgeflags-sw-config -- "$out"/sw-config.*.json >/dev/null
