#!/usr/bin/env node
// compress.mjs — runs after `vite build` (npm run build). Two things the server's embedding
// (server/build.rs) and the offline start need from dist/:
// 1. dist/sw.js learns every file under dist/assets/ (the `[/* kitsulan:assets */]` list), so the
//    service worker keeps the lazily loaded chunks (calls, files) too, and a new build changes
//    sw.js, which makes browsers install the new worker.
// 2. Every compressible file gets brotli (quality 11) and gzip (level 9) copies beside it,
//    `x.br` and `x.gz`, kept only when smaller. The server sends them by Accept-Encoding.
//    Node's zlib is native code: the whole app takes about a second, once per build, and the
//    server needs no compressor of its own.
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const dist = join(dirname(dirname(fileURLToPath(import.meta.url))), "dist");
const COMPRESSIBLE = /\.(html|js|mjs|css|json|webmanifest|svg|wasm|txt|ico|map)$/;
const PLACEHOLDER = "[/* kitsulan:assets */]";

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

// Copies of an earlier build (vite empties dist/, but not when told otherwise).
for (const file of walk(dist)) if (/\.(br|gz)$/.test(file)) rmSync(file);

const assets = walk(join(dist, "assets"))
  .map((f) => "/" + relative(dist, f).split("\\").join("/"))
  .sort();
const swPath = join(dist, "sw.js");
const sw = readFileSync(swPath, "utf8");
if (!sw.includes(PLACEHOLDER)) throw new Error(`dist/sw.js has no ${PLACEHOLDER} to fill`);
writeFileSync(swPath, sw.replace(PLACEHOLDER, JSON.stringify(assets)));

let raw = 0;
let br = 0;
let gz = 0;
for (const file of walk(dist)) {
  if (!COMPRESSIBLE.test(file)) continue;
  const bytes = readFileSync(file);
  const text = !file.endsWith(".wasm");
  const brotli = brotliCompressSync(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_MODE]: text ? constants.BROTLI_MODE_TEXT : constants.BROTLI_MODE_GENERIC,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
  const gzip = gzipSync(bytes, { level: 9 });
  raw += bytes.length;
  br += Math.min(brotli.length, bytes.length);
  gz += Math.min(gzip.length, bytes.length);
  // Written after the file itself: server/build.rs ignores a copy older than its file.
  if (brotli.length < bytes.length) writeFileSync(`${file}.br`, brotli);
  if (gzip.length < bytes.length) writeFileSync(`${file}.gz`, gzip);
}
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const total = walk(dist)
  .filter((f) => !/\.(br|gz)$/.test(f))
  .reduce((n, f) => n + statSync(f).size, 0);
console.log(
  `compress.mjs: ${assets.length} assets listed in sw.js; compressible ${kb(raw)} -> brotli ${kb(br)}, gzip ${kb(gz)} (dist ${kb(total)})`,
);
