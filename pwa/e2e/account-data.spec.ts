// account-data.spec.ts — Settings → Your data, search filters and forwarded files, in the browser
// against the real server: a person with a cloud chat downloads their data (the JSON file holds
// the cloud message) and deletes the account (a wrong password first: refused, still signed in;
// then the sign-in screen says so, signing in again fails, and the other person's chat no
// longer has them in it); a search narrowed by who wrote it and by a range of days, in a cloud chat (server) and
// an E2EE one (this device's index) alike; and an image forwarded into a conversation whose
// members could not download the original (uploaded again under a new key), opened there.
import { readFile } from "node:fs/promises";
import type { Page } from "@playwright/test";
import { acceptRequest, bubble, expect, password, send, shoot, signUp, stamp, test } from "./helpers";

const conversationRow = (page: Page, kind: RegExp) => page.getByRole("list", { name: "Conversations" }).getByRole("button", { name: kind });

async function newDirect(page: Page, username: string, kind: "End-to-end encrypted (default)" | "Cloud"): Promise<void> {
  await page.getByRole("button", { name: "New conversation" }).click();
  const dialog = page.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("textbox", { name: "Their username" }).fill(username);
  await dialog.getByRole("radio", { name: new RegExp(`^${kind.replace(/[()]/g, "\\$&")}`) }).check();
  await dialog.getByRole("button", { name: "Start conversation" }).click();
  await expect(dialog).toBeHidden();
}

/** Opens the conversation from `from` of `kind`: a request the first time, a row after. */
async function openFrom(page: Page, from: RegExp, kind: RegExp): Promise<void> {
  const requests = page.getByRole("button", { name: /^Requests \(\d+\)$/ });
  await expect(requests.or(conversationRow(page, kind))).toBeVisible();
  if (await requests.isVisible()) await acceptRequest(page, from);
  else await conversationRow(page, kind).click();
}

/** Today and the days around it, as the browser's date inputs write them (local time). */
async function days(page: Page): Promise<{ yesterday: string; today: string; tomorrow: string }> {
  return page.evaluate(() => {
    const day = (plus: number) => {
      const d = new Date();
      d.setDate(d.getDate() + plus);
      return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    };
    return { yesterday: day(-1), today: day(0), tomorrow: day(1) };
  });
}

async function openSettings(page: Page) {
  await page.getByRole("button", { name: "Settings" }).click();
  return page.getByRole("dialog", { name: "Settings" });
}

test("your data: the download holds the cloud chat; deleting the account asks the password and signs out", async ({ browser }) => {
  test.setTimeout(180_000);
  const alice = await signUp(browser, `alice-data-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-data-${stamp}`, "Bob");
  await newDirect(alice, `bob-data-${stamp}`, "Cloud");
  const said = `Export me please ${stamp} — привет 👋`;
  await send(alice, said);
  await openFrom(bob, /Alice/, /Cloud chat/);
  await expect(bubble(bob, said)).toBeVisible();

  // Download my data: a JSON file named after her and today, holding the cloud message.
  const settings = await openSettings(alice);
  const section = settings.getByRole("region", { name: "Your data" });
  await expect(section).toContainText("End-to-end encrypted messages are not in it");
  const download = alice.waitForEvent("download");
  await section.getByRole("button", { name: "Download my data" }).click();
  const saved = await download;
  const { today } = await days(alice);
  expect(saved.suggestedFilename()).toBe(`kitsulan-alice-data-${stamp}-${today}.json`);
  const text = await readFile(await saved.path(), "utf8");
  const exported: unknown = JSON.parse(text);
  expect(JSON.stringify(exported)).toContain(said);
  expect(text).toContain(`alice-data-${stamp}`);
  await expect(section.getByRole("status")).toHaveText("Downloaded.");

  // Delete account: the dialog says what happens; a wrong password is refused, nothing else.
  await section.getByRole("button", { name: "Delete account" }).click();
  const dialog = alice.getByRole("dialog", { name: "Delete your account?" });
  await expect(dialog).toContainText("You leave every conversation");
  await expect(dialog).toContainText("Every device of yours is signed out");
  await expect(dialog).toContainText(`The username @alice-data-${stamp} becomes free`);
  await expect(dialog).toContainText("You can download your data first");
  const confirm = dialog.getByRole("button", { name: "Delete account" });
  await dialog.getByLabel("Current password").fill("not the password");
  await expect(confirm).toBeDisabled(); // until the checkbox says it is understood
  await dialog.getByRole("checkbox", { name: "I understand that my account is deleted for good" }).check();
  await shoot(alice, "account-delete-dialog");
  await confirm.click();
  await expect(dialog.getByRole("alert")).toHaveText("The current password is wrong.");
  await expect(dialog).toBeVisible();
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await settings.getByRole("button", { name: "Close settings" }).click();
  await send(alice, "still here");
  await expect(bubble(bob, "still here")).toBeVisible();

  // The right password: the account goes, this device lands on sign-in with the notice.
  await openSettings(alice);
  await alice.getByRole("region", { name: "Your data" }).getByRole("button", { name: "Delete account" }).click();
  await dialog.getByLabel("Current password").fill(password);
  await dialog.getByRole("checkbox", { name: "I understand that my account is deleted for good" }).check();
  await dialog.getByRole("button", { name: "Delete account" }).click();
  await expect(alice.getByRole("tab", { name: "Sign in" })).toBeVisible();
  await expect(alice.getByText("Your account was deleted")).toBeVisible();

  // Signing in again fails; Bob sees her leave the chat.
  await alice.getByRole("tab", { name: "Sign in" }).click();
  await alice.getByLabel("Username").fill(`alice-data-${stamp}`);
  await alice.getByLabel("Password").fill(password);
  await alice.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(alice.getByRole("alert").filter({ hasText: "Wrong username or password." })).toBeVisible();
  await expect(alice.getByRole("button", { name: "New conversation" })).toHaveCount(0);
  // Bob's chat no longer has her in it: it is not "Alice" any more, and his messages stay.
  await expect(bob.getByRole("heading", { name: "Direct conversation" })).toBeVisible();
  await expect(bob.getByRole("heading", { name: "Alice" })).toHaveCount(0);
});

test("search narrowed by who wrote it and by days, in cloud and E2EE chats alike", async ({ browser }) => {
  test.setTimeout(180_000);
  const alice = await signUp(browser, `alice-sf-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-sf-${stamp}`, "Bob");

  // A cloud chat and an E2EE one, each with a "budget" message from both of them.
  await newDirect(alice, `bob-sf-${stamp}`, "Cloud");
  await send(alice, "cloud budget from alice");
  await openFrom(bob, /Alice/, /Cloud chat/);
  await send(bob, "cloud budget from bob");
  await expect(bubble(alice, "cloud budget from bob")).toBeVisible();
  await newDirect(alice, `bob-sf-${stamp}`, "End-to-end encrypted (default)");
  await send(alice, "secret budget from alice");
  await openFrom(bob, /Alice/, /End-to-end encrypted/);
  await expect(bubble(bob, "secret budget from alice")).toBeVisible();
  await send(bob, "secret budget from bob");
  await expect(bubble(alice, "secret budget from bob")).toBeVisible();

  await alice.keyboard.press("Control+f");
  const dialog = alice.getByRole("dialog", { name: "Search messages" });
  await dialog.getByRole("combobox", { name: "Where" }).selectOption({ label: "All conversations" });
  const results = dialog.getByRole("list", { name: "Search messages" }).getByRole("button");
  const go = () => dialog.getByRole("button", { name: "Search", exact: true }).click();
  await dialog.getByRole("searchbox", { name: "Search" }).fill("budget");
  await go();
  await expect(results).toHaveCount(4);

  // Only Bob: his cloud message (the server) and his E2EE one (this device's index).
  await dialog.getByRole("combobox", { name: "Who wrote it" }).selectOption({ label: "Bob" });
  await go();
  await expect(results).toHaveCount(2);
  await expect(results.filter({ hasText: "cloud budget from bob" })).toHaveCount(1);
  await expect(results.filter({ hasText: "secret budget from bob" })).toContainText("On this device");

  // Days: from tomorrow finds nothing, up to yesterday nothing, today (that day included) both.
  const { yesterday, today, tomorrow } = await days(alice);
  const from = dialog.getByLabel("From", { exact: true });
  const to = dialog.getByLabel("To (that day included)");
  await from.fill(tomorrow);
  await go();
  await expect(dialog.getByText("Nothing found.")).toBeVisible();
  await from.fill("");
  await to.fill(yesterday);
  await go();
  await expect(dialog.getByText("Nothing found.")).toBeVisible();
  await from.fill(today);
  await to.fill(today);
  await go();
  await expect(results).toHaveCount(2);
  await shoot(alice, "search-filters");

  // Clear takes the query and every filter with it.
  await dialog.getByRole("button", { name: "Clear" }).click();
  await expect(dialog.getByRole("searchbox", { name: "Search" })).toHaveValue("");
  await expect(dialog.getByRole("combobox", { name: "Who wrote it" })).toHaveValue("");
  await expect(from).toHaveValue("");
  await expect(to).toHaveValue("");
  await expect(results).toHaveCount(0);
});

test("an image forwarded into another conversation is uploaded again there and opens", async ({ browser }) => {
  test.setTimeout(180_000);
  const alice = await signUp(browser, `alice-fwf-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-fwf-${stamp}`, "Bob");
  const carol = await signUp(browser, `carol-fwf-${stamp}`, "Carol");

  // Bob sends Alice a picture in their E2EE chat (once she accepted it: a request takes no files).
  await newDirect(bob, `alice-fwf-${stamp}`, "End-to-end encrypted (default)");
  await send(bob, "hi Alice");
  await openFrom(alice, /Bob/, /End-to-end encrypted/);
  await expect(bubble(alice, "hi Alice")).toBeVisible();
  const png = await bob.evaluate(async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 300;
    canvas.height = 200;
    const ctx = canvas.getContext("2d");
    if (!ctx) throw new Error("no canvas");
    ctx.fillStyle = "#2a9d8f";
    ctx.fillRect(0, 0, 300, 200);
    const blob = await new Promise<Blob>((r, j) => canvas.toBlob((b) => (b ? r(b) : j(new Error("toBlob"))), "image/png"));
    return Array.from(new Uint8Array(await blob.arrayBuffer()));
  });
  const chooser = bob.waitForEvent("filechooser");
  await bob.getByRole("button", { name: "Attach files" }).click();
  await (await chooser).setFiles({ name: "lagoon.png", mimeType: "image/png", buffer: Buffer.from(png) });
  await bob.getByRole("dialog", { name: "Send files" }).getByRole("button", { name: "Send" }).click();
  const picture = alice.getByRole("log").locator("article").filter({ has: alice.getByRole("button", { name: "Open image lagoon.png" }) });
  await expect(picture.getByRole("button", { name: "Open image lagoon.png" }).locator("img")).toBeVisible();

  // Alice has a cloud chat with Carol, who was never in Bob's chat.
  await newDirect(alice, `carol-fwf-${stamp}`, "Cloud");
  await send(alice, "look what Bob sent");
  await openFrom(carol, /Alice/, /Cloud chat/);

  // Alice forwards the picture there: the picker says the server can open it.
  await conversationRow(alice, /^End-to-end encrypted Bob/).click();
  await picture.getByRole("button", { name: "Message actions" }).click();
  await picture.getByRole("button", { name: "Forward", exact: true }).click();
  const forward = alice.getByRole("dialog", { name: "Forward to…" });
  await expect(forward).toContainText("the server will be able to open the forwarded file");
  await shoot(alice, "forward-file");
  await forward.getByRole("button", { name: /Carol/ }).click();
  await expect(forward).toBeHidden();

  // Carol sees it forwarded from Bob, and opens the full image (decrypted with the new key).
  const arrived = carol.getByRole("log").locator("article").filter({ has: carol.getByRole("button", { name: "Open image lagoon.png" }) });
  await expect(arrived).toContainText("Forwarded from Bob");
  await expect(arrived.getByRole("button", { name: "Open image lagoon.png" }).locator("img")).toBeVisible();
  await arrived.getByRole("button", { name: "Open image lagoon.png" }).click();
  const full = carol.getByRole("dialog", { name: "lagoon.png" }).getByRole("img", { name: "lagoon.png" });
  await expect(full).toBeVisible();
  await expect.poll(() => full.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(300);
});

test("in Russian on a phone: Your data, the deletion dialog, the search filters", async ({ browser }) => {
  const page = await signUp(browser, `ru-data-${stamp}`, "Аня");
  const settings = await openSettings(page);
  await settings.getByRole("combobox", { name: "Language" }).selectOption("ru");
  const section = page.getByRole("region", { name: "Ваши данные" });
  await expect(section).toContainText("Сообщений со сквозным шифрованием в нём нет");
  await page.setViewportSize({ width: 360, height: 740 });
  await section.scrollIntoViewIfNeeded();
  await page.screenshot({ path: "e2e/artifacts/your-data-ru-360.png" });
  await section.getByRole("button", { name: "Удалить аккаунт" }).click();
  const dialog = page.getByRole("dialog", { name: "Удалить аккаунт?" });
  await expect(dialog).toContainText("Вы выходите из всех разговоров");
  // Keyboard: the password field has the focus; Tab reaches the checkbox, then Cancel.
  await expect(dialog.getByLabel("Текущий пароль")).toBeFocused();
  await page.keyboard.press("Tab");
  await expect(dialog.getByRole("checkbox", { name: "Я понимаю, что аккаунт удаляется навсегда" })).toBeFocused();
  await page.screenshot({ path: "e2e/artifacts/account-delete-ru-360.png" });
  await page.keyboard.press("Escape");
  await expect(dialog).toBeHidden();
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+f");
  const search = page.getByRole("dialog", { name: "Поиск по сообщениям" });
  await expect(search.getByRole("combobox", { name: "Кто написал" })).toHaveValue("");
  await expect(search.getByRole("group", { name: "Когда" })).toBeVisible();
  await page.screenshot({ path: "e2e/artifacts/search-filters-ru-360.png" });
});
