// vite.config.ts — build to dist/ (embedded by the Rust server) and proxy gRPC-Web to a local server in dev.
// `kitsulan-crypto` is the crypto crate's WASM build (`make wasm` -> ../crypto/pkg).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Node's `process`, without pulling @types/node into the app's type check.
declare const process: { env: Record<string, string | undefined> };

// The kitsulan server run locally (`cargo run`), default port; e2e/run.mjs points it elsewhere.
const backend = process.env.KITSULAN_BACKEND ?? "http://127.0.0.1:8080";
const cryptoPkg = decodeURIComponent(new URL("../crypto/pkg", import.meta.url).pathname);

// Paths the server answers itself: gRPC-Web services, the gateway, the signed blob URLs of
// attachments and avatars, and health probes.
const proxy = {
  "/kitsulan.v1.": backend,
  "/grpc.": backend,
  "/v1/gateway": { target: backend, ws: true },
  "/v1/blobs/": backend,
  "/healthz": backend,
  "/readyz": backend,
};

export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: [{ find: /^kitsulan-crypto/, replacement: cryptoPkg }],
  },
  // The voice worker (src/voice/sframe.worker.ts) loads the crypto WASM as an ES module.
  worker: { format: "es" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
  },
  server: { proxy, fs: { allow: [".", cryptoPkg] } },
  preview: { proxy },
});
