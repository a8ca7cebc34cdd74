#!/usr/bin/env bash
# Profiles the server under one scenario on SQLite: starts the scenario, waits until its clients
# are connected, records the server with `perf` (cpu-clock samples, no debug info needed) and
# prints the top shared objects and symbols. Needs `make bench-build` and perf (Debian's
# linux-perf).
#   bench/profile.sh <scenario> [scenario flags]     e.g. bench/profile.sh ingest
# MINFD: open files of the server that mean "clients connected" (default 300; ~900 for fanout);
# DELAY: seconds to wait after that (default 5); RECORD: seconds to record (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
OUT="$(mktemp -d /tmp/kitsulan-profile-XXXX)"
"$TARGET/release/kitsulan-bench" --db sqlite --out "$OUT" "$@" > "$OUT/bench.log" 2>&1 &
bench=$!
pid=""
for _ in $(seq 1 600); do
  sleep 1
  pid=$(pgrep -f "$TARGET/release/kitsulan serve" | head -n1 || true)
  [ -n "$pid" ] && [ "$(ls "/proc/$pid/fd" | wc -l)" -gt "${MINFD:-300}" ] && break
done
[ -n "$pid" ] || { echo "the server did not start; see $OUT/bench.log"; exit 1; }
sleep "${DELAY:-5}"
perf record -e cpu-clock -F 999 -p "$pid" -o "$OUT/perf.data" -- sleep "${RECORD:-15}" > "$OUT/perf.log" 2>&1
wait "$bench"
report() { perf report -i "$OUT/perf.data" --stdio --no-children --sort "$1" 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/ \{2,\}-.*$//; s/ \{2,\}$//' | head -n "$2"; }
report dso 8
echo
report symbol 40
echo "(perf data and the run's report in $OUT)"
