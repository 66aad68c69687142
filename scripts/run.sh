#!/usr/bin/env bash
# Runs phimask locally: the edge Worker under `wrangler dev` on
# http://127.0.0.1:8787 with the development policy, and the local sink on
# http://127.0.0.1:8788 that stands in for the destinations and prints what
# each one receives. Offline: no Cloudflare login, no telemetry.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

scripts/setup.sh
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "run: created .dev.vars from .dev.vars.example (development secrets)"
fi

node www/sink.mjs 8788 &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT INT TERM

cat <<'MSG'

run: sending an event (in another terminal):
  curl -s http://127.0.0.1:8787/v1/track -u dev-write-key: -H 'Content-Type: application/json' \
    -d @examples/events/track-appointment.json
run: what each destination received is printed below, and at http://127.0.0.1:8788/

MSG
npx --no-install wrangler dev --env development --ip 127.0.0.1 --port 8787 --show-interactive-dev-session=false
