#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz on the pinned nightly): each target
# for SECONDS (default 600) from a seed corpus made from the test vectors,
# after replaying every saved crash in fuzz/regressions/<target>/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# With RESULTS=FILE, each target's figures (runs, exec/s, coverage) are
# written to FILE's table (make fuzz: fuzz/RESULTS.md). A crash stops the
# run with exit 1; its input is in fuzz/artifacts/<target>/: copy it to
# fuzz/regressions/<target>/ once fixed, so every test run replays it.
# Targets run side by side, as many at a time as there are cores
# (FUZZ_JOBS to change it): each is one libFuzzer process on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json_reader request_reader policy sanitize)
nightly=$(cat scripts/nightly)

node fuzz/seeds.mjs >/dev/null
cd fuzz
cargo "+$nightly" fuzz build >/dev/null
fuzz_one() {
  local t=$1
  mkdir -p "regressions/$t" "corpus/$t"
  log="../target/fuzz-$t.log"
  mkdir -p ../target
  mapfile -t saved < <(find "regressions/$t" -type f ! -name .gitkeep | sort)
  if [ ${#saved[@]} -gt 0 ]; then
    cargo "+$nightly" fuzz run "$t" "${saved[@]}" -- -runs=0 >/dev/null 2>"$log" \
      || { tail -30 "$log" >&2; echo "fuzz: $t: a saved crash fails again" >&2; return 1; }
    echo "fuzz: $t: ${#saved[@]} saved crash input(s) replayed"
  fi
  if ! cargo "+$nightly" fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 >/dev/null 2>"$log"; then
    grep -a -E "panicked|ERROR|SUMMARY" "$log" | head -5 >&2
    echo "fuzz: $t crashed; the input is in fuzz/artifacts/$t/" >&2
    return 1
  fi
  done_line=$(grep -a -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1)
  runs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$done_line")
  field() { sed -E "s|.*$1: ([0-9]+[a-zA-Z]*).*|\1|" <<<"$done_line"; }
  printf 'fuzz: %-15s %ss, %s runs, %s exec/s, cov %s, ft %s, corpus %s, no crash\n' \
    "$t" "$seconds" "$runs" "$(field exec/s)" "$(field cov)" "$(field ft)" "$(field corp)"
  if [ -n "${RESULTS:-}" ]; then
    flock "$OLDPWD/target/fuzz-results.lock" node - "$OLDPWD/$RESULTS" "$t" "$seconds" "$runs" "$(field exec/s)" "$(field cov)" "$(field ft)" "$(field corp)" <<'JS'
const fs = require("node:fs");
const [file, target, seconds, runs, rate, cov, ft, corp] = process.argv.slice(2);
const head = ["| target | seconds | runs | exec/s | coverage (edges) | features | corpus | crashes |", "|---|---|---|---|---|---|---|---|"];
const rows = new Map();
if (fs.existsSync(file)) for (const line of fs.readFileSync(file, "utf8").split("\n")) {
  const m = /^\| (\w+) \| \d/.exec(line);
  if (m) rows.set(m[1], line);
}
rows.set(target, `| ${target} | ${seconds} | ${runs} | ${rate} | ${cov} | ${ft} | ${corp} | 0 |`);
const date = new Date().toISOString().slice(0, 10);
fs.writeFileSync(file, [
  "# Fuzzing results", "",
  `Written by \`make fuzz\` (\`scripts/fuzz.sh\`; last run ${date}, nightly ${fs.readFileSync("../scripts/nightly", "utf8").trim()}, cargo-fuzz 0.13, libFuzzer), one row per target, on a 2-core VM.`,
  "The targets and what they assert are described in docs/testing.md (Fuzzing).", "",
  ...head, ...[...rows.keys()].sort().map((k) => rows.get(k)), "",
].join("\n"));
JS
  fi
}

# FUZZ_JOBS lanes (one per core unless set), each fuzzing its share of the
# targets one after another; fails once all have ended if any failed.
lanes=${FUZZ_JOBS:-$(nproc)}
pids=()
for ((lane = 0; lane < lanes && lane < ${#targets[@]}; lane++)); do
  (
    set -e
    for ((i = lane; i < ${#targets[@]}; i += lanes)); do fuzz_one "${targets[$i]}"; done
  ) &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
exit "$failed"
