// content.ts — what a message says (docs/e2ee.md, "What a message says"): the typed Content
// (proto/kitsulan/v1/content.proto) written into and read out of a message's E2EE plaintext.
// The codec lives once, in the crypto crate (crypto/src/content/, the same code the Rust client
// runs): framing (`0x00 0x01 || Content`; a legacy plaintext, UTF-8 text or the old attachment
// JSON, read as before; another format byte "unsupported"), the rules a reader and a writer
// apply, and the reasons shown. This file holds the app's types and calls the WASM
// (`encodeContent`, `decodeContent`): like every crypto call, only after engine.ts's
// loadCrypto().
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { decodeContent, encodeContent as encodeInWasm, reactionEmojiProblem } from "kitsulan-crypto";
import type { FileRef } from "../attachments/content";
import { ContentSchema, type Content as ContentMessage } from "../gen/kitsulan/v1/content_pb";
import type { SystemEvent } from "../gen/kitsulan/v1/conversation_pb";

/** The longest text (UTF-16 code units, as the browser counts; TextContent.body). */
export const MAX_TEXT_LENGTH = 16_000;

/** The reasons an undecryptable message gives for its content (the crate's wording). */
export const MALFORMED_CONTENT = "malformed content";
export const EDIT_FOR_ANOTHER_MESSAGE = "edit for another message";
export const MALFORMED_REACTION = "malformed reaction";

/** The longest reaction emoji, in UTF-8 bytes (a family or a flag with modifiers fits; the
 * crate's MAX_REACTION_BYTES, which enforces it). */
export const MAX_REACTION_BYTES = 64;

/** Why `emoji` is no reaction (null when it is one): exactly one emoji sequence (a flag, a
 * keycap, a pictograph with its selector, skin tone or tag sequence, joined by ZWJ into more) of
 * at most MAX_REACTION_BYTES bytes; never empty, text, several emoji, or an emoji with anything
 * else (spaces, combining marks, controls) around it. The crate's rule (crypto/src/content/
 * emoji.rs), the same one encodeContent and decodeContent apply: "empty", "too long" or
 * "not one emoji". */
export function reactionProblem(emoji: string): string | null {
  return reactionEmojiProblem(emoji) ?? null;
}

export type SpanStyle = "bold" | "italic" | "code" | "strike" | "spoiler";

/** Formatting over a text: offsets in UTF-16 code units, end exclusive, within the text. */
export interface Span {
  start: number;
  end: number;
  style: SpanStyle;
}

/** `@name` in a text: the account named, over the UTF-16 range of the text that names them. */
export interface Mention {
  accountId: string;
  start: number;
  end: number;
}

/** A forwarded message: who wrote the original ("" when hidden) and when it was sent (ms). */
export interface ForwardedFrom {
  fromAccountId: string;
  sentAtMs: number;
}

/** The longest quote of a reply (Reply.quote), in UTF-16 code units (the crate cuts a longer
 * one, on writing and on reading). */
export const MAX_QUOTE_LENGTH = 1000;

/** What a text or a file message may carry besides its body: the part of the message answered
 * it quotes, that it was forwarded, and (texts) the people it mentions. */
export interface Extras {
  quote?: string;
  forwarded?: ForwardedFrom;
  mentions?: Mention[];
}

/** What a message says to this device. */
export type Content =
  /** `replyTo`: the message a typed Content answers ("" for none); unset for a legacy plaintext,
   * which says nothing about it (the server's Message.reply_to is all there is). */
  | ({ kind: "text"; text: string; spans?: Span[]; replyTo?: string } & Extras)
  | ({ kind: "attachment"; file: FileRef; replyTo?: string } & Extras)
  /** A reaction to `messageId` (added, or taken back with `remove`): no bubble of its own. */
  | { kind: "reaction"; messageId: string; emoji: string; remove: boolean }
  /** A deletion of `messageId` announced inside the encryption: no bubble of its own. */
  | { kind: "deletion"; messageId: string }
  /** A kind (or a format) of a newer client: "update the app", never dropped, never guessed. */
  | { kind: "unsupported" }
  | { kind: "deleted" }
  | { kind: "undecryptable"; reason: string; sessionId: string }
  /** A line the server wrote into a group's history (a member added, removed or leaving, a role
   * or the title changed): no ciphertext, nothing to decrypt. */
  | { kind: "system"; event: SystemEvent };

/** What this device sends: the body of a new Content. */
export type Outgoing =
  | ({ kind: "text"; text: string; spans?: Span[]; replyTo?: string } & Extras)
  | ({ kind: "attachment"; file: FileRef; replyTo?: string } & Extras)
  /** The new text of our message `messageId` (EditMessage); `mentions` as the new text has them. */
  | { kind: "edit"; messageId: string; text: string; spans?: Span[]; mentions?: Mention[] }
  | { kind: "reaction"; messageId: string; emoji: string; remove?: boolean }
  | { kind: "deletion"; messageId: string };

/** A text longer than MAX_TEXT_LENGTH: not sent (the composer says so). */
export class TextTooLong extends Error {
  constructor(readonly length: number) {
    super(`the text is ${length} characters long, at most ${MAX_TEXT_LENGTH} are sent`);
    this.name = "TextTooLong";
  }
}

/** Whether a content shows as a bubble of its own in a thread (reactions and deletions act on
 * another message instead: a reaction shows as a chip under it, state/reactions.ts). */
export function shownInThread(content: Content): boolean {
  // A refused reaction is never shown, not even as an error bubble (its reason stays on the item).
  if (content.kind === "undecryptable" && content.reason === MALFORMED_REACTION) return false;
  return content.kind !== "reaction" && content.kind !== "deletion";
}

/** The plaintext to encrypt for `out`: `0x00 0x01 || Content`. Throws TextTooLong, or the
 * crate's KitsulanCryptoError for what a reader would refuse (a span or a mention outside its
 * text: `invalid_span`, `invalid_mention`; more than 50 mentions: `too_many_mentions`; a
 * reaction or file naming nothing; a reaction emoji that is not one emoji: `invalid_reaction`,
 * "not a reaction: …"). */
export function encodeContent(out: Outgoing): Uint8Array {
  try {
    return encodeInWasm(out);
  } catch (err) {
    if ((err as { code?: unknown } | null)?.code === "text_too_long" && "text" in out) throw new TextTooLong(out.text.length);
    throw err;
  }
}

function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 2);
  out.set([0x00, 0x01]);
  out.set(body, 2);
  return out;
}

/** The Content a cloud conversation's message carries for `out` (SendMessageRequest.content,
 * EditMessageRequest.content): the same typed Content as inside an E2EE message, unencrypted and
 * without the two-byte prefix. The same rules apply (the crate writes it): throws as
 * encodeContent. */
export function cloudContent(out: Outgoing): ContentMessage {
  return fromBinary(ContentSchema, encodeContent(out).subarray(2));
}

/** What the Content of a cloud message `messageId` says: read exactly as a decrypted E2EE
 * plaintext is (the crate's rules: an edit must name its message, a reaction must be one emoji,
 * a kind this app does not know is "unsupported"), so both kinds show through one code path. */
export function readCloudContent(c: ContentMessage, messageId: string): Content {
  return contentOf(frame(toBinary(ContentSchema, c)), messageId, "");
}

/** How this device shows what it sends (as a reader will read it). */
export function shownAs(out: Outgoing): Content {
  const spans = "spans" in out && out.spans?.length ? { spans: out.spans } : {};
  switch (out.kind) {
    case "text":
      return { kind: "text", text: out.text, ...spans, replyTo: out.replyTo ?? "", ...extrasOf(out) };
    case "attachment":
      return { kind: "attachment", file: out.file, replyTo: out.replyTo ?? "", ...extrasOf(out) };
    case "edit":
      return { kind: "text", text: out.text, ...spans, ...(out.mentions?.length ? { mentions: out.mentions } : {}) };
    case "reaction":
      return { kind: "reaction", messageId: out.messageId, emoji: out.emoji, remove: out.remove ?? false };
    case "deletion":
      return { kind: "deletion", messageId: out.messageId };
  }
}

/** `quote` cut as the crate cuts it: at most MAX_QUOTE_LENGTH UTF-16 units, never inside a
 * surrogate pair. */
function quoteWithinLimit(quote: string): string {
  const cut = quote.slice(0, MAX_QUOTE_LENGTH);
  return /[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut;
}

/** The extras of `out` as a reader will read them (only those that are set). */
function extrasOf(out: Extras & { replyTo?: string }): Extras {
  const e: Extras = {};
  if (out.quote && out.replyTo) e.quote = quoteWithinLimit(out.quote);
  if (out.forwarded) e.forwarded = out.forwarded;
  if (out.mentions?.length) e.mentions = out.mentions;
  return e;
}

type Read = { ok: Content } | { undecryptable: string };

/** What a decrypted plaintext says, for the message `messageId` (an edit must name it), with
 * the extras of a text or a file (a quote with its reply, cut to MAX_QUOTE_LENGTH; the
 * forwarded mark; the mentions that lie inside the text). A reaction whose emoji is not one
 * emoji is `{ undecryptable: MALFORMED_REACTION }` (the crate refuses it: a chip shows one
 * emoji, bounded, never text or a long string). */
export function readContent(plaintext: Uint8Array, messageId: string): Read {
  return decodeContent(plaintext, messageId);
}

/** What a decrypted plaintext of the message `messageId` (Megolm session `sessionId`) says. */
export function contentOf(plaintext: Uint8Array, messageId: string, sessionId: string): Content {
  const read = readContent(plaintext, messageId);
  return "ok" in read ? read.ok : { kind: "undecryptable", reason: read.undecryptable, sessionId };
}

/** The message a content answers: what its typed Content says (the sender's word, which the
 * server cannot change), else — a legacy plaintext, or nothing decrypted — the server's
 * `replyTo`. */
export function replyOf(content: Content, serverReplyTo: string): string {
  if ((content.kind === "text" || content.kind === "attachment") && content.replyTo !== undefined) return content.replyTo;
  return serverReplyTo;
}
