// recovery.spec.ts — key backup and recovery (docs/e2ee.md "Backup and recovery"): Alice saves
// her recovery key at sign-up and talks with Bob; then a brand-new browser (nothing kept) signs
// in with her password and restores with the key: the whole history decrypts, Bob's device
// trusts the new one (no key-change warning) and both read each other. A mistyped key and
// another account's key are refused with a clear error, changing nothing. A passphrase restores
// too, and a wrong passphrase is refused.
import type { Browser, Page } from "@playwright/test";
import { acceptRequest, bubble, expect, newDevice, openDirect, password, send, shoot, signUp, stamp, status, test } from "./helpers";

/** Signs up on a fresh context and saves the recovery key (with `passphrase` if given); returns the page and the key. */
async function signUpSavingKey(
  browser: Browser,
  username: string,
  displayName: string,
  passphrase?: string,
): Promise<{ page: Page; key: string }> {
  const page = await newDevice(browser);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Display name (optional)").fill(displayName);
  await page.getByRole("button", { name: "Create account" }).click();
  const form = page.getByRole("form", { name: "Save your recovery key" });
  await expect(form).toBeVisible();
  await expect(form).toContainText("Your backup is encrypted on this device; the server's admin cannot read it.");
  const key = (await form.getByLabel("Recovery key", { exact: true }).getAttribute("data-recovery-key")) ?? "";
  // 55 characters of Crockford base32 in groups of four.
  expect(key.replace(/ /g, "")).toMatch(/^[0-9A-HJKMNP-TV-Z]{55}$/);
  expect(key.split(" ").every((g) => g.length <= 4)).toBe(true);
  await form.getByText("Show as a QR code").click();
  await expect(form.getByRole("img", { name: "Recovery key as a QR code" })).toHaveAttribute("data-qr-text", key);
  if (!passphrase) await shoot(page, "recovery-key");
  if (passphrase) {
    // Too short, then the confirmation differs: refused before anything is sent.
    await form.getByLabel("Passphrase (optional)").fill("short");
    await form.getByLabel("Passphrase again").fill("short");
    await form.getByRole("button", { name: "I have saved it" }).click();
    await expect(form.getByRole("alert")).toHaveText("The passphrase must have at least 10 characters.");
    await form.getByLabel("Passphrase (optional)").fill(passphrase);
    await form.getByLabel("Passphrase again").fill(`${passphrase}!`);
    await form.getByRole("button", { name: "I have saved it" }).click();
    await expect(form.getByRole("alert")).toHaveText("The two passphrases differ.");
    await form.getByLabel("Passphrase again").fill(passphrase);
  }
  await form.getByRole("button", { name: "I have saved it" }).click();
  await expect(page.getByRole("button", { name: "New conversation" })).toBeVisible({ timeout: 30_000 });
  await expect(status(page)).toHaveText("Connected");
  return { page, key };
}

/** Waits until Settings says at least `n` keys are backed up. */
async function backedUp(page: Page, n: number): Promise<void> {
  await expect(async () => {
    await page.getByRole("button", { name: "Settings" }).click();
    const settings = page.getByRole("dialog", { name: "Settings" });
    try {
      const line = settings.getByText(/^Backup is on: \d+ keys backed up\.$/);
      await expect(line).toBeVisible({ timeout: 3000 });
      const count = Number(/(\d+)/.exec((await line.textContent()) ?? "")?.[1] ?? "0");
      expect(count).toBeGreaterThanOrEqual(n);
    } finally {
      await page.keyboard.press("Escape");
      await expect(settings).toBeHidden();
    }
  }).toPass({ timeout: 30_000 });
}

/** A fresh browser (nothing kept) signs in with the password and reaches the restore screen. */
async function signInNeedingKey(browser: Browser, username: string): Promise<Page> {
  const page = await newDevice(browser);
  await page.getByRole("tab", { name: "Sign in" }).click();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "This device needs your account key" })).toBeVisible();
  return page;
}

function restoreForm(page: Page) {
  return page.getByRole("form", { name: "Restore with recovery key or passphrase" });
}

test("a new browser restores with the recovery key: the whole history decrypts and contacts trust it", async ({
  browser,
}) => {
  test.setTimeout(180_000);
  const aliceName = `alice-rk-${stamp}`;
  const bobName = `bob-rk-${stamp}`;
  const { page: alice, key } = await signUpSavingKey(browser, aliceName, "Alice");
  const bob = await signUp(browser, bobName, "Bob");

  await openDirect(alice, bobName);
  await send(alice, "first, from Alice's old browser");
  await acceptRequest(bob, /Alice/);
  await expect(bubble(bob, "first, from Alice's old browser")).toBeVisible();
  await send(bob, "an answer from Bob");
  await expect(bubble(alice, "an answer from Bob")).toBeVisible();
  await send(alice, "and one more from the old browser");
  await expect(bubble(bob, "and one more from the old browser")).toBeVisible();

  // Bob sets up his own recovery key in Settings (an account made without one): a well-formed
  // key, but not Alice's.
  await bob.getByRole("button", { name: "Settings" }).click();
  const bobSettings = bob.getByRole("dialog", { name: "Settings" });
  await expect(bobSettings.getByText("Backup is off", { exact: false })).toBeVisible();
  await bobSettings.getByRole("button", { name: "Set up a recovery key" }).click();
  const bobForm = bobSettings.getByRole("form", { name: "Save your recovery key" });
  const bobKey = (await bobForm.locator("[data-recovery-key]").getAttribute("data-recovery-key")) ?? "";
  expect(bobKey).not.toBe(key);
  await bobForm.getByRole("button", { name: "I have saved it" }).click();
  await expect(bobSettings.getByRole("status").filter({ hasText: "Your recovery key is saved" })).toBeVisible();
  await expect(bobSettings.getByText(/^Backup is on: \d+ keys backed up\.$/)).toBeVisible();
  await bob.keyboard.press("Escape");

  // Alice's keys (her own session and Bob's) reached the backup; then her browser is gone.
  await backedUp(alice, 2);
  await alice.context().close();

  const fresh = await signInNeedingKey(browser, aliceName);
  await shoot(fresh, "restore");
  const form = restoreForm(fresh);
  const input = form.getByLabel("Recovery key or passphrase");

  // A mistyped key (one character changed: the checksum fails) — refused before any work.
  const typo = key.replace(/[0-9A-Z]/, (c) => (c === "0" ? "1" : "0"));
  await input.fill(typo);
  await form.getByRole("button", { name: "Restore" }).click();
  await expect(form.getByRole("alert")).toHaveText(
    "This is not a valid recovery key, and this backup has no passphrase. Check what you typed.",
  );
  // Bob's key is a real recovery key, but not for this backup.
  await input.fill(bobKey);
  await form.getByRole("button", { name: "Restore" }).click();
  await expect(form.getByRole("alert")).toHaveText("This recovery key does not open your backup. Nothing was changed.");

  // The right key, typed in lower case with dashes: accepted.
  await input.fill(key.toLowerCase().replace(/ /g, "-"));
  await form.getByRole("button", { name: "Restore" }).click();
  await expect(fresh.getByRole("button", { name: "New conversation" })).toBeVisible({ timeout: 30_000 });
  await expect(status(fresh)).toHaveText("Connected");

  // The whole history decrypts; nothing waits for a key, and the device can send.
  await fresh.getByRole("button", { name: /Bob/ }).click();
  await expect(bubble(fresh, "first, from Alice's old browser")).toBeVisible();
  await expect(bubble(fresh, "an answer from Bob")).toBeVisible();
  await expect(bubble(fresh, "and one more from the old browser")).toBeVisible();
  await expect(fresh.getByText("Waiting for the key to decrypt this message…")).toHaveCount(0);
  await expect(fresh.getByRole("alert").filter({ hasText: "does not have your account key" })).toHaveCount(0);

  // Bob's device trusts the new one (its certificate is signed by the same account key): no
  // warning, and what he sends now reaches it.
  await send(bob, "Bob, after Alice restored");
  await expect(bubble(bob, "Bob, after Alice restored")).toBeVisible();
  await expect(bob.getByRole("alert").filter({ hasText: "account key" })).toHaveCount(0);
  await expect(bubble(fresh, "Bob, after Alice restored")).toBeVisible();
  await send(fresh, "Alice, from the restored browser");
  await expect(bubble(bob, "Alice, from the restored browser")).toBeVisible();
  await expect(bob.getByText("Waiting for the key to decrypt this message…")).toHaveCount(0);

  // The restored device backs up too (it holds the key now): Settings says so.
  await fresh.getByRole("button", { name: "Settings" }).click();
  await expect(fresh.getByRole("dialog", { name: "Settings" }).getByText(/^Backup is on: \d+ keys backed up\.$/)).toBeVisible();
  await fresh.keyboard.press("Escape");
});

test("a passphrase restores too; a wrong one changes nothing; a new key replaces the old", async ({ browser }) => {
  test.setTimeout(180_000);
  const carolName = `carol-pp-${stamp}`;
  const daveName = `dave-pp-${stamp}`;
  const passphrase = "a long and private passphrase";
  const { page: carol, key } = await signUpSavingKey(browser, carolName, "Carol", passphrase);
  const dave = await signUp(browser, daveName, "Dave");
  await openDirect(carol, daveName);
  await send(carol, "hello Dave, from Carol");
  await acceptRequest(dave, /Carol/);
  await send(dave, "hello Carol");
  await expect(bubble(carol, "hello Carol")).toBeVisible();
  await backedUp(carol, 2);
  await carol.context().close();

  const fresh = await signInNeedingKey(browser, carolName);
  const form = restoreForm(fresh);
  const input = form.getByLabel("Recovery key or passphrase");
  await input.fill("not the right passphrase");
  await form.getByRole("button", { name: "Restore" }).click();
  await expect(form.getByRole("alert")).toHaveText("This passphrase does not open your backup. Nothing was changed.", {
    timeout: 30_000,
  });
  await input.fill(passphrase);
  await form.getByRole("button", { name: "Restore" }).click();
  await expect(fresh.getByRole("button", { name: "New conversation" })).toBeVisible({ timeout: 30_000 });
  await fresh.getByRole("button", { name: /Dave/ }).click();
  await expect(bubble(fresh, "hello Dave, from Carol")).toBeVisible();
  await expect(bubble(fresh, "hello Carol")).toBeVisible();
  await expect(fresh.getByText("Waiting for the key to decrypt this message…")).toHaveCount(0);

  // A new recovery key (rotation) from the restored browser: shown once, and the old one no
  // longer opens the backup.
  await fresh.getByRole("button", { name: "Settings" }).click();
  const settings = fresh.getByRole("dialog", { name: "Settings" });
  await settings.getByRole("button", { name: "Make a new recovery key" }).click();
  const rotate = settings.getByRole("form", { name: "Save your recovery key" });
  const newKey = (await rotate.locator("[data-recovery-key]").getAttribute("data-recovery-key")) ?? "";
  expect(newKey).not.toBe(key);
  await rotate.getByRole("button", { name: "I have saved it" }).click();
  await expect(settings.getByRole("status").filter({ hasText: "Your recovery key is saved" })).toBeVisible({ timeout: 30_000 });
  await expect(settings.getByText(/^Backup is on: [1-9]\d* keys backed up\.$/)).toBeVisible();
  await fresh.keyboard.press("Escape");

  // A third browser goes on without the key ("Not now"): the history waits for its keys. Later,
  // Settings → Recovery key restores there (the old key no longer opens the backup, the new one
  // does), and what was waiting decrypts.
  const third = await signInNeedingKey(browser, carolName);
  await third.getByRole("button", { name: "Not now" }).click();
  await third.getByRole("button", { name: /Dave/ }).click();
  await expect(third.getByText("Waiting for the key to decrypt this message…").first()).toBeVisible();
  await expect(third.getByRole("alert").filter({ hasText: "does not have your account key" })).toBeVisible();
  await third.getByRole("button", { name: "Settings" }).click();
  let thirdSettings = third.getByRole("dialog", { name: "Settings" });
  const thirdForm = restoreForm(third);
  await thirdForm.getByLabel("Recovery key or passphrase").fill(key);
  await thirdForm.getByRole("button", { name: "Restore" }).click();
  await expect(thirdForm.getByRole("alert")).toHaveText("This recovery key does not open your backup. Nothing was changed.");
  await thirdForm.getByLabel("Recovery key or passphrase").fill(newKey);
  await thirdForm.getByRole("button", { name: "Restore" }).click();
  await expect(thirdSettings.getByText(/^Backup is on: [1-9]\d* keys backed up\.$/)).toBeVisible({ timeout: 30_000 });
  await third.keyboard.press("Escape");
  await third.getByRole("button", { name: /Dave/ }).click();
  await expect(bubble(third, "hello Carol")).toBeVisible();
  await expect(bubble(third, "hello Dave, from Carol")).toBeVisible();
  await expect(third.getByText("Waiting for the key to decrypt this message…")).toHaveCount(0);
  await expect(third.getByRole("alert").filter({ hasText: "does not have your account key" })).toHaveCount(0);
  await send(third, "Carol, from the third browser");
  await expect(bubble(dave, "Carol, from the third browser")).toBeVisible();

  // Turning backup off (confirmed) deletes it: the next browser is not offered a restore.
  await third.getByRole("button", { name: "Settings" }).click();
  thirdSettings = third.getByRole("dialog", { name: "Settings" });
  await thirdSettings.getByRole("button", { name: "Turn off backup" }).click();
  await third.getByRole("dialog", { name: "Turn off backup?" }).getByRole("button", { name: "Turn off backup" }).click();
  await expect(thirdSettings.getByRole("status").filter({ hasText: "Backup is off." })).toBeVisible();
  const fourth = await newDevice(browser);
  await fourth.getByRole("tab", { name: "Sign in" }).click();
  await fourth.getByLabel("Username").fill(carolName);
  await fourth.getByLabel("Password").fill(password);
  await fourth.getByRole("button", { name: "Sign in" }).click();
  await expect(fourth.getByRole("button", { name: "New conversation" })).toBeVisible();
  await expect(fourth.getByRole("heading", { name: "This device needs your account key" })).toHaveCount(0);
  // Its conversation banner says how to link instead, with no Restore button.
  await fourth.getByRole("button", { name: /Dave/ }).click();
  const banner = fourth.locator(".needs-key");
  await expect(banner).toContainText(
    "Your account has no backup: sign out, then on the sign-in screen choose “Link to an existing device” and confirm on a device where you are signed in.",
  );
  await expect(banner.getByRole("button")).toHaveCount(0);
});
