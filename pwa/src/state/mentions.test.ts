import { describe, expect, it } from "vitest";
import { ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import { mentionCountOf, mentionQuery, mentionsIn, mentionsMe, suggestions, unreadMentions } from "./mentions";
import { BOB, CAROL, ME, conversation, item, message } from "./testkit";

describe("mentionsIn", () => {
  const bob = { accountId: BOB, name: "Bob" };
  const ann = { accountId: CAROL, name: "Ann" };

  it("finds each picked name in the final text, in UTF-16 offsets", () => {
    expect(mentionsIn("hi @Bob and @Ann", [bob, ann])).toEqual([
      { accountId: BOB, start: 3, end: 7 },
      { accountId: CAROL, start: 12, end: 16 },
    ]);
    // An emoji before it counts two code units, as TextContent's offsets do.
    expect(mentionsIn("🦊 @Bob", [bob])).toEqual([{ accountId: BOB, start: 3, end: 7 }]);
  });

  it("drops a name edited away, and never takes a longer word for it", () => {
    expect(mentionsIn("hi Bob", [bob])).toEqual([]);
    expect(mentionsIn("@Bobby", [bob])).toEqual([]);
    expect(mentionsIn("@Bob, @Bob!", [bob])).toHaveLength(2);
  });

  it("prefers the longer of two names starting at the same place", () => {
    const anna = { accountId: BOB, name: "Ann Lee" };
    expect(mentionsIn("@Ann Lee", [ann, anna])).toEqual([{ accountId: BOB, start: 0, end: 8 }]);
  });
});

describe("mentionQuery and suggestions", () => {
  it("sees the @… typed before the caret, at the start or after a space", () => {
    expect(mentionQuery("@Bo", 3)).toEqual({ start: 0, query: "Bo" });
    expect(mentionQuery("hi @", 4)).toEqual({ start: 3, query: "" });
    expect(mentionQuery("mail@example", 12)).toBeNull();
    expect(mentionQuery("no at", 5)).toBeNull();
    expect(mentionQuery("@Bob\nx", 6)).toBeNull();
  });

  it("offers the people whose name (or a word of it) starts with the query", () => {
    const people = [
      { accountId: BOB, name: "Bob Stone" },
      { accountId: CAROL, name: "Carol" },
    ];
    expect(suggestions(people, "").map((p) => p.name)).toEqual(["Bob Stone", "Carol"]);
    expect(suggestions(people, "st").map((p) => p.name)).toEqual(["Bob Stone"]);
    expect(suggestions(people, "CA").map((p) => p.name)).toEqual(["Carol"]);
  });
});

describe("the mention badge", () => {
  const mentioning = { kind: "text" as const, text: "@Me hi", mentions: [{ accountId: ME, start: 0, end: 3 }] };

  it("counts the unread messages from others that mention us (E2EE: on this device)", () => {
    const c = conversation({ members: [{ accountId: ME, readSeq: 1n }, { accountId: BOB, readSeq: 0n }], unreadCount: 2 });
    const thread = {
      items: [
        item(message({ id: "a", seq: 1n }), mentioning), // read already
        item(message({ id: "b", seq: 2n }), mentioning),
        item(message({ id: "c", seq: 3n })),
        item(message({ id: "d", seq: 4n, senderAccountId: ME }), mentioning),
      ],
    };
    expect(mentionsMe(mentioning, ME)).toBe(true);
    expect(unreadMentions(c, thread, ME)).toBe(1);
    expect(mentionCountOf(c, thread, ME)).toBe(1);
    expect(mentionCountOf({ ...c, unreadCount: 0 }, thread, ME)).toBe(0);
  });

  it("takes the server's count in a cloud conversation", () => {
    const c = conversation({ mode: ConversationMode.CLOUD, unreadCount: 3, mentionCount: 2 });
    expect(mentionCountOf(c, undefined, ME)).toBe(2);
    expect(mentionCountOf({ ...c, mode: ConversationMode.E2EE }, undefined, ME)).toBe(0);
  });
});
