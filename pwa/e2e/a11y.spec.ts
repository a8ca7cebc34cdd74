// a11y.spec.ts — an axe-core audit (axe-core from npm, its script injected into the page) of the
// sign-in screen, the conversation list, an open conversation and settings, in the light and the
// dark theme: no violation of impact "serious" or "critical" (contrast, names, labels, roles).
// The audited context bypasses the Content-Security-Policy only so the axe script can be
// injected; the app's own policy is checked by every other spec.
import type { Browser, Page } from "@playwright/test";
import { audit } from "./axe";
import { acceptRequest, expect, guardHosts, openDirect, password, send, signUp, stamp, status, test } from "./helpers";

/** Audits `page` in the light and the dark theme (the app follows the system's by default). */
async function auditBoth(page: Page, name: string): Promise<void> {
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    await expect(page.locator("html")).toHaveAttribute("data-theme", scheme);
    await page.screenshot({ path: `e2e/artifacts/a11y-${name}-${scheme}.png` });
    expect(await audit(page), `${name}, ${scheme} theme`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });
}

async function auditedDevice(browser: Browser): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  guardHosts(context);
  const page = await context.newPage();
  await page.goto("/");
  return page;
}

test("no serious or critical axe violations: sign-in, list, conversation, settings, light and dark", async ({
  browser,
}) => {
  test.slow(); // ten audits, two browsers
  const page = await auditedDevice(browser);
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  // The audit can fail: a nameless button and grey-on-grey text planted in the page are found.
  await page.evaluate(() => {
    const probe = document.createElement("div");
    probe.id = "axe-probe";
    probe.innerHTML = '<button type="button"></button><p style="color:#aaa;background:#bbb">low contrast</p>';
    document.body.append(probe);
  });
  expect((await audit(page)).map((v) => v.id).sort()).toEqual(["button-name", "color-contrast"]);
  await page.evaluate(() => document.getElementById("axe-probe")?.remove());
  await auditBoth(page, "sign-in");

  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(`alice-a11y-${stamp}`);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Display name (optional)").fill("Alice");
  await auditBoth(page, "sign-up");
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("form", { name: "Save your recovery key" })).toBeVisible();
  await auditBoth(page, "recovery-key");
  await page.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "Not now" }).click();
  await expect(status(page)).toHaveText("Connected");

  const bob = await signUp(browser, `bob-a11y-${stamp}`, "Bob");
  await openDirect(page, `bob-a11y-${stamp}`);
  await send(page, "Hello **Bob**, see https://example.org and `code`");
  await send(page, "```\nconst a = 1; // a code block\n```");
  await acceptRequest(bob, /Alice/);
  await send(bob, "> quoted\n\nHi Alice!");
  await expect(page.getByRole("log").locator("article").filter({ hasText: "Hi Alice!" })).toBeVisible();
  await auditBoth(page, "conversation");

  // The React picker open, then chips under the message: ours (pressed) and Bob's.
  const hi = page.getByRole("log").locator("article").filter({ hasText: "Hi Alice!" });
  await hi.getByRole("button", { name: "Message actions" }).click();
  await hi.getByRole("button", { name: "React", exact: true }).click();
  await auditBoth(page, "reaction-picker");
  await hi.getByRole("button", { name: "React with 🦊" }).click();
  await bob.getByRole("log").locator("article").filter({ hasText: "Hi Alice!" }).getByRole("button", { name: "Message actions" }).click();
  await bob.getByRole("button", { name: "React", exact: true }).click();
  await bob.getByRole("button", { name: "React with 🎉" }).click();
  await expect(page.getByRole("button", { name: "🦊 1: You" })).toHaveAttribute("aria-pressed", "true");
  await expect(page.getByRole("button", { name: "🎉 1: Bob" })).toHaveAttribute("aria-pressed", "false");
  await auditBoth(page, "reactions");

  // The list with a conversation in it (none open), and an unread badge from Bob.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.getByRole("button", { name: "Back to conversations" }).click();
  await send(bob, "Another one");
  await expect(page.locator(".badge")).toHaveText("1");
  await auditBoth(page, "list-phone");
  await page.setViewportSize({ width: 1280, height: 800 });

  await page.getByRole("button", { name: "Settings" }).click();
  await expect(page.getByRole("dialog", { name: "Settings" })).toBeVisible();
  await auditBoth(page, "settings");
  await page.getByRole("dialog", { name: "Settings" }).getByRole("button", { name: "Sign out" }).click();
  const confirm = page.getByRole("dialog", { name: "Sign out on this device?" });
  await expect(confirm).toContainText("This is your only device");
  await auditBoth(page, "sign-out-confirm");
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await expect(confirm).toBeHidden();
});

test("no serious or critical axe violations in a guild: channels, members, settings, invite, encrypted channel, phone drawer", async ({ browser }) => {
  test.slow();
  const page = await auditedDevice(browser);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.getByLabel("Username").fill(`carol-a11y-${stamp}`);
  await page.getByLabel("Password").fill(password);
  await page.getByLabel("Display name (optional)").fill("Carol");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "Not now" }).click();
  await expect(status(page)).toHaveText("Connected");

  const rail = page.getByRole("navigation", { name: "Communities" });
  await rail.getByRole("button", { name: "Add a community" }).click();
  await auditBoth(page, "guild-add");
  const add = page.getByRole("dialog", { name: "Add a community" });
  await add.getByRole("textbox", { name: "Name" }).fill("Chess club");
  await add.getByRole("button", { name: "Create community" }).click();
  await expect(page.locator("section.conversation > header h2")).toHaveText("#general");
  await send(page, "Opening night on **Friday**");
  await expect(page.getByRole("log").locator("article").filter({ hasText: "Opening night" })).toBeVisible();
  await auditBoth(page, "guild");

  // The member card of ourselves, then each settings tab.
  await page.getByRole("complementary", { name: "Members of the community" }).getByRole("button", { name: /^You/ }).click();
  await auditBoth(page, "guild-member-card");
  await page.getByRole("dialog", { name: "You" }).getByRole("button", { name: "Close" }).click();
  await page.getByRole("button", { name: "Community settings" }).click();
  const settings = page.getByRole("dialog", { name: "Chess club: settings" });
  await auditBoth(page, "guild-overview");
  await settings.getByRole("tab", { name: "Roles" }).click();
  await settings.getByRole("button", { name: "Edit @everyone" }).click();
  await auditBoth(page, "guild-roles");
  await settings.getByRole("tab", { name: "Channels" }).click();
  await auditBoth(page, "guild-channels");
  // A private end-to-end encrypted channel, audited open below.
  const create = settings.getByRole("form", { name: "Create a channel" });
  await create.getByRole("textbox", { name: "Name" }).fill("secret");
  await create.getByRole("checkbox", { name: /^End-to-end encrypted/ }).check();
  await create.getByRole("button", { name: "Create" }).click();
  await expect(settings.getByRole("button", { name: "Edit secret" })).toBeVisible();
  await settings.getByRole("tab", { name: "Invites" }).click();
  await settings.getByRole("button", { name: "Create invite link" }).click();
  await expect(settings.getByRole("img", { name: "QR code of the invite link" })).toBeVisible();
  await auditBoth(page, "guild-invites");
  await settings.getByRole("tab", { name: "Audit log" }).click();
  await expect(settings.getByRole("listitem").filter({ hasText: "created an invite" })).toBeVisible();
  await auditBoth(page, "guild-audit");
  await settings.getByRole("button", { name: "Close" }).last().click();

  // The encrypted channel: its chat, its own member list, and "Add people".
  await page.getByRole("navigation", { name: "Channels" }).getByRole("button", { name: /^🔒 secret/ }).click();
  const channelMembers = page.getByRole("complementary", { name: "Members of the channel" });
  await expect(channelMembers.getByRole("button", { name: "Add people" })).toBeVisible();
  await auditBoth(page, "guild-e2ee");
  await channelMembers.getByRole("button", { name: "Add people" }).click();
  await expect(page.getByRole("dialog", { name: "Add people to #secret" })).toBeVisible();
  await auditBoth(page, "guild-e2ee-add");
  await page.getByRole("dialog", { name: "Add people to #secret" }).getByRole("button", { name: "Cancel" }).click();

  // A phone: the drawer with the rail and the channels over the channel.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.getByRole("button", { name: "Communities and channels" }).click();
  await expect(page.getByRole("navigation", { name: "Channels" })).toBeVisible();
  await auditBoth(page, "guild-drawer-phone");
});
