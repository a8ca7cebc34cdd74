// chat.ts — the signed-in app: the state store (store.ts) and one store per concern over it
// (conversations, messages, receipts and typing, profiles and avatars, files, guilds and their
// channels), wired here to the real RPC clients, the gateway's events, the E2EE engine,
// verification and calls. The UI reads the state with useChat and acts through the stores
// (`chat.messages.send(…)`).
import { useSyncExternalStore } from "react";
import { attachmentClient, avatarClient, conversationClient, accountClient, gatewayUrl, guildClient, keyClient, serverInfoClient, voiceClient } from "../api";
import { Cancelled, deleteAttachment, downloadDecrypt, encryptBlob, prepareImage, uploadCiphertext } from "../attachments/lazy";
import { accessToken } from "../auth/session";
import type { Calls } from "../calls/calls";
import { shownInThread, type Content } from "../crypto/content";
import { AccountKeyChanged, type E2ee } from "../crypto/engine";
import { Verifier } from "../crypto/verification";
import { Gateway } from "../gateway/client";
import { ConversationKind, ConversationMode, HistoryDirection, type Conversation, type Message } from "../gen/kitsulan/v1/conversation_pb";
import type { Event } from "../gen/kitsulan/v1/gateway_pb";
import type { ContactLink } from "../lib/contactLink";
import { bytesEqual } from "../lib/ids";
import * as db from "../storage/db";
import { Cache, sealedStorage as sealedCache } from "./cache";
import { Conversations } from "./conversations";
import { Files } from "./files";
import { ChannelMembers } from "./channelMembers";
import { awaitingMembers, guildOfChannel, Guilds } from "./guilds";
import { Messages, readMessage, type Incoming } from "./messages";
import { Outbox, sealedStorage as sealedOutbox } from "./outbox";
import { Pins } from "./pins";
import { LocalIndex, sealedIndexStorage, searchCloud, type Hit, type SearchFilter } from "./search";
import { Profiles, type PersonProfile } from "./profiles";
import { Receipts } from "./receipts";
import { initialState, Store, type ChatState } from "./store";
import { Voice } from "../voice/voice";

export type { ChatState } from "./store";
export type { Item, Thread, Incoming } from "./messages";
export type { Receipt } from "./receipts";
export type { PersonProfile } from "./profiles";
export { DEFAULT_TTL_CHOICES, type FileState, type SendFileOptions, type Upload } from "./files";

type IncomingListener = (m: Incoming) => void;

/** Why a scanned or opened contact link was not taken (nothing was changed). */
export class ContactLinkRefused extends Error {
  constructor(
    readonly why: "self" | "unknown" | "key-mismatch",
    readonly accountId: string,
  ) {
    super(`contact link refused: ${why}`);
  }
}

export class Chat {
  private readonly store: Store;
  private incomingListeners = new Set<IncomingListener>();
  private gateway: Gateway;
  private typingTimer: ReturnType<typeof setInterval>;
  readonly profiles: Profiles;
  readonly conversations: Conversations;
  readonly receipts: Receipts;
  readonly messages: Messages;
  readonly files: Files;
  /** The guilds we are in and their channels (guilds.ts). */
  readonly guilds: Guilds;
  /** Who is in the guilds' private end-to-end encrypted channels (channelMembers.ts). */
  readonly channelMembers: ChannelMembers;
  /** Channels whose history may have missed messages (their messages are live only: after a
   * reconnect the newest page is read again when one is opened). */
  private staleChannels = new Set<string>();
  /** The first ListGuilds and GetGuilds: a message for a conversation not (yet) known waits for
   * them, as it may be a channel's. */
  private guildsReady: Promise<void> = Promise.resolve();
  /** What a message says (readMessage, and guild channels' rules). */
  private readonly read: (m: Message) => Promise<Content>;
  /** Pinned messages (pins.ts). */
  readonly pins: Pins;
  /** This device's search index of the E2EE texts it decrypted (search.ts; never sent). */
  readonly index: LocalIndex;
  /** What this device has yet to send (outbox.ts): sends, files, edits, deletions and reactions. */
  readonly outbox: Outbox;
  /** The offline copy of the list and history (sealed in IndexedDB). */
  readonly cache: Cache;
  readonly verifier: Verifier;
  /** Voice and video calls (calls/calls.ts), signalled over this chat's gateway: null until
   * their code is loaded (loadCalls), on the first call event or the first call button. */
  calls: Calls | null = null;
  /** This device in a guild's voice channel (voice/voice.ts): the SFU session and its keys. */
  readonly voice: Voice;
  private callsLoading: Promise<Calls> | null = null;
  private callsListeners = new Set<() => void>();
  private stopped = false;

  constructor(
    readonly engine: E2ee,
    me: { accountId: string; deviceId: string },
    onSignedOut: () => void,
  ) {
    this.store = new Store(initialState(me));
    // What a message says: cloud conversations' from their Content, E2EE ones' (a private
    // encrypted guild channel's too) decrypted.
    const read: (m: Message) => Promise<Content> = readMessage(engine, (id) => this.isCloud(id));
    this.read = read;
    const visible = () => document.visibilityState === "visible";
    this.profiles = new Profiles(this.store, {
      accounts: accountClient,
      avatars: avatarClient,
      cache: {
        load: () => db.get<Record<string, PersonProfile>>("session", "profiles"),
        save: (profiles) => db.put("session", "profiles", profiles),
      },
    });
    this.conversations = new Conversations(this.store, {
      client: conversationClient,
      decrypt: read,
      profiles: this.profiles,
    });
    this.receipts = new Receipts(this.store, {
      client: conversationClient,
      sendTyping: (conversationId, typing) => this.gateway.typing(conversationId, typing),
      visible,
      now: () => Date.now(),
    });
    this.messages = new Messages(this.store, {
      client: conversationClient,
      engine: { decrypt: read },
      conversations: this.conversations,
      markRead: (conversationId) => this.receipts.markReadIfVisible(conversationId),
      visible,
    });
    this.pins = new Pins(this.store, { client: conversationClient, read });
    this.guilds = new Guilds(this.store, {
      client: guildClient,
      avatars: avatarClient,
      loadNames: (ids) => void this.profiles.load(ids).catch(() => undefined),
      loaded: () => this.channelMembers.loadMissing(),
    });
    this.channelMembers = new ChannelMembers(this.store, {
      client: conversationClient,
      loadNames: (ids) => void this.profiles.load(ids).catch(() => undefined),
    });
    this.voice = new Voice({
      client: voiceClient,
      engine,
      me: () => this.state.me.accountId,
      participants: (channelId) => {
        for (const v of Object.values(this.state.guilds.views)) {
          const c = v.channels.find((c) => c.id === channelId);
          if (c) return c.voiceAccountIds;
        }
        return null;
      },
      subscribe: (l) => this.store.subscribe(l),
    });
    this.index = new LocalIndex({
      storage: sealedIndexStorage(engine),
      e2ee: (id) => this.conversations.get(id) !== undefined && !this.isCloud(id),
      now: () => Date.now(),
    });
    this.store.subscribe(() => this.index.update(this.state.threads));
    this.outbox = new Outbox(this.store, {
      client: conversationClient,
      engine,
      // A private channel whose members are not read yet is asked for them (GetConversation),
      // never encrypted to the one member known, us.
      conversations: { get: (id) => (awaitingMembers(this.state.guilds, id) ? undefined : this.conversations.get(id)) },
      storage: sealedOutbox(engine),
      transfer: { upload: uploadCiphertext, remove: deleteAttachment },
      keyChanged: (err) => {
        if (!(err instanceof AccountKeyChanged)) return false;
        this.keyChanged(err.accountId);
        return true;
      },
      now: () => Date.now(),
    });
    this.files = new Files(this.store, {
      attachments: attachmentClient,
      transfer: {
        prepareImage,
        encrypt: encryptBlob,
        upload: uploadCiphertext,
        remove: deleteAttachment,
        download: downloadDecrypt,
        cancelled: () => new Cancelled(),
      },
      outbox: this.outbox,
      profiles: this.profiles,
    });
    this.cache = new Cache(this.store, {
      storage: sealedCache(engine),
      subscribe: (l) => this.store.subscribe(l),
      client: conversationClient,
      decrypt: read,
      markRead: (conversationId) => this.receipts.markReadIfVisible(conversationId),
      onHidden: (l) => {
        const h = () => {
          if (document.visibilityState === "hidden") l();
        };
        document.addEventListener("visibilitychange", h);
        return () => document.removeEventListener("visibilitychange", h);
      },
    });
    this.verifier = new Verifier(
      engine,
      (verification) => {
        this.store.dispatch({ type: "verification", verification });
        if (verification) void this.profiles.load([verification.otherAccountId]).catch(() => undefined);
      },
      (accountId) => {
        this.refreshVerified();
        if (this.state.keyWarning === accountId) this.store.dispatch({ type: "keyWarning", accountId: null });
      },
    );
    this.gateway = new Gateway({
      url: gatewayUrl(),
      token: accessToken,
      onEvent: (e) => this.onEvent(e),
      onStatus: (status) => {
        this.store.dispatch({ type: "status", status });
        // Back online: what waits in the outbox goes now, not at its next retry.
        if (status === "online") this.outbox.kick();
      },
      onReady: (ready) => {
        const ids = ready.online.filter((p) => p.online).map((p) => p.accountId);
        this.store.dispatch({ type: "presenceReady", accountIds: ids });
        void this.profiles.load(ids).catch(() => undefined);
      },
      onSignedOut,
      onError: (error) => this.calls?.onGatewayError(error),
    });
    // Expire typing indicators (others stop sending updates after 6 s), and the messages whose
    // disappearing timer ran out (hidden, and gone from the offline copy with its next write).
    this.typingTimer = setInterval(() => {
      this.receipts.expireTyping();
      this.store.dispatch({ type: "expire", now: Date.now() });
    }, 1000);
  }

  /** Loads the call code (a chunk of its own) and starts the calls, once. */
  loadCalls(): Promise<Calls> {
    this.callsLoading ??= import("../calls/calls").then(({ Calls }) => {
      const calls = new Calls({
        engine: this.engine,
        me: () => this.state.me,
        members: (id) => this.conversation(id)?.members.map((m) => m.accountId) ?? null,
        isDirect: (id) => this.conversation(id)?.kind === ConversationKind.DIRECT,
        send: (signal) => this.gateway.call(signal),
      });
      if (this.stopped) calls.dispose();
      this.calls = calls;
      for (const l of this.callsListeners) l();
      return calls;
    });
    return this.callsLoading;
  }

  /** Calls `l` when the call code has loaded (`calls` is set). */
  onCallsLoaded = (l: () => void): (() => void) => {
    this.callsListeners.add(l);
    return () => this.callsListeners.delete(l);
  };

  private get state(): ChatState {
    return this.store.get();
  }

  subscribe = (l: () => void): (() => void) => this.store.subscribe(l);

  get = (): ChatState => this.store.get();

  /** Calls `l` for every new message from another person that arrives over the gateway. */
  onIncoming(l: IncomingListener): () => void {
    this.incomingListeners.add(l);
    return () => this.incomingListeners.delete(l);
  }

  async start(): Promise<void> {
    // What a previous page left unsent shows at once and goes when it can.
    await this.outbox.load().catch((err: unknown) => console.warn("outbox not loaded", err));
    await this.profiles.restore();
    // The list and history as this device last had them, before the network answers.
    await this.cache.restore();
    await this.index.restore();
    this.index.update(this.state.threads);
    this.cache.start();
    this.refreshVerified();
    this.guildsReady = this.guilds.load().catch((err: unknown) => console.warn("guilds not loaded", err));
    this.gateway.start();
    void serverInfoClient
      .getServerInfo({})
      .then((info) => this.store.dispatch({ type: "ttlChoices", seconds: info.attachmentTtlChoicesSeconds }))
      .catch(() => undefined);
    await this.profiles.loadMe();
    await Promise.all([this.conversations.load(), this.guildsReady]);
    // A reload in a voice channel joins it again, and opens it unless something else is open.
    const resumed = this.stopped ? null : this.voice.resume((id) => guildOfChannel(this.state.guilds, id) ?? null);
    if (resumed && !this.state.active) {
      this.guilds.select(resumed.guildId);
      this.setActive(resumed.channelId);
    }
  }

  stop(): void {
    this.stopped = true;
    this.cache.stop();
    this.index.stop();
    this.calls?.dispose();
    this.voice.dispose();
    this.outbox.stop();
    this.gateway.stop();
    clearInterval(this.typingTimer);
    this.verifier.dispose();
  }

  /** Stops, writes the offline copy (unless `flush` is false: another tab already owns the
   * device), and waits for the engine's last operation: another tab takes over this device
   * (App.tsx, lib/tablock.ts). */
  async close(flush = true): Promise<void> {
    this.stop();
    if (flush) await Promise.all([this.cache.flush(), this.index.flush()]);
    await this.engine.idle();
  }

  /** Starts verifying the person `accountId` with SAS emoji (the dialog shows the steps). */
  verify(accountId: string): void {
    void this.verifier.start(accountId).catch((err: unknown) => {
      if (err instanceof AccountKeyChanged) this.keyChanged(err.accountId);
      else console.warn("verification failed to start", err);
    });
  }

  /**
   * Opens (or creates) the direct conversation with the person a contact link names (a QR code
   * they showed, or their link), after checking that the account key in the link is the one the
   * server gives for them now. Refused (ContactLinkRefused, nothing changed: no conversation, no
   * key pinned) for our own link, an account the server does not know, or a key that differs.
   * Returns the conversation's id.
   */
  async addContact(link: ContactLink): Promise<string> {
    const { accountId } = link;
    if (accountId === this.state.me.accountId) throw new ContactLinkRefused("self", accountId);
    // Read-only: QueryKeys pins nothing; the engine pins the key on the first message, as ever.
    const res = await keyClient.queryKeys({ accountIds: [accountId] });
    const keys = res.accounts.find((a) => a.accountId === accountId);
    if (!keys || keys.accountKey.length === 0) throw new ContactLinkRefused("unknown", accountId);
    if (!bytesEqual(keys.accountKey, link.accountKey)) throw new ContactLinkRefused("key-mismatch", accountId);
    await this.profiles.load([accountId]);
    if (!this.state.profiles[accountId]) throw new ContactLinkRefused("unknown", accountId);
    return this.conversations.openDirectWith(accountId);
  }

  /**
   * Searches messages: the cloud conversations on the server (a page of it; `pageToken` for the
   * next), and on the first page the E2EE ones in this device's own index. `conversationId`
   * limits it to one conversation (then only where that one is kept); the sender and the time
   * range narrow both places alike.
   */
  async search(query: string, filter: SearchFilter & { pageToken?: string } = {}): Promise<{ hits: Hit[]; next: string }> {
    const only = filter.conversationId;
    const { pageToken, ...narrowed } = filter;
    const local = !pageToken && (!only || !this.isCloud(only)) ? this.index.search(query, narrowed) : [];
    if (only && !this.isCloud(only)) return { hits: local, next: "" };
    let cloud: { hits: Hit[]; next: string };
    try {
      cloud = await searchCloud(conversationClient, query, filter);
    } catch (err) {
      if (local.length === 0) throw err;
      cloud = { hits: [], next: "" }; // offline: what this device found
    }
    const hits = [...cloud.hits, ...local].sort((a, b) => b.sentAtMs - a.sentAtMs);
    return { hits, next: cloud.next };
  }

  /** Whether `conversationId` is a cloud conversation (the server keeps its messages' Content). */
  isCloud(conversationId: string): boolean {
    return this.conversations.get(conversationId)?.mode === ConversationMode.CLOUD;
  }

  private refreshVerified(): void {
    this.store.dispatch({ type: "verified", accountIds: this.engine.verifiedAccounts() });
  }

  /** `accountId`'s account key changed: warn, and drop the verified mark. */
  private keyChanged(accountId: string): void {
    this.store.dispatch({ type: "keyWarning", accountId });
    this.refreshVerified();
  }

  nameOf(accountId: string): string {
    return this.profiles.nameOf(accountId);
  }

  conversation(id: string): Conversation | undefined {
    return this.conversations.get(id);
  }

  /** Fetches again the names of the members of a conversation (when it is opened or shown again). */
  refreshNames(conversationId: string): void {
    const c = this.conversation(conversationId);
    if (c) void this.profiles.load(c.members.map((m) => m.accountId), true).catch(() => undefined);
  }

  /** The people who may be mentioned in a conversation: its members, or in a guild's channel the
   * guild's members this app has listed (a private encrypted channel's own members: nobody else
   * can read it). */
  mentionable(conversationId: string): string[] {
    const guild = this.guilds.guildOf(conversationId);
    if (guild && !this.channelMembers.isPrivateChannel(conversationId)) return this.guilds.knownMembers(guild.guild.id);
    return this.conversation(conversationId)?.members.map((m) => m.accountId) ?? [];
  }

  /** Opens a conversation (null: back to the list): fresh names, its history, its read mark. A
   * guild's channel shows its guild too; its history is read again when it may have missed
   * messages (they are live only). */
  setActive(id: string | null): void {
    const guild = id ? this.guilds.guildOf(id) : undefined;
    // A channel shows its guild; a conversation the direct messages.
    if (guild) this.guilds.select(guild.guild.id);
    else if (id) this.guilds.select(null);
    this.conversations.open(id);
    if (id && guild) {
      void this.pins.load(id).catch(() => undefined);
      if (this.staleChannels.has(id)) void this.refreshChannel(id).catch(() => undefined);
      else if (!this.state.threads[id]?.loaded) void this.messages.loadOlder(id).catch(() => undefined);
      else this.receipts.markReadIfVisible(id);
    } else if (id) {
      this.refreshNames(id);
      void this.pins.load(id).catch(() => undefined);
      if (this.cache.isStale(id)) void this.cache.refresh(id).catch(() => undefined);
      else if (!this.state.threads[id]?.loaded) void this.messages.loadOlder(id);
      else this.receipts.markReadIfVisible(id);
    }
  }

  /** Reads a channel's newest page again (after a reconnect: it missed what came meanwhile). */
  private async refreshChannel(id: string): Promise<void> {
    const res = await conversationClient.listMessages({ conversationId: id, cursor: 0n, direction: HistoryDirection.BACKWARD, limit: 50 });
    const items = await Promise.all(res.messages.map(async (message) => ({ message, content: await this.read(message) })));
    this.staleChannels.delete(id);
    this.store.dispatch({ type: "threadRefreshed", conversationId: id, items, more: res.more });
    this.receipts.markReadIfVisible(id);
  }

  private async onEvent(event: Event): Promise<void> {
    const body = event.body;
    switch (body.case) {
      case "message": {
        const m = body.value.message;
        if (!m) return;
        // Not a conversation of the list: maybe a channel of a guild still being read.
        if (!this.conversation(m.conversationId)) await this.guildsReady;
        const incoming = await this.messages.receive(m, body.value.change);
        // A system entry (group management) is a line in the history, not a notification.
        // Nor is a reaction or a deletion (they act on another message).
        if (incoming && incoming.content.kind !== "system" && shownInThread(incoming.content)) {
          for (const l of this.incomingListeners) l(incoming);
        }
        return;
      }
      case "receipt":
        this.store.dispatch({ type: "receipt", receipt: body.value, me: this.state.me.accountId });
        return;
      case "member": {
        const e = body.value;
        // A guild's private channel: its members read again (or it goes, when we are out).
        if (this.channelMembers.isPrivateChannel(e.conversationId)) {
          await this.channelMembers.onEvent(e);
          return;
        }
        // Removed from a group (or left it on another device): it stays here, read-only.
        if (e.removed && e.accountId === this.state.me.accountId) await this.conversations.lostMembership(e.conversationId);
        else await this.conversations.load();
        return;
      }
      case "deviceList": {
        const accountId = body.value.accountId;
        this.engine.deviceListChanged(accountId);
        // A contact whose account key changed is shown a warning at once, not at the next send.
        if (await this.engine.accountKeyChanged(accountId).catch(() => false)) this.keyChanged(accountId);
        return;
      }
      case "toDevice": {
        const taken = await this.engine.takeToDevice(body.value);
        if (taken?.kind === "roomKey") await this.messages.retryUndecrypted(taken.sessionId);
        if (taken?.kind === "voiceKey") this.voice.onKey(taken);
        if (taken?.kind === "verification") {
          await this.verifier.receive(taken.from, taken.bytes).catch((err: unknown) => {
            if (err instanceof AccountKeyChanged) this.keyChanged(err.accountId);
            else console.warn("verification message not taken", err);
          });
        }
        return;
      }
      case "presence": {
        const { accountId, online } = body.value;
        this.store.dispatch({ type: "presence", accountId, online });
        if (online) void this.profiles.load([accountId]).catch(() => undefined);
        return;
      }
      case "typing":
        this.store.dispatch({ type: "typing", typing: body.value, me: this.state.me.accountId, now: Date.now() });
        return;
      case "call": {
        const e = body.value;
        // A call in a conversation we do not know yet (just added to it): fetch the list first.
        if (!this.conversation(e.conversationId)) await this.conversations.load();
        (await this.loadCalls()).onEvent(e);
        return;
      }
      case "attachment":
        this.files.onEvent(body.value);
        return;
      case "avatar": {
        const e = body.value;
        if (e.avatar && (e.owner.case === "accountId" || e.owner.case === "conversationId")) {
          this.profiles.applyAvatar({ case: e.owner.case, value: e.owner.value }, e.avatar);
        }
        return;
      }
      case "guild":
        await this.guilds.onEvent(body.value);
        return;
      case "syncComplete": {
        // Channels' messages are live only: what a channel missed while away is read again when
        // it is opened (the one on screen at once), and the guilds' counts with GetGuild.
        for (const id of Object.keys(this.state.guilds.channels)) if (this.state.threads[id]?.loaded) this.staleChannels.add(id);
        const active = this.state.active;
        if (active && this.staleChannels.has(active)) void this.refreshChannel(active).catch(() => undefined);
        void this.guilds.load().catch(() => undefined);
        await this.conversations.load(true);
        this.cache.refreshActive();
        void this.engine.topUpKeys().catch(() => undefined);
        return;
      }
      default:
        return;
    }
  }
}

export function useChat<T>(chat: Chat, select: (s: ChatState) => T): T {
  return useSyncExternalStore(chat.subscribe, () => select(chat.get()));
}
