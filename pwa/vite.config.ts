// vite.config.ts — build to dist/ (embedded by the Rust server) and proxy gRPC-Web to a local server in dev.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The kitsulan server run locally (`cargo run`), default port.
const backend = "http://127.0.0.1:8080";

// Paths the server answers itself: gRPC-Web services and health probes.
const proxy = {
  "/kitsulan.v1.": backend,
  "/grpc.": backend,
  "/healthz": backend,
  "/readyz": backend,
};

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
  },
  server: { proxy },
  preview: { proxy },
});
