# KitsuLAN: the two commands a new machine needs are `make run` and `make test` (see README).
# Set CARGO_TARGET_DIR to keep Rust builds outside the checkout (CI does).

CARGO ?= cargo
NPM ?= npm
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run build pwa wasm fuzz test lint fmt clean bench-build bench-smoke deploy-check

## Build the PWA and the release binary, then start Lite on http://localhost:8080.
run: build
	$(TARGET_DIR)/release/kitsulan serve

## The single `kitsulan` binary with the PWA embedded.
build: pwa
	$(CARGO) build --release -p kitsulan-server

## The PWA (TypeScript types generated from proto/, crypto from the WASM build), built into
## pwa/dist.
pwa: wasm pwa/node_modules/.package-lock.json
	cd pwa && $(NPM) run build

## The crypto crate as WebAssembly (crypto/pkg) for the PWA; installs the wasm32 target and
## wasm-bindgen-cli (pinned) on first use.
wasm:
	crypto/build-wasm.sh

## Release builds of the server and the load generator (see BENCHMARKS.md).
bench-build:
	$(CARGO) build --release -p kitsulan-server -p kitsulan-bench

## Every benchmark scenario at a tiny size on SQLite, failing on any error or lost delivery.
bench-smoke:
	$(CARGO) build -p kitsulan-server --bin kitsulan
	$(CARGO) build -p kitsulan-bench
	$(TARGET_DIR)/debug/kitsulan-bench --out $(TARGET_DIR)/bench-smoke smoke

## A short run of every crypto fuzz target (FUZZ_SECONDS each, default 10).
fuzz:
	crypto/fuzz/run-brief.sh $(or $(FUZZ_SECONDS),10)

pwa/node_modules/.package-lock.json: pwa/package-lock.json
	cd pwa && $(NPM) ci --no-audit --no-fund

## Every check and test: formatting, lints, the PWA type check and build, the crypto crate
## natively and as WASM under Node.js, unit, store conformance (SQLite and PostgreSQL) and
## end-to-end tests against the real binary, the browser tests (Playwright driving the system
## Chromium against the binary with the PWA embedded), a smoke run of the load generator, then a
## short fuzz run of every decoder.
test: lint pwa wasm
	cd pwa && $(NPM) test
	$(CARGO) build -p kitsulan-server --bin kitsulan
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --profile ci; \
	else \
		echo "cargo-nextest not found; using cargo test"; \
		$(CARGO) test --workspace; \
	fi
	cd pwa && CARGO_TARGET_DIR=$(abspath $(TARGET_DIR)) KITSULAN_E2E_SKIP_BUILD=1 $(NPM) run e2e
	$(MAKE) bench-smoke
	$(MAKE) fuzz

lint: wasm pwa/node_modules/.package-lock.json deny proto-check deploy-check
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p kitsulan-crypto --lib --target wasm32-unknown-unknown --features wasm -- -D warnings
	cd pwa && $(NPM) run typecheck
	cd pwa && $(NPM) run lint

fmt:
	$(CARGO) fmt --all

.PHONY: deny proto-check proto-baseline

## The deployment files: both compose files through `docker compose config` (or Debian's
## docker-compose), the systemd unit through `systemd-analyze verify` and `security`.
deploy-check:
	deploy/check.sh

## cargo deny check (deny.toml): licences, bans and duplicate versions, sources; advisories only
## when the RustSec database can be fetched, and a plain NOT CHECKED when it cannot.
deny:
	.ci/deny.sh

## buf lint and buf breaking for proto/ (proto/check.sh says what "breaking" is compared with).
proto-check: pwa/node_modules/.package-lock.json
	proto/check.sh

## Record the current API as the baseline buf breaking compares with (refuses a breaking one).
proto-baseline: pwa/node_modules/.package-lock.json
	proto/check.sh --update-baseline

clean:
	$(CARGO) clean
	rm -rf pwa/dist pwa/src/gen crypto/pkg
