// vitest.setup.ts — runs before every unit-test file (vitest.config.ts `setupFiles`): loads the
// crypto crate's WASM (crypto/pkg, built by crypto/build-wasm.sh) synchronously, as the app's
// loadCrypto() does before any crypto call, so code that encodes or reads message content
// (crypto/content.ts) runs the real codec in every test. Initialising again is a no-op.
import { initSync } from "kitsulan-crypto";

// Node's fs without @types/node in the app's type check.
const nodeFs = "node:fs";
const { readFileSync } = (await import(/* @vite-ignore */ nodeFs)) as { readFileSync(path: URL): Uint8Array };
initSync({ module: readFileSync(new URL("../../crypto/pkg/kitsulan_crypto_bg.wasm", import.meta.url)) });
