#!/usr/bin/env node
// run.mjs — `npm run e2e`: builds what the browser tests need (the crypto WASM package if
// missing, the PWA, the debug server binary that embeds it), starts the real `kitsulan serve`
// on a free port with a temporary data dir, runs Playwright against it, and stops it.
// Set KITSULAN_E2E_SKIP_BUILD=1 to reuse what is built. With KITSULAN_E2E_PREVIEW=1 the
// browser loads the freshly built pwa/dist from `vite preview` (which proxies gRPC-Web and the
// gateway to the server) instead of the copy embedded in the binary, and the server is not
// rebuilt. Extra arguments go to `playwright test`.
// Tests can stop and start the same server (binary, data dir, port) through a small control
// endpoint on 127.0.0.1 (KITSULAN_E2E_CONTROL: POST /stop, POST /start), e.g. to restart it
// mid-conversation; a JSON body `{"env": {...}}` to /start adds settings for that run only
// (notifications.spec.ts: SMTP to a sink).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, createWriteStream, mkdirSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
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
  // mixed.spec.ts drives Rust devices (e2e-tests' chat_peer) beside the browser.
  run("cargo", ["build", "-p", "kitsulan-e2e", "--bin", "chat_peer"], root);
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
const serverEnv = {
  ...env,
  KITSULAN_DATA_DIR: dataDir,
  KITSULAN_LISTEN: `127.0.0.1:${port}`,
  KITSULAN_LOG: "info",
  KITSULAN_RATE_LIMIT_SIGN_UP: "1000/1h",
  KITSULAN_RATE_LIMIT_SIGN_IN: "1000/10m",
  // The embedded TURN relay on a free UDP port on loopback (not 0.0.0.0:3478, which another
  // server on this machine may hold); calls.spec.ts relays its media through it.
  KITSULAN_TURN_LISTEN: "127.0.0.1:0",
  // The SFU of voice channels likewise, not on 0.0.0.0:3479.
  KITSULAN_SFU_LISTEN: "127.0.0.1:0",
  // attachments.spec.ts: the TTL picker offers what the server advertises, here also 1 minute,
  // and housekeeping looks every second, so a TTL passes within the test.
  KITSULAN_ATTACHMENT_TTL_CHOICES: "60,3600,86400,604800",
  KITSULAN_ATTACHMENT_SWEEP_SECONDS: "1",
};
let server = null;

/** Starts `kitsulan serve` (with `extra` settings) and waits until /readyz answers. */
async function startServer(extra = {}) {
  const child = spawn(join(targetDir, "debug/kitsulan"), ["serve"], {
    env: { ...serverEnv, ...extra },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  server = child;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error("the server exited; see e2e/artifacts/server.log");
    if (Date.now() > deadline) throw new Error("the server did not become ready in 30 s");
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Stops the server (SIGTERM: a graceful shutdown) and waits until it exited. */
async function stopServer() {
  const child = server;
  server = null;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}

const controlPort = await freePort();
const control = createHttpServer((req, res) => {
  const action = req.method === "POST" ? { "/stop": stopServer, "/start": startServer }[req.url ?? ""] : undefined;
  if (!action) {
    res.writeHead(404).end();
    return;
  }
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    Promise.resolve()
      .then(() => action(body ? JSON.parse(body).env : undefined))
      .then(
        () => res.writeHead(204).end(),
        (err) => res.writeHead(500).end(String(err)),
      );
  });
});
await new Promise((r) => control.listen(controlPort, "127.0.0.1", r));
const serverUrl = `http://127.0.0.1:${port}`;
let url = serverUrl;
let preview = null;

let code = 1;
try {
  await startServer();
  console.log(`== kitsulan serve on ${serverUrl} (data ${dataDir})`);
  if (process.env.KITSULAN_E2E_PREVIEW) {
    const previewPort = await freePort();
    preview = spawn(join(pwa, "node_modules/.bin/vite"), ["preview", "--strictPort", "--port", String(previewPort), "--host", "127.0.0.1"], {
      cwd: pwa,
      env: { ...env, KITSULAN_BACKEND: serverUrl },
      stdio: ["ignore", "pipe", "pipe"],
    });
    preview.stdout.pipe(log, { end: false });
    preview.stderr.pipe(log, { end: false });
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
  // Not spawnSync: the control endpoint must keep answering while the tests run.
  const pw = spawn("npx", ["playwright", "test", ...process.argv.slice(2)], {
    cwd: pwa,
    env: { ...env, KITSULAN_E2E_URL: url, KITSULAN_E2E_CONTROL: `http://127.0.0.1:${controlPort}` },
    stdio: "inherit",
  });
  code = await new Promise((resolve) => pw.on("exit", (c) => resolve(c ?? 1)));
} catch (err) {
  console.error(String(err));
} finally {
  preview?.kill("SIGTERM");
  control.close();
  await stopServer();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(code);
