// SafeMarkdown.test.ts — links in message text, rendered to HTML as the app shows them: bare URLs
// become links, only http(s) and mailto are ever links, each opens in a new tab without a handle
// on the app or a referrer.
import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { linkify } from "./autolink";
import { SafeMarkdown, safeUrl } from "./SafeMarkdown";

const html = (text: string) => renderToStaticMarkup(createElement(SafeMarkdown, { text }));
const REL = 'target="_blank" rel="noopener noreferrer nofollow"';

describe("SafeMarkdown links", () => {
  it("makes bare http(s) URLs clickable", () => {
    expect(html("see https://example.org/a?b=1#c now")).toContain(
      `<a href="https://example.org/a?b=1#c" ${REL}>https://example.org/a?b=1#c</a> now`,
    );
    expect(html("www.example.org")).toContain(`<a href="https://www.example.org" ${REL}>www.example.org</a>`);
  });

  it("leaves sentence punctuation out of the link but keeps balanced parentheses", () => {
    expect(html("Look: https://example.org.")).toContain(`<a href="https://example.org" ${REL}>https://example.org</a>.`);
    expect(html("(https://example.org)")).toContain(`(<a href="https://example.org" ${REL}>https://example.org</a>)`);
    expect(html("https://en.wikipedia.org/wiki/Fox_(disambiguation)")).toContain(
      'href="https://en.wikipedia.org/wiki/Fox_(disambiguation)"',
    );
  });

  it("never links javascript:, data: or vbscript:, bare or written as links", () => {
    for (const text of [
      "javascript:alert(1)",
      "[click](javascript:alert(1))",
      "[click](JaVaScRiPt:alert(1))",
      "[click](java\tscript:alert(1))",
      "<javascript:alert(1)>",
      "[x](data:text/html;base64,PHNjcmlwdD4=)",
      "[x](vbscript:msgbox)",
      "![img](javascript:alert(1))",
    ]) {
      const out = html(text);
      expect(out, text).not.toContain("<a");
      expect(out, text).not.toMatch(/href="\s*(javascript|data|vbscript)/i);
    }
  });

  it("keeps http(s) and mailto links written in Markdown, with the safe rel", () => {
    expect(html("[site](https://example.org)")).toContain(`<a href="https://example.org" ${REL}>site</a>`);
    expect(html("[mail](mailto:a@b.org)")).toContain(`<a href="mailto:a@b.org" ${REL}>mail</a>`);
  });

  it("does not link inside code", () => {
    expect(html("`https://example.org`")).toBe('<div class="md"><p><code>https://example.org</code></p></div>');
    expect(html("```\nhttps://example.org\n```")).not.toContain("<a");
  });

  it("does not put raw HTML in the page", () => {
    expect(html('<a href="javascript:alert(1)">x</a> https://e.org')).not.toContain('href="javascript');
    expect(html("<script>alert(1)</script>")).not.toContain("<script");
  });
});

describe("linkify and safeUrl", () => {
  it("returns null for text without a URL", () => {
    expect(linkify("no links here, just http and www")).toBeNull();
  });

  it("judges the URL a browser would open", () => {
    expect(safeUrl(" https://e.org ")).toBe("https://e.org");
    expect(safeUrl("java\nscript:alert(1)")).toBe("");
    expect(safeUrl("/relative")).toBe("");
  });
});
