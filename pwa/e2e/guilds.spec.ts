// guilds.spec.ts — issue 21 in the browser: an owner makes a guild, an announcement channel and a
// private channel, and an invite (its link and QR code); a second person opens the invite link
// signed out, signs up, and joins; both chat in #general live, with a mention, a reaction and
// slow mode counting down; the member cannot post in the announcement channel (the composer says
// why) and does not see the private one; the keyboard moves between channels (Alt+↑, Ctrl+K); a
// role that cannot see a channel takes it from the member's list live; the owner kicks the
// member, whose app drops the guild at once. Screenshots at 1280 and 360 px, light and dark, and
// a Russian pass at 360 px.
import type { Page } from "@playwright/test";
import { bubble, createAccount, decodePng, expect, newDevice, png, qrPng, send, shoot, signUp, stamp, test } from "./helpers";

const rail = (page: Page) => page.getByRole("navigation", { name: "Communities" });
const channels = (page: Page) => page.getByRole("navigation", { name: "Channels" });
const heading = (page: Page) => page.locator("section.conversation > header h2");

async function settingsTab(page: Page, tab: string) {
  const dialog = page.getByRole("dialog", { name: "LAN party: settings" });
  if (!(await dialog.isVisible())) await page.getByRole("button", { name: "Community settings" }).click();
  await dialog.getByRole("tab", { name: tab }).click();
  return dialog;
}

async function createChannel(page: Page, kind: string, name: string, privately = false) {
  const dialog = await settingsTab(page, "Channels");
  const form = dialog.getByRole("form", { name: "Create a channel" });
  await form.getByRole("combobox", { name: "Kind" }).selectOption({ label: kind });
  await form.getByRole("textbox", { name: "Name" }).fill(name);
  if (privately) await form.getByRole("checkbox", { name: "Private", exact: true }).check();
  await form.getByRole("button", { name: "Create" }).click();
  await expect(dialog.getByRole("button", { name: `Edit ${name}` })).toBeVisible();
}

test("guilds: create, invite by link, chat, announcement, private channel, kick", async ({ browser }) => {
  test.setTimeout(240_000);
  const alice = await signUp(browser, `alice-gd-${stamp}`, "Alice");

  // Alice makes a guild from the rail's "+": it opens on #general.
  await rail(alice).getByRole("button", { name: "Add a community" }).click();
  const add = alice.getByRole("dialog", { name: "Add a community" });
  await add.getByRole("textbox", { name: "Name" }).fill("LAN party");
  await add.getByRole("textbox", { name: "Description (optional)" }).fill("Friday games in the basement");
  await add.getByRole("button", { name: "Create community" }).click();
  await expect(add).toBeHidden();
  await expect(rail(alice).getByRole("button", { name: /^LAN party/ })).toHaveAttribute("aria-current", "page");
  await expect(heading(alice)).toHaveText("#general");
  await expect(channels(alice).getByRole("button", { name: /Lobby, Voice channel/ })).toBeVisible();

  // An announcement channel and a private channel, from the settings.
  await createChannel(alice, "Announcement channel", "news");
  await createChannel(alice, "Text channel", "staff", true);

  // An icon for the guild, through the avatar pipeline: the rail shows the picture.
  const overview = await settingsTab(alice, "Overview");
  await overview.locator('input[type=file][name="guildIcon"]').setInputFiles({ name: "icon.png", mimeType: "image/png", buffer: png(300, 200) });
  await expect(overview.getByText("Picture saved.")).toBeVisible();
  await expect(rail(alice).getByRole("button", { name: /^LAN party/ }).locator("img.rail-img")).toBeVisible();
  await overview.getByRole("button", { name: "Close" }).last().click();
  await expect(overview).toBeHidden();

  // An invite: its link, shown once, and the same link as a QR code.
  const invites = await settingsTab(alice, "Invites");
  await invites.getByRole("button", { name: "Create invite link" }).click();
  const linkText = (await invites.getByLabel("Invite link", { exact: true }).textContent()) ?? "";
  expect(linkText).toMatch(/\/invite\/[A-Za-z0-9_-]{22}$/);
  expect(decodePng(await qrPng(invites.getByRole("img", { name: "QR code of the invite link" })))).toBe(linkText);
  await shoot(alice, "guild-invite");
  await invites.getByRole("button", { name: "Close" }).last().click();
  await expect(invites).toBeHidden();

  // Bob opens the link signed out: the sign-up comes first, then the invitation, then Join.
  const bob = await newDevice(browser);
  await bob.goto(linkText);
  await expect(bob.getByRole("alert")).toContainText("You opened an invitation to a community");
  await createAccount(bob, `bob-gd-${stamp}`, "Bob");
  const invitation = bob.getByRole("dialog", { name: "Invitation" });
  await expect(invitation.getByRole("heading", { name: "LAN party" })).toBeVisible();
  await expect(invitation).toContainText("Friday games in the basement");
  await expect(invitation).toContainText("Members: 1");
  await shoot(bob, "guild-invitation");
  await invitation.getByRole("button", { name: "Join" }).click();
  await expect(invitation).toBeHidden();
  await expect(heading(bob)).toHaveText("#general");
  await expect(new URL(bob.url()).pathname).toBe("/");
  // The private channel is not for him; the announcement channel is.
  await expect(channels(bob).getByRole("button", { name: /^📢 news/ })).toBeVisible();
  await expect(channels(bob).getByRole("button", { name: /staff/ })).toHaveCount(0);
  await expect(channels(alice).getByRole("button", { name: /staff/ })).toBeVisible();

  // Both chat in #general, live.
  await send(alice, "Welcome to the party!");
  await expect(bubble(bob, "Welcome to the party!")).toBeVisible();
  await expect(bubble(bob, "Welcome to the party!").locator(".sender")).toHaveText("Alice");
  await send(bob, "Thanks, glad to be here");
  await expect(bubble(alice, "Thanks, glad to be here")).toBeVisible();

  // A mention: Bob picks Alice from the @ suggestions (the guild's members); Alice, in another
  // channel, sees the mention on the channel and on the guild's icon.
  await channels(alice).getByRole("button", { name: /^📢 news/ }).click();
  const bobBox = bob.getByRole("textbox", { name: "Message" });
  await bobBox.fill("@Al");
  await bob.getByRole("option", { name: "Mention Alice" }).click();
  await bobBox.pressSequentially("see you at eight");
  await bobBox.press("Enter");
  await expect(channels(alice).getByRole("button", { name: "#general, 1 mentions of you" })).toBeVisible();
  await expect(rail(alice).getByRole("button", { name: "LAN party, 1 mentions of you" })).toBeVisible();
  await channels(alice).getByRole("button", { name: /^#general/ }).click();
  await expect(bubble(alice, "see you at eight")).toBeVisible();
  await expect(channels(alice).getByRole("button", { name: "#general", exact: true })).toBeVisible();
  // A reaction, kept by the server, seen by both.
  await bubble(alice, "see you at eight").getByRole("button", { name: "Message actions" }).click();
  await bubble(alice, "see you at eight").getByRole("button", { name: "React", exact: true }).click();
  await alice.getByRole("button", { name: "React with 👍" }).click();
  await expect(bob.getByRole("group", { name: "Reactions" }).getByRole("button", { name: /👍/ })).toContainText("1");

  // Slow mode on #general: Bob sees it, and after his message the composer counts down; Alice,
  // who manages the channel, is exempt.
  const slow = await settingsTab(alice, "Channels");
  await slow.getByRole("button", { name: "Edit general" }).click();
  await slow.getByRole("combobox", { name: "Slow mode" }).selectOption({ label: "5 seconds" });
  await slow.getByRole("form", { name: "Edit general" }).getByRole("button", { name: "Save" }).click();
  await expect(slow.getByText("Slow mode: 5 seconds between messages.")).toBeVisible();
  await slow.getByRole("button", { name: "Close" }).last().click();
  await expect(bob.getByRole("status").filter({ hasText: "Slow mode: 5 seconds between messages." })).toBeVisible();
  await send(bob, "first in slow mode");
  await expect(bubble(alice, "first in slow mode")).toBeVisible();
  await expect(bob.getByRole("status").filter({ hasText: /^Slow mode: you can send again in [1-5] s\.$/ })).toBeVisible();
  await bobBox.fill("second in slow mode");
  await expect(bob.getByRole("button", { name: "Send" })).toBeDisabled();
  await expect(bob.getByRole("button", { name: "Send" })).toBeEnabled({ timeout: 8_000 });
  await bobBox.press("Enter");
  await expect(bubble(alice, "second in slow mode")).toBeVisible();
  await expect(alice.getByRole("status").filter({ hasText: "Slow mode: 5 seconds between messages. (You are exempt.)" })).toBeVisible();

  // The member list shows both, Alice as the owner.
  const members = alice.getByRole("complementary", { name: "Members of the community" });
  await expect(members.getByRole("button", { name: /^Bob/ })).toBeVisible();
  await expect(members.getByRole("button", { name: /^You.*owner/ })).toBeVisible();

  // Bob may not post in the announcement channel: the composer says why.
  await channels(bob).getByRole("button", { name: /^📢 news/ }).click();
  await expect(heading(bob)).toHaveText("#news");
  const box = bob.getByRole("textbox", { name: "Message" });
  await expect(box).toBeDisabled();
  await expect(box).toHaveAttribute("placeholder", "This is an announcement channel: only some roles post here.");
  await expect(bob.getByRole("button", { name: "Send" })).toHaveCount(0);
  // Alice may; Bob reads it, and #news shows unread to him when he is elsewhere.
  await channels(bob).getByRole("button", { name: /^#general/ }).click();
  await channels(alice).getByRole("button", { name: /^📢 news/ }).click();
  await send(alice, "Pizza at eight");
  await expect(channels(bob).getByRole("button", { name: /^📢 news, unread messages/ })).toBeVisible();
  await channels(bob).getByRole("button", { name: /^📢 news/ }).click();
  await expect(bubble(bob, "Pizza at eight")).toBeVisible();
  await expect(channels(bob).getByRole("button", { name: /^📢 news$/ })).toBeVisible();

  // The keyboard: Alt+↑ to the channel above, Ctrl+K to jump by name.
  await alice.keyboard.press("Alt+ArrowUp");
  await expect(heading(alice)).toHaveText("#general");
  await alice.keyboard.press("Control+k");
  const switcher = alice.getByRole("dialog", { name: "Quick switcher" });
  await switcher.getByRole("combobox", { name: "Where to" }).fill("staff");
  await switcher.getByRole("combobox", { name: "Where to" }).press("Enter");
  await expect(heading(alice)).toHaveText("#staff");
  await channels(alice).getByRole("button", { name: /^#general/ }).click();

  await shoot(alice, "guild-owner");
  await shoot(bob, "guild-member");
  // The settings' roles and channels tabs, as the owner sees them.
  const roles = await settingsTab(alice, "Roles");
  await roles.getByRole("form", { name: "Create role" }).getByRole("textbox", { name: "Role name" }).fill("Moderators");
  await roles.getByRole("button", { name: "Create role" }).click();
  await roles.getByRole("button", { name: "Edit Moderators" }).click();
  await roles.getByRole("checkbox", { name: "Kick members" }).check();
  await shoot(alice, "guild-roles");
  await roles.getByRole("button", { name: "Save" }).click();
  await expect(roles.getByRole("checkbox", { name: "Kick members" })).toBeHidden();
  await settingsTab(alice, "Channels");
  await shoot(alice, "guild-channels");
  await alice.getByRole("dialog", { name: "LAN party: settings" }).getByRole("button", { name: "Close" }).last().click();

  // A role that cannot see one channel: Bob gets "Guests", #news denies Guests "View channels",
  // and #news leaves Bob's list at once.
  const roleTab = await settingsTab(alice, "Roles");
  await roleTab.getByRole("form", { name: "Create role" }).getByRole("textbox", { name: "Role name" }).fill("Guests");
  await roleTab.getByRole("button", { name: "Create role" }).click();
  await expect(roleTab.getByRole("button", { name: "Edit Guests" })).toBeVisible();
  const channelTab = await settingsTab(alice, "Channels");
  await channelTab.getByRole("button", { name: "Edit news" }).click();
  const perms = channelTab.getByRole("group", { name: "Permissions in this channel" });
  await perms.getByRole("combobox", { name: "Set permissions for" }).selectOption({ label: "Guests" });
  await perms.getByRole("button", { name: "Add" }).click();
  await perms.getByRole("radio", { name: "View channels: Deny" }).check();
  await shoot(alice, "guild-overwrites");
  await perms.getByRole("button", { name: "Save" }).click();
  await expect(perms.getByRole("button", { name: "Remove the permissions of Guests here" })).toBeVisible();
  await channelTab.getByRole("button", { name: "Close" }).last().click();
  await members.getByRole("button", { name: /^Bob/ }).click();
  const bobCard = alice.getByRole("dialog", { name: "Bob" });
  await bobCard.getByRole("checkbox", { name: "Guests" }).check();
  await bobCard.getByRole("button", { name: "Save roles" }).click();
  await expect(bobCard).toBeHidden();
  await expect(channels(bob).getByRole("button", { name: /news/ })).toHaveCount(0);
  await expect(channels(bob).getByRole("button", { name: /^#general/ })).toBeVisible();
  // The member list groups Bob under his role now.
  await expect(members.getByRole("region", { name: "Guests" }).getByRole("button", { name: /^Bob/ })).toBeVisible();

  // The owner kicks Bob from the member list: his app drops the guild at once.
  await members.getByRole("button", { name: /^Bob/ }).click();
  const card = alice.getByRole("dialog", { name: "Bob" });
  await card.getByRole("button", { name: "Kick" }).click();
  await alice.getByRole("dialog", { name: "Kick Bob?" }).getByRole("button", { name: "Kick" }).click();
  await expect(rail(bob).getByRole("button", { name: /^LAN party/ })).toHaveCount(0);
  await expect(rail(bob).getByRole("button", { name: "Direct messages" })).toHaveAttribute("aria-current", "page");
  await expect(heading(bob)).toHaveCount(0);
  await expect(members.getByRole("button", { name: /^Bob/ })).toHaveCount(0);

  // The audit log says who did it.
  const audit = await settingsTab(alice, "Audit log");
  await expect(audit.getByRole("listitem").filter({ hasText: "kicked a member" })).toBeVisible();
  await audit.getByRole("button", { name: "Close" }).last().click();
});

test("guilds at 360 px in Russian: the drawer, the member list, the settings", async ({ browser }) => {
  test.setTimeout(120_000);
  const carol = await signUp(browser, `carol-gd-${stamp}`, "Carol");
  await carol.evaluate(() => localStorage.setItem("kitsulan.lang", "ru"));
  await carol.reload();
  await rail(carol).or(carol.getByRole("navigation", { name: "Сообщества" })).waitFor();
  const ruRail = carol.getByRole("navigation", { name: "Сообщества" });
  await ruRail.getByRole("button", { name: "Добавить сообщество" }).click();
  const add = carol.getByRole("dialog", { name: "Добавить сообщество" });
  await add.getByRole("textbox", { name: "Название" }).fill("Клуб настолок");
  await add.getByRole("button", { name: "Создать сообщество" }).click();
  await expect(heading(carol)).toHaveText("#general");
  const box = carol.getByRole("textbox", { name: "Сообщение" });
  await box.fill("Всем привет! Во что играем в субботу?");
  await box.press("Enter");
  await expect(bubble(carol, "Во что играем в субботу?")).toBeVisible();

  const membersButton = carol.getByRole("button", { name: "Участники сообщества" });
  const members = carol.getByRole("complementary", { name: "Участники сообщества" });
  for (const scheme of ["light", "dark"] as const) {
    // Still pictures: no sliding in the middle of one.
    await carol.emulateMedia({ colorScheme: scheme, reducedMotion: "reduce" });
    await carol.setViewportSize({ width: 360, height: 740 });
    // The member list, open beside the chat on a wide screen, would cover it on a phone: it
    // closes when the screen narrows.
    await expect(members).toBeHidden();
    // The channel takes the width; the rail with the channels slides in from the header.
    await expect(carol.getByRole("navigation", { name: "Каналы" })).toBeHidden();
    await carol.screenshot({ path: `e2e/artifacts/guild-ru-chat-${scheme}-360.png` });
    await carol.getByRole("button", { name: "Сообщества и каналы" }).click();
    await expect(carol.getByRole("navigation", { name: "Каналы" })).toBeVisible();
    await carol.screenshot({ path: `e2e/artifacts/guild-ru-drawer-${scheme}-360.png` });
    await carol.getByRole("navigation", { name: "Каналы" }).getByRole("button", { name: /^#general/ }).click();
    await expect(carol.getByRole("navigation", { name: "Каналы" })).toBeHidden();
    // The member list slides in from the right, and closes.
    await membersButton.click();
    await expect(members.getByRole("button", { name: /владелец/ })).toBeVisible();
    await carol.screenshot({ path: `e2e/artifacts/guild-ru-members-${scheme}-360.png` });
    await members.getByRole("button", { name: "Закрыть" }).click();
    await expect(members).toBeHidden();
  }
  // The settings at 360 px: the roles' permission editor.
  await carol.getByRole("button", { name: "Сообщества и каналы" }).click();
  await carol.getByRole("button", { name: "Настройки сообщества" }).click();
  const settings = carol.getByRole("dialog", { name: "Клуб настолок: настройки" });
  await settings.getByRole("tab", { name: "Роли" }).click();
  await settings.getByRole("button", { name: "Изменить @everyone" }).click();
  await expect(settings.getByRole("checkbox", { name: "Отправлять сообщения" })).toBeChecked();
  await carol.screenshot({ path: `e2e/artifacts/guild-ru-roles-dark-360.png` });
  await carol.emulateMedia({ colorScheme: "light" });
  await carol.screenshot({ path: `e2e/artifacts/guild-ru-roles-light-360.png` });
});
