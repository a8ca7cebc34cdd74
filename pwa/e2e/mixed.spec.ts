// mixed.spec.ts — one group with a browser (the crypto crate as WebAssembly) and Rust clients
// (the same crate natively, e2e-tests' chat_peer): messages both ways, a member removed (the
// session rotates and the removed one cannot read on), and a new Rust device added that reads
// what is sent after it came. Every message decrypts on every side that should read it.
import { expect } from "@playwright/test";
import { ChatPeer } from "./peer";
import { bubble, password, send, signUp, stamp, test } from "./helpers";

test("a browser and Rust clients in one E2EE group", async ({ browser, baseURL }) => {
  const peer = new ChatPeer();
  try {
    const bob = `bob-x-${stamp}`;
    const carol = `carol-x-${stamp}`;
    await peer.run({ cmd: "sign_up", as: "bob", url: baseURL, username: bob, password });
    await peer.run({ cmd: "sign_up", as: "carol", url: baseURL, username: carol, password });
    const alice = await signUp(browser, `alice-x-${stamp}`, "Alice");

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
    expect(carolTries.undecryptable).toMatch(/no inbound session/);

    // Bob adds a second Rust device: it reads what Alice sends after it came, and Alice reads it.
    await peer.run({ cmd: "add_device", as: "bob2", of: "bob", password });
    await send(alice, "Welcome, new device");
    await peer.waitFor("bob2", group, (ms) => ms.some((m) => m.text === "Welcome, new device"));
    await peer.run({ cmd: "send", as: "bob2", conversation_id: group, text: "Bob's second device" });
    await expect(bubble(alice, "Bob's second device")).toBeVisible();
    await peer.waitFor("bob", group, (ms) => ms.some((m) => m.text === "Bob's second device"));

    // Nothing anyone should read is unreadable to them.
    await expect(alice.getByText(/Waiting for the key|cannot be decrypted/i)).toHaveCount(0);
    const bobSees = await peer.history("bob", group);
    expect(bobSees.filter((m) => m.undecryptable)).toEqual([]);
  } finally {
    peer.close();
  }
});
