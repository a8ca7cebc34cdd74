// polish.spec.ts — the small things people notice: the device's default name (browser and OS)
// or the one typed at sign-up, dialogs and the composer taking the focus, bare URLs as safe
// links, Markdown-free previews in the list, and the unread total in the tab title.
import { expect, newDevice, openDirect, password, send, signUp, stamp, status, test } from "./helpers";

test("device names, focus, links, previews and the unread title", async ({ browser }) => {
  const alice = await signUp(browser, `alice-po-${stamp}`, "Alice");

  // Bob names his device at sign-up.
  const bob = await newDevice(browser);
  await bob.getByRole("tab", { name: "Create account" }).click();
  await bob.getByLabel("Username").fill(`bob-po-${stamp}`);
  await bob.getByLabel("Password").fill(password);
  await expect(bob.locator(".device-name summary")).toHaveText(/^This device: Chromium \d+ on Linux$/);
  await bob.locator(".device-name summary").click();
  await bob.getByLabel("Name this device (optional)").fill("Bob's laptop");
  await bob.getByRole("button", { name: "Create account" }).click();
  await bob.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "Not now" }).click();
  await expect(status(bob)).toHaveText("Connected");
  await expect(bob).toHaveTitle("KitsuLAN");

  // Alice's device got the browser and OS as its name.
  await alice.getByRole("button", { name: "Settings" }).click();
  await alice.getByRole("dialog", { name: "Settings" }).getByRole("button", { name: "Devices" }).click();
  await expect(alice.getByRole("dialog", { name: "Devices" }).locator(".device").first()).toContainText(/Chromium \d+ on Linux/);
  await alice.keyboard.press("Escape");

  // The new-conversation dialog puts the cursor in its first field; the opened conversation in
  // the composer.
  await alice.getByRole("button", { name: "New conversation" }).click();
  await expect(alice.getByRole("dialog", { name: "New conversation" }).getByRole("textbox", { name: "Their username" })).toBeFocused();
  await alice.keyboard.press("Escape");
  await openDirect(alice, `bob-po-${stamp}`);
  await expect(alice.getByRole("textbox", { name: "Message" })).toBeFocused();

  await send(alice, "**Look** at `this`: https://example.org/a_b?c=1. Or javascript:alert(1)");
  await send(alice, "second");

  // Bob accepts the request: the link is a safe one, the Markdown rendered.
  const entry = bob.getByRole("button", { name: "Requests (1)" });
  await expect(entry).toBeVisible();
  await entry.click();
  await bob.getByRole("list", { name: "Message requests" }).getByRole("button", { name: /Alice/ }).click();
  await bob.getByRole("button", { name: /^Accept the request from / }).click();
  await expect(bob.getByRole("log").locator("article")).toHaveCount(2);
  const link = bob.getByRole("log").getByRole("link", { name: "https://example.org/a_b?c=1" });
  await expect(link).toHaveAttribute("href", "https://example.org/a_b?c=1");
  await expect(link).toHaveAttribute("target", "_blank");
  await expect(link).toHaveAttribute("rel", "noopener noreferrer nofollow");
  await expect(bob.getByRole("log").locator('a[href^="javascript"]')).toHaveCount(0);
  await expect(bob.getByRole("log").locator("strong")).toHaveText("Look");

  // Bob goes to the list (phone width) while Alice writes more: "(2) KitsuLAN", the preview
  // without Markdown.
  await bob.setViewportSize({ width: 360, height: 740 });
  await bob.getByRole("button", { name: "Back to conversations" }).click();
  await send(alice, "**bold** and `code` and [a link](https://example.org)");
  await send(alice, "~~two~~");
  await expect(bob).toHaveTitle("(2) KitsuLAN");
  await expect(bob.locator(".conv-preview").first()).toHaveText("two");
  await send(alice, "**bold** and `code` and [a link](https://example.org)");
  await expect(bob.locator(".conv-preview").first()).toHaveText("bold and code and a link");
  await expect(bob.locator(".toast-text")).toHaveText("bold and code and a link");
  await expect(bob).toHaveTitle("(3) KitsuLAN");
  await bob.screenshot({ path: "e2e/artifacts/polish-list-preview.png" });
  await bob.locator(".conv").first().click();
  await expect(bob).toHaveTitle("KitsuLAN");
  // Bob's device is called what he typed.
  await bob.setViewportSize({ width: 1280, height: 800 });
  await bob.getByRole("button", { name: "Settings" }).click();
  await bob.getByRole("dialog", { name: "Settings" }).getByRole("button", { name: "Devices" }).click();
  await expect(bob.getByRole("dialog", { name: "Devices" }).locator(".device").first()).toContainText("Bob's laptop");
});
