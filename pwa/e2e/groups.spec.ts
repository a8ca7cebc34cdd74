// groups.spec.ts — a group made with members by username, its member list, sender names, and
// reply / edit / delete in the conversation view, seen by the other members.
import { acceptRequest, bubble, expect, send, shoot, signUp, stamp, test } from "./helpers";

test("a group: members, reply, edit and delete", async ({ browser }) => {
  const alice = await signUp(browser, `alice-g-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-g-${stamp}`, "Bob");
  const carol = await signUp(browser, `carol-g-${stamp}`, "Carol");

  await alice.getByRole("button", { name: "New conversation" }).click();
  const dialog = alice.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("radio", { name: "Group" }).check();
  await dialog.getByRole("textbox", { name: "Group name" }).fill("Trip");
  await dialog.getByRole("textbox", { name: /Members' usernames/ }).fill(`bob-g-${stamp}, carol-g-${stamp}`);
  await dialog.getByRole("button", { name: "Create group" }).click();
  await expect(alice.getByRole("heading", { name: "Trip" })).toBeVisible();

  await alice.getByRole("button", { name: "Members (3)" }).click();
  const members = alice.getByRole("dialog", { name: "Members" }).getByRole("list", { name: "Members" });
  await expect(members.getByRole("listitem")).toHaveCount(3);
  await expect(members.getByRole("listitem").filter({ hasText: "Bob" })).toContainText(`@bob-g-${stamp}`);
  await expect(members.getByRole("listitem").filter({ hasText: "You" })).toContainText("owner");
  await alice.getByRole("dialog", { name: "Members" }).getByRole("button", { name: "Close" }).click();

  await send(alice, "Where do we go?");
  for (const page of [bob, carol]) {
    // Alice added them: a request each accepts.
    await acceptRequest(page, /Trip/);
    await expect(bubble(page, "Where do we go?").locator(".sender")).toHaveText("Alice");
  }

  // Bob replies to it; everyone sees the quote.
  await bubble(bob, "Where do we go?").getByRole("button", { name: "Message actions" }).click();
  await bubble(bob, "Where do we go?").getByRole("button", { name: "Reply" }).click();
  await expect(bob.getByText("Replying to Alice")).toBeVisible();
  await send(bob, "To the sea");
  for (const page of [alice, carol]) {
    await expect(bubble(page, "To the sea").locator("blockquote")).toContainText("Where do we go?");
  }

  // Alice edits her question; the others see the new text, marked edited.
  const question = alice.locator("article.mine").filter({ hasText: "Where do we go?" });
  await question.getByRole("button", { name: "Message actions" }).click();
  await question.getByRole("button", { name: "Edit" }).click();
  const box = alice.getByRole("textbox", { name: "Message" });
  await expect(box).toHaveValue("Where do we go?");
  await box.fill("Where do we go this summer?");
  await box.press("Enter");
  for (const page of [bob, carol]) {
    const edited = page.locator("article").filter({ hasText: "Where do we go this summer?" }).first();
    await expect(edited).toContainText("edited");
  }
  await shoot(alice, "group");

  // Carol deletes her own message; the others see it deleted.
  await send(carol, "oops, wrong chat");
  await expect(bubble(alice, "oops, wrong chat")).toBeVisible();
  const oops = carol.locator("article.mine").filter({ hasText: "oops, wrong chat" });
  await oops.getByRole("button", { name: "Message actions" }).click();
  await oops.getByRole("button", { name: "Delete" }).click();
  // Deleting asks first; Cancel keeps the message, Delete removes it for everyone.
  const confirm = carol.getByRole("dialog", { name: "Delete this message?" });
  await expect(confirm).toContainText("deleted for everyone");
  await expect(confirm.getByRole("button", { name: "Cancel" })).toBeFocused();
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await expect(confirm).toBeHidden();
  await expect(bubble(alice, "oops, wrong chat")).toBeVisible();
  await oops.getByRole("button", { name: "Message actions" }).click();
  await oops.getByRole("button", { name: "Delete" }).click();
  await confirm.getByRole("button", { name: "Delete" }).click();
  for (const page of [alice, bob, carol]) {
    await expect(bubble(page, "oops, wrong chat")).toHaveCount(0);
    await expect(page.getByRole("log").getByText("Message deleted")).toBeVisible();
  }
});
