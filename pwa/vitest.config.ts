// vitest.config.ts — unit tests (`npm test`): src/**/*.test.ts under Node, with the app's Vite
// config; the Playwright specs in e2e/ are not unit tests.
import { defineConfig, mergeConfig } from "vitest/config";
import app from "./vite.config.ts";

export default mergeConfig(app, defineConfig({ test: { include: ["src/**/*.test.ts"] } }));
