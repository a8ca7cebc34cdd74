// party.spec.ts — the party screen and contacts by QR code, in real browsers against the real
// server.
// - `/party`: the server's name and its address as a QR code that decodes (with jsQR, the app's
//   own fallback decoder, on the pixels of a screenshot) to the page's origin; who is online,
//   live: a contact appears when their device connects and goes when it leaves, and a stranger
//   who shares no conversation is never listed (presence reaches contacts only).
// - Contacts by QR: Alice shows "My QR code"; a screenshot of it becomes the fake camera of a
//   second Chromium (a .y4m made with ffmpeg); Bob scans it there, the direct conversation with
//   Alice opens and the emoji check is offered; they verify with it and exchange messages.
// - A contact link opened directly does the same; a code of another server, one with another
//   key, an unknown account or one's own code is refused with a message and changes nothing.
// - Over plain HTTP by a LAN name (not a secure context): the party QR code names that address,
//   the scanner says the camera needs HTTPS, and a pasted link works.
import { chromium, type Browser, type Page } from "@playwright/test";
import { launchOptions } from "../playwright.config";
import {
  acceptRequest,
  bubble,
  cameraBrowser,
  decodePng,
  expect,
  newDevice,
  openDirect,
  password,
  qrPng,
  send,
  shoot,
  signUp,
  stamp,
  test,
} from "./helpers";

const online = (page: Page) => page.getByRole("list", { name: "People online" });

test("the party screen: the server, its address as a QR code, and which contacts are online", async ({ browser, baseURL }) => {
  test.slow(); // four devices
  const origin = new URL(baseURL ?? "").origin;

  // Nobody signed in: the name and the address; no list, an offer to sign in.
  const screen = await newDevice(browser);
  await screen.goto("/party");
  await expect(screen.getByRole("heading", { level: 1, name: "KitsuLAN" })).toBeVisible();
  await expect(screen.getByTestId("party-address")).toHaveText(new URL(origin).host);
  const qr = screen.getByRole("img", { name: `QR code of ${origin}` });
  expect(decodePng(await qrPng(qr))).toBe(origin);
  await expect(screen.getByText("Sign in on this screen to show which of your contacts are online.")).toBeVisible();
  await expect(online(screen)).toHaveCount(0);
  // No local CA on this server (plain HTTP): no "Trust this server" block.
  await expect(screen.getByRole("heading", { name: "Trust this server" })).toHaveCount(0);
  await shoot(screen, "party-signed-out");
  // The QR code stays readable on a phone-sized screen.
  await screen.setViewportSize({ width: 360, height: 740 });
  expect(decodePng(await qrPng(qr))).toBe(origin);
  expect(await screen.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  await screen.setViewportSize({ width: 1280, height: 800 });

  // Carol and Dave share a conversation (both accepted); Eve shares nothing with either.
  const carol = await signUp(browser, `carol-party-${stamp}`, "Carol");
  const dave = await signUp(browser, `dave-party-${stamp}`, "Dave");
  const eve = await signUp(browser, `eve-party-${stamp}`, "Eve");
  await openDirect(carol, `dave-party-${stamp}`);
  await send(carol, "see you at the party");
  await acceptRequest(dave, /Carol/);
  await expect(bubble(dave, "see you at the party")).toBeVisible();
  await send(dave, "on my way");
  await expect(bubble(carol, "on my way")).toBeVisible();

  // Dave leaves; Carol opens the party screen: nobody of hers is online (Eve is, but is no contact).
  await dave.goto("about:blank");
  await carol.goto("/party");
  await expect(carol.getByRole("heading", { name: "Online now: 0" })).toBeVisible();
  await expect(carol.getByText("None of your contacts is online right now.")).toBeVisible();
  await expect(carol.getByRole("img", { name: `QR code of ${origin}` })).toBeVisible();

  // Dave's device connects again: he appears, live; Eve never does.
  await dave.goto("/");
  await expect(online(carol).locator(".party-name")).toHaveText(["Dave"]);
  await expect(carol.getByRole("heading", { name: "Online now: 1" })).toBeVisible();
  await shoot(carol, "party-online");
  await expect(carol.getByText("Eve")).toHaveCount(0);

  // Eve's own party screen lists nobody, though Carol and Dave are both online.
  await eve.goto("/party");
  await expect(eve.getByRole("heading", { name: "Online now: 0" })).toBeVisible();
  await expect(eve.getByText("Carol")).toHaveCount(0);
  await expect(eve.getByText("Dave")).toHaveCount(0);

  // Dave leaves again: he goes from Carol's screen.
  await dave.close();
  await expect(carol.getByText("None of your contacts is online right now.")).toBeVisible();
  await expect(online(carol)).toHaveCount(0);

  // Signed in, the screen is reached from Settings, and leads back to the chats.
  await carol.getByRole("link", { name: "Back to the chats" }).click();
  await expect(carol.getByRole("button", { name: "New conversation" })).toBeVisible();
  await carol.getByRole("button", { name: "Settings" }).click();
  await carol.getByRole("link", { name: "Open the party screen" }).click();
  await expect(carol).toHaveURL(`${origin}/party`);
  await expect(carol.getByRole("heading", { name: /^Online now/ })).toBeVisible();
});

test("the party screen in Russian", async ({ browser }) => {
  const context = await browser.newContext({ locale: "ru-RU", viewport: { width: 360, height: 740 } });
  await context.addInitScript(() => Object.defineProperty(navigator, "languages", { get: () => ["ru-RU", "ru"] }));
  const page = await context.newPage();
  await page.goto("/party");
  await expect(page.getByText("Отсканируйте код камерой телефона, чтобы подключиться")).toBeVisible();
  await expect(page.getByRole("button", { name: "Войти" })).toBeVisible();
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  await page.screenshot({ path: "e2e/artifacts/party-ru-360.png", fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: "e2e/artifacts/party-ru-1280.png" });
  await context.close();
});

/** Alice's contact link and a picture of her QR code, from New conversation → My QR code. */
async function myCode(page: Page): Promise<{ link: string; png: Buffer }> {
  await page.getByRole("button", { name: "New conversation" }).click();
  await page.getByRole("dialog", { name: "New conversation" }).getByRole("button", { name: "My QR code" }).click();
  const dialog = page.getByRole("dialog", { name: "My QR code" });
  const link = (await dialog.getByTestId("my-contact-link").textContent()) ?? "";
  const png = await qrPng(dialog.getByRole("img", { name: /^QR code to start a conversation with / }));
  return { link, png };
}

test("contacts by QR: Bob scans Alice's code with the camera, the conversation opens, they verify and talk", async ({
  browser,
  baseURL,
}) => {
  test.slow(); // two browsers
  const origin = new URL(baseURL ?? "").origin;
  const alice = await signUp(browser, `alice-qr-${stamp}`, "Alice");
  const { link, png } = await myCode(alice);
  expect(link).toMatch(new RegExp(`^${origin.replace(/[.]/g, "\\.")}/#/add/[0-9a-f-]{36}/[A-Za-z0-9_-]{43}$`));
  // The picture on screen is the link.
  expect(decodePng(png)).toBe(link);
  await shoot(alice, "contact-my-qr");
  await alice.getByRole("dialog", { name: "My QR code" }).getByRole("button", { name: "Close" }).click();

  // Bob's Chromium has Alice's code in front of its (fake) camera.
  let camera: Browser | null = null;
  try {
    camera = await cameraBrowser(png);
    const bob = await signUp(camera, `bob-qr-${stamp}`, "Bob");
    await bob.getByRole("button", { name: "New conversation" }).click();
    await bob.getByRole("dialog", { name: "New conversation" }).getByRole("button", { name: "Scan a QR code" }).click();
    const scan = bob.getByRole("dialog", { name: "Add someone by QR code" });
    await expect(scan.getByLabel("Camera")).toBeVisible();

    // Read: the conversation with Alice is open, and the emoji check is offered.
    const offer = bob.getByRole("dialog", { name: "Conversation with Alice" });
    await expect(offer.getByText("The key in the code matches the key this server gives for Alice.")).toBeVisible();
    await expect(scan).toBeHidden();
    await expect(bob.getByRole("main").getByRole("heading", { name: "Alice" })).toBeVisible();
    await shoot(bob, "contact-scanned");

    // Bob takes the offer; Alice accepts; both see the same emoji and confirm.
    await offer.getByRole("button", { name: "Compare emoji" }).click();
    const aliceVerify = alice.getByRole("dialog", { name: "Verify Bob" });
    const bobVerify = bob.getByRole("dialog", { name: "Verify Alice" });
    await expect(aliceVerify.getByText("Bob wants to verify you.")).toBeVisible();
    await aliceVerify.getByRole("button", { name: "Accept" }).click();
    const emoji = (page: Page) => page.getByRole("dialog").getByRole("list", { name: "Emoji to compare" }).getByRole("listitem");
    await expect(emoji(alice)).toHaveCount(7);
    expect(await emoji(alice).allInnerTexts()).toEqual(await emoji(bob).allInnerTexts());
    await bobVerify.getByRole("button", { name: "The emoji match" }).click();
    await aliceVerify.getByRole("button", { name: "The emoji match" }).click();
    await expect(bobVerify.getByText("Alice is verified.")).toBeVisible();
    await bobVerify.getByRole("button", { name: "Close" }).click();
    await aliceVerify.getByRole("button", { name: "Close" }).click();

    // They talk.
    await send(bob, "scanned you!");
    await acceptRequest(alice, /Bob/);
    await expect(bubble(alice, "scanned you!")).toBeVisible();
    await send(alice, "hello Bob");
    await expect(bubble(bob, "hello Bob")).toBeVisible();
    for (const page of [alice, bob]) await expect(page.getByRole("main").getByText("✓ Verified")).toBeVisible();
  } finally {
    await camera?.close();
  }
});

test("contact links: opened directly, pasted, and refused when they are not right", async ({ browser, baseURL }) => {
  test.slow();
  const origin = new URL(baseURL ?? "").origin;
  const alice = await signUp(browser, `alice-contact-${stamp}`, "Alice");
  const { link } = await myCode(alice);
  await alice.getByRole("dialog", { name: "My QR code" }).getByRole("button", { name: "Close" }).click();
  const [, id, key] = /#\/add\/([^/]+)\/([^/]+)$/.exec(link) ?? [];
  const flipped = `${key!.startsWith("A") ? "B" : "A"}${key!.slice(1)}`;

  const carl = await signUp(browser, `carl-contact-${stamp}`, "Carl");
  const conversations = carl.getByRole("complementary").getByRole("listitem");
  await expect(conversations).toHaveCount(0);
  await carl.getByRole("button", { name: "New conversation" }).click();
  await carl.getByRole("dialog", { name: "New conversation" }).getByRole("button", { name: "Scan a QR code" }).click();
  const scan = carl.getByRole("dialog", { name: "Add someone by QR code" });
  const paste = async (text: string, says: string) => {
    await scan.getByRole("textbox", { name: "Or paste their link" }).fill(text);
    await scan.getByRole("button", { name: "Open", exact: true }).click();
    await expect(scan.getByRole("alert")).toHaveText(says);
  };
  // Attacks and mistakes: each is refused and nothing changes.
  await paste(`https://kitsulan.example.org/#/add/${id}/${key}`, "That code is for another server. Only people on this server can be added here.");
  await paste(`${origin}/#/add/${id}/${flipped}`, "The key in that code is not the key this server gives for that person. Someone may be impersonating them: nothing was changed. Check with them in person.");
  await paste(`${origin}/#/add/0190f000-0000-7000-8000-000000000000/${key}`, "Nobody on this server has that code any more (the account is gone or disabled).");
  await paste(`${origin}/#/chat/${id}`, "That is not a KitsuLAN contact code.");
  await paste(`${origin}/#/add/${id}/${key}x`, "That contact code is damaged. Ask for it again.");
  await expect(conversations).toHaveCount(0);
  await shoot(carl, "contact-refused");
  // Carl's own code.
  await scan.getByRole("button", { name: "Cancel" }).click();
  const own = await myCode(carl);
  await carl.getByRole("dialog", { name: "My QR code" }).getByRole("button", { name: "Close" }).click();
  await carl.getByRole("button", { name: "New conversation" }).click();
  await carl.getByRole("dialog", { name: "New conversation" }).getByRole("button", { name: "Scan a QR code" }).click();
  await paste(own.link, "That is your own code.");
  await expect(conversations).toHaveCount(0);
  // Pasted right, it opens the conversation.
  await scan.getByRole("textbox", { name: "Or paste their link" }).fill(link);
  await scan.getByRole("button", { name: "Open", exact: true }).click();
  await expect(carl.getByRole("dialog", { name: "Conversation with Alice" })).toBeVisible();
  await expect(conversations).toHaveCount(1);

  // Opened directly (tapped in another app): after signing in, the same check and offer.
  const dora = await signUp(browser, `dora-contact-${stamp}`, "Dora");
  await dora.goto(link);
  const offer = dora.getByRole("dialog", { name: "Conversation with Alice" });
  await expect(offer.getByRole("button", { name: "Compare emoji" })).toBeVisible();
  await expect(dora).toHaveURL(`${origin}/`);
  await offer.getByRole("button", { name: "Later" }).click();
  await send(dora, "got your link");
  await acceptRequest(alice, /Dora/);
  await expect(bubble(alice, "got your link")).toBeVisible();

  // Signed out when the link is opened: it waits for the sign-in.
  const eric = await newDevice(browser);
  await eric.goto(link);
  await eric.getByRole("tab", { name: "Create account" }).click();
  await eric.getByLabel("Username").fill(`eric-contact-${stamp}`);
  await eric.getByLabel("Password").fill(password);
  await eric.getByRole("button", { name: "Create account" }).click();
  await eric.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "Not now" }).click();
  await expect(eric.getByRole("dialog", { name: "Conversation with Alice" })).toBeVisible();
});

test("contacts by QR in Russian, at 360 px", async ({ browser }) => {
  const page = await newDevice(browser, async (context) => {
    await context.addInitScript(() => Object.defineProperty(navigator, "languages", { get: () => ["ru-RU", "ru"] }));
  });
  await page.setViewportSize({ width: 360, height: 740 });
  await page.getByRole("tab").nth(1).click();
  await page.locator('input[name="username"]').fill(`rita-qr-${stamp}`);
  await page.locator('input[name="password"]').fill(password);
  await page.locator('input[name="displayName"]').fill("Рита");
  await page.locator("form.card button[type=submit]").click();
  await page.getByRole("button", { name: "Не сейчас" }).click();
  await page.getByRole("button", { name: "Новый чат" }).click();
  await page.getByRole("button", { name: "Мой QR-код" }).click();
  await expect(page.getByRole("dialog", { name: "Мой QR-код" })).toBeVisible();
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  await page.screenshot({ path: "e2e/artifacts/contact-my-qr-ru-360.png" });
  await page.getByRole("dialog", { name: "Мой QR-код" }).getByRole("button", { name: "Закрыть" }).click();
  await page.getByRole("button", { name: "Новый чат" }).click();
  await page.getByRole("button", { name: "Сканировать QR-код" }).click();
  const scan = page.getByRole("dialog", { name: "Добавить по QR-коду" });
  await scan.getByRole("textbox", { name: "Или вставьте ссылку" }).fill("https://example.org/");
  await scan.getByRole("button", { name: "Открыть", exact: true }).click();
  await expect(scan.getByRole("alert")).toHaveText("Это не код контакта KitsuLAN.");
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  await page.screenshot({ path: "e2e/artifacts/contact-scan-ru-360.png" });
});

test("over plain HTTP by a LAN name: the party QR names that address; no camera, so the link is pasted", async ({ baseURL }) => {
  test.slow();
  const port = new URL(baseURL ?? "").port;
  const lan = `http://kitsulan.lan:${port}`;
  const browser = await chromium.launch({
    ...launchOptions,
    args: [...launchOptions.args, "--host-resolver-rules=MAP kitsulan.lan 127.0.0.1"],
  });
  try {
    const device = async (path: string) => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      await page.goto(`${lan}${path}`);
      return page;
    };
    const lanSignUp = async (page: Page, username: string, name: string) => {
      await page.getByRole("tab", { name: "Create account" }).click();
      await page.getByLabel("Username").fill(username);
      await page.getByLabel("Password").fill(password);
      await page.getByLabel("Display name (optional)").fill(name);
      await page.getByRole("button", { name: "Create account" }).click();
      await page.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "Not now" }).click();
      await expect(page.getByRole("button", { name: "New conversation" })).toBeVisible();
    };

    // The screen shows the address it was opened at.
    const screen = await device("/party");
    const qr = screen.getByRole("img", { name: `QR code of ${lan}` });
    expect(decodePng(await qrPng(qr))).toBe(lan);
    await expect(screen.getByTestId("party-address")).toHaveText(`kitsulan.lan:${port}`);

    const alice = await device("/");
    await lanSignUp(alice, `alice-lan-${stamp}`, "Alice");
    const { link } = await myCode(alice);
    expect(link.startsWith(`${lan}/#/add/`)).toBe(true);

    const bob = await device("/");
    await lanSignUp(bob, `bob-lan-${stamp}`, "Bob");
    await bob.getByRole("button", { name: "New conversation" }).click();
    await bob.getByRole("dialog", { name: "New conversation" }).getByRole("button", { name: "Scan a QR code" }).click();
    const scan = bob.getByRole("dialog", { name: "Add someone by QR code" });
    await expect(scan.getByText("The camera only works over an encrypted (HTTPS) connection, and this page is not one. Paste the link instead.")).toBeVisible();
    await expect(scan.getByLabel("Camera")).toHaveCount(0);
    await scan.getByRole("textbox", { name: "Or paste their link" }).fill(link);
    await scan.getByRole("button", { name: "Open", exact: true }).click();
    await expect(bob.getByRole("dialog", { name: "Conversation with Alice" })).toBeVisible();
  } finally {
    await browser.close();
  }
});
