#!/usr/bin/env bash
# Runs the demo: installs what is missing, builds edge + pwa + demo origin, seeds local KV
# with examples/flags/demo.flagd.json (only when no flag set is stored yet, so admin changes
# survive restarts), starts the demo origin and `wrangler dev` on 127.0.0.1, prints the URL.
# Ctrl-C stops everything.
#   PORT=8787 (edge)  ORIGIN_PORT=8788 (v1; v2 is ORIGIN_PORT+1)  INSPECTOR_PORT=9229
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PORT="${PORT:-8787}"
ORIGIN_PORT="${ORIGIN_PORT:-8788}"
CANARY_PORT="$((ORIGIN_PORT + 1))"
INSPECTOR_PORT="${INSPECTOR_PORT:-9229}"
STATE="$ROOT/.wrangler/dev-state"

bash scripts/setup.sh
say "building (incremental)"
cargo build -p edgeflags-demo-origin --quiet
bash scripts/build-pwa.sh
bash scripts/build-edge.sh >/dev/null
# Local secrets (wrangler's .dev.vars convention): an admin token for the admin API.
if [ ! -f .dev.vars ]; then
  say "creating .dev.vars with a random ADMIN_TOKEN (kept out of git)"
  printf 'ADMIN_TOKEN=%s\n' "$(node -e 'console.log(require("crypto").randomBytes(24).toString("hex"))')" > .dev.vars
fi
# Visitor ids are signed (issue 14): add a signing key to an older .dev.vars too.
if ! grep -q '^IDENTITY_KEYS=' .dev.vars; then
  printf 'IDENTITY_KEYS=%s\n' "$(node -e 'console.log(require("crypto").randomBytes(24).toString("hex"))')" >> .dev.vars
fi
# Web Push (issue 16): a VAPID key pair and contact for the push channel (README "Notifications").
if ! grep -q '^VAPID_PRIVATE_KEY=' .dev.vars; then
  node -e 'const e = require("crypto").createECDH("prime256v1"); e.generateKeys();
    const d = Buffer.from(e.getPrivateKey("hex").padStart(64, "0"), "hex");
    console.log(`VAPID_PUBLIC_KEY=${e.getPublicKey().toString("base64url")}\nVAPID_PRIVATE_KEY=${d.toString("base64url")}\nVAPID_SUBJECT=mailto:ops@example.invalid`)' >> .dev.vars
fi
ADMIN_TOKEN=$(sed -n 's/^ADMIN_TOKEN=//p' .dev.vars | head -n1)
config=$(nobuild_config)
control_config=$(nobuild_control_config)

wr() { "$NODE_BIN/wrangler" "$@" --config "$config"; }
# `kv key get` prints "Value not found" with exit 0 for a missing key, so list instead.
if ! wr kv key list --prefix flags --binding FLAGS --local --persist-to "$STATE" 2>/dev/null \
  | node -e 'const k = JSON.parse(require("fs").readFileSync(0, "utf8")); process.exit(k.some((e) => e.name === "flags") ? 0 : 1)'; then
  say "seeding local KV with examples/flags/demo.flagd.json"
  wr kv key put flags --path examples/flags/demo.flagd.json --binding FLAGS --local --persist-to "$STATE" >/dev/null
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

set -m # each background job gets its own process group, so wrangler's workerd stops with it
target/debug/edgeflags-demo-origin --v1 "127.0.0.1:$ORIGIN_PORT" --v2 "127.0.0.1:$CANARY_PORT" --static pwa/dist &
pids+=($!)
# Both workers in one process: the request worker (first, on $PORT) and the control worker.
"$NODE_BIN/wrangler" dev --config "$config" --config "$control_config" --local --ip 127.0.0.1 --port "$PORT" \
  --inspector-port "$INSPECTOR_PORT" --persist-to "$STATE" --show-interactive-dev-session=false \
  --var "ORIGIN_URL:http://127.0.0.1:$ORIGIN_PORT" --var "CANARY_ORIGIN_URL:http://127.0.0.1:$CANARY_PORT" \
  --test-scheduled &
pids+=($!)
set +m
# `wrangler dev` does not fire cron triggers by itself: play the once-a-minute cron of
# wrangler.toml locally, so the demo's guarded rollout of `backend` is evaluated.
( while sleep 60; do
    node -e 'fetch(process.argv[1]).catch(() => {})' "http://127.0.0.1:$PORT/__scheduled?cron=*+*+*+*+*"
  done ) &
pids+=($!)

for _ in $(seq 1 300); do
  node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
    "http://127.0.0.1:$PORT/__edge/health" && break
  sleep 0.2
done
cat >&2 <<MSG

  edgeflags demo is up:  http://127.0.0.1:$PORT/
    edge status           http://127.0.0.1:$PORT/__edge/status
    OFREP                 curl -s -XPOST http://127.0.0.1:$PORT/ofrep/v1/evaluate/flags -d '{"context":{"targetingKey":"me"}}'
    admin API             curl -s -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:$PORT/__edge/flags
    kill switch           curl -s -XPOST -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:$PORT/__edge/features/disable -d '{"flag":"new-checkout"}'
    metrics (Prometheus)  curl -s -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:$PORT/__edge/metrics
    experiment results    curl -s -H "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:$PORT/__edge/features/experiments/results
    guarded rollout       curl -s -XPOST -H "Authorization: Bearer $ADMIN_TOKEN" 'http://127.0.0.1:$PORT/__edge/rollouts/evaluate?dryRun=true'
                          (the cron runs every minute; break v2 with: curl -s -XPOST http://127.0.0.1:$ORIGIN_PORT/__origin/faults -d '{"v2ErrorPercent":5}')
    origin v1 (stable)    http://127.0.0.1:$ORIGIN_PORT/   v2 (canary) http://127.0.0.1:$CANARY_PORT/
  Flags: edit examples/flags/demo.flagd.json, then
    npx wrangler kv key put flags --path examples/flags/demo.flagd.json --binding FLAGS --local --persist-to .wrangler/dev-state
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}" || true
