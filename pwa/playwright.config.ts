// playwright.config.ts — browser tests against a running kitsulan server (started by e2e/run.mjs).
// Uses the system's Chromium (Debian's `chromium` package); never downloads a browser.
import { defineConfig } from "@playwright/test";

const baseURL = process.env.KITSULAN_E2E_URL ?? "http://127.0.0.1:8080";
const executablePath = process.env.CHROMIUM_PATH ?? "/usr/lib/chromium/chromium";
/** How Chromium starts; a spec that needs more flags spreads this (see calls.spec.ts). */
export const launchOptions = { executablePath, args: ["--no-sandbox"] };

export default defineConfig({
  testDir: "e2e",
  outputDir: "e2e/artifacts/test-results",
  timeout: 120_000,
  expect: { timeout: 15_000 },
  workers: 1,
  reporter: [["list"]],
  use: {
    baseURL,
    locale: "en-US",
    launchOptions,
    trace: "retain-on-failure",
  },
});
