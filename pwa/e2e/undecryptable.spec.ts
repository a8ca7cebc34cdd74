// undecryptable.spec.ts — "unable to decrypt" (docs/e2ee.md "Key requests and unable to
// decrypt"): a real missing key, twice. A second browser of Bob's signed in with the password
// only (no account key) shows Alice's old group message waiting, naming her and saying why, with
// a button to Settings → Recovery key; restoring there decrypts it in place, without a reload.
// A device of Bob's linked by PIN reads an old message only through a key request to his first
// device: the bubble says it asked, and the message decrypts when that device comes back online.
// Settings → Diagnostics counts the waiting message, then nothing.
import type { Browser, Page } from "@playwright/test";
import {
  acceptRequest,
  bubble,
  expect,
  newDevice,
  password,
  send,
  shoot,
  signUp,
  stamp,
  status,
  test,
  undecryptableCounts,
} from "./helpers";

const WAITING = "Waiting for the key to decrypt this message…";

/** Signs up on a fresh context saving the recovery key; returns the page and the key. */
async function signUpSavingKey(browser: Browser, username: string, displayName: string): Promise<{ page: Page; key: string }> {
  const page = await newDevice(browser);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Display name (optional)").fill(displayName);
  await page.getByRole("button", { name: "Create account" }).click();
  const form = page.getByRole("form", { name: "Save your recovery key" });
  const key = (await form.getByLabel("Recovery key", { exact: true }).getAttribute("data-recovery-key")) ?? "";
  expect(key).not.toBe("");
  await form.getByRole("button", { name: "I have saved it" }).click();
  await expect(page.getByRole("button", { name: "New conversation" })).toBeVisible({ timeout: 30_000 });
  await expect(status(page)).toHaveText("Connected");
  return { page, key };
}

/** Alice makes the group `title` with `member` and writes `text` in it; the member accepts and reads it. */
async function groupWith(alice: Page, member: Page, memberName: string, title: string, text: string): Promise<void> {
  await alice.getByRole("button", { name: "New conversation" }).click();
  const dialog = alice.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("radio", { name: "Group" }).check();
  await dialog.getByRole("textbox", { name: "Group name" }).fill(title);
  await dialog.getByRole("textbox", { name: /Members' usernames/ }).fill(memberName);
  await dialog.getByRole("button", { name: "Create group" }).click();
  await expect(alice.getByRole("heading", { name: title })).toBeVisible();
  await send(alice, text);
  await acceptRequest(member, new RegExp(title));
  await expect(bubble(member, text).getByText(text, { exact: true })).toBeVisible();
}

/** The waiting bubble of the one message of the open conversation that did not decrypt. */
function waitingBubble(page: Page) {
  return page.getByRole("log").locator("article").filter({ hasText: WAITING });
}

/** Checks the restore button fits a 360 px screen and is big enough to tap. */
async function fitsPhone(page: Page, button: ReturnType<Page["getByRole"]>): Promise<void> {
  await page.setViewportSize({ width: 360, height: 740 });
  const box = await button.boundingBox();
  expect(box).not.toBeNull();
  expect((box?.x ?? 0) + (box?.width ?? 0)).toBeLessThanOrEqual(360);
  expect(box?.height ?? 0).toBeGreaterThanOrEqual(44);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.setViewportSize({ width: 1280, height: 800 });
}

/** Switches the language in Settings (no reload); `settings` is the button's name in the language shown now. */
async function language(page: Page, lang: "en" | "ru", settings: string): Promise<void> {
  await page.getByRole("button", { name: settings }).click();
  await page.getByRole("dialog", { name: settings }).getByRole("combobox", { name: /^(Language|Язык)/ }).selectOption(lang);
  await page.keyboard.press("Escape");
  await expect(page.getByRole("dialog")).toBeHidden();
}

test("a browser without the account key: the bubble names Alice and says why; the recovery key decrypts it in place", async ({
  browser,
}) => {
  test.setTimeout(300_000);
  const alice = await signUp(browser, `alice-utd-${stamp}`, "Alice");
  const bobName = `bob-utd-${stamp}`;
  const { page: bob, key } = await signUpSavingKey(browser, bobName, "Bob");
  await groupWith(alice, bob, bobName, "UTD trip", "The plan, before Bob's tablet");

  // Bob's keys reached the backup (Alice's session among them).
  await expect(async () => {
    await bob.getByRole("button", { name: "Settings" }).click();
    const settings = bob.getByRole("dialog", { name: "Settings" });
    try {
      const line = settings.getByText(/^Backup is on: \d+ keys backed up\.$/);
      await expect(line).toBeVisible({ timeout: 3000 });
      expect(Number(/(\d+)/.exec((await line.textContent()) ?? "")?.[1] ?? "0")).toBeGreaterThanOrEqual(1);
    } finally {
      await bob.keyboard.press("Escape");
      await expect(settings).toBeHidden();
    }
  }).toPass({ timeout: 30_000 });

  // A new browser: the password only, "Not now" at the restore screen.
  const tablet = await newDevice(browser);
  const pageErrors: string[] = [];
  tablet.on("pageerror", (e) => pageErrors.push(e.message));
  await tablet.getByRole("tab", { name: "Sign in" }).click();
  await tablet.getByLabel("Username").fill(bobName);
  await tablet.getByLabel("Password").fill(password);
  await tablet.getByRole("button", { name: "Sign in" }).click();
  await expect(tablet.getByRole("heading", { name: "This device needs your account key" })).toBeVisible();
  await tablet.getByRole("button", { name: "Not now" }).click();
  await expect(status(tablet)).toHaveText("Connected");
  await tablet.getByRole("complementary").getByRole("button", { name: /UTD trip/ }).click();

  // The bubble names Alice and says why, and what would read it.
  const waiting = waitingBubble(tablet);
  await expect(waiting).toHaveCount(1);
  // The group bubble's header names Alice; the note does not repeat it.
  await expect(waiting.locator(".sender")).toHaveText("Alice");
  await expect(waiting).not.toContainText("From Alice");
  await expect(waiting).toContainText("This device doesn't have your account key, so nobody can share keys with it.");
  await expect(waiting).toContainText(
    "Messages sent before this device joined can only be read after restoring from your recovery key.",
  );
  const restore = waiting.getByRole("button", { name: "Restore from recovery key" });
  // A screen reader hears why with the button.
  await expect(restore).toHaveAccessibleDescription(/can only be read after restoring from your recovery key/);
  await fitsPhone(tablet, restore);
  await shoot(tablet, "undecryptable-restore");
  expect(await undecryptableCounts(tablet)).toEqual({ failed: 0, waiting: 1, stuck: 0 });

  // The banner above the conversation says the same way out (restore here, no signing out),
  // and its button opens Settings → Recovery key too.
  const banner = tablet.locator(".needs-key");
  await expect(banner).toContainText(
    "This device does not have your account key, so it cannot read or send encrypted messages. Restore it here from your recovery key or passphrase (Settings → Recovery key): no need to sign out.",
  );
  await expect(banner).not.toContainText("sign in again");
  const bannerRestore = banner.getByRole("button", { name: "Restore from recovery key" });
  await fitsPhone(tablet, bannerRestore);
  await bannerRestore.click();
  await expect(
    tablet.getByRole("dialog", { name: "Settings" }).getByRole("form", { name: "Restore with recovery key or passphrase" }),
  ).toBeInViewport();
  await tablet.keyboard.press("Escape");
  await expect(tablet.getByRole("dialog")).toBeHidden();
  await tablet.getByRole("complementary").getByRole("button", { name: /UTD trip/ }).click();

  // The bubble's button leads to Settings → Recovery key; the key restores, in this same page.
  await tablet.evaluate(() => {
    (window as unknown as { notReloaded: boolean }).notReloaded = true;
  });
  await restore.click();
  const form = tablet.getByRole("dialog", { name: "Settings" }).getByRole("form", { name: "Restore with recovery key or passphrase" });
  await expect(form).toBeInViewport();
  await form.getByLabel("Recovery key or passphrase").fill(key);
  await form.getByRole("button", { name: "Restore" }).click();

  // The message decrypts where it was: no reload, nothing left waiting or counted.
  await expect(
    tablet.getByRole("dialog", { name: "Settings" }).getByText(/^Backup is on: [1-9]\d* keys backed up\.$/),
  ).toBeVisible({ timeout: 30_000 });
  await tablet.keyboard.press("Escape");
  await expect(tablet.getByRole("dialog")).toBeHidden();
  await tablet.getByRole("complementary").getByRole("button", { name: /UTD trip/ }).click();
  await expect(bubble(tablet, "The plan, before Bob's tablet").getByText("The plan, before Bob's tablet", { exact: true })).toBeVisible({
    timeout: 30_000,
  });
  await expect(waitingBubble(tablet)).toHaveCount(0);
  expect(await tablet.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
  expect(await undecryptableCounts(tablet)).toEqual({ failed: 0, waiting: 0, stuck: 0 });
  expect(pageErrors).toEqual([]);
});

test("a linked device asks Bob's first device for an old key: the bubble says so, and it decrypts when that device is back", async ({
  browser,
}) => {
  test.setTimeout(300_000);
  const alice = await signUp(browser, `alice-utd2-${stamp}`, "Alice");
  const bobName = `bob-utd2-${stamp}`;
  const phone = await signUp(browser, bobName, "Bob");
  await groupWith(alice, phone, bobName, "UTD lab", "Sent before the laptop");

  // Bob links a laptop by PIN from his phone (devices.spec.ts does it in detail).
  const laptop = await newDevice(browser);
  await laptop.getByRole("button", { name: "Link to an existing device" }).click();
  const pin = (await laptop.getByLabel("PIN").getAttribute("data-pin")) ?? "";
  expect(pin).not.toBe("");
  await phone.getByRole("button", { name: "Settings" }).click();
  await phone.getByRole("button", { name: "Devices" }).click();
  const devices = phone.getByRole("dialog", { name: "Devices" });
  await devices.getByRole("button", { name: "Link a new device" }).click();
  await devices.getByRole("textbox", { name: "PIN" }).fill(pin);
  await devices.getByRole("button", { name: "Continue" }).click();
  await expect(devices.getByRole("list", { name: "Emoji to compare" }).getByRole("listitem")).toHaveCount(7);
  await devices.getByRole("textbox", { name: "Name for the new device" }).fill("Bob's laptop");
  await devices.getByRole("button", { name: "The emoji match: link it" }).click();
  await laptop.getByRole("button", { name: "The emoji match" }).click();
  await expect(laptop.getByRole("button", { name: "New conversation" })).toBeVisible();
  await expect(status(laptop)).toHaveText("Connected");
  await expect(devices.getByRole("status").filter({ hasText: "Linked." })).toBeVisible();

  // The phone goes away (its data stays in its browser); the laptop opens the group.
  const phoneContext = phone.context();
  await phone.close();
  await laptop.getByRole("complementary").getByRole("button", { name: /UTD lab/ }).click();
  const waiting = waitingBubble(laptop);
  await expect(waiting).toHaveCount(1);
  await expect(waiting.locator(".sender")).toHaveText("Alice");
  await expect(waiting).not.toContainText("From Alice");
  await expect(waiting).toContainText("Alice sent this before this device joined your account, so the key was not shared with it.");
  // The key request went to the phone, which is offline.
  await expect(waiting).toContainText("Asked your other devices for the key: it arrives when one of them is online.", {
    timeout: 15_000,
  });
  await expect(waiting.getByRole("button", { name: "Restore from recovery key" })).toHaveCount(0);
  expect(await undecryptableCounts(laptop)).toEqual({ failed: 0, waiting: 1, stuck: 0 });
  await shoot(laptop, "undecryptable-asked");
  await language(laptop, "ru", "Settings");
  await expect(waiting).toHaveCount(0); // the heading is Russian now
  const russian = laptop.getByRole("log").locator("article").filter({ hasText: "Ждём ключ для расшифровки этого сообщения…" });
  await expect(russian).toContainText("Ключ запрошен у ваших других устройств");
  await laptop.setViewportSize({ width: 360, height: 740 });
  for (const scheme of ["light", "dark"] as const) {
    await laptop.emulateMedia({ colorScheme: scheme });
    await laptop.screenshot({ path: `e2e/artifacts/undecryptable-asked-ru-${scheme}-360.png` });
  }
  await laptop.emulateMedia({ colorScheme: "light" });
  await laptop.setViewportSize({ width: 1280, height: 800 });
  await language(laptop, "en", "Настройки");

  // The phone comes back: it answers the request, and the laptop's bubble turns into the
  // message, without a reload; the waiting count goes back to zero.
  const back = await phoneContext.newPage();
  await back.goto("/");
  await expect(status(back)).toHaveText("Connected");
  await expect(bubble(laptop, "Sent before the laptop").getByText("Sent before the laptop", { exact: true })).toBeVisible({
    timeout: 30_000,
  });
  await expect(waitingBubble(laptop)).toHaveCount(0);
  expect(await undecryptableCounts(laptop)).toEqual({ failed: 0, waiting: 0, stuck: 0 });
  // The laptop writes in the group; everyone reads it.
  await send(laptop, "Read it, thanks");
  await expect(bubble(alice, "Read it, thanks").getByText("Read it, thanks", { exact: true })).toBeVisible();
});
