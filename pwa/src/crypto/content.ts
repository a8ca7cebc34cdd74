// content.ts — what a message says to this device once decrypted. Kept apart from engine.ts (the
// WASM side) so the state stores and their unit tests can use it without loading WASM.
import { parseFileRef, type FileRef } from "../attachments/content";
import type { SystemEvent } from "../gen/kitsulan/v1/conversation_pb";

/** What a message says to this device. */
export type Content =
  | { kind: "text"; text: string }
  | { kind: "attachment"; file: FileRef }
  | { kind: "deleted" }
  | { kind: "undecryptable"; reason: string; sessionId: string }
  /** A line the server wrote into a group's history (a member added, removed or leaving, a role
   * or the title changed): no ciphertext, nothing to decrypt. */
  | { kind: "system"; event: SystemEvent };

/** What a decrypted plaintext says: an attachment (docs/attachments.md) or text. */
export function contentOf(text: string): Content {
  const file = parseFileRef(text);
  return file ? { kind: "attachment", file } : { kind: "text", text };
}
