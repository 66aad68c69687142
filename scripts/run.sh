#!/usr/bin/env bash
# Runs phimask locally: the edge Worker under `wrangler dev` on
# http://127.0.0.1:8787 with the development policy, the local sink on
# http://127.0.0.1:8788 that stands in for the destinations and prints what
# each one receives, and the playground on http://127.0.0.1:8080. Offline:
# no Cloudflare login, no telemetry.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

scripts/setup.sh
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "run: created .dev.vars from .dev.vars.example (development secrets)"
fi
# Secrets added to the example since .dev.vars was made are added to it.
while IFS= read -r line; do
  name=${line%%=*}
  if ! grep -q "^$name=" .dev.vars; then
    printf '%s\n' "$line" >> .dev.vars
    echo "run: added $name to .dev.vars from .dev.vars.example"
  fi
done < <(grep -E '^[A-Z_]+=' .dev.vars.example)

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 8787 8788 8080; do
  if listening "$port"; then
    echo "run: port $port on 127.0.0.1 is in use (another make run?); stop that first" >&2
    exit 1
  fi
done

pids=()
# Stops the sink and wrangler dev with this script (Ctrl-C or a signal).
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
node www/dev/sink.mjs 8788 &
pids+=($!)
until listening 8788; do
  kill -0 "${pids[0]}" 2>/dev/null || exit 1
  sleep 0.1
done

node www/dev/serve.mjs 8080 &
pids+=($!)

cat <<'MSG'

run: sending an event (in another terminal):
  curl -s http://127.0.0.1:8787/v1/track -u dev-write-key: -H 'Content-Type: application/json' \
    -d @examples/events/track-appointment.json
run: what each destination received is printed below, and at http://127.0.0.1:8788/
run: the playground (policy, event, what each destination gets, the data map):
  http://127.0.0.1:8080/www/playground/playground.html
run: bodies go through the local delivery queue (in memory); dead letters:
  node scripts/dead-letters.mjs list      node scripts/dead-letters.mjs replay

MSG
# Delivery state (D1, local): its tables, as migrations/ defines them.
node_modules/.bin/wrangler d1 migrations apply DELIVERY_STATE --env development --local </dev/null >/dev/null
# The evidence ledger (D1, local): GET /evidence reads it.
node_modules/.bin/wrangler d1 migrations apply LEDGER --env development --local </dev/null >/dev/null
node_modules/.bin/wrangler dev --env development --ip 127.0.0.1 --port 8787 --show-interactive-dev-session=false &
pids+=($!)
# Whichever stops first (e.g. a port in use) stops the other.
wait -n "${pids[@]}"
