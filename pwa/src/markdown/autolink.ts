// autolink.ts — a remark plugin that turns bare URLs in message text ("see https://example.org")
// into links, as people expect from a messenger. Only http(s) URLs and "www." names are linked
// (and mailto: written out); text inside code and existing links is left alone. Whether a link
// is then allowed at all is still SafeMarkdown's urlTransform's decision (http, https, mailto).
import type { Link, Parent, Root, RootContent, Text } from "mdast";

/** A bare URL: scheme http(s) or mailto, or a www. host; stops at whitespace and at <>. */
const BARE_URL = /\b(?:https?:\/\/|mailto:|www\.)[^\s<>]+/gi;
/** Punctuation that ends a sentence rather than the URL. */
const TRAILING = /[.,:;!?'"»)\]}]+$/;

/** Splits `text` into text and link nodes (or returns null when it has no URL). */
export function linkify(text: string): (Text | Link)[] | null {
  const out: (Text | Link)[] = [];
  let last = 0;
  for (const match of text.matchAll(BARE_URL)) {
    let url = match[0];
    const trail = TRAILING.exec(url);
    if (trail) {
      // Keep a closing parenthesis that closes one opened inside the URL (Wikipedia links).
      let cut = trail[0];
      const opens = (url.match(/\(/g) ?? []).length;
      const closes = (url.match(/\)/g) ?? []).length;
      if (cut.endsWith(")") && opens >= closes) cut = cut.replace(/\)+$/, "");
      url = url.slice(0, url.length - cut.length);
    }
    if (/^(?:https?:\/\/|mailto:|www\.)$/i.test(url)) continue;
    const start = match.index;
    if (start > last) out.push({ type: "text", value: text.slice(last, start) });
    const href = /^www\./i.test(url) ? `https://${url}` : url;
    out.push({ type: "link", url: href, children: [{ type: "text", value: url }] });
    last = start + url.length;
  }
  if (out.length === 0) return null;
  if (last < text.length) out.push({ type: "text", value: text.slice(last) });
  return out;
}

function walk(node: Parent): void {
  const children: RootContent[] = [];
  let changed = false;
  for (const child of node.children as RootContent[]) {
    if (child.type === "text") {
      const parts = linkify(child.value);
      if (parts) {
        children.push(...parts);
        changed = true;
        continue;
      }
    } else if ("children" in child && child.type !== "link" && child.type !== "linkReference") {
      walk(child);
    }
    children.push(child);
  }
  if (changed) node.children = children as Parent["children"];
}

/** The remark plugin (react-markdown's remarkPlugins). */
export function remarkAutolink() {
  return (tree: Root) => walk(tree);
}
