// devices.spec.ts — Alice links a second browser context by PIN (the SAS emoji compared on
// both screens) after setting up a recovery key, and it reads what Bob sends afterwards and backs
// up its own keys (the backup key came through the channel); the Devices screen renames it and signs it
// out, and the signed-out context wipes its data and returns to sign-in.
import type { Page } from "@playwright/test";
import { acceptRequest, bubble, expect, newDevice, openDirect, send, shoot, signUp, stamp, status, test } from "./helpers";

/** The 7 SAS emoji a screen shows, each as "emoji name" (and its table index). */
async function sasEmoji(page: Page): Promise<{ indices: string[]; texts: string[] }> {
  const items = page.getByRole("list", { name: "Emoji to compare" }).getByRole("listitem");
  await expect(items).toHaveCount(7);
  const texts = (await items.allInnerTexts()).map((t) => t.replace(/\s+/g, " ").trim());
  const indices = await items.evaluateAll((els) => els.map((el) => el.getAttribute("data-sas-index") ?? ""));
  for (const text of texts) expect(text).toMatch(/^\S+ [A-Z][A-Za-z ]+$/);
  return { indices, texts };
}

test("Alice links a second context by PIN and it reads new messages", async ({ browser }) => {
  const alice = await signUp(browser, `alice-link-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-link-${stamp}`, "Bob");
  await openDirect(alice, `bob-link-${stamp}`);
  await send(alice, "before the laptop was linked");
  await acceptRequest(bob, /Alice/);

  // Alice sets up a recovery key (Settings; sign-up skipped it): her device backs up.
  await alice.getByRole("button", { name: "Settings" }).click();
  const aliceSettings = alice.getByRole("dialog", { name: "Settings" });
  await aliceSettings.getByRole("button", { name: "Set up a recovery key" }).click();
  await aliceSettings.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "I have saved it" }).click();
  await expect(aliceSettings.getByRole("status").filter({ hasText: "Your recovery key is saved" })).toBeVisible();
  await expect(aliceSettings.getByText(/^Backup is on: \d+ keys backed up\.$/)).toBeVisible();
  await alice.keyboard.press("Escape");
  await expect(alice.getByRole("dialog")).toBeHidden();

  // The new device: "Link to an existing device" shows a QR code and the PIN.
  const laptop = await newDevice(browser);
  await laptop.getByRole("button", { name: "Link to an existing device" }).click();
  await expect(laptop.getByRole("img", { name: "QR code for linking this device" })).toBeVisible();
  const pinOutput = laptop.getByLabel("PIN");
  await expect(pinOutput).toHaveText(/^\d{4} \d{4}$/);
  const pin = (await pinOutput.getAttribute("data-pin")) ?? "";
  const qrText = await laptop.getByRole("img", { name: "QR code for linking this device" }).getAttribute("data-qr-text");
  expect(qrText).toMatch(/^KITSULAN-PAIR:/);
  await shoot(laptop, "link-new-device");

  // The existing device: Settings → Devices → Link a new device → the typed PIN.
  await alice.getByRole("button", { name: "Settings" }).click();
  await alice.getByRole("button", { name: "Devices" }).click();
  const devices = alice.getByRole("dialog", { name: "Devices" });
  await expect(devices.getByRole("list", { name: "Devices" }).getByRole("listitem")).toHaveCount(1);
  await devices.getByRole("button", { name: "Link a new device" }).click();
  await devices.getByRole("textbox", { name: "PIN" }).fill(pin);
  await devices.getByRole("button", { name: "Continue" }).click();

  // Both screens show the same 7 emoji with their names (the SAS run inside the channel); the
  // person confirms on both.
  const aliceEmoji = await sasEmoji(alice);
  const laptopEmoji = await sasEmoji(laptop);
  expect(laptopEmoji).toEqual(aliceEmoji);
  await expect(alice.getByLabel("Check code")).toHaveCount(0);
  await shoot(alice, "link-existing-device");
  await shoot(laptop, "link-new-device-emoji");
  await devices.getByRole("textbox", { name: "Name for the new device" }).fill("Alice's laptop");
  await devices.getByRole("button", { name: "The emoji match: link it" }).click();
  await expect(devices.getByRole("status").filter({ hasText: "Waiting for the new device to confirm the emoji…" })).toBeVisible();
  await laptop.getByRole("button", { name: "The emoji match" }).click();

  // The laptop is signed in to Alice's account with keys of its own.
  await expect(laptop.getByRole("button", { name: "New conversation" })).toBeVisible();
  await expect(status(laptop)).toHaveText("Connected");
  await expect(devices.getByRole("status").filter({ hasText: "Linked. The new device reads new messages from now on." })).toBeVisible();
  await devices.getByRole("button", { name: "Close" }).last().click();
  await expect(alice.getByRole("dialog")).toBeHidden();

  // Bob writes after the link: the laptop reads it (the room key came to its own device keys).
  await bob.getByRole("complementary").getByRole("button", { name: /Alice/ }).click();
  await send(bob, "written after the link");
  const onLaptop = laptop.getByRole("button", { name: /Bob/ });
  await expect(onLaptop).toBeVisible();
  await onLaptop.click();
  await expect(bubble(laptop, "written after the link")).toBeVisible();
  await expect(bubble(laptop, "written after the link").getByText("written after the link")).toBeVisible();

  // The laptop writes too; Bob and Alice's first device read it.
  await send(laptop, "hello from the laptop");
  await expect(bubble(bob, "hello from the laptop")).toBeVisible();
  await expect(bubble(alice, "hello from the laptop")).toBeVisible();

  // Signing out the laptop asks first and says the other device keeps its keys and history.
  await laptop.getByRole("button", { name: "Settings" }).click();
  const laptopSettings = laptop.getByRole("dialog", { name: "Settings" });
  // The backup key came through the channel with the account key: the laptop backs up its own
  // new keys (not "this device does not have the recovery key").
  await expect(laptopSettings.getByText(/^Backup is on: \d+ keys backed up\.$/)).toBeVisible();
  await expect(laptopSettings.getByText("does not have the recovery key", { exact: false })).toHaveCount(0);
  await laptopSettings.getByRole("button", { name: "Sign out" }).click();
  const confirm = laptop.getByRole("dialog", { name: "Sign out on this device?" });
  await expect(confirm).toContainText("Your other linked devices (1) keep their keys and history.");
  await expect(confirm.getByRole("alert")).toHaveCount(0);
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await laptop.keyboard.press("Escape");
  await expect(laptop.getByRole("dialog")).toBeHidden();

  // Devices: both listed; rename the laptop, then sign it out.
  await alice.getByRole("button", { name: "Settings" }).click();
  await alice.getByRole("button", { name: "Devices" }).click();
  const list = devices.getByRole("list", { name: "Devices" });
  await expect(list.getByRole("listitem")).toHaveCount(2);
  await expect(list.getByRole("listitem").filter({ hasText: "This device" })).toHaveCount(1);
  await list.getByRole("button", { name: "Rename Alice's laptop" }).click();
  await list.getByRole("textbox", { name: "Device name" }).fill("Old laptop");
  await list.getByRole("button", { name: "Save" }).click();
  await expect(list.getByText("Old laptop")).toBeVisible();
  await shoot(alice, "devices");
  await devices.getByRole("button", { name: "Sign out all other devices" }).click();
  await expect(list.getByRole("listitem")).toHaveCount(1);

  // The laptop learns it was signed out (gateway close 4003), wipes its data, shows sign-in.
  await expect(laptop.getByRole("alert")).toHaveText(
    "This device was signed out from another device, and its local data was erased.",
  );
  await expect(laptop.getByRole("tab", { name: "Sign in" })).toBeVisible();
  const stored = await laptop.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  expect(stored).not.toContain("kitsulan");
  await laptop.reload();
  await expect(laptop.getByRole("tab", { name: "Sign in" })).toBeVisible();
});
