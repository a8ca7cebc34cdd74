// outbox.spec.ts — nothing typed is lost (state/outbox.ts): Alice writes while the server is
// stopped and while her browser is offline, reloads the tab before the connection is back, edits
// and deletes offline; when the server and the network return, Bob receives every message exactly
// once, in order, with the edit and the deletion. A message the server refuses for good (too
// large) shows "Not sent" with the reason at once, and Delete takes it away. Screenshots of the
// pending clock and of "Not sent".
import type { Page } from "@playwright/test";
import {
  acceptRequest,
  bubble,
  expect,
  expectNoUndecryptable,
  openDirect,
  send,
  server,
  signUp,
  stamp,
  status,
  test,
} from "./helpers";

/** The texts of the bubbles of `page`'s open conversation, in order. */
async function bubbleTexts(page: Page): Promise<string[]> {
  return page.getByRole("log").locator("article").allInnerTexts();
}

/** Asserts each of `texts` shows exactly once in `page`'s conversation, in this order. */
async function expectOnceInOrder(page: Page, texts: string[]): Promise<void> {
  for (const t of texts) await expect(bubble(page, t)).toHaveCount(1);
  const all = await bubbleTexts(page);
  const at = texts.map((t) => all.findIndex((b) => b.includes(t)));
  expect(at, `bubbles: ${JSON.stringify(all)}`).toEqual([...at].sort((a, b) => a - b));
}

/** What the outbox store of `page`'s IndexedDB holds, as an attacker with the profile reads it. */
async function outboxRaw(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open("kitsulan");
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error ?? new Error("open failed"));
    });
    const values = await new Promise<unknown[]>((resolve, reject) => {
      const r = db.transaction("outbox", "readonly").objectStore("outbox").getAll();
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error ?? new Error("getAll failed"));
    });
    db.close();
    const out: string[] = [];
    for (const v of values) out.push(v instanceof Blob ? `blob ${await v.text()}` : typeof v === "string" ? `sealed ${v}` : JSON.stringify(v));
    return out;
  });
}

async function openWith(page: Page, name: RegExp): Promise<void> {
  await page.getByRole("complementary").getByRole("button", { name }).first().click();
  await expect(page.getByRole("textbox", { name: "Message" })).toBeVisible();
}

test("messages written offline or while the server is down arrive once, in order, after a reload", async ({ browser }) => {
  test.setTimeout(240_000);
  const alice = await signUp(browser, `alice-ob-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-ob-${stamp}`, "Bob");
  await openDirect(alice, `bob-ob-${stamp}`);
  await send(alice, "m1 online");
  await send(alice, "m2 edit me offline");
  await send(alice, "m3 delete me offline");
  await acceptRequest(bob, /Alice/);
  await expect(bubble(bob, "m3 delete me offline")).toBeVisible();

  // The service worker keeps the app's files from this load on, so a reload works without the
  // server or the network.
  await alice.reload();
  await expect(status(alice)).toHaveText("Connected");
  await openWith(alice, /Bob/);
  await expect(bubble(alice, "m3 delete me offline")).toBeVisible();

  // The server is stopped: what Alice sends shows at once with a clock, and the draft clears.
  await server("stop");
  await expect(status(alice)).toHaveText("Offline, reconnecting…");
  await send(alice, "m4 server down");
  await send(alice, "m5 server down");
  await expect(alice.getByRole("textbox", { name: "Message" })).toHaveValue("");
  for (const t of ["m4 server down", "m5 server down"]) {
    await expect(bubble(alice, t).getByRole("img", { name: "Sending" })).toBeVisible();
  }
  await alice.screenshot({ path: "e2e/artifacts/outbox-pending-server-down.png" });
  // In IndexedDB they are sealed records: the text is not readable there.
  const raw = await outboxRaw(alice);
  expect(raw).toHaveLength(2);
  for (const r of raw) {
    expect(r.startsWith("sealed ")).toBe(true);
    expect(r).not.toContain("server down");
  }

  // Reload before the server is back: the outbox is read again from IndexedDB.
  await alice.reload();
  await server("start");
  await expect(status(alice)).toHaveText("Connected", { timeout: 30_000 });
  await expect(status(bob)).toHaveText("Connected", { timeout: 30_000 });
  await expect(bubble(bob, "m5 server down")).toBeVisible({ timeout: 30_000 });
  await openWith(alice, /Bob/);
  await expect(bubble(alice, "m5 server down").getByRole("img", { name: /Sent|Delivered|Read/ })).toBeVisible();

  // The network is gone: sends, an edit and a deletion wait in the outbox.
  await alice.context().setOffline(true);
  await send(alice, "m6 offline");
  const m2 = bubble(alice, "m2 edit me offline");
  await m2.getByRole("button", { name: "Message actions" }).click();
  await m2.getByRole("button", { name: "Edit" }).click();
  await alice.getByRole("textbox", { name: "Message" }).fill("m2 edited offline");
  await alice.getByRole("textbox", { name: "Message" }).press("Enter");
  const m3 = bubble(alice, "m3 delete me offline");
  await m3.getByRole("button", { name: "Message actions" }).click();
  await m3.getByRole("button", { name: "Delete" }).click();
  await alice.getByRole("dialog", { name: "Delete this message?" }).getByRole("button", { name: "Delete" }).click();
  await send(alice, "m7 offline");
  await expect(alice.getByRole("textbox", { name: "Message" })).toHaveValue("");
  await expect(bubble(alice, "m2 edited offline").getByRole("img", { name: "Sending" })).toBeVisible();
  await expect(bubble(alice, "m7 offline").getByRole("img", { name: "Sending" })).toBeVisible();
  await alice.screenshot({ path: "e2e/artifacts/outbox-pending-offline.png" });
  await alice.setViewportSize({ width: 360, height: 740 });
  await alice.screenshot({ path: "e2e/artifacts/outbox-pending-offline-360.png" });
  await alice.setViewportSize({ width: 1280, height: 800 });

  // Reload while still offline, then the network returns.
  await alice.reload();
  await alice.context().setOffline(false);
  await expect(status(alice)).toHaveText("Connected", { timeout: 30_000 });
  await openWith(alice, /Bob/);

  // Bob has everything exactly once and in order, with the edit and without the deleted text.
  const order = ["m1 online", "m2 edited offline", "m4 server down", "m5 server down", "m6 offline", "m7 offline"];
  await expect(bubble(bob, "m7 offline")).toBeVisible({ timeout: 30_000 });
  await expect(bubble(bob, "m2 edited offline")).toBeVisible();
  await expect(bubble(bob, "m3 delete me offline")).toHaveCount(0);
  await expectOnceInOrder(bob, order);
  // The same from the server's history (a fresh load of the conversation).
  await bob.reload();
  await expect(status(bob)).toHaveText("Connected");
  await openWith(bob, /Alice/);
  await expect(bubble(bob, "m7 offline")).toBeVisible();
  await expectOnceInOrder(bob, order);
  await expect(bubble(bob, "m3 delete me offline")).toHaveCount(0);
  await expect(bob.getByRole("log").getByText("Message deleted")).toHaveCount(1);
  // And Alice's own view: no clock left, nothing twice.
  await expectOnceInOrder(alice, order);
  await expect(alice.getByRole("log").getByRole("img", { name: "Sending" })).toHaveCount(0);

  // A message that can never go (over 16,000 characters: refused before it is encrypted, as the
  // server would refuse its ciphertext): "Not sent" with the reason at once.
  const huge = `m8 too large ${"x".repeat(70_000)}`;
  await alice.getByRole("textbox", { name: "Message" }).fill(huge);
  await alice.getByRole("textbox", { name: "Message" }).press("Enter");
  const refused = bubble(alice, "m8 too large");
  await expect(refused.getByText("Not sent")).toBeVisible({ timeout: 15_000 });
  await expect(refused.getByRole("button", { name: "Retry" })).toBeVisible();
  const del = refused.getByRole("button", { name: "Delete" });
  const box = await del.boundingBox();
  expect(box?.height ?? 0).toBeGreaterThanOrEqual(44);
  await alice.screenshot({ path: "e2e/artifacts/outbox-not-sent.png" });
  await alice.setViewportSize({ width: 360, height: 740 });
  await alice.getByRole("log").evaluate((el) => el.scrollTo(0, el.scrollHeight));
  await alice.screenshot({ path: "e2e/artifacts/outbox-not-sent-360.png" });
  await alice.setViewportSize({ width: 1280, height: 800 });
  await del.click();
  await expect(refused).toHaveCount(0);
  // Gone for good: not back after a reload.
  await alice.reload();
  await expect(status(alice)).toHaveText("Connected");
  await openWith(alice, /Bob/);
  await expect(bubble(alice, "m7 offline")).toBeVisible();
  await expect(bubble(alice, "m8 too large")).toHaveCount(0);
  await expect(bubble(bob, "m8 too large")).toHaveCount(0);
  // Every message each device decrypted was readable (Settings → Diagnostics).
  for (const page of [alice, bob]) await expectNoUndecryptable(page);
});

test("a message that cannot go for minutes says Not sent; Retry sends it once", async ({ browser }) => {
  test.setTimeout(180_000);
  // Alice's page runs on a clock the test can move forward (three minutes in a few seconds).
  const alice = await signUp(browser, `alice-ob2-${stamp}`, "Alice", (context) => context.clock.install());
  const bob = await signUp(browser, `bob-ob2-${stamp}`, "Bob");
  await openDirect(alice, `bob-ob2-${stamp}`);
  await send(alice, "before");
  await acceptRequest(bob, /Alice/);
  await expect(bubble(bob, "before")).toBeVisible();

  await server("stop");
  await send(alice, "waited too long");
  const waiting = bubble(alice, "waited too long");
  await expect(waiting.getByRole("img", { name: "Sending" })).toBeVisible();
  // Retries back off (1 s, 2 s, 5 s … 30 s); after three minutes of failures: Not sent.
  for (let i = 0; i < 12 && (await waiting.getByText("Not sent").count()) === 0; i++) {
    await alice.clock.fastForward(30_000);
    await alice.waitForTimeout(500);
  }
  await expect(waiting.getByText("Not sent")).toBeVisible();
  await expect(waiting).toContainText("No connection to the server for a few minutes.");
  await alice.screenshot({ path: "e2e/artifacts/outbox-not-sent-timeout.png" });
  await alice.emulateMedia({ colorScheme: "dark" });
  await alice.screenshot({ path: "e2e/artifacts/outbox-not-sent-timeout-dark.png" });
  await alice.emulateMedia({ colorScheme: "light" });

  // The server is back: a Not-sent message does not go on its own (the person decides)…
  await server("start");
  await expect(status(bob)).toHaveText("Connected", { timeout: 30_000 });
  for (let i = 0; i < 10 && (await status(alice).textContent()) !== "Connected"; i++) {
    await alice.clock.fastForward(10_000);
    await alice.waitForTimeout(500);
  }
  await expect(status(alice)).toHaveText("Connected");
  await expect(waiting.getByText("Not sent")).toBeVisible();
  await expect(bubble(bob, "waited too long")).toHaveCount(0);
  // …Retry sends it, once.
  await waiting.getByRole("button", { name: "Retry" }).click();
  await expect(bubble(bob, "waited too long")).toHaveCount(1);
  await expect(waiting.getByText("Not sent")).toHaveCount(0);
  await expect(waiting.getByRole("img", { name: /Sent|Delivered|Read/ })).toBeVisible();
  await bob.reload();
  await openWith(bob, /Alice/);
  await expectOnceInOrder(bob, ["before", "waited too long"]);
  await expectNoUndecryptable(bob);
});

test("a file whose upload a reload cut off uploads again and arrives once", async ({ browser }) => {
  const alice = await signUp(browser, `alice-ob3-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-ob3-${stamp}`, "Bob");
  await openDirect(alice, `bob-ob3-${stamp}`);
  await send(alice, "a file follows");
  await acceptRequest(bob, /Alice/);
  await expect(bubble(bob, "a file follows")).toBeVisible();

  // The upload's PUT never finishes (held here), and the tab is reloaded in the middle of it.
  let putSeen = false;
  await alice.route("**/v1/blobs/attachments/**", () => {
    putSeen = true; // never answered
  });
  const body = Buffer.from(`outbox file ${stamp}\n`.repeat(100), "utf8");
  const chooser = alice.waitForEvent("filechooser");
  await alice.getByRole("button", { name: "Attach files" }).click();
  await (await chooser).setFiles({ name: "kept.txt", mimeType: "text/plain", buffer: body });
  await alice.getByRole("dialog", { name: "Send files" }).getByRole("button", { name: "Send" }).click();
  const pending = alice.getByRole("log").locator("article").filter({ hasText: "kept.txt" });
  await expect(pending.getByRole("img", { name: "Sending" })).toBeVisible();
  await expect.poll(() => putSeen).toBe(true);
  await alice.screenshot({ path: "e2e/artifacts/outbox-file-pending.png" });
  // Kept for a restart: the sealed record and the file's ciphertext, nothing readable.
  const raw = await outboxRaw(alice);
  expect(raw.filter((r) => r.startsWith("sealed "))).toHaveLength(1);
  expect(raw.filter((r) => r.startsWith("blob "))).toHaveLength(1);
  for (const r of raw) {
    expect(r).not.toContain("outbox file");
    expect(r).not.toContain("kept.txt");
  }
  await alice.unroute("**/v1/blobs/attachments/**");
  await alice.reload();
  await expect(status(alice)).toHaveText("Connected");

  // The outbox kept the encrypted file: it uploads again and the message goes.
  const card = bob.getByRole("log").locator(".file-card").filter({ hasText: "kept.txt" });
  await expect(card).toBeVisible({ timeout: 30_000 });
  const download = bob.waitForEvent("download");
  await card.getByRole("button", { name: "Download kept.txt" }).click();
  const saved = await download;
  const { readFile } = await import("node:fs/promises");
  expect((await readFile(await saved.path())).equals(body)).toBe(true);
  await bob.reload();
  await openWith(bob, /Alice/);
  await expect(bob.getByRole("log").locator(".file-card").filter({ hasText: "kept.txt" })).toHaveCount(1);
  await openWith(alice, /Bob/);
  await expect(alice.getByRole("log").locator("article").filter({ hasText: "kept.txt" })).toHaveCount(1);
  await expect(alice.getByRole("log").getByRole("img", { name: "Sending" })).toHaveCount(0);
  for (const page of [alice, bob]) await expectNoUndecryptable(page);
});
