#!/usr/bin/env bash
# `make deploy-check`: the deployment files are valid, checked by the real tools.
#   - docker-compose.yml and docker-compose.lite.yml: `docker compose config -q` when the Compose
#     v2 plugin is there, else Debian's docker-compose (v1.29, `docker-compose config -q`): both
#     validate against the Compose schema and interpolate the variables. They run on a copy beside
#     an `.env` made of .env.example plus deploy/compose-check.env (the values .env must give),
#     so the developer's own `.env` is never read or touched.
#   - Dockerfile: dockerfile-utils (npm, the linter of VS Code's Docker language server: unknown
#     instructions and flags, wrong arguments, bad ports); the image cannot be built here (no
#     registry of base images), so this and reading it are what it gets.
#   - deploy/kitsulan.service: `systemd-analyze verify` (which prints, but does not fail on, an
#     unknown key or a bad value: any output fails here) and `systemd-analyze security --offline`
#     with an exposure threshold, so a lost hardening option fails.
# Each checker is first shown a broken file and must refuse it (a check that cannot fail is none).
# Needs: docker-compose (apt-get install docker-compose) or the compose plugin, systemd-analyze
# (apt-get install systemd), and npx (Node.js) for the pinned dockerfile-utils. A missing tool
# fails with what to install.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  echo "deploy-check: no Compose checker: apt-get install docker-compose (or the compose plugin)" >&2
  exit 1
fi
command -v systemd-analyze >/dev/null || {
  echo "deploy-check: systemd-analyze is missing: apt-get install systemd" >&2
  exit 1
}
command -v npx >/dev/null || {
  echo "deploy-check: npx is missing (it runs dockerfile-utils): apt-get install nodejs npm" >&2
  exit 1
}
echo "== compose: $("${compose[@]}" version --short 2>/dev/null || "${compose[@]}" version | head -n1)"

cp "$root/docker-compose.yml" "$root/docker-compose.lite.yml" "$work/"
cat "$root/.env.example" "$root/deploy/compose-check.env" > "$work/.env"
compose_config() { (cd "$work" && "${compose[@]}" -f "$1" config -q); }

# The checker must refuse a service with a key Compose does not have.
sed 's/^    restart: unless-stopped$/    restart: unless-stopped\n    bogus_key: 1/' "$work/docker-compose.lite.yml" > "$work/broken.yml"
if compose_config broken.yml >/dev/null 2>&1; then
  echo "deploy-check: the Compose checker accepted a broken file" >&2
  exit 1
fi
# And a Pro file without its required secrets.
if (cd "$work" && mv .env env.full && cp "$root/.env.example" .env && "${compose[@]}" -f docker-compose.yml config -q) >/dev/null 2>&1; then
  echo "deploy-check: docker-compose.yml was accepted without the secrets .env must set" >&2
  exit 1
fi
(cd "$work" && mv env.full .env)

for file in docker-compose.lite.yml docker-compose.yml; do
  compose_config "$file"
  echo "ok: $file"
done

# The Dockerfile.
dockerfile_lint=(npx --yes dockerfile-utils@0.16.3 lint)
printf 'FROM scratch\nHEALTHCHECK --intervl=3s CMD ["/x"]\n' > "$work/broken.Dockerfile"
if "${dockerfile_lint[@]}" "$work/broken.Dockerfile" >/dev/null 2>&1; then
  echo "deploy-check: dockerfile-utils accepted a broken Dockerfile (is npx working?)" >&2
  exit 1
fi
"${dockerfile_lint[@]}" "$root/Dockerfile"
echo "ok: Dockerfile"

# systemd: the unit as installed, with ExecStart pointed at a binary that exists here.
mkdir -p "$work/units"
sed "s|^ExecStart=/usr/local/bin/kitsulan |ExecStart=/bin/true |" "$root/deploy/kitsulan.service" > "$work/units/kitsulan.service"
printf '[Service]\nExecStart=/bin/true\nProtectSystem=sometimes\n' > "$work/units/broken.service"
if [ -z "$(systemd-analyze verify "$work/units/broken.service" 2>&1)" ]; then
  echo "deploy-check: systemd-analyze verify said nothing about a broken unit" >&2
  exit 1
fi
out="$(systemd-analyze verify "$work/units/kitsulan.service" 2>&1)" || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "deploy-check: systemd-analyze verify deploy/kitsulan.service:" >&2
  echo "$out" >&2
  exit 1
fi
# Exposure on systemd's 0-10 scale, times 10: 20 = 2.0 ("OK"); the unit scores 1.6.
systemd-analyze security --offline=yes --threshold=20 --no-pager "$work/units/kitsulan.service" | tail -n1
echo "ok: deploy/kitsulan.service"
