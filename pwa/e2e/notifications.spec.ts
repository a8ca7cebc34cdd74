// notifications.spec.ts — new-message notifications (an in-app banner for another conversation;
// system notifications while the tab is hidden, content-free unless the person opts in to the
// text), the profile (a new display name reaches the other person), and the sign-in-with-an-
// email-code path (shown only when the server offers it: the server restarted with SMTP to a
// real sink, whose mail carries the codes).
import type { BrowserContext, Page } from "@playwright/test";
import { acceptRequest, bubble, expect, openDirect, password, send, server, shoot, signUp, stamp, test } from "./helpers";
import { SmtpSink } from "./smtp";

interface Shown {
  via: "service-worker" | "page";
  title: string;
  body: string;
}

/**
 * Lets the page show notifications, and records them instead of showing them: both ways the
 * app may use (the service worker registration's showNotification, or `new Notification`).
 */
async function observeNotifications(context: BrowserContext): Promise<void> {
  await context.grantPermissions(["notifications"]);
  await context.addInitScript(() => {
    const shown: Shown[] = [];
    (window as unknown as { __shown: Shown[] }).__shown = shown;
    ServiceWorkerRegistration.prototype.showNotification = function (title: string, options?: NotificationOptions) {
      shown.push({ via: "service-worker", title, body: options?.body ?? "" });
      return Promise.resolve();
    };
    const Real = window.Notification;
    class Recorded extends EventTarget {
      static get permission() {
        return Real.permission;
      }
      static requestPermission() {
        return Real.requestPermission();
      }
      onclick: ((e: Event) => void) | null = null;
      constructor(title: string, options?: NotificationOptions) {
        super();
        shown.push({ via: "page", title, body: options?.body ?? "" });
      }
      close() {}
    }
    Object.defineProperty(window, "Notification", { value: Recorded, configurable: true, writable: true });
  });
}

async function shown(page: Page): Promise<Shown[]> {
  return page.evaluate(() => (window as unknown as { __shown: Shown[] }).__shown);
}

/** Makes the page believe its tab is hidden (or visible again), as when another tab is in front. */
async function setHidden(page: Page, hidden: boolean): Promise<void> {
  await page.evaluate((hide) => {
    if (hide) {
      Object.defineProperty(document, "visibilityState", { get: () => "hidden", configurable: true });
      Object.defineProperty(document, "hidden", { get: () => true, configurable: true });
    } else {
      // Back to Document.prototype's real getters.
      delete (document as unknown as Record<string, unknown>).visibilityState;
      delete (document as unknown as Record<string, unknown>).hidden;
    }
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);
}

test("new messages: in-app banner, and content-free system notifications unless opted in", async ({ browser }) => {
  const bob = await signUp(browser, `bob-n-${stamp}`, "Bob", observeNotifications);
  const alice = await signUp(browser, `alice-n-${stamp}`, "Alice");
  await openDirect(alice, `bob-n-${stamp}`);

  // A stranger's first message is a request: no banner, it waits under "Requests". Bob accepts
  // it, then reloads (no conversation open).
  await send(alice, "hi, it's Alice");
  await expect(bob.getByRole("button", { name: "Requests (1)" })).toBeVisible();
  await expect(bob.getByRole("status").filter({ hasText: "New message in Alice" })).toHaveCount(0);
  await acceptRequest(bob, /Alice/);
  await bob.reload();
  await expect(bob.getByRole("button", { name: "New conversation" })).toBeVisible();

  // Bob has no conversation open: a banner names it and shows the text (the tab is in front).
  await send(alice, "first hello");
  const banner = bob.getByRole("status").filter({ hasText: "New message in Alice" });
  await expect(banner).toBeVisible();
  await expect(banner).toContainText("first hello");
  await shoot(bob, "notification-banner");
  await banner.getByRole("button", { name: "Open" }).click();
  await expect(bob.getByRole("heading", { name: "Alice" })).toBeVisible();
  await expect(bubble(bob, "first hello")).toBeVisible();
  await expect(banner).toBeHidden();

  // Nothing was asked or shown so far: system notifications are off until turned on.
  expect(await shown(bob)).toEqual([]);
  await bob.getByRole("button", { name: "Settings" }).click();
  const settings = bob.getByRole("dialog", { name: "Settings" });
  const system = settings.getByRole("checkbox", { name: "Show system notifications while KitsuLAN is in the background" });
  const preview = settings.getByRole("checkbox", { name: "Show the sender and message text in them" });
  await expect(system).not.toBeChecked();
  await expect(preview).not.toBeChecked();
  await system.check();
  await expect(system).toBeChecked();
  await settings.getByRole("button", { name: "Close settings" }).click();

  // The tab is hidden: a system notification names the conversation, without the text.
  await setHidden(bob, true);
  await send(alice, "the secret plans");
  await expect.poll(async () => (await shown(bob)).length).toBe(1);
  const [first] = await shown(bob);
  expect(first).toEqual({ via: "service-worker", title: "New message in Alice", body: "" });
  expect(JSON.stringify(first)).not.toContain("secret");

  // Opting in to the text: the next one shows it.
  await setHidden(bob, false);
  await bob.getByRole("button", { name: "Settings" }).click();
  await preview.check();
  await settings.getByRole("button", { name: "Close settings" }).click();
  await setHidden(bob, true);
  await send(alice, "now with text");
  await expect.poll(async () => (await shown(bob)).length).toBe(2);
  expect((await shown(bob))[1]).toEqual({ via: "service-worker", title: "Alice", body: "now with text" });
  await setHidden(bob, false);
  await expect(bubble(bob, "now with text")).toBeVisible();
});

test("a new display name reaches the other person", async ({ browser }) => {
  const alice = await signUp(browser, `alice-p-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-p-${stamp}`, "Bob");
  await openDirect(alice, `bob-p-${stamp}`);
  await send(alice, "hi, it's me");
  await acceptRequest(bob, /Alice/);

  await alice.getByRole("button", { name: "Settings" }).click();
  const settings = alice.getByRole("dialog", { name: "Settings" });
  const profile = settings.getByRole("region", { name: "Profile" });
  await expect(profile).toContainText(`@alice-p-${stamp}`);
  await profile.getByRole("textbox", { name: "Display name" }).fill("Alice Liddell");
  await profile.getByRole("button", { name: "Save" }).click();
  await expect(profile.getByRole("status").filter({ hasText: "Saved" })).toBeVisible();
  await expect(profile.locator("strong")).toHaveText("Alice Liddell");
  await shoot(alice, "settings");
  await settings.getByRole("button", { name: "Close settings" }).click();

  // Bob opens the conversation: its names are fetched again and show the new one.
  await bob.getByRole("complementary").getByRole("button", { name: /Alice/ }).click();
  await expect(bob.getByRole("heading", { name: "Alice Liddell" })).toBeVisible();
  await expect(bob.getByRole("complementary").getByRole("button", { name: /Alice Liddell/ })).toBeVisible();
  await bob.reload();
  await expect(bob.getByRole("button", { name: /Alice Liddell/ })).toBeVisible();
});

test("sign in with an email code, offered only when the server has email", async ({ page, browser }) => {
  // The test server has no SMTP: no such path.
  await page.goto("/");
  await expect(page.getByRole("tab", { name: "Sign in" })).toBeVisible();
  await expect(page.getByRole("button", { name: "Sign in with a code by email" })).toHaveCount(0);

  // The same server with email: it sends real SMTP to a sink, where the codes are read.
  const sink = await SmtpSink.start();
  try {
    await server("stop");
    await server("start", sink.serverEnv);

    // Alice gives her account an address and verifies it with the code mailed to it.
    const address = `alice-e-${stamp}@example.org`;
    const alice = await signUp(browser, `alice-e-${stamp}`, "Alice");
    await alice.getByRole("button", { name: "Settings" }).click();
    const settings = alice.getByRole("dialog", { name: "Settings" });
    const emailForm = settings.getByRole("form", { name: "Email address" });
    await emailForm.getByRole("textbox", { name: "New email address" }).fill(address);
    await emailForm.getByLabel("Current password").fill(password);
    await emailForm.getByRole("button", { name: "Set email address" }).click();
    await expect(settings.getByRole("status").filter({ hasText: `We sent a code to ${address}` })).toBeVisible();
    const verify = settings.getByRole("form", { name: "Verify" });
    await verify.getByRole("textbox", { name: "Code from the email" }).fill(await sink.code(address));
    await verify.getByRole("button", { name: "Verify" }).click();
    await expect(settings).toContainText(`${address} (verified)`);

    // Another device signs in with a code by email (and could go back to the password).
    await page.reload();
    await page.getByRole("button", { name: "Sign in with a code by email" }).click();
    await page.getByRole("button", { name: "Sign in with a password instead" }).click();
    await expect(page.getByRole("tab", { name: "Sign in" })).toBeVisible();
    await page.getByRole("button", { name: "Sign in with a code by email" }).click();
    const form = page.getByRole("form", { name: "Sign in with a code by email" });
    await form.getByRole("textbox", { name: "Email" }).fill(address);
    await form.getByRole("button", { name: "Send code" }).click();
    await expect(form.getByRole("status")).toContainText(address);
    const code = await sink.code(address);
    // The server checks the code: a wrong one is refused, the mailed one signs in.
    await form.getByRole("textbox", { name: "Code from the email" }).fill(code === "000000" ? "111111" : "000000");
    await form.getByRole("button", { name: "Sign in" }).click();
    await expect(form.getByRole("alert")).toHaveText("That code is wrong, expired or was already used.");
    await form.getByRole("textbox", { name: "Code from the email" }).fill(code);
    await form.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("button", { name: "New conversation" })).toBeVisible();
  } finally {
    // Back to the server without email for the specs after this one.
    sink.stop();
    await server("stop");
    await server("start");
  }
});
