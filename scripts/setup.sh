#!/usr/bin/env bash
# Installs what the build and the tests need, skipping whatever is already right:
#   wasm32 target, wasm-bindgen-cli and worker-build at the versions Cargo.lock pins,
#   npm packages (wrangler, binaryen, playwright-core, flagd-core) and, with --browser,
#   Debian's chromium (never a browser download).
# Usage: scripts/setup.sh [--browser]
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

want_browser=false
[ "${1:-}" = "--browser" ] && want_browser=true

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs), then rerun."
command -v node >/dev/null || die "node not found: install Node.js 20 (e.g. apt-get install nodejs npm), then rerun."
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js >= 20 is needed (found $(node --version))."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

[ -f Cargo.lock ] || cargo generate-lockfile

bindgen_version=$(lock_version wasm-bindgen)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen_version" ]; then
  say "installing wasm-bindgen-cli $bindgen_version (matches the wasm-bindgen crate; takes a few minutes once)"
  # No --locked: its lock file pins a webpki-roots this registry no longer resolves.
  cargo install wasm-bindgen-cli --version "$bindgen_version" --force
fi

worker_version=$(lock_version worker)
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$worker_version" ]; then
  say "installing worker-build $worker_version (matches the worker crate; takes several minutes once)"
  cargo install "worker-build@$worker_version" --locked --force
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || [ package.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi

if $want_browser && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    say "installing Debian's chromium (sudo)"
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    die "Chromium is missing at /usr/bin/chromium and this user cannot install it. Run as root: apt-get install -y chromium — then rerun."
  fi
fi
say "tools ready: wasm-bindgen $bindgen_version, worker-build $worker_version, wrangler $("$NODE_BIN/wrangler" --version 2>/dev/null | tail -n1)"
