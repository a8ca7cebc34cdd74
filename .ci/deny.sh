#!/usr/bin/env bash
# `cargo deny check` with deny.toml (`make deny`, part of `make lint`): licences, banned and
# duplicate crates, and sources always; security advisories (and yanked crates, which cargo-deny
# checks with them) only when the RustSec advisory database can be had, and otherwise it says
# plainly that they were NOT checked. The database is a git repository on GitHub, which the
# project's machines and CI cannot reach, and no package registry carries a copy of it.
#
# KITSULAN_REQUIRE_ADVISORIES=1 makes a missing database an error (for a machine that should
# reach it).
set -euo pipefail
cd "$(dirname "$0")/.."

deny=$(command -v cargo-deny || true)
if [ -z "$deny" ] && [ -x "$HOME/.cache/kitsulan/tools/bin/cargo-deny" ]; then
  deny="$HOME/.cache/kitsulan/tools/bin/cargo-deny"
fi
if [ -z "$deny" ]; then
  echo "deny.sh: cargo-deny is not installed: \`cargo install cargo-deny --locked\` (.ci/run" \
    "installs it into ~/.cache/kitsulan/tools/bin, where this script also looks)" >&2
  exit 1
fi
"$deny" --version

"$deny" check bans licenses sources

# Fetch (or update) the database into $CARGO_HOME/advisory-dbs; a network that drops packets
# instead of refusing gets two minutes.
if timeout 120 "$deny" fetch db; then
  "$deny" check advisories
  exit 0
fi

# An earlier copy is better than none, and says how old it is.
db=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-*/ 2>/dev/null | head -n1 || true)
if [ -n "$db" ] && date=$(git -C "$db" log -1 --format=%cs 2>/dev/null); then
  echo "advisories: the RustSec database could not be fetched; checking against the copy in" \
    "$db, last changed $date (advisories published since then are not known to it)"
  "$deny" --offline check advisories
  exit 0
fi

cat <<'EOF'

######################################################################################
# NOT CHECKED: security advisories and yanked crates.
# The RustSec advisory database could not be fetched (it is a git repository on
# GitHub, which this machine cannot reach). This run does NOT know whether a
# dependency has a published vulnerability, is unsound or unmaintained, or was yanked.
# Run `make deny` on a machine with internet access to check them (see deny.toml).
######################################################################################

EOF
if [ "${KITSULAN_REQUIRE_ADVISORIES:-}" = 1 ]; then
  echo "deny.sh: KITSULAN_REQUIRE_ADVISORIES=1 and no advisory database" >&2
  exit 1
fi
