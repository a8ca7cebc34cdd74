// guide.spec.ts — the user guide's flows (docs/user-guide.md, docs/user-guide.ru.md), walked on a
// phone-sized screen (412 × 860, light theme) in English and in Russian, each step checked by what
// it shows; the screenshots it takes are the guide's pictures. A plain run saves them to
// e2e/artifacts/guide/<lang>/; with KITSULAN_GUIDE_IMAGES=1 it replaces the committed ones in
// docs/img/guide/<lang>/ (do that when the UI changes, look at them, commit them).
// Alice signs up and saves her recovery key; Bob signs up; Alice starts a direct conversation,
// Bob accepts her request; they verify each other with the safety emoji; Alice sends a file that
// deletes itself after an hour; she makes a group; they have a video call (Chromium's fake camera,
// through the server's relay); she links a second device by PIN; a new browser signs in with her
// password only, shows a message it cannot decrypt yet, and decrypts it after restoring from the
// recovery key. A last test opens the app over plain HTTP by a LAN name: the insecure-connection
// warning. Strings come from the app's own catalog (src/i18n/messages.ts), so one walk serves both
// languages.
import { mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "@playwright/test";
import { launchOptions } from "../playwright.config";
import { en, ru, type MessageKey } from "../src/i18n/messages";
import { expect, guardHosts, password, stamp, test } from "./helpers";

test.use({
  actionTimeout: 30_000,
  launchOptions: {
    ...launchOptions,
    args: [...launchOptions.args, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
  },
});

const VIEWPORT = { width: 412, height: 860 };
const OUT = process.env.KITSULAN_GUIDE_IMAGES ? "../docs/img/guide" : "e2e/artifacts/guide";
const LANGS = [
  { lang: "en", locale: "en-US", catalog: en as Record<MessageKey, string> },
  { lang: "ru", locale: "ru-RU", catalog: ru },
] as const;

for (const { lang, locale, catalog } of LANGS) {
  /** A string of the UI in this language, with its `{placeholders}` filled. */
  const T = (key: MessageKey, vars: Record<string, string | number> = {}) =>
    Object.entries(vars).reduce((s, [k, v]) => s.replace(`{${k}}`, String(v)), catalog[key]);

  /** Saves the guide's picture `name` of `page`. */
  const shot = async (page: Page, name: string) => {
    mkdirSync(`${OUT}/${lang}`, { recursive: true });
    await page.screenshot({ path: `${OUT}/${lang}/${name}.png` });
  };

  /** A fresh browser context (another device) on a phone-sized screen in this language. */
  const device = async (browser: Browser): Promise<Page> => {
    const context = await browser.newContext({ viewport: VIEWPORT, locale, colorScheme: "light" });
    guardHosts(context);
    const page = await context.newPage();
    page.on("dialog", (d) => {
      throw new Error(`unexpected dialog: ${d.message()}`);
    });
    await page.goto("/");
    // The app picked the language from the browser's.
    await expect(page.locator("html")).toHaveAttribute("lang", lang);
    return page;
  };

  const connected = (page: Page) => expect(page.getByRole("complementary").getByRole("status")).toHaveText(T("online"));

  /** Back to the list of conversations (a phone shows one pane at a time). */
  const home = async (page: Page) => {
    const back = page.getByRole("button", { name: T("backToList") });
    if (await back.isVisible()) await back.click();
    await expect(page.getByRole("button", { name: T("newConversation") })).toBeVisible();
  };

  const bubble = (page: Page, text: string) => page.getByRole("log").locator("article").filter({ hasText: text });

  const send = async (page: Page, text: string) => {
    const box = page.getByRole("textbox", { name: T("message") });
    await box.fill(text);
    await box.press("Enter");
    await expect(bubble(page, text)).toBeVisible();
  };

  /** Signs up on `page` up to the recovery-key step (which is left open). */
  const createAccount = async (page: Page, username: string, displayName: string) => {
    await page.getByRole("tab", { name: T("signUp") }).click();
    await page.getByLabel(T("username")).fill(username);
    await page.getByLabel(T("password")).fill(password);
    await page.getByLabel(T("displayName")).fill(displayName);
  };

  /** Opens the conversation called `title` from the list. */
  const open = async (page: Page, title: RegExp) => {
    await home(page);
    await page.getByRole("complementary").getByRole("button", { name: title }).click();
    await expect(page.getByRole("textbox", { name: T("message") })).toBeVisible();
  };

  /** The 7 safety emoji a page shows, as text. */
  const emoji = async (page: Page) => {
    const items = page.getByRole("list", { name: T("sasEmoji") }).getByRole("listitem");
    await expect(items).toHaveCount(7);
    return (await items.allInnerTexts()).map((t) => t.replace(/\s+/g, " ").trim());
  };

  const settings = async (page: Page) => {
    await home(page);
    await page.getByRole("button", { name: T("settings") }).click();
    const dialog = page.getByRole("dialog", { name: T("settings") });
    await expect(dialog).toBeVisible();
    return dialog;
  };

  test(`the user guide in ${lang}: sign up, recovery key, chats, verify, files, group, call, link, restore`, async ({
    browser,
  }) => {
    test.setTimeout(600_000);
    const aliceName = `alice-guide-${lang}-${stamp}`;
    const bobName = `bob-guide-${lang}-${stamp}`;
    const alice = await device(browser);

    // Sign up, and the recovery key shown once.
    await createAccount(alice, aliceName, lang === "ru" ? "Алиса" : "Alice");
    await shot(alice, "sign-up");
    await alice.getByRole("button", { name: T("signUp") }).click();
    const keyForm = alice.getByRole("form", { name: T("recoveryTitle") });
    await expect(keyForm).toBeVisible();
    const key = (await keyForm.getByLabel(T("recoveryKeyLabel"), { exact: true }).getAttribute("data-recovery-key")) ?? "";
    expect(key.replace(/ /g, "")).toMatch(/^[0-9A-HJKMNP-TV-Z]{55}$/);
    await shot(alice, "recovery-key");
    await keyForm.getByRole("button", { name: T("recoverySaved") }).click();
    await expect(alice.getByRole("button", { name: T("newConversation") })).toBeVisible({ timeout: 30_000 });
    await connected(alice);

    const bobShown = lang === "ru" ? "Борис" : "Bob";
    const aliceShown = lang === "ru" ? "Алиса" : "Alice";
    const bob = await device(browser);
    await createAccount(bob, bobName, bobShown);
    await bob.getByRole("button", { name: T("signUp") }).click();
    await bob.getByRole("form", { name: T("recoveryTitle") }).getByRole("button", { name: T("recoveryLater") }).click();
    await connected(bob);

    // A direct conversation: by username; Bob gets it as a request and accepts.
    await alice.getByRole("button", { name: T("newConversation") }).click();
    const start = alice.getByRole("dialog", { name: T("newConversation") });
    await start.getByRole("textbox", { name: T("theirUsername") }).fill(bobName);
    await shot(alice, "new-conversation");
    await start.getByRole("button", { name: T("start") }).click();
    await expect(start).toBeHidden();
    const hello = lang === "ru" ? "Привет! Это я, Алиса." : "Hi! It's me, Alice.";
    await send(alice, hello);
    await bob.getByRole("button", { name: T("requestsEntry", { n: 1 }) }).click();
    await bob.getByRole("list", { name: T("requests") }).getByRole("button", { name: new RegExp(aliceShown) }).click();
    const accept = bob.getByRole("button", { name: T("acceptRequest", { name: aliceShown }) });
    await expect(accept).toBeVisible();
    await expect(bubble(bob, hello)).toBeVisible();
    await shot(bob, "request");
    await accept.click();
    const answer = lang === "ru" ? "Привет, Алиса!" : "Hi Alice!";
    await send(bob, answer);
    await expect(bubble(alice, answer)).toBeVisible();
    // The lock: the conversation is end-to-end encrypted.
    await expect(alice.getByRole("main").getByText(T("e2ee"))).toBeVisible();
    await shot(alice, "conversation");

    // Verify: the same seven emoji on both phones, each confirms.
    await alice.getByRole("button", { name: T("verifyPerson", { name: bobShown }) }).click();
    const bobVerify = bob.getByRole("dialog", { name: T("verifyTitle", { name: aliceShown }) });
    await expect(bobVerify.getByText(T("verifyIncoming", { name: aliceShown }))).toBeVisible();
    await bobVerify.getByRole("button", { name: T("verifyAccept") }).click();
    const seen = await emoji(alice);
    expect(await emoji(bob)).toEqual(seen);
    await shot(alice, "verify");
    const aliceVerify = alice.getByRole("dialog", { name: T("verifyTitle", { name: bobShown }) });
    await aliceVerify.getByRole("button", { name: T("emojiMatch") }).click();
    await bobVerify.getByRole("button", { name: T("emojiMatch") }).click();
    await expect(aliceVerify.getByText(T("verifyDone", { name: bobShown }))).toBeVisible();
    await aliceVerify.getByRole("button", { name: T("close") }).click();
    await bobVerify.getByRole("button", { name: T("close") }).click();
    await expect(alice.getByRole("main").getByText(`✓ ${T("verifiedMark")}`)).toBeVisible();
    await shot(alice, "verified");

    // A file that deletes itself after an hour.
    const notes = lang === "ru" ? "план.txt" : "plan.txt";
    const chooser = alice.waitForEvent("filechooser");
    await alice.getByRole("button", { name: T("attach") }).click();
    await (await chooser).setFiles({ name: notes, mimeType: "text/plain", buffer: Buffer.from(`${hello}\n`) });
    const attach = alice.getByRole("dialog", { name: T("attachTitle") });
    await expect(attach.getByText(notes)).toBeVisible();
    await attach.getByRole("combobox", { name: T("attachTtl") }).selectOption("3600");
    await shot(alice, "file-send");
    await attach.getByRole("button", { name: T("send") }).click();
    await expect(attach).toBeHidden();
    const card = bob.getByRole("log").locator(".file-card").filter({ hasText: notes });
    await expect(card.getByRole("button", { name: T("downloadFile", { name: notes }) })).toBeVisible();
    await shot(bob, "file-received");

    // A group with Bob.
    await home(alice);
    await alice.getByRole("button", { name: T("newConversation") }).click();
    await start.getByRole("radio", { name: T("groupConversation") }).check();
    const groupName = lang === "ru" ? "Поход" : "Trip";
    await start.getByRole("textbox", { name: T("groupTitle") }).fill(groupName);
    await start.getByRole("textbox", { name: T("groupMembers") }).fill(bobName);
    await shot(alice, "new-group");
    await start.getByRole("button", { name: T("createGroup") }).click();
    await expect(alice.getByRole("heading", { name: groupName })).toBeVisible();
    const where = lang === "ru" ? "Куда идём в субботу?" : "Where do we go on Saturday?";
    await send(alice, where);
    // Bob and Alice are contacts now: the group is in his list at once, not a request.
    await open(bob, new RegExp(groupName));
    await expect(bubble(bob, where)).toBeVisible();
    await expect(bob.getByRole("button", { name: T("acceptRequest", { name: groupName }) })).toHaveCount(0);
    await send(bob, lang === "ru" ? "На озеро!" : "To the lake!");
    await expect(bubble(alice, lang === "ru" ? "На озеро!" : "To the lake!")).toBeVisible();

    // A video call, through the server's relay.
    for (const page of [alice, bob]) {
      const s = await settings(page);
      await s.getByRole("checkbox", { name: T("alwaysRelay") }).check();
      await s.getByRole("button", { name: T("closeSettings") }).click();
    }
    await open(alice, new RegExp(bobShown));
    await alice.getByRole("button", { name: T("videoCall") }).click();
    const incoming = bob.getByRole("alertdialog", { name: T("incomingVideoCall") });
    await expect(incoming).toContainText(aliceShown);
    await shot(bob, "call-incoming");
    await incoming.getByRole("button", { name: T("answerVideo") }).click();
    const call = alice.getByRole("dialog", { name: T("callWith", { name: bobShown }) });
    await expect(call.getByRole("timer", { name: T("callDuration") })).toBeVisible({ timeout: 30_000 });
    const remote = call.getByRole("list", { name: T("callParticipants") }).getByRole("listitem", { name: bobShown }).locator("video");
    await expect.poll(() => remote.evaluate((v: HTMLVideoElement) => !v.paused && v.videoWidth > 0), { timeout: 30_000 }).toBe(true);
    await shot(alice, "call");
    await call.getByRole("button", { name: T("hangUp") }).click();
    await expect(call).toBeHidden();

    // Link a second device by PIN, with the emoji compared on both screens.
    const laptop = await device(browser);
    await laptop.getByRole("button", { name: T("linkThisDevice") }).click();
    await expect(laptop.getByRole("img", { name: T("pairingQr") })).toBeVisible();
    const pin = (await laptop.getByLabel(T("pairingPin")).getAttribute("data-pin")) ?? "";
    expect(pin.replace(/\D/g, "")).toMatch(/^\d{8}$/);
    await shot(laptop, "link-new-device");
    const s = await settings(alice);
    await s.getByRole("button", { name: T("devices") }).click();
    const devices = alice.getByRole("dialog", { name: T("devices") });
    await devices.getByRole("button", { name: T("linkNewDevice") }).click();
    await devices.getByRole("textbox", { name: T("pairingPin") }).fill(pin);
    await devices.getByRole("button", { name: T("continue") }).click();
    expect(await emoji(laptop)).toEqual(await emoji(alice));
    await devices.getByRole("textbox", { name: T("newDeviceName") }).fill(lang === "ru" ? "Ноутбук" : "Laptop");
    await shot(alice, "link-confirm");
    await devices.getByRole("button", { name: T("linkConfirm") }).click();
    await laptop.getByRole("button", { name: T("emojiMatch") }).click();
    await expect(laptop.getByRole("button", { name: T("newConversation") })).toBeVisible();
    await expect(devices.getByRole("status").filter({ hasText: T("linked") })).toBeVisible();
    await devices.getByRole("button", { name: T("close") }).last().click();
    await expect(alice.getByRole("dialog")).toBeHidden();

    // The backup holds Alice's keys before a new browser needs them.
    const backupOn = new RegExp(`^${T("backupOn", { n: "\u0000" }).replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace("\u0000", "[1-9]\\d*")}$`);
    await expect(async () => {
      const s2 = await settings(alice);
      try {
        await expect(s2.getByText(backupOn)).toBeVisible({
          timeout: 3000,
        });
      } finally {
        await alice.keyboard.press("Escape");
        await expect(s2).toBeHidden();
      }
    }).toPass({ timeout: 30_000 });

    // A new browser with the password only: the history waits for the key ("unable to decrypt"),
    // and the recovery key opens it in place.
    const fresh = await device(browser);
    await fresh.getByRole("tab", { name: T("signIn") }).click();
    await fresh.getByLabel(T("username")).fill(aliceName);
    await fresh.getByLabel(T("password")).fill(password);
    await fresh.getByRole("button", { name: T("signIn") }).click();
    await expect(fresh.getByRole("heading", { name: T("restoreTitle") })).toBeVisible();
    await shot(fresh, "restore");
    await fresh.getByRole("button", { name: T("restoreSkip") }).click();
    await connected(fresh);
    await open(fresh, new RegExp(bobShown));
    const waiting = fresh.getByRole("log").locator("article").filter({ hasText: T("waitingForKey") });
    await expect(waiting.first()).toBeVisible();
    await expect(waiting.first().getByRole("button", { name: T("utdRestoreButton") })).toBeVisible();
    await shot(fresh, "unable-to-decrypt");
    await waiting.first().getByRole("button", { name: T("utdRestoreButton") }).click();
    const restore = fresh.getByRole("dialog", { name: T("settings") }).getByRole("form", { name: T("restoreWith") });
    await restore.getByLabel(T("restoreInput")).fill(key);
    await restore.getByRole("button", { name: T("restoreButton") }).click();
    await expect(fresh.getByRole("dialog", { name: T("settings") }).getByText(backupOn)).toBeVisible({
      timeout: 30_000,
    });
    await fresh.keyboard.press("Escape");
    await open(fresh, new RegExp(bobShown));
    await expect(bubble(fresh, hello).getByText(hello, { exact: true })).toBeVisible({ timeout: 30_000 });
    await expect(bubble(fresh, answer).getByText(answer, { exact: true })).toBeVisible({ timeout: 30_000 });
    await expect(fresh.getByRole("log").locator("article").filter({ hasText: T("waitingForKey") })).toHaveCount(0);
  });

  test(`the user guide in ${lang}: the warning over plain HTTP`, async () => {
    // Chromium resolves kitsulan.lan to the test server: plain HTTP by a LAN name is not a
    // secure context (as http://192.168.1.20:8080 is not).
    const port = new URL(process.env.KITSULAN_E2E_URL ?? "http://127.0.0.1:8080").port;
    const lanBrowser = await chromium.launch({
      ...launchOptions,
      args: [...launchOptions.args, "--host-resolver-rules=MAP kitsulan.lan 127.0.0.1"],
    });
    try {
      const context = await lanBrowser.newContext({ viewport: VIEWPORT, locale, colorScheme: "light" });
      const page = await context.newPage();
      await page.goto(`http://kitsulan.lan:${port}/`);
      const banner = page.getByRole("region", { name: T("insecureLabel") });
      await expect(banner).toBeVisible();
      await expect(page.getByRole("tab", { name: T("signIn") })).toBeVisible();
      expect(await page.evaluate(() => window.isSecureContext)).toBe(false);
      await shot(page, "insecure");
    } finally {
      await lanBrowser.close();
    }
  });
}
