// channelMembers.ts — who is in a guild's private end-to-end encrypted channels: their member rows
// read (GetConversation) when such a channel appears in a guild or the gateway's `member` event
// says its membership changed, and the calls that change it: adding guild members, removing one,
// leaving. The rows land in guilds.ts, in the channel's conversation the outbox encrypts to (so
// the engine shares the room key with a new member and rotates it when someone goes). The server
// checks each change again: MANAGE_CHANNELS in the channel, rank, guild membership, 100 members.
import { reasonOf } from "../errors";
import { ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import type { MemberEvent } from "../gen/kitsulan/v1/gateway_pb";
import type { GuildMember } from "../gen/kitsulan/v1/guild_pb";
import type { ConversationClient } from "./conversations";
import { awaitingMembers } from "./guilds";
import type { StateAccess } from "./store";

/** The most members a private encrypted channel has (the server's MAX_CHANNEL_MEMBERS). */
export const MAX_CHANNEL_MEMBERS = 100;

/** The guild members who may be added to a channel: not in it yet, whose name (`nameOf`) holds
 * `filter` (any case), by name. */
export function candidates(
  guildMembers: Array<Pick<GuildMember, "accountId">>,
  inChannel: string[],
  filter: string,
  nameOf: (accountId: string) => string,
): string[] {
  const q = filter.trim().toLocaleLowerCase();
  const taken = new Set(inChannel);
  return guildMembers
    .map((m) => m.accountId)
    .filter((id) => !taken.has(id) && (!q || nameOf(id).toLocaleLowerCase().includes(q)))
    .sort((a, b) => nameOf(a).localeCompare(nameOf(b)));
}

export interface ChannelMembersDeps {
  client: Pick<ConversationClient, "getConversation" | "addMembers" | "removeMember" | "leaveConversation">;
  /** Loads people's names (the members listed). */
  loadNames: (accountIds: string[]) => void;
}

export class ChannelMembers {
  private loading = new Map<string, Promise<void>>();

  constructor(
    private readonly state: StateAccess,
    private readonly deps: ChannelMembersDeps,
  ) {}

  /** Whether `id` is a private encrypted channel of a guild we are in. */
  isPrivateChannel(id: string): boolean {
    return this.state.get().guilds.channels[id]?.mode === ConversationMode.E2EE;
  }

  /** Reads the members of each private channel this app knows without them (a channel just
   * shown by GetGuild, before ListConversations brought its rows), and the names of those known. */
  loadMissing(): void {
    const g = this.state.get().guilds;
    for (const id of Object.keys(g.channels)) if (awaitingMembers(g, id)) void this.load(id).catch(() => undefined);
    // Those whose rows came with the conversation list: their members' names.
    const known = Object.entries(g.members).flatMap(([id, rows]) => (g.channels[id] ? rows.map((m) => m.accountId) : []));
    if (known.length > 0) this.deps.loadNames([...new Set(known)]);
  }

  /** Reads a channel's members again (calls that overlap share one read). */
  load(channelId: string): Promise<void> {
    const inFlight = this.loading.get(channelId);
    if (inFlight) return inFlight;
    const run = (async () => {
      try {
        const res = await this.deps.client.getConversation({ conversationId: channelId });
        if (!res.conversation) return;
        this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
        this.deps.loadNames(res.conversation.members.map((m) => m.accountId));
      } catch (err) {
        // No longer ours to read: we are out of it.
        if (reasonOf(err) === "CONVERSATION_NOT_FOUND") this.state.dispatch({ type: "channelLost", conversationId: channelId });
        else throw err;
      } finally {
        this.loading.delete(channelId);
      }
    })();
    this.loading.set(channelId, run);
    return run;
  }

  /** Adds guild members to a channel (all or, when one cannot be, none). */
  async add(channelId: string, accountIds: string[]): Promise<void> {
    const res = await this.deps.client.addMembers({ conversationId: channelId, accountIds });
    if (res.conversation) this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
  }

  async remove(channelId: string, accountId: string): Promise<void> {
    const res = await this.deps.client.removeMember({ conversationId: channelId, accountId });
    if (res.conversation) this.state.dispatch({ type: "conversationChanged", conversation: res.conversation });
  }

  /** Leaves a channel: it goes from the guild's list at once. */
  async leave(channelId: string): Promise<void> {
    await this.deps.client.leaveConversation({ conversationId: channelId });
    this.state.dispatch({ type: "conversationLeft", conversationId: channelId });
  }

  /** The gateway's `member` event about a private channel: we are out of it (it goes), or its
   * members changed (read again, so the next message is encrypted to who is in it now). */
  async onEvent(e: MemberEvent): Promise<void> {
    if (e.removed && e.accountId === this.state.get().me.accountId) {
      this.state.dispatch({ type: "channelLost", conversationId: e.conversationId });
      return;
    }
    await this.load(e.conversationId);
  }
}
