// content.ts — the file a message carries (docs/attachments.md, "Message content"), as the app
// holds it (FileRef). Inside the E2EE plaintext it travels as a FileContent of the typed Content
// (proto/kitsulan/v1/content.proto), written and read by the crypto crate (crypto/src/content/,
// through crypto/content.ts), which also still reads the JSON object older clients sent:
//   {"attachment": id, "secrets": base64(AttachmentSecrets), "name", "type", "size",
//    "width"?, "height"?, "thumbnail"?: {"attachment", "secrets", "type", "width", "height"}}

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

/** The attachment ids a message carrying `ref` names (SendMessageRequest.attachment_ids). */
export function attachmentIds(ref: FileRef): string[] {
  return ref.thumbnail ? [ref.attachment, ref.thumbnail.attachment] : [ref.attachment];
}

/** Image types shown as previews (re-encoded without metadata unless kept on purpose). */
export function isPreviewable(type: string): boolean {
  return type === "image/jpeg" || type === "image/png" || type === "image/webp";
}
