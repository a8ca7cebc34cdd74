#!/usr/bin/env node
// run.mjs — `npm run e2e`: builds what the browser tests need (the crypto WASM package if
// missing, the PWA, the debug server binary that embeds it), starts the real `kitsulan serve`
// on a free port with a temporary data dir, runs Playwright against it, and stops it.
// Set KITSULAN_E2E_SKIP_BUILD=1 to reuse what is built. With KITSULAN_E2E_PREVIEW=1 the
// browser loads the freshly built pwa/dist from `vite preview` (which proxies gRPC-Web and the
// gateway to the server) instead of the copy embedded in the binary, and the server is not
// rebuilt. Extra arguments go to `playwright test`.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, createWriteStream, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pwa = dirname(dirname(fileURLToPath(import.meta.url)));
const root = dirname(pwa);
const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, "target");
const env = { ...process.env, CARGO_TARGET_DIR: targetDir };

function run(cmd, args, cwd) {
  console.log(`== ${cmd} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { cwd, env, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (!process.env.KITSULAN_E2E_SKIP_BUILD) {
  if (!existsSync(join(root, "crypto/pkg/kitsulan_crypto.js"))) run("bash", ["crypto/build-wasm.sh"], root);
  run("npm", ["run", "build"], pwa);
  if (!process.env.KITSULAN_E2E_PREVIEW) run("cargo", ["build", "-p", "kitsulan-server"], root);
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const port = await freePort();
const dataDir = mkdtempSync(join(tmpdir(), "kitsulan-e2e-"));
mkdirSync(join(pwa, "e2e/artifacts"), { recursive: true });
const log = createWriteStream(join(pwa, "e2e/artifacts/server.log"));
const server = spawn(join(targetDir, "debug/kitsulan"), ["serve"], {
  env: {
    ...env,
    KITSULAN_DATA_DIR: dataDir,
    KITSULAN_LISTEN: `127.0.0.1:${port}`,
    KITSULAN_LOG: "info",
    KITSULAN_RATE_LIMIT_SIGN_UP: "1000/1h",
    KITSULAN_RATE_LIMIT_SIGN_IN: "1000/10m",
  },
  stdio: ["ignore", "pipe", "pipe"],
});
server.stdout.pipe(log);
server.stderr.pipe(log);
const serverUrl = `http://127.0.0.1:${port}`;
let url = serverUrl;
let preview = null;

let code = 1;
try {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${serverUrl}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (server.exitCode !== null) throw new Error("the server exited; see e2e/artifacts/server.log");
    if (Date.now() > deadline) throw new Error("the server did not become ready in 30 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log(`== kitsulan serve on ${serverUrl} (data ${dataDir})`);
  if (process.env.KITSULAN_E2E_PREVIEW) {
    const previewPort = await freePort();
    preview = spawn(join(pwa, "node_modules/.bin/vite"), ["preview", "--strictPort", "--port", String(previewPort), "--host", "127.0.0.1"], {
      cwd: pwa,
      env: { ...env, KITSULAN_BACKEND: serverUrl },
      stdio: ["ignore", "pipe", "pipe"],
    });
    preview.stdout.pipe(log);
    preview.stderr.pipe(log);
    url = `http://127.0.0.1:${previewPort}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(url)).ok) break;
      } catch {
        // not yet
      }
      if (i > 150) throw new Error("vite preview did not start");
      await new Promise((r) => setTimeout(r, 200));
    }
    console.log(`== vite preview of pwa/dist on ${url}`);
  }
  const pw = spawnSync("npx", ["playwright", "test", ...process.argv.slice(2)], {
    cwd: pwa,
    env: { ...env, KITSULAN_E2E_URL: url },
    stdio: "inherit",
  });
  code = pw.status ?? 1;
} catch (err) {
  console.error(String(err));
} finally {
  preview?.kill("SIGTERM");
  server.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(code);
