// content.ts — what an attachment message says inside its E2EE plaintext (docs/attachments.md,
// "Message content"): a JSON object, the same one the Rust reference client
// (e2e-tests/tests/e2e/attachments.rs) writes and reads:
//   {"attachment": id, "secrets": base64(AttachmentSecrets), "name", "type", "size",
//    "width"?, "height"?, "thumbnail"?: {"attachment", "secrets", "type", "width", "height"}}
// A message whose plaintext is such an object (with string `attachment` and `secrets`) is an
// attachment; any other plaintext is text.

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

/** The attachment a decrypted plaintext describes, or null when it is a text message. */
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

/** The plaintext of a message carrying `ref`. */
export function fileRefText(ref: FileRef): string {
  return JSON.stringify(ref);
}

/** The attachment ids a message carrying `ref` names (SendMessageRequest.attachment_ids). */
export function attachmentIds(ref: FileRef): string[] {
  return ref.thumbnail ? [ref.attachment, ref.thumbnail.attachment] : [ref.attachment];
}

/** Image types shown as previews (re-encoded without metadata unless kept on purpose). */
export function isPreviewable(type: string): boolean {
  return type === "image/jpeg" || type === "image/png" || type === "image/webp";
}
