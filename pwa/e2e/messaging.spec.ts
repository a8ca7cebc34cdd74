// messaging.spec.ts — two people in two browser contexts, against the real server: sign up,
// open a direct conversation, exchange E2EE messages both ways, receipts, reload, XSS as text,
// and screenshots of the main screens (light and dark, desktop and phone width).
import type { Page } from "@playwright/test";
import { acceptRequest, bubble, expect, openDirect, send, shoot, signUp, stamp, test } from "./helpers";

test("Alice and Bob talk end to end encrypted", async ({ browser }) => {
  const alice = await signUp(browser, `alice-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-${stamp}`, "Bob");

  // Alice opens the direct conversation by Bob's username; both see display names.
  await alice.getByRole("button", { name: "New conversation" }).click();
  const dialog = alice.getByRole("dialog", { name: "New conversation" });
  await shoot(alice, "new-conversation");
  await dialog.getByRole("textbox", { name: "Their username" }).fill("nobody-like-that");
  await dialog.getByRole("button", { name: "Start conversation" }).click();
  await expect(dialog.getByRole("alert")).toHaveText("Nobody on this server has that username.");
  await dialog.getByRole("textbox", { name: "Their username" }).fill(`bob-${stamp}`);
  await dialog.getByRole("button", { name: "Start conversation" }).click();
  await expect(alice.getByRole("heading", { name: "Bob" })).toBeVisible();
  await expect(alice.getByRole("main").getByText("End-to-end encrypted")).toBeVisible();

  await send(alice, "Hello **Bob**, this is encrypted");
  await expect(bubble(alice, "this is encrypted")).toBeVisible();

  // Bob gets it live as a request (Alice is a stranger to him): no badge among his chats, it
  // waits under "Requests". He opens it, reads it decrypted, and accepts.
  await expect(bob.getByRole("button", { name: "Requests (1)" })).toBeVisible();
  await expect(bob.getByRole("complementary").getByLabel("1 unread")).toHaveCount(0);
  await acceptRequest(bob, /Alice/);
  const entry = bob.getByRole("button", { name: /Alice/ });
  await expect(entry.getByRole("img", { name: "End-to-end encrypted" })).toBeVisible();
  await expect(bubble(bob, "this is encrypted")).toBeVisible();
  await expect(bubble(bob, "this is encrypted").locator("strong")).toHaveText("Bob");

  // Bob answers; Alice sees it live.
  await send(bob, "Hi Alice, got it");
  await expect(bubble(alice, "Hi Alice, got it")).toBeVisible();

  // Bob had the conversation open: Alice's message shows as read.
  await expect(bubble(alice, "this is encrypted").getByRole("img", { name: "Read" })).toBeVisible();

  // Hostile Markdown renders as text.
  await send(alice, "<script>alert(1)</script>");
  await send(alice, "[x](javascript:alert(1))");
  for (const page of [alice, bob]) {
    await expect(bubble(page, "<script>alert(1)</script>")).toBeVisible();
    await expect(bubble(page, "[x](javascript:alert(1))")).toBeVisible();
    await expect(page.getByRole("log").locator("script")).toHaveCount(0);
    await expect(page.locator('a[href^="javascript"]')).toHaveCount(0);
  }

  // A safe link opens in a new tab without a referrer or opener.
  await send(bob, "see [the docs](https://example.org/docs)");
  const link = alice.getByRole("link", { name: "the docs" });
  await expect(link).toHaveAttribute("rel", "noopener noreferrer nofollow");
  await expect(link).toHaveAttribute("target", "_blank");

  await shoot(alice, "conversation");
  // Wide screen: the list stays beside the conversation, so its back button is there but hidden.
  const back = alice.getByRole("button", { name: "Back to conversations", includeHidden: true });
  await expect(back).toBeAttached();
  await expect(back).toBeHidden();

  // A reload keeps the session and the keys: history still decrypts.
  await bob.reload();
  await expect(bob.getByRole("button", { name: "New conversation" })).toBeVisible();
  await bob.getByRole("button", { name: /Alice/ }).click();
  await expect(bubble(bob, "this is encrypted")).toBeVisible();
  await expect(bubble(bob, "Hi Alice, got it")).toBeVisible();

  // And the reloaded Bob can still send to Alice.
  await send(bob, "after reload");
  await expect(bubble(alice, "after reload")).toBeVisible();

  // Phone width: the list, then one conversation with a back button.
  await alice.setViewportSize({ width: 360, height: 740 });
  await expect(back).toBeVisible();
  await alice.getByRole("button", { name: "Back to conversations" }).click();
  await expect(alice.getByRole("button", { name: /Bob/ })).toBeVisible();
  await shoot(alice, "conversation-list");
});

/** The reaction chips under the message that says `text`. */
function chips(page: Page, text: string) {
  return page.getByRole("log").locator(".msg-wrap").filter({ has: page.locator("article", { hasText: text }) }).getByRole("group", { name: "Reactions" });
}

test("reactions: any emoji, counts and who reacted, taken back, offline, kept across a reload, never unread", async ({ browser }) => {
  const alice = await signUp(browser, `alice-re-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-re-${stamp}`, "Bob");
  await openDirect(alice, `bob-re-${stamp}`);
  await send(alice, "React to this, please");
  await acceptRequest(bob, /Alice/);
  await expect(bubble(bob, "React to this, please")).toBeVisible();

  // Bob opens the message menu, then React: the quick emoji, keyboard first.
  await bubble(bob, "React to this, please").getByRole("button", { name: "Message actions" }).click();
  await bob.getByRole("button", { name: "React", exact: true }).click();
  const picker = bob.getByRole("group", { name: "React", exact: true });
  await expect(picker.getByRole("button", { name: "React with 👍" })).toBeFocused();
  await expect(picker.getByRole("button", { name: /^React with / })).toHaveCount(7);
  await shoot(bob, "reaction-picker");
  // Escape closes the picker and gives the focus back to the menu button.
  await bob.keyboard.press("Escape");
  await expect(picker).toBeHidden();
  await expect(bubble(bob, "React to this, please").getByRole("button", { name: "Message actions" })).toBeFocused();
  await bubble(bob, "React to this, please").getByRole("button", { name: "Message actions" }).click();
  await bob.getByRole("button", { name: "React", exact: true }).click();
  await picker.getByRole("button", { name: "React with 🦊" }).click();
  await expect(picker).toBeHidden();
  await expect(chips(bob, "React to this, please").getByRole("button", { name: "🦊 1: You" })).toHaveAttribute("aria-pressed", "true");

  // Alice sees it live, and adds hers with a click on the chip: 2, both names.
  const aliceFox = chips(alice, "React to this, please").getByRole("button", { name: /^🦊 / });
  await expect(aliceFox).toHaveAccessibleName("🦊 1: Bob");
  await expect(aliceFox).toHaveAttribute("aria-pressed", "false");
  await expect(aliceFox).toHaveAttribute("title", "Bob");
  await aliceFox.click();
  await expect(aliceFox).toHaveAccessibleName("🦊 2: Bob, You");
  await expect(aliceFox).toHaveAttribute("aria-pressed", "true");
  await expect(chips(bob, "React to this, please").getByRole("button", { name: "🦊 2: You, Alice" })).toBeVisible();

  // Any emoji, typed: words are refused with a reason; one emoji goes.
  await bubble(alice, "React to this, please").getByRole("button", { name: "Message actions" }).click();
  await alice.getByRole("button", { name: "React", exact: true }).click();
  const any = alice.getByRole("textbox", { name: "Any emoji" });
  await any.fill("hello");
  await alice.getByRole("button", { name: "Add", exact: true }).click();
  await expect(alice.getByRole("group", { name: "React", exact: true }).getByRole("alert")).toHaveText("Type one emoji.");
  await any.fill("🫶🏽");
  await alice.getByRole("button", { name: "Add", exact: true }).click();
  await expect(chips(bob, "React to this, please").getByRole("button", { name: "🫶🏽 1: Alice" })).toBeVisible();

  // A reaction is not news: Bob, with the conversation not open (a reload shows the list),
  // gets no unread badge for Alice's reactions; a message gives one.
  await bob.reload();
  await expect(bob.getByRole("button", { name: /Alice/ })).toBeVisible();
  await alice.locator(".reactions .reaction", { hasText: "🫶🏽" }).click(); // taken back
  await expect(chips(alice, "React to this, please").getByRole("button", { name: /^🫶🏽/ })).toHaveCount(0);
  await bubble(alice, "React to this, please").getByRole("button", { name: "Message actions" }).click();
  await alice.getByRole("button", { name: "React", exact: true }).click();
  await alice.getByRole("button", { name: "React with 🎉" }).click();
  await expect(chips(alice, "React to this, please").getByRole("button", { name: "🎉 1: You" })).toBeVisible();
  await send(alice, "and a real message");
  await expect(bob.getByRole("complementary").getByLabel("1 unread")).toBeVisible();
  await bob.getByRole("button", { name: /Alice/ }).click();
  await expect(chips(bob, "React to this, please").getByRole("button", { name: "🎉 1: Alice" })).toBeVisible();
  await expect(chips(bob, "React to this, please").getByRole("button", { name: /^🫶🏽/ })).toHaveCount(0);
  await expect(bob.getByRole("complementary").getByLabel(/unread/)).toHaveCount(0);

  // Alice takes her fox back: 1 on both sides; a reload keeps what is there.
  await aliceFox.click();
  await expect(aliceFox).toHaveAccessibleName("🦊 1: Bob");
  await expect(aliceFox).toHaveAttribute("aria-pressed", "false");
  await expect(chips(bob, "React to this, please").getByRole("button", { name: "🦊 1: You" })).toBeVisible();
  // Offline: the reaction shows at once (sending, from the outbox) and goes when the network
  // is back.
  await alice.context().setOffline(true);
  await bubble(alice, "React to this, please").getByRole("button", { name: "Message actions" }).click();
  await alice.getByRole("button", { name: "React", exact: true }).click();
  await alice.getByRole("button", { name: "React with 😮" }).click();
  const wow = chips(alice, "React to this, please").getByRole("button", { name: "😮 1: You" });
  await expect(wow).toHaveClass(/sending/);
  await alice.context().setOffline(false);
  await expect(chips(bob, "React to this, please").getByRole("button", { name: "😮 1: Alice" })).toBeVisible({ timeout: 45_000 });
  await expect(wow).not.toHaveClass(/sending/);

  await alice.reload();
  await alice.getByRole("button", { name: /Bob/ }).click();
  await expect(aliceFox).toHaveAccessibleName("🦊 1: Bob");
  await expect(chips(alice, "React to this, please").getByRole("button", { name: "😮 1: You" })).toBeVisible();
  await expect(chips(alice, "React to this, please").getByRole("button", { name: "🎉 1: You" })).toHaveAttribute("aria-pressed", "true");
  await shoot(alice, "reactions");
  // The chips are real touch targets on a phone.
  await alice.setViewportSize({ width: 360, height: 740 });
  for (const chip of await chips(alice, "React to this, please").getByRole("button").all()) {
    const box = await chip.boundingBox();
    expect(box?.height ?? 0).toBeGreaterThanOrEqual(44);
    expect(box?.width ?? 0).toBeGreaterThanOrEqual(44);
  }
  expect(await alice.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
});

test("the sign-in screen", async ({ page }) => {
  await page.goto("/");
  await expect(page.getByRole("tab", { name: "Sign in" })).toBeVisible();
  await page.getByLabel("Username").fill("nobody-here");
  await page.getByLabel("Password").fill("wrong password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("alert")).toHaveText("Wrong username or password.");
  await shoot(page, "sign-in");
  await page.getByLabel("Language").selectOption("ru");
  await expect(page.getByRole("tab", { name: "Войти" })).toBeVisible();
});

test("installable: manifest and service worker; opens offline", async ({ page, context }) => {
  await page.goto("/");
  const href = await page.locator('link[rel="manifest"]').getAttribute("href");
  expect(href).toBe("/manifest.webmanifest");
  const manifest = await (await page.request.get(href ?? "")).json();
  expect(manifest.name).toBe("KitsuLAN");
  expect(manifest.display).toBe("standalone");
  // Every icon is served, with the type and (for PNGs) the pixel size the manifest says:
  // 192 and 512 px for install prompts and splash screens, and a maskable one.
  const icons: Array<{ src: string; sizes: string; type: string; purpose?: string }> = manifest.icons;
  for (const size of ["192x192", "512x512"]) expect(icons.some((i) => i.sizes === size && i.type === "image/png")).toBe(true);
  expect(icons.some((i) => i.purpose?.split(" ").includes("maskable"))).toBe(true);
  const appleTouch = await page.locator('link[rel="apple-touch-icon"]').getAttribute("href");
  expect(appleTouch).toBeTruthy();
  for (const icon of [...icons, { src: appleTouch ?? "", sizes: "180x180", type: "image/png" }]) {
    const res = await page.request.get(icon.src);
    expect(res.ok(), icon.src).toBe(true);
    expect(res.headers()["content-type"], icon.src).toBe(icon.type);
    if (icon.type !== "image/png") continue;
    const png = await res.body();
    expect(png.subarray(1, 4).toString("latin1"), icon.src).toBe("PNG");
    // IHDR: width and height, big-endian, at bytes 16 and 20.
    expect(`${png.readUInt32BE(16)}x${png.readUInt32BE(20)}`, icon.src).toBe(icon.sizes);
  }
  const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
  expect(scope).toMatch(/\/$/);
  await page.reload(); // now controlled by the worker, which has cached the shell and assets
  await expect(page.getByRole("tab", { name: "Sign in" })).toBeVisible();
  await context.setOffline(true);
  await page.reload();
  await expect(page.getByRole("tab", { name: "Sign in" })).toBeVisible();
  await context.setOffline(false);
});

test("the host guard fails a test whose page calls another host", async ({ page }) => {
  // The guard must be able to fail: a request to another host (it cannot succeed here) is
  // recorded, and the test fails in the guard's teardown, as expected.
  test.fail();
  await page.goto("/");
  await page.evaluate(() => fetch("http://elsewhere.invalid/font.woff2").catch(() => undefined));
});

test("the policy guard fails a test whose page runs an inline script", async ({ page }) => {
  // The server's Content-Security-Policy allows no inline script: the browser refuses this one
  // and says so on the console, and the guard fails the test, as expected. (Without the policy
  // the script would run, nothing would be refused, and this test would fail for passing.)
  test.fail();
  await page.goto("/");
  await page.evaluate(() => {
    const script = document.createElement("script");
    script.textContent = "window.inlineRan = true";
    document.head.appendChild(script);
  });
  // Console messages arrive asynchronously; give the refusal a moment to be reported.
  await page.waitForTimeout(500);
});
