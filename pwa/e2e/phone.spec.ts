// phone.spec.ts — a 360 px wide phone, in English and in Russian: a group conversation with a long
// code line and long words. Nothing is wider than the screen (the code scrolls inside its block),
// the header keeps the call buttons and the composer its Send button on screen, and the message
// menu button, the React picker and the reaction chips are 44 × 44 px touch targets. Screenshots in e2e/artifacts/phone-*.png.
import type { Page } from "@playwright/test";
import { bubble, expect, newDevice, password, send, signUp, stamp, status, test } from "./helpers";

const WIDTH = 360;
const CODE = "```\n" + `const veryLongLine = ${JSON.stringify("x".repeat(40))} + someFunctionWithAVeryLongName(argumentOne, argumentTwo, argumentThree); // ${"-".repeat(60)}\n` + "```";
const WORDS = `Supercalifragilisticexpialidocious${"a".repeat(70)} and https://example.org/${"very-long-path/".repeat(8)}`;

/** Whether the element's box lies inside the viewport horizontally and vertically. */
async function onScreen(page: Page, selector: string): Promise<{ left: number; right: number; top: number; bottom: number }> {
  return page.locator(selector).first().evaluate((el) => {
    const r = el.getBoundingClientRect();
    return { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
  });
}

async function expectWithinViewport(page: Page, selector: string): Promise<void> {
  const box = await onScreen(page, selector);
  const vw = page.viewportSize()?.width ?? WIDTH;
  const vh = page.viewportSize()?.height ?? 740;
  expect(box.left, `${selector} left`).toBeGreaterThanOrEqual(0);
  expect(box.right, `${selector} right`).toBeLessThanOrEqual(vw);
  expect(box.top, `${selector} top`).toBeGreaterThanOrEqual(0);
  expect(box.bottom, `${selector} bottom`).toBeLessThanOrEqual(vh);
}

for (const [locale, tag] of [
  ["en-US", "en"],
  ["ru-RU", "ru"],
] as const) {
  test(`a group at ${WIDTH} px (${tag}): nothing wider than the screen, header and Send on screen, 44 px targets`, async ({
    browser,
  }) => {
    test.slow(); // two browsers and many steps: on a loaded machine more than the default 2 min
    const owner = await signUp(browser, `owner-p${tag}-${stamp}`, "Olga Konstantinovna Rimskaya-Korsakova");
    // The phone: a fresh context in the locale, 360 × 740 (no touch: the composer gets focus).
    const phone = await newDevice(browser, async (context) => {
      await context.addInitScript((lang) => {
        Object.defineProperty(navigator, "languages", { get: () => [lang] });
      }, locale);
    });
    await phone.setViewportSize({ width: WIDTH, height: 740 });
    const tabs = phone.getByRole("tab");
    await tabs.nth(1).click();
    await phone.locator('input[name="username"]').fill(`phone-p${tag}-${stamp}`);
    await phone.locator('input[name="password"]').fill(password);
    await phone.locator('input[name="displayName"]').fill("Pavel");
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-signup.png` });
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(WIDTH);
    await phone.locator("form.card button[type=submit]").click();
    // The recovery-key step fits the phone too (the key in groups, its buttons on screen);
    // this test goes on without one.
    const later = phone.getByRole("button", { name: tag === "ru" ? "Не сейчас" : "Not now" });
    await expect(later).toBeVisible();
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-recovery-key.png` });
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(WIDTH);
    const laterBox = await later.boundingBox();
    expect(laterBox!.height).toBeGreaterThanOrEqual(44);
    await later.click();
    await expect(phone.locator(".status-online")).toBeVisible();

    // The owner makes a group with a long name and adds the phone's account.
    await owner.getByRole("button", { name: "New conversation" }).click();
    const dialog = owner.getByRole("dialog", { name: "New conversation" });
    await dialog.getByRole("radio", { name: "Group" }).check();
    await dialog.getByRole("textbox", { name: "Group name" }).fill("Weekend trip to the mountains with everyone");
    await dialog.getByRole("textbox", { name: /Members' usernames/ }).fill(`phone-p${tag}-${stamp}`);
    await dialog.getByRole("button", { name: "Create group" }).click();
    await send(owner, CODE);
    await send(owner, WORDS);

    // The phone accepts the request (from the list: the Requests entry, the group, Accept).
    await phone.locator(".requests-entry").click();
    await phone.locator(".conv", { hasText: "Weekend trip" }).click();
    await phone.locator(".request-actions button").first().click();
    const box = phone.locator(".composer textarea");
    await expect(box).toBeVisible();
    await expect(phone.locator(".bubble pre")).toBeVisible();
    await box.fill(`${"Длинноесловобезпробелов".repeat(4)} ok`);
    await box.press("Enter");
    await expect(phone.locator("article.mine")).toHaveCount(1);
    await expect(status(owner)).toHaveText("Connected");
    await expect(bubble(owner, "Длинноесловобезпробелов")).toBeVisible();

    // Nothing wider than the screen; the code block scrolls inside itself.
    const widths = await phone.evaluate(() => ({
      doc: document.documentElement.scrollWidth,
      pre: document.querySelector(".bubble pre")?.scrollWidth ?? 0,
      preClient: document.querySelector(".bubble pre")?.clientWidth ?? 0,
    }));
    expect(widths.doc).toBeLessThanOrEqual(WIDTH);
    expect(widths.pre, "the long code line scrolls inside its block").toBeGreaterThan(widths.preClient);

    // The header keeps the back button, the call buttons and the members button on screen, and
    // the composer its Send button.
    await expectWithinViewport(phone, ".conversation .bar .back");
    await expectWithinViewport(phone, ".conversation .bar .call-buttons button:nth-child(1)");
    await expectWithinViewport(phone, ".conversation .bar .call-buttons button:nth-child(2)");
    await expectWithinViewport(phone, ".conversation .bar .members-button");
    await expectWithinViewport(phone, ".composer button[type=submit]");
    await expectWithinViewport(phone, ".composer .attach");

    // Touch targets: the message menu button, the header and composer buttons are at least 44 px.
    for (const selector of [
      ".msg-menu",
      ".conversation .bar .back",
      ".conversation .bar .call-buttons button",
      ".conversation .bar .members-button",
      ".composer button[type=submit]",
      ".composer .attach",
    ]) {
      const size = await phone.locator(selector).first().boundingBox();
      expect(size?.width ?? 0, `${selector} width`).toBeGreaterThanOrEqual(44);
      expect(size?.height ?? 0, `${selector} height`).toBeGreaterThanOrEqual(44);
    }
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-group.png` });

    // The message menu open (Reply, React, Copy text, Forward, Edit, Delete: a plain member of the
    // group cannot pin), within the screen.
    await phone.locator("article.mine .msg-menu").click();
    await expect(phone.locator("article.mine .msg-actions button")).toHaveCount(6);
    for (const b of await phone.locator("article.mine .msg-actions button").all()) {
      expect((await b.boundingBox())?.height ?? 0).toBeGreaterThanOrEqual(44);
    }
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(WIDTH);
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-menu.png` });

    // React: the quick emoji and the field for any emoji fit, 44 px targets; the chip too.
    await phone.locator("article.mine .msg-actions button", { hasText: tag === "ru" ? "Реакция" : "React" }).click();
    await expect(phone.locator(".reaction-choice")).toHaveCount(7);
    for (const b of await phone.locator(".reaction-choice, .reaction-custom button, .reaction-custom input").all()) {
      const size = await b.boundingBox();
      expect(size?.height ?? 0).toBeGreaterThanOrEqual(44);
      expect(size?.width ?? 0).toBeGreaterThanOrEqual(44);
      expect((size?.x ?? 0) + (size?.width ?? 0)).toBeLessThanOrEqual(WIDTH);
    }
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(WIDTH);
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-react.png` });
    await phone.locator(".reaction-choice").last().click();
    const chip = phone.locator(".reactions .reaction");
    await expect(chip).toHaveAttribute("aria-pressed", "true");
    const chipSize = await chip.boundingBox();
    expect(chipSize?.height ?? 0).toBeGreaterThanOrEqual(44);
    expect(chipSize?.width ?? 0).toBeGreaterThanOrEqual(44);
    await expect(owner.locator(".reactions .reaction")).toHaveAttribute("aria-label", "🦊 1: Pavel");
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-reaction.png` });

    // Then the delete confirmation, still within the screen.
    await phone.locator("article.mine .msg-menu").click();
    await phone.locator("article.mine .msg-actions button.danger").click();
    const confirm = phone.getByRole("dialog");
    await expect(confirm).toBeVisible();
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-confirm-delete.png` });
    await confirm.locator("button.danger").click();
    await expect(confirm).toBeHidden();
    await expect(phone.locator("article.mine")).toContainText(tag === "ru" ? "Сообщение удалено" : "Message deleted");

    // The list, and settings with the sign-out warning, fit too.
    await phone.locator(".conversation .bar .back").click();
    await expect(phone.locator(".conv-list")).toBeVisible();
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(WIDTH);
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-list.png` });
    await phone.locator(".sidebar .bar").getByRole("button", { name: tag === "ru" ? "Настройки" : "Settings" }).click();
    await phone.locator(".dialog .row button.danger").click();
    await expect(phone.locator(".dialog .warning").last()).toBeVisible();
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(WIDTH);
    await phone.screenshot({ path: `e2e/artifacts/phone-${tag}-sign-out.png` });
  });
}
