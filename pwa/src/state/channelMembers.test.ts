import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ConversationKind, ConversationMode, MemberRole, type Conversation } from "../gen/kitsulan/v1/conversation_pb";
import { GetGuildResponseSchema, GuildChannelKind, GuildChannelSchema, GuildRoleSchema, GuildSchema } from "../gen/kitsulan/v1/guild_pb";
import { candidates, ChannelMembers } from "./channelMembers";
import type { ConversationClient } from "./conversations";
import { awaitingMembers, Perm } from "./guilds";
import { BOB, CAROL, ME, TestState, conversation, fakeClient } from "./testkit";

const G = "00000000-0000-7000-8000-0000000000e1";
const SECRET = "00000000-0000-7000-8000-0000000000f9";
const GENERAL = "00000000-0000-7000-8000-0000000000f1";

/** A guild with #general (cloud) and #secret (private, end-to-end encrypted), as its member sees it. */
function loadedGuild(st: TestState): void {
  st.dispatch({
    type: "guildLoaded",
    guild: create(GetGuildResponseSchema, {
      guild: create(GuildSchema, { id: G, name: "LAN party", ownerId: ME }),
      channels: [
        create(GuildChannelSchema, { id: GENERAL, kind: GuildChannelKind.TEXT, name: "general", permissions: Perm.VIEW_CHANNEL }),
        create(GuildChannelSchema, { id: SECRET, kind: GuildChannelKind.TEXT, name: "secret", e2ee: true, permissions: Perm.ADMINISTRATOR }),
      ],
      roles: [create(GuildRoleSchema, { id: G, name: "@everyone" })],
    }),
  });
}

function secret(members: string[]): Conversation {
  return conversation({ id: SECRET, kind: ConversationKind.CHANNEL, mode: ConversationMode.E2EE, title: "secret", members });
}

/** A call the server refuses with `reason` (as the server sends it: google.rpc.ErrorInfo). */
const refused = (reason: string) => (): never => {
  const err = new ConnectError("refused", Code.NotFound);
  const bytes = new TextEncoder().encode(reason);
  err.details.push({ type: "google.rpc.ErrorInfo", value: new Uint8Array([0x0a, bytes.length, ...bytes]) });
  throw err;
};

function setup(methods: Parameters<typeof fakeClient<ConversationClient>>[0]) {
  const st = new TestState();
  loadedGuild(st);
  const names: string[][] = [];
  const fake = fakeClient<ConversationClient>(methods);
  const members = new ChannelMembers(st, { client: fake.client, loadNames: (ids) => names.push(ids) });
  return { st, members, calls: fake.calls, names };
}

describe("candidates", () => {
  const names: Record<string, string> = { [ME]: "Me", [BOB]: "Bob", [CAROL]: "Carol", d: "Dave" };
  const nameOf = (id: string) => names[id] ?? id;
  const guild = [ME, CAROL, BOB, "d"].map((accountId) => ({ accountId }));

  it("offers the guild's members not in the channel yet, by name", () => {
    expect(candidates(guild, [ME, CAROL], "", nameOf)).toEqual([BOB, "d"]);
  });

  it("finds them by any part of their name, in any case", () => {
    expect(candidates(guild, [ME], "  aR ", nameOf)).toEqual([CAROL]);
    expect(candidates(guild, [ME, CAROL, BOB, "d"], "", nameOf)).toEqual([]);
  });
});

describe("ChannelMembers", () => {
  it("reads the members of a private channel the guild showed without them, never encrypting to us alone", async () => {
    const { st, members, calls, names } = setup({ getConversation: () => ({ conversation: secret([ME, BOB]) }) });
    expect(awaitingMembers(st.s.guilds, SECRET)).toBe(true);
    // The cloud channel has no members to wait for.
    expect(awaitingMembers(st.s.guilds, GENERAL)).toBe(false);
    members.loadMissing();
    await members.load(SECRET);
    expect(calls).toEqual([["getConversation", { conversationId: SECRET }]]);
    expect(awaitingMembers(st.s.guilds, SECRET)).toBe(false);
    expect(st.s.guilds.channels[SECRET]?.members.map((m) => m.accountId)).toEqual([ME, BOB]);
    expect(names).toEqual([[ME, BOB]]);
    // Read again (the guild changed): nothing to ask, the names of those known to load.
    members.loadMissing();
    expect(calls).toHaveLength(1);
    expect(names).toEqual([
      [ME, BOB],
      [ME, BOB],
    ]);
    // It is a channel of the guild, not a conversation of the direct-message list.
    expect(st.s.conversations).toEqual([]);
  });

  it("adds and removes members with the answer's rows, keeping our own row and read mark", async () => {
    const { st, members, calls } = setup({
      addMembers: () => ({ conversation: secret([ME, BOB, CAROL]) }),
      removeMember: () => ({ conversation: secret([ME, CAROL]) }),
    });
    const ours = st.s.guilds.channels[SECRET]?.members[0];
    await members.add(SECRET, [BOB, CAROL]);
    expect(st.s.guilds.channels[SECRET]?.members.map((m) => m.accountId)).toEqual([ME, BOB, CAROL]);
    expect(st.s.guilds.channels[SECRET]?.members[0]).toBe(ours);
    expect(ours?.role).toBe(MemberRole.ADMIN);
    await members.remove(SECRET, BOB);
    expect(st.s.guilds.channels[SECRET]?.members.map((m) => m.accountId)).toEqual([ME, CAROL]);
    expect(calls.map(([m, req]) => [m, req])).toEqual([
      ["addMembers", { conversationId: SECRET, accountIds: [BOB, CAROL] }],
      ["removeMember", { conversationId: SECRET, accountId: BOB }],
    ]);
  });

  it("leaving takes the channel from the guild's list at once", async () => {
    const { st, members } = setup({ leaveConversation: () => ({}) });
    st.s = { ...st.s, active: SECRET };
    await members.leave(SECRET);
    expect(st.s.guilds.channels[SECRET]).toBeUndefined();
    expect(st.s.guilds.views[G]?.channels.map((c) => c.id)).toEqual([GENERAL]);
    expect(st.s.active).toBeNull();
  });

  it("on a member event reads the members again, and drops the channel when we are the one removed", async () => {
    const { st, members, calls } = setup({ getConversation: () => ({ conversation: secret([ME, CAROL]) }) });
    expect(members.isPrivateChannel(SECRET)).toBe(true);
    expect(members.isPrivateChannel(GENERAL)).toBe(false);
    await members.onEvent({ conversationId: SECRET, accountId: BOB, removed: true } as never);
    expect(calls).toHaveLength(1);
    expect(st.s.guilds.channels[SECRET]?.members.map((m) => m.accountId)).toEqual([ME, CAROL]);
    st.s = { ...st.s, active: SECRET };
    await members.onEvent({ conversationId: SECRET, accountId: ME, removed: true } as never);
    expect(calls).toHaveLength(1);
    expect(st.s.guilds.channels[SECRET]).toBeUndefined();
    // The open channel closes, its name kept to say why.
    expect(st.s.active).toBeNull();
    expect(st.s.guilds.closed).toEqual({ guildId: G, name: "secret" });
  });

  it("drops a channel the server no longer lets us read", async () => {
    const { st, members } = setup({ getConversation: refused("CONVERSATION_NOT_FOUND") });
    await members.load(SECRET);
    expect(st.s.guilds.channels[SECRET]).toBeUndefined();
  });
});
