// guild-e2ee.spec.ts — private end-to-end encrypted guild channels in the browser: the owner makes
// a guild and an encrypted channel; a second person joins by invite and does not see it; the
// owner adds them from the channel's member list, and both write and read each other's messages
// (Megolm, decrypted on each page; the channel never shows among the direct messages); the owner
// removes them (their open channel closes with a line saying so) and adds them again (the new
// key reaches them); then kicks them from the guild, and their page loses it live while the
// owner's member list drops them. Screenshots at 1280 and 360 px, light and dark, and a Russian
// pass at 360 px.
import type { Page } from "@playwright/test";
import { bubble, createAccount, expect, newDevice, send, shoot, signUp, stamp, test } from "./helpers";

const rail = (page: Page) => page.getByRole("navigation", { name: "Communities" });
const channels = (page: Page) => page.getByRole("navigation", { name: "Channels" });
const heading = (page: Page) => page.locator("section.conversation > header h2");
const secretRow = (page: Page) => channels(page).getByRole("button", { name: /^🔒 secret/ });

async function settings(page: Page, tab: string) {
  const dialog = page.getByRole("dialog", { name: "Book club: settings" });
  if (!(await dialog.isVisible())) await page.getByRole("button", { name: "Community settings" }).click();
  await dialog.getByRole("tab", { name: tab }).click();
  return dialog;
}

test("private encrypted channel: create, add by hand, chat both ways, remove, kick", async ({ browser }) => {
  test.setTimeout(240_000);
  const alice = await signUp(browser, `alice-ge-${stamp}`, "Alice");
  await rail(alice).getByRole("button", { name: "Add a community" }).click();
  const add = alice.getByRole("dialog", { name: "Add a community" });
  await add.getByRole("textbox", { name: "Name" }).fill("Book club");
  await add.getByRole("button", { name: "Create community" }).click();
  await expect(heading(alice)).toHaveText("#general");

  // The encrypted channel, from the settings: a text channel's option, which hides "Private"
  // (an encrypted channel is private anyway).
  const tab = await settings(alice, "Channels");
  const form = tab.getByRole("form", { name: "Create a channel" });
  await form.getByRole("textbox", { name: "Name" }).fill("secret");
  await form.getByRole("checkbox", { name: "End-to-end encrypted (private, for small groups up to 100)" }).check();
  await expect(form.getByRole("checkbox", { name: "Private", exact: true })).toHaveCount(0);
  await expect(form).toContainText("Only the people you add can read it; the server never can.");
  await shoot(alice, "guild-e2ee-create");
  // A voice channel cannot be encrypted: the option goes.
  await form.getByRole("combobox", { name: "Kind" }).selectOption({ label: "Voice channel" });
  await expect(form.getByRole("checkbox", { name: /End-to-end encrypted/ })).toHaveCount(0);
  await form.getByRole("combobox", { name: "Kind" }).selectOption({ label: "Text channel" });
  await form.getByRole("button", { name: "Create" }).click();
  await expect(tab.getByRole("button", { name: "Edit secret" })).toBeVisible();

  // An invite for Bob.
  const invites = await settings(alice, "Invites");
  await invites.getByRole("button", { name: "Create invite link" }).click();
  const link = (await invites.getByLabel("Invite link", { exact: true }).textContent()) ?? "";
  await invites.getByRole("button", { name: "Close" }).last().click();
  await expect(invites).toBeHidden();

  // Alice opens the channel: the chat with its lock, and its own member list (only her).
  await secretRow(alice).click();
  await expect(heading(alice)).toHaveText("#secret");
  await expect(alice.getByRole("button", { name: "End-to-end encrypted", exact: true })).toBeVisible();
  const aliceMembers = alice.getByRole("complementary", { name: "Members of the channel" });
  await expect(aliceMembers.getByRole("listitem")).toHaveCount(1);
  await expect(aliceMembers).toContainText("only these people can read this channel");

  const bob = await newDevice(browser);
  await bob.goto(link);
  await createAccount(bob, `bob-ge-${stamp}`, "Bob");
  const invitation = bob.getByRole("dialog", { name: "Invitation" });
  await invitation.getByRole("button", { name: "Join" }).click();
  await expect(heading(bob)).toHaveText("#general");
  // Not a member of it: he does not see it, whatever his roles.
  await expect(channels(bob).getByRole("button", { name: /^#general/ })).toBeVisible();
  await expect(secretRow(bob)).toHaveCount(0);

  // Alice adds him from the channel's member list: it appears in his list at once.
  await aliceMembers.getByRole("button", { name: "Add people" }).click();
  const picker = alice.getByRole("dialog", { name: "Add people to #secret" });
  await picker.getByRole("searchbox", { name: "Find a member" }).fill("bo");
  await picker.getByRole("checkbox", { name: "Bob" }).check();
  // One picture: a narrower screen closes the member list, and the dialog with it.
  await alice.screenshot({ path: "e2e/artifacts/guild-e2ee-add-light-1280.png" });
  await picker.getByRole("button", { name: "Add (1)" }).click();
  await expect(picker).toBeHidden();
  await expect(aliceMembers.getByRole("listitem")).toHaveCount(2);
  await expect(secretRow(bob)).toBeVisible();

  // Both ways, decrypted on each page.
  await send(alice, "The meeting is at nine, bring the map");
  await secretRow(bob).click();
  await expect(heading(bob)).toHaveText("#secret");
  await expect(bubble(bob, "The meeting is at nine, bring the map")).toBeVisible();
  await expect(bubble(bob, "The meeting is at nine, bring the map").locator(".sender")).toHaveText("Alice");
  await send(bob, "I will bring the map and the tea");
  await expect(bubble(alice, "I will bring the map and the tea")).toBeVisible();
  await expect(bob.getByRole("complementary", { name: "Members of the channel" }).getByRole("listitem")).toHaveCount(2);
  await shoot(alice, "guild-e2ee-owner");
  await shoot(bob, "guild-e2ee-member");

  // The channel is no direct message: Bob's conversation list does not show it.
  await rail(bob).getByRole("button", { name: "Direct messages" }).click();
  await expect(bob.getByRole("complementary", { name: "Conversations" })).toBeVisible();
  await expect(bob.getByRole("complementary", { name: "Conversations" })).not.toContainText("secret");
  await rail(bob).getByRole("button", { name: /^Book club/ }).click();
  await secretRow(bob).click();
  await expect(heading(bob)).toHaveText("#secret");

  // Alice removes Bob (after a confirmation): his open channel closes and says so.
  await aliceMembers.getByRole("button", { name: "Remove Bob from the channel" }).click();
  await alice.getByRole("dialog", { name: "Remove Bob from #secret?" }).getByRole("button", { name: "Remove" }).click();
  await expect(aliceMembers.getByRole("listitem")).toHaveCount(1);
  await expect(secretRow(bob)).toHaveCount(0);
  await expect(bob.getByRole("status").filter({ hasText: "#secret is no longer available to you." })).toBeVisible();
  await shoot(bob, "guild-e2ee-removed");

  // Added again, he reads what is sent from then on (the key was shared with him anew).
  await aliceMembers.getByRole("button", { name: "Add people" }).click();
  await picker.getByRole("checkbox", { name: "Bob" }).check();
  await picker.getByRole("button", { name: "Add (1)" }).click();
  await expect(secretRow(bob)).toBeVisible();
  await send(alice, "Welcome back, Bob");
  await secretRow(bob).click();
  await expect(bubble(bob, "Welcome back, Bob")).toBeVisible();
  await send(bob, "Glad to be back");
  await expect(bubble(alice, "Glad to be back")).toBeVisible();

  // The owner kicks Bob from the guild (from #general's member list): his page loses the guild
  // and the channel with it at once, and the channel's member list drops him.
  await channels(alice).getByRole("button", { name: /^#general/ }).click();
  const guildMembers = alice.getByRole("complementary", { name: "Members of the community" });
  await guildMembers.getByRole("button", { name: /^Bob/ }).click();
  await alice.getByRole("dialog", { name: "Bob" }).getByRole("button", { name: "Kick" }).click();
  await alice.getByRole("dialog", { name: "Kick Bob?" }).getByRole("button", { name: "Kick" }).click();
  await expect(rail(bob).getByRole("button", { name: /^Book club/ })).toHaveCount(0);
  await expect(heading(bob)).toHaveCount(0);
  await secretRow(alice).click();
  await expect(aliceMembers.getByRole("listitem")).toHaveCount(1);
  await send(alice, "Just me now");
  await expect(bubble(alice, "Just me now")).toBeVisible();
});

test("private encrypted channel at 360 px in Russian", async ({ browser }) => {
  test.setTimeout(120_000);
  const carol = await signUp(browser, `carol-ge-${stamp}`, "Carol");
  await carol.evaluate(() => localStorage.setItem("kitsulan.lang", "ru"));
  await carol.reload();
  const ruRail = carol.getByRole("navigation", { name: "Сообщества" });
  await ruRail.getByRole("button", { name: "Добавить сообщество" }).click();
  const add = carol.getByRole("dialog", { name: "Добавить сообщество" });
  await add.getByRole("textbox", { name: "Название" }).fill("Клуб");
  await add.getByRole("button", { name: "Создать сообщество" }).click();
  await expect(heading(carol)).toHaveText("#general");
  await carol.getByRole("button", { name: "Настройки сообщества" }).click();
  const dialog = carol.getByRole("dialog", { name: "Клуб: настройки" });
  await dialog.getByRole("tab", { name: "Каналы" }).click();
  const form = dialog.getByRole("form", { name: "Создать канал" });
  await form.getByRole("textbox", { name: "Название" }).fill("тайна");
  await form.getByRole("checkbox", { name: /^Сквозное шифрование/ }).check();
  await carol.setViewportSize({ width: 360, height: 740 });
  await carol.screenshot({ path: "e2e/artifacts/guild-e2ee-ru-create-360.png" });
  await form.getByRole("button", { name: "Создать" }).click();
  await expect(dialog.getByRole("button", { name: "Изменить тайна" })).toBeVisible();
  await dialog.getByRole("button", { name: "Закрыть" }).last().click();

  await carol.getByRole("button", { name: "Сообщества и каналы" }).click();
  await carol.getByRole("navigation", { name: "Каналы" }).getByRole("button", { name: /^🔒 тайна/ }).click();
  await expect(heading(carol)).toHaveText("#тайна");
  const box = carol.getByRole("textbox", { name: "Сообщение" });
  await box.fill("Здесь читают только свои");
  await box.press("Enter");
  await expect(bubble(carol, "Здесь читают только свои")).toBeVisible();
  for (const scheme of ["light", "dark"] as const) {
    await carol.emulateMedia({ colorScheme: scheme, reducedMotion: "reduce" });
    await carol.screenshot({ path: `e2e/artifacts/guild-e2ee-ru-chat-${scheme}-360.png` });
    await carol.getByRole("button", { name: "Участники канала" }).click();
    const members = carol.getByRole("complementary", { name: "Участники канала" });
    await expect(members.getByRole("button", { name: "Добавить людей" })).toBeVisible();
    await carol.screenshot({ path: `e2e/artifacts/guild-e2ee-ru-members-${scheme}-360.png` });
    // Nobody else is in the community yet: the picker says so.
    await members.getByRole("button", { name: "Добавить людей" }).click();
    const picker = carol.getByRole("dialog", { name: "Добавить людей в #тайна" });
    await expect(picker).toContainText("Все участники сообщества, которых можно добавить, уже здесь.");
    await carol.screenshot({ path: `e2e/artifacts/guild-e2ee-ru-add-${scheme}-360.png` });
    await picker.getByRole("button", { name: "Отмена" }).click();
    await members.getByRole("button", { name: "Закрыть" }).click();
    await expect(members).toBeHidden();
  }
});
