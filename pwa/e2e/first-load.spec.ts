// first-load.spec.ts — what a new visitor downloads before the sign-in form is usable, and how
// long that takes, against the real binary (which serves the app precompressed: brotli, gzip).
// Each run is a new browser context (empty cache, no service worker), with Chromium's own
// Accept-Encoding (brotli and gzip) or one set for the context (gzip only; identity), on
// loopback and on an emulated party Wi-Fi (20 Mbit/s, 20 ms). Bytes come from the page's resource
// timing at the moment the form became usable (the username and password inputs and an enabled
// submit button): `encodedBodySize` (the body as sent, compressed) and `decodedBodySize`. Not
// `transferSize`: Chromium reports 0 for a file another context already fetched, so it would
// depend on the order of the runs. The time is `performance.now()` then (from the start of
// navigation).
// The medians go to pwa/e2e/artifacts/first-load.json, or to $KITSULAN_FIRST_LOAD_JSON;
// `kitsulan-bench report` puts bench/results/first-load.json into BENCHMARKS.md.
// Neither the crypto WebAssembly nor its JS glue is part of the first load (crypto/load.ts): the
// page fetches them once the form is painted and the page is idle.
// A second test: the call and file code are not part of the first load, and the service worker
// keeps them anyway, so an offline start has the whole app; the crypto module is prefetched
// without any input and is kept too.
import { execSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Browser } from "@playwright/test";
import { expect, test } from "./helpers";

declare global {
  interface Window {
    __kitsulanUsableAt?: number;
  }
}

type Coding = "br" | "gzip" | "identity";
type Net = "loopback" | "wifi";
/** The Accept-Encoding sent (undefined: Chromium's own, "gzip, deflate, br, zstd"). */
const ACCEPT: Record<Coding, string | undefined> = { br: undefined, gzip: "gzip", identity: "identity" };
// A crowded party Wi-Fi: 20 Mbit/s down, 20 ms round trip.
const WIFI = { offline: false, latency: 20, downloadThroughput: (20e6 / 8) | 0, uploadThroughput: (10e6 / 8) | 0 };
const RUNS = 5;

/** The chunks of lazily loaded code; none may be part of the first load. */
const LAZY = /\/assets\/(calls|CallScreen|transfer|image|Messenger)-[\w-]+\.js$/;
/** The crypto module (the WASM, its JS glue) and the code that needs it; fetched after the form is usable. */
const CRYPTO = /\/assets\/(kitsulan_crypto_bg-[\w-]+\.wasm|kitsulan_crypto-[\w-]+\.js|signInFlows-[\w-]+\.js|signedIn-[\w-]+\.js)$/;

interface Load {
  usableMs: number;
  transferBytes: number;
  encodedBytes: number;
  decodedBytes: number;
  requests: number;
  files: { name: string; encoding: string | null; transfer: number; encoded: number; decoded: number }[];
}

/** Marks the moment the sign-in form is usable (runs in the page before its scripts). */
function watchForm(): void {
  const usable = () => {
    const form = document.querySelector("form");
    const user = form?.querySelector<HTMLInputElement>('input[name="username"]');
    const pass = form?.querySelector<HTMLInputElement>('input[name="password"]');
    const submit = form?.querySelector<HTMLButtonElement>('button[type="submit"]');
    return !!user && !user.disabled && !!pass && !pass.disabled && !!submit && !submit.disabled;
  };
  new MutationObserver((_, observer) => {
    if (window.__kitsulanUsableAt === undefined && usable()) {
      window.__kitsulanUsableAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true, attributes: true });
}

async function firstLoad(browser: Browser, coding: Coding, net: Net): Promise<Load> {
  const accept = ACCEPT[coding];
  const context = await browser.newContext(accept ? { extraHTTPHeaders: { "accept-encoding": accept } } : {});
  const page = await context.newPage();
  if (net === "wifi") {
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", WIFI);
  }
  const encodings = new Map<string, string | null>();
  page.on("response", (r) => encodings.set(r.url(), r.headers()["content-encoding"] ?? null));
  await page.addInitScript(watchForm);
  await page.goto("/");
  await expect(page.getByLabel("Username")).toBeEditable();
  await page.waitForFunction(() => window.__kitsulanUsableAt !== undefined);
  const measured = await page.evaluate(() => {
    const usableMs = window.__kitsulanUsableAt ?? NaN;
    const entries = [
      ...performance.getEntriesByType("navigation"),
      ...performance.getEntriesByType("resource"),
    ] as PerformanceResourceTiming[];
    return {
      usableMs,
      files: entries
        .filter((e) => e.responseEnd <= usableMs)
        .map((e) => ({ name: e.name, transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize })),
    };
  });
  await context.close();
  const files = measured.files.map((f) => ({ ...f, encoding: encodings.get(f.name) ?? null }));
  const sum = (k: "transfer" | "encoded" | "decoded") => files.reduce((n, f) => n + f[k], 0);
  return {
    usableMs: measured.usableMs,
    transferBytes: sum("transfer"),
    encodedBytes: sum("encoded"),
    decodedBytes: sum("decoded"),
    requests: files.length,
    files,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

test("first load: bytes and time to a usable sign-in form, with each coding", async ({ browser, baseURL }) => {
  test.setTimeout(300_000);
  const results = [];
  for (const net of ["loopback", "wifi"] as const) {
    for (const coding of ["br", "gzip", "identity"] as const) {
      const loads: Load[] = [];
      for (let i = 0; i < RUNS; i++) loads.push(await firstLoad(browser, coding, net));
      const last = loads[loads.length - 1]!;
      // What was sent is what was asked for: the scripts and the WebAssembly compressed.
      for (const f of last.files.filter((f) => /\.(js|wasm)$/.test(f.name))) {
        expect(f.encoding, `${f.name} with ${coding}`).toBe(coding === "identity" ? null : coding);
      }
      expect(last.files.filter((f) => LAZY.test(f.name)).map((f) => f.name), "lazy chunks in the first load").toEqual([]);
      expect(last.files.filter((f) => CRYPTO.test(f.name)).map((f) => f.name), "the crypto module in the first load").toEqual([]);
      results.push({
        network: net,
        coding,
        runs: loads.length,
        usable_ms: Math.round(median(loads.map((l) => l.usableMs))),
        transfer_bytes: median(loads.map((l) => l.transferBytes)),
        encoded_bytes: median(loads.map((l) => l.encodedBytes)),
        decoded_bytes: median(loads.map((l) => l.decodedBytes)),
        requests: last.requests,
        files: last.files.map((f) => ({ ...f, name: new URL(f.name).pathname })),
      });
    }
  }
  const out = process.env.KITSULAN_FIRST_LOAD_JSON ?? resolve("e2e/artifacts/first-load.json");
  mkdirSync(dirname(out), { recursive: true });
  const report = {
    scenario: "first_load",
    command: "cd pwa && KITSULAN_FIRST_LOAD_JSON=../bench/results/first-load.json npm run e2e -- first-load.spec.ts",
    commit: commit(),
    unix_time: Math.floor(Date.now() / 1000),
    browser: `Chromium ${browser.version()}`,
    server: baseURL,
    wifi: { latency_ms: WIFI.latency, down_mbit: 20, up_mbit: 10 },
    results,
  };
  writeFileSync(out, JSON.stringify(report, null, 2) + "\n");
  console.log(`first-load: wrote ${out}`);
  for (const r of results) {
    console.log(`  ${r.network} ${r.coding}: ${r.encoded_bytes} bytes in ${r.requests} requests, usable at ${r.usable_ms} ms`);
  }
  const of = (net: Net, coding: Coding) => results.find((r) => r.network === net && r.coding === coding)!;
  // Brotli is the point: well under half of the plain bytes, and less than gzip.
  expect(of("loopback", "br").encoded_bytes).toBeLessThan(of("loopback", "identity").encoded_bytes * 0.4);
  expect(of("loopback", "br").encoded_bytes).toBeLessThan(of("loopback", "gzip").encoded_bytes);
});

test("the call and file code load later, and the service worker keeps them for an offline start", async ({
  browser,
}) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const loaded: string[] = [];
  page.on("request", (r) => loaded.push(new URL(r.url()).pathname));
  await page.goto("/");
  await expect(page.getByLabel("Username")).toBeEditable();
  // The worker installs on `load` and stores every file of the build.
  const cached = await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
    const names = await caches.keys();
    const cache = await caches.open(names[0] ?? "");
    return (await cache.keys()).map((r) => new URL(r.url).pathname);
  });
  for (const chunk of ["calls", "CallScreen", "transfer", "image", "Messenger", "kitsulan_crypto", "kitsulan_crypto_bg", "signInFlows", "signedIn"]) {
    expect(cached.some((p) => p.startsWith(`/assets/${chunk}-`)), `${chunk} chunk in the offline cache`).toBe(true);
  }
  expect(loaded.filter((p) => LAZY.test(p)), "lazy chunks fetched by the page").toEqual([]);
  // The form painted, the page idle: the WASM, its glue and the sign-in flows come by themselves.
  for (const name of ["kitsulan_crypto_bg", "kitsulan_crypto", "signInFlows"]) {
    await expect.poll(() => loaded.some((p) => p.startsWith(`/assets/${name}-`)), `${name} prefetched`).toBe(true);
  }
  // Offline, a reload comes from the worker, and the lazily loaded chunks are there too.
  await context.setOffline(true);
  await page.reload();
  await expect(page.getByLabel("Username")).toBeEditable();
  const offline = await page.evaluate(async () => {
    const names = await caches.keys();
    const cache = await caches.open(names[0] ?? "");
    const calls = (await cache.keys()).find((r) => /\/assets\/calls-/.test(r.url));
    return calls ? (await fetch(calls.url)).ok : false;
  });
  expect(offline, "the calls chunk loads offline").toBe(true);
  await context.close();
});

function commit(): string {
  try {
    const head = execSync("git rev-parse --short HEAD", { encoding: "utf8" }).trim();
    const dirty = execSync("git status --porcelain --untracked-files=no -- . ../server ../crypto", { encoding: "utf8" }).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return "unknown";
  }
}
