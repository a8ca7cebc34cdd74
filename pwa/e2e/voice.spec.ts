// voice.spec.ts — a guild's voice channel through the server's SFU, end-to-end encrypted, with three
// browsers (Chromium's fake microphone, a beep). Alice makes a guild, Bob and Carol join it by
// invite, and all three join its voice channel "Lobby": each page lists the other two (in the
// voice view and under the channel in the sidebar), and each page's SFrame worker opens
// (decrypts) frames from both others, under the key id their sender uses, while the decoded audio
// has a level. The speaking ring lights for someone. Bob mutes: the others read his level as 0
// while Carol's still comes. Alice deafens: her received audio is muted and her microphone off.
// Carol reloads: she is back in the room and heard again. Bob leaves: Alice's and Carol's keys
// rotate (new key ids), and the two still open each other's frames under the new keys. Alice
// goes to her direct messages, which takes her out of the room.
// Screenshots at 1280 and 360 px, light and dark, and a Russian pass at 360 px.
import type { Page } from "@playwright/test";
import { launchOptions } from "../playwright.config";
import { createAccount, expect, newDevice, shoot, signUp, stamp, test } from "./helpers";

test.use({
  launchOptions: {
    ...launchOptions,
    args: [
      ...launchOptions.args,
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      // The SFU listens on 127.0.0.1 in the tests.
      "--allow-loopback-in-peer-connection",
    ],
  },
});

const rail = (page: Page) => page.getByRole("navigation", { name: "Communities" });
const channels = (page: Page) => page.getByRole("navigation", { name: "Channels" });
const view = (page: Page) => page.getByRole("region", { name: "Lobby" });
const tiles = (page: Page) => view(page).getByRole("list", { name: "In the channel" }).getByRole("listitem");
const sidebarPeople = (page: Page) => channels(page).getByRole("list", { name: "In Lobby" }).getByRole("listitem");
const stats = (page: Page) => view(page).getByRole("table", { name: "Voice statistics" });

/** One person's row of the voice statistics: frames decrypted, level, key id. */
async function row(page: Page, person: string): Promise<{ frames: number; level: number; kid: string }> {
  const details = view(page).locator("details.voice-details");
  if (!(await details.evaluate((d: HTMLDetailsElement) => d.open))) await details.getByText("Connection details").click();
  const cells = stats(page).getByRole("row", { name: new RegExp(`^${person} `) }).getByRole("cell");
  const [frames, level, kid] = await cells.allTextContents();
  return { frames: Number(frames ?? "NaN"), level: Number(level ?? "NaN"), kid: kid ?? "" };
}

/** The highest level `person` reached on `page` over `ms` (the fake microphone beeps). */
async function peakLevel(page: Page, person: string, ms = 3000): Promise<number> {
  let peak = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    peak = Math.max(peak, (await row(page, person)).level);
    await page.waitForTimeout(200);
  }
  return peak;
}

/** `person`'s frames keep arriving and opening on `page`; returns the count later on. */
async function expectHeard(page: Page, person: string, minNew = 50): Promise<number> {
  await expect.poll(async () => (await row(page, person)).frames, { timeout: 30_000 }).toBeGreaterThan(0);
  const first = (await row(page, person)).frames;
  await expect.poll(async () => (await row(page, person)).frames, { timeout: 20_000 }).toBeGreaterThan(first + minNew);
  return (await row(page, person)).frames;
}

/** The page's warnings and errors, in the test's output (a voice failure says why there). */
function logConsole(page: Page, who: string) {
  page.on("console", (m) => {
    if (m.type() === "warning" || m.type() === "error") console.log(`[${who}] ${m.type()}: ${m.text()}`);
  });
}

async function openLobby(page: Page) {
  await channels(page).getByRole("button", { name: /Lobby, Voice channel/ }).click();
  await expect(view(page)).toBeVisible();
}

async function joinVoice(page: Page) {
  await openLobby(page);
  await view(page).getByRole("button", { name: "Join voice" }).click();
  await expect(view(page).getByRole("status")).toHaveText("Voice connected", { timeout: 30_000 });
}

/** The key id this page seals its own frames with now. */
async function ownKid(page: Page): Promise<string> {
  return (await row(page, "You")).kid;
}

test("voice channel: three people through the SFU, sealed frames, mute, deafen, reload, rotation on leave", async ({ browser }) => {
  test.setTimeout(360_000);
  const alice = await signUp(browser, `alice-v-${stamp}`, "Alice");
  logConsole(alice, "Alice");
  await rail(alice).getByRole("button", { name: "Add a community" }).click();
  const add = alice.getByRole("dialog", { name: "Add a community" });
  await add.getByRole("textbox", { name: "Name" }).fill("Voice night");
  await add.getByRole("button", { name: "Create community" }).click();
  await expect(add).toBeHidden();

  // The voice view before anyone is in: the encryption said plainly, nobody there, Join.
  await openLobby(alice);
  await expect(view(alice).getByText("End-to-end encrypted", { exact: true })).toBeVisible();
  await expect(view(alice)).toContainText("The server passes the sound on without being able to hear it");
  await expect(view(alice)).toContainText("Nobody is here yet.");

  await alice.getByRole("button", { name: "Community settings" }).click();
  const settings = alice.getByRole("dialog", { name: "Voice night: settings" });
  await settings.getByRole("tab", { name: "Invites" }).click();
  await settings.getByRole("button", { name: "Create invite link" }).click();
  const link = (await settings.getByLabel("Invite link", { exact: true }).textContent()) ?? "";
  await settings.getByRole("button", { name: "Close" }).last().click();
  await expect(settings).toBeHidden();

  const join = async (username: string, name: string) => {
    const page = await newDevice(browser);
    logConsole(page, name);
    await page.goto(link);
    await createAccount(page, username, name);
    await page.getByRole("dialog", { name: "Invitation" }).getByRole("button", { name: "Join" }).click();
    await expect(channels(page).getByRole("button", { name: /Lobby, Voice channel/ })).toBeVisible();
    return page;
  };
  const bob = await join(`bob-v-${stamp}`, "Bob");
  const carol = await join(`carol-v-${stamp}`, "Carol");

  await joinVoice(alice);
  await joinVoice(bob);
  await joinVoice(carol);

  // Each page shows all three, the other two by name, in the view and in the sidebar.
  const names = { alice: "Alice", bob: "Bob", carol: "Carol" } as const;
  const pages = { alice, bob, carol } as const;
  for (const [who, page] of Object.entries(pages)) {
    await expect(tiles(page)).toHaveCount(3);
    await expect(sidebarPeople(page)).toHaveCount(3);
    for (const [other, name] of Object.entries(names)) {
      const shown = other === who ? "You" : name;
      await expect(tiles(page).filter({ hasText: shown })).toHaveCount(1);
      await expect(sidebarPeople(page).filter({ hasText: shown })).toHaveCount(1);
    }
  }

  // Each page opens the frames of both others, under the key id the sender seals with, and the
  // decoded sound has a level.
  const kids = { alice: await ownKid(alice), bob: await ownKid(bob), carol: await ownKid(carol) };
  expect(new Set(Object.values(kids)).size).toBe(3);
  const heard: Record<string, number> = {};
  for (const [who, page] of Object.entries(pages)) {
    for (const [other, name] of Object.entries(names)) {
      if (other === who) continue;
      heard[`${who}<-${other}`] = await expectHeard(page, name);
      expect((await row(page, name)).kid).toBe(kids[other as keyof typeof kids]);
      expect(await peakLevel(page, name)).toBeGreaterThan(0);
    }
  }
  console.log(`frames opened (who<-from): ${JSON.stringify(heard)}; key ids: ${JSON.stringify(kids)}`);

  // The speaking ring lights for someone else, on the tile and in the sidebar.
  await expect.poll(() => tiles(alice).filter({ hasNotText: "You" }).and(alice.locator('[data-speaking="true"]')).count(), { timeout: 20_000 }).toBeGreaterThan(0);
  await expect.poll(() => sidebarPeople(alice).and(alice.locator('[data-speaking="true"]')).count(), { timeout: 20_000 }).toBeGreaterThan(0);
  await shoot(alice, "voice-in-room");

  // Bob mutes: his tile says so; the others read his level as 0 while Carol's still comes.
  await view(bob).getByRole("button", { name: "Mute microphone" }).click();
  await expect(view(bob).getByRole("button", { name: "Mute microphone" })).toHaveAttribute("aria-pressed", "true");
  await expect(tiles(bob).filter({ hasText: "You" })).toHaveAccessibleName(/microphone off/);
  await bob.screenshot({ path: "e2e/artifacts/voice-muted-light-1280.png" });
  for (const page of [alice, carol]) {
    await expect.poll(() => peakLevel(page, "Bob", 2500), { timeout: 20_000 }).toBe(0);
  }
  expect(await peakLevel(alice, "Carol")).toBeGreaterThan(0);
  // Still in the room: his (silent) frames keep coming.
  await expectHeard(alice, "Bob", 20);
  await view(bob).getByRole("button", { name: "Mute microphone" }).click();
  await expect.poll(() => peakLevel(alice, "Bob"), { timeout: 20_000 }).toBeGreaterThan(0);

  // Alice deafens: everything she receives is muted, and her microphone with it.
  await view(alice).getByRole("button", { name: "Deafen" }).click();
  await expect(view(alice).getByRole("button", { name: "Deafen" })).toHaveAttribute("aria-pressed", "true");
  await expect(view(alice).getByRole("button", { name: "Mute microphone" })).toHaveAttribute("aria-pressed", "true");
  await expect(tiles(alice).filter({ hasText: "You" })).toHaveAccessibleName(/microphone off, sound off/);
  const audios = alice.locator("div.voice-audio audio");
  await expect(audios).toHaveCount(6);
  expect(await audios.evaluateAll((els) => els.every((a) => (a as HTMLAudioElement).muted))).toBe(true);
  await expect.poll(() => peakLevel(bob, "Alice", 2500), { timeout: 20_000 }).toBe(0);
  await view(alice).getByRole("button", { name: "Deafen" }).click();
  expect(await audios.evaluateAll((els) => els.every((a) => !(a as HTMLAudioElement).muted))).toBe(true);
  await expect(view(alice).getByRole("button", { name: "Mute microphone" })).toHaveAttribute("aria-pressed", "false");
  await expect.poll(() => peakLevel(bob, "Alice"), { timeout: 20_000 }).toBeGreaterThan(0);

  // Carol reloads: the page joins the room again by itself, with a new key, and is heard again.
  const carolBefore = (await row(alice, "Carol")).frames;
  await carol.reload();
  // The page opens the voice channel it is back in, and the sidebar's strip says so.
  await expect(view(carol).getByRole("status")).toHaveText("Voice connected", { timeout: 30_000 });
  await expect(carol.getByRole("group", { name: "Voice connected" })).toContainText("Lobby");
  const carolKid = await ownKid(carol);
  expect(carolKid).not.toBe(kids.carol);
  await expect.poll(async () => (await row(alice, "Carol")).kid, { timeout: 30_000 }).toBe(carolKid);
  await expect.poll(async () => (await row(alice, "Carol")).frames, { timeout: 30_000 }).toBeGreaterThan(carolBefore + 50);
  await expectHeard(bob, "Carol");
  await expectHeard(carol, "Alice");
  await expectHeard(carol, "Bob");
  await expect(tiles(alice)).toHaveCount(3);

  // Bob leaves: Alice and Carol make new keys, and hear each other under them.
  const aliceKid = await ownKid(alice);
  const carolKid2 = await ownKid(carol);
  await view(bob).getByRole("button", { name: "Leave voice" }).click();
  await expect(view(bob).getByRole("button", { name: "Join voice" })).toBeVisible();
  for (const page of [alice, carol]) {
    await expect(tiles(page)).toHaveCount(2);
    await expect(sidebarPeople(page)).toHaveCount(2);
  }
  await expect.poll(() => ownKid(alice), { timeout: 20_000 }).not.toBe(aliceKid);
  await expect.poll(() => ownKid(carol), { timeout: 20_000 }).not.toBe(carolKid2);
  const rotated = { alice: await ownKid(alice), carol: await ownKid(carol) };
  await expect.poll(async () => (await row(carol, "Alice")).kid, { timeout: 20_000 }).toBe(rotated.alice);
  await expect.poll(async () => (await row(alice, "Carol")).kid, { timeout: 20_000 }).toBe(rotated.carol);
  await expectHeard(carol, "Alice");
  await expectHeard(alice, "Carol");
  expect(await peakLevel(carol, "Alice")).toBeGreaterThan(0);
  console.log(`key ids before Bob left: alice ${aliceKid}, carol ${carolKid2}; after: ${JSON.stringify(rotated)}`);
  await shoot(carol, "voice-after-leave");

  // Alice goes to her direct messages: she leaves the voice channel, and Carol sees her go.
  await rail(alice).getByRole("button", { name: "Direct messages" }).click();
  await expect(tiles(carol)).toHaveCount(1);
  await expect(sidebarPeople(carol)).toHaveCount(1);
  await expect(alice.getByRole("group", { name: "Voice connected" })).toHaveCount(0);

  // Russian at 360 px: back in the room after the reload, the view, then the drawer's strip.
  await carol.evaluate(() => localStorage.setItem("kitsulan.lang", "ru"));
  await carol.setViewportSize({ width: 360, height: 740 });
  await carol.reload();
  const lobbyRu = carol.getByRole("region", { name: "Lobby" });
  await expect(lobbyRu.getByRole("status")).toHaveText("Голос подключён", { timeout: 30_000 });
  await expect(lobbyRu).toContainText("Сквозное шифрование");
  await expect(lobbyRu.getByRole("list", { name: "В канале" }).getByRole("listitem")).toHaveCount(1);
  for (const scheme of ["light", "dark"] as const) {
    await carol.emulateMedia({ colorScheme: scheme });
    await carol.screenshot({ path: `e2e/artifacts/voice-ru-room-${scheme}-360.png` });
  }
  await lobbyRu.getByRole("button", { name: "Сообщества и каналы" }).click();
  await expect(carol.getByRole("group", { name: "Голос подключён" })).toBeVisible();
  await expect(carol.getByRole("navigation", { name: "Каналы" }).getByRole("list", { name: "В канале Lobby" }).getByRole("listitem")).toHaveCount(1);
  for (const scheme of ["light", "dark"] as const) {
    await carol.emulateMedia({ colorScheme: scheme });
    await carol.screenshot({ path: `e2e/artifacts/voice-ru-sidebar-${scheme}-360.png` });
  }
});
