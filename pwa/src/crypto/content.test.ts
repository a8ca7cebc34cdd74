// The behaviour of the message-content codec as the app gets it: content.ts over the crypto
// crate's WASM (initialised by src/vitest.setup.ts). Raw Contents a writer would refuse are made
// here with protobuf-es, an encoder independent of the crate's (older PWAs wrote with it).
import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { FileRef } from "../attachments/content";
import { ContentSchema, EditSchema, TextContentSchema, TextSpanSchema, TextStyle } from "../gen/kitsulan/v1/content_pb";
import {
  EDIT_FOR_ANOTHER_MESSAGE,
  MALFORMED_CONTENT,
  MAX_QUOTE_LENGTH,
  MAX_TEXT_LENGTH,
  TextTooLong,
  cloudContent,
  contentOf,
  encodeContent,
  readCloudContent,
  readContent,
  replyOf,
  shownAs,
  shownInThread,
  type Content,
  type Outgoing,
} from "./content";

const te = new TextEncoder();
const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (h: string) => new Uint8Array(h.match(/../g)?.map((x) => parseInt(x, 16)) ?? []);
/** The crate's error code of what `f` throws (KitsulanCryptoError.code). */
function codeOf(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    expect((err as Error).name).toBe("KitsulanCryptoError");
    return (err as { code?: unknown }).code;
  }
  return "nothing thrown";
}
const MSG = "0193a0a0-0000-7000-8000-000000000001";
const OTHER = "0193a0a0-0000-7000-8000-000000000002";
const read = (plaintext: Uint8Array, messageId = MSG): Content => contentOf(plaintext, messageId, "s1");
const typed = (body: Uint8Array) => new Uint8Array([0x00, 0x01, ...body]);
const undecryptable = (reason: string): Content => ({ kind: "undecryptable", reason, sessionId: "s1" });

const FILE: FileRef = {
  attachment: "0193a0a0-0000-7000-8000-0000000000aa",
  secrets: "AQIDBAUGBwg=",
  name: "holiday.jpg",
  type: "image/jpeg",
  size: 123_456,
  width: 4032,
  height: 3024,
  thumbnail: { attachment: "0193a0a0-0000-7000-8000-0000000000bb", secrets: "CQoL", type: "image/jpeg", width: 320, height: 240 },
};
/** What an older client sent for FILE: the JSON of docs/attachments.md. */
const LEGACY_FILE_JSON = JSON.stringify(FILE);

describe("the typed content", () => {
  it("is 0x00 0x01 then the protobuf Content (version 1), and reads back", () => {
    const plaintext = encodeContent({ kind: "text", text: "hello 👋" });
    expect([...plaintext.subarray(0, 2)]).toEqual([0x00, 0x01]);
    expect(read(plaintext)).toEqual({ kind: "text", text: "hello 👋", replyTo: "" });
    const outs: Outgoing[] = [
      { kind: "text", text: "a reply", replyTo: OTHER },
      { kind: "attachment", file: FILE, replyTo: OTHER },
      { kind: "attachment", file: { attachment: "a", secrets: "AQ==", name: "x", type: "", size: 0 } },
      { kind: "edit", messageId: MSG, text: "fixed" },
      { kind: "reaction", messageId: OTHER, emoji: "👍" },
      { kind: "reaction", messageId: OTHER, emoji: "👍", remove: true },
      { kind: "deletion", messageId: OTHER },
    ];
    for (const out of outs) expect(read(encodeContent(out))).toEqual(shownAs(out));
  });

  it("writes the recorded vectors the PWA and the Rust client wrote (crypto/tests/content.rs)", () => {
    const vectors: [Outgoing, string][] = [
      [{ kind: "text", text: "hi", replyTo: "m" }, "0001080112030a016d52040a026869"],
      [{ kind: "text", text: "hello 👋" }, "00010801520c0a0a68656c6c6f20f09f918b"],
      [
        { kind: "attachment", file: FILE, replyTo: OTHER },
        "0001080112260a2430313933613061302d303030302d373030302d383030302d3030303030303030303030325a92010a2430313933613061302d303030302d373030302d383030302d303030303030303030306161120801020304050607081a0b686f6c696461792e6a7067220a696d6167652f6a70656728c0c40730c01f38d017423d0a2430313933613061302d303030302d373030302d383030302d3030303030303030303062621203090a0b1a0a696d6167652f6a70656720c00228f001",
      ],
      [{ kind: "attachment", file: { attachment: "a", secrets: "AQ==", name: "x", type: "", size: 0 } }, "000108015a090a01611201011a0178"],
      [
        { kind: "edit", messageId: MSG, text: "fixed" },
        "000108016a2f0a2430313933613061302d303030302d373030302d383030302d30303030303030303030303112070a056669786564",
      ],
      [
        { kind: "reaction", messageId: OTHER, emoji: "🎉" },
        "00010801622c0a2430313933613061302d303030302d373030302d383030302d3030303030303030303030321204f09f8e89",
      ],
      [
        { kind: "reaction", messageId: OTHER, emoji: "👍", remove: true },
        "00010801622e0a2430313933613061302d303030302d373030302d383030302d3030303030303030303030321204f09f918d1801",
      ],
      [{ kind: "deletion", messageId: OTHER }, "0001080172260a2430313933613061302d303030302d373030302d383030302d303030303030303030303032"],
      [
        {
          kind: "text",
          text: "bold ital code strike spoiler",
          replyTo: OTHER,
          spans: [
            { start: 0, end: 4, style: "bold" },
            { start: 5, end: 9, style: "italic" },
            { start: 10, end: 14, style: "code" },
            { start: 15, end: 21, style: "strike" },
            { start: 22, end: 29, style: "spoiler" },
          ],
        },
        "0001080112260a2430313933613061302d303030302d373030302d383030302d30303030303030303030303252450a1d626f6c64206974616c20636f646520737472696b652073706f696c657212041004180112060805100918021206080a100e18031206080f1015180412060816101d1805",
      ],
    ];
    for (const [out, vector] of vectors) {
      expect(hex(encodeContent(out)), out.kind).toBe(vector);
      expect(read(unhex(vector))).toEqual(shownAs(out));
    }
  });

  it("refuses to write what a reader would refuse, with the crate's code", () => {
    const refused: [Outgoing, string][] = [
      [{ kind: "text", text: "ab", spans: [{ start: 0, end: 3, style: "bold" }] }, "invalid_span"],
      [{ kind: "text", text: "ab", spans: [{ start: 1, end: 1, style: "code" }] }, "invalid_span"],
      [{ kind: "edit", messageId: "", text: "nobody's" }, "missing_field"],
      [{ kind: "reaction", messageId: OTHER, emoji: "" }, "missing_field"],
      [{ kind: "reaction", messageId: "", emoji: "👍" }, "missing_field"],
      [{ kind: "deletion", messageId: "" }, "missing_field"],
      [{ kind: "attachment", file: { ...FILE, attachment: "" } }, "missing_field"],
      [{ kind: "attachment", file: { ...FILE, secrets: "" } }, "missing_field"],
    ];
    for (const [out, code] of refused) expect(codeOf(() => encodeContent(out)), JSON.stringify(out)).toBe(code);
  });

  it("refuses an object that is not an Outgoing, naming the field", () => {
    const bad: unknown[] = [
      null,
      "text",
      { kind: "poll" },
      { kind: "text" },
      { kind: "text", text: 5 },
      { kind: "text", text: "a", replyTo: 7 },
      { kind: "text", text: "a", spans: [{ start: 0, end: 1, style: "underline" }] },
      { kind: "text", text: "a", spans: [{ start: -1, end: 1, style: "bold" }] },
      { kind: "text", text: "a", spans: {} },
      { kind: "reaction", messageId: OTHER, emoji: "👍", remove: "yes" },
      { kind: "attachment" },
      { kind: "attachment", file: { ...FILE, secrets: "not base64!" } },
      { kind: "attachment", file: { ...FILE, size: Number.NaN } },
      { kind: "attachment", file: { ...FILE, size: Infinity } },
      { kind: "attachment", file: { ...FILE, width: 1.5 } },
      { kind: "attachment", file: { ...FILE, height: 2 ** 32 } },
      { kind: "attachment", file: { ...FILE, thumbnail: "x" } },
    ];
    for (const out of bad) expect(codeOf(() => encodeContent(out as Outgoing)), JSON.stringify(out)).toBe("invalid_content");
    // A size is rounded down, a negative one is 0 (as the PWA always wrote it).
    const sized = (size: number) => read(encodeContent({ kind: "attachment", file: { ...FILE, size } }));
    expect(sized(10.9)).toMatchObject({ file: { size: 10 } });
    expect(sized(-3)).toMatchObject({ file: { size: 0 } });
  });

  it("carries a file's secrets as raw bytes, not base64", () => {
    const plaintext = encodeContent({ kind: "attachment", file: FILE });
    const raw = [1, 2, 3, 4, 5, 6, 7, 8];
    const at = plaintext.findIndex((_, i) => raw.every((b, j) => plaintext[i + j] === b));
    expect(at).toBeGreaterThan(0);
    expect(new TextDecoder().decode(plaintext)).not.toContain(FILE.secrets);
  });

  it("reads a text that looks like attachment JSON as text (no more files made of text)", () => {
    const c = read(encodeContent({ kind: "text", text: LEGACY_FILE_JSON }));
    expect(c).toEqual({ kind: "text", text: LEGACY_FILE_JSON, replyTo: "" });
  });

  it("refuses to write a text longer than the limit, and reads one as malformed", () => {
    const long = "x".repeat(MAX_TEXT_LENGTH + 1);
    expect(() => encodeContent({ kind: "text", text: long })).toThrow(TextTooLong);
    expect(() => encodeContent({ kind: "edit", messageId: MSG, text: long })).toThrow(TextTooLong);
    expect(read(encodeContent({ kind: "text", text: long.slice(1) }))).toMatchObject({ kind: "text" });
    const body = create(ContentSchema, { version: 1, body: { case: "text", value: create(TextContentSchema, { body: long }) } });
    expect(read(typed(toBinary(ContentSchema, body)))).toEqual(undecryptable(MALFORMED_CONTENT));
  });

  it("keeps the spans inside the text and of a known style", () => {
    const spans = [
      create(TextSpanSchema, { start: 0, end: 4, style: TextStyle.BOLD }),
      create(TextSpanSchema, { start: 5, end: 999, style: TextStyle.ITALIC }), // clamped to the end
      create(TextSpanSchema, { start: 3, end: 3, style: TextStyle.CODE }), // empty
      create(TextSpanSchema, { start: 50, end: 60, style: TextStyle.STRIKE }), // past the end
      create(TextSpanSchema, { start: 0, end: 2, style: TextStyle.UNSPECIFIED }),
      create(TextSpanSchema, { start: 0, end: 2, style: 77 as TextStyle }), // a newer style
    ];
    const body = create(ContentSchema, { version: 1, body: { case: "text", value: create(TextContentSchema, { body: "bold text", spans }) } });
    expect(read(typed(toBinary(ContentSchema, body)))).toEqual({
      kind: "text",
      text: "bold text",
      replyTo: "",
      spans: [
        { start: 0, end: 4, style: "bold" },
        { start: 5, end: 9, style: "italic" },
      ],
    });
  });
});

describe("edits", () => {
  it("show on the message they name", () => {
    expect(read(encodeContent({ kind: "edit", messageId: MSG, text: "new" }), MSG)).toEqual({ kind: "text", text: "new" });
  });

  it("are refused on any other message (a server moving an edit)", () => {
    expect(read(encodeContent({ kind: "edit", messageId: OTHER, text: "moved" }), MSG)).toEqual(undecryptable(EDIT_FOR_ANOTHER_MESSAGE));
    // One naming no message (no writer makes it) is refused on every message.
    const body = create(ContentSchema, { version: 1, body: { case: "edit", value: create(EditSchema, { messageId: "" }) } });
    expect(read(typed(toBinary(ContentSchema, body)), MSG)).toEqual(undecryptable(EDIT_FOR_ANOTHER_MESSAGE));
  });

  it("keep their formatting", () => {
    const out: Outgoing = { kind: "edit", messageId: MSG, text: "new", spans: [{ start: 0, end: 3, style: "italic" }] };
    expect(read(encodeContent(out), MSG)).toEqual(shownAs(out));
    expect(shownAs(out)).toEqual({ kind: "text", text: "new", spans: [{ start: 0, end: 3, style: "italic" }] });
  });

  it("without a text are an empty text", () => {
    const body = create(ContentSchema, { version: 1, body: { case: "edit", value: create(EditSchema, { messageId: MSG }) } });
    expect(read(typed(toBinary(ContentSchema, body)))).toEqual({ kind: "text", text: "" });
  });
});

describe("legacy plaintexts (no prefix)", () => {
  it("are UTF-8 text", () => {
    expect(read(te.encode("plain old text"))).toEqual({ kind: "text", text: "plain old text" });
    expect(read(new Uint8Array())).toEqual({ kind: "text", text: "" });
  });

  it("or the old attachment JSON", () => {
    expect(read(te.encode(LEGACY_FILE_JSON))).toEqual({ kind: "attachment", file: FILE });
    // Only `attachment` and `secrets` are required.
    expect(read(te.encode('{"attachment":"a1","secrets":"Bw=="}'))).toEqual({
      kind: "attachment",
      file: { attachment: "a1", secrets: "Bw==", name: "file", type: "", size: 0 },
    });
  });

  it("whose JSON names no file (or secrets that are not base64) are text", () => {
    for (const text of ['{"attachment":"a1","secrets":"not base64!"}', '{"attachment":"","secrets":"AQ=="}', '{"attachment":1,"secrets":"AQ=="}', "{not json"]) {
      expect(read(te.encode(text))).toEqual({ kind: "text", text });
    }
  });

  it("that are not UTF-8 are undecryptable", () => {
    expect(read(new Uint8Array([0xff, 0xfe, 0x41]))).toEqual(undecryptable("not UTF-8"));
  });

  it("say nothing about replies: the server's reply_to stands", () => {
    expect(replyOf(read(te.encode("hi")), OTHER)).toBe(OTHER);
    // A typed Content is the sender's word: the server cannot add or change a reply.
    expect(replyOf(read(encodeContent({ kind: "text", text: "hi" })), OTHER)).toBe("");
    expect(replyOf(read(encodeContent({ kind: "text", text: "hi", replyTo: MSG })), OTHER)).toBe(MSG);
  });
});

describe("what this client does not know", () => {
  it("an unknown kind (a newer client's) is unsupported, never dropped or guessed", () => {
    // Content { version: 2, field 15 (a body kind from the future): { 1: "x" } }
    expect(read(typed(new Uint8Array([0x08, 0x02, 0x7a, 0x03, 0x0a, 0x01, 0x78])))).toEqual({ kind: "unsupported" });
  });

  it("a Content without a body is unsupported", () => {
    expect(read(typed(new Uint8Array()))).toEqual({ kind: "unsupported" });
    expect(read(typed(new Uint8Array([0x08, 0x01])))).toEqual({ kind: "unsupported" });
  });

  it("a newer format byte is unsupported", () => {
    expect(read(new Uint8Array([0x00, 0x02, 0x01, 0x02]))).toEqual({ kind: "unsupported" });
  });

  it("reactions and deletions are their own kinds, without a bubble, never unsupported", () => {
    const r = read(encodeContent({ kind: "reaction", messageId: OTHER, emoji: "🎉" }));
    const d = read(encodeContent({ kind: "deletion", messageId: OTHER }));
    expect([r.kind, d.kind]).toEqual(["reaction", "deletion"]);
    expect([shownInThread(r), shownInThread(d), shownInThread(read(te.encode("x")))]).toEqual([false, false, true]);
  });
});

describe("malformed content", () => {
  it("is undecryptable with the reason", () => {
    const cases: number[][] = [
      [0x00], // the marker without a format
      [0x00, 0x01, 0x52], // field 10 (text), length missing
      [0x00, 0x01, 0x52, 0x05, 0x0a], // truncated
      [0x00, 0x01, 0x52, 0x03, 0x0a, 0x01, 0xff], // text body not UTF-8
      [0x00, 0x01, 0x08], // version without its value
      [0x00, 0x01, 0x5a, 0x00], // a file naming no attachment
      [0x00, 0x01, 0x62, 0x00], // a reaction to nothing
      [0x00, 0x01, 0x72, 0x00], // a deletion of nothing
    ];
    for (const c of cases) expect(read(new Uint8Array(c)), JSON.stringify(c)).toEqual(undecryptable(MALFORMED_CONTENT));
  });

  it("never throws, whatever the bytes", () => {
    let seed = 0x2545f491;
    const next = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed >>> 0;
    };
    const valid = [
      encodeContent({ kind: "text", text: "hello", replyTo: OTHER }),
      encodeContent({ kind: "attachment", file: FILE }),
      encodeContent({ kind: "edit", messageId: MSG, text: "x" }),
    ];
    for (let i = 0; i < 3000; i++) {
      let bytes: Uint8Array;
      if (i % 2 === 0) {
        bytes = new Uint8Array(next() % 64);
        for (let j = 0; j < bytes.length; j++) bytes[j] = next() & 0xff;
        if (i % 4 === 0 && bytes.length >= 2) bytes.set([0x00, 0x01]);
      } else {
        const base = valid[i % valid.length] as Uint8Array;
        bytes = base.slice(0, 2 + (next() % (base.length - 1)));
        for (let k = next() % 4; k > 0; k--) bytes[2 + (next() % Math.max(1, bytes.length - 2))] = next() & 0xff;
      }
      expect(() => readContent(bytes, MSG)).not.toThrow();
    }
  });
});

describe("the extras: mentions, quotes, forwarding (issue 20)", () => {
  it("leaves the bytes of a message without extras as the crate writes them", () => {
    const out: Outgoing = { kind: "text", text: "plain", replyTo: OTHER };
    expect(hex(encodeContent({ ...out, mentions: [] }))).toBe(hex(encodeContent(out)));
  });

  it("carries mentions, a quote and the forwarded mark inside the typed Content, and reads them back", () => {
    const out: Outgoing = {
      kind: "text",
      text: "hi @Bob",
      replyTo: OTHER,
      quote: "what you said",
      forwarded: { fromAccountId: "acc-1", sentAtMs: 1234 },
      mentions: [{ accountId: "acc-2", start: 3, end: 7 }],
    };
    const plaintext = encodeContent(out);
    expect(read(plaintext)).toEqual({
      kind: "text",
      text: "hi @Bob",
      replyTo: OTHER,
      quote: "what you said",
      forwarded: { fromAccountId: "acc-1", sentAtMs: 1234 },
      mentions: [{ accountId: "acc-2", start: 3, end: 7 }],
    });
    expect(read(plaintext)).toEqual(shownAs(out));
  });

  it("writes the same bytes protobuf-es writes for that Content (the crate holds the codec now)", () => {
    const out: Outgoing = {
      kind: "text",
      text: "hi @Bob",
      replyTo: OTHER,
      quote: "what you said",
      forwarded: { fromAccountId: "acc-1", sentAtMs: 1234 },
      mentions: [{ accountId: "acc-2", start: 3, end: 7 }],
    };
    const expected = create(ContentSchema, {
      version: 1,
      reply: { messageId: OTHER, quote: "what you said" },
      forwarded: { fromAccountId: "acc-1", sentAtMs: 1234n },
      body: { case: "text", value: { body: "hi @Bob", mentions: [{ accountId: "acc-2", start: 3, end: 7 }] } },
    });
    expect(hex(encodeContent(out).subarray(2))).toBe(hex(toBinary(ContentSchema, expected)));
  });

  it("refuses to write a mention outside its text, and reads past one another client wrote", () => {
    expect(() => encodeContent({ kind: "text", text: "hi", mentions: [{ accountId: "a", start: 1, end: 9 }] })).toThrow(
      expect.objectContaining({ code: "invalid_mention" }),
    );
    const sent = create(ContentSchema, {
      version: 1,
      body: { case: "text", value: { body: "hi", mentions: [{ accountId: "a", start: 1, end: 9 }, { accountId: "b", start: 0, end: 2 }] } },
    });
    expect(readCloudContent(sent, MSG)).toEqual({ kind: "text", text: "hi", replyTo: "", mentions: [{ accountId: "b", start: 0, end: 2 }] });
  });

  it("cuts a long quote at a character, never inside an emoji", () => {
    const quote = "q".repeat(MAX_QUOTE_LENGTH - 1) + "🦊🦊";
    const read = readContent(encodeContent({ kind: "text", text: "re", replyTo: OTHER, quote }), MSG);
    expect("ok" in read && read.ok.kind === "text" && read.ok.quote).toBe("q".repeat(MAX_QUOTE_LENGTH - 1));
  });

  it("a cloud Content is the same Content unframed, read by the same rules", () => {
    const out: Outgoing = { kind: "text", text: "cloud @Ann", mentions: [{ accountId: "ann", start: 6, end: 10 }] };
    const c = cloudContent(out);
    expect(hex(toBinary(ContentSchema, c))).toBe(hex(encodeContent(out).subarray(2)));
    expect(readCloudContent(c, MSG)).toEqual(shownAs(out));
    // An edit of a cloud message is its new text.
    expect(cloudContent({ kind: "text", text: "new" }).body.case).toBe("text");
  });
});
