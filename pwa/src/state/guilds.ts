// guilds.ts — the guilds (communities) this account is in, as GetGuild shows each one (the
// channels the caller can see in order, the roles, the caller's permissions), which one is on
// screen, and each text channel as a conversation the message stores can work in.
//
// A guild's text, announcement and voice channels are conversations of kind CHANNEL with the
// channel's id (docs/guilds.md): ConversationService sends, lists, edits and marks them read. They
// are not in the conversation list, so this store keeps a Conversation for each (`channels`):
// mode CLOUD with us as its one member carrying our read mark, so messages.ts, outbox.ts,
// receipts.ts and pins.ts work in a channel as in a cloud group. Their unread and mention counts
// start from GetGuild and move with the live `message` events, as a conversation's do.
//
// A private end-to-end encrypted channel is mode E2EE with its real members (`members`: the rows
// ListConversations and GetConversation give for it, which conversations.ts leaves to this store),
// so the outbox encrypts to every member's devices as in an E2EE group, and the engine rotates its
// key when someone leaves. Until its rows are read it is `awaitingMembers` (never encrypted to us
// alone).
//
// The gateway's `guild` event says a guild changed: it is read again with GetGuild; `removed`
// (kicked, banned, left, deleted) drops it here at once, with its channels.
import type { Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { reasonOf } from "../errors";
import {
  ConversationKind,
  ConversationMode,
  ConversationSchema,
  MemberRole,
  MemberSchema,
  type Conversation,
  type Member,
} from "../gen/kitsulan/v1/conversation_pb";
import type { AvatarService } from "../gen/kitsulan/v1/avatar_pb";
import type { GuildEvent } from "../gen/kitsulan/v1/gateway_pb";
import {
  GuildChannelKind,
  type AuditLogEntry,
  type GetGuildResponse,
  type GetInviteResponse,
  type Guild,
  type GuildBan,
  type GuildChannel,
  type GuildInvite,
  type GuildMember,
  type GuildRole,
  type GuildService,
} from "../gen/kitsulan/v1/guild_pb";
import { mentionsMe } from "./mentions";
import type { ChatEvent, StateAccess } from "./store";

/** The permission bits (guild.proto); a bit never changes its number. */
export const Perm = {
  VIEW_CHANNEL: 1n << 0n,
  SEND_MESSAGES: 1n << 1n,
  MANAGE_MESSAGES: 1n << 2n,
  MANAGE_CHANNELS: 1n << 3n,
  MANAGE_ROLES: 1n << 4n,
  KICK_MEMBERS: 1n << 5n,
  BAN_MEMBERS: 1n << 6n,
  TIMEOUT_MEMBERS: 1n << 7n,
  CREATE_INVITES: 1n << 8n,
  MENTION_EVERYONE: 1n << 9n,
  ATTACH_FILES: 1n << 10n,
  ADD_REACTIONS: 1n << 11n,
  CONNECT: 1n << 12n,
  SPEAK: 1n << 13n,
  MANAGE_GUILD: 1n << 14n,
  VIEW_AUDIT_LOG: 1n << 15n,
  ADMINISTRATOR: 1n << 16n,
} as const;

export type PermName = keyof typeof Perm;

/** The permissions in the order the role editor lists them. */
export const PERM_NAMES = Object.keys(Perm) as PermName[];

/** Whether `perms` include `bit` (ADMINISTRATOR includes every bit, as on the server). */
export function has(perms: bigint, bit: bigint): boolean {
  return (perms & bit) === bit || (perms & Perm.ADMINISTRATOR) !== 0n;
}

/** A guild as GetGuild showed it to us. */
export interface GuildView {
  guild: Guild;
  /** The channels we can see: top-level ones, then each category followed by its channels. */
  channels: GuildChannel[];
  /** Every role, `@everyone` (the guild's id) first, upwards. */
  roles: GuildRole[];
  myRoleIds: string[];
  myPermissions: bigint;
  /** 0, or until when we are in a timeout (ms). */
  myTimedOutUntilMs: bigint;
}

export interface GuildsPart {
  /** The guilds we are in, in the order we joined (ListGuilds), then those made or joined here. */
  order: string[];
  /** Each guild as GetGuild last answered (absent until it did). */
  views: Record<string, GuildView>;
  /** Text, announcement and voice channels as conversations (kind CHANNEL), by channel id. */
  channels: Record<string, Conversation>;
  /** The member rows of the private end-to-end encrypted channels we are in, by channel id. */
  members: Record<string, Member[]>;
  /** The channel that was open when it went from our list (removed from it, deleted): the guild
   * shows its name instead of the chat, until another one opens. */
  closed: { guildId: string; name: string } | null;
  /** The guild on screen (null: direct messages). */
  selected: string | null;
  /** Whether ListGuilds answered once (the rail shows its guilds). */
  loaded: boolean;
}

export interface GuildsState {
  guilds: GuildsPart;
  /** The conversation (or channel) on screen. */
  active: string | null;
  me: { accountId: string };
}

/** Guilds of up to this many members hear their members' presence live (the server's
 * PRESENCE_GUILD_MAX); a bigger one's member list says who was online when it was read. */
export const PRESENCE_LIVE_MAX = 250n;

export const EMPTY_GUILDS: GuildsPart = { order: [], views: {}, channels: {}, members: {}, closed: null, selected: null, loaded: false };

/** Whether a channel holds messages (a text, announcement or voice channel; not a category). */
export function isChat(c: Pick<GuildChannel, "kind">): boolean {
  return c.kind === GuildChannelKind.TEXT || c.kind === GuildChannelKind.ANNOUNCEMENT || c.kind === GuildChannelKind.VOICE;
}

/** Whether a channel opens as a chat here (text and announcement; voice waits for the SFU). */
export function opensAsChat(c: Pick<GuildChannel, "kind">): boolean {
  return c.kind === GuildChannelKind.TEXT || c.kind === GuildChannelKind.ANNOUNCEMENT;
}

/** The conversation a channel is for the message stores: us as its one member with our read
 * mark, admin (pins, deleting others' messages) when we have MANAGE_MESSAGES there; a private
 * E2EE channel with its member rows (`rows`, when read) besides. Its counts are the server's,
 * except that a read mark never moves back: `readBefore` (what this app marked already, which a
 * GetGuild that crossed our MarkRead may not know yet) is kept when further. */
export function channelConversation(guild: Guild, channel: GuildChannel, me: string, readBefore = 0n, rows: Member[] = []): Conversation {
  const readSeq = readBefore > channel.readSeq ? readBefore : channel.readSeq;
  const unread = channel.lastSeq > readSeq ? Number(channel.lastSeq - readSeq) : 0;
  const mine = create(MemberSchema, {
    accountId: me,
    readSeq: readSeq > 0n ? readSeq : 0n,
    role: has(channel.permissions, Perm.MANAGE_MESSAGES) ? MemberRole.ADMIN : MemberRole.MEMBER,
  });
  const others = channel.e2ee ? rows.filter((m) => m.accountId !== me) : [];
  return create(ConversationSchema, {
    id: channel.id,
    kind: ConversationKind.CHANNEL,
    mode: channel.e2ee ? ConversationMode.E2EE : ConversationMode.CLOUD,
    title: channel.name,
    members: [mine, ...others],
    lastSeq: channel.lastSeq > 0n ? channel.lastSeq : 0n,
    createdAtMs: guild.createdAtMs,
    unreadCount: unread,
    mentionCount: unread > 0 ? channel.mentionCount : 0,
  });
}

function withView<S extends GuildsState>(state: S, res: Pick<GetGuildResponse, "guild" | "channels" | "roles" | "myRoleIds" | "myPermissions" | "myTimedOutUntilMs">): S {
  const guild = res.guild;
  if (!guild) return state;
  const view: GuildView = {
    guild,
    channels: res.channels,
    roles: res.roles,
    myRoleIds: res.myRoleIds,
    myPermissions: res.myPermissions,
    myTimedOutUntilMs: res.myTimedOutUntilMs,
  };
  const g = state.guilds;
  const channels: Record<string, Conversation> = {};
  for (const [id, c] of Object.entries(g.channels)) if (guildOfChannel(g, id) !== guild.id) channels[id] = c;
  for (const ch of view.channels) {
    const before = g.channels[ch.id]?.members[0]?.readSeq ?? 0n;
    if (isChat(ch)) channels[ch.id] = channelConversation(guild, ch, state.me.accountId, before, g.members[ch.id]);
  }
  return closing(state, { ...g, order: g.order.includes(guild.id) ? g.order : [...g.order, guild.id], views: { ...g.views, [guild.id]: view }, channels });
}

/** `state` with the guilds part `next`: the member rows of channels gone from it go, and a
 * channel we can no longer see (deleted, hidden from us, or a private one we are out of) closes,
 * its name kept to say so. */
function closing<S extends GuildsState>(state: S, next: GuildsPart): S {
  const g = state.guilds;
  // Rows of a channel not listed yet (its guild still being read) stay for it.
  const members: Record<string, Member[]> = {};
  for (const [id, rows] of Object.entries(next.members)) if (next.channels[id] || !g.channels[id]) members[id] = rows;
  const gone = state.active && g.channels[state.active] && !next.channels[state.active] ? state.active : null;
  if (!gone) return { ...state, guilds: { ...next, members } };
  const guildId = guildOfChannel(g, gone);
  const name = guildId ? g.views[guildId]?.channels.find((c) => c.id === gone)?.name : undefined;
  const closed = guildId && name !== undefined && next.views[guildId] ? { guildId, name } : next.closed;
  return { ...state, active: null, guilds: { ...next, members, closed } };
}

/** The member rows a private E2EE channel's conversation brought (ListConversations,
 * GetConversation, AddMembers, RemoveMember): kept, and its conversation rebuilt with them. */
function withRows<S extends GuildsState>(state: S, conversations: Conversation[]): S {
  const rows = conversations.filter((c) => c.kind === ConversationKind.CHANNEL && c.mode === ConversationMode.E2EE);
  if (rows.length === 0) return state;
  const g = state.guilds;
  const members = { ...g.members };
  const channels = { ...g.channels };
  for (const c of rows) {
    members[c.id] = c.members;
    // Our own row stays ours (our read mark as this app keeps it, our role from the channel).
    const held = channels[c.id];
    const mine = held?.members.find((m) => m.accountId === state.me.accountId);
    if (held && mine) channels[c.id] = { ...held, members: [mine, ...c.members.filter((m) => m.accountId !== state.me.accountId)] };
  }
  return { ...state, guilds: { ...g, members, channels } };
}

/** Whether channel `id` is a private E2EE channel whose members this app has not read yet (its
 * messages must not be encrypted to the one member it knows, us). */
export function awaitingMembers(g: GuildsPart, id: string): boolean {
  return g.channels[id]?.mode === ConversationMode.E2EE && !g.members[id];
}

function withoutGuild<S extends GuildsState>(state: S, guildId: string): S {
  const g = state.guilds;
  if (!g.order.includes(guildId) && !g.views[guildId]) return state;
  const channels: Record<string, Conversation> = {};
  for (const [id, c] of Object.entries(g.channels)) if (guildOfChannel(g, id) !== guildId) channels[id] = c;
  const { [guildId]: _gone, ...views } = g.views;
  return closing(state, {
    ...g,
    order: g.order.filter((id) => id !== guildId),
    views,
    channels,
    selected: g.selected === guildId ? null : g.selected,
    closed: g.closed?.guildId === guildId ? null : g.closed,
  });
}

/** We left (or were taken out of) a private channel: it goes from its guild's list at once (the
 * `guild` event that follows reads the guild again). */
function withoutChannel<S extends GuildsState>(state: S, channelId: string): S {
  const g = state.guilds;
  const guildId = guildOfChannel(g, channelId);
  const view = guildId ? g.views[guildId] : undefined;
  if (!guildId || !view) return state;
  const { [channelId]: _gone, ...channels } = g.channels;
  const views = { ...g.views, [guildId]: { ...view, channels: view.channels.filter((c) => c.id !== channelId) } };
  return closing(state, { ...g, views, channels });
}

function withChannel<S extends GuildsState>(state: S, id: string, change: (c: Conversation) => Conversation): S {
  const c = state.guilds.channels[id];
  if (!c) return state;
  const next = change(c);
  if (next === c) return state;
  return { ...state, guilds: { ...state.guilds, channels: { ...state.guilds.channels, [id]: next } } };
}

/** The guild a channel belongs to (undefined: not a channel we know). */
export function guildOfChannel(g: GuildsPart, channelId: string): string | undefined {
  for (const [guildId, v] of Object.entries(g.views)) if (v.channels.some((c) => c.id === channelId)) return guildId;
  return undefined;
}

export function apply<S extends GuildsState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "guildsListed": {
      const ids = event.guilds.map((g) => g.id);
      const listed = new Set(ids);
      let s: S = { ...state, guilds: { ...state.guilds, order: ids, loaded: true } };
      // Guilds we are no longer in (left while this app was away) go with their channels.
      for (const id of Object.keys(state.guilds.views)) if (!listed.has(id)) s = withoutGuild(s, id);
      // What ListGuilds says of a guild (its name, its member count) is newer than the view's.
      const views = { ...s.guilds.views };
      for (const guild of event.guilds) {
        const v = views[guild.id];
        if (v) views[guild.id] = { ...v, guild };
      }
      return { ...s, guilds: { ...s.guilds, order: ids, views } };
    }
    case "guildLoaded":
      return withView(state, event.guild);
    case "guildRemoved":
      return withoutGuild(state, event.guildId);
    case "guildSelected":
      return state.guilds.selected === event.guildId ? state : { ...state, guilds: { ...state.guilds, selected: event.guildId, closed: null } };
    case "opened":
      return event.conversationId && state.guilds.closed ? { ...state, guilds: { ...state.guilds, closed: null } } : state;
    case "conversationsLoaded":
      return withRows(state, event.conversations);
    case "conversationChanged":
      return withRows(state, [event.conversation]);
    case "conversationLeft":
    case "channelLost":
      return state.guilds.channels[event.conversationId] ? withoutChannel(state, event.conversationId) : state;
    case "messageSent":
      return withChannel(state, event.conversationId, (c) => (event.message.seq > c.lastSeq ? { ...c, lastSeq: event.message.seq } : c));
    case "messageArrived": {
      const m = event.message;
      return withChannel(state, m.conversationId, (c) => {
        if (event.known) return c;
        const unread = event.fromOther && !event.visible && m.deletedAtMs === 0n && !m.system && m.seq > c.lastSeq;
        if (m.seq <= c.lastSeq && !unread) return c;
        return {
          ...c,
          lastSeq: m.seq > c.lastSeq ? m.seq : c.lastSeq,
          unreadCount: c.unreadCount + (unread ? 1 : 0),
          mentionCount: c.mentionCount + (unread && mentionsMe(event.content, state.me.accountId) ? 1 : 0),
        };
      });
    }
    case "markedRead":
      return withChannel(state, event.conversationId, (c) => ({
        ...c,
        members: c.members.map((m) => (m.accountId === event.accountId ? { ...m, readSeq: event.readSeq } : m)),
        unreadCount: event.unreadCount,
        mentionCount: event.unreadCount === 0 ? 0 : c.mentionCount,
      }));
    case "receipt": {
      // Our own read mark from another of our devices.
      const r = event.receipt;
      if (r.accountId !== event.me) return state;
      return withChannel(state, r.conversationId, (c) => ({
        ...c,
        members: c.members.map((m) => (m.accountId === r.accountId && r.readSeq > m.readSeq ? { ...m, readSeq: r.readSeq } : m)),
        unreadCount: r.unreadCount,
        mentionCount: r.unreadCount === 0 ? 0 : c.mentionCount,
      }));
    }
    default:
      return state;
  }
}

/** A category with its channels, or a top-level channel (`category` null), in list order. */
export interface ChannelGroup {
  category: GuildChannel | null;
  channels: GuildChannel[];
}

/** The channel list as it shows: the top-level channels first, then each category with its
 * channels, each in its position order. */
export function grouped(channels: GuildChannel[]): ChannelGroup[] {
  const byPos = (a: GuildChannel, b: GuildChannel) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0);
  const categories = channels.filter((c) => c.kind === GuildChannelKind.CATEGORY).sort(byPos);
  const known = new Set(categories.map((c) => c.id));
  const top = channels.filter((c) => c.kind !== GuildChannelKind.CATEGORY && (!c.parentId || !known.has(c.parentId))).sort(byPos);
  const out: ChannelGroup[] = [];
  if (top.length > 0) out.push({ category: null, channels: top });
  for (const cat of categories) out.push({ category: cat, channels: channels.filter((c) => c.parentId === cat.id && c.kind !== GuildChannelKind.CATEGORY).sort(byPos) });
  return out;
}

/** The whole layout ArrangeChannels takes, from groups in the order wanted. */
export function layoutOf(groups: ChannelGroup[]): Array<{ channelId: string; parentId: string }> {
  const out: Array<{ channelId: string; parentId: string }> = [];
  for (const g of groups) {
    if (g.category) out.push({ channelId: g.category.id, parentId: "" });
    for (const c of g.channels) out.push({ channelId: c.id, parentId: g.category?.id ?? "" });
  }
  return out;
}

/** The groups with channel (or category) `id` moved one place up (`delta` -1) or down (+1): a
 * channel at the edge of its category moves into the one before or after it (or the top level);
 * a category moves among the categories. Null when it cannot move further. */
export function moved(groups: ChannelGroup[], id: string, delta: -1 | 1): ChannelGroup[] | null {
  const gs = groups.map((g) => ({ category: g.category, channels: [...g.channels] }));
  const gi = gs.findIndex((g) => g.category?.id === id);
  if (gi >= 0) {
    // Categories move among themselves; the top-level group (category null) stays first.
    const to = gi + delta;
    if (to < 0 || to >= gs.length || !gs[to]?.category) return null;
    const [g] = gs.splice(gi, 1);
    if (!g) return null;
    gs.splice(to, 0, g);
    return gs;
  }
  const from = gs.findIndex((g) => g.channels.some((c) => c.id === id));
  const group = gs[from];
  if (!group) return null;
  const at = group.channels.findIndex((c) => c.id === id);
  const ch = group.channels[at];
  const other = group.channels[at + delta];
  if (!ch) return null;
  if (other) {
    // Within its group: it swaps with its neighbour.
    group.channels[at + delta] = ch;
    group.channels[at] = other;
    return gs;
  }
  // Over the edge: into the end of the group before, or the start of the one after (above the
  // first category, a top-level group appears).
  group.channels.splice(at, 1);
  if (delta === -1) {
    const before = gs[from - 1];
    if (before) before.channels.push(ch);
    else if (group.category !== null) gs.unshift({ category: null, channels: [ch] });
    else return null;
  } else {
    const after = gs[from + 1];
    if (!after) return null;
    after.channels.unshift(ch);
  }
  return gs.filter((g) => g.category !== null || g.channels.length > 0);
}

/** The group layout with channel `id` put before `beforeId` (a channel or category: then it goes
 * at the start of that category) — drag and drop. */
export function dropped(groups: ChannelGroup[], id: string, target: { beforeId?: string; intoCategory?: string | null }): ChannelGroup[] {
  const gs = groups.map((g) => ({ category: g.category, channels: g.channels.filter((c) => c.id !== id) }));
  const ch = groups.flatMap((g) => g.channels).find((c) => c.id === id);
  if (!ch) return groups;
  if (target.beforeId) {
    for (const g of gs) {
      const at = g.channels.findIndex((c) => c.id === target.beforeId);
      if (at >= 0) {
        g.channels.splice(at, 0, ch);
        return gs;
      }
    }
  }
  const into = target.intoCategory ?? null;
  let g = gs.find((x) => (x.category?.id ?? null) === into);
  if (!g) {
    g = { category: null, channels: [] };
    gs.unshift(g);
  }
  g.channels.push(ch);
  return gs.filter((x) => x.category !== null || x.channels.length > 0);
}

/** The channel `delta` places from `currentId` among those that open as chats (Alt+↑/↓), wrapping
 * around; the first one when none is open. */
export function adjacentChannel(view: GuildView, currentId: string | null, delta: -1 | 1): string | null {
  const list = grouped(view.channels).flatMap((g) => g.channels).filter(opensAsChat);
  if (list.length === 0) return null;
  const at = list.findIndex((c) => c.id === currentId);
  if (at < 0) return list[0]?.id ?? null;
  return list[(at + delta + list.length) % list.length]?.id ?? null;
}

/** A guild's unread state for the rail: any unread channel, and the mentions over all of them. */
export function guildUnread(g: GuildsPart, guildId: string): { unread: boolean; mentions: number } {
  const view = g.views[guildId];
  let unread = false;
  let mentions = 0;
  for (const ch of view?.channels ?? []) {
    const c = g.channels[ch.id];
    if (!c || ch.kind === GuildChannelKind.VOICE) continue;
    if (c.unreadCount > 0) unread = true;
    mentions += c.mentionCount;
  }
  return { unread, mentions };
}

/** The seconds slow mode still holds our next message in a channel (0: now): `slowModeS` after
 * our last one (`lastSentMs`, null: none), rounded up. */
export function slowModeWait(lastSentMs: number | null, slowModeS: number, now: number): number {
  if (!lastSentMs || slowModeS <= 0) return 0;
  const left = lastSentMs + slowModeS * 1000 - now;
  return left > 0 ? Math.ceil(left / 1000) : 0;
}

/** A member's highest role (null: only `@everyone`). */
export function highestRole(roles: GuildRole[], roleIds: string[]): GuildRole | null {
  let top: GuildRole | null = null;
  for (const r of roles) if (roleIds.includes(r.id) && (!top || r.position > top.position)) top = r;
  return top;
}

/** Our highest role's position (the owner is above every role). */
export function myRank(view: GuildView, me: string): number {
  if (view.guild.ownerId === me) return Number.MAX_SAFE_INTEGER;
  return highestRole(view.roles, view.myRoleIds)?.position ?? 0;
}

/** Whether we stand above `member` in the guild (its owner, or with a highest role above
 * theirs): whom the server lets us remove from a private channel. Null: not listed here (the
 * server decides). */
export function outranks(view: GuildView, me: string, member: Pick<GuildMember, "accountId" | "roleIds"> | undefined): boolean | null {
  if (!member) return null;
  if (member.accountId === me || member.accountId === view.guild.ownerId) return false;
  return myRank(view, me) > (highestRole(view.roles, member.roleIds)?.position ?? 0);
}

/** Two letters for a guild without an icon: the first letters of its first two words. */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[1]].map((w) => [...(w ?? "")][0] ?? "") : [...(words[0] ?? "")].slice(0, 2);
  return letters.join("").toUpperCase() || "?";
}

export type GuildClient = Client<typeof GuildService>;

/** Whom a channel's overwrite is for. */
export type OverwriteTarget = { case: "roleId"; value: string } | { case: "accountId"; value: string };

/** The permissions that mean something in one channel (the overwrite editor's rows). */
export const CHANNEL_PERMS: PermName[] = [
  "VIEW_CHANNEL",
  "SEND_MESSAGES",
  "ADD_REACTIONS",
  "ATTACH_FILES",
  "MENTION_EVERYONE",
  "MANAGE_MESSAGES",
  "MANAGE_CHANNELS",
  "CONNECT",
  "SPEAK",
];

/** One bit of an overwrite: allowed, denied, or left to the roles ("inherit"). */
export type OverwriteState = "allow" | "inherit" | "deny";

export function overwriteState(allow: bigint, deny: bigint, bit: bigint): OverwriteState {
  if ((allow & bit) === bit) return "allow";
  if ((deny & bit) === bit) return "deny";
  return "inherit";
}

/** `allow` and `deny` with `bit` set to `state`. */
export function withOverwrite(o: { allow: bigint; deny: bigint }, bit: bigint, state: OverwriteState): { allow: bigint; deny: bigint } {
  const allow = o.allow & ~bit;
  const deny = o.deny & ~bit;
  if (state === "allow") return { allow: allow | bit, deny };
  if (state === "deny") return { allow, deny: deny | bit };
  return { allow, deny };
}

export interface GuildsDeps {
  client: Partial<GuildClient>;
  /** Guild icons go through the avatar pipeline (AvatarService). */
  avatars?: Pick<Client<typeof AvatarService>, "setGuildIcon" | "removeGuildIcon">;
  /** Loads people's names (members, bans, the audit log). */
  loadNames: (accountIds: string[]) => void;
  /** A guild was read (its private channels' members are read next: channelMembers.ts). */
  loaded?: (guildId: string) => void;
}

function need<K extends keyof GuildClient>(client: Partial<GuildClient>, name: K): GuildClient[K] {
  const m = client[name];
  if (!m) throw new Error(`no ${String(name)} client`);
  return m;
}

export class Guilds {
  private loading = new Map<string, Promise<void>>();
  private again = new Set<string>();
  /** The members listed so far, by guild (mention suggestions in its channels). */
  private listed = new Map<string, Map<string, GuildMember>>();

  constructor(
    private readonly state: StateAccess,
    private readonly deps: GuildsDeps,
  ) {}

  private get c(): Partial<GuildClient> {
    return this.deps.client;
  }

  /** The conversation of a channel (undefined: not a channel we know). */
  channel(id: string): Conversation | undefined {
    return this.state.get().guilds.channels[id];
  }

  view(guildId: string): GuildView | undefined {
    return this.state.get().guilds.views[guildId];
  }

  /** The guild a channel is in. */
  guildOf(channelId: string): GuildView | undefined {
    const g = this.state.get().guilds;
    const id = guildOfChannel(g, channelId);
    return id ? g.views[id] : undefined;
  }

  /** The channel as GetGuild gave it. */
  channelInfo(channelId: string): GuildChannel | undefined {
    return this.guildOf(channelId)?.channels.find((c) => c.id === channelId);
  }

  /** Loads the guilds we are in, and each one's channels (when connecting and reconnecting: the
   * `guild` events are live only). */
  async load(): Promise<void> {
    const res = await need(this.c, "listGuilds")({});
    this.state.dispatch({ type: "guildsListed", guilds: res.guilds });
    await Promise.all(res.guilds.map((g) => this.refresh(g.id).catch(() => undefined)));
  }

  /** Reads a guild again (GetGuild); one we are no longer in goes. Calls that overlap read it
   * once more after the one in flight, so the last change is never missed. */
  refresh(guildId: string): Promise<void> {
    const inFlight = this.loading.get(guildId);
    if (inFlight) {
      this.again.add(guildId);
      return inFlight;
    }
    const run = (async () => {
      try {
        do {
          this.again.delete(guildId);
          try {
            const res = await need(this.c, "getGuild")({ guildId });
            this.state.dispatch({ type: "guildLoaded", guild: res });
            this.deps.loaded?.(guildId);
          } catch (err) {
            if (reasonOf(err) === "GUILD_NOT_FOUND") {
              this.state.dispatch({ type: "guildRemoved", guildId });
              return;
            }
            throw err;
          }
        } while (this.again.has(guildId));
      } finally {
        this.loading.delete(guildId);
      }
    })();
    this.loading.set(guildId, run);
    return run;
  }

  /** The gateway's `guild` event: read it again, or (removed) drop it at once. */
  async onEvent(e: GuildEvent): Promise<void> {
    if (e.removed) {
      this.state.dispatch({ type: "guildRemoved", guildId: e.guildId });
      return;
    }
    await this.refresh(e.guildId);
  }

  /** Shows a guild's channels (null: the direct messages). */
  select(guildId: string | null): void {
    this.state.dispatch({ type: "guildSelected", guildId });
  }

  async create(name: string, description = ""): Promise<string> {
    const res = await need(this.c, "createGuild")({ name: name.trim(), description: description.trim() });
    if (!res.guild) throw new Error("CreateGuild answered without a guild");
    await this.refresh(res.guild.id);
    return res.guild.id;
  }

  /** What an invite leads to (its join page). */
  preview(code: string): Promise<GetInviteResponse> {
    return need(this.c, "getInvite")({ code });
  }

  /** Joins by invite; returns the guild's id. */
  async join(code: string): Promise<string> {
    const res = await need(this.c, "joinGuild")({ code });
    if (!res.guild) throw new Error("JoinGuild answered without a guild");
    await this.refresh(res.guild.id);
    return res.guild.id;
  }

  async update(guildId: string, name: string, description: string): Promise<void> {
    await need(this.c, "updateGuild")({ guildId, name: name.trim(), description: description.trim() });
    await this.refresh(guildId);
  }

  /** Sets the guild's icon from a PNG, JPEG or WebP file (MANAGE_GUILD); the server checks,
   * resizes and strips it. */
  async setIcon(guildId: string, file: Blob): Promise<void> {
    const avatars = this.deps.avatars;
    if (!avatars) throw new Error("no avatar client");
    await avatars.setGuildIcon({ guildId, image: new Uint8Array(await file.arrayBuffer()) });
    await this.refresh(guildId);
  }

  /** Removes the guild's icon (MANAGE_GUILD). */
  async removeIcon(guildId: string): Promise<void> {
    const avatars = this.deps.avatars;
    if (!avatars) throw new Error("no avatar client");
    await avatars.removeGuildIcon({ guildId });
    await this.refresh(guildId);
  }

  async remove(guildId: string, confirmName: string): Promise<void> {
    await need(this.c, "deleteGuild")({ guildId, confirmName });
    this.state.dispatch({ type: "guildRemoved", guildId });
  }

  async leave(guildId: string): Promise<void> {
    await need(this.c, "leaveGuild")({ guildId });
    this.state.dispatch({ type: "guildRemoved", guildId });
  }

  async transfer(guildId: string, accountId: string): Promise<void> {
    await need(this.c, "transferGuild")({ guildId, accountId });
    await this.refresh(guildId);
  }

  /** Makes a channel; `e2ee`: a private end-to-end encrypted text channel, we its first member. */
  async createChannel(
    guildId: string,
    kind: GuildChannelKind,
    name: string,
    options: { topic?: string; parentId?: string; private?: boolean; e2ee?: boolean } = {},
  ): Promise<GuildChannel | undefined> {
    const e2ee = kind === GuildChannelKind.TEXT && (options.e2ee ?? false);
    const res = await need(this.c, "createChannel")({
      guildId,
      kind,
      name: name.trim(),
      topic: options.topic?.trim() ?? "",
      parentId: kind === GuildChannelKind.CATEGORY ? "" : (options.parentId ?? ""),
      private: e2ee || (options.private ?? false),
      e2ee,
    });
    await this.refresh(guildId);
    return res.channel;
  }

  async updateChannel(guildId: string, channelId: string, name: string, topic: string, slowModeS: number): Promise<void> {
    await need(this.c, "updateChannel")({ channelId, name: name.trim(), topic: topic.trim(), slowModeS });
    await this.refresh(guildId);
  }

  async deleteChannel(guildId: string, channelId: string): Promise<void> {
    await need(this.c, "deleteChannel")({ channelId });
    await this.refresh(guildId);
  }

  async arrange(guildId: string, groups: ChannelGroup[]): Promise<void> {
    await need(this.c, "arrangeChannels")({ guildId, layout: layoutOf(groups) });
    await this.refresh(guildId);
  }

  /** Sets a channel's overwrite for a role (`@everyone`: the guild's id) or a member. */
  async setOverwrite(guildId: string, channelId: string, target: OverwriteTarget, allow: bigint, deny: bigint): Promise<void> {
    await need(this.c, "setChannelOverwrite")({ channelId, overwrite: { target, allow, deny } });
    await this.refresh(guildId);
  }

  async removeOverwrite(guildId: string, channelId: string, target: OverwriteTarget): Promise<void> {
    await need(this.c, "removeChannelOverwrite")({ channelId, target });
    await this.refresh(guildId);
  }

  async createRole(guildId: string, name: string, color: number, permissions: bigint): Promise<void> {
    await need(this.c, "createRole")({ guildId, name: name.trim(), color, permissions });
    await this.refresh(guildId);
  }

  async updateRole(guildId: string, roleId: string, name: string, color: number, permissions: bigint): Promise<void> {
    await need(this.c, "updateRole")({ guildId, roleId, name: name.trim(), color, permissions });
    await this.refresh(guildId);
  }

  async deleteRole(guildId: string, roleId: string): Promise<void> {
    await need(this.c, "deleteRole")({ guildId, roleId });
    await this.refresh(guildId);
  }

  /** Puts the roles (all but `@everyone`) in this order, lowest first. */
  async arrangeRoles(guildId: string, roleIds: string[]): Promise<void> {
    await need(this.c, "arrangeRoles")({ guildId, roleIds });
    await this.refresh(guildId);
  }

  async setMemberRoles(guildId: string, accountId: string, roleIds: string[]): Promise<void> {
    await need(this.c, "setMemberRoles")({ guildId, accountId, roleIds });
    await this.refresh(guildId);
  }

  /** A page of members (account id order; `after` the last one of the previous page). */
  async members(guildId: string, after = "", limit = 100): Promise<GuildMember[]> {
    const res = await need(this.c, "listMembers")({ guildId, after, limit });
    this.deps.loadNames(res.members.map((m) => m.accountId));
    // A guild small enough for live presence (the server's 250) tells this app when each member
    // goes offline, so who the list says is online joins the presence store; a bigger one's
    // list is only a snapshot, shown as such.
    const count = this.state.get().guilds.views[guildId]?.guild?.memberCount ?? 0n;
    if (count <= PRESENCE_LIVE_MAX) {
      for (const m of res.members) if (m.online) this.state.dispatch({ type: "presence", accountId: m.accountId, online: true });
    }
    const known = this.listed.get(guildId) ?? new Map<string, GuildMember>();
    for (const m of res.members) known.set(m.accountId, m);
    this.listed.set(guildId, known);
    return res.members;
  }

  /** Every member, a page after another (at most `max`): whom a private channel can take. */
  async allMembers(guildId: string, max = 1_000): Promise<GuildMember[]> {
    const out: GuildMember[] = [];
    for (;;) {
      const page = await this.members(guildId, out[out.length - 1]?.accountId ?? "", 100);
      out.push(...page);
      if (page.length < 100 || out.length >= max) return out;
    }
  }

  /** The members of a guild listed so far (their account ids). */
  knownMembers(guildId: string): string[] {
    return [...(this.listed.get(guildId)?.keys() ?? [])];
  }

  /** The members of a guild listed so far, as ListMembers gave them (the member list shows them
   * at once when it opens again, then reads them anew). */
  listedMembers(guildId: string): GuildMember[] {
    return [...(this.listed.get(guildId)?.values() ?? [])];
  }

  async kick(guildId: string, accountId: string, reason = ""): Promise<void> {
    await need(this.c, "kickMember")({ guildId, accountId, reason: reason.trim() });
    this.listed.get(guildId)?.delete(accountId);
  }

  async ban(guildId: string, accountId: string, reason = "", deleteMessagesS = 0): Promise<void> {
    await need(this.c, "banMember")({ guildId, accountId, reason: reason.trim(), deleteMessagesS });
    this.listed.get(guildId)?.delete(accountId);
  }

  async unban(guildId: string, accountId: string): Promise<void> {
    await need(this.c, "unbanMember")({ guildId, accountId });
  }

  async bans(guildId: string): Promise<GuildBan[]> {
    const res = await need(this.c, "listBans")({ guildId });
    this.deps.loadNames(res.bans.flatMap((b) => [b.accountId, b.bannedBy]));
    return res.bans;
  }

  /** Puts a member in a timeout for `seconds` (0 ends it); returns until when (ms). */
  async timeOut(guildId: string, accountId: string, seconds: number, reason = ""): Promise<bigint> {
    const res = await need(this.c, "timeOutMember")({ guildId, accountId, durationS: seconds, reason: reason.trim() });
    return res.timedOutUntilMs;
  }

  /** Makes an invite; its code is in this answer only. */
  async createInvite(guildId: string, expiresInS: number, maxUses: number): Promise<{ invite: GuildInvite | undefined; code: string }> {
    const res = await need(this.c, "createInvite")({ guildId, expiresInS, maxUses });
    return { invite: res.invite, code: res.code };
  }

  async invites(guildId: string): Promise<GuildInvite[]> {
    const res = await need(this.c, "listInvites")({ guildId });
    this.deps.loadNames(res.invites.map((i) => i.createdBy));
    return res.invites;
  }

  async revokeInvite(guildId: string, inviteId: string): Promise<void> {
    await need(this.c, "revokeInvite")({ guildId, inviteId });
  }

  /** A page of the audit log, newest first (`before`: the last entry id of the previous page). */
  async auditLog(guildId: string, before = "", limit = 50): Promise<AuditLogEntry[]> {
    const res = await need(this.c, "listAuditLog")({ guildId, before, limit });
    this.deps.loadNames(res.entries.map((e) => e.actorId));
    return res.entries;
  }
}
