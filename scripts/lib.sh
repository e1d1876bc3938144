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

# Derives wrangler configs without the [build] section, for runs that build beforehand
# (wrangler dev would otherwise build twice at start-up): .wrangler/wrangler.nobuild.toml (the
# request worker) and .wrangler/control.nobuild.toml (the control worker). Prints the first's
# path; `nobuild_control_config` prints the second's.
nobuild_config() {
  local tmp
  mkdir -p "$ROOT/.wrangler"
  derive_config "$ROOT/wrangler.toml" "$ROOT/.wrangler/wrangler.nobuild.toml" ../edge/build/index.js
  derive_config "$ROOT/control/wrangler.toml" "$ROOT/.wrangler/control.nobuild.toml" ../edge/build-control/index.js
  # wrangler reads local secrets from .dev.vars beside the config it is given.
  if [ -f "$ROOT/.dev.vars" ]; then
    if ! cmp -s "$ROOT/.dev.vars" "$ROOT/.wrangler/.dev.vars"; then
      tmp=$(mktemp "$ROOT/.wrangler/.devvars.XXXXXX")
      cp "$ROOT/.dev.vars" "$tmp" && mv -f "$tmp" "$ROOT/.wrangler/.dev.vars"
    fi
  else
    rm -f "$ROOT/.wrangler/.dev.vars"
  fi
  printf '%s\n' "$ROOT/.wrangler/wrangler.nobuild.toml"
}

nobuild_control_config() {
  nobuild_config >/dev/null
  printf '%s\n' "$ROOT/.wrangler/control.nobuild.toml"
}

# derive_config SRC OUT MAIN — SRC without [build], its main pointing at MAIN.
derive_config() {
  local src="$1" out="$2" main="$3" tmp
  # A running `wrangler dev` (the demo, another test) watches this file: write a temporary
  # file and rename it over the old one only when the content changed, so a watcher never
  # reads it half-written (it used to reload a truncated file and exit).
  tmp=$(mktemp "$ROOT/.wrangler/.nobuild.XXXXXX")
  awk -v main="$main" '
    /^\[build\]/ { skip = 1; next }
    /^\[/ { skip = 0 }
    skip { next }
    /^main *=/ { print "main = \"" main "\""; next }
    { print }
  ' "$src" > "$tmp"
  if cmp -s "$tmp" "$out"; then rm -f "$tmp"; else mv -f "$tmp" "$out"; fi
}
