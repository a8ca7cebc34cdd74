import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ConversationKind, ConversationMode, MemberRole } from "../gen/kitsulan/v1/conversation_pb";
import {
  GetGuildResponseSchema,
  GuildChannelKind,
  GuildChannelSchema,
  GuildRoleSchema,
  GuildSchema,
  type GetGuildResponse,
  type GuildChannel,
} from "../gen/kitsulan/v1/guild_pb";
import { inviteCode, invitePath } from "../lib/invite";
import { readMarkDue } from "./receipts";
import {
  adjacentChannel,
  apply,
  grouped,
  guildUnread,
  Guilds,
  has,
  highestRole,
  initials,
  layoutOf,
  moved,
  dropped,
  outranks,
  overwriteState,
  Perm,
  slowModeWait,
  withOverwrite,
  type GuildClient,
  type GuildView,
} from "./guilds";
import { BOB, CAROL, ME, TestState, conversation, fakeClient, message, state, text } from "./testkit";
import type { ChatState } from "./store";

const G = "00000000-0000-7000-8000-0000000000e1";
const G2 = "00000000-0000-7000-8000-0000000000e2";
const CAT = "00000000-0000-7000-8000-0000000000f0";
const GENERAL = "00000000-0000-7000-8000-0000000000f1";
const NEWS = "00000000-0000-7000-8000-0000000000f2";
const LOBBY = "00000000-0000-7000-8000-0000000000f3";
const TOP = "00000000-0000-7000-8000-0000000000f4";
const CAT2 = "00000000-0000-7000-8000-0000000000f5";

const ALL = Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES;

function channel(id: string, init: Partial<Omit<GuildChannel, "$typeName" | "$unknown">> = {}): GuildChannel {
  return create(GuildChannelSchema, { id, kind: GuildChannelKind.TEXT, name: id.slice(-2), permissions: ALL, ...init });
}

function guildRes(channels: GuildChannel[], id = G, name = "LAN party"): GetGuildResponse {
  return create(GetGuildResponseSchema, {
    guild: create(GuildSchema, { id, name, ownerId: BOB, memberCount: 2n }),
    channels,
    roles: [create(GuildRoleSchema, { id, name: "@everyone", position: 0 })],
    myPermissions: ALL,
  });
}

const layout = () => [
  channel(TOP, { position: 0n }),
  channel(CAT, { kind: GuildChannelKind.CATEGORY, name: "Text", position: 1n }),
  channel(GENERAL, { parentId: CAT, position: 0n, lastSeq: 5n, readSeq: 3n, mentionCount: 1 }),
  channel(NEWS, { parentId: CAT, position: 1n, kind: GuildChannelKind.ANNOUNCEMENT, permissions: Perm.VIEW_CHANNEL }),
  channel(CAT2, { kind: GuildChannelKind.CATEGORY, name: "Voice", position: 2n }),
  channel(LOBBY, { parentId: CAT2, position: 0n, kind: GuildChannelKind.VOICE }),
];

const loaded = (s: ChatState = state()) => apply(s, { type: "guildLoaded", guild: guildRes(layout()) });

describe("guilds.apply", () => {
  it("makes each text, announcement and voice channel a cloud conversation with our read mark and counts", () => {
    const s = loaded();
    expect(s.guilds.order).toEqual([G]);
    expect(Object.keys(s.guilds.channels).sort()).toEqual([GENERAL, NEWS, LOBBY, TOP].sort());
    const general = s.guilds.channels[GENERAL];
    expect(general?.kind).toBe(ConversationKind.CHANNEL);
    expect(general?.mode).toBe(ConversationMode.CLOUD);
    expect(general?.title).toBe("f1");
    expect(general?.members.map((m) => [m.accountId, m.readSeq, m.role])).toEqual([[ME, 3n, MemberRole.MEMBER]]);
    expect(general?.unreadCount).toBe(2);
    expect(general?.mentionCount).toBe(1);
    expect(s.guilds.channels[NEWS]?.unreadCount).toBe(0);
    // Categories hold no messages.
    expect(s.guilds.channels[CAT]).toBeUndefined();
  });

  it("never moves our read mark back when a GetGuild crossed our MarkRead", () => {
    let s = apply(loaded(), { type: "markedRead", conversationId: GENERAL, accountId: ME, readSeq: 5n, unreadCount: 0 });
    s = apply(s, { type: "guildLoaded", guild: guildRes(layout()) }); // still says read up to 3
    expect(s.guilds.channels[GENERAL]?.members[0]?.readSeq).toBe(5n);
    expect(s.guilds.channels[GENERAL]?.unreadCount).toBe(0);
    expect(s.guilds.channels[GENERAL]?.mentionCount).toBe(0);
  });

  it("makes us a channel's admin (pins, deleting others' messages) only with MANAGE_MESSAGES there", () => {
    const s = apply(state(), { type: "guildLoaded", guild: guildRes([channel(GENERAL, { permissions: ALL | Perm.MANAGE_MESSAGES })]) });
    expect(s.guilds.channels[GENERAL]?.members[0]?.role).toBe(MemberRole.ADMIN);
    const admin = apply(state(), { type: "guildLoaded", guild: guildRes([channel(GENERAL, { permissions: Perm.ADMINISTRATOR })]) });
    expect(admin.guilds.channels[GENERAL]?.members[0]?.role).toBe(MemberRole.ADMIN);
  });

  it("marks a private end-to-end encrypted channel E2EE, never cloud", () => {
    const s = apply(state(), { type: "guildLoaded", guild: guildRes([channel(GENERAL, { e2ee: true })]) });
    expect(s.guilds.channels[GENERAL]?.mode).toBe(ConversationMode.E2EE);
  });

  it("gives a private E2EE channel its member rows, from a list read before or after the guild", () => {
    const rows = conversation({ id: GENERAL, kind: ConversationKind.CHANNEL, mode: ConversationMode.E2EE, members: [ME, BOB, CAROL] });
    const e2ee = guildRes([channel(GENERAL, { e2ee: true, readSeq: 4n, lastSeq: 6n })]);
    // The conversation list came first: its rows wait for the guild, and stay out of the list.
    let s = apply(state(), { type: "conversationsLoaded", conversations: [rows] });
    s = apply(s, { type: "guildLoaded", guild: e2ee });
    expect(s.guilds.channels[GENERAL]?.members.map((m) => m.accountId)).toEqual([ME, BOB, CAROL]);
    expect(s.guilds.channels[GENERAL]?.members[0]?.readSeq).toBe(4n);
    expect(s.guilds.channels[GENERAL]?.unreadCount).toBe(2);
    expect(s.conversations).toEqual([]);
    // The guild came first: the rows join its conversation, our read mark stays.
    let t = apply(state(), { type: "guildLoaded", guild: e2ee });
    expect(t.guilds.channels[GENERAL]?.members.map((m) => m.accountId)).toEqual([ME]);
    t = apply(t, { type: "conversationChanged", conversation: rows });
    expect(t.guilds.channels[GENERAL]?.members.map((m) => m.accountId)).toEqual([ME, BOB, CAROL]);
    expect(t.guilds.channels[GENERAL]?.members[0]?.readSeq).toBe(4n);
    // A cloud channel never takes rows (it has none: its members are the guild's).
    const cloud = apply(loaded(), { type: "conversationChanged", conversation: { ...rows, mode: ConversationMode.CLOUD } });
    expect(cloud.guilds.channels[GENERAL]?.members.map((m) => m.accountId)).toEqual([ME]);
  });

  it("forgets a private channel's rows when it goes, so a new invitation reads them afresh", () => {
    const rows = conversation({ id: GENERAL, kind: ConversationKind.CHANNEL, mode: ConversationMode.E2EE, members: [ME, BOB] });
    let s = apply(state(), { type: "guildLoaded", guild: guildRes([channel(GENERAL, { e2ee: true })]) });
    s = apply(s, { type: "conversationChanged", conversation: rows });
    s = apply(s, { type: "guildLoaded", guild: guildRes([]) });
    expect(s.guilds.members[GENERAL]).toBeUndefined();
  });

  it("says which channel closed under us until another one opens or the guild changes", () => {
    const open = apply({ ...loaded(), active: NEWS }, { type: "guildSelected", guildId: G });
    let s = apply(open, { type: "guildLoaded", guild: guildRes(layout().filter((c) => c.id !== NEWS)) });
    expect(s.guilds.closed).toEqual({ guildId: G, name: "f2" });
    expect(apply(s, { type: "guildSelected", guildId: G }).guilds.closed).not.toBeNull();
    expect(apply(s, { type: "opened", conversationId: null }).guilds.closed).not.toBeNull();
    expect(apply(s, { type: "opened", conversationId: GENERAL }).guilds.closed).toBeNull();
    s = apply(s, { type: "guildSelected", guildId: null });
    expect(s.guilds.closed).toBeNull();
  });

  it("closes the open channel when a new GetGuild no longer shows it (deleted, or no longer visible)", () => {
    let s = { ...loaded(), active: NEWS };
    s = apply(s, { type: "guildLoaded", guild: guildRes(layout().filter((c) => c.id !== NEWS)) });
    expect(s.active).toBeNull();
    expect(s.guilds.channels[NEWS]).toBeUndefined();
    // A direct conversation on screen stays.
    const direct = apply({ ...loaded(), active: "some-conversation" }, { type: "guildLoaded", guild: guildRes([]) });
    expect(direct.active).toBe("some-conversation");
  });

  it("drops a removed guild at once: its channels, the open one, the selection; other guilds stay", () => {
    let s = loaded();
    s = apply(s, { type: "guildLoaded", guild: guildRes([channel("other-ch")], G2, "Other") });
    s = apply(s, { type: "guildSelected", guildId: G });
    s = { ...s, active: GENERAL };
    const gone = apply(s, { type: "guildRemoved", guildId: G });
    expect(gone.guilds.order).toEqual([G2]);
    expect(gone.guilds.views[G]).toBeUndefined();
    expect(Object.keys(gone.guilds.channels)).toEqual(["other-ch"]);
    expect(gone.active).toBeNull();
    expect(gone.guilds.selected).toBeNull();
    // Removing it twice changes nothing.
    expect(apply(gone, { type: "guildRemoved", guildId: G })).toBe(gone);
  });

  it("takes ListGuilds' order and drops the guilds no longer listed", () => {
    let s = loaded();
    s = apply(s, { type: "guildsListed", guilds: [create(GuildSchema, { id: G2, name: "B" })] });
    expect(s.guilds.order).toEqual([G2]);
    expect(s.guilds.channels[GENERAL]).toBeUndefined();
    expect(s.guilds.loaded).toBe(true);
  });

  describe("a channel message arriving", () => {
    const arrive = (s: ChatState, init: Parameters<typeof message>[0], extra: { known?: boolean; fromOther?: boolean; visible?: boolean } = {}) =>
      apply(s, {
        type: "messageArrived",
        message: message({ conversationId: GENERAL, ...init }),
        content: text(String(init.id)),
        known: extra.known ?? false,
        fromOther: extra.fromOther ?? true,
        visible: extra.visible ?? false,
      });

    it("counts it unread, and a mention of us as a mention, when the channel is not on screen", () => {
      let s = arrive(loaded(), { id: "m6", seq: 6n });
      expect(s.guilds.channels[GENERAL]?.unreadCount).toBe(3);
      expect(s.guilds.channels[GENERAL]?.lastSeq).toBe(6n);
      s = apply(s, {
        type: "messageArrived",
        message: message({ id: "m7", conversationId: GENERAL, seq: 7n }),
        content: { kind: "text", text: "@Me look", mentions: [{ accountId: ME, start: 0, end: 3 }] },
        known: false,
        fromOther: true,
        visible: false,
      });
      expect(s.guilds.channels[GENERAL]?.mentionCount).toBe(2);
      expect(guildUnread(s.guilds, G)).toEqual({ unread: true, mentions: 2 });
    });

    it("does not count our own, a visible one, one held already, or a deletion", () => {
      const s = loaded();
      for (const [init, extra] of [
        [{ id: "a", seq: 6n }, { fromOther: false }],
        [{ id: "b", seq: 6n }, { visible: true }],
        [{ id: "c", seq: 6n }, { known: true }],
        [{ id: "d", seq: 6n, deletedAtMs: 5n }, {}],
      ] as const) {
        expect(arrive(s, init, extra).guilds.channels[GENERAL]?.unreadCount).toBe(2);
      }
    });

    it("leaves the conversation list alone (channels are not conversations of the list)", () => {
      const s = arrive(loaded(), { id: "m6", seq: 6n });
      expect(s.conversations).toEqual([]);
    });
  });

  it("our read mark clears the channel's counts", () => {
    const s = apply(loaded(), { type: "markedRead", conversationId: GENERAL, accountId: ME, readSeq: 5n, unreadCount: 0 });
    const c = s.guilds.channels[GENERAL];
    expect([c?.unreadCount, c?.mentionCount, c?.members[0]?.readSeq]).toEqual([0, 0, 5n]);
    expect(guildUnread(s.guilds, G)).toEqual({ unread: false, mentions: 0 });
  });

  it("lets receipts.readMarkDue find a channel, so viewing it marks it read", () => {
    const s = {
      ...loaded(),
      threads: { [GENERAL]: { items: [{ message: message({ id: "m5", conversationId: GENERAL, seq: 5n }), content: text("hi") }], more: false, loaded: true } },
    };
    expect(readMarkDue(s, GENERAL)).toBe(5n);
  });
});

function view(): GuildView {
  const v = loaded().guilds.views[G];
  if (!v) throw new Error("no view");
  return v;
}

describe("the channel layout", () => {
  it("groups the top-level channels first, then each category with its channels in order", () => {
    const g = grouped(view().channels);
    expect(g.map((x) => [x.category?.id ?? null, x.channels.map((c) => c.id)])).toEqual([
      [null, [TOP]],
      [CAT, [GENERAL, NEWS]],
      [CAT2, [LOBBY]],
    ]);
    expect(layoutOf(g)).toEqual([
      { channelId: TOP, parentId: "" },
      { channelId: CAT, parentId: "" },
      { channelId: GENERAL, parentId: CAT },
      { channelId: NEWS, parentId: CAT },
      { channelId: CAT2, parentId: "" },
      { channelId: LOBBY, parentId: CAT2 },
    ]);
  });

  it("moves a channel within its category, over its edge into the next one, and a category among categories", () => {
    const g = grouped(view().channels);
    const ids = (x: ReturnType<typeof grouped> | null) => x?.map((y) => [y.category?.id ?? null, y.channels.map((c) => c.id)]);
    expect(ids(moved(g, NEWS, -1))).toEqual([[null, [TOP]], [CAT, [NEWS, GENERAL]], [CAT2, [LOBBY]]]);
    expect(ids(moved(g, NEWS, 1))).toEqual([[null, [TOP]], [CAT, [GENERAL]], [CAT2, [NEWS, LOBBY]]]);
    expect(ids(moved(g, GENERAL, -1))).toEqual([[null, [TOP, GENERAL]], [CAT, [NEWS]], [CAT2, [LOBBY]]]);
    // The top-level group is first: nothing above it, and it empties away.
    expect(moved(g, TOP, -1)).toBeNull();
    expect(ids(moved(g, TOP, 1))).toEqual([[CAT, [TOP, GENERAL, NEWS]], [CAT2, [LOBBY]]]);
    expect(moved(g, LOBBY, 1)).toBeNull();
    expect(ids(moved(g, CAT2, -1))).toEqual([[null, [TOP]], [CAT2, [LOBBY]], [CAT, [GENERAL, NEWS]]]);
    expect(moved(g, CAT, -1)).toBeNull();
    // Every move keeps every channel exactly once (ArrangeChannels refuses anything else).
    for (const id of [TOP, GENERAL, NEWS, LOBBY, CAT, CAT2]) {
      for (const d of [-1, 1] as const) {
        const m = moved(g, id, d);
        if (m) expect(layoutOf(m).map((p) => p.channelId).sort()).toEqual([TOP, CAT, GENERAL, NEWS, CAT2, LOBBY].sort());
      }
    }
  });

  it("drops a dragged channel before another, or at the end of a category", () => {
    const g = grouped(view().channels);
    const ids = (x: ReturnType<typeof grouped>) => x.map((y) => [y.category?.id ?? null, y.channels.map((c) => c.id)]);
    expect(ids(dropped(g, LOBBY, { beforeId: GENERAL }))).toEqual([[null, [TOP]], [CAT, [LOBBY, GENERAL, NEWS]], [CAT2, []]]);
    expect(ids(dropped(g, TOP, { intoCategory: CAT2 }))).toEqual([[CAT, [GENERAL, NEWS]], [CAT2, [LOBBY, TOP]]]);
  });

  it("moves between the channels that open as chats with Alt+↑/↓, wrapping around, skipping voice", () => {
    const v = view();
    expect(adjacentChannel(v, null, 1)).toBe(TOP);
    expect(adjacentChannel(v, TOP, 1)).toBe(GENERAL);
    expect(adjacentChannel(v, NEWS, 1)).toBe(TOP);
    expect(adjacentChannel(v, TOP, -1)).toBe(NEWS);
  });
});

describe("guild helpers", () => {
  it("reads permission bits, ADMINISTRATOR meaning all of them", () => {
    expect(has(Perm.SEND_MESSAGES, Perm.SEND_MESSAGES)).toBe(true);
    expect(has(Perm.VIEW_CHANNEL, Perm.SEND_MESSAGES)).toBe(false);
    expect(has(Perm.ADMINISTRATOR, Perm.BAN_MEMBERS)).toBe(true);
  });

  it("finds a member's highest role", () => {
    const roles = [1, 3, 2].map((p) => create(GuildRoleSchema, { id: `r${p}`, position: p }));
    expect(highestRole(roles, ["r1", "r2"])?.id).toBe("r2");
    expect(highestRole(roles, [])).toBeNull();
  });

  it("sets one bit of a channel overwrite to allow, deny or inherit, leaving the others", () => {
    let o = { allow: Perm.SEND_MESSAGES, deny: Perm.ATTACH_FILES };
    expect(overwriteState(o.allow, o.deny, Perm.SEND_MESSAGES)).toBe("allow");
    expect(overwriteState(o.allow, o.deny, Perm.ATTACH_FILES)).toBe("deny");
    expect(overwriteState(o.allow, o.deny, Perm.VIEW_CHANNEL)).toBe("inherit");
    o = withOverwrite(o, Perm.VIEW_CHANNEL, "deny");
    expect(o).toEqual({ allow: Perm.SEND_MESSAGES, deny: Perm.ATTACH_FILES | Perm.VIEW_CHANNEL });
    o = withOverwrite(o, Perm.ATTACH_FILES, "allow");
    expect(o).toEqual({ allow: Perm.SEND_MESSAGES | Perm.ATTACH_FILES, deny: Perm.VIEW_CHANNEL });
    o = withOverwrite(o, Perm.SEND_MESSAGES, "inherit");
    expect(o).toEqual({ allow: Perm.ATTACH_FILES, deny: Perm.VIEW_CHANNEL });
  });

  it("counts slow mode's whole seconds left after our last message, nothing when off or never sent", () => {
    expect(slowModeWait(10_000, 30, 10_000)).toBe(30);
    expect(slowModeWait(10_000, 30, 10_001)).toBe(30);
    expect(slowModeWait(10_000, 30, 39_001)).toBe(1);
    expect(slowModeWait(10_000, 30, 40_000)).toBe(0);
    expect(slowModeWait(10_000, 0, 10_000)).toBe(0);
    expect(slowModeWait(null, 30, 10_000)).toBe(0);
  });

  it("tells whom we stand above: not the owner, not ourselves, not an equal role; unknown when not listed", () => {
    const roles = [
      create(GuildRoleSchema, { id: G, name: "@everyone", position: 0 }),
      create(GuildRoleSchema, { id: "mod", name: "Mods", position: 2 }),
      create(GuildRoleSchema, { id: "vip", name: "VIPs", position: 1 }),
    ];
    const v = { ...view(), roles, myRoleIds: ["mod"] };
    expect(outranks(v, ME, { accountId: CAROL, roleIds: ["vip"] })).toBe(true);
    expect(outranks(v, ME, { accountId: CAROL, roleIds: [] })).toBe(true);
    expect(outranks(v, ME, { accountId: CAROL, roleIds: ["mod"] })).toBe(false);
    expect(outranks(v, ME, { accountId: BOB, roleIds: [] })).toBe(false); // the owner
    expect(outranks(v, ME, { accountId: ME, roleIds: [] })).toBe(false);
    expect(outranks(v, ME, undefined)).toBeNull();
    // The owner stands above everyone else.
    expect(outranks({ ...v, myRoleIds: [], guild: { ...v.guild, ownerId: ME } }, ME, { accountId: CAROL, roleIds: ["mod"] })).toBe(true);
  });

  it("gives a guild without an icon its initials", () => {
    expect(initials("LAN party")).toBe("LP");
    expect(initials("kitsune")).toBe("KI");
    expect(initials("  ")).toBe("?");
    expect(initials("Ёжики в тумане")).toBe("ЁВ");
  });

  it("takes an invite's code from a link or the code itself, and nothing that cannot be one", () => {
    expect(inviteCode("https://lan.example/invite/AbC-_123456789012345678")).toBe("AbC-_123456789012345678");
    expect(inviteCode("  AbC-_123456789012345678 ")).toBe("AbC-_123456789012345678");
    expect(inviteCode("http://x/invite/AbCdEfGhIjKl/")).toBe("AbCdEfGhIjKl");
    expect(inviteCode("not a code")).toBeNull();
    expect(inviteCode("https://lan.example/party")).toBeNull();
    expect(invitePath("/invite/AbCdEfGhIjKl")).toBe("AbCdEfGhIjKl");
    expect(invitePath("/invite/../x")).toBeNull();
    expect(invitePath("/")).toBeNull();
  });
});

function notFound(): never {
  const err = new ConnectError("gone", Code.NotFound);
  const reason = new TextEncoder().encode("GUILD_NOT_FOUND");
  err.details.push({ type: "google.rpc.ErrorInfo", value: new Uint8Array([0x0a, reason.length, ...reason]) });
  throw err;
}

describe("Guilds", () => {
  const setup = (methods: Parameters<typeof fakeClient<GuildClient>>[0]) => {
    const st = new TestState();
    const names: string[][] = [];
    const fake = fakeClient<GuildClient>(methods);
    const guilds = new Guilds(st, { client: fake.client, loadNames: (ids) => names.push(ids) });
    return { st, guilds, calls: fake.calls, names };
  };

  it("loads the guilds and each one's channels", async () => {
    const { st, guilds } = setup({
      listGuilds: () => ({ guilds: [create(GuildSchema, { id: G, name: "LAN party" })] }),
      getGuild: () => guildRes(layout()),
    });
    await guilds.load();
    expect(st.types()).toEqual(["guildsListed", "guildLoaded"]);
    expect(guilds.channel(GENERAL)?.unreadCount).toBe(2);
    expect(guilds.guildOf(LOBBY)?.guild.id).toBe(G);
    expect(guilds.channelInfo(NEWS)?.kind).toBe(GuildChannelKind.ANNOUNCEMENT);
  });

  it("reads a guild again on its event, and drops it on `removed` without asking the server", async () => {
    const { st, guilds, calls } = setup({ getGuild: () => guildRes(layout()) });
    await guilds.onEvent({ guildId: G, removed: false } as never);
    expect(st.s.guilds.views[G]).toBeDefined();
    await guilds.onEvent({ guildId: G, removed: true } as never);
    expect(st.s.guilds.views[G]).toBeUndefined();
    expect(calls.filter(([m]) => m === "getGuild")).toHaveLength(1);
  });

  it("drops a guild GetGuild no longer knows (GUILD_NOT_FOUND: kicked while away)", async () => {
    const { st, guilds } = setup({ getGuild: notFound });
    st.s = loaded(st.s);
    await guilds.refresh(G);
    expect(st.s.guilds.views[G]).toBeUndefined();
    expect(st.types()).toEqual(["guildRemoved"]);
  });

  it("reads a guild once more when events come while it is being read, never missing the last change", async () => {
    let n = 0;
    const { guilds, calls } = setup({ getGuild: () => ((n += 1), guildRes(layout(), G, `v${n}`)) });
    await Promise.all([guilds.refresh(G), guilds.refresh(G), guilds.refresh(G)]);
    expect(calls.filter(([m]) => m === "getGuild")).toHaveLength(2);
    expect(guilds.view(G)?.guild.name).toBe("v2");
  });

  it("joins by invite and shows the guild; leaving drops it", async () => {
    const { st, guilds, calls } = setup({
      joinGuild: () => ({ guild: create(GuildSchema, { id: G }), joined: true }),
      getGuild: () => guildRes(layout()),
      leaveGuild: () => ({}),
    });
    expect(await guilds.join("AbCdEfGhIjKlMnOpQrStUv")).toBe(G);
    expect(st.s.guilds.order).toEqual([G]);
    await guilds.leave(G);
    expect(st.s.guilds.order).toEqual([]);
    expect(calls.map(([m]) => m)).toEqual(["joinGuild", "getGuild", "leaveGuild"]);
  });

  it("makes an end-to-end encrypted channel private, and only ever a text one", async () => {
    const { guilds, calls } = setup({ createChannel: () => ({}), getGuild: () => guildRes(layout()) });
    await guilds.createChannel(G, GuildChannelKind.TEXT, " secret ", { e2ee: true });
    await guilds.createChannel(G, GuildChannelKind.VOICE, "lobby", { e2ee: true });
    const made = calls.filter(([m]) => m === "createChannel").map(([, req]) => req as { name: string; e2ee: boolean; private: boolean });
    expect(made.map((r) => [r.name, r.e2ee, r.private])).toEqual([
      ["secret", true, true],
      ["lobby", false, false],
    ]);
  });

  it("sends the whole layout when channels are moved, and bans with a day's messages deleted", async () => {
    const { guilds, calls } = setup({ arrangeChannels: () => ({}), getGuild: () => guildRes(layout()), banMember: () => ({}) });
    const g = grouped(layout());
    await guilds.arrange(G, moved(g, NEWS, -1) ?? g);
    const req = calls.find(([m]) => m === "arrangeChannels")?.[1] as { layout: Array<{ channelId: string }> };
    expect(req.layout.map((p) => p.channelId)).toEqual([TOP, CAT, NEWS, GENERAL, CAT2, LOBBY]);
    await guilds.ban(G, BOB, " spam ", 86_400);
    expect(calls.find(([m]) => m === "banMember")?.[1]).toEqual({ guildId: G, accountId: BOB, reason: "spam", deleteMessagesS: 86_400 });
  });

  it("takes who the list says is online into presence in a small guild, not in a big one", async () => {
    const listed = { members: [{ accountId: BOB, roleIds: [], online: true }, { accountId: ME, roleIds: [], online: false }] };
    const small = setup({ getGuild: () => guildRes(layout()), listMembers: () => listed });
    await small.guilds.refresh(G);
    await small.guilds.members(G);
    expect(small.st.s.online).toEqual({ [BOB]: true });
    const bigGuild = () => {
      const res = guildRes(layout());
      if (res.guild) res.guild.memberCount = 251n;
      return res;
    };
    const big = setup({ getGuild: bigGuild, listMembers: () => listed });
    await big.guilds.refresh(G);
    await big.guilds.members(G);
    expect(big.st.s.online).toEqual({});
  });

  it("sets and removes the icon through the avatar service, then reads the guild again", async () => {
    const st = new TestState();
    const fake = fakeClient<GuildClient>({ getGuild: () => guildRes(layout()) });
    const icons: Array<[string, unknown]> = [];
    const avatars = {
      setGuildIcon: (req: unknown) => (icons.push(["set", req]), Promise.resolve({} as never)),
      removeGuildIcon: (req: unknown) => (icons.push(["remove", req]), Promise.resolve({} as never)),
    };
    const guilds = new Guilds(st, { client: fake.client, avatars: avatars as never, loadNames: () => undefined });
    await guilds.setIcon(G, new Blob([new Uint8Array([1, 2, 3])]));
    await guilds.removeIcon(G);
    expect(icons).toEqual([
      ["set", { guildId: G, image: new Uint8Array([1, 2, 3]) }],
      ["remove", { guildId: G }],
    ]);
    expect(fake.calls.map(([m]) => m)).toEqual(["getGuild", "getGuild"]);
  });

  it("remembers the members listed for mention suggestions, and loads their names", async () => {
    const { guilds, names } = setup({ listMembers: () => ({ members: [{ accountId: BOB, roleIds: [] }] }), kickMember: () => ({}) });
    await guilds.members(G);
    expect(guilds.knownMembers(G)).toEqual([BOB]);
    expect(names).toEqual([[BOB]]);
    await guilds.kick(G, BOB);
    expect(guilds.knownMembers(G)).toEqual([]);
  });
});
