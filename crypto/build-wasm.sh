#!/usr/bin/env bash
# Builds the crypto WebAssembly package for the PWA into crypto/pkg/ (wasm-bindgen --target web).
# Installs what it needs when missing (the wasm32 target, wasm-bindgen-cli at exactly the version
# pinned in the root Cargo.toml) and is quick when everything is present.
# Usage: crypto/build-wasm.sh            (honours CARGO_TARGET_DIR, like the Makefile)
# The PWA imports pkg/kitsulan_crypto.js and passes `pkg/kitsulan_crypto_bg.wasm?url` to `init`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

version="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)"
if [ -z "$version" ]; then
  echo "build-wasm.sh: no exact 'wasm-bindgen = \"=X.Y.Z\"' pin in the root Cargo.toml" >&2
  exit 1
fi
target_dir="${CARGO_TARGET_DIR:-$root/target}"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "== rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  echo "== cargo install wasm-bindgen-cli --version $version (a few minutes, once per machine)"
  # Not --locked: with it the install fails (a pinned dependency is not on the registry).
  cargo install wasm-bindgen-cli --version "$version"
fi

echo "== cargo build kitsulan-crypto for wasm32"
# The size-optimised profile of the root Cargo.toml (see the measurements there).
cargo build -p kitsulan-crypto --lib --profile wasm-release --target wasm32-unknown-unknown --features wasm

echo "== wasm-bindgen --target web -> crypto/pkg"
tmp="$here/pkg.tmp"
rm -rf "$tmp"
# No name section (function names for stack traces: about 100 KB raw, 20 KB brotli, that every
# new visitor would download) and no producers section.
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir "$tmp" --out-name kitsulan_crypto \
  "$target_dir/wasm32-unknown-unknown/wasm-release/kitsulan_crypto.wasm"
cat > "$tmp/package.json" <<JSON
{
  "name": "kitsulan-crypto",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "main": "kitsulan_crypto.js",
  "types": "kitsulan_crypto.d.ts",
  "sideEffects": false
}
JSON
rm -rf "$here/pkg"
mv "$tmp" "$here/pkg"
ls -l "$here/pkg"
