#!/usr/bin/env node
// icons.mjs — renders public/favicon.svg into the PNG icons the manifest and index.html list,
// with Debian's Chromium through playwright-core (never downloads a browser):
//   icon-192.png, icon-512.png           the SVG as it is ("any" purpose, transparent corners)
//   icon-maskable-512.png                the mark at 70% on a full-bleed square of its colour,
//                                        inside the maskable safe zone (a circle of 80%)
//   apple-touch-icon.png (180)           like the maskable one: iOS fills transparency black
// The PNGs are committed; run `node scripts/icons.mjs` after changing favicon.svg.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "@playwright/test";

const pwa = dirname(dirname(fileURLToPath(import.meta.url)));
const svg = readFileSync(join(pwa, "public/favicon.svg"), "utf8");
const dataUrl = `data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}`;
const background = "#e8702a"; // the SVG's own square

const icons = [
  { file: "icon-192.png", size: 192, scale: 1, fill: null },
  { file: "icon-512.png", size: 512, scale: 1, fill: null },
  { file: "icon-maskable-512.png", size: 512, scale: 0.7, fill: background },
  { file: "apple-touch-icon.png", size: 180, scale: 0.8, fill: background },
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/lib/chromium/chromium",
  args: ["--no-sandbox"],
});
try {
  for (const { file, size, scale, fill } of icons) {
    const page = await browser.newPage({ viewport: { width: size, height: size }, deviceScaleFactor: 1 });
    const inner = Math.round(size * scale);
    await page.setContent(
      `<html><body style="margin:0;width:${size}px;height:${size}px;display:grid;place-items:center;` +
        `background:${fill ?? "transparent"}"><img src="${dataUrl}" width="${inner}" height="${inner}"></body></html>`,
    );
    await page.locator("img").evaluate((img) => (img.complete ? null : new Promise((r) => (img.onload = r))));
    const png = await page.screenshot({ omitBackground: fill === null, type: "png" });
    writeFileSync(join(pwa, "public", file), png);
    console.log(`public/${file} ${size}x${size}`);
    await page.close();
  }
} finally {
  await browser.close();
}
