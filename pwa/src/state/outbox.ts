// outbox.ts — everything this device has yet to send: new messages, file messages, edits,
// deletions and reactions (a reaction is a message of its own: state/reactions.ts). Each goes first into the outbox (IndexedDB store "outbox", sealed under the device's
// key: storage/sealed.ts), with the message id chosen then (UUIDv7) and kept across retries,
// reloads and crashes, and shows at once with a clock. One worker per conversation then sends the
// records strictly in order: it encrypts a record once and keeps the ciphertext in the record, so
// a retry sends the very same bytes (SendMessage is idempotent per message id); it retries on
// network and server troubles with a growing delay and at once when the gateway reconnects; a
// record is removed only after the server acknowledged it. A refusal that will not change
// (conversation gone, removed from it, not allowed, too large…) ends the record as "Not sent"
// with its reason at once; so does a record that kept failing for GIVE_UP_MS. A "Not sent" record
// stays (also across reloads) until the person retries or deletes it.
// Files: the encrypted file (and its thumbnail) is kept in the outbox store as a Blob of
// ciphertext (its key only in the sealed record), so an upload cut by a reload restarts from it.
import { create } from "@bufbuild/protobuf";
import { attachmentIds, type FileRef, type ThumbnailRef } from "../attachments/content";
import { cloudContent, encodeContent, reactionProblem, shownAs, TextTooLong, type Content, type Extras, type Mention, type Outgoing } from "../crypto/content";
import type { E2ee } from "../crypto/engine";
import { reasonOf } from "../errors";
import { ConversationMode, MessageSchema } from "../gen/kitsulan/v1/conversation_pb";
import { uuidv7 } from "../lib/ids";
import * as db from "../storage/db";
import { entriesSealed, putSealed, type Sealer } from "../storage/sealed";
import type { ConversationClient, Conversations } from "./conversations";
import type { Item } from "./messages";
import type { Me } from "./profiles";
import type { ChatEvent, StateAccess } from "./store";

/** How long a record may keep failing (network, server down) before it shows "Not sent". */
export const GIVE_UP_MS = 3 * 60_000;
/** The waits between attempts (the last one repeats). */
export const BACKOFF_MS = [1_000, 2_000, 5_000, 10_000, 20_000, 30_000];
/** Encrypted files up to this size are kept in IndexedDB until sent (larger: in memory only, so
 * a reload before the upload finished ends them as "Not sent", FILE_LOST). */
export const KEEP_FILES_UP_TO = 256 * 1024 * 1024;

/** Reasons of our own (besides the server's ErrorReason names) a record is not sent. */
export const TIMED_OUT = "TIMED_OUT";
export const KEY_CHANGED = "KEY_CHANGED";
export const FILE_LOST = "FILE_LOST";
export const TEXT_TOO_LONG = "TEXT_TOO_LONG";

/** The server's reasons (and call codes) that may go away: the record is tried again. */
const TRANSIENT = new Set([
  "UNAVAILABLE",
  "STORAGE_UNAVAILABLE",
  "INTERNAL",
  "RATE_LIMITED",
  "DEADLINE_EXCEEDED",
  "RESOURCE_EXHAUSTED",
  "ABORTED",
  "CANCELED",
  "UNKNOWN",
  "UNAUTHENTICATED",
  "SESSION_INVALID",
  // Sharing the room key with a device whose inbox is full: it empties when the device connects.
  "INBOX_FULL",
  "TOO_MANY_PENDING",
  "STRANGER_INBOX_FULL",
]);

/** A file waiting to be sent: what its message will say, and its uploads so far. */
export interface PendingFile {
  /** The file's reference without its attachment ids (known after the upload). */
  ref: Omit<FileRef, "attachment" | "thumbnail">;
  thumbnail?: Omit<ThumbnailRef, "attachment">;
  ttlSeconds: number;
  /** A forwarded file: who wrote the original and when (Content.forwarded). */
  extras?: Pick<Extras, "forwarded">;
  /** The attachment ids once uploaded and completed. */
  bodyId?: string;
  thumbnailId?: string;
  /** Whether the ciphertext blobs are in IndexedDB (false: only in this page's memory). */
  kept: boolean;
}

export type OutboxAction =
  /** `extras`: the quote of the message answered, the forwarded mark, the people mentioned. */
  | { kind: "send"; text: string; replyTo: string; extras?: Extras }
  | { kind: "file"; file: PendingFile }
  | { kind: "edit"; text: string; mentions?: Mention[] }
  | { kind: "delete" }
  /** A reaction to the message `target` (or taking it back): a new message (`messageId`) that
   * says so, shown as a chip under `target` (reactions.ts). */
  | { kind: "react"; target: string; emoji: string; remove: boolean };

export interface OutboxRecord {
  /** `msg/<conversation>/<order>`: key order is the order of sending. */
  key: string;
  conversationId: string;
  /** The message sent, edited or deleted (a new message's id is chosen at enqueue). */
  messageId: string;
  action: OutboxAction;
  createdAtMs: number;
  /** When the current round of attempts began (enqueue or Retry): GIVE_UP_MS counts from it. */
  sinceMs: number;
  /** The Megolm ciphertext once encrypted: every later attempt sends exactly these bytes;
   * `unreadableBy`: the members none of whose devices got the key (the bubble warns). */
  encrypted?: { ciphertext: Uint8Array; sessionId: Uint8Array; unreadableBy?: string[] };
  /** Why it is not sent (a server reason or one of ours): it waits for Retry or Delete. */
  failed?: string;
}

export interface OutboxState {
  /** The records of each conversation, in order. */
  outbox: Record<string, OutboxRecord[]>;
}

export function apply<S extends OutboxState>(state: S, event: ChatEvent): S {
  if (event.type !== "outbox") return state;
  const outbox = { ...state.outbox };
  if (event.records.length > 0) outbox[event.conversationId] = event.records;
  else delete outbox[event.conversationId];
  return { ...state, outbox };
}

/** What a pending file shows before its upload (a file card with its name and size). */
function pendingFileContent(f: PendingFile): Content {
  return { kind: "attachment", file: { ...f.ref, attachment: "" } };
}

/**
 * The thread as it shows: the server's `items` with the conversation's outbox over them. A new
 * message shows last with its clock (or "Not sent"); a pending edit or deletion shows on the
 * message it changes (when that message is loaded).
 */
export function withOutbox(items: Item[], records: OutboxRecord[] | undefined, me: Pick<Me, "accountId" | "deviceId">): Item[] {
  if (!records || records.length === 0) return items;
  const out = [...items];
  const index = new Map(out.map((item, i) => [item.message.id, i]));
  for (const r of records) {
    const local = r.failed ? ("failed" as const) : ("sending" as const);
    const extra: Pick<Item, "local" | "failure" | "outboxKey"> = { local, outboxKey: r.key };
    if (r.failed) extra.failure = r.failed;
    const at = index.get(r.messageId);
    const held = at === undefined ? undefined : out[at];
    const a = r.action;
    if (a.kind === "react" || a.kind === "send" || a.kind === "file") {
      // A new message of ours: shown last with its clock, until the server acknowledges it.
      if (held && held.message.seq > 0n) continue; // acknowledged: the record is on its way out
      const message = create(MessageSchema, {
        id: r.messageId,
        conversationId: r.conversationId,
        senderAccountId: me.accountId,
        senderDeviceId: me.deviceId,
        replyTo: a.kind === "send" ? a.replyTo : "",
        sentAtMs: BigInt(r.createdAtMs),
      });
      const content: Content =
        a.kind === "react"
          ? { kind: "reaction", messageId: a.target, emoji: a.emoji, remove: a.remove }
          : a.kind === "send"
            ? { kind: "text", text: a.text, ...a.extras }
            : pendingFileContent(a.file);
      index.set(r.messageId, out.length);
      out.push({ message, content, ...extra });
    } else if (held && at !== undefined) {
      const content: Content =
        a.kind === "edit" ? { kind: "text", text: a.text, ...(a.mentions?.length ? { mentions: a.mentions } : {}) } : { kind: "deleted" };
      out[at] = { ...held, content, ...extra };
    }
  }
  return out;
}

/** Where records (sealed) and file ciphertexts live. */
export interface OutboxStorage {
  load(): Promise<OutboxRecord[]>;
  put(record: OutboxRecord): Promise<void>;
  remove(key: string): Promise<void>;
  /** Keeps a file's ciphertext; false when it could not be kept (too large, no room). */
  putBlob(key: string, blob: Blob): Promise<boolean>;
  getBlob(key: string): Promise<Blob | undefined>;
  removeBlob(key: string): Promise<void>;
}

const blobKey = (recordKey: string, part: "body" | "thumbnail") => `blob/${recordKey}/${part}`;

/** The outbox in IndexedDB: records sealed under the device's key (the E2EE engine), file
 * ciphertexts as Blobs (useless without the secrets in the sealed record). */
export function sealedStorage(sealer: Sealer): OutboxStorage {
  return {
    load: async () => (await entriesSealed<OutboxRecord>(sealer, "outbox", "msg/")).map(([, r]) => r),
    put: (record) => putSealed(sealer, "outbox", record.key, record),
    remove: (key) => db.del("outbox", key),
    putBlob: async (key, blob) => {
      if (blob.size > KEEP_FILES_UP_TO) return false;
      try {
        await db.put("outbox", key, blob);
        return true;
      } catch (err) {
        console.warn("file not kept for the outbox", err);
        return false;
      }
    },
    getBlob: async (key) => {
      const v = await db.get<unknown>("outbox", key);
      return v instanceof Blob ? v : undefined;
    },
    removeBlob: (key) => db.del("outbox", key),
  };
}

/** Uploads of encrypted files (attachments/transfer.ts). */
export interface OutboxTransfer {
  upload(conversationId: string, ciphertext: Blob, ttlSeconds: number, onProgress?: (done: number, total: number) => void, signal?: AbortSignal): Promise<string>;
  remove(attachmentId: string): Promise<void>;
}

export interface OutboxDeps {
  client: Pick<ConversationClient, "sendMessage" | "editMessage" | "deleteMessage" | "getConversation">;
  engine: Pick<E2ee, "encrypt">;
  conversations: Pick<Conversations, "get">;
  storage: OutboxStorage;
  transfer: OutboxTransfer;
  /** Told of an error of encryption; true when it is a changed account key (a warning shows). */
  keyChanged: (err: unknown) => boolean;
  now: () => number;
  /** Waits `ms` (or until `wake` is called). */
  sleep?: (ms: number, wake: AbortSignal) => Promise<void>;
}

/** A file's upload progress and end, for the composer's list in this page. */
export interface FileWatch {
  onProgress?: ((done: number, total: number) => void) | undefined;
  /** Sent, "Not sent", or deleted: the list entry goes. */
  onEnd?: () => void;
}

class FileLost extends Error {
  constructor() {
    super("the file was not kept on this device");
  }
}

function defaultSleep(ms: number, wake: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    wake.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

export class Outbox {
  private records = new Map<string, OutboxRecord[]>();
  private running = new Set<string>();
  private wakers = new Map<string, AbortController>();
  /** Conversations kicked while their worker was busy: it tries again without waiting. */
  private kicked = new Set<string>();
  /** File ciphertexts of this page (also when not kept in IndexedDB). */
  private blobs = new Map<string, Blob>();
  private watches = new Map<string, FileWatch>();
  /** The record being uploaded and how to stop it (Delete during an upload). */
  private uploading = new Map<string, AbortController>();
  private lastOrder = 0;
  /** Writes go one after another, so records land in the order they were made. */
  private writes: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly state: StateAccess,
    private readonly deps: OutboxDeps,
  ) {}

  /** Loads the records a previous page left (a reload, a crash) and resumes sending them. */
  async load(): Promise<void> {
    const loaded = await this.deps.storage.load();
    for (const r of loaded) {
      const list = this.records.get(r.conversationId) ?? [];
      if (!list.some((x) => x.key === r.key)) list.push(r);
      this.records.set(r.conversationId, list);
      this.lastOrder = Math.max(this.lastOrder, Number(r.key.split("/")[2] ?? 0));
    }
    for (const [conversationId, list] of this.records) {
      list.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      this.publish(conversationId);
    }
    this.kick();
  }

  /** Stops the workers (sign-out, page end); what is left stays in IndexedDB. */
  stop(): void {
    this.stopped = true;
    for (const w of this.wakers.values()) w.abort();
    for (const u of this.uploading.values()) u.abort();
  }

  /** Sends again at once whatever waits (the gateway reconnected). */
  kick(): void {
    for (const conversationId of this.records.keys()) this.run(conversationId);
  }

  /** A new message. Resolves once it is in the outbox (the draft may then be cleared). A text
   * longer than MAX_TEXT_LENGTH is kept too, and ends as "Not sent" (TEXT_TOO_LONG) at once,
   * never encrypted: what was typed is not lost. */
  async send(conversationId: string, text: string, replyTo = "", extras: Extras = {}): Promise<string> {
    const action: OutboxAction = { kind: "send", text, replyTo };
    if (extras.quote || extras.forwarded || extras.mentions?.length) action.extras = extras;
    const r = await this.enqueue(conversationId, uuidv7(this.deps.now()), action);
    return r.messageId;
  }

  /** A new text for one of our messages (too long: "Not sent", as send). */
  async edit(conversationId: string, messageId: string, text: string, mentions: Mention[] = []): Promise<void> {
    await this.enqueue(conversationId, messageId, mentions.length > 0 ? { kind: "edit", text, mentions } : { kind: "edit", text });
  }

  /** Reacts to the message `target` with `emoji`, or takes that reaction back (`remove`). A
   * malformed emoji (crypto/content.ts, reactionProblem) is refused here, before it is kept. */
  async react(conversationId: string, target: string, emoji: string, remove = false): Promise<string> {
    const problem = reactionProblem(emoji);
    if (problem) throw new Error(`not a reaction: ${problem}`);
    const r = await this.enqueue(conversationId, uuidv7(this.deps.now()), { kind: "react", target, emoji, remove });
    return r.key;
  }

  /** Deletes a message (ours, or any in a group we administer). */
  async remove(conversationId: string, messageId: string): Promise<void> {
    await this.enqueue(conversationId, messageId, { kind: "delete" });
  }

  /**
   * A file message: the encrypted body (and thumbnail) are kept with the record, uploaded by the
   * worker in turn, then the message naming them is sent. Resolves with the record's key (for
   * discard) once it is in the outbox.
   */
  async sendFile(
    conversationId: string,
    file: Omit<PendingFile, "kept" | "bodyId" | "thumbnailId">,
    blobs: { body: Blob; thumbnail?: Blob },
    watch: FileWatch = {},
  ): Promise<string> {
    const messageId = uuidv7(this.deps.now());
    const r = await this.enqueue(conversationId, messageId, { kind: "file", file: { ...file, kept: false } }, async (record) => {
      let kept = await this.deps.storage.putBlob(blobKey(record.key, "body"), blobs.body);
      if (kept && blobs.thumbnail) kept = await this.deps.storage.putBlob(blobKey(record.key, "thumbnail"), blobs.thumbnail);
      if (record.action.kind === "file") record.action.file.kept = kept;
      this.blobs.set(blobKey(record.key, "body"), blobs.body);
      if (blobs.thumbnail) this.blobs.set(blobKey(record.key, "thumbnail"), blobs.thumbnail);
      this.watches.set(record.key, watch);
    });
    return r.key;
  }

  /** Tries a "Not sent" record again (from now on, for GIVE_UP_MS more). */
  async retry(key: string): Promise<void> {
    const r = this.find(key);
    if (!r?.failed) return;
    // A refused attachment (expired, gone): upload the file again. The refused send stored
    // nothing, so its id may carry a new ciphertext.
    if (r.action.kind === "file" && r.failed.startsWith("ATTACHMENT_")) {
      delete r.action.file.bodyId;
      delete r.action.file.thumbnailId;
      delete r.encrypted;
    }
    delete r.failed;
    r.sinceMs = this.deps.now();
    await this.deps.storage.put(r);
    this.publish(r.conversationId);
    this.run(r.conversationId);
  }

  /** Deletes a record that is not sent (its bubble goes; a pending edit or deletion is dropped). */
  async discard(key: string): Promise<void> {
    const r = this.find(key);
    if (!r) return;
    this.uploading.get(key)?.abort();
    await this.drop(r);
    if (r.action.kind === "file") {
      for (const id of [r.action.file.bodyId, r.action.file.thumbnailId]) {
        if (id) await this.deps.transfer.remove(id).catch(() => undefined);
      }
    }
  }

  private find(key: string): OutboxRecord | undefined {
    for (const list of this.records.values()) {
      const r = list.find((x) => x.key === key);
      if (r) return r;
    }
    return undefined;
  }

  private enqueue(
    conversationId: string,
    messageId: string,
    action: OutboxAction,
    before?: (record: OutboxRecord) => Promise<void>,
  ): Promise<OutboxRecord> {
    const now = this.deps.now();
    this.lastOrder = Math.max(now * 1000, this.lastOrder + 1);
    const key = `msg/${conversationId}/${String(this.lastOrder).padStart(17, "0")}`;
    const record: OutboxRecord = { key, conversationId, messageId, action, createdAtMs: now, sinceMs: now };
    const write = this.writes.then(async () => {
      await before?.(record);
      // Written before it shows or goes: a crash from here on leaves it to the next start.
      await this.deps.storage.put(record);
      const list = this.records.get(conversationId) ?? [];
      list.push(record);
      this.records.set(conversationId, list);
      this.publish(conversationId);
      this.run(conversationId);
      return record;
    });
    this.writes = write.catch(() => undefined);
    return write;
  }

  private publish(conversationId: string): void {
    const list = this.records.get(conversationId) ?? [];
    this.state.dispatch({ type: "outbox", conversationId, records: list.map((r) => ({ ...r })) });
  }

  private async drop(r: OutboxRecord): Promise<void> {
    await this.deps.storage.remove(r.key);
    if (r.action.kind === "file") {
      for (const part of ["body", "thumbnail"] as const) {
        this.blobs.delete(blobKey(r.key, part));
        await this.deps.storage.removeBlob(blobKey(r.key, part)).catch(() => undefined);
      }
      const watch = this.watches.get(r.key);
      this.watches.delete(r.key);
      watch?.onEnd?.();
    }
    const list = (this.records.get(r.conversationId) ?? []).filter((x) => x.key !== r.key);
    if (list.length > 0) this.records.set(r.conversationId, list);
    else this.records.delete(r.conversationId);
    this.publish(r.conversationId);
  }

  /** Starts the conversation's worker, or wakes it from its wait. */
  private run(conversationId: string): void {
    if (this.stopped) return;
    if (this.running.has(conversationId)) {
      this.kicked.add(conversationId);
      this.wakers.get(conversationId)?.abort();
      return;
    }
    this.running.add(conversationId);
    void this.work(conversationId);
  }

  /** The conversation's worker: one at a time (`running`), which it leaves in the same turn as
   * it finds nothing more to do, so a record added just then starts a new one. */
  private async work(conversationId: string): Promise<void> {
    let attempt = 0;
    for (;;) {
      const head = (this.records.get(conversationId) ?? []).find((r) => !r.failed);
      if (!head || this.stopped) {
        this.running.delete(conversationId);
        this.kicked.delete(conversationId);
        return;
      }
      this.kicked.delete(conversationId);
      try {
        await this.attempt(head);
        attempt = 0;
        continue;
      } catch (err) {
        if (!this.find(head.key) || this.stopped) continue; // deleted meanwhile, or stopped
        let reason = this.permanent(err);
        if (!reason && this.deps.now() - head.sinceMs >= GIVE_UP_MS) reason = TIMED_OUT;
        if (reason) {
          console.warn(`outbox: ${head.messageId} not sent (${reason})`, err);
          head.failed = reason;
          await this.deps.storage.put(head).catch(() => undefined);
          this.publish(conversationId);
          if (head.action.kind === "file") this.watches.get(head.key)?.onEnd?.();
          attempt = 0;
          continue;
        }
        const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)] ?? 30_000;
        attempt++;
        if (this.kicked.has(conversationId)) continue; // reconnected during the attempt: go again now
        const waker = new AbortController();
        this.wakers.set(conversationId, waker);
        await (this.deps.sleep ?? defaultSleep)(wait, waker.signal);
        this.wakers.delete(conversationId);
      }
    }
  }

  /** The reason a failure will not go away by trying again, or null. */
  private permanent(err: unknown): string | null {
    if (err instanceof FileLost) return FILE_LOST;
    if (err instanceof TextTooLong) return TEXT_TOO_LONG;
    if (this.deps.keyChanged(err)) return KEY_CHANGED;
    const reason = reasonOf(err);
    return TRANSIENT.has(reason) ? null : reason;
  }

  /** Whether the conversation is a cloud one (its messages go as Content, never encrypted). */
  private async cloud(conversationId: string): Promise<boolean> {
    const known = this.deps.conversations.get(conversationId);
    if (known) return known.mode === ConversationMode.CLOUD;
    const res = await this.deps.client.getConversation({ conversationId });
    return res.conversation?.mode === ConversationMode.CLOUD;
  }

  private async members(conversationId: string): Promise<string[]> {
    const known = this.deps.conversations.get(conversationId);
    if (known) return known.members.map((m) => m.accountId);
    const res = await this.deps.client.getConversation({ conversationId });
    return res.conversation?.members.map((m) => m.accountId) ?? [];
  }

  /** Encrypts `plaintext` for the record once; later attempts reuse the ciphertext. */
  private async encrypted(
    r: OutboxRecord,
    plaintext: () => Uint8Array,
  ): Promise<{ ciphertext: Uint8Array; sessionId: Uint8Array; unreadableBy?: string[] }> {
    if (!r.encrypted) {
      const members = await this.members(r.conversationId);
      const e = await this.deps.engine.encrypt(r.conversationId, members, plaintext());
      r.encrypted = { ciphertext: e.ciphertext, sessionId: e.sessionId, unreadableBy: e.unreadableBy };
    }
    // Kept before it goes out: after a crash the same bytes go again, never new ones.
    await this.deps.storage.put(r);
    return r.encrypted;
  }

  private async blob(r: OutboxRecord, part: "body" | "thumbnail"): Promise<Blob> {
    const key = blobKey(r.key, part);
    const blob = this.blobs.get(key) ?? (await this.deps.storage.getBlob(key));
    if (!blob) throw new FileLost();
    return blob;
  }

  /** Uploads what a file record has not uploaded yet; returns what its message says. */
  private async uploaded(r: OutboxRecord, f: PendingFile): Promise<{ out: Outgoing; ids: string[] }> {
    const controller = new AbortController();
    this.uploading.set(r.key, controller);
    try {
      if (f.thumbnail && !f.thumbnailId) {
        f.thumbnailId = await this.deps.transfer.upload(r.conversationId, await this.blob(r, "thumbnail"), f.ttlSeconds, undefined, controller.signal);
        await this.deps.storage.put(r);
      }
      if (!f.bodyId) {
        const watch = this.watches.get(r.key);
        f.bodyId = await this.deps.transfer.upload(r.conversationId, await this.blob(r, "body"), f.ttlSeconds, watch?.onProgress, controller.signal);
        await this.deps.storage.put(r);
      }
    } finally {
      this.uploading.delete(r.key);
    }
    const ref: FileRef = { ...f.ref, attachment: f.bodyId };
    if (f.thumbnail && f.thumbnailId) ref.thumbnail = { ...f.thumbnail, attachment: f.thumbnailId };
    return { out: { kind: "attachment", file: ref, ...f.extras }, ids: attachmentIds(ref) };
  }

  /** One attempt at a record: resolves once the server acknowledged it (and it left the outbox). */
  private async attempt(r: OutboxRecord): Promise<void> {
    const conversationId = r.conversationId;
    const a = r.action;
    // A cloud conversation: the same Content, sent as it is (no Megolm, no room keys); each
    // attempt sends the same Content, made again from the record.
    if ((a.kind === "send" || a.kind === "file" || a.kind === "edit") && (await this.cloud(conversationId))) {
      await this.attemptCloud(r, a);
      await this.drop(r);
      return;
    }
    if (a.kind === "send" || a.kind === "file" || a.kind === "react") {
      const { out, ids }: { out: Outgoing; ids: string[] } =
        a.kind === "send"
          ? { out: { kind: "text", text: a.text, replyTo: a.replyTo, ...a.extras }, ids: [] }
          : a.kind === "react"
            ? { out: { kind: "reaction", messageId: a.target, emoji: a.emoji, remove: a.remove }, ids: [] }
            : await this.uploaded(r, a.file);
      const e = await this.encrypted(r, () => encodeContent(out));
      const res = await this.deps.client.sendMessage({
        conversationId,
        messageId: r.messageId,
        ciphertext: e.ciphertext,
        sessionId: e.sessionId,
        replyTo: a.kind === "send" ? a.replyTo : "",
        attachmentIds: ids,
      });
      if (res.message) {
        this.state.dispatch({
          type: "messageSent",
          conversationId,
          message: res.message,
          content: shownAs(out),
          unreadableBy: e.unreadableBy ?? [],
        });
      }
    } else if (a.kind === "edit") {
      const e = await this.encrypted(r, () => encodeContent({ kind: "edit", messageId: r.messageId, text: a.text, ...(a.mentions ? { mentions: a.mentions } : {}) }));
      const res = await this.deps.client.editMessage({
        conversationId,
        messageId: r.messageId,
        ciphertext: e.ciphertext,
        sessionId: e.sessionId,
      });
      if (res.message) {
        this.state.dispatch({ type: "messagesChanged", conversationId, items: [{ message: res.message, content: shownAs({ kind: "edit", messageId: r.messageId, text: a.text, ...(a.mentions ? { mentions: a.mentions } : {}) }) }] });
      }
    } else {
      const res = await this.deps.client.deleteMessage({ conversationId, messageId: r.messageId });
      if (res.message) {
        this.state.dispatch({ type: "messagesChanged", conversationId, items: [{ message: res.message, content: { kind: "deleted" } }] });
      }
    }
    await this.drop(r);
  }

  /** One attempt at a new message or an edit of a cloud conversation: its Content, unencrypted. */
  private async attemptCloud(r: OutboxRecord, a: Extract<OutboxAction, { kind: "send" | "file" | "edit" }>): Promise<void> {
    const conversationId = r.conversationId;
    if (a.kind === "edit") {
      const out: Outgoing = { kind: "text", text: a.text, ...(a.mentions ? { mentions: a.mentions } : {}) };
      const res = await this.deps.client.editMessage({ conversationId, messageId: r.messageId, content: cloudContent(out) });
      if (res.message) {
        this.state.dispatch({ type: "messagesChanged", conversationId, items: [{ message: res.message, content: shownAs({ ...out, kind: "edit", messageId: r.messageId }) }] });
      }
      return;
    }
    const { out, ids }: { out: Outgoing; ids: string[] } =
      a.kind === "send" ? { out: { kind: "text", text: a.text, replyTo: a.replyTo, ...a.extras }, ids: [] } : await this.uploaded(r, a.file);
    const res = await this.deps.client.sendMessage({
      conversationId,
      messageId: r.messageId,
      content: cloudContent(out),
      replyTo: a.kind === "send" ? a.replyTo : "",
      attachmentIds: ids,
    });
    if (res.message) this.state.dispatch({ type: "messageSent", conversationId, message: res.message, content: shownAs(out) });
  }
}
