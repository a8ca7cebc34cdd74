import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it, vi } from "vitest";
import { ConversationKind, ConversationMode, MemberRole, SystemEventKind, SystemEventSchema, type MessageSchema } from "../gen/kitsulan/v1/conversation_pb";
import type { Profiles } from "./profiles";
import { apply, Conversations, removedFrom, type ConversationClient } from "./conversations";
import { BOB, CAROL, CONV, ME, OTHER_CONV, TestState, avatar, conversation, fakeClient, message, state, text } from "./testkit";

const ids = (s: { conversations: Array<{ id: string }> }) => s.conversations.map((c) => c.id);

describe("conversations.apply", () => {
  it("keeps the first copy of a conversation that came on two pages, newest activity first", () => {
    const older = conversation({ id: CONV, lastActivityAtMs: 10n, title: "first page" });
    const newer = conversation({ id: OTHER_CONV, lastActivityAtMs: 20n });
    const moved = conversation({ id: CONV, lastActivityAtMs: 30n, title: "second page" });
    const s = apply(state(), { type: "conversationsLoaded", conversations: [older, newer, moved] });
    expect(ids(s)).toEqual([OTHER_CONV, CONV]);
    expect(s.conversations[1]?.title).toBe("first page");
  });

  it("puts a changed conversation in its place by activity, and a new one in the list", () => {
    const a = conversation({ id: CONV, lastActivityAtMs: 10n });
    const b = conversation({ id: OTHER_CONV, lastActivityAtMs: 20n });
    let s = state({ conversations: [b, a] });
    s = apply(s, { type: "conversationChanged", conversation: { ...a, lastActivityAtMs: 30n } });
    expect(ids(s)).toEqual([CONV, OTHER_CONV]);
    const third = conversation({ id: "c3", lastActivityAtMs: 5n });
    s = apply(s, { type: "conversationChanged", conversation: third });
    expect(ids(s)).toEqual([CONV, OTHER_CONV, "c3"]);
  });

  it("closes a conversation we left only when it was the open one", () => {
    const s = state({ conversations: [conversation({ id: CONV }), conversation({ id: OTHER_CONV })], active: CONV });
    const left = apply(s, { type: "conversationLeft", conversationId: OTHER_CONV });
    expect(ids(left)).toEqual([CONV]);
    expect(left.active).toBe(CONV);
    expect(apply(s, { type: "conversationLeft", conversationId: CONV }).active).toBeNull();
  });

  it("previews text (120 characters at most) and file names, not deleted or undecryptable messages", () => {
    const s = state();
    const long = apply(s, { type: "previewLoaded", conversationId: CONV, content: text("x".repeat(200)) });
    expect(long.previews[CONV]).toHaveLength(120);
    const file = apply(s, {
      type: "previewLoaded",
      conversationId: CONV,
      content: { kind: "attachment", file: { attachment: "a", secrets: "s", name: "photo.jpg", type: "image/jpeg", size: 3 } },
    });
    expect(file.previews[CONV]).toBe("photo.jpg");
    expect(apply(s, { type: "previewLoaded", conversationId: CONV, content: { kind: "deleted" } })).toBe(s);
    expect(
      apply(s, { type: "previewLoaded", conversationId: CONV, content: { kind: "undecryptable", reason: "", sessionId: "" } }),
    ).toBe(s);
  });

  describe("a message arriving", () => {
    const base = state({
      conversations: [
        conversation({ id: OTHER_CONV, lastActivityAtMs: 50n }),
        conversation({ id: CONV, lastSeq: 4n, lastActivityAtMs: 40n, unreadCount: 1 }),
      ],
    });
    const m = message({ id: "m5", seq: 5n, sentAtMs: 60n });
    const arrived = (patch: { known?: boolean; fromOther?: boolean; visible?: boolean; deletedAtMs?: bigint; seq?: bigint }) =>
      apply(base, {
        type: "messageArrived",
        message: { ...m, seq: patch.seq ?? m.seq, deletedAtMs: patch.deletedAtMs ?? 0n },
        content: text("hi"),
        known: patch.known ?? false,
        fromOther: patch.fromOther ?? true,
        visible: patch.visible ?? false,
      });

    it("from someone else while the conversation is not on screen counts as unread and moves it up", () => {
      const s = arrived({});
      const c = s.conversations[0];
      expect(c?.id).toBe(CONV);
      expect(c?.lastSeq).toBe(5n);
      expect(c?.lastActivityAtMs).toBe(60n);
      expect(c?.unreadCount).toBe(2);
      expect(s.previews[CONV]).toBe("hi");
    });

    it("is not unread when on screen, ours, or deleted", () => {
      expect(arrived({ visible: true }).conversations[0]?.unreadCount).toBe(1);
      expect(arrived({ fromOther: false }).conversations[0]?.unreadCount).toBe(1);
      expect(arrived({ deletedAtMs: 7n }).conversations[0]?.unreadCount).toBe(1);
    });

    it("already known changes only the preview", () => {
      const s = arrived({ known: true });
      expect(s.conversations).toBe(base.conversations);
      expect(s.previews[CONV]).toBe("hi");
    });

    it("an older one (an edit of an old message) does not move the last sequence number back", () => {
      expect(arrived({ seq: 2n }).conversations.find((c) => c.id === CONV)?.lastSeq).toBe(4n);
    });
  });

  it("our sent message becomes the conversation's last and its preview", () => {
    const s = apply(state({ conversations: [conversation({ id: OTHER_CONV, lastActivityAtMs: 50n }), conversation({ id: CONV })] }), {
      type: "messageSent",
      conversationId: CONV,
      message: message({ id: "m9", seq: 9n, sentAtMs: 99n, senderAccountId: ME }),
      content: text("sent"),
    });
    expect(s.conversations[0]).toMatchObject({ id: CONV, lastSeq: 9n, lastActivityAtMs: 99n });
    expect(s.previews[CONV]).toBe("sent");
  });

  it("takes our own read receipt (from any of our devices) forwards only, with the unread count", () => {
    const s = state({ conversations: [conversation({ members: [{ accountId: ME, readSeq: 5n }, BOB], unreadCount: 3 })] });
    const receipt = (readSeq: bigint, unreadCount: number) =>
      ({ conversationId: CONV, accountId: ME, readSeq, deliveredSeq: 0n, unreadCount }) as never;
    const forward = apply(s, { type: "receipt", receipt: receipt(7n, 0), me: ME });
    expect(forward.conversations[0]?.members[0]?.readSeq).toBe(7n);
    expect(forward.conversations[0]?.unreadCount).toBe(0);
    const back = apply(s, { type: "receipt", receipt: receipt(2n, 1), me: ME });
    expect(back.conversations[0]?.members[0]?.readSeq).toBe(5n);
    expect(back.conversations[0]?.unreadCount).toBe(1);
    // Someone else's receipt is receipts.ts's.
    const bob = { conversationId: CONV, accountId: BOB, readSeq: 9n, deliveredSeq: 9n, unreadCount: 0 } as never;
    expect(apply(s, { type: "receipt", receipt: bob, me: ME })).toBe(s);
  });

  it("takes the answer to our MarkRead", () => {
    const s = state({ conversations: [conversation({ members: [ME, BOB], unreadCount: 2 })] });
    const after = apply(s, { type: "markedRead", conversationId: CONV, accountId: ME, readSeq: 8n, unreadCount: 0 });
    expect(after.conversations[0]?.members[0]?.readSeq).toBe(8n);
    expect(after.conversations[0]?.members[1]?.readSeq).toBe(0n);
    expect(after.conversations[0]?.unreadCount).toBe(0);
  });

  it("takes a group's newer picture and ignores an older one or an account's", () => {
    const s = state({ conversations: [conversation({ avatar: avatar("a2", 2n) })] });
    const owner = { case: "conversationId" as const, value: CONV };
    expect(apply(s, { type: "avatar", owner, avatar: avatar("a3", 3n) }).conversations[0]?.avatar?.avatarId).toBe("a3");
    expect(apply(s, { type: "avatar", owner, avatar: avatar("a1", 1n) })).toBe(s);
    expect(apply(s, { type: "avatar", owner: { case: "accountId", value: BOB }, avatar: avatar("a3", 3n) })).toBe(s);
  });
});

function store(client: Partial<ConversationClient>, st = new TestState()) {
  const fake = fakeClient<ConversationClient>(client as never);
  const profiles = {
    load: vi.fn((_ids: string[], _refresh?: boolean) => Promise.resolve()),
    lookUp: vi.fn((username: string) =>
      Promise.resolve({ accountId: username === "carol" ? CAROL : BOB, username, displayName: "" }),
    ),
  } satisfies Pick<Profiles, "load" | "lookUp">;
  const decrypt = vi.fn(() => Promise.resolve(text("last words")));
  const conversations = new Conversations(st, { client: fake.client, decrypt, profiles });
  return { conversations, st, calls: fake.calls, profiles, decrypt };
}

describe("Conversations", () => {
  it("loads every page, the members' profiles and the missing previews", async () => {
    const page1 = [conversation({ id: CONV, lastSeq: 3n, lastActivityAtMs: 30n, members: [ME, BOB] })];
    const page2 = [conversation({ id: OTHER_CONV, lastSeq: 0n, lastActivityAtMs: 20n, members: [ME, CAROL] })];
    const { conversations, st, calls, profiles } = store({
      listConversations: ((req: { pageToken: string }) =>
        req.pageToken === "" ? { conversations: page1, nextPageToken: "next" } : { conversations: page2, nextPageToken: "" }) as never,
      listMessages: (() => ({ messages: [message({ id: "m3", seq: 3n })] })) as never,
    });
    await conversations.load(true);
    await vi.waitFor(() => expect(st.s.previews[CONV]).toBe("last words"));
    expect(ids(st.s)).toEqual([CONV, OTHER_CONV]);
    expect(calls.filter(([m]) => m === "listConversations").map(([, r]) => (r as { pageToken: string }).pageToken)).toEqual(["", "next"]);
    expect(profiles.load).toHaveBeenCalledWith([ME, BOB, ME, CAROL], true);
    // No preview to fetch for a conversation without messages.
    expect(calls.filter(([m]) => m === "listMessages")).toHaveLength(1);
  });

  it("keeps the list when offline", async () => {
    const before = state({ conversations: [conversation({})] });
    const { conversations, st } = store(
      {
        listConversations: (() => {
          throw new Error("offline");
        }) as never,
      },
      new TestState(before),
    );
    await conversations.load();
    expect(st.s).toBe(before);
  });

  it("blocking leaves the direct conversation and the requests of that account, then reloads", async () => {
    const direct = conversation({ id: CONV, members: [ME, BOB] });
    const request = conversation({ id: "req", kind: ConversationKind.GROUP, members: [ME, CAROL, BOB], request: true, requestedBy: BOB });
    const group = conversation({ id: OTHER_CONV, kind: ConversationKind.GROUP, members: [ME, BOB, CAROL] });
    const { conversations, st, calls } = store(
      {
        block: (() => ({})) as never,
        listConversations: (() => ({ conversations: [group], nextPageToken: "" })) as never,
      },
      new TestState(state({ conversations: [direct, request, group], active: CONV })),
    );
    await conversations.block(BOB);
    expect(calls[0]).toEqual(["block", { accountId: BOB }]);
    expect(st.types().slice(0, 2)).toEqual(["conversationLeft", "conversationLeft"]);
    expect(ids(st.s)).toEqual([OTHER_CONV]);
    expect(st.s.active).toBeNull();
  });

  it("opens a direct conversation by username, and says so when the server sends none", async () => {
    const c = conversation({ id: CONV });
    const { conversations, st, profiles } = store({ openDirect: (() => ({ conversation: c })) as never });
    await expect(conversations.openDirect("bob")).resolves.toBe(CONV);
    expect(profiles.lookUp).toHaveBeenCalledWith("bob");
    expect(ids(st.s)).toEqual([CONV]);
    const empty = store({ openDirect: (() => ({})) as never });
    await expect(empty.conversations.openDirect("bob")).rejects.toThrow(/without a conversation/);
  });

  it("creates a group with the members found by username", async () => {
    const { conversations, calls } = store({
      createGroup: ((req: { title: string }) => ({ conversation: conversation({ id: OTHER_CONV, title: req.title }) })) as never,
    });
    await expect(conversations.createGroup("  Team ", ["bob", "carol"])).resolves.toBe(OTHER_CONV);
    expect(calls[0]).toEqual(["createGroup", { title: "Team", memberIds: [BOB, CAROL], mode: ConversationMode.E2EE }]);
  });

  it("declining a request leaves it", async () => {
    const { conversations, st } = store(
      { declineRequest: (() => ({})) as never },
      new TestState(state({ conversations: [conversation({ request: true })], active: CONV })),
    );
    await conversations.declineRequest(CONV);
    expect(st.s.conversations).toEqual([]);
    expect(st.s.active).toBeNull();
  });
});

describe("group management", () => {
  const group = (patch: Parameters<typeof conversation>[0] = {}) =>
    conversation({ kind: ConversationKind.GROUP, title: "Team", members: [ME, BOB, CAROL], lastSeq: 4n, lastActivityAtMs: 40n, ...patch });
  const system = (id: string, seq: bigint, event: MessageInitShape<typeof SystemEventSchema>, sender = BOB) =>
    message({ id, seq, sentAtMs: 50n, senderAccountId: sender, system: create(SystemEventSchema, { actorAccountId: sender, ...event }) });
  const arrive = (s: ReturnType<typeof state>, m: ReturnType<typeof message>, known = false) =>
    apply(s, {
      type: "messageArrived",
      message: m,
      content: { kind: "system", event: m.system! },
      known,
      fromOther: m.senderAccountId !== ME,
      visible: false,
    });

  it("a system entry moves the group up, previews as itself, and never counts as unread", () => {
    const s0 = state({ conversations: [group({ unreadCount: 1 })], previews: { [CONV]: "hello" } });
    const m = system("s5", 5n, { kind: SystemEventKind.MEMBER_REMOVED, targetAccountId: CAROL });
    const s = arrive(s0, m);
    expect(s.conversations[0]).toMatchObject({ lastSeq: 5n, lastActivityAtMs: 50n, unreadCount: 1 });
    expect(s.systemPreviews?.[CONV]?.kind).toBe(SystemEventKind.MEMBER_REMOVED);
    // A later message previews again as text.
    const after = apply(s, { type: "previewLoaded", conversationId: CONV, content: text("back to normal") });
    expect(after.systemPreviews?.[CONV]).toBeUndefined();
    expect(after.previews[CONV]).toBe("back to normal");
  });

  it("a title change renames the group and a role change sets the member's role, live", () => {
    let s = state({ conversations: [group()] });
    s = arrive(s, system("s5", 5n, { kind: SystemEventKind.TITLE_CHANGED, title: "LAN party" }));
    expect(s.conversations[0]?.title).toBe("LAN party");
    s = arrive(s, system("s6", 6n, { kind: SystemEventKind.ROLE_CHANGED, targetAccountId: CAROL, role: MemberRole.ADMIN }));
    expect(s.conversations[0]?.members.find((m) => m.accountId === CAROL)?.role).toBe(MemberRole.ADMIN);
    // Delivered twice (after a reconnect): nothing more changes.
    expect(arrive(s, system("s6", 6n, { kind: SystemEventKind.TITLE_CHANGED, title: "Other" }), true).conversations[0]?.title).toBe(
      "LAN party",
    );
  });

  it("our own 'left' entry (we left on another device) takes the group out of the list", () => {
    const s = state({ conversations: [group()], active: CONV });
    const left = arrive(s, system("s5", 5n, { kind: SystemEventKind.MEMBER_LEFT }, ME));
    expect(left.conversations).toEqual([]);
    expect(left.active).toBeNull();
    // Someone else leaving only adds the line.
    expect(arrive(s, system("s5", 5n, { kind: SystemEventKind.MEMBER_LEFT })).conversations).toHaveLength(1);
  });

  it("a group we were removed from stays, without us, read-only, also when the list is loaded again", () => {
    let s = state({ conversations: [group({ unreadCount: 2 }), conversation({ id: OTHER_CONV })] });
    s = apply(s, { type: "removedFrom", conversationId: CONV, me: ME });
    const kept = s.conversations.find((c) => c.id === CONV);
    expect(kept && removedFrom(kept, ME)).toBe(true);
    expect(kept?.unreadCount).toBe(0);
    expect(kept?.members.map((m) => m.accountId)).toEqual([BOB, CAROL]);
    // The server lists only the other one now; this device keeps the removed group.
    s = apply(s, { type: "conversationsLoaded", conversations: [conversation({ id: OTHER_CONV })] });
    expect(ids(s).sort()).toEqual([CONV, OTHER_CONV].sort());
    // A direct conversation or a request is simply gone.
    const direct = apply(state({ conversations: [conversation({})] }), { type: "removedFrom", conversationId: CONV, me: ME });
    expect(direct.conversations).toEqual([]);
    const request = apply(state({ conversations: [group({ request: true })] }), { type: "removedFrom", conversationId: CONV, me: ME });
    expect(request.conversations).toEqual([]);
    // A group we are still in is not "removed", and one nobody removed us from is dropped by a reload as before.
    expect(removedFrom(group(), ME)).toBe(false);
    expect(ids(apply(state({ conversations: [group()] }), { type: "conversationsLoaded", conversations: [] }))).toEqual([]);
  });
});

describe("Conversations, managing a group", () => {
  const group = conversation({ kind: ConversationKind.GROUP, title: "Team", members: [ME, BOB, CAROL] });
  const changed = (c = group) => (() => ({ conversation: c })) as never;

  it("removes, sets roles, renames (trimmed) and takes the server's answer", async () => {
    const renamed = { ...group, title: "LAN" };
    const { conversations, st, calls } = store(
      { removeMember: changed(), setMemberRole: changed(), renameGroup: changed(renamed) },
      new TestState(state({ conversations: [group] })),
    );
    await conversations.removeMember(CONV, CAROL);
    await conversations.setRole(CONV, BOB, MemberRole.ADMIN);
    await conversations.rename(CONV, "  LAN ");
    expect(calls).toEqual([
      ["removeMember", { conversationId: CONV, accountId: CAROL }],
      ["setMemberRole", { conversationId: CONV, accountId: BOB, role: MemberRole.ADMIN }],
      ["renameGroup", { conversationId: CONV, title: "LAN" }],
    ]);
    expect(st.s.conversations[0]?.title).toBe("LAN");
  });

  it("leaving by choice takes the group out of the list; a refused leave keeps it", async () => {
    const { conversations, st } = store({ leaveConversation: (() => ({})) as never }, new TestState(state({ conversations: [group], active: CONV })));
    await conversations.leave(CONV);
    expect(st.s.conversations).toEqual([]);
    const refused = store(
      {
        leaveConversation: (() => {
          throw new Error("NOT_A_GROUP");
        }) as never,
      },
      new TestState(state({ conversations: [group] })),
    );
    await expect(refused.conversations.leave(CONV)).rejects.toThrow();
    expect(refused.st.s.conversations).toHaveLength(1);
  });

  it("losing our membership keeps a group read-only until we forget it", async () => {
    const { conversations, st } = store(
      { listConversations: (() => ({ conversations: [], nextPageToken: "" })) as never },
      new TestState(state({ conversations: [group] })),
    );
    await conversations.lostMembership(CONV);
    expect(st.types()).toEqual(["removedFrom", "conversationsLoaded"]);
    expect(st.s.conversations.map((c) => removedFrom(c, ME))).toEqual([true]);
    conversations.forget(CONV);
    expect(st.s.conversations).toEqual([]);
  });
});

describe("cloud chats, mentions and timers (issue 20)", () => {
  const arrived = (init: MessageInitShape<typeof MessageSchema> & { id: string }, content = text("x"), known = false) => ({
    type: "messageArrived" as const,
    message: message(init),
    content,
    known,
    fromOther: true,
    visible: false,
  });

  it("a timer entry sets the conversation's timer; an older message changing keeps the preview", () => {
    let s = state({ conversations: [conversation({ lastSeq: 5n })], previews: { [CONV]: "latest" } });
    s = apply(s, arrived({ id: "t", seq: 6n, system: create(SystemEventSchema, { kind: SystemEventKind.TIMER_CHANGED, timerSeconds: 3600 }) }));
    expect(s.conversations[0]?.messageTimerSeconds).toBe(3600);
    const before = s.previews[CONV];
    s = apply(s, arrived({ id: "old", seq: 2n, pinnedAtMs: 9n }, text("an old one, pinned"), true));
    expect(s.previews[CONV]).toBe(before);
  });

  it("counts a new cloud message that mentions us apart from unread", () => {
    let s = state({ conversations: [conversation({ mode: ConversationMode.CLOUD })] });
    s = apply(s, arrived({ id: "a", seq: 1n }, { kind: "text", text: "@Me", mentions: [{ accountId: ME, start: 0, end: 3 }] }));
    s = apply(s, arrived({ id: "b", seq: 2n }));
    expect(s.conversations[0]).toMatchObject({ unreadCount: 2, mentionCount: 1 });
    s = apply(s, { type: "markedRead", conversationId: CONV, accountId: ME, readSeq: 2n, unreadCount: 0 });
    expect(s.conversations[0]).toMatchObject({ unreadCount: 0, mentionCount: 0 });
  });

  it("opens a cloud direct conversation, and starts an E2EE one with the same people", async () => {
    const ts = new TestState(state({ conversations: [conversation({ mode: ConversationMode.CLOUD, members: [ME, BOB] })] }));
    const { client, calls } = fakeClient<ConversationClient>({
      openDirect: (req: { mode: number }) => ({ conversation: conversation({ id: OTHER_CONV, mode: req.mode }) }),
      setMessageTimer: () => ({ conversation: conversation({ mode: ConversationMode.CLOUD, messageTimerSeconds: 60 }) }),
    } as never);
    const profiles = { load: vi.fn(() => Promise.resolve()), lookUp: vi.fn(() => Promise.resolve({ accountId: BOB })) } as unknown as Profiles;
    const conversations = new Conversations(ts, { client, decrypt: () => Promise.resolve(text("x")), profiles });
    expect(await conversations.startEncryptedCopy(CONV)).toBe(OTHER_CONV);
    expect(calls[0]).toEqual(["openDirect", { accountId: BOB, mode: ConversationMode.E2EE }]);
    await conversations.openDirect("bob", ConversationMode.CLOUD);
    expect(calls[1]).toEqual(["openDirect", { accountId: BOB, mode: ConversationMode.CLOUD }]);
    await conversations.setTimer(CONV, 60);
    expect(ts.s.conversations.find((c) => c.id === CONV)?.messageTimerSeconds).toBe(60);
  });
});

