import { describe, expect, it } from "vitest";
import { markdownToText } from "./plainText";

describe("markdownToText", () => {
  it("drops emphasis and strong markers", () => {
    expect(markdownToText("**Hi** there, *you* and __all__ of _them_")).toBe("Hi there, you and all of them");
    expect(markdownToText("~~old~~ new")).toBe("old new");
  });

  it("keeps inline code without backticks and code blocks without fences", () => {
    expect(markdownToText("run `npm ci` now")).toBe("run npm ci now");
    expect(markdownToText("``a ` b``")).toBe("a ` b");
    expect(markdownToText("```ts\nconst x = 1;\n```\ndone")).toBe("const x = 1; done");
  });

  it("keeps the text of links and images", () => {
    expect(markdownToText("see [the docs](https://example.org/docs) please")).toBe("see the docs please");
    expect(markdownToText('![a cat](https://e.org/c.png "cat")')).toBe("a cat");
    expect(markdownToText("<https://example.org>")).toBe("https://example.org");
  });

  it("drops headings, quotes, list bullets and rules, on one line", () => {
    expect(markdownToText("# Title\n> quoted\n- one\n* two\n\n---\n1. three")).toBe("Title quoted one two 1. three");
  });

  it("leaves text that only looks like markup alone", () => {
    expect(markdownToText("2 * 3 * 4 = 24")).toBe("2 * 3 * 4 = 24");
    expect(markdownToText("snake_case_name and a_b")).toBe("snake_case_name and a_b");
    expect(markdownToText("price: 5$ ** unpaired")).toBe("price: 5$ ** unpaired");
    expect(markdownToText("plain text")).toBe("plain text");
  });

  it("unescapes backslash escapes", () => {
    expect(markdownToText("\\*not bold\\*")).toBe("*not bold*");
  });
});
