// content.ts — what a message says (docs/e2ee.md, "What a message says"): the typed Content
// (proto/kitsulan/v1/content.proto) written into and read out of a message's E2EE plaintext.
// Kept apart from engine.ts (the WASM side) so the state stores and their unit tests can use it
// without loading WASM. The Rust client reads and writes the same bytes (client/src/content.rs).
//
// A plaintext is `0x00 0x01 || protobuf Content` (format 1). One without the 0x00 first byte is
// LEGACY, from before the typed Content: UTF-8 text, or the old attachment JSON
// (attachments/content.ts), read as before so older messages still show; nothing new is sent
// that way. `0x00` followed by another format byte is a newer client's format: "unsupported".
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { fileContentOf, fileRefFrom, parseFileRef, type FileRef } from "../attachments/content";
import {
  ContentSchema,
  DeletionSchema,
  EditSchema,
  ReactionSchema,
  ReplySchema,
  TextContentSchema,
  TextStyle,
  type Content as WireContent,
  type TextContent,
} from "../gen/kitsulan/v1/content_pb";
import type { SystemEvent } from "../gen/kitsulan/v1/conversation_pb";

/** The first bytes of a typed plaintext: a marker no UTF-8 text starts with, then the format. */
export const CONTENT_MARKER = 0x00;
export const CONTENT_FORMAT = 0x01;
/** The Content schema revision this client writes. */
export const CONTENT_VERSION = 1;
/** The longest text (UTF-16 code units, as the browser counts; TextContent.body). */
export const MAX_TEXT_LENGTH = 16_000;

/** The reasons an undecryptable message gives for its content. */
export const MALFORMED_CONTENT = "malformed content";
export const EDIT_FOR_ANOTHER_MESSAGE = "edit for another message";
export const MALFORMED_REACTION = "malformed reaction";

/** The longest reaction emoji, in UTF-8 bytes (a family or a flag with modifiers fits). */
export const MAX_REACTION_BYTES = 64;

const utf8 = new TextEncoder();
/** One emoji: a flag (two regional indicators), a keycap (1️⃣), or a pictograph with its
 * presentation selector, skin tone or tag sequence (the flag of Scotland), joined by ZWJ into
 * more (a family, a rainbow flag). The same in every engine (no Intl.Segmenter, which older
 * browsers lack). */
const PICTOGRAPH = "\\p{Extended_Pictographic}(?:\\uFE0F|\\p{Emoji_Modifier})?(?:[\\u{E0020}-\\u{E007E}]+\\u{E007F})?";
const ONE_EMOJI = new RegExp(
  `^(?:\\p{Regional_Indicator}{2}|[#*0-9]\\uFE0F?\\u20E3|${PICTOGRAPH}(?:\\u200D${PICTOGRAPH})*)$`,
  "u",
);

/** Why `emoji` is no reaction (null when it is one): exactly one emoji (ONE_EMOJI) of at most
 * MAX_REACTION_BYTES bytes; never empty, text, several emoji, or an emoji with anything else
 * (spaces, combining marks, controls) around it. */
export function reactionProblem(emoji: string): string | null {
  if (emoji === "") return "empty";
  if (utf8.encode(emoji).length > MAX_REACTION_BYTES) return "too long";
  if (!ONE_EMOJI.test(emoji)) return "not one emoji";
  return null;
}

export type SpanStyle = "bold" | "italic" | "code" | "strike" | "spoiler";

/** Formatting over a text: offsets in UTF-16 code units, end exclusive, within the text. */
export interface Span {
  start: number;
  end: number;
  style: SpanStyle;
}

/** What a message says to this device. */
export type Content =
  /** `replyTo`: the message a typed Content answers ("" for none); unset for a legacy plaintext,
   * which says nothing about it (the server's Message.reply_to is all there is). */
  | { kind: "text"; text: string; spans?: Span[]; replyTo?: string }
  | { kind: "attachment"; file: FileRef; replyTo?: string }
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
  | { kind: "text"; text: string; replyTo?: string }
  | { kind: "attachment"; file: FileRef; replyTo?: string }
  /** The new text of our message `messageId` (EditMessage). */
  | { kind: "edit"; messageId: string; text: string }
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

function textContent(text: string): TextContent {
  if (text.length > MAX_TEXT_LENGTH) throw new TextTooLong(text.length);
  return create(TextContentSchema, { body: text });
}

/** The plaintext to encrypt for `out`: `0x00 0x01 || Content`. Throws TextTooLong. */
export function encodeContent(out: Outgoing): Uint8Array {
  const c = create(ContentSchema, { version: CONTENT_VERSION });
  switch (out.kind) {
    case "text":
      c.body = { case: "text", value: textContent(out.text) };
      break;
    case "attachment":
      c.body = { case: "file", value: fileContentOf(out.file) };
      break;
    case "edit":
      c.body = { case: "edit", value: create(EditSchema, { messageId: out.messageId, text: textContent(out.text) }) };
      break;
    case "reaction": {
      const problem = reactionProblem(out.emoji);
      if (problem) throw new Error(`not a reaction: ${problem}`);
      c.body = {
        case: "reaction",
        value: create(ReactionSchema, { messageId: out.messageId, emoji: out.emoji, remove: out.remove ?? false }),
      };
      break;
    }
    case "deletion":
      c.body = { case: "deletion", value: create(DeletionSchema, { messageId: out.messageId }) };
      break;
  }
  if ((out.kind === "text" || out.kind === "attachment") && out.replyTo) {
    c.reply = create(ReplySchema, { messageId: out.replyTo });
  }
  const body = toBinary(ContentSchema, c);
  const plaintext = new Uint8Array(2 + body.length);
  plaintext[0] = CONTENT_MARKER;
  plaintext[1] = CONTENT_FORMAT;
  plaintext.set(body, 2);
  return plaintext;
}

/** How this device shows what it sends (as a reader will read it). */
export function shownAs(out: Outgoing): Content {
  switch (out.kind) {
    case "text":
      return { kind: "text", text: out.text, replyTo: out.replyTo ?? "" };
    case "attachment":
      return { kind: "attachment", file: out.file, replyTo: out.replyTo ?? "" };
    case "edit":
      return { kind: "text", text: out.text };
    case "reaction":
      return { kind: "reaction", messageId: out.messageId, emoji: out.emoji, remove: out.remove ?? false };
    case "deletion":
      return { kind: "deletion", messageId: out.messageId };
  }
}

const STYLES: Partial<Record<TextStyle, SpanStyle>> = {
  [TextStyle.BOLD]: "bold",
  [TextStyle.ITALIC]: "italic",
  [TextStyle.CODE]: "code",
  [TextStyle.STRIKE]: "strike",
  [TextStyle.SPOILER]: "spoiler",
};

/** A received text: null when too long (malformed); spans clamped to the text, the empty ones
 * and those of an unknown style left out. */
function textOf(t: TextContent | undefined): { text: string; spans?: Span[] } | null {
  const text = t?.body ?? "";
  if (text.length > MAX_TEXT_LENGTH) return null;
  const spans: Span[] = [];
  for (const s of t?.spans ?? []) {
    const style = STYLES[s.style];
    const end = Math.min(s.end, text.length);
    if (style && s.start < end) spans.push({ start: s.start, end, style });
  }
  return spans.length > 0 ? { text, spans } : { text };
}

const td = new TextDecoder("utf-8", { fatal: true });

type Read = { ok: Content } | { undecryptable: string };

/** What a decrypted plaintext says, for the message `messageId` (an edit must name it). */
export function readContent(plaintext: Uint8Array, messageId: string): Read {
  if (plaintext[0] !== CONTENT_MARKER) {
    // LEGACY: UTF-8 text, or the old attachment JSON.
    let text: string;
    try {
      text = td.decode(plaintext);
    } catch {
      return { undecryptable: "not UTF-8" };
    }
    const file = parseFileRef(text);
    return { ok: file ? { kind: "attachment", file } : { kind: "text", text } };
  }
  if (plaintext.length < 2) return { undecryptable: MALFORMED_CONTENT };
  if (plaintext[1] !== CONTENT_FORMAT) return { ok: { kind: "unsupported" } };
  let c: WireContent;
  try {
    c = fromBinary(ContentSchema, plaintext.subarray(2));
  } catch {
    return { undecryptable: MALFORMED_CONTENT };
  }
  const replyTo = { replyTo: c.reply?.messageId ?? "" };
  const body = c.body;
  switch (body.case) {
    case "text": {
      const t = textOf(body.value);
      return t ? { ok: { kind: "text", ...t, ...replyTo } } : { undecryptable: MALFORMED_CONTENT };
    }
    case "file": {
      const file = fileRefFrom(body.value);
      return file ? { ok: { kind: "attachment", file, ...replyTo } } : { undecryptable: MALFORMED_CONTENT };
    }
    case "edit": {
      // An edit replaces the ciphertext of one message: shown only there, so a server cannot
      // move it to another message.
      if (body.value.messageId !== messageId) return { undecryptable: EDIT_FOR_ANOTHER_MESSAGE };
      const t = textOf(body.value.text);
      return t ? { ok: { kind: "text", ...t } } : { undecryptable: MALFORMED_CONTENT };
    }
    case "reaction": {
      const r = body.value;
      if (!r.messageId || !r.emoji) return { undecryptable: MALFORMED_CONTENT };
      // Shown as a chip with a count: one emoji, bounded (never text, never a long string).
      if (reactionProblem(r.emoji)) return { undecryptable: MALFORMED_REACTION };
      return { ok: { kind: "reaction", messageId: r.messageId, emoji: r.emoji, remove: r.remove } };
    }
    case "deletion":
      if (!body.value.messageId) return { undecryptable: MALFORMED_CONTENT };
      return { ok: { kind: "deletion", messageId: body.value.messageId } };
    default:
      // Unset, or a kind this client does not know (kept as an unknown field).
      return { ok: { kind: "unsupported" } };
  }
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
