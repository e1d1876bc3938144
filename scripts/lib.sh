# Shared helpers for the edgeflags scripts. Source it; do not run it.
# shellcheck shell=bash
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
NODE_BIN="$ROOT/node_modules/.bin"

# Wrangler and worker-build stay offline and keep their state inside the repo.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export XDG_CACHE_HOME="$ROOT/.cache"
export WRANGLER_LOG_PATH="$ROOT/.cache/wrangler-logs"
export WRANGLER_REGISTRY_PATH="$ROOT/.cache/wrangler-registry"

# Size-oriented settings for the wasm32 release builds (edge and pwa share them, so their
# common dependencies are compiled once). Native release builds (CLI, benches) keep the
# defaults from Cargo.toml, which is why these are set per build script, not globally.
wasm_release_profile() {
  export CARGO_PROFILE_RELEASE_OPT_LEVEL="${EDGEFLAGS_WASM_OPT_LEVEL:-s}"
  export CARGO_PROFILE_RELEASE_LTO=true
  export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
  export CARGO_PROFILE_RELEASE_PANIC=abort
}

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# The version of a crate recorded in Cargo.lock.
lock_version() {
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

# Derives a wrangler config without the [build] section, for runs that build beforehand
# (wrangler dev would otherwise build twice at start-up). Prints its path.
nobuild_config() {
  local out="$ROOT/.wrangler/wrangler.nobuild.toml"
  mkdir -p "$ROOT/.wrangler"
  # A running `wrangler dev` (the demo, another test) watches this file: write a temporary
  # file and rename it over the old one only when the content changed, so a watcher never
  # reads it half-written (it used to reload a truncated file and exit).
  local tmp
  tmp=$(mktemp "$ROOT/.wrangler/.nobuild.XXXXXX")
  awk '
    /^\[build\]/ { skip = 1; next }
    /^\[/ { skip = 0 }
    skip { next }
    /^main *=/ { print "main = \"../edge/build/index.js\""; next }
    { print }
  ' "$ROOT/wrangler.toml" > "$tmp"
  if cmp -s "$tmp" "$out"; then rm -f "$tmp"; else mv -f "$tmp" "$out"; fi
  # wrangler reads local secrets from .dev.vars beside the config it is given.
  if [ -f "$ROOT/.dev.vars" ]; then
    if ! cmp -s "$ROOT/.dev.vars" "$ROOT/.wrangler/.dev.vars"; then
      tmp=$(mktemp "$ROOT/.wrangler/.devvars.XXXXXX")
      cp "$ROOT/.dev.vars" "$tmp" && mv -f "$tmp" "$ROOT/.wrangler/.dev.vars"
    fi
  else
    rm -f "$ROOT/.wrangler/.dev.vars"
  fi
  printf '%s\n' "$out"
}
