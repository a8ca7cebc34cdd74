# KitsuLAN: the two commands a new machine needs are `make run` and `make test` (see README).
# Set CARGO_TARGET_DIR to keep Rust builds outside the checkout (CI does).

CARGO ?= cargo
NPM ?= npm
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run build pwa wasm fuzz test lint fmt clean bench-build bench-smoke deploy-check dist pi-check

# Cross builds (`make dist`, the arm64 test): the linker and the C compiler for ring's and
# SQLite's C code, per target. Each variable names one target, so native builds are untouched;
# set here rather than in .cargo/config.toml so a plain `cargo build` never needs the cross
# tools. Debian packages: gcc-aarch64-linux-gnu, musl-tools (musl-gcc), and musl-dev:arm64
# (aarch64-linux-musl-gcc: Debian's cross gcc with musl's arm64 headers; needs
# `dpkg --add-architecture arm64`). Static musl binaries link with Rust's own musl
# (self-contained), through rust-lld for arm64.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER ?= aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu ?= aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu ?= aarch64-linux-gnu-ar
export CC_x86_64_unknown_linux_musl ?= musl-gcc
export CC_aarch64_unknown_linux_musl ?= aarch64-linux-musl-gcc
export AR_aarch64_unknown_linux_musl ?= aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER ?= rust-lld

# The arm64 build the qemu test runs (`make pi-check`, `make test`): a debug build, like the
# x86-64 one the other e2e tests run. PI_BIN=dist/kitsulan-… checks a release binary instead.
PI_BIN ?= $(abspath $(TARGET_DIR))/aarch64-unknown-linux-gnu/debug/kitsulan

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

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
DIST_TARGETS ?= x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl

## Release binaries for download, PWA embedded, stripped (the `dist` profile): x86-64 and
## arm64 (Raspberry Pi 3/4/5 on a 64-bit OS), each for glibc and as a static musl binary, in
## dist/kitsulan-VERSION-TRIPLE, with SHA256SUMS. Checks each is for its machine, embeds the web
## app, and that the musl ones are static.
dist: pwa
	rm -rf dist && mkdir -p dist
	set -e; for t in $(DIST_TARGETS); do \
		start=$$(date +%s); \
		$(CARGO) build --locked --profile dist --target $$t -p kitsulan-server --bin kitsulan; \
		echo "$$t: built in $$(( $$(date +%s) - start )) s"; \
		cp $(TARGET_DIR)/$$t/dist/kitsulan dist/kitsulan-$(VERSION)-$$t; \
	done
	set -e; for f in dist/kitsulan-*; do \
		info=$$(file -b $$f); echo "$$f: $$info"; \
		case $$f in *aarch64*) want=aarch64;; *) want=x86-64;; esac; \
		echo "$$info" | grep -q "$$want" || { echo "$$f is not an $$want binary"; exit 1; }; \
		echo "$$info" | grep -q 'stripped' && ! echo "$$info" | grep -q 'not stripped' \
			|| { echo "$$f is not stripped"; exit 1; }; \
		case $$f in *musl) echo "$$info" | grep -Eq 'statically linked|static-pie linked' \
			|| { echo "$$f is not static"; exit 1; };; esac; \
		! grep -q 'built without the web app' $$f || { echo "$$f lacks the PWA"; exit 1; }; \
	done
	cd dist && sha256sum kitsulan-* > SHA256SUMS
	ls -l dist

## The arm64 binary under qemu-aarch64 (Debian qemu-user): starts, answers /readyz, serves the
## PWA, two people sign up and exchange a message (e2e-tests, arm64.rs).
pi-check: pwa
	$(if $(filter command line,$(origin PI_BIN)),,$(CARGO) build --target aarch64-unknown-linux-gnu -p kitsulan-server --bin kitsulan)
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		KITSULAN_ARM64_BIN=$(abspath $(PI_BIN)) $(CARGO) nextest run -p kitsulan-e2e --test e2e -E 'test(/^arm64::/)'; \
	else \
		KITSULAN_ARM64_BIN=$(abspath $(PI_BIN)) $(CARGO) test -p kitsulan-e2e --test e2e arm64::; \
	fi

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
## end-to-end tests against the real binary (and the arm64 build under qemu-aarch64, as
## `make pi-check`), the browser tests (Playwright driving the system Chromium against the
## binary with the PWA embedded), a smoke run of the load generator, then a short fuzz run of
## every decoder.
test: lint pwa wasm
	cd pwa && $(NPM) test
	$(CARGO) build -p kitsulan-server --bin kitsulan
	$(CARGO) build --target aarch64-unknown-linux-gnu -p kitsulan-server --bin kitsulan
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		KITSULAN_ARM64_BIN=$(abspath $(PI_BIN)) $(CARGO) nextest run --workspace --profile ci; \
	else \
		echo "cargo-nextest not found; using cargo test"; \
		KITSULAN_ARM64_BIN=$(abspath $(PI_BIN)) $(CARGO) test --workspace; \
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
	rm -rf pwa/dist pwa/src/gen crypto/pkg dist
