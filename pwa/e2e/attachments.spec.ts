// attachments.spec.ts — encrypted files between two browsers, against the real server
// (docs/attachments.md): Alice drops a JPEG whose EXIF carries a GPS position into the
// conversation, picks a TTL and sends; Bob sees the preview (decrypted thumbnail), opens the full
// image, and the bytes he got have no EXIF left; Alice sees that Bob downloaded it; when the TTL
// passes both see "expired". A text file goes as a file card and arrives byte for byte.
// e2e/run.mjs starts the server with KITSULAN_ATTACHMENT_TTL_CHOICES offering 1 minute (the
// picker shows what the server advertises) and a 1 s housekeeping sweep.
import { readFile } from "node:fs/promises";
import type { Page } from "@playwright/test";
import { acceptRequest, expect, openDirect, shoot, signUp, stamp, test } from "./helpers";

const EXIF = Buffer.from("Exif\0\0", "latin1");

/** An APP1 Exif segment: IFD0 with a GPSInfo pointer to a GPS IFD (latitude N 55° 45′ 0″). */
function exifGpsSegment(): Buffer {
  const tiff = Buffer.alloc(80);
  tiff.write("MM", 0, "latin1");
  tiff.writeUInt16BE(42, 2);
  tiff.writeUInt32BE(8, 4); // IFD0
  tiff.writeUInt16BE(1, 8); // one entry
  tiff.writeUInt16BE(0x8825, 10); // GPSInfo
  tiff.writeUInt16BE(4, 12); // LONG
  tiff.writeUInt32BE(1, 14);
  tiff.writeUInt32BE(26, 18); // the GPS IFD
  tiff.writeUInt32BE(0, 22); // no next IFD
  tiff.writeUInt16BE(2, 26); // two entries
  tiff.writeUInt16BE(0x0001, 28); // GPSLatitudeRef
  tiff.writeUInt16BE(2, 30); // ASCII
  tiff.writeUInt32BE(2, 32);
  tiff.write("N\0", 36, "latin1");
  tiff.writeUInt16BE(0x0002, 40); // GPSLatitude
  tiff.writeUInt16BE(5, 42); // RATIONAL
  tiff.writeUInt32BE(3, 44);
  tiff.writeUInt32BE(56, 48);
  tiff.writeUInt32BE(0, 52); // no next IFD
  [55, 1, 45, 1, 0, 1].forEach((v, i) => tiff.writeUInt32BE(v, 56 + i * 4));
  const header = Buffer.alloc(4);
  header.writeUInt16BE(0xffe1, 0);
  header.writeUInt16BE(2 + EXIF.length + tiff.length, 2);
  return Buffer.concat([header, EXIF, tiff]);
}

/** Whether `bytes` (a JPEG) has an APP1 Exif segment, and whether it has a GPSInfo tag. */
function exifOf(bytes: Buffer): { exif: boolean; gps: boolean } {
  let exif = false;
  let gps = false;
  let at = 2;
  while (at + 4 <= bytes.length && bytes[at] === 0xff) {
    const marker = bytes[at + 1] ?? 0;
    if (marker === 0xda || marker === 0xd9) break; // image data starts
    const len = bytes.readUInt16BE(at + 2);
    const segment = bytes.subarray(at + 4, at + 2 + len);
    if (marker === 0xe1 && segment.subarray(0, 6).equals(EXIF)) {
      exif = true;
      if (segment.includes(Buffer.from([0x88, 0x25])) || segment.includes(Buffer.from([0x25, 0x88]))) gps = true;
    }
    at += 2 + len;
  }
  return { exif, gps };
}

/** A 640×480 JPEG drawn in the page, with the Exif GPS segment spliced in after SOI. */
async function photoWithGps(page: Page): Promise<Buffer> {
  const jpeg = await page.evaluate(async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 640;
    canvas.height = 480;
    const ctx = canvas.getContext("2d");
    if (!ctx) throw new Error("no canvas");
    const g = ctx.createLinearGradient(0, 0, 640, 480);
    g.addColorStop(0, "#f4a261");
    g.addColorStop(1, "#2a9d8f");
    ctx.fillStyle = g;
    ctx.fillRect(0, 0, 640, 480);
    ctx.fillStyle = "#fff";
    ctx.font = "bold 64px sans-serif";
    ctx.fillText("beach", 200, 260);
    const blob = await new Promise<Blob>((r, j) => canvas.toBlob((b) => (b ? r(b) : j(new Error("toBlob"))), "image/jpeg", 0.9));
    return Array.from(new Uint8Array(await blob.arrayBuffer()));
  });
  const bytes = Buffer.from(jpeg);
  const photo = Buffer.concat([bytes.subarray(0, 2), exifGpsSegment(), bytes.subarray(2)]);
  expect(exifOf(photo)).toEqual({ exif: true, gps: true });
  return photo;
}

/** The bytes behind a blob: URL, read in the page. */
async function blobBytes(page: Page, url: string): Promise<Buffer> {
  const bytes = await page.evaluate(async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer())), url);
  return Buffer.from(bytes);
}

/** The first time Bob opens Alice's conversation: it is a request from a stranger; he accepts. */
async function openFrom(page: Page, name: string): Promise<void> {
  await acceptRequest(page, new RegExp(name));
}

test("a photo dropped into a conversation arrives without its GPS tag, is receipted, and expires", async ({ browser }) => {
  test.setTimeout(300_000);
  const alice = await signUp(browser, `alice-photo-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-photo-${stamp}`, "Bob");
  await openDirect(alice, `bob-photo-${stamp}`);
  await expect(alice.getByRole("heading", { name: "Bob" })).toBeVisible();

  // Alice drops the photo onto the conversation (a real drop event carrying a File).
  const photo = await photoWithGps(alice);
  const dataTransfer = await alice.evaluateHandle((bytes) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(bytes)], "beach.jpg", { type: "image/jpeg" }));
    return dt;
  }, Array.from(photo));
  const log = alice.getByRole("log");
  await log.dispatchEvent("dragenter", { dataTransfer });
  await log.dispatchEvent("dragover", { dataTransfer });
  await log.dispatchEvent("drop", { dataTransfer });

  // The attach dialog: the picker offers what the server advertises; metadata is stripped.
  const dialog = alice.getByRole("dialog", { name: "Send files" });
  await expect(dialog.getByText("beach.jpg")).toBeVisible();
  await expect(dialog.getByRole("checkbox", { name: "Keep original (with metadata)" })).not.toBeChecked();
  const ttl = dialog.getByRole("combobox", { name: "Delete after" });
  await expect(ttl.getByRole("option")).toHaveText(["Never", "1 minute", "1 hour", "1 day", "1 week"]);
  await ttl.selectOption({ label: "1 minute" });
  await shoot(alice, "attachments-attach-dialog");
  await dialog.getByRole("button", { name: "Send" }).click();
  await expect(dialog).toBeHidden();
  await expect(alice.getByRole("button", { name: "Open image beach.jpg" }).locator("img")).toBeVisible();

  // Bob sees the preview: the thumbnail, downloaded and decrypted in his browser.
  await openFrom(bob, "Alice");
  const preview = bob.getByRole("button", { name: "Open image beach.jpg" });
  const thumb = preview.locator("img");
  await expect(thumb).toBeVisible();
  await expect.poll(() => thumb.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBeGreaterThan(0);

  // The full image: decrypted, hash checked; its bytes carry no EXIF (so no GPS) any more.
  await preview.click();
  const viewer = bob.getByRole("dialog", { name: "beach.jpg" });
  const full = viewer.getByRole("img", { name: "beach.jpg" });
  await expect(full).toBeVisible();
  await expect.poll(() => full.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(640);
  const save = viewer.getByRole("link", { name: "Save" });
  await expect(save).toHaveAttribute("download", "beach.jpg");
  const received = await blobBytes(bob, (await save.getAttribute("href")) ?? "");
  expect(received.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
  expect(exifOf(received)).toEqual({ exif: false, gps: false });
  expect(received.includes(EXIF)).toBe(false);
  await shoot(bob, "attachments-image-viewer");
  await viewer.getByRole("button", { name: "Close" }).click();

  // Alice sees that Bob downloaded it.
  await expect(alice.getByText(/^Downloaded by Bob at \d/)).toBeVisible();
  await shoot(alice, "attachments-image-sent");

  // The TTL passes: the server deletes it and tells both; both show "expired".
  for (const page of [alice, bob]) {
    await expect(page.getByRole("log").getByText("Expired")).toBeVisible({ timeout: 120_000 });
    await expect(page.getByRole("button", { name: "Open image beach.jpg" })).toHaveCount(0);
  }
  await shoot(bob, "attachments-expired");
});

test("a text file goes as a file card and arrives byte for byte", async ({ browser }) => {
  const alice = await signUp(browser, `alice-file-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-file-${stamp}`, "Bob");
  await openDirect(alice, `bob-file-${stamp}`);
  await expect(alice.getByRole("heading", { name: "Bob" })).toBeVisible();

  const text = Buffer.from(`Meeting notes ${stamp}\nПривет, Боб! Ünïcödé and a tab\there.\n`, "utf8");
  const chooser = alice.waitForEvent("filechooser");
  await alice.getByRole("button", { name: "Attach files" }).click();
  await (await chooser).setFiles({ name: "notes.txt", mimeType: "text/plain", buffer: text });
  const dialog = alice.getByRole("dialog", { name: "Send files" });
  await expect(dialog.getByRole("checkbox")).toHaveCount(0); // no image: nothing to strip
  await dialog.getByRole("button", { name: "Send" }).click();

  await openFrom(bob, "Alice");
  const card = bob.getByRole("log").locator(".file-card").filter({ hasText: "notes.txt" });
  await expect(card).toBeVisible();
  await expect(card).toContainText(`${text.length} B`);
  const download = bob.waitForEvent("download");
  await card.getByRole("button", { name: "Download notes.txt" }).click();
  const saved = await download;
  expect(saved.suggestedFilename()).toBe("notes.txt");
  expect((await readFile(await saved.path())).equals(text)).toBe(true);
  const link = card.getByRole("link", { name: "Save" });
  expect((await blobBytes(bob, (await link.getAttribute("href")) ?? "")).equals(text)).toBe(true);
  await shoot(bob, "attachments-file-card");

  await expect(alice.getByText(/^Downloaded by Bob at \d/)).toBeVisible();
});

test("a pasted file's upload can be cancelled: the PUT is aborted and the attachment deleted", async ({ browser }) => {
  const alice = await signUp(browser, `alice-cancel-${stamp}`, "Alice");
  await signUp(browser, `bob-cancel-${stamp}`, "Bob");
  await openDirect(alice, `bob-cancel-${stamp}`);
  await expect(alice.getByRole("heading", { name: "Bob" })).toBeVisible();

  // The ciphertext PUT is held back (then let through), so the upload is still going on when
  // Alice cancels.
  let puts = 0;
  await alice.route("**/v1/blobs/attachments/**", async (route) => {
    if (route.request().method() === "PUT") {
      puts += 1;
      await new Promise((r) => setTimeout(r, 5_000));
    }
    await route.continue().catch(() => undefined); // aborted meanwhile
  });

  // Alice pastes a file into the message box.
  await alice.getByRole("textbox", { name: "Message" }).evaluate((box) => {
    const dt = new DataTransfer();
    dt.items.add(new File(["draft contract, do not send"], "contract.txt", { type: "text/plain" }));
    box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
  });
  const dialog = alice.getByRole("dialog", { name: "Send files" });
  await expect(dialog.getByText("contract.txt")).toBeVisible();
  await dialog.getByRole("button", { name: "Send" }).click();

  const progress = alice.getByRole("progressbar", { name: "Uploading contract.txt" });
  await expect(progress).toBeVisible();
  await expect.poll(() => puts).toBe(1);
  const deleted = alice.waitForRequest((r) => r.url().endsWith("/kitsulan.v1.AttachmentService/DeleteAttachment"));
  await alice.getByRole("button", { name: "Cancel uploading contract.txt" }).click();
  expect((await (await deleted).response())?.status()).toBe(200);
  await expect(progress).toBeHidden();
  await expect(alice.getByRole("log").getByText("contract.txt")).toHaveCount(0);
  await expect(alice.getByText("No messages yet. Say hello!")).toBeVisible();
});
