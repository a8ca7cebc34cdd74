// avatars.spec.ts — account pictures against the real server: a file that only claims to be a
// PNG is refused with a clear message; Alice sets a real picture (a PNG made here, larger than
// 256x256) and Bob, in a direct conversation with her, sees it appear live in his conversation
// list and header, resized by the server; Alice removes it and Bob's initial comes back.
import { acceptRequest, bubble, expect, openDirect, png, send, shoot, signUp, stamp, test } from "./helpers";
import type { Locator } from "@playwright/test";


/** The natural width of the loaded picture in `avatar` (0 while it is not loaded). */
async function pictureWidth(avatar: Locator): Promise<number> {
  return avatar.locator("img").evaluate((img: HTMLImageElement) => (img.complete ? img.naturalWidth : 0));
}

test("Alice's picture reaches Bob live; a file that is not a PNG is refused", async ({ browser }) => {
  const alice = await signUp(browser, `alice-av-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-av-${stamp}`, "Bob");

  await openDirect(alice, `bob-av-${stamp}`);
  await send(alice, "Hi Bob, new picture soon");
  // Bob accepts Alice's request: contacts see each other's pictures.
  await acceptRequest(bob, /Alice/);
  const entry = bob.getByRole("button", { name: /Alice/ });
  await expect(bubble(bob, "new picture soon")).toBeVisible();
  const listAvatar = entry.locator(".conv-avatar");
  const headAvatar = bob.locator("header .head-avatar");
  await expect(listAvatar).toHaveText("A");
  await expect(headAvatar).toHaveText("A");

  await alice.getByRole("button", { name: "Settings" }).click();
  const settings = alice.getByRole("dialog", { name: "Settings" });
  await expect(settings.getByRole("button", { name: "Change picture" })).toBeVisible();
  await expect(settings.getByRole("button", { name: "Remove picture" })).toHaveCount(0);
  const picker = settings.locator('input[type=file][name="avatar"]');
  await expect(picker).toHaveAttribute("aria-label", "Change picture"); // hidden: the button opens it

  // A text file named .png: the server looks at the bytes and says it is not a picture.
  await picker.setInputFiles({ name: "not-a-picture.png", mimeType: "image/png", buffer: Buffer.from("just some text, not a PNG\n") });
  await expect(settings.getByRole("alert").filter({ hasText: "not a picture" })).toHaveText(
    "That file is not a picture. Pick a PNG, JPEG or WebP image.",
  );
  await expect(listAvatar.locator("img")).toHaveCount(0);

  // A real 600x400 PNG: stored as at most 256x256.
  await picker.setInputFiles({ name: "me.png", mimeType: "image/png", buffer: png(600, 400) });
  await expect(settings.getByRole("status").filter({ hasText: "Picture saved." })).toBeVisible();
  await expect.poll(() => pictureWidth(settings.locator(".avatar-lg"))).toBe(256);
  await expect(settings.getByRole("button", { name: "Remove picture" })).toBeVisible();

  // Bob sees it appear live (AvatarEvent), in the list and the header.
  for (const avatar of [listAvatar, headAvatar]) {
    await expect.poll(() => pictureWidth(avatar)).toBeGreaterThan(0);
    const width = await pictureWidth(avatar);
    expect(width).toBeLessThanOrEqual(256);
  }
  await shoot(bob, "avatars");
  await shoot(alice, "avatars-settings");

  // Alice removes it: Bob's initial comes back live.
  await settings.getByRole("button", { name: "Remove picture" }).click();
  await expect(settings.getByRole("status").filter({ hasText: "Picture removed." })).toBeVisible();
  await expect(listAvatar.locator("img")).toHaveCount(0);
  await expect(listAvatar).toHaveText("A");
  await expect(headAvatar).toHaveText("A");
});

test("a group's owner sets its picture; a member sees it live and cannot change it", async ({ browser }) => {
  const alice = await signUp(browser, `alice-gav-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-gav-${stamp}`, "Bob");

  await alice.getByRole("button", { name: "New conversation" }).click();
  const dialog = alice.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("radio", { name: "Group" }).check();
  await dialog.getByRole("textbox", { name: "Group name" }).fill("Picnic");
  await dialog.getByRole("textbox", { name: /Members' usernames/ }).fill(`bob-gav-${stamp}`);
  await dialog.getByRole("button", { name: "Create group" }).click();
  await expect(alice.getByRole("heading", { name: "Picnic" })).toBeVisible();
  await send(alice, "Bring a blanket");
  await acceptRequest(bob, /Picnic/);
  const entry = bob.getByRole("button", { name: /Picnic/ });
  await expect(bubble(bob, "Bring a blanket")).toBeVisible();
  await expect(entry.locator(".conv-avatar")).toHaveText("P");

  // A member has no picture controls.
  await bob.getByRole("button", { name: "Members (2)" }).click();
  const bobMembers = bob.getByRole("dialog", { name: "Members" });
  await expect(bobMembers.getByRole("list", { name: "Members" }).getByRole("listitem")).toHaveCount(2);
  await expect(bobMembers.getByRole("button", { name: "Change picture" })).toHaveCount(0);
  await bobMembers.getByRole("button", { name: "Close" }).click();

  // The owner sets it from the members dialog.
  await alice.getByRole("button", { name: "Members (2)" }).click();
  const members = alice.getByRole("dialog", { name: "Members" });
  await members.locator('input[type=file][name="groupAvatar"]').setInputFiles({ name: "g.png", mimeType: "image/png", buffer: png(120, 90) });
  await expect(members.getByRole("status").filter({ hasText: "Picture saved." })).toBeVisible();
  await expect.poll(() => pictureWidth(members.locator(".avatar-lg"))).toBe(120);

  for (const avatar of [entry.locator(".conv-avatar"), bob.locator("header .head-avatar")]) {
    await expect.poll(() => pictureWidth(avatar)).toBe(120);
  }
  await shoot(alice, "avatars-group-members");

  await members.getByRole("button", { name: "Remove picture" }).click();
  await expect(entry.locator(".conv-avatar img")).toHaveCount(0);
  await expect(entry.locator(".conv-avatar")).toHaveText("P");
});
