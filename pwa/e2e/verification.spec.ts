// verification.spec.ts — Alice and Bob verify each other with SAS emoji, in two browser
// contexts against the real server: Alice presses "Verify" in their conversation, Bob's device
// gets the request over Olm to-device messages and accepts, both pages show the same 7 emoji
// (compared as text), both confirm, and both conversations then carry the "Verified" mark,
// which survives a reload (kept in IndexedDB).
import type { Page } from "@playwright/test";
import { acceptRequest, bubble, expect, openDirect, send, shoot, signUp, stamp, test } from "./helpers";

/** The 7 emoji a page shows, each as its text ("emoji name"). */
async function emojiTexts(page: Page): Promise<string[]> {
  const items = page.getByRole("dialog").getByRole("list", { name: "Emoji to compare" }).getByRole("listitem");
  await expect(items).toHaveCount(7);
  return (await items.allInnerTexts()).map((t) => t.replace(/\s+/g, " ").trim());
}

test("Alice and Bob verify each other with SAS emoji", async ({ browser }) => {
  const alice = await signUp(browser, `alice-v-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-v-${stamp}`, "Bob");
  await openDirect(alice, `bob-v-${stamp}`);
  await send(alice, "shall we verify?");
  await acceptRequest(bob, /Alice/);
  await expect(bubble(bob, "shall we verify?")).toBeVisible();
  for (const page of [alice, bob]) await expect(page.getByRole("main").getByText("Verified")).toHaveCount(0);

  // Alice asks; Bob's device shows the request and he accepts (by keyboard).
  await alice.getByRole("button", { name: "Verify Bob" }).click();
  const aliceDialog = alice.getByRole("dialog", { name: "Verify Bob" });
  const bobDialog = bob.getByRole("dialog", { name: "Verify Alice" });
  await expect(bobDialog.getByText("Alice wants to verify you.")).toBeVisible();
  await shoot(bob, "verify-request");
  await bobDialog.getByRole("button", { name: "Accept" }).focus();
  await bob.keyboard.press("Enter");

  // Both pages show the same seven emoji with their names.
  const seenByAlice = await emojiTexts(alice);
  const seenByBob = await emojiTexts(bob);
  expect(seenByAlice).toEqual(seenByBob);
  for (const text of seenByAlice) expect(text).toMatch(/^\S+ \S/); // an emoji, then its name
  await shoot(alice, "verify-emoji");

  // Each confirms; both end verified.
  await aliceDialog.getByRole("button", { name: "The emoji match" }).click();
  await expect(aliceDialog.getByText("Waiting for Bob to confirm…")).toBeVisible();
  await bobDialog.getByRole("button", { name: "The emoji match" }).click();
  await expect(aliceDialog.getByText("Bob is verified.")).toBeVisible();
  await expect(bobDialog.getByText("Alice is verified.")).toBeVisible();
  await aliceDialog.getByRole("button", { name: "Close" }).click();
  await bobDialog.getByRole("button", { name: "Close" }).click();
  for (const page of [alice, bob]) await expect(page.getByRole("main").getByText("✓ Verified")).toBeVisible();
  await shoot(alice, "verified-conversation");

  // The mark is kept on this device (IndexedDB) across a reload.
  await bob.reload();
  await bob.getByRole("button", { name: /Alice/ }).click();
  await expect(bob.getByRole("main").getByText("✓ Verified")).toBeVisible();
});

test("emoji declared different: nobody is verified", async ({ browser }) => {
  const alice = await signUp(browser, `alice-x-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-x-${stamp}`, "Bob");
  await openDirect(alice, `bob-x-${stamp}`);
  await alice.getByRole("button", { name: "Verify Bob" }).click();
  const bobDialog = bob.getByRole("dialog", { name: "Verify Alice" });
  await bobDialog.getByRole("button", { name: "Accept" }).click();
  await emojiTexts(alice);
  await bobDialog.getByRole("button", { name: "They differ" }).click();
  await expect(bobDialog.getByRole("alert")).toContainText("The emoji did not match");
  await expect(alice.getByRole("dialog", { name: "Verify Bob" }).getByRole("alert")).toContainText(
    "The emoji did not match",
  );
  await alice.getByRole("dialog").getByRole("button", { name: "Close" }).click();
  await expect(alice.getByRole("main").getByText("✓ Verified")).toHaveCount(0);
});
