// content.ts — the file a message carries (docs/attachments.md, "Message content"), as the app
// holds it (FileRef), and as it travels inside the E2EE plaintext: a FileContent of the typed
// Content (crypto/content.ts; proto/kitsulan/v1/content.proto), the same the Rust client
// (client/src/content.rs) writes and reads. Messages from before the typed Content carried a
// JSON object instead (parseFileRef reads it, so they still show):
//   {"attachment": id, "secrets": base64(AttachmentSecrets), "name", "type", "size",
//    "width"?, "height"?, "thumbnail"?: {"attachment", "secrets", "type", "width", "height"}}
import { create } from "@bufbuild/protobuf";
import { FileContentSchema, FileThumbnailSchema, type FileContent } from "../gen/kitsulan/v1/content_pb";
import { fromBase64, toBase64 } from "../lib/base64";

/** A thumbnail: its own encrypted attachment (JPEG), referenced by the file's message. */
export interface ThumbnailRef {
  attachment: string;
  secrets: string;
  type: string;
  width: number;
  height: number;
}

/** One file in a message. */
export interface FileRef {
  /** The server's attachment id. */
  attachment: string;
  /** base64 of kitsulan-crypto's AttachmentSecrets (version, key, IV, ciphertext SHA-256). */
  secrets: string;
  /** The file name as the sender had it. */
  name: string;
  /** Its MIME type ("" when unknown). */
  type: string;
  /** Bytes of plaintext. */
  size: number;
  /** Images: pixel size. */
  width?: number;
  height?: number;
  thumbnail?: ThumbnailRef;
}

const str = (v: unknown): v is string => typeof v === "string";
const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

function thumbnailOf(v: unknown): ThumbnailRef | undefined {
  if (!v || typeof v !== "object") return undefined;
  const o = v as Record<string, unknown>;
  if (!str(o.attachment) || !str(o.secrets) || !num(o.width) || !num(o.height)) return undefined;
  return { attachment: o.attachment, secrets: o.secrets, type: str(o.type) ? o.type : "image/jpeg", width: o.width, height: o.height };
}

/** The attachment a LEGACY plaintext (no Content prefix) describes: a JSON object with string
 * `attachment` and `secrets`; null when it is a text message. */
export function parseFileRef(text: string): FileRef | null {
  if (!text.startsWith("{")) return null;
  let o: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(text);
    if (!v || typeof v !== "object" || Array.isArray(v)) return null;
    o = v as Record<string, unknown>;
  } catch {
    return null;
  }
  if (!str(o.attachment) || !str(o.secrets)) return null;
  const ref: FileRef = {
    attachment: o.attachment,
    secrets: o.secrets,
    name: str(o.name) && o.name ? o.name : "file",
    type: str(o.type) ? o.type : "",
    size: num(o.size) ? o.size : 0,
  };
  if (num(o.width) && num(o.height)) {
    ref.width = o.width;
    ref.height = o.height;
  }
  const thumbnail = thumbnailOf(o.thumbnail);
  if (thumbnail) ref.thumbnail = thumbnail;
  return ref;
}

/** The FileContent of a message carrying `ref` (secrets as their raw bytes). */
export function fileContentOf(ref: FileRef): FileContent {
  const file = create(FileContentSchema, {
    attachmentId: ref.attachment,
    secrets: fromBase64(ref.secrets),
    name: ref.name,
    mediaType: ref.type,
    size: BigInt(Math.max(0, Math.floor(ref.size))),
    width: ref.width ?? 0,
    height: ref.height ?? 0,
  });
  if (ref.thumbnail) {
    const t = ref.thumbnail;
    file.thumbnail = create(FileThumbnailSchema, {
      attachmentId: t.attachment,
      secrets: fromBase64(t.secrets),
      mediaType: t.type,
      width: t.width,
      height: t.height,
    });
  }
  return file;
}

/** The file a received FileContent names, or null when it names none (no attachment id or no
 * secrets: malformed). A thumbnail without its id or secrets is left out. */
export function fileRefFrom(file: FileContent): FileRef | null {
  if (!file.attachmentId || file.secrets.length === 0) return null;
  const ref: FileRef = {
    attachment: file.attachmentId,
    secrets: toBase64(file.secrets),
    name: file.name || "file",
    type: file.mediaType,
    size: Number(file.size),
  };
  if (file.width > 0 && file.height > 0) {
    ref.width = file.width;
    ref.height = file.height;
  }
  const t = file.thumbnail;
  if (t?.attachmentId && t.secrets.length > 0) {
    ref.thumbnail = {
      attachment: t.attachmentId,
      secrets: toBase64(t.secrets),
      type: t.mediaType || "image/jpeg",
      width: t.width,
      height: t.height,
    };
  }
  return ref;
}

/** The attachment ids a message carrying `ref` names (SendMessageRequest.attachment_ids). */
export function attachmentIds(ref: FileRef): string[] {
  return ref.thumbnail ? [ref.attachment, ref.thumbnail.attachment] : [ref.attachment];
}

/** Image types shown as previews (re-encoded without metadata unless kept on purpose). */
export function isPreviewable(type: string): boolean {
  return type === "image/jpeg" || type === "image/png" || type === "image/webp";
}
