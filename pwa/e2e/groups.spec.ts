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

// Group management (issue 17, item 5): the owner renames the group, makes Bob an admin and
// removes Carol; Bob leaves. Everyone still in it sees the same system lines; Carol keeps the
// history she had, read-only, with "You were removed from this group", until she deletes it.
test("group management: rename, roles, remove and leave, with system lines", async ({ browser }) => {
  const alice = await signUp(browser, `alice-m-${stamp}`, "Alice");
  const bob = await signUp(browser, `bob-m-${stamp}`, "Bob");
  const carol = await signUp(browser, `carol-m-${stamp}`, "Carol");

  await alice.getByRole("button", { name: "New conversation" }).click();
  const dialog = alice.getByRole("dialog", { name: "New conversation" });
  await dialog.getByRole("radio", { name: "Group" }).check();
  await dialog.getByRole("textbox", { name: "Group name" }).fill("Crew");
  await dialog.getByRole("textbox", { name: /Members' usernames/ }).fill(`bob-m-${stamp}, carol-m-${stamp}`);
  await dialog.getByRole("button", { name: "Create group" }).click();
  await expect(alice.getByRole("heading", { name: "Crew" })).toBeVisible();
  await send(alice, "Hi crew");
  for (const page of [bob, carol]) {
    await acceptRequest(page, /Crew/);
    await expect(bubble(page, "Hi crew")).toBeVisible();
  }
  await send(carol, "carol was here");
  await expect(bubble(alice, "carol was here")).toBeVisible();

  const line = (page: typeof alice, text: string) => page.getByRole("log").getByRole("note").filter({ hasText: text });
  const membersDialog = (page: typeof alice) => page.getByRole("dialog", { name: "Members" });

  // Rename: a dialog with its input focused; everyone sees the new title and the line.
  await alice.getByRole("button", { name: "Members (3)" }).click();
  await membersDialog(alice).getByRole("button", { name: "Rename group" }).click();
  const rename = alice.getByRole("dialog", { name: "Rename group" });
  const title = rename.getByRole("textbox", { name: "Group name" });
  await expect(title).toBeFocused();
  await shoot(alice, "group-rename");
  await title.fill("Crew 2026");
  await rename.getByRole("button", { name: "Save" }).click();
  await expect(membersDialog(alice)).toBeVisible();
  await expect(line(alice, "You changed the title to “Crew 2026”")).toBeVisible();
  for (const page of [bob, carol]) {
    await expect(page.getByRole("heading", { name: "Crew 2026" })).toBeVisible();
    await expect(line(page, "Alice changed the title to “Crew 2026”")).toBeVisible();
  }

  // Bob becomes an admin.
  await membersDialog(alice).getByRole("button", { name: "Actions for Bob" }).click();
  await membersDialog(alice).getByRole("button", { name: "Make admin" }).click();
  await expect(membersDialog(alice).getByRole("listitem").filter({ hasText: "Bob" })).toContainText("admin");
  await expect(line(bob, "Alice made you an admin")).toBeVisible();
  await expect(line(carol, "Alice made Bob an admin")).toBeVisible();

  // Carol is removed (after a confirmation).
  await membersDialog(alice).getByRole("button", { name: "Actions for Carol" }).click();
  await expect(membersDialog(alice).getByRole("button", { name: "Make admin" })).toBeVisible();
  await shoot(alice, "group-member-menu");
  await membersDialog(alice).getByRole("button", { name: "Remove from group" }).click();
  await expect(membersDialog(alice).getByText(/Remove Carol from “Crew 2026”\?/)).toBeVisible();
  await membersDialog(alice).getByRole("button", { name: "Remove", exact: true }).click();
  await expect(membersDialog(alice).getByRole("listitem")).toHaveCount(2);
  await membersDialog(alice).getByRole("button", { name: "Close" }).click();
  await expect(line(alice, "You removed Carol")).toBeVisible();
  await expect(line(bob, "Alice removed Carol")).toBeVisible();
  await expect(bob.getByRole("button", { name: "Members (2)" })).toBeVisible();

  // Carol keeps what she had, read-only.
  await expect(carol.getByText("You were removed from this group")).toBeVisible();
  await expect(carol.getByRole("textbox", { name: "Message" })).toHaveCount(0);
  for (const text of ["Hi crew", "carol was here"]) await expect(bubble(carol, text)).toBeVisible();
  // Nothing in it to reply to, edit or delete any more.
  await expect(carol.getByRole("button", { name: "Message actions" })).toHaveCount(0);
  await expect(line(carol, "Alice made Bob an admin")).toBeVisible();
  const carolEntry = carol.getByRole("list", { name: "Conversations" }).getByRole("button", { name: /Crew 2026/ });
  await expect(carolEntry).toContainText("removed");
  await shoot(carol, "group-removed");

  // Bob leaves (after a confirmation): it leaves his list; the others see "Bob left".
  await bob.getByRole("button", { name: "Members (2)" }).click();
  await membersDialog(bob).getByRole("button", { name: "Leave group" }).click();
  await expect(membersDialog(bob).getByText(/Leave “Crew 2026”\?/)).toBeVisible();
  await membersDialog(bob).getByRole("button", { name: "Leave", exact: true }).click();
  await expect(bob.getByRole("list", { name: "Conversations" }).getByRole("button", { name: /Crew 2026/ })).toHaveCount(0);
  await expect(line(alice, "Bob left")).toBeVisible();
  await expect(alice.getByRole("button", { name: "Members (1)" })).toBeVisible();
  // The list's preview is the last line, in words.
  await expect(alice.getByRole("list", { name: "Conversations" }).getByRole("button", { name: /Crew 2026/ })).toContainText("Bob left");
  await shoot(alice, "group-managed");

  // Carol deletes the conversation from her device (after a confirmation).
  await carol.getByRole("button", { name: "Delete from this device" }).click();
  await carol.getByRole("button", { name: "Delete", exact: true }).click();
  await expect(carolEntry).toHaveCount(0);
});
