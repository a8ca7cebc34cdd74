#!/usr/bin/env bash
# Lints proto/ and fails on a breaking change to the API (the rules are in proto/buf.yaml), with
# the buf CLI the PWA already installs. `make proto-check` (part of `make lint`, so of CI) runs it.
#
# "Breaking" needs an older API to compare with, and CI runs on a fresh clone of main, where
# HEAD is main: "against main" would compare main with itself. So proto/ is compared with:
#
# 1. The recorded baseline, proto/api-baseline.binpb: the API as last recorded, as a buf image
#    (descriptors only, so comments do not change it). It travels with the repository, so this
#    check is the same in a fresh or shallow clone, on main or a branch, however many commits a
#    change spans and however it is merged. `make proto-baseline` records the current API (do it
#    in the commit that changes the API); it runs these checks first, so it refuses a break.
# 2. The previous version in git, which also covers what was added after the baseline:
#    - on a branch (HEAD not on main): proto/ at the merge base with main, what the branch
#      started from;
#    - on main (HEAD == main): proto/ at HEAD's first parent: the main before a merge commit,
#      or before the last commit when commits land without one (then a break in an earlier
#      commit of the same push is still caught by 1 for everything the baseline holds).
#    PROTO_BREAKING_AGAINST=<git revision> compares with another revision instead.
# 3. If the baseline itself changed since that revision: the new baseline against the old one,
#    so re-recording it cannot hide a break.
#
# A deliberate break (removing a whole package version, say): in the commit that makes it, list
# the rule and file under `breaking.ignore_only` in buf.yaml with the reason and re-record the
# baseline; the next commit removes the ignore again.
#
#   proto/check.sh                    lint and breaking checks
#   proto/check.sh --update-baseline  the same, then record the current API as the baseline
set -euo pipefail
cd "$(dirname "$0")"

BUF=../pwa/node_modules/.bin/buf
BASELINE=api-baseline.binpb
if [ ! -x "$BUF" ]; then
  echo "proto/check.sh: $BUF is missing; run \`cd pwa && npm ci\` first" >&2
  exit 1
fi
echo "buf $("$BUF" --version)"

echo "buf lint proto/"
"$BUF" lint

failed=0
breaking() { # <what> <buf breaking arguments…>
  local what=$1
  shift
  echo "buf breaking: $what"
  "$BUF" breaking "$@" || failed=1
}

breaking "proto/ against the recorded baseline proto/$BASELINE" --against "$BASELINE"

previous="" why=""
if [ -n "${PROTO_BREAKING_AGAINST:-}" ]; then
  previous=$(git rev-parse --verify "$PROTO_BREAKING_AGAINST^{commit}")
  why="$PROTO_BREAKING_AGAINST (PROTO_BREAKING_AGAINST)"
elif git rev-parse --verify -q main >/dev/null; then
  base=$(git merge-base HEAD main || true)
  if [ -n "$base" ] && [ "$base" != "$(git rev-parse HEAD)" ]; then
    previous=$base
    why="the merge base with main"
  elif git rev-parse --verify -q 'HEAD^1' >/dev/null; then
    previous=$(git rev-parse 'HEAD^1')
    why="HEAD's first parent (HEAD is main)"
  fi
fi
if [ -z "$previous" ]; then
  echo "NOT CHECKED: proto/ against the previous commit (this clone has no \`main\` branch or" \
    "no parent commit); only the recorded baseline was compared."
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # git archive works the same in a clone and in a worktree. An old commit may have no buf.yaml;
  # the rules come from the current one anyway.
  git archive "$previous" -- . | tar -x -C "$tmp"
  short=$(git rev-parse --short "$previous")
  breaking "proto/ against $why, $short" --against "$tmp"
  if [ -f "$tmp/$BASELINE" ] && ! cmp -s "$tmp/$BASELINE" "$BASELINE"; then
    breaking "the baseline against the one at $short" "$BASELINE" --against "$tmp/$BASELINE" \
      --config buf.yaml
  fi
fi

if [ "$failed" -ne 0 ]; then
  echo "proto/check.sh: a breaking change to the API (above). Keep what clients use: add a" \
    "field, RPC or message instead, and reserve the number and name of one you remove." >&2
  exit 1
fi

if [ "${1:-}" = "--update-baseline" ]; then
  "$BUF" build --exclude-source-info -o "$BASELINE"
  echo "recorded the API in proto/$BASELINE: commit it"
fi
