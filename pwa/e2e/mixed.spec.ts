// mixed.spec.ts — one group with a browser (the crypto crate as WebAssembly) and Rust clients
// (the same crate natively, e2e-tests' chat_peer): messages both ways, a member removed (the
// session rotates and the removed one cannot read on), and a new Rust device added that reads
// what is sent after it came; then the typed content both ways: edits, files (byte for byte) and
// reactions both ways (the browser shows the Rust one as a chip; the Rust devices read the
// browser's, and its taking back). Every message decrypts on every side that should read it.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { expect } from "@playwright/test";
import { ChatPeer } from "./peer";
import { bubble, expectNoUndecryptable, password, send, signUp, stamp, test } from "./helpers";

test("a browser and Rust clients in one E2EE group", async ({ browser, baseURL }) => {
  const peer = new ChatPeer();
  try {
    const bob = `bob-mx-${stamp}`;
    const carol = `carol-mx-${stamp}`;
    await peer.run({ cmd: "sign_up", as: "bob", url: baseURL, username: bob, password });
    await peer.run({ cmd: "sign_up", as: "carol", url: baseURL, username: carol, password });
    const alice = await signUp(browser, `alice-mx-${stamp}`, "Alice");

    await alice.getByRole("button", { name: "New conversation" }).click();
    const dialog = alice.getByRole("dialog", { name: "New conversation" });
    await dialog.getByRole("radio", { name: "Group" }).check();
    await dialog.getByRole("textbox", { name: "Group name" }).fill("Mixed");
    await dialog.getByRole("textbox", { name: /Members' usernames/ }).fill(`${bob}, ${carol}`);
    await dialog.getByRole("button", { name: "Create group" }).click();
    await expect(alice.getByRole("heading", { name: "Mixed" })).toBeVisible();
    await send(alice, "Hello from the browser");

    const group = await peer.conversationTitled("bob", "Mixed");
    for (const as of ["bob", "carol"]) {
      await peer.run({ cmd: "accept", as, conversation_id: group });
      await peer.waitFor(as, group, (ms) => ms.some((m) => m.text === "Hello from the browser"));
    }

    // Rust to browser.
    await peer.run({ cmd: "send", as: "bob", conversation_id: group, text: "Hello from Rust" });
    await peer.run({ cmd: "send", as: "carol", conversation_id: group, text: "Carol here" });
    await expect(bubble(alice, "Hello from Rust")).toBeVisible();
    await expect(bubble(alice, "Carol here")).toBeVisible();
    const before = await peer.history("bob", group);
    const aliceSession = before.find((m) => m.text === "Hello from the browser")!.session_id;
    const aliceId = before.find((m) => m.text === "Hello from the browser")!.sender_account_id;

    // Alice removes Carol: her next message is in a new session, which Carol never gets.
    await alice.getByRole("button", { name: "Members (3)" }).click();
    const members = alice.getByRole("dialog", { name: "Members" });
    await members.getByRole("button", { name: `Actions for ${carol}` }).click();
    await members.getByRole("button", { name: "Remove from group" }).click();
    await members.getByRole("button", { name: "Remove", exact: true }).click();
    await expect(members.getByRole("listitem")).toHaveCount(2);
    await members.getByRole("button", { name: "Close" }).click();
    await send(alice, "Only Bob reads this");
    const after = await peer.waitFor("bob", group, (ms) => ms.some((m) => m.text === "Only Bob reads this"));
    expect(after.find((m) => m.text === "Only Bob reads this")!.session_id).not.toBe(aliceSession);
    // The server no longer lists the group to Carol; and given the ciphertext, she cannot read it.
    await expect(peer.history("carol", group)).rejects.toThrow(/no such conversation/);
    const secret = after.find((m) => m.text === "Only Bob reads this")!.id;
    const carolTries = await peer.run<{ text?: string; undecryptable?: string }>({
      cmd: "read_as",
      as: "carol",
      via: "bob",
      conversation_id: group,
      message_id: secret,
    });
    expect(carolTries.text).toBeUndefined();
    // The Machine's reason: no key for that session on her device (she never got the new one).
    expect(carolTries.undecryptable).toMatch(/missing_key/);

    // Bob adds a second Rust device: it reads what Alice sends after it came, and Alice reads it.
    await peer.run({ cmd: "add_device", as: "bob2", of: "bob", password });
    await send(alice, "Welcome, new device");
    await peer.waitFor("bob2", group, (ms) => ms.some((m) => m.text === "Welcome, new device"));
    await peer.run({ cmd: "send", as: "bob2", conversation_id: group, text: "Bob's second device" });
    await expect(bubble(alice, "Bob's second device")).toBeVisible();
    await peer.waitFor("bob", group, (ms) => ms.some((m) => m.text === "Bob's second device"));

    // Edits both ways: each is bound to the message it edits.
    const fromRust = before.find((m) => m.text === "Hello from Rust")!.id;
    await peer.run({ cmd: "edit", as: "bob", conversation_id: group, message_id: fromRust, text: "Hello from Rust, edited" });
    await expect(bubble(alice, "Hello from Rust, edited")).toContainText("edited");
    const welcome = alice.locator("article.mine").filter({ hasText: "Welcome, new device" });
    await welcome.getByRole("button", { name: "Message actions" }).click();
    await welcome.getByRole("button", { name: "Edit" }).click();
    const box = alice.getByRole("textbox", { name: "Message" });
    await box.fill("Welcome, second device");
    await box.press("Enter");
    await peer.waitFor("bob2", group, (ms) => ms.some((m) => m.text === "Welcome, second device" && m.edited));

    // A file from Rust: Alice's browser downloads and decrypts it byte for byte.
    const rustFile = await peer.run<{ message_id: string; sha256: string }>({
      cmd: "send_file",
      as: "bob",
      conversation_id: group,
      name: "rust.bin",
      size: 70_000,
    });
    const card = alice.getByRole("log").locator(".file-card").filter({ hasText: "rust.bin" });
    await expect(card).toBeVisible();
    const download = alice.waitForEvent("download");
    await card.getByRole("button", { name: "Download rust.bin" }).click();
    const saved = await readFile(await (await download).path());
    expect(createHash("sha256").update(saved).digest("hex")).toBe(rustFile.sha256);

    // A file from the browser: the Rust device downloads and decrypts it byte for byte.
    const notes = Buffer.from(`Notes from the browser ${stamp}\nПривет из браузера\n`, "utf8");
    const chooser = alice.waitForEvent("filechooser");
    await alice.getByRole("button", { name: "Attach files" }).click();
    await (await chooser).setFiles({ name: "browser.txt", mimeType: "text/plain", buffer: notes });
    await alice.getByRole("dialog", { name: "Send files" }).getByRole("button", { name: "Send" }).click();
    const withFile = await peer.waitFor("bob", group, (ms) => ms.some((m) => m.file?.name === "browser.txt"));
    const got = await peer.run<{ name: string; size: number; sha256: string }>({
      cmd: "download",
      as: "bob",
      conversation_id: group,
      message_id: withFile.find((m) => m.file?.name === "browser.txt")!.id,
    });
    expect(got).toEqual({ name: "browser.txt", size: notes.length, sha256: createHash("sha256").update(notes).digest("hex") });

    // A reaction from Rust: Bob's other device reads it as one, and the browser shows it as a
    // chip under the message, with Bob's name.
    const target = withFile.find((m) => m.text === "Welcome, second device")!.id;
    await peer.run({ cmd: "react", as: "bob", conversation_id: group, message_id: target, emoji: "🦊" });
    await peer.waitFor("bob2", group, (ms) =>
      ms.some((m) => m.reaction?.message_id === target && m.reaction.emoji === "🦊"),
    );
    const reactionsUnder = (text: string) =>
      alice.getByRole("log").locator(".msg-wrap").filter({ has: alice.locator("article", { hasText: text }) }).getByRole("group", { name: "Reactions" });
    await expect(reactionsUnder("Welcome, second device").getByRole("button", { name: `🦊 1: ${bob}` })).toHaveAttribute(
      "aria-pressed",
      "false",
    );

    // A reaction from the browser to a Rust message: both Rust devices read a Content reaction
    // naming that message, with the emoji; then the browser takes it back, and they read that.
    const edited = bubble(alice, "Hello from Rust, edited");
    await edited.getByRole("button", { name: "Message actions" }).click();
    await edited.getByRole("button", { name: "React", exact: true }).click();
    await edited.getByRole("button", { name: "React with 🎉" }).click();
    const party = reactionsUnder("Hello from Rust, edited").getByRole("button", { name: "🎉 1: You" });
    await expect(party).toHaveAttribute("aria-pressed", "true");
    const fromAlice = (ms: Awaited<ReturnType<typeof peer.history>>, remove: boolean) =>
      ms.some(
        (m) =>
          m.sender_account_id === aliceId &&
          m.reaction?.message_id === fromRust &&
          m.reaction.emoji === "🎉" &&
          m.reaction.remove === remove,
      );
    for (const as of ["bob", "bob2"]) await peer.waitFor(as, group, (ms) => fromAlice(ms, false));
    await party.click();
    await expect(reactionsUnder("Hello from Rust, edited")).toHaveCount(0);
    await peer.waitFor("bob", group, (ms) => fromAlice(ms, true));
    await send(alice, "Last word from the browser");
    await peer.waitFor("bob2", group, (ms) => ms.some((m) => m.text === "Last word from the browser"));
    await expect(alice.getByText(/Unsupported message/)).toHaveCount(0);

    // Nothing anyone should read is unreadable to them.
    await expect(alice.getByText(/Waiting for the key|cannot be decrypted/i)).toHaveCount(0);
    await expectNoUndecryptable(alice);
    for (const as of ["bob", "bob2"]) {
      const sees = await peer.history(as, group);
      // bob2 came after the first messages: those are not for it (no key was shared).
      const after = as === "bob2" ? sees.slice(sees.findIndex((m) => m.text === "Welcome, second device")) : sees;
      expect(after.filter((m) => m.undecryptable)).toEqual([]);
    }
    // The Rust client's own count (E2eeDevice::undecryptable): Bob, there from the start, could
    // read everything he was sent.
    const bobCount = await peer.run<{ count: number; reasons: unknown[] }>({ cmd: "undecryptable", as: "bob" });
    expect(bobCount).toEqual({ count: 0, reasons: [] });
  } finally {
    peer.close();
  }
});
