// demo.spec.ts — the README's demo, as a test: two people on two phones (two browsers), Bob
// scans the QR code on Alice's screen with his phone's camera (a fake camera playing a picture of
// it) and the conversation with her opens, they chat, she sends a photo that deletes itself after a
// minute, Bob opens it (Alice sees that he did), and when the minute has passed both phones show
// it expired. Every step is checked by what the screens show.
// With KITSULAN_DEMO_FRAMES=<dir> it also records both screens (Chromium's own screencast over
// CDP, one JPEG per repaint with its time) and writes <dir>/alice.ffconcat and <dir>/bob.ffconcat:
// the two clips on one 10 fps timeline, with the minute of waiting cut out. pwa/scripts/demo-gif.sh
// runs this spec so and makes docs/img/demo.gif from them with ffmpeg; CI runs it without
// recording (ffmpeg still makes the fake camera's video).
// e2e/run.mjs offers a 1 minute TTL (KITSULAN_ATTACHMENT_TTL_CHOICES) and sweeps every second.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Browser, Page } from "@playwright/test";
import { cameraBrowser, createAccount, expect, guardHosts, qrPng, stamp, test } from "./helpers";

const VIEWPORT = { width: 360, height: 720 };
const FPS = 10;
const framesDir = process.env.KITSULAN_DEMO_FRAMES ? resolve(process.env.KITSULAN_DEMO_FRAMES) : "";

/** One recorded screen: its frames (file, wall-clock seconds), kept while the page repaints. */
interface Recording {
  name: string;
  frames: { file: string; at: number }[];
}

/** Starts Chromium's screencast of `page` into framesDir/<name>/ (when recording). */
async function record(page: Page, name: string): Promise<Recording> {
  const rec: Recording = { name, frames: [] };
  if (!framesDir) return rec;
  const dir = join(framesDir, name);
  mkdirSync(dir, { recursive: true });
  const cdp = await page.context().newCDPSession(page);
  cdp.on("Page.screencastFrame", ({ data, metadata, sessionId }) => {
    const file = join(dir, `${String(rec.frames.length).padStart(5, "0")}.jpg`);
    writeFileSync(file, Buffer.from(data, "base64"));
    rec.frames.push({ file, at: metadata.timestamp ?? Date.now() / 1000 });
    void cdp.send("Page.screencastFrameAck", { sessionId }).catch(() => undefined);
  });
  await cdp.send("Page.startScreencast", { format: "jpeg", quality: 85, maxWidth: VIEWPORT.width, maxHeight: VIEWPORT.height });
  return rec;
}

/** Writes each recording as an ffconcat list on one timeline: `keep` spans (wall-clock seconds)
 * sampled at FPS, each sample the frame last painted by then; and timeline.json with where, in
 * the clip's seconds, each span after the first begins (the script captions the cuts). */
function writeTimeline(recordings: Recording[], keep: [number, number][]): void {
  if (!framesDir) return;
  const cuts: number[] = [];
  let length = 0;
  for (const [from, to] of keep) {
    if (length > 0) cuts.push(Math.round(length * 10) / 10);
    length += Math.ceil((to - from) * FPS) / FPS;
  }
  writeFileSync(join(framesDir, "timeline.json"), JSON.stringify({ fps: FPS, length, cuts }));
  for (const rec of recordings) {
    expect(rec.frames.length, `${rec.name}: frames recorded`).toBeGreaterThan(0);
    const lines = ["ffconcat version 1.0"];
    for (const [from, to] of keep) {
      for (let t = from; t < to; t += 1 / FPS) {
        const shown = rec.frames.filter((f) => f.at <= t).at(-1) ?? rec.frames[0];
        lines.push(`file '${shown?.file}'`, `duration ${1 / FPS}`);
      }
    }
    // The concat demuxer takes the last file's duration only if it is listed once more.
    lines.push(lines[lines.length - 2] ?? "");
    writeFileSync(join(framesDir, `${rec.name}.ffconcat`), `${lines.join("\n")}\n`);
  }
}

const now = () => Date.now() / 1000;
const pause = (page: Page, ms: number) => (framesDir ? page.waitForTimeout(ms) : Promise.resolve());

async function phone(browser: Browser, username: string, displayName: string): Promise<Page> {
  const context = await browser.newContext({ viewport: VIEWPORT, colorScheme: "light", locale: "en-US" });
  guardHosts(context);
  const page = await context.newPage();
  await page.goto("/");
  await createAccount(page, username, displayName);
  await expect(page.getByRole("complementary").getByRole("status")).toHaveText("Connected");
  return page;
}

const bubble = (page: Page, text: string) => page.getByRole("log").locator("article").filter({ hasText: text });

async function say(page: Page, text: string): Promise<void> {
  const box = page.getByRole("textbox", { name: "Message" });
  await box.pressSequentially(text, { delay: framesDir ? 35 : 0 });
  await box.press("Enter");
  await expect(bubble(page, text)).toBeVisible();
}

/** A 640×480 JPEG drawn in the page: the photo Alice sends. */
async function photo(page: Page): Promise<Buffer> {
  const bytes = await page.evaluate(async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 640;
    canvas.height = 480;
    const ctx = canvas.getContext("2d");
    if (!ctx) throw new Error("no canvas");
    const sky = ctx.createLinearGradient(0, 0, 0, 480);
    sky.addColorStop(0, "#8ecae6");
    sky.addColorStop(0.6, "#ffb703");
    sky.addColorStop(1, "#fb8500");
    ctx.fillStyle = sky;
    ctx.fillRect(0, 0, 640, 480);
    ctx.fillStyle = "#023047";
    ctx.beginPath();
    ctx.moveTo(0, 480);
    ctx.lineTo(220, 250);
    ctx.lineTo(360, 380);
    ctx.lineTo(470, 300);
    ctx.lineTo(640, 480);
    ctx.fill();
    const blob = await new Promise<Blob>((r, j) => canvas.toBlob((b) => (b ? r(b) : j(new Error("toBlob"))), "image/jpeg", 0.85));
    return Array.from(new Uint8Array(await blob.arrayBuffer()));
  });
  return Buffer.from(bytes);
}

/** Opens New conversation → My QR code on `page`; returns the dialog. */
async function showCode(page: Page) {
  await page.getByRole("button", { name: "New conversation" }).click();
  await page.getByRole("dialog", { name: "New conversation" }).getByRole("button", { name: "My QR code" }).click();
  const dialog = page.getByRole("dialog", { name: "My QR code" });
  await expect(dialog).toBeVisible();
  return dialog;
}

test("the README demo: Bob scans Alice's code, they chat, and a photo expires", async ({ browser }) => {
  test.setTimeout(300_000);
  const alice = await phone(browser, `alice-demo-${stamp}`, "Alice");
  // What Bob's phone camera will see: Alice's code, as her screen shows it. (Bob's phone is a
  // second Chromium whose fake camera plays that picture.)
  const code = await showCode(alice);
  const png = await qrPng(code.getByRole("img", { name: /^QR code to start a conversation with / }));
  await code.getByRole("button", { name: "Close" }).click();
  const camera = await cameraBrowser(png);
  try {
    const bob = await phone(camera, `bob-demo-${stamp}`, "Bob");
    await demo(alice, bob);
  } finally {
    await camera.close();
  }
});

async function demo(alice: Page, bob: Page): Promise<void> {
  const recordings = [await record(alice, "alice"), await record(bob, "bob")];
  await pause(alice, 800);
  const start = now();

  // Alice shows her QR code; Bob scans it with his phone: the conversation with her opens, with
  // the key in the code checked against the server's, and the emoji check offered for later.
  const code = await showCode(alice);
  await pause(alice, 800);
  await bob.getByRole("button", { name: "New conversation" }).click();
  await pause(bob, 500);
  await bob.getByRole("dialog", { name: "New conversation" }).getByRole("button", { name: "Scan a QR code" }).click();
  const offer = bob.getByRole("dialog", { name: "Conversation with Alice" });
  await expect(offer.getByText("The key in the code matches the key this server gives for Alice.")).toBeVisible();
  await pause(bob, 1500);
  await offer.getByRole("button", { name: "Later" }).click();
  await code.getByRole("button", { name: "Close" }).click();
  await say(bob, "Hi Alice! Send the hike photo?");

  // Alice sees a request from someone new, accepts, and answers.
  await alice.getByRole("button", { name: "Requests (1)" }).click();
  await alice.getByRole("list", { name: "Message requests" }).getByRole("button", { name: /Bob/ }).click();
  await expect(bubble(alice, "Hi Alice! Send the hike photo?")).toBeVisible();
  await pause(alice, 600);
  await alice.getByRole("button", { name: "Accept the request from Bob" }).click();
  await say(alice, "Here it is 🏔️");
  await expect(bubble(bob, "Here it is")).toBeVisible();

  // Alice sends a photo that deletes itself after a minute.
  const chooser = alice.waitForEvent("filechooser");
  await alice.getByRole("button", { name: "Attach files" }).click();
  await (await chooser).setFiles({ name: "hike.jpg", mimeType: "image/jpeg", buffer: await photo(alice) });
  const attach = alice.getByRole("dialog", { name: "Send files" });
  await attach.getByRole("combobox", { name: "Delete after" }).selectOption("60");
  await pause(alice, 900);
  await attach.getByRole("button", { name: "Send" }).click();
  await expect(attach).toBeHidden();

  // Bob opens it (decrypted on his phone); Alice sees that he did.
  const preview = bob.getByRole("button", { name: "Open image hike.jpg" });
  const thumb = preview.locator("img");
  await expect.poll(() => thumb.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth), { timeout: 30_000 }).toBeGreaterThan(0);
  await pause(bob, 600);
  await preview.click();
  const viewer = bob.getByRole("dialog", { name: "hike.jpg" });
  await expect.poll(() => viewer.getByRole("img", { name: "hike.jpg" }).evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(640);
  await pause(bob, 1500);
  await viewer.getByRole("button", { name: "Close" }).click();
  await expect(alice.getByText(/^Downloaded by Bob at \d/)).toBeVisible();
  await say(bob, "Wow 😍");
  await pause(alice, 1500);
  const waitFrom = now();

  // A minute later the server has deleted it: both phones say so. (When the first did is where
  // the clip picks up again.)
  const shown = [alice, bob].map((page) =>
    expect(page.getByRole("log").getByText("Expired"))
      .toBeVisible({ timeout: 120_000 })
      .then(now, () => Infinity),
  );
  const firstExpired = await Promise.race(shown);
  for (const page of [alice, bob]) {
    await expect(page.getByRole("log").getByText("Expired")).toBeVisible({ timeout: 120_000 });
    await expect(page.getByRole("button", { name: "Open image hike.jpg" })).toHaveCount(0);
  }
  const expired = now();
  expect(firstExpired).toBeLessThanOrEqual(expired);
  await pause(alice, 2500);
  writeTimeline(recordings, [
    [start, waitFrom],
    [Math.min(firstExpired, expired) - 3, now()],
  ]);
}
