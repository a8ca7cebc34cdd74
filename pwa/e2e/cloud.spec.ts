// cloud.spec.ts — issue 20 in the browser: a cloud chat made on purpose (the UI says what the
// server can read), reactions, a mention the other side sees as a badge, a pin, search in cloud
// and in E2EE chats, a disappearing-message timer watched to the end, and a forwarded message
// (an E2EE message forwarded into the cloud chat, re-sent as new content).
import type { Page } from "@playwright/test";
import { acceptRequest, bubble, expect, send, shoot, signUp, stamp, test } from "./helpers";

/** The open conversation's header (a <header> inside <main>: no banner landmark). */
const head = (page: Page) => page.locator("section.conversation > header");
const conversationRow = (page: Page, kind: RegExp) => page.getByRole("list", { name: "Conversations" }).getByRole("button", { name: kind });

async function newDirect(page: Page, username: string, kind: "End-to-end encrypted (default)" | "Cloud"): Promise<void> {
  await page.getByRole("button", { name: "New conversation" }).click();
  const dialog = page.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("textbox", { name: "Their username" }).fill(username);
  // Each kind says what the server can read, before it is chosen.
  await expect(dialog).toContainText("its admin can read them");
  await expect(dialog).toContainText("the server cannot read them");
  await dialog.getByRole("radio", { name: new RegExp(`^${kind.replace(/[()]/g, "\\$&")}`) }).check();
  await dialog.getByRole("button", { name: "Start conversation" }).click();
  await expect(dialog).toBeHidden();
}

async function menu(page: Page, text: string, action: string): Promise<void> {
  const b = bubble(page, text).last();
  await b.getByRole("button", { name: "Message actions" }).click();
  await b.getByRole("button", { name: action, exact: true }).click();
}

async function search(page: Page, query: string) {
  await page.keyboard.press("Control+f");
  const dialog = page.getByRole("dialog", { name: "Search messages" });
  await dialog.getByRole("searchbox", { name: "Search" }).fill(query);
  await dialog.getByRole("combobox", { name: "Where" }).selectOption({ label: "All conversations" });
  await dialog.getByRole("button", { name: "Search", exact: true }).click();
  return dialog;
}

test("cloud chats: kind shown, reactions, mentions, pins, search, timer, forwarding", async ({ browser }) => {
  test.setTimeout(240_000);
  const alice = await signUp(browser, `alice-cl-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-cl-${stamp}`, "Bob");

  // A cloud chat, chosen on purpose; its header says so, with what the server can read.
  await newDirect(alice, `bob-cl-${stamp}`, "Cloud");
  const mark = head(alice).getByRole("button", { name: /Cloud chat/ });
  await expect(mark).toBeVisible();
  await mark.click();
  await expect(alice.getByRole("note").filter({ hasText: "The server stores these messages unencrypted" })).toBeVisible();
  await send(alice, "Hello cloud world");
  await acceptRequest(bob, /Alice/);
  await expect(bubble(bob, "Hello cloud world")).toBeVisible();
  await expect(head(bob).getByRole("button", { name: /Cloud chat/ })).toBeVisible();

  // A reaction: kept by the server, seen by both, who reacted on hover.
  await menu(bob, "Hello cloud world", "React");
  await bob.getByRole("button", { name: "React with 👍" }).click();
  for (const page of [alice, bob]) {
    await expect(page.getByRole("group", { name: "Reactions" }).getByRole("button", { name: /👍/ })).toContainText("1");
  }
  await expect(alice.getByRole("group", { name: "Reactions" }).getByRole("button", { name: /👍/ })).toHaveAttribute("title", "Bob");

  // Alice also opens the end-to-end encrypted chat with Bob (a pair may have one of each).
  await newDirect(alice, `bob-cl-${stamp}`, "End-to-end encrypted (default)");
  await expect(head(alice).getByRole("button", { name: /End-to-end encrypted/ })).toBeVisible();
  await send(alice, "secret picnic plans");
  // Bob accepted Alice once already: this one may or may not come as a request.
  const requests = bob.getByRole("button", { name: /^Requests \(\d+\)$/ });
  await expect(requests.or(conversationRow(bob, /End-to-end encrypted/))).toBeVisible();
  if (await requests.isVisible()) await acceptRequest(bob, /Alice/);
  else await conversationRow(bob, /End-to-end encrypted/).click();
  await expect(bubble(bob, "secret picnic plans")).toBeVisible();

  // A mention: Bob picks Alice from the @ suggestions in the cloud chat; Alice, in the other
  // chat, sees the cloud chat's "@" badge.
  await conversationRow(bob, /Cloud chat/).click();
  const box = bob.getByRole("textbox", { name: "Message" });
  await box.fill("@Al");
  await bob.getByRole("option", { name: "Mention Alice" }).click();
  await expect(box).toHaveValue("@Alice ");
  await box.pressSequentially("look at this");
  await box.press("Enter");
  await expect(bubble(bob, "look at this").locator(".mention")).toHaveText("@Alice");
  await expect(conversationRow(alice, /Cloud chat/).getByLabel(/1 mentions of you/)).toBeVisible();
  await conversationRow(alice, /Cloud chat/).click();
  await expect(bubble(alice, "look at this").locator(".mention")).toHaveText("@Alice");
  await expect(conversationRow(alice, /Cloud chat/).getByLabel(/mentions of you/)).toHaveCount(0);

  // A pin: both see the pinned bar; its list goes to the message.
  await menu(alice, "Hello cloud world", "Pin");
  for (const page of [alice, bob]) {
    await expect(page.getByRole("button", { name: /^Pinned messages \(1\): Hello cloud world/ })).toBeVisible();
  }
  await bob.getByRole("button", { name: /^Pinned messages \(1\)/ }).click();
  await bob.getByRole("dialog", { name: "Pinned messages" }).getByRole("button", { name: /Go to message/ }).click();
  await expect(bubble(bob, "Hello cloud world")).toBeInViewport();
  await shoot(alice, "cloud-chat");

  // Search: the cloud chat on the server, the E2EE one on this device only.
  let results = await search(alice, "world");
  await expect(results.getByRole("list", { name: "Search messages" }).locator("mark").first()).toHaveText(/world/i);
  await results.getByRole("button", { name: /Hello cloud world/ }).click();
  await expect(bubble(alice, "Hello cloud world")).toBeVisible();
  results = await search(bob, "picnic");
  const hit = results.getByRole("button", { name: /secret picnic plans/ });
  await expect(hit).toContainText("On this device");
  await shoot(bob, "cloud-search");
  await hit.click();
  await expect(head(bob).getByRole("button", { name: /End-to-end encrypted/ })).toBeVisible();

  // Forwarding: Bob forwards Alice's E2EE message into the cloud chat (new cloud content).
  await menu(bob, "secret picnic plans", "Forward");
  const forward = bob.getByRole("dialog", { name: "Forward to…" });
  await expect(forward).toContainText("the server will store the forwarded text unencrypted");
  await forward.getByRole("button", { name: /Cloud chat/ }).click();
  await expect(bubble(bob, "secret picnic plans")).toContainText("Forwarded from Alice");
  await conversationRow(alice, /Cloud chat/).click();
  // Alice wrote the original: to her it is "Forwarded from You".
  await expect(bubble(alice, "secret picnic plans")).toContainText("Forwarded from You");

  // Disappearing messages: Alice sets 30 seconds; both see the system line and the timer; a
  // message sent then disappears from both after it.
  await alice.getByRole("button", { name: "About this conversation" }).click();
  const about = alice.getByRole("dialog", { name: "About this conversation" });
  await about.getByRole("radio", { name: "Custom" }).check();
  await about.getByRole("spinbutton", { name: "Disappear after" }).fill("30");
  await about.getByRole("combobox", { name: "Unit" }).selectOption("seconds");
  await about.getByRole("button", { name: "Save" }).click();
  await expect(alice.getByRole("log").getByText("You set disappearing messages to 30 seconds")).toBeVisible();
  await expect(bob.getByRole("log").getByText("Alice set disappearing messages to 30 seconds")).toBeVisible();
  await expect(head(bob)).toContainText("30 seconds");
  await send(alice, "this will vanish");
  await expect(bubble(bob, "this will vanish")).toBeVisible();
  await shoot(bob, "cloud-timer");
  for (const page of [alice, bob]) await expect(bubble(page, "this will vanish")).toHaveCount(0, { timeout: 60_000 });
  await expect(bubble(alice, "Hello cloud world")).toBeVisible();
});
