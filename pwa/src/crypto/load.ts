// load.ts — the crypto crate's WebAssembly (and its wasm-bindgen JS glue), loaded once and off
// the path to the sign-in form. A visitor without a session gets the form from the entry chunk
// alone; the module is fetched once the form is on screen and the page is idle (whenIdle, from
// AuthScreen.tsx), so a sign-in or sign-up seldom waits for it either. Every use of the module awaits
// loadCrypto(): the engine (E2ee.setUp/load), pairing, backup, and the modules only reached
// through them or through lazily loaded screens. A signed-in start calls it at once (App.tsx).
//
// Nothing on the sign-in path may import "kitsulan-crypto" (or a module that does) statically:
// the bundler would put the glue into the entry chunk and the WASM would again be a module
// dependency of the first paint. e2e/first-load.spec.ts checks the first load holds neither.
import wasmUrl from "kitsulan-crypto/kitsulan_crypto_bg.wasm?url";

export type CryptoModule = typeof import("kitsulan-crypto");

let ready: Promise<CryptoModule> | null = null;

/**
 * Loads the glue and instantiates the WASM module, once; later calls get the same promise. A
 * failed load (offline before the service worker kept the file) is forgotten, so the next call
 * tries again instead of failing for the rest of the page's life.
 */
export function loadCrypto(): Promise<CryptoModule> {
  ready ??= import("kitsulan-crypto").then(async (m) => {
    await m.default({ module_or_path: wasmUrl });
    return m;
  });
  const mine = ready;
  mine.catch(() => {
    if (ready === mine) ready = null;
  });
  return mine;
}

/**
 * Runs `fn` when the page is next idle (after `timeoutMs` at the latest), which is after the
 * current frame is painted; without requestIdleCallback (Safari), right after the next frame.
 */
export function whenIdle(fn: () => void, timeoutMs = 2000): void {
  if (typeof requestIdleCallback === "function") {
    requestIdleCallback(() => fn(), { timeout: timeoutMs });
  } else if (typeof requestAnimationFrame === "function") {
    requestAnimationFrame(() => setTimeout(fn, 0));
  } else {
    setTimeout(fn, 0);
  }
}
