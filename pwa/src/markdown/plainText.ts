// plainText.ts — a message's Markdown as the plain text a person reads, for one-line places that
// do not render Markdown: the conversation list's preview, notification banners and system
// notifications, quotes. "**Hi** `x` [site](https://a.b)" reads "Hi x site". Small and
// forgiving on purpose (a preview, not a parser): markers that do not pair stay as typed.

/** The text of `markdown` without its markup, on one line. */
export function markdownToText(markdown: string): string {
  // Backslash escapes first (they are literal characters, not markup), back at the end.
  const escaped: string[] = [];
  let s = markdown.replace(/\\([\\`*_{}[\]()#+\-.!~>|])/g, (_, c: string) => `\uE000${escaped.push(c) - 1}\uE001`);
  // Fenced code blocks: keep the code, drop the fences and the language tag.
  s = s.replace(/^[ \t]*(```|~~~)[^\n]*\n?/gm, "");
  // Images and links: their text (an image without alt text: its address).
  s = s.replace(/!\[([^\]]*)\]\(([^)\s]*)(?:\s+"[^"]*")?\)/g, (_, alt: string, url: string) => alt || url);
  s = s.replace(/\[([^\]]+)\]\(([^)\s]*)(?:\s+"[^"]*")?\)/g, "$1");
  // Autolinks <https://…>.
  s = s.replace(/<((?:https?:\/\/|mailto:)[^\s>]+)>/gi, "$1");
  // Line starts: headings, quotes, list bullets, numbered items.
  s = s.replace(/^[ \t]{0,3}#{1,6}[ \t]+/gm, "");
  s = s.replace(/^[ \t]{0,3}(?:>[ \t]?)+/gm, "");
  s = s.replace(/^[ \t]*[-*+][ \t]+(?:\[[ xX]\][ \t]+)?/gm, "");
  // Thematic breaks (--- *** ___) vanish.
  s = s.replace(/^[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/gm, "");
  // Inline code: the code without its backticks.
  s = s.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_, _ticks: string, code: string) => code.trim());
  // Emphasis, strong, strikethrough: paired markers around text.
  s = s.replace(/(\*\*|__)(?=\S)([\s\S]*?\S)\1/g, "$2");
  s = s.replace(/(~~)(?=\S)([\s\S]*?\S)\1/g, "$2");
  s = s.replace(/(^|[^\w*])\*(?=\S)([^*]*?\S)\*(?![\w*])/g, "$1$2");
  s = s.replace(/(^|[^\w_])_(?=\S)([^_]*?\S)_(?![\w_])/g, "$1$2");
  s = s.replace(/\uE000(\d+)\uE001/g, (_, i: string) => escaped[Number(i)] ?? "");
  return s.replace(/\s+/g, " ").trim();
}
