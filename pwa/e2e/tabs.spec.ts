// tabs.spec.ts — one tab at a time drives a device, also on a plain-http host name (an insecure
// context: no Web Locks there). Chromium resolves kitsulan.lan to the test server, so the app
// runs at http://kitsulan.lan:<port> as on a LAN: the second tab yields, the first keeps
// working, "Use here" hands over safely, two tabs opening at once leave one in charge, and Bob
// decrypts everything Alice's tabs sent.
import { chromium, type Page } from "@playwright/test";
import { launchOptions } from "../playwright.config";
import { acceptRequest, bubble, expect, expectNoUndecryptable, password, send, signUp, stamp, status, test } from "./helpers";

const port = new URL(process.env.KITSULAN_E2E_URL ?? "http://127.0.0.1:8080").port;
const lan = `http://kitsulan.lan:${port}/`;

const otherTab = "KitsuLAN is open in another tab of this browser. Only one tab at a time can use this device's encryption keys.";
const takenOver =
  "KitsuLAN was opened in another tab of this browser, so this tab stopped. Only one tab at a time can use this device's encryption keys.";

async function messenger(page: Page): Promise<void> {
  await expect(page.getByRole("button", { name: "New conversation" })).toBeVisible();
  await expect(status(page)).toHaveText("Connected");
}

test("two tabs on a plain-http host: the second yields, the first keeps working, Bob reads everything", async ({ browser }) => {
  const bobName = `bob-tabs-${stamp}`;
  const bob = await signUp(browser, bobName, "Bob");

  const lanBrowser = await chromium.launch({
    ...launchOptions,
    args: [...launchOptions.args, "--host-resolver-rules=MAP kitsulan.lan 127.0.0.1"],
  });
  try {
    const context = await lanBrowser.newContext({ viewport: { width: 1280, height: 800 } });
    const first = await context.newPage();
    await first.goto(lan);
    // A plain-http page: an insecure context, without Web Locks.
    expect(await first.evaluate(() => window.isSecureContext)).toBe(false);
    expect(await first.evaluate(() => "locks" in navigator)).toBe(false);

    await first.getByRole("tab", { name: "Create account" }).click();
    await first.getByLabel("Username").fill(`alice-tabs-${stamp}`);
    await first.getByLabel("Password").fill(password);
    await first.getByLabel("Display name (optional)").fill("Alice");
    await first.getByRole("button", { name: "Create account" }).click();
    await first.getByRole("form", { name: "Save your recovery key" }).getByRole("button", { name: "Not now" }).click();
    await messenger(first);
    await first.getByRole("button", { name: "New conversation" }).click();
    const dialog = first.getByRole("dialog", { name: "New conversation" });
    await dialog.getByRole("textbox", { name: "Their username" }).fill(bobName);
    await dialog.getByRole("button", { name: "Start conversation" }).click();
    await send(first, "one, before the second tab");
    await expect(bubble(first, "one, before the second tab").getByRole("img", { name: /Sent|Delivered/ })).toBeVisible();

    // A second tab of the same browser yields, and says so.
    const second = await context.newPage();
    // While it waits it touches nothing: no gateway connection, no API call.
    const waiting: string[] = [];
    let yielded = true;
    second.on("websocket", (ws) => {
      if (yielded) waiting.push(ws.url());
    });
    second.on("request", (r) => {
      if (yielded && r.method() === "POST") waiting.push(r.url());
    });
    await second.goto(lan);
    await expect(second.getByRole("alert")).toHaveText(otherTab);
    await expect(second.getByRole("button", { name: "Use here" })).toBeVisible();
    await expect(second.getByRole("button", { name: "New conversation" })).toHaveCount(0);
    await second.screenshot({ path: "e2e/artifacts/tabs-second-yields.png" });

    // The first keeps working, also after a while (its heartbeat keeps the second out).
    await send(first, "two, while the second tab waits");
    await second.waitForTimeout(6000);
    await expect(second.getByRole("alert")).toHaveText(otherTab);
    await send(first, "three, still the first tab");
    await expect(bubble(first, "three, still the first tab").getByRole("img", { name: /Sent|Delivered/ })).toBeVisible();

    await acceptRequest(bob, /Alice/);
    for (const text of ["one, before the second tab", "two, while the second tab waits", "three, still the first tab"]) {
      await expect(bubble(bob, text).getByText(text)).toBeVisible();
    }

    expect(waiting).toEqual([]);

    // "Use here": the first tab stops (and says why), the second takes over and sends.
    yielded = false;
    await second.getByRole("button", { name: "Use here" }).click();
    await messenger(second);
    await expect(first.getByRole("alert")).toHaveText(takenOver);
    await first.screenshot({ path: "e2e/artifacts/tabs-first-taken-over.png" });
    // The stopped tab touches nothing any more.
    const after: string[] = [];
    first.on("websocket", (ws) => after.push(ws.url()));
    first.on("request", (r) => {
      if (r.method() === "POST") after.push(r.url());
    });
    await second.getByRole("complementary").getByRole("button", { name: /Bob/ }).click();
    await send(second, "four, from the second tab");
    await expect(bubble(bob, "four, from the second tab").getByText("four, from the second tab")).toBeVisible();
    await send(bob, "five, to whichever tab");
    await expect(bubble(second, "five, to whichever tab").getByText("five, to whichever tab")).toBeVisible();

    expect(after).toEqual([]);

    // Closing the tab in charge frees the device at once for a new one.
    await first.close();
    await second.close();
    const [x, y] = [await context.newPage(), await context.newPage()];
    // Two tabs opening at the same moment: exactly one drives the device.
    await Promise.all([x.goto(lan), y.goto(lan)]);
    const inCharge = async (p: Page) => (await p.getByRole("button", { name: "New conversation" }).count()) > 0;
    await expect
      .poll(async () => [await inCharge(x), await inCharge(y)].filter(Boolean).length, { timeout: 15_000 })
      .toBe(1);
    await x.waitForTimeout(2000);
    const [xOn, yOn] = [await inCharge(x), await inCharge(y)];
    expect([xOn, yOn].filter(Boolean)).toHaveLength(1);
    const driver = xOn ? x : y;
    const waiter = xOn ? y : x;
    await expect(waiter.getByRole("alert")).toHaveText(otherTab);
    await messenger(driver);
    await driver.getByRole("complementary").getByRole("button", { name: /Bob/ }).click();
    await send(driver, "six, after the race");
    await expect(bubble(bob, "six, after the race").getByText("six, after the race")).toBeVisible();

    // Bob decrypted everything: nothing waits for a key, nothing failed.
    await expect(bob.getByRole("log").getByText("Waiting for the key to decrypt this message…")).toHaveCount(0);
    await expect(bob.getByRole("log").getByText("This message cannot be decrypted on this device.")).toHaveCount(0);
    await expect(bob.getByRole("log").locator("article")).toHaveCount(6);
    // And the app's own count says so, on Bob's device and on the tab that drives Alice's.
    for (const page of [bob, driver]) await expectNoUndecryptable(page);
  } finally {
    await lanBrowser.close();
  }
});

test("two tabs in a secure context (Web Locks): the second yields, and Use here hands over", async ({ browser }) => {
  const bobName = `bob-tabs2-${stamp}`;
  const bob = await signUp(browser, bobName, "Bob");
  const first = await signUp(browser, `alice-tabs2-${stamp}`, "Alice");
  expect(await first.evaluate(() => window.isSecureContext && "locks" in navigator)).toBe(true);
  await first.getByRole("button", { name: "New conversation" }).click();
  const dialog = first.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("textbox", { name: "Their username" }).fill(bobName);
  await dialog.getByRole("button", { name: "Start conversation" }).click();
  await send(first, "from the first tab");

  const second = await first.context().newPage();
  await second.goto("/");
  await expect(second.getByRole("alert")).toHaveText(otherTab);
  await second.getByRole("button", { name: "Use here" }).click();
  await messenger(second);
  await expect(first.getByRole("alert")).toHaveText(takenOver);
  await second.getByRole("complementary").getByRole("button", { name: /Bob/ }).click();
  await send(second, "from the second tab");

  // And back again: the second tab hands over in turn.
  await first.getByRole("button", { name: "Use here" }).click();
  await messenger(first);
  await expect(second.getByRole("alert")).toHaveText(takenOver);
  await first.getByRole("complementary").getByRole("button", { name: /Bob/ }).click();
  await send(first, "from the first tab again");

  await acceptRequest(bob, /Alice/);
  for (const text of ["from the first tab", "from the second tab", "from the first tab again"]) {
    await expect(bubble(bob, text).getByText(text, { exact: true })).toBeVisible();
  }
  await expect(bob.getByRole("log").getByText("Waiting for the key to decrypt this message…")).toHaveCount(0);
  for (const page of [bob, first]) await expectNoUndecryptable(page);
});
