// vitest.config.ts — unit tests (`npm test`): the *.test.ts files beside the code in src/, run in
// Node (the state stores and reducers need no browser), with the crypto WASM loaded
// (src/vitest.setup.ts). e2e/ holds the Playwright specs instead.
import { defineConfig, mergeConfig } from "vitest/config";
import viteConfig from "./vite.config.ts";

export default mergeConfig(
  viteConfig,
  defineConfig({
    test: {
      include: ["src/**/*.test.ts"],
      environment: "node",
      // The crypto WASM, initialised for every file (content encoding and reading run in it).
      setupFiles: ["src/vitest.setup.ts"],
    },
  }),
);
