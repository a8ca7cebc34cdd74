// chat.ts — the app's conversation state (an external store for useSyncExternalStore) and the
// controller that fills it: RPCs, the gateway's events and the E2EE engine meet here.
// Messages are kept by id, so an event delivered twice (after a reconnect) changes nothing;
// an edit or deletion replaces a message only when it is newer than what we hold.
import { create } from "@bufbuild/protobuf";
import { useSyncExternalStore } from "react";
import { attachmentClient, avatarClient, conversationClient, accountClient, gatewayUrl, serverInfoClient } from "../api";
import { attachmentIds, fileRefText, isPreviewable, type FileRef } from "../attachments/content";
import { prepareImage } from "../attachments/image";
import { Cancelled, deleteAttachment, encryptBlob, uploadCiphertext, type Progress } from "../attachments/transfer";
import { accessToken } from "../auth/session";
import { Calls } from "../calls/calls";
import { reasonOf } from "../errors";
import { AccountKeyChanged, contentOf, type Content, type E2ee } from "../crypto/engine";
import { Verifier, type VerificationView } from "../crypto/verification";
import { Gateway, type GatewayStatus } from "../gateway/client";
import {
  ConversationKind,
  HistoryDirection,
  MessageSchema,
  type BlockedAccount,
  type Conversation,
  type Message,
} from "../gen/kitsulan/v1/conversation_pb";
import { AttachmentChange } from "../gen/kitsulan/v1/attachment_pb";
import type { AvatarInfo } from "../gen/kitsulan/v1/avatar_pb";
import { MessageChange } from "../gen/kitsulan/v1/gateway_pb";
import type { Event } from "../gen/kitsulan/v1/gateway_pb";
import * as db from "../storage/db";

export interface Item {
  message: Message;
  content: Content;
  /** Local state of our own sends. */
  local?: "sending" | "failed";
  text?: string;
  /** The attachment ids our own send names (kept for a retry). */
  attachmentIds?: string[];
}

/** What this device knows of an attachment beyond its message. */
export interface FileState {
  /** The server says it is gone (TTL passed, deleted). */
  expired?: boolean;
  /** Our own attachments: who downloaded it, and when (first time each). */
  downloads?: Array<{ accountId: string; atMs: number }>;
}

/** TTLs the picker offers when the server does not say (1 hour, 1 day, 1 week). */
export const DEFAULT_TTL_CHOICES = [3600, 86400, 604800];

/** How a file is sent: its TTL (0: none) and whether an image keeps its metadata. */
export interface SendFileOptions {
  ttlSeconds: number;
  keepOriginal: boolean;
}

export interface Thread {
  items: Item[];
  more: boolean;
  loaded: boolean;
}

export interface Receipt {
  delivered: bigint;
  read: bigint;
}

export interface ChatState {
  me: { accountId: string; deviceId: string; displayName: string; username: string; avatarId: string; avatarVersion: number };
  conversations: Conversation[];
  previews: Record<string, string>;
  threads: Record<string, Thread>;
  receipts: Record<string, Record<string, Receipt>>;
  typing: Record<string, Record<string, number>>;
  /** Public profiles of the people we share conversations with (cached in IndexedDB). */
  profiles: Record<string, PersonProfile>;
  status: GatewayStatus;
  active: string | null;
  keyWarning: string | null;
  /** Accounts this device verified with SAS emoji (and whose key has not changed since). */
  verified: Record<string, true>;
  /** The verification in flight (ours, or a request from someone), for the verify dialog. */
  verification: VerificationView | null;
  /** The attachment TTLs (seconds) to offer besides "none" (from ServerInfo). */
  ttlChoices: number[];
  /** Attachments by id: expired, and downloads of our own. */
  files: Record<string, FileState>;
}

/** What everyone on the server sees of an account. */
export interface PersonProfile {
  username: string;
  displayName: string;
  /** The avatar's id ("" or absent: none) and version (AvatarService; contacts see the picture). */
  avatarId?: string;
  avatarVersion?: number;
}

/** A profile as the server sends it (GetProfiles, LookupAccount). */
type ProfileMessage = { accountId: string; username: string; displayName: string; avatar?: AvatarInfo | undefined };

type Listener = () => void;

/** A new message from someone else, as it arrived live (for notifications). */
export interface Incoming {
  conversationId: string;
  senderAccountId: string;
  content: Content;
}
type IncomingListener = (m: Incoming) => void;

export class Chat {
  private state: ChatState;
  private listeners = new Set<Listener>();
  private incomingListeners = new Set<IncomingListener>();
  private gateway: Gateway;
  private typingTimer: ReturnType<typeof setInterval>;
  readonly verifier: Verifier;
  /** Voice and video calls (calls/calls.ts), signalled over this chat's gateway. */
  readonly calls: Calls;

  constructor(
    readonly engine: E2ee,
    me: { accountId: string; deviceId: string },
    onSignedOut: () => void,
  ) {
    this.state = {
      me: { ...me, displayName: "", username: "", avatarId: "", avatarVersion: 0 },
      conversations: [],
      previews: {},
      threads: {},
      receipts: {},
      typing: {},
      profiles: {},
      status: "connecting",
      active: null,
      keyWarning: null,
      verified: {},
      verification: null,
      ttlChoices: DEFAULT_TTL_CHOICES,
      files: {},
    };
    this.verifier = new Verifier(
      engine,
      (verification) => {
        this.set({ verification });
        if (verification) void this.loadProfiles([verification.otherAccountId]).catch(() => undefined);
      },
      (accountId) => {
        this.refreshVerified();
        if (this.state.keyWarning === accountId) this.set({ keyWarning: null });
      },
    );
    this.gateway = new Gateway({
      url: gatewayUrl(),
      token: accessToken,
      onEvent: (e) => this.onEvent(e),
      onStatus: (status) => this.set({ status }),
      onSignedOut,
      onError: (error) => this.calls.onGatewayError(error),
    });
    this.calls = new Calls({
      engine,
      me: () => this.state.me,
      members: (id) => this.conversation(id)?.members.map((m) => m.accountId) ?? null,
      isDirect: (id) => this.conversation(id)?.kind === ConversationKind.DIRECT,
      send: (signal) => this.gateway.call(signal),
    });
    // Expire typing indicators (others stop sending updates after 6 s).
    this.typingTimer = setInterval(() => this.expireTyping(), 1000);
  }

  subscribe = (l: Listener): (() => void) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };

  get = (): ChatState => this.state;

  /** Calls `l` for every new message from another person that arrives over the gateway. */
  onIncoming(l: IncomingListener): () => void {
    this.incomingListeners.add(l);
    return () => this.incomingListeners.delete(l);
  }

  private set(patch: Partial<ChatState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l();
  }

  async start(): Promise<void> {
    const profiles = (await db.get<Record<string, PersonProfile>>("session", "profiles")) ?? {};
    this.set({ profiles });
    this.refreshVerified();
    this.gateway.start();
    void serverInfoClient
      .getServerInfo({})
      .then((info) => {
        if (info.attachmentTtlChoicesSeconds.length > 0) this.set({ ttlChoices: info.attachmentTtlChoicesSeconds });
      })
      .catch(() => undefined);
    try {
      const res = await accountClient.getMyAccount({});
      if (res.account) {
        this.set({
          me: {
            ...this.state.me,
            displayName: res.account.displayName,
            username: res.account.username,
            avatarId: res.account.avatar?.avatarId ?? "",
            avatarVersion: Number(res.account.avatar?.avatarVersion ?? 0n),
          },
        });
      }
    } catch {
      // offline: the name comes later
    }
    await this.loadConversations();
  }

  stop(): void {
    this.calls.dispose();
    this.gateway.stop();
    clearInterval(this.typingTimer);
    this.verifier.dispose();
  }

  /** Starts verifying the person `accountId` with SAS emoji (the dialog shows the steps). */
  verify(accountId: string): void {
    void this.verifier.start(accountId).catch((err: unknown) => {
      if (err instanceof AccountKeyChanged) this.keyChanged(err.accountId);
      else console.warn("verification failed to start", err);
    });
  }

  private refreshVerified(): void {
    this.set({ verified: Object.fromEntries(this.engine.verifiedAccounts().map((id) => [id, true as const])) });
  }

  /** `accountId`'s account key changed: warn, and drop the verified mark. */
  private keyChanged(accountId: string): void {
    this.set({ keyWarning: accountId });
    this.refreshVerified();
  }

  nameOf(accountId: string): string {
    if (accountId === this.state.me.accountId) return this.state.me.displayName || this.state.me.username;
    const p = this.state.profiles[accountId];
    return p ? p.displayName || p.username : "";
  }

  private async rememberProfiles(list: ProfileMessage[]): Promise<void> {
    if (list.length === 0) return;
    const profiles = { ...this.state.profiles };
    for (const p of list) {
      profiles[p.accountId] = {
        username: p.username,
        displayName: p.displayName,
        avatarId: p.avatar?.avatarId ?? "",
        avatarVersion: Number(p.avatar?.avatarVersion ?? 0n),
      };
    }
    this.set({ profiles });
    await db.put("session", "profiles", profiles);
  }

  /**
   * Fetches the profiles of `accountIds` (at most 1,000 per call): only those we have no name
   * for yet, or all of them with `refresh` (names change, and the server sends no event for it).
   */
  private async loadProfiles(accountIds: string[], refresh = false): Promise<void> {
    const wanted = [...new Set(accountIds)].filter(
      (id) => id !== this.state.me.accountId && (refresh || !this.state.profiles[id]),
    );
    for (let i = 0; i < wanted.length; i += 1000) {
      const res = await accountClient.getProfiles({ accountIds: wanted.slice(i, i + 1000) });
      await this.rememberProfiles(res.profiles);
    }
  }

  /** Fetches again the names of the members of a conversation (when it is opened or shown again). */
  refreshNames(conversationId: string): void {
    const c = this.conversation(conversationId);
    if (c) void this.loadProfiles(c.members.map((m) => m.accountId), true).catch(() => undefined);
  }

  /** Changes our display name (1–64 characters). */
  async updateProfile(displayName: string): Promise<void> {
    const res = await accountClient.updateProfile({ displayName: displayName.trim() });
    if (res.account) {
      this.set({ me: { ...this.state.me, displayName: res.account.displayName, username: res.account.username } });
    }
  }

  /** Sets our picture from an image file (PNG, JPEG or WebP; the server checks and resizes it). */
  async setMyAvatar(file: Blob): Promise<void> {
    const res = await avatarClient.setMyAvatar({ image: new Uint8Array(await file.arrayBuffer()) });
    if (res.avatar) this.applyAvatar({ case: "accountId", value: this.state.me.accountId }, res.avatar);
  }

  /** Removes our picture. */
  async removeMyAvatar(): Promise<void> {
    const res = await avatarClient.removeMyAvatar({});
    if (res.avatar) this.applyAvatar({ case: "accountId", value: this.state.me.accountId }, res.avatar);
  }

  /** Sets a group's picture (owners and admins). */
  async setGroupAvatar(conversationId: string, file: Blob): Promise<void> {
    const res = await avatarClient.setGroupAvatar({ conversationId, image: new Uint8Array(await file.arrayBuffer()) });
    if (res.avatar) this.applyAvatar({ case: "conversationId", value: conversationId }, res.avatar);
  }

  /** Removes a group's picture (owners and admins). */
  async removeGroupAvatar(conversationId: string): Promise<void> {
    const res = await avatarClient.removeGroupAvatar({ conversationId });
    if (res.avatar) this.applyAvatar({ case: "conversationId", value: conversationId }, res.avatar);
  }

  /**
   * Notes the avatar of an account or a group as it is now (from our own change or an
   * AvatarEvent); an older version than the one we hold is ignored.
   */
  private applyAvatar(
    owner: { case: "accountId" | "conversationId"; value: string },
    avatar: AvatarInfo,
  ): void {
    const avatarId = avatar.avatarId;
    const avatarVersion = Number(avatar.avatarVersion);
    if (owner.case === "conversationId") {
      const c = this.conversation(owner.value);
      if (!c || (c.avatar && c.avatar.avatarVersion > avatar.avatarVersion)) return;
      this.set({ conversations: this.state.conversations.map((x) => (x.id === c.id ? { ...c, avatar } : x)) });
      return;
    }
    if (owner.value === this.state.me.accountId) {
      if (this.state.me.avatarVersion > avatarVersion) return;
      this.set({ me: { ...this.state.me, avatarId, avatarVersion } });
      return;
    }
    const p = this.state.profiles[owner.value];
    if (!p) {
      void this.loadProfiles([owner.value]).catch(() => undefined);
      return;
    }
    if ((p.avatarVersion ?? 0) > avatarVersion) return;
    const profiles = { ...this.state.profiles, [owner.value]: { ...p, avatarId, avatarVersion } };
    this.set({ profiles });
    void db.put("session", "profiles", profiles).catch(() => undefined);
  }

  /** Finds someone by username (ACCOUNT_NOT_FOUND when nobody has it). */
  async lookUp(username: string): Promise<ProfileMessage> {
    const res = await accountClient.lookupAccount({ username: username.trim().replace(/^@/, "").toLowerCase() });
    if (!res.profile) throw new Error("LookupAccount answered without a profile");
    await this.rememberProfiles([res.profile]);
    return res.profile;
  }

  /** Loads the conversation list (every page; requests included, each marked `request`);
   * `refreshNames` fetches every member's profile again. */
  async loadConversations(refreshNames = false): Promise<void> {
    try {
      const byId = new Map<string, Conversation>();
      let pageToken = "";
      do {
        const res = await conversationClient.listConversations({ limit: 100, pageToken });
        // Pages follow activity: one that moved while we paged may come twice.
        for (const c of res.conversations) if (!byId.has(c.id)) byId.set(c.id, c);
        pageToken = res.nextPageToken;
      } while (pageToken);
      const conversations = [...byId.values()].sort((a, b) => Number(b.lastActivityAtMs - a.lastActivityAtMs));
      this.set({ conversations });
      void this.loadProfiles(
        conversations.flatMap((c) => c.members.map((m) => m.accountId)),
        refreshNames,
      ).catch(() => undefined);
      for (const c of conversations) {
        if (!this.state.previews[c.id] && c.lastSeq > 0n) void this.loadPreview(c.id);
      }
    } catch {
      // offline: the list stays as it was
    }
  }

  /** Accepts a message request: it becomes a normal conversation. */
  async acceptRequest(conversationId: string): Promise<void> {
    const res = await conversationClient.acceptRequest({ conversationId });
    if (res.conversation) this.upsertConversation(res.conversation);
  }

  /** Declines a message request: we leave it (the sender keeps the history). */
  async declineRequest(conversationId: string): Promise<void> {
    await conversationClient.declineRequest({ conversationId });
    this.forget(conversationId);
  }

  /** Blocks an account: we leave its direct conversation and its requests, and nothing more
   * from it reaches us. */
  async block(accountId: string): Promise<void> {
    await conversationClient.block({ accountId });
    const gone = this.state.conversations.filter(
      (c) =>
        (c.kind === ConversationKind.DIRECT && c.members.some((m) => m.accountId === accountId)) ||
        (c.request && c.requestedBy === accountId),
    );
    for (const c of gone) this.forget(c.id);
    await this.loadConversations();
  }

  async unblock(accountId: string): Promise<void> {
    await conversationClient.unblock({ accountId });
  }

  /** The accounts we blocked, most recent first (their profiles loaded for the names). */
  async blockedAccounts(): Promise<BlockedAccount[]> {
    const res = await conversationClient.listBlocked({});
    await this.loadProfiles(res.blocked.map((b) => b.accountId)).catch(() => undefined);
    return res.blocked;
  }

  private forget(conversationId: string): void {
    const conversations = this.state.conversations.filter((c) => c.id !== conversationId);
    this.set({ conversations, active: this.state.active === conversationId ? null : this.state.active });
  }

  private async loadPreview(conversationId: string): Promise<void> {
    const res = await conversationClient.listMessages({ conversationId, limit: 1 });
    const m = res.messages[0];
    if (m) this.setPreview(conversationId, await this.engine.decrypt(m));
  }

  private setPreview(conversationId: string, content: Content): void {
    const text = content.kind === "text" ? content.text : content.kind === "attachment" ? content.file.name : null;
    if (text === null) return;
    this.set({ previews: { ...this.state.previews, [conversationId]: text.slice(0, 120) } });
  }

  conversation(id: string): Conversation | undefined {
    return this.state.conversations.find((c) => c.id === id);
  }

  private upsertConversation(c: Conversation): void {
    const rest = this.state.conversations.filter((x) => x.id !== c.id);
    const list = [c, ...rest].sort((a, b) => Number(b.lastActivityAtMs - a.lastActivityAtMs));
    this.set({ conversations: list });
  }

  /** Opens (or finds) the direct conversation with the person who has `username`. */
  async openDirect(username: string): Promise<string> {
    const { accountId } = await this.lookUp(username);
    const res = await conversationClient.openDirect({ accountId });
    if (!res.conversation) throw new Error("OpenDirect answered without a conversation");
    this.upsertConversation(res.conversation);
    return res.conversation.id;
  }

  /** Creates a group named `title` with the people who have `usernames` (we join as owner). */
  async createGroup(title: string, usernames: string[]): Promise<string> {
    const memberIds: string[] = [];
    for (const u of usernames) memberIds.push((await this.lookUp(u)).accountId);
    const res = await conversationClient.createGroup({ title: title.trim(), memberIds });
    if (!res.conversation) throw new Error("CreateGroup answered without a conversation");
    this.upsertConversation(res.conversation);
    return res.conversation.id;
  }

  /** Adds the person with `username` to a group (owners and admins). */
  async addMember(conversationId: string, username: string): Promise<void> {
    const { accountId } = await this.lookUp(username);
    const res = await conversationClient.addMembers({ conversationId, accountIds: [accountId] });
    if (res.conversation) this.upsertConversation(res.conversation);
  }

  setActive(id: string | null): void {
    this.set({ active: id });
    if (id) {
      this.refreshNames(id);
      if (!this.state.threads[id]?.loaded) void this.loadOlder(id);
      else this.markReadIfVisible(id);
    }
  }

  /** Loads the page of history before the oldest message we hold. */
  async loadOlder(conversationId: string): Promise<void> {
    const thread = this.state.threads[conversationId];
    if (thread?.loaded && !thread.more) return;
    const oldest = thread?.items.find((i) => i.message.seq > 0n)?.message.seq ?? 0n;
    const res = await conversationClient.listMessages({
      conversationId,
      cursor: oldest,
      direction: HistoryDirection.BACKWARD,
      limit: 50,
    });
    const items: Item[] = [];
    for (const m of res.messages) items.push({ message: m, content: await this.engine.decrypt(m) });
    this.merge(conversationId, items, { more: res.more, loaded: true });
    this.markReadIfVisible(conversationId);
  }

  private merge(conversationId: string, incoming: Item[], patch: Partial<Thread> = {}): void {
    const thread = this.state.threads[conversationId] ?? { items: [], more: true, loaded: false };
    const byId = new Map(thread.items.map((i) => [i.message.id, i]));
    for (const item of incoming) {
      const have = byId.get(item.message.id);
      if (
        have &&
        !have.local &&
        have.content.kind !== "undecryptable" &&
        item.message.editedAtMs <= have.message.editedAtMs &&
        item.message.deletedAtMs <= have.message.deletedAtMs
      ) {
        continue; // a duplicate
      }
      byId.set(item.message.id, item);
    }
    const items = [...byId.values()].sort((a, b) => {
      const sa = a.message.seq || BigInt(Number.MAX_SAFE_INTEGER);
      const sb = b.message.seq || BigInt(Number.MAX_SAFE_INTEGER);
      return sa < sb ? -1 : sa > sb ? 1 : 0;
    });
    this.set({ threads: { ...this.state.threads, [conversationId]: { ...thread, ...patch, items } } });
  }

  async send(conversationId: string, text: string, retryOf?: Item, replyTo = "", attachments: string[] = []): Promise<void> {
    const conversation = this.conversation(conversationId);
    if (!conversation) return;
    const members = conversation.members.map((m) => m.accountId);
    const reply = retryOf?.message.replyTo ?? replyTo;
    const attachmentIds = retryOf?.attachmentIds ?? attachments;
    const content = contentOf(text);
    let placeholder: Item | undefined = retryOf;
    try {
      const encrypted = retryOf?.message.ciphertext.length
        ? {
            messageId: retryOf.message.id,
            ciphertext: retryOf.message.ciphertext,
            sessionId: retryOf.message.sessionId,
          }
        : await this.engine.encrypt(conversationId, members, text);
      placeholder = {
        message: create(MessageSchema, {
          id: encrypted.messageId,
          conversationId,
          senderAccountId: this.state.me.accountId,
          senderDeviceId: this.state.me.deviceId,
          ciphertext: encrypted.ciphertext,
          sessionId: encrypted.sessionId,
          replyTo: reply,
          sentAtMs: BigInt(Date.now()),
        }),
        content,
        local: "sending",
        text,
        attachmentIds,
      };
      this.merge(conversationId, [placeholder]);
      const res = await conversationClient.sendMessage({
        conversationId,
        messageId: encrypted.messageId,
        ciphertext: encrypted.ciphertext,
        sessionId: encrypted.sessionId,
        replyTo: reply,
        attachmentIds,
      });
      if (res.message) {
        this.merge(conversationId, [{ message: res.message, content }]);
        this.setPreview(conversationId, content);
        const c = this.conversation(conversationId);
        if (c) this.upsertConversation({ ...c, lastSeq: res.message.seq, lastActivityAtMs: res.message.sentAtMs });
      }
    } catch (err) {
      if (err instanceof AccountKeyChanged) this.keyChanged(err.accountId);
      if (placeholder) this.merge(conversationId, [{ ...placeholder, local: "failed", content }]);
      throw err;
    }
  }

  /**
   * Sends a file: an image (JPEG, PNG, WebP) is re-encoded without its metadata unless
   * `keepOriginal`, and gets an encrypted thumbnail; the file is encrypted chunk by chunk,
   * uploaded (progress through `onProgress`; `signal` cancels: the PUT is aborted and the
   * attachments deleted), and the message carrying its key is sent (docs/attachments.md).
   */
  async sendFile(
    conversationId: string,
    file: File,
    options: SendFileOptions,
    onProgress?: Progress,
    signal?: AbortSignal,
  ): Promise<void> {
    let body: Blob = file;
    let type = file.type;
    const uploaded: string[] = [];
    let sending = false;
    const ref: Omit<FileRef, "attachment" | "secrets" | "size"> = { name: file.name, type };
    let thumbnail: { blob: Blob; width: number; height: number } | null = null;
    if (isPreviewable(file.type)) {
      try {
        const image = await prepareImage(file, options.keepOriginal);
        body = image.body;
        type = image.type;
        ref.type = type;
        ref.width = image.width;
        ref.height = image.height;
        thumbnail = image.thumbnail;
      } catch (err) {
        // Not decodable: sent as it is, as a file card.
        console.warn("image not decoded; sending it as a file", err);
      }
    }
    try {
      let thumbRef: FileRef["thumbnail"];
      if (thumbnail) {
        const t = await encryptBlob(thumbnail.blob);
        const id = await uploadCiphertext(conversationId, t.ciphertext, options.ttlSeconds, undefined, signal);
        uploaded.push(id);
        thumbRef = { attachment: id, secrets: t.secrets, type: "image/jpeg", width: thumbnail.width, height: thumbnail.height };
      }
      const encrypted = await encryptBlob(body);
      if (signal?.aborted) throw new Cancelled();
      const id = await uploadCiphertext(conversationId, encrypted.ciphertext, options.ttlSeconds, onProgress, signal);
      uploaded.push(id);
      const full: FileRef = { attachment: id, secrets: encrypted.secrets, size: body.size, ...ref };
      if (thumbRef) full.thumbnail = thumbRef;
      sending = true;
      await this.send(conversationId, fileRefText(full), undefined, "", attachmentIds(full));
    } catch (err) {
      // Cancelled or failed before the message went: take back what was uploaded. A failed send
      // keeps them, for its retry (the server deletes them after its grace period otherwise).
      if (!sending) for (const id of uploaded) await deleteAttachment(id);
      throw err;
    }
  }

  /** Notes that an attachment is gone (the server said so). */
  markExpired(attachmentId: string): void {
    this.patchFile(attachmentId, { expired: true });
  }

  private patchFile(attachmentId: string, patch: FileState): void {
    const before = this.state.files[attachmentId] ?? {};
    this.set({ files: { ...this.state.files, [attachmentId]: { ...before, ...patch } } });
  }

  /** Loads who downloaded one of our attachments (ListDownloads). */
  async loadDownloads(attachmentId: string): Promise<void> {
    try {
      const res = await attachmentClient.listDownloads({ attachmentId });
      const downloads = res.downloads.map((d) => ({ accountId: d.accountId, atMs: Number(d.downloadedAtMs) }));
      void this.loadProfiles(downloads.map((d) => d.accountId)).catch(() => undefined);
      this.mergeDownloads(attachmentId, downloads);
    } catch (err) {
      const reason = reasonOf(err);
      if (reason === "ATTACHMENT_NOT_FOUND" || reason === "ATTACHMENT_EXPIRED") this.markExpired(attachmentId);
    }
  }

  private mergeDownloads(attachmentId: string, list: Array<{ accountId: string; atMs: number }>): void {
    const byAccount = new Map((this.state.files[attachmentId]?.downloads ?? []).map((d) => [d.accountId, d]));
    for (const d of list) if (!byAccount.has(d.accountId)) byAccount.set(d.accountId, d);
    this.patchFile(attachmentId, { downloads: [...byAccount.values()].sort((a, b) => a.atMs - b.atMs) });
  }

  /** Replaces the text of one of our messages (encrypted anew with the current session). */
  async edit(conversationId: string, item: Item, text: string): Promise<void> {
    const conversation = this.conversation(conversationId);
    if (!conversation) return;
    const members = conversation.members.map((m) => m.accountId);
    try {
      const encrypted = await this.engine.encrypt(conversationId, members, text);
      const res = await conversationClient.editMessage({
        conversationId,
        messageId: item.message.id,
        ciphertext: encrypted.ciphertext,
        sessionId: encrypted.sessionId,
      });
      if (res.message) this.merge(conversationId, [{ message: res.message, content: { kind: "text", text } }]);
    } catch (err) {
      if (err instanceof AccountKeyChanged) this.keyChanged(err.accountId);
      throw err;
    }
  }

  /** Deletes a message (ours, or any in a group we administer). */
  async remove(conversationId: string, item: Item): Promise<void> {
    const res = await conversationClient.deleteMessage({ conversationId, messageId: item.message.id });
    if (res.message) this.merge(conversationId, [{ message: res.message, content: { kind: "deleted" } }]);
  }

  typing(conversationId: string, typing: boolean): void {
    this.gateway.typing(conversationId, typing);
  }

  /** Marks the conversation read up to its newest message when it is on screen. */
  markReadIfVisible(conversationId: string): void {
    if (this.state.active !== conversationId || document.visibilityState !== "visible") return;
    const c = this.conversation(conversationId);
    const thread = this.state.threads[conversationId];
    const newest = thread?.items.reduce((max, i) => (i.message.seq > max ? i.message.seq : max), 0n) ?? 0n;
    const mine = c?.members.find((m) => m.accountId === this.state.me.accountId);
    if (!c || newest === 0n || (mine && mine.readSeq >= newest && c.unreadCount === 0)) return;
    void conversationClient
      .markRead({ conversationId, seq: newest })
      .then((res) => {
        const cur = this.conversation(conversationId);
        if (!cur) return;
        const members = cur.members.map((m) =>
          m.accountId === this.state.me.accountId ? { ...m, readSeq: res.readSeq } : m,
        );
        this.upsertConversation({ ...cur, members, unreadCount: res.unreadCount });
      })
      .catch(() => undefined);
  }

  private expireTyping(): void {
    const now = Date.now();
    let changed = false;
    const typing: ChatState["typing"] = {};
    for (const [conv, who] of Object.entries(this.state.typing)) {
      const kept = Object.fromEntries(Object.entries(who).filter(([, until]) => until > now));
      if (Object.keys(kept).length !== Object.keys(who).length) changed = true;
      typing[conv] = kept;
    }
    if (changed) this.set({ typing });
  }

  private async onEvent(event: Event): Promise<void> {
    const body = event.body;
    switch (body.case) {
      case "message": {
        const m = body.value.message;
        if (!m) return;
        if (!this.conversation(m.conversationId)) await this.loadConversations();
        const content = await this.engine.decrypt(m);
        const thread = this.state.threads[m.conversationId];
        const known = thread?.items.some((i) => i.message.id === m.id && !i.local);
        this.merge(m.conversationId, [{ message: m, content }]);
        this.setPreview(m.conversationId, content);
        const c = this.conversation(m.conversationId);
        if (c && !known) {
          const fromOther = m.senderAccountId !== this.state.me.accountId;
          const visible = this.state.active === m.conversationId && document.visibilityState === "visible";
          const newest = m.seq > c.lastSeq ? m.seq : c.lastSeq;
          this.upsertConversation({
            ...c,
            lastSeq: newest,
            lastActivityAtMs: m.sentAtMs > c.lastActivityAtMs ? m.sentAtMs : c.lastActivityAtMs,
            unreadCount: c.unreadCount + (fromOther && !visible && m.deletedAtMs === 0n ? 1 : 0),
          });
          if (visible) this.markReadIfVisible(m.conversationId);
          if (fromOther && body.value.change === MessageChange.NEW && m.deletedAtMs === 0n) {
            const incoming = { conversationId: m.conversationId, senderAccountId: m.senderAccountId, content };
            for (const l of this.incomingListeners) l(incoming);
          }
        }
        return;
      }
      case "receipt": {
        const r = body.value;
        if (r.accountId === this.state.me.accountId) {
          const c = this.conversation(r.conversationId);
          if (c) {
            const members = c.members.map((m) =>
              m.accountId === r.accountId && r.readSeq > m.readSeq ? { ...m, readSeq: r.readSeq } : m,
            );
            this.upsertConversation({ ...c, members, unreadCount: r.unreadCount });
          }
          return;
        }
        const forConv = { ...(this.state.receipts[r.conversationId] ?? {}) };
        const before = forConv[r.accountId] ?? { delivered: 0n, read: 0n };
        forConv[r.accountId] = {
          delivered: r.deliveredSeq > before.delivered ? r.deliveredSeq : before.delivered,
          read: r.readSeq > before.read ? r.readSeq : before.read,
        };
        this.set({ receipts: { ...this.state.receipts, [r.conversationId]: forConv } });
        return;
      }
      case "member":
        await this.loadConversations();
        return;
      case "deviceList": {
        const accountId = body.value.accountId;
        this.engine.deviceListChanged(accountId);
        // A contact whose account key changed is shown a warning at once, not at the next send.
        if (await this.engine.accountKeyChanged(accountId).catch(() => false)) this.keyChanged(accountId);
        return;
      }
      case "toDevice": {
        const taken = await this.engine.takeToDevice(body.value);
        if (taken?.kind === "roomKey") await this.retryUndecrypted(taken.sessionId);
        if (taken?.kind === "verification") {
          await this.verifier.receive(taken.from, taken.bytes).catch((err: unknown) => {
            if (err instanceof AccountKeyChanged) this.keyChanged(err.accountId);
            else console.warn("verification message not taken", err);
          });
        }
        return;
      }
      case "typing": {
        const t = body.value;
        if (t.accountId === this.state.me.accountId) return;
        const who = { ...(this.state.typing[t.conversationId] ?? {}) };
        if (t.typing) who[t.accountId] = Date.now() + 6000;
        else delete who[t.accountId];
        this.set({ typing: { ...this.state.typing, [t.conversationId]: who } });
        return;
      }
      case "call": {
        const e = body.value;
        // A call in a conversation we do not know yet (just added to it): fetch the list first.
        if (!this.conversation(e.conversationId)) await this.loadConversations();
        this.calls.onEvent(e);
        return;
      }
      case "attachment": {
        const e = body.value;
        if (e.change === AttachmentChange.EXPIRED) this.markExpired(e.attachmentId);
        if (e.change === AttachmentChange.DOWNLOADED && e.accountId) {
          void this.loadProfiles([e.accountId]).catch(() => undefined);
          this.mergeDownloads(e.attachmentId, [{ accountId: e.accountId, atMs: Number(e.atMs) }]);
        }
        return;
      }
      case "avatar": {
        const e = body.value;
        if (e.avatar && (e.owner.case === "accountId" || e.owner.case === "conversationId")) {
          this.applyAvatar({ case: e.owner.case, value: e.owner.value }, e.avatar);
        }
        return;
      }
      case "syncComplete":
        await this.loadConversations(true);
        void this.engine.topUpKeys().catch(() => undefined);
        return;
      default:
        return;
    }
  }

  /** Decrypts again the messages that waited for the key of `sessionId`. */
  private async retryUndecrypted(sessionId: string): Promise<void> {
    for (const [conversationId, thread] of Object.entries(this.state.threads)) {
      const waiting = thread.items.filter(
        (i) => i.content.kind === "undecryptable" && i.content.sessionId === sessionId,
      );
      if (waiting.length === 0) continue;
      const items: Item[] = [];
      for (const i of waiting) items.push({ message: i.message, content: await this.engine.decrypt(i.message) });
      this.merge(conversationId, items);
      const last = items[items.length - 1];
      if (last) this.setPreview(conversationId, last.content);
    }
  }
}

export function useChat<T>(chat: Chat, select: (s: ChatState) => T): T {
  return useSyncExternalStore(chat.subscribe, () => select(chat.get()));
}
