// insecure.spec.ts — the app opened over plain HTTP by a LAN name warns plainly. Chromium
// resolves kitsulan.lan to the test server (as tabs.spec.ts does), so the page at
// http://kitsulan.lan:<port> is not a secure context, as on a LAN: a banner on the sign-in
// screen and in the messenger says the connection is not encrypted, lists what does not work
// (offline start and install, notifications, calls) and what to do; the call buttons and the
// notifications switch are off and say why; an incoming call rings with its answer buttons
// off and the reason shown; "Hide" hides the banner until the next load. The same app on the
// test server's loopback address (a secure context) shows none of it. Light and dark themes
// pass axe, the banner fits 360 px with a 44 px hide button (folded to the risk alone when a
// phone opens the page), and it speaks Russian.
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "@playwright/test";
import { launchOptions } from "../playwright.config";
import { audit } from "./axe";
import { acceptRequest, expect, newDevice, openDirect, password, send, shoot, signUp, stamp, status, test } from "./helpers";

const port = new URL(process.env.KITSULAN_E2E_URL ?? "http://127.0.0.1:8080").port;
const lan = `http://kitsulan.lan:${port}/`;

const risk = "This connection is not encrypted: anyone on this network could read your password or change the app.";
const limits = ["starting without the network, and installing the app", "notifications", "calls and QR scanning (no camera or microphone)"];
const callsWhy = "Calls need an encrypted (HTTPS) connection: over plain HTTP the browser gives no camera or microphone.";
const notifyWhy = "Notifications need an encrypted (HTTPS) connection: over plain HTTP the browser refuses them.";
const notifySwitch = "Show system notifications while KitsuLAN is in the background";

// Bob, on the secure page, calls with Chromium's fake camera and microphone.
test.use({
  launchOptions: {
    ...launchOptions,
    args: [...launchOptions.args, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
  },
});

function banner(page: Page): Locator {
  return page.getByRole("region", { name: "Connection warning" });
}

async function lanBrowser(): Promise<Browser> {
  return chromium.launch({
    ...launchOptions,
    args: [...launchOptions.args, "--host-resolver-rules=MAP kitsulan.lan 127.0.0.1"],
  });
}

/** A page on the LAN name; `bypassCSP` only where axe is injected (as a11y.spec.ts does). */
async function lanPage(browser: Browser, options: Parameters<Browser["newContext"]>[0] = {}): Promise<Page> {
  const context: BrowserContext = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  const page = await context.newPage();
  page.on("dialog", (d) => {
    throw new Error(`unexpected dialog: ${d.message()}`);
  });
  await page.goto(lan);
  return page;
}

/** The banner with everything it must say, in English. */
async function expectWarning(page: Page): Promise<void> {
  const b = banner(page);
  await expect(b).toBeVisible();
  await expect(b).toContainText(risk);
  await expect(b.getByRole("list", { name: "Opened over plain HTTP, these do not work here:" }).getByRole("listitem")).toHaveText(limits);
  await expect(b).toContainText("Ask the server's admin to turn on HTTPS: for a LAN it is one setting, KITSULAN_TLS=local (see “HTTPS” in docs/admin.md).");
  await expect(b).toContainText(`On the server's own computer, open http://localhost:${port}/ instead.`);
  // Not an alert and not modal: the app beneath it works (tabs.spec.ts reads its own alerts).
  await expect(page.getByRole("alert").filter({ hasText: risk })).toHaveCount(0);
}

/** axe in both themes, with a screenshot of each. */
async function auditBoth(page: Page, name: string): Promise<void> {
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    await expect(page.locator("html")).toHaveAttribute("data-theme", scheme);
    await page.screenshot({ path: `e2e/artifacts/insecure-${name}-${scheme}.png` });
    expect(await audit(page), `${name}, ${scheme} theme`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });
}

/** At 360 px the banner fits (nothing wider than the screen) and its hide button is ≥ 44 px. */
async function expectFitsPhone(page: Page): Promise<void> {
  await page.setViewportSize({ width: 360, height: 740 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  const box = await banner(page).boundingBox();
  expect(box && box.x >= 0 && box.x + box.width <= 360).toBe(true);
  const hide = await banner(page).getByRole("button").boundingBox();
  expect(hide && hide.width >= 44 && hide.height >= 44).toBe(true);
  await page.setViewportSize({ width: 1280, height: 800 });
}

test("plain http on a LAN name: the banner says what does not work, calls and notifications say why", async ({ browser }) => {
  test.slow(); // two browsers, a call, four audits
  const aliceName = `alice-insec-${stamp}`;
  const bobName = `bob-insec-${stamp}`;

  // The secure page first: no banner on the sign-in screen nor in the messenger.
  const visitor = await newDevice(browser);
  await expect(visitor.getByRole("tab", { name: "Sign in" })).toBeVisible();
  expect(await visitor.evaluate(() => window.isSecureContext)).toBe(true);
  await expect(banner(visitor)).toHaveCount(0);
  await expect(visitor.getByText(risk)).toHaveCount(0);
  await visitor.context().close();
  const bob = await signUp(browser, bobName, "Bob");
  await expect(banner(bob)).toHaveCount(0);

  const lanChromium = await lanBrowser();
  try {
    const alice = await lanPage(lanChromium, { bypassCSP: true });
    expect(await alice.evaluate(() => window.isSecureContext)).toBe(false);
    expect(await alice.evaluate(() => "serviceWorker" in navigator || navigator.mediaDevices !== undefined)).toBe(false);

    // The sign-in screen: the banner, above a form that works; it passes axe in both themes.
    await expect(alice.getByRole("tab", { name: "Sign in" })).toBeVisible();
    await expectWarning(alice);
    await auditBoth(alice, "sign-in");
    await expectFitsPhone(alice);
    await shoot(alice, "insecure-sign-in");

    await alice.getByRole("tab", { name: "Create account" }).click();
    await alice.getByLabel("Username").fill(aliceName);
    await alice.getByLabel("Password").fill(password);
    await alice.getByLabel("Display name (optional)").fill("Alice");
    await alice.getByRole("button", { name: "Create account" }).click();
    await expect(alice.getByRole("form", { name: "Save your recovery key" })).toBeVisible();
    await expect(banner(alice)).toBeVisible();
    await alice.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "Not now" }).click();
    await expect(status(alice)).toHaveText("Connected");

    // Signed in: still there.
    await expectWarning(alice);
    await openDirect(alice, bobName);
    await send(alice, "Hi Bob, from the LAN address");
    await acceptRequest(bob, /Alice/);
    await send(bob, "Hi Alice");
    await expect(alice.getByRole("log").getByText("Hi Alice")).toBeVisible();

    // The call buttons are off and say why; Bob's, on the secure page, are on and say nothing more.
    for (const name of ["Audio call", "Video call"]) {
      const button = alice.getByRole("button", { name, exact: true });
      await expect(button).toBeDisabled();
      await expect(button).toHaveAccessibleDescription(callsWhy);
      await expect(button).toHaveAttribute("title", `${name} — ${callsWhy}`);
      const bobs = bob.getByRole("button", { name, exact: true });
      await expect(bobs).toBeEnabled();
      await expect(bobs).not.toHaveAccessibleDescription(/HTTPS/);
      await expect(bobs).toHaveAttribute("title", name);
    }
    await auditBoth(alice, "conversation");
    await expectFitsPhone(alice);
    await shoot(alice, "insecure-conversation");

    // Bob calls: Alice's page rings, says why it cannot answer, and can decline.
    await bob.getByRole("button", { name: "Audio call", exact: true }).click();
    const incoming = alice.getByRole("alertdialog", { name: "Incoming call" });
    await expect(incoming).toBeVisible();
    await expect(incoming).toContainText(callsWhy);
    await expect(incoming.getByRole("button", { name: "Answer" })).toBeDisabled();
    await expect(incoming.getByRole("button", { name: "Answer" })).toHaveAccessibleDescription(callsWhy);
    await expect(incoming.getByRole("button", { name: "Decline" })).toBeFocused();
    await alice.screenshot({ path: "e2e/artifacts/insecure-incoming-call.png" });
    await incoming.getByRole("button", { name: "Decline" }).click();
    await expect(bob.getByRole("dialog", { name: "Call ended" }).getByRole("status")).toHaveText("The call was declined.");
    await expect(incoming).toBeHidden();
    // The ended screen goes by itself after a few seconds.
    await expect(bob.getByRole("dialog", { name: "Call ended" })).toBeHidden();

    // Settings: the notifications switch is off and says why (Bob's is on).
    await alice.getByRole("button", { name: "Settings" }).click();
    const settings = alice.getByRole("dialog", { name: "Settings" });
    const system = settings.getByRole("checkbox", { name: notifySwitch });
    await expect(system).toBeDisabled();
    await expect(system).not.toBeChecked();
    await expect(system).toHaveAccessibleDescription(notifyWhy);
    await expect(settings.getByText(notifyWhy)).toBeVisible();
    await expect(settings.getByText("Notifications are blocked for this site.", { exact: false })).toHaveCount(0);
    // Push too: off, with the reason.
    const push = settings.getByRole("checkbox", { name: "Notify me when the app is closed" });
    await expect(push).toBeDisabled();
    await expect(push).toHaveAccessibleDescription("Push notifications need an encrypted (HTTPS) connection.");
    await settings.getByRole("checkbox", { name: notifySwitch }).scrollIntoViewIfNeeded();
    await alice.screenshot({ path: "e2e/artifacts/insecure-settings.png" });
    await bob.getByRole("button", { name: "Settings" }).click();
    await expect(bob.getByRole("dialog", { name: "Settings" }).getByRole("checkbox", { name: notifySwitch })).toBeEnabled();
    await expect(bob.getByRole("dialog", { name: "Settings" }).getByText(notifyWhy)).toHaveCount(0);
    await bob.getByRole("button", { name: "Close settings" }).click();
    await settings.getByRole("button", { name: "Close settings" }).click();

    // Copy works over plain HTTP too, where the clipboard API is missing: the button says
    // "Copied", the browser's copy command copied the id and it pastes; when even the fallback fails, the id is selected and
    // the app says how to copy it by hand. On the secure page the clipboard API copies.
    expect(await alice.evaluate(() => navigator.clipboard === undefined)).toBe(true);
    // What the browser's copy command copies is the selection when the "copy" event fires;
    // then a keyboard paste into the composer reads it back.
    await alice.evaluate(() => {
      document.addEventListener("copy", (e) => {
        const t = e.target;
        const text =
          t instanceof HTMLTextAreaElement ? t.value.slice(t.selectionStart, t.selectionEnd) : String(window.getSelection());
        (window as unknown as { copiedText?: string }).copiedText = text;
      });
    });
    await alice.getByRole("button", { name: "Settings" }).click();
    const aliceId = ((await settings.locator(".copy-id output").textContent()) ?? "").trim();
    expect(aliceId).not.toBe("");
    await settings.locator(".copy-id").getByRole("button", { name: "Copy" }).click();
    await expect(settings.locator(".copy-id").getByRole("button", { name: "Copied" })).toBeVisible();
    expect(await alice.evaluate(() => (window as unknown as { copiedText?: string }).copiedText)).toBe(aliceId);
    // The hidden textarea is gone and focus is back on the button.
    await expect(alice.locator("body > textarea")).toHaveCount(0);
    await expect(settings.locator(".copy-id").getByRole("button", { name: "Copied" })).toBeFocused();
    await settings.getByRole("button", { name: "Close settings" }).click();
    const composer = alice.getByRole("textbox", { name: "Message" });
    await composer.focus();
    await alice.keyboard.press("ControlOrMeta+V");
    await expect(composer).toHaveValue(aliceId);
    await composer.fill("");
    await alice.getByRole("button", { name: "Settings" }).click();
    await alice.evaluate(() => {
      document.execCommand = () => false;
    });
    await settings.locator(".copy-id").getByRole("button", { name: "Copy" }).click();
    await expect(settings.getByRole("status").filter({ hasText: "Could not copy here. The text is selected: press Ctrl+C (or long-press and choose Copy)." })).toBeVisible();
    expect(await alice.evaluate(() => window.getSelection()?.toString().trim())).toBe(aliceId);
    await alice.screenshot({ path: "e2e/artifacts/insecure-copy-manual.png" });
    await settings.getByRole("button", { name: "Close settings" }).click();
    await bob.context().grantPermissions(["clipboard-read", "clipboard-write"]);
    await bob.getByRole("button", { name: "Settings" }).click();
    const bobSettings = bob.getByRole("dialog", { name: "Settings" });
    const bobId = ((await bobSettings.locator(".copy-id output").textContent()) ?? "").trim();
    await bobSettings.locator(".copy-id").getByRole("button", { name: "Copy" }).click();
    await expect(bobSettings.locator(".copy-id").getByRole("button", { name: "Copied" })).toBeVisible();
    expect(await bob.evaluate(() => navigator.clipboard.readText())).toBe(bobId);
    await bob.getByRole("button", { name: "Close settings" }).click();

    // Hidden: gone for this page (across screens), back on the next load.
    await banner(alice).getByRole("button", { name: "Hide this warning" }).click();
    await expect(banner(alice)).toHaveCount(0);
    await alice.getByRole("button", { name: "Settings" }).click();
    await alice.getByRole("button", { name: "Close settings" }).click();
    await expect(banner(alice)).toHaveCount(0);
    await alice.reload();
    await expect(status(alice)).toHaveText("Connected");
    await expectWarning(alice);

    // In Russian (a browser that prefers it), at phone width.
    const ru = await lanPage(lanChromium, { locale: "ru-RU", viewport: { width: 360, height: 740 } });
    const warning = ru.getByRole("region", { name: "Предупреждение о соединении" });
    await expect(warning).toContainText("Соединение не зашифровано: любой в этой сети может прочитать ваш пароль или подменить приложение.");
    // On a phone only the risk shows at first, so the warning leaves the screen to the app;
    // the rest is one tap away.
    const folded = await warning.boundingBox();
    expect(folded && folded.height <= 150).toBe(true);
    await expect(warning.getByRole("listitem").first()).toBeHidden();
    await ru.screenshot({ path: "e2e/artifacts/insecure-ru-folded-360.png" });
    await warning.getByText("Что не работает и что делать").click();
    await expect(warning.getByRole("listitem")).toHaveText([
      "запуск без сети и установка приложения",
      "уведомления",
      "звонки и сканирование QR-кодов (нет камеры и микрофона)",
    ]);
    await expect(warning.getByRole("button", { name: "Скрыть предупреждение" })).toBeVisible();
    expect(await ru.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    for (const scheme of ["light", "dark"] as const) {
      await ru.emulateMedia({ colorScheme: scheme });
      await ru.screenshot({ path: `e2e/artifacts/insecure-ru-${scheme}-360.png` });
    }
  } finally {
    await lanChromium.close();
  }
});
