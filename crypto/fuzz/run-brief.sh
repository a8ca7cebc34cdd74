#!/usr/bin/env bash
# Builds every kitsulan-crypto fuzz target and runs each for SECONDS (default 10).
# Usage: crypto/fuzz/run-brief.sh [SECONDS]
#
# Works on stable Rust: cargo-fuzz passes nightly-only `-Z` flags, which stable rustc accepts
# with RUSTC_BOOTSTRAP=1. The default sanitizer is `none` (the crate forbids unsafe code and
# this is a quick smoke run); FUZZ_SANITIZER=address opts into ASan (stable ships its runtime).
# New corpus entries go to crypto/fuzz/corpus/ (gitignored); committed seeds are in seeds/.
# A crash fails the script and leaves the input in crypto/fuzz/artifacts/<target>/.
set -euo pipefail
seconds="${1:-10}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

cargo_fuzz_version="0.13.2"
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  echo "== cargo install cargo-fuzz --version $cargo_fuzz_version"
  cargo install cargo-fuzz --version "$cargo_fuzz_version"
fi

export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"
target_dir="${CARGO_TARGET_DIR:-$here/target}"
target_dir="${target_dir%/}/fuzz"
args=(--sanitizer "$sanitizer" --target-dir "$target_dir" --release --debug-assertions)

echo "== cargo fuzz build (sanitizer: $sanitizer)"
cargo fuzz build "${args[@]}"

failed=()
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target" "seeds/$target"
  echo "== $target for ${seconds}s"
  if ! cargo fuzz run "${args[@]}" "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz targets that crashed: ${failed[*]}" >&2
  exit 1
fi
echo "all $(cargo fuzz list | wc -l) fuzz targets ran ${seconds}s each without a crash"
