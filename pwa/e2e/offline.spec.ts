// offline.spec.ts — the offline copy (state/cache.ts): a signed-in reload paints the list from
// it before ListConversations answers; with the server stopped, a reload still shows the
// conversations and their history; the copy in IndexedDB is sealed (no message text in it);
// signing out deletes it.
import {
  acceptRequest,
  bubble,
  expect,
  expectNoUndecryptable,
  openDirect,
  send,
  server,
  signOutHere,
  signUp,
  stamp,
  status,
  test,
} from "./helpers";

/** How many records the "cache" store holds, and whether any contains `text` in clear. */
async function cacheRecords(page: import("@playwright/test").Page, text: string): Promise<{ count: number; clear: boolean }> {
  return page.evaluate(async (needle) => {
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const req = indexedDB.open("kitsulan");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error("open failed"));
    });
    const values = await new Promise<unknown[]>((resolve, reject) => {
      const req = db.transaction("cache", "readonly").objectStore("cache").getAll();
      req.onsuccess = () => resolve(req.result as unknown[]);
      req.onerror = () => reject(req.error ?? new Error("getAll failed"));
    });
    db.close();
    return { count: values.length, clear: values.some((v) => JSON.stringify(v).includes(needle)) };
  }, text);
}

test("offline start shows the conversations and their history; a reload paints before the server answers", async ({ browser }) => {
  const alice = await signUp(browser, `alice-offline-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-offline-${stamp}`, "Bob");
  await openDirect(alice, `bob-offline-${stamp}`);
  await send(alice, "kept for the train ride");
  await acceptRequest(bob, /Alice/);
  await send(bob, "an answer worth keeping");
  await expect(bubble(alice, "an answer worth keeping")).toBeVisible();

  // Written behind (about a second after the last change), sealed: no message text in clear.
  await alice.waitForTimeout(1500);
  await expect.poll(async () => (await cacheRecords(alice, "worth keeping")).count).toBeGreaterThanOrEqual(2);
  expect((await cacheRecords(alice, "worth keeping")).clear).toBe(false);
  expect((await cacheRecords(alice, "train ride")).clear).toBe(false);

  // A signed-in reload paints the list from the copy while ListConversations is held back.
  let release: () => void = () => undefined;
  const held = new Promise<void>((r) => (release = r));
  let asked = false;
  await alice.route("**/kitsulan.v1.ConversationService/ListConversations", async (route) => {
    asked = true;
    await held;
    await route.continue();
  });
  const reloadStart = Date.now();
  await alice.reload();
  const entry = alice.getByRole("complementary").getByRole("button", { name: /Bob/ });
  await expect(entry).toBeVisible();
  await expect(entry).toContainText("an answer worth keeping");
  const paintedMs = Date.now() - reloadStart;
  await expect.poll(() => asked).toBe(true);
  await alice.screenshot({ path: "e2e/artifacts/offline-painted-before-list.png" });
  // The history too, before the network.
  await entry.click();
  await expect(bubble(alice, "kept for the train ride")).toBeVisible();
  release();
  await alice.unrouteAll({ behavior: "wait" });
  await expect(status(alice)).toHaveText("Connected");
  console.log(`list painted from the offline copy ${paintedMs} ms after the reload began (ListConversations held)`);

  // The server goes away; a reload still shows the conversations and their history.
  await server("stop");
  try {
    await alice.reload();
    await expect(alice.getByRole("complementary").getByRole("button", { name: /Bob/ })).toBeVisible();
    await expect(alice.getByText("No conversations yet")).toHaveCount(0);
    await expect(status(alice)).not.toHaveText("Connected");
    await alice.getByRole("complementary").getByRole("button", { name: /Bob/ }).click();
    await expect(bubble(alice, "kept for the train ride")).toBeVisible();
    await expect(bubble(alice, "an answer worth keeping")).toBeVisible();
    await alice.screenshot({ path: "e2e/artifacts/offline-start.png" });
  } finally {
    await server("start");
  }

  // Back online: it reconnects, and what is sent now arrives.
  await expect(status(alice)).toHaveText("Connected", { timeout: 30_000 });
  await send(alice, "back online");
  await expect(bubble(bob, "back online").getByText("back online")).toBeVisible();
  for (const page of [alice, bob]) await expectNoUndecryptable(page);

  // Signing out deletes the copy with the rest of this device's data.
  await signOutHere(alice);
  const stored = await alice.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  expect(stored).not.toContain("kitsulan");
});
