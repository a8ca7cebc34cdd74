// files.ts — attachments (docs/attachments.md) as this device knows them beyond their messages:
// expired ones, who downloaded ours; the TTLs to offer; sending a file (image re-encoded and
// thumbnailed, encrypted, then kept, uploaded and sent by the outbox); forwarding one (uploaded
// again under a new key); and the list of a conversation's uploads in flight (`applyUploads`,
// for the composer's upload list).
import type { Client } from "@connectrpc/connect";
import { isPreviewable, type FileRef } from "../attachments/content";
import type { PreparedImage } from "../attachments/image";
import type { Progress } from "../attachments/transfer";
import type { ForwardedFrom } from "../crypto/content";
import { reasonOf } from "../errors";
import { AttachmentChange, type AttachmentService } from "../gen/kitsulan/v1/attachment_pb";
import type { Outbox } from "./outbox";
import type { Profiles } from "./profiles";
import type { ChatEvent, StateAccess } from "./store";

/** What this device knows of an attachment beyond its message. */
export interface FileState {
  /** The server says it is gone (TTL passed, deleted). */
  expired?: boolean;
  /** Our own attachments: who downloaded it, and when (first time each). */
  downloads?: Download[];
}

export interface Download {
  accountId: string;
  atMs: number;
}

/** TTLs the picker offers when the server does not say (1 hour, 1 day, 1 week). */
export const DEFAULT_TTL_CHOICES = [3600, 86400, 604800];

/** How a file is sent: its TTL (0: none) and whether an image keeps its metadata. */
export interface SendFileOptions {
  ttlSeconds: number;
  keepOriginal: boolean;
}

export interface FilesState {
  files: Record<string, FileState>;
  ttlChoices: number[];
}

function patched<S extends FilesState>(state: S, attachmentId: string, patch: FileState): S {
  const before = state.files[attachmentId] ?? {};
  return { ...state, files: { ...state.files, [attachmentId]: { ...before, ...patch } } };
}

/** Adds the downloads not known yet (the first one of each account counts), oldest first. */
function withDownloads<S extends FilesState>(state: S, attachmentId: string, list: Download[]): S {
  const byAccount = new Map((state.files[attachmentId]?.downloads ?? []).map((d) => [d.accountId, d]));
  for (const d of list) if (!byAccount.has(d.accountId)) byAccount.set(d.accountId, d);
  return patched(state, attachmentId, { downloads: [...byAccount.values()].sort((a, b) => a.atMs - b.atMs) });
}

export function apply<S extends FilesState>(state: S, event: ChatEvent): S {
  switch (event.type) {
    case "ttlChoices":
      return event.seconds.length > 0 ? { ...state, ttlChoices: event.seconds } : state;
    case "fileExpired":
      return patched(state, event.attachmentId, { expired: true });
    case "downloads":
      return withDownloads(state, event.attachmentId, event.downloads);
    case "attachment": {
      const e = event.event;
      let s = state;
      if (e.change === AttachmentChange.EXPIRED) s = patched(s, e.attachmentId, { expired: true });
      if (e.change === AttachmentChange.DOWNLOADED && e.accountId) {
        s = withDownloads(s, e.attachmentId, [{ accountId: e.accountId, atMs: Number(e.atMs) }]);
      }
      return s;
    }
    default:
      return state;
  }
}

/** An upload in flight (the composer's list). */
export interface Upload {
  key: number;
  name: string;
  done: number;
  total: number;
  controller: AbortController;
  error?: string;
}

export type UploadAction =
  | { type: "started"; upload: Upload }
  | { type: "progress"; key: number; done: number; total: number }
  | { type: "failed"; key: number; error: string }
  /** Sent, cancelled, or its error dismissed: it leaves the list. */
  | { type: "gone"; key: number };

export function applyUploads(list: Upload[], action: UploadAction): Upload[] {
  switch (action.type) {
    case "started":
      return [...list, action.upload];
    case "progress":
      return list.map((u) => (u.key === action.key ? { ...u, done: action.done, total: action.total } : u));
    case "failed":
      return list.map((u) => (u.key === action.key ? { ...u, error: action.error } : u));
    case "gone":
      return list.filter((u) => u.key !== action.key);
  }
}

/** Encryption, upload and download of attachment bodies (attachments/transfer.ts, attachments/image.ts). */
export interface FileTransfer {
  prepareImage(file: File, keepOriginal: boolean): Promise<PreparedImage>;
  encrypt(body: Blob): Promise<{ ciphertext: Blob; secrets: string }>;
  upload(conversationId: string, ciphertext: Blob, ttlSeconds: number, onProgress?: Progress, signal?: AbortSignal): Promise<string>;
  /** Downloads, decrypts and checks an attachment (throws Expired, HashMismatch). */
  download(attachmentId: string, secrets: string, type: string, onProgress?: Progress): Promise<Blob>;
  remove(attachmentId: string): Promise<void>;
  /** The error a cancelled upload ends with. */
  cancelled(): Error;
}

export interface FilesDeps {
  attachments: Pick<Client<typeof AttachmentService>, "listDownloads">;
  transfer: FileTransfer;
  /** Keeps, uploads and sends a file message (outbox.ts). */
  outbox: Pick<Outbox, "sendFile" | "discard">;
  profiles: Pick<Profiles, "load">;
}

export class Files {
  constructor(
    private readonly state: StateAccess,
    private readonly deps: FilesDeps,
  ) {}

  /** Notes that an attachment is gone (the server said so). */
  markExpired(attachmentId: string): void {
    this.state.dispatch({ type: "fileExpired", attachmentId });
  }

  /** Loads who downloaded one of our attachments (ListDownloads). */
  async loadDownloads(attachmentId: string): Promise<void> {
    try {
      const res = await this.deps.attachments.listDownloads({ attachmentId });
      const downloads = res.downloads.map((d) => ({ accountId: d.accountId, atMs: Number(d.downloadedAtMs) }));
      void this.deps.profiles.load(downloads.map((d) => d.accountId)).catch(() => undefined);
      this.state.dispatch({ type: "downloads", attachmentId, downloads });
    } catch (err) {
      const reason = reasonOf(err);
      if (reason === "ATTACHMENT_NOT_FOUND" || reason === "ATTACHMENT_EXPIRED") this.markExpired(attachmentId);
    }
  }

  /** An AttachmentEvent from the gateway: expired, or one of ours downloaded. */
  onEvent(event: Extract<ChatEvent, { type: "attachment" }>["event"]): void {
    if (event.change === AttachmentChange.DOWNLOADED && event.accountId) {
      void this.deps.profiles.load([event.accountId]).catch(() => undefined);
    }
    this.state.dispatch({ type: "attachment", event });
  }

  /**
   * Sends a file: an image (JPEG, PNG, WebP) is re-encoded without its metadata unless
   * `keepOriginal`, and gets an encrypted thumbnail; the file is encrypted chunk by chunk and
   * handed to the outbox (outbox.ts), which keeps the ciphertext, uploads it (progress through
   * `onProgress`) and then sends the message carrying its key (docs/attachments.md). Resolves
   * when the message is sent, shows "Not sent", or was deleted; `signal` cancels (before the
   * message went: the record, its uploads and its bubble go).
   */
  async sendFile(
    conversationId: string,
    file: File,
    options: SendFileOptions,
    onProgress?: Progress,
    signal?: AbortSignal,
  ): Promise<void> {
    const transfer = this.deps.transfer;
    let body: Blob = file;
    let type = file.type;
    const ref: Omit<FileRef, "attachment" | "secrets" | "size"> = { name: file.name, type };
    let thumbnail: { blob: Blob; width: number; height: number } | null = null;
    if (isPreviewable(file.type)) {
      try {
        const image = await transfer.prepareImage(file, options.keepOriginal);
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
    const { pending, blobs } = await this.encrypted(body, ref, thumbnail && { ...thumbnail, type: "image/jpeg" }, options.ttlSeconds);
    if (signal?.aborted) throw transfer.cancelled();
    await new Promise<void>((resolve, reject) => {
      this.deps.outbox
        .sendFile(conversationId, pending, blobs, { onProgress, onEnd: resolve })
        .then((key) => {
          signal?.addEventListener("abort", () => void this.deps.outbox.discard(key), { once: true });
          if (signal?.aborted) void this.deps.outbox.discard(key);
        }, reject);
    });
  }

  /**
   * Forwards a file message's file into another conversation. An attachment can be downloaded
   * only by members of the conversation it was uploaded to (server: attachments.rs), so the
   * file (and its thumbnail) is downloaded, decrypted and checked as the viewer does, then
   * encrypted again under a new key and handed to the outbox like a new file, marked forwarded
   * (who wrote it, when). The original's key never goes anywhere; into a cloud chat the new
   * one travels in the Content the server stores, as any file sent there. Resolves once it is
   * in the outbox (which uploads and sends it, or shows "Not sent"). `onProgress`: the
   * download of the original.
   */
  async forwardFile(conversationId: string, file: FileRef, forwarded: ForwardedFrom, onProgress?: Progress): Promise<void> {
    const transfer = this.deps.transfer;
    const body = await transfer.download(file.attachment, file.secrets, file.type, onProgress);
    const th = file.thumbnail;
    const thumbnail = th ? { ...th, blob: await transfer.download(th.attachment, th.secrets, th.type || "image/jpeg") } : null;
    const ref = {
      name: file.name,
      type: file.type,
      ...(file.width !== undefined ? { width: file.width } : {}),
      ...(file.height !== undefined ? { height: file.height } : {}),
    };
    // As a forwarded text: the copy is a message of its own, without the original's TTL.
    const { pending, blobs } = await this.encrypted(body, ref, thumbnail, 0);
    await this.deps.outbox.sendFile(conversationId, { ...pending, extras: { forwarded } }, blobs);
  }

  /** A file (and its thumbnail) encrypted under new keys: the outbox's record of it and the
   * ciphertexts it keeps and uploads. */
  private async encrypted(
    body: Blob,
    ref: Omit<FileRef, "attachment" | "secrets" | "size" | "thumbnail">,
    thumbnail: { blob: Blob; type: string; width: number; height: number } | null,
    ttlSeconds: number,
  ): Promise<{ pending: Parameters<Outbox["sendFile"]>[1]; blobs: Parameters<Outbox["sendFile"]>[2] }> {
    const thumb = thumbnail ? await this.deps.transfer.encrypt(thumbnail.blob) : null;
    const encrypted = await this.deps.transfer.encrypt(body);
    const pending: Parameters<Outbox["sendFile"]>[1] = { ref: { ...ref, secrets: encrypted.secrets, size: body.size }, ttlSeconds };
    if (!thumbnail || !thumb) return { pending, blobs: { body: encrypted.ciphertext } };
    pending.thumbnail = { secrets: thumb.secrets, type: thumbnail.type, width: thumbnail.width, height: thumbnail.height };
    return { pending, blobs: { body: encrypted.ciphertext, thumbnail: thumb.ciphertext } };
  }
}
