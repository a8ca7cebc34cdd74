import { describe, expect, it } from "vitest";
import { splitMentions } from "./mentions";

describe("splitMentions", () => {
  it("splits a text at the mentions the sender marked, the longest name first", () => {
    expect(splitMentions("hi @Ann Lee and @Ann", ["@Ann", "@Ann Lee"])).toEqual([
      { text: "hi ", mention: false },
      { text: "@Ann Lee", mention: true },
      { text: " and ", mention: false },
      { text: "@Ann", mention: true },
    ]);
    expect(splitMentions("no names", ["@Bob"])).toBeNull();
    expect(splitMentions("@Bob", [])).toBeNull();
  });
});
