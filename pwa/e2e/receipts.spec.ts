// receipts.spec.ts — receipts tell the truth. Bob's only device with keys signs out, and he signs
// in on a new browser without linking it: his account has no device that can read. Alice is
// warned on her message, and never sees "Read": Bob's device shows it waiting for the key and
// does not mark it read.
import { acceptRequest, bubble, expect, newDevice, openDirect, password, send, signOutHere, signUp, stamp, test } from "./helpers";

test("a person with no device that can read: the sender is warned and never sees Read", async ({ browser }) => {
  const bobName = `bob-nokeys-${stamp}`;
  const alice = await signUp(browser, `alice-nokeys-${stamp}`, "Alice");
  const old = await signUp(browser, bobName, "Bob");

  // Bob signs out of his only device; its keys go with it.
  await signOutHere(old);
  await old.context().close();

  // He signs in on a new browser with his password, without linking it to a device that holds
  // his account key: signed in, but it cannot read encrypted messages.
  const bob = await newDevice(browser);
  const markReads: string[] = [];
  bob.on("request", (r) => {
    if (r.url().endsWith("/MarkRead")) markReads.push(r.url());
  });
  await bob.getByRole("tab", { name: "Sign in" }).click();
  await bob.getByLabel("Username").fill(bobName);
  await bob.getByLabel("Password").fill(password);
  await bob.getByRole("button", { name: "Sign in" }).click();
  await expect(bob.getByRole("button", { name: "New conversation" })).toBeVisible();

  await openDirect(alice, bobName);
  await send(alice, "can you read this?");
  const mine = bubble(alice, "can you read this?");
  await expect(mine.getByRole("note")).toHaveText("⚠ Bob has no device that can read this yet");
  await expect(mine.getByRole("img", { name: "Sent" })).toBeVisible();

  // Bob's device gets it, opens the conversation, and shows it waiting for the key: it does not
  // mark it read.
  await acceptRequest(bob, /Alice/);
  await expect(bob.getByRole("log").getByText("Waiting for the key to decrypt this message…")).toBeVisible();
  await expect(bob.getByRole("alert").filter({ hasText: "does not have your account key" })).toBeVisible();
  await bob.waitForTimeout(3000);
  expect(markReads).toEqual([]);
  await expect(mine.getByRole("img", { name: "Read" })).toHaveCount(0);
  await expect(mine.getByRole("img", { name: "Sent" })).toBeVisible();
  await alice.screenshot({ path: "e2e/artifacts/receipts-no-device-warning.png" });

  // The warning stays after a reload of Alice's tab (the offline copy keeps it).
  await alice.reload();
  await alice.getByRole("complementary").getByRole("button", { name: /Bob/ }).click();
  await expect(bubble(alice, "can you read this?").getByRole("note")).toHaveText("⚠ Bob has no device that can read this yet");
  await expect(bubble(alice, "can you read this?").getByRole("img", { name: "Read" })).toHaveCount(0);
});
