#!/usr/bin/env bash
# Every scenario of BENCHMARKS.md on SQLite and PostgreSQL with the sizes its tables show, then
# the tables themselves. Needs the release builds (`make bench-build`) and the local
# PostgreSQL; takes about half an hour on the 2-core test machine (an hour with HISTORY_MESSAGES=1000000).
#   bench/run-all.sh [out dir, default bench/results]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench/results}"
TARGET="${CARGO_TARGET_DIR:-target}"
B="$TARGET/release/kitsulan-bench"
[ -x "$B" ] || { echo "build first: make bench-build"; exit 1; }
ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT"
DBS=sqlite,postgres
"$B" --db "$DBS" --out "$OUT" fanout
"$B" --db "$DBS" --out "$OUT" ingest
"$B" --db "$DBS" --out "$OUT" idle
# 100,000 messages by default; BENCHMARKS.md's SQLite rows use HISTORY_MESSAGES=1000000 (a
# million takes ~6.5 minutes to fill on SQLite here, ~21 on PostgreSQL).
"$B" --db "$DBS" --out "$OUT" history --messages "${HISTORY_MESSAGES:-100000}"
"$B" --db "$DBS" --out "$OUT" keys
"$B" --db "$DBS" --out "$OUT" signin-burst
# The SFU keeps nothing in the database: one run.
"$B" --db sqlite --out "$OUT" voice
"$B" --out "$OUT" report --into BENCHMARKS.md
