// helpers.ts — what the browser tests share: signing up in a fresh context, sending, finding
// bubbles, screenshots, and the server control of e2e/run.mjs (stop / start the same server).
// Specs import `test` and `expect` from here: its automatic `hostGuard` fixture records every
// request (and WebSocket) of every page and service worker, in the built-in context and in
// those newDevice makes, and fails the test if any went to a host other than the KitsuLAN
// server (the app must ship its fonts, icons and scripts), or if the browser refused anything
// under the server's Content-Security-Policy (an inline script or style, a WebAssembly compile,
// a connection the policy does not allow would break the app).
import { deflateSync } from "node:zlib";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, test as base, expect, type Browser, type BrowserContext, type Locator, type Page } from "@playwright/test";
import jsQR from "jsqr";
import { launchOptions } from "../playwright.config";

export { expect };

/** Requests to other hosts seen during the current test. */
const foreign: string[] = [];
/** What the browser refused under the Content-Security-Policy during the current test. */
const refused: string[] = [];

/** Records the Content-Security-Policy violations `page` reports on its console. */
function guardPolicy(page: Page): void {
  page.on("console", (message) => {
    if (/Content Security Policy|Content-Security-Policy/i.test(message.text())) refused.push(message.text());
  });
}
let serverOrigin = "";

/** Whether `url` stays on the KitsuLAN server (or never leaves the browser). */
function local(url: string, server: string): boolean {
  const u = new URL(url);
  if (u.protocol === "data:" || u.protocol === "blob:" || url === "about:blank") return true;
  const origin = u.origin.replace(/^ws/, "http");
  return origin === server;
}

/** The contexts the current test opened (every one passes through guardHosts): closed when the
 * test ends, so each test starts with a browser holding only its own devices (left open, the
 * devices of every earlier test kept their sockets, timers and WebAssembly running beside it,
 * and kept reconnecting to whatever server they were opened on). */
const testContexts = new Set<BrowserContext>();

/** Records the requests of `context` that leave for another host. */
export function guardHosts(context: BrowserContext): void {
  testContexts.add(context);
  // Judged against the server of the test that opened the context: a page an earlier spec left
  // open keeps reconnecting to the server it was opened on, which is not a foreign host even
  // when a later spec (https.spec.ts) serves the app on another origin.
  const opened = serverOrigin;
  const check = (url: string, what: string) => {
    if (!local(url, opened || serverOrigin)) foreign.push(`${what} ${url}`);
  };
  context.on("request", (r) => check(r.url(), r.method()));
  context.on("page", (page) => {
    page.on("websocket", (ws) => check(ws.url(), "WebSocket"));
    guardPolicy(page);
  });
  for (const page of context.pages()) {
    page.on("websocket", (ws) => check(ws.url(), "WebSocket"));
    guardPolicy(page);
  }
}

export const test = base.extend<{ hostGuard: void }>({
  hostGuard: [
    async ({ context, baseURL }, use) => {
      serverOrigin = new URL(baseURL ?? "http://127.0.0.1:8080").origin;
      foreign.length = 0;
      refused.length = 0;
      guardHosts(context);
      try {
        await use();
        expect(foreign, "requests to hosts other than the KitsuLAN server").toEqual([]);
        expect(refused, "Content-Security-Policy violations").toEqual([]);
      } finally {
        // Playwright closes the built-in context itself.
        testContexts.delete(context);
        const opened = [...testContexts];
        testContexts.clear();
        await Promise.all(opened.map((c) => c.close().catch(() => undefined)));
      }
    },
    { auto: true },
  ],
});

export const stamp = Date.now().toString(36);
export const password = "correct horse battery";

/** Prepares a new context before its page opens (permissions, init scripts). */
export type Prepare = (context: BrowserContext) => Promise<void>;

/** A fresh browser context (own IndexedDB: another device) on the app. */
export async function newDevice(browser: Browser, prepare?: Prepare): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  guardHosts(context);
  await prepare?.(context);
  const page = await context.newPage();
  page.on("dialog", (d) => {
    throw new Error(`unexpected dialog: ${d.message()}`);
  });
  await page.goto("/");
  return page;
}

export function status(page: Page) {
  return page.getByRole("complementary").getByRole("status");
}

/** The usernames this run has signed up (all specs share one worker and one server). */
const signedUp = new Set<string>();

/** Fills and sends the sign-up form on `page`, then skips the recovery-key step (the first
 *  device offers one; recovery.spec.ts saves it, the other specs go on without). */
export async function createAccount(page: Page, username: string, displayName: string): Promise<void> {
  // Every spec runs against one server: a name two specs both sign up with fails the later one
  // with "That username is taken" (party.spec and devices.spec once both made alice-link-…).
  if (signedUp.has(username)) throw new Error(`${username} is signed up by another test already: pick a name of its own`);
  signedUp.add(username);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Display name (optional)").fill(displayName);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "Not now" }).click();
}

export async function signUp(browser: Browser, username: string, displayName: string, prepare?: Prepare): Promise<Page> {
  const page = await newDevice(browser, prepare);
  await createAccount(page, username, displayName);
  await expect(page.getByRole("button", { name: "New conversation" })).toBeVisible();
  await expect(status(page)).toHaveText("Connected");
  return page;
}

/** Opens the direct conversation with `username` from the "New conversation" dialog. */
export async function openDirect(page: Page, username: string): Promise<void> {
  await page.getByRole("button", { name: "New conversation" }).click();
  const dialog = page.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("textbox", { name: "Their username" }).fill(username);
  await dialog.getByRole("button", { name: "Start conversation" }).click();
  await expect(dialog).toBeHidden();
}

/** Opens the message request from `from` (a conversation title) among the requests and
 * accepts it, as a person does before answering someone new; the conversation stays open. */
export async function acceptRequest(page: Page, from: RegExp | string): Promise<void> {
  await page.getByRole("button", { name: /^Requests \(\d+\)$/ }).click();
  await page.getByRole("list", { name: "Message requests" }).getByRole("button", { name: from }).click();
  await page.getByRole("button", { name: /^Accept the request from / }).click();
  await expect(page.getByRole("textbox", { name: "Message" })).toBeVisible();
}

export function bubble(page: Page, text: string) {
  return page.getByRole("log").locator("article").filter({ hasText: text });
}

export async function send(page: Page, text: string) {
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(text);
  await box.press("Enter");
}

export async function shoot(page: Page, name: string) {
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const width of [1280, 360]) {
      await page.setViewportSize({ width, height: width === 360 ? 740 : 800 });
      await page.screenshot({ path: `e2e/artifacts/${name}-${scheme}-${width}.png` });
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: "light" });
}

/** Asks e2e/run.mjs to stop or start the server (same binary, data dir and port); `env` adds
 * settings to that start only. */
export async function server(action: "stop" | "start", env?: Record<string, string>): Promise<void> {
  const control = process.env.KITSULAN_E2E_CONTROL;
  if (!control) throw new Error("KITSULAN_E2E_CONTROL is not set: run the tests with `npm run e2e`");
  const res = await fetch(`${control}/${action}`, { method: "POST", ...(env ? { body: JSON.stringify({ env }) } : {}) });
  if (!res.ok) throw new Error(`server ${action}: ${res.status} ${await res.text()}`);
}

/** Signs this device out from Settings, through the confirmation that says what it loses. */
export async function signOutHere(page: Page): Promise<void> {
  await page.getByRole("button", { name: "Settings" }).click();
  await page.getByRole("dialog", { name: "Settings" }).getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("dialog", { name: "Sign out on this device?" }).getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("tab", { name: "Sign in" })).toBeVisible();
}

/** This device's counts in Settings → Diagnostics (crypto/undecryptable.ts, the app's own
 * telemetry): messages it could not read, messages waiting for a key now, and of those the ones
 * waiting longer than 30 s. Opens Settings and closes it again. */
export async function undecryptableCounts(page: Page): Promise<{ failed: number; waiting: number; stuck: number }> {
  const settings = page.getByRole("dialog", { name: "Settings" });
  const wasOpen = await settings.isVisible();
  if (!wasOpen) await page.getByRole("button", { name: "Settings" }).click();
  const section = settings.getByRole("region", { name: "Diagnostics" });
  await expect(section).toBeVisible();
  const count = async (which: string) => {
    const text = (await section.locator(`[data-count="${which}"]`).textContent()) ?? "";
    const n = /: (\d+)$/.exec(text.trim())?.[1];
    if (n === undefined) throw new Error(`no count in "${text}"`);
    return Number(n);
  };
  const counts = { failed: await count("undecryptable"), waiting: await count("waiting"), stuck: await count("stuck") };
  if (!wasOpen) {
    await page.keyboard.press("Escape");
    await expect(settings).toBeHidden();
  }
  return counts;
}

/** At the end of a test about never losing a message: this device read every message it
 * decrypted (none it could not read, none left waiting for its key), as Settings → Diagnostics
 * says. Keys still on their way get a few seconds. */
export async function expectNoUndecryptable(page: Page): Promise<void> {
  await expect(async () => {
    expect(await undecryptableCounts(page), "Settings → Diagnostics on this device").toEqual({ failed: 0, waiting: 0, stuck: 0 });
  }).toPass({ timeout: 15_000 });
}

/** Runs Debian's ffmpeg (its output); a missing ffmpeg fails the test and says so. */
export function ffmpeg(args: string[]): Buffer {
  try {
    return execFileSync("ffmpeg", ["-v", "error", ...args], { maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") {
      throw new Error("ffmpeg is missing: install Debian's ffmpeg (`apt-get install ffmpeg`; .ci/run does)");
    }
    throw err;
  }
}

/** Makes a .y4m video of `png` on a white 640 × 480 frame: Chromium's fake camera plays it. */
function cameraVideo(png: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), "kitsulan-camera-"));
  const image = join(dir, "qr.png");
  const video = join(dir, "camera.y4m");
  writeFileSync(image, png);
  ffmpeg([
    "-loop", "1", "-i", image,
    "-vf", "scale=400:400,pad=640:480:120:40:white,format=yuv420p",
    "-r", "10", "-frames:v", "20", "-y", video,
  ]);
  return video;
}

/** A second Chromium whose (fake) camera shows `png`, allowed without asking: a phone held up
 * to a QR code. The caller closes it. */
export function cameraBrowser(png: Buffer): Promise<Browser> {
  return chromium.launch({
    ...launchOptions,
    args: [
      ...launchOptions.args,
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      `--use-file-for-fake-video-capture=${cameraVideo(png)}`,
    ],
  });
}

/** The width and height a PNG's header gives. */
function pngSize(png: Buffer): { width: number; height: number } {
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** Decodes the QR code in a PNG: ffmpeg turns it into RGBA pixels, jsQR reads them. */
export function decodePng(png: Buffer): string | null {
  const { width, height } = pngSize(png);
  const dir = mkdtempSync(join(tmpdir(), "kitsulan-qr-"));
  const file = join(dir, "qr.png");
  writeFileSync(file, png);
  const rgba = ffmpeg(["-i", file, "-f", "rawvideo", "-pix_fmt", "rgba", "-"]);
  expect(rgba.length).toBe(width * height * 4);
  return jsQR(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.length), width, height)?.data ?? null;
}

/** A picture of a QR code on screen, as PNG (the element only). */
export async function qrPng(qr: Locator): Promise<Buffer> {
  await expect(qr).toBeVisible();
  return qr.screenshot();
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = (CRC_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** An RGB PNG of `width`x`height`: a diagonal orange-to-blue gradient. */
export function png(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // no filter
    for (let x = 0; x < width; x++) {
      const t = (x + y) / (width + height);
      raw[row + 1 + x * 3] = Math.round(240 * (1 - t));
      raw[row + 2 + x * 3] = Math.round(138 * (1 - t) + 90 * t);
      raw[row + 3 + x * 3] = Math.round(75 * (1 - t) + 220 * t);
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}
