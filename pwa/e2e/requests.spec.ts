// requests.spec.ts — consent before contact, as a person sees it: a stranger's message arrives
// as a request (not a chat, no badge, no banner); opened, it shows who it is and the messages
// with Accept / Decline / Block; accepting makes it a chat; a blocked stranger's later messages
// never show; the blocked list in Settings unblocks.
import type { Page } from "@playwright/test";
import { bubble, expect, openDirect, send, shoot, signUp, stamp, test } from "./helpers";

test("a stranger's message is a request: accept, and block another", async ({ browser }) => {
  const alice = await signUp(browser, `alice-rq-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-rq-${stamp}`, "Bob");
  const carol = await signUp(browser, `carol-rq-${stamp}`, "Carol");

  // Bob, a stranger, writes to Alice: she sees a request, not a chat.
  await openDirect(bob, `alice-rq-${stamp}`);
  await send(bob, "Hi Alice, we met at the party");
  await expect(bubble(bob, "we met at the party")).toBeVisible();
  const requests = alice.getByRole("button", { name: "Requests (1)" });
  await expect(requests).toBeVisible();
  const sidebar = alice.getByRole("complementary");
  await expect(sidebar.getByRole("list", { name: "Conversations" })).toHaveCount(0);
  await expect(alice.getByRole("status").filter({ hasText: "New message in" })).toHaveCount(0);
  await requests.click();
  const list = alice.getByRole("list", { name: "Message requests" });
  const entry = list.getByRole("button", { name: /Bob/ });
  await expect(entry).toContainText("Wants to message you");
  await expect(entry.getByLabel(/unread/)).toHaveCount(0);
  await shoot(alice, "requests-list");

  // Opened: who it is, the message, and the three choices; no composer yet.
  await entry.click();
  await expect(alice.getByRole("heading", { name: "Bob" })).toBeVisible();
  await expect(bubble(alice, "we met at the party")).toBeVisible();
  const banner = alice.getByRole("region", { name: "Message requests" });
  await expect(banner).toContainText("Bob wants to message you");
  await expect(banner).toContainText(`@bob-rq-${stamp}`);
  await expect(banner.getByRole("button", { name: "Accept the request from Bob" })).toBeVisible();
  await expect(banner.getByRole("button", { name: "Decline the request from Bob" })).toBeVisible();
  await expect(banner.getByRole("button", { name: "Block Bob" })).toBeVisible();
  await expect(alice.getByRole("textbox", { name: "Message" })).toHaveCount(0);
  await expect(alice.getByRole("button", { name: "Video call" })).toHaveCount(0);
  await shoot(alice, "request-open");

  // Accept: a chat now; they talk, and Bob sees that Alice read him.
  await banner.getByRole("button", { name: "Accept the request from Bob" }).click();
  await expect(alice.getByRole("textbox", { name: "Message" })).toBeVisible();
  await expect(sidebar.getByRole("list", { name: "Conversations" }).getByRole("button", { name: /Bob/ })).toBeVisible();
  await expect(alice.getByRole("button", { name: /^Requests/ })).toHaveCount(0);
  await send(alice, "Hi Bob! Nice to hear from you");
  await expect(bubble(bob, "Nice to hear from you")).toBeVisible();
  await expect(bubble(bob, "we met at the party").getByRole("img", { name: "Read" })).toBeVisible();

  // Carol writes; Alice blocks her from the request.
  await openDirect(carol, `alice-rq-${stamp}`);
  await send(carol, "Buy cheap watches");
  await expect(bubble(carol, "Buy cheap watches")).toBeVisible();
  await openRequests(alice);
  await alice.getByRole("list", { name: "Message requests" }).getByRole("button", { name: /Carol/ }).click();
  await expect(bubble(alice, "Buy cheap watches")).toBeVisible();
  await alice.getByRole("button", { name: "Block Carol" }).click();
  await expect(alice.getByRole("button", { name: /^Requests/ })).toHaveCount(0);
  await expect(sidebar.getByRole("button", { name: /Carol/ })).toHaveCount(0);

  // Carol's later message "goes" (she is not told) but never shows at Alice.
  await send(carol, "Are you there?");
  await expect(bubble(carol, "Are you there?")).toBeVisible();
  await send(bob, "See you tomorrow");
  await sidebar.getByRole("button", { name: /Bob/ }).click();
  await expect(bubble(alice, "See you tomorrow")).toBeVisible();
  await expect(sidebar.getByRole("button", { name: /Carol/ })).toHaveCount(0);
  await expect(alice.getByRole("button", { name: /^Requests/ })).toHaveCount(0);
  await expect(alice.getByText("Are you there?")).toHaveCount(0);

  // The blocked list in Settings: Carol, with Unblock.
  await alice.getByRole("button", { name: "Settings" }).click();
  const settings = alice.getByRole("dialog", { name: "Settings" });
  const blocked = settings.getByRole("region", { name: "Blocked accounts" });
  await expect(blocked.getByRole("listitem")).toHaveText([/Carol/]);
  await blocked.scrollIntoViewIfNeeded();
  await shoot(alice, "blocked-accounts");
  await blocked.getByRole("button", { name: "Unblock Carol" }).click();
  await expect(blocked).toContainText("You have not blocked anyone.");
  await settings.getByRole("button", { name: "Close settings" }).click();

  // Unblocked, Carol can ask again; Alice declines this time: it is gone from her list.
  await send(carol, "Sorry about that");
  await openDirect(carol, `alice-rq-${stamp}`);
  await openRequests(alice);
  await alice.getByRole("list", { name: "Message requests" }).getByRole("button", { name: /Carol/ }).click();
  await alice.getByRole("button", { name: "Decline the request from Carol" }).click();
  await expect(alice.getByRole("button", { name: /^Requests/ })).toHaveCount(0);
  await expect(sidebar.getByRole("button", { name: /Carol/ })).toHaveCount(0);

  // Russian texts for the same screen.
  await openDirect(carol, `alice-rq-${stamp}`);
  await alice.getByRole("button", { name: "Settings" }).click();
  await settings.getByRole("combobox", { name: "Language" }).selectOption("ru");
  await alice.getByRole("dialog", { name: "Настройки" }).getByRole("button", { name: "Закрыть настройки" }).click();
  await alice.getByRole("button", { name: "Запросы (1)" }).click();
  await alice.getByRole("list", { name: "Запросы на переписку" }).getByRole("button", { name: /Carol/ }).click();
  await expect(alice.getByRole("button", { name: "Принять запрос от Carol" })).toBeVisible();
  await expect(alice.getByRole("button", { name: "Заблокировать Carol" })).toBeVisible();
  await shoot(alice, "request-open-ru");
});

/** Opens the requests list (from the chats). */
async function openRequests(page: Page): Promise<void> {
  await page.getByRole("button", { name: /^Requests \(\d+\)$/ }).click();
}
