// SafeMarkdown.tsx — message text as Markdown, rendered to React elements (react-markdown).
// # Security
// Message text comes from other people. Raw HTML in it is never interpreted: react-markdown
// escapes it (no rehype-raw, no dangerouslySetInnerHTML), so `<script>` shows as text. Links keep
// only http(s) and mailto; any other link (javascript:, data:, …) is shown as its source text, not
// as a link. Images are not loaded (they would be requests to other hosts): shown as links.
// Bare URLs in the text become links too (autolink.ts), under the same rule. Every link opens in
// a new tab with rel="noopener noreferrer nofollow": the page it opens gets no handle on ours and
// learns nothing of where it came from.
import type { Element } from "hast";
import Markdown, { type Components } from "react-markdown";
import { remarkAutolink } from "./autolink";
import { remarkMentions } from "./mentions";

const REL = "noopener noreferrer nofollow";
const PLUGINS = [remarkAutolink];

const SAFE_PROTOCOL = /^(https?:|mailto:)/i;

/** The URL when it is http, https or mailto; "" (no link) for anything else. */
export function safeUrl(url: string): string {
  // Browsers drop tabs and newlines inside a URL ("java\tscript:"): judge what they would open.
  const trimmed = url.replace(/[\t\n\r]/g, "").trim();
  return SAFE_PROTOCOL.test(trimmed) ? trimmed : "";
}

/** `mentions`: the exact text of each `@name` the sender marked (highlighted). */
export function SafeMarkdown({ text, mentions }: { text: string; mentions?: string[] }) {
  const source = (node: Element | undefined) => {
    const start = node?.position?.start.offset;
    const end = node?.position?.end.offset;
    return start !== undefined && end !== undefined ? text.slice(start, end) : "";
  };
  const components: Components = {
    a: ({ node, href, children }) =>
      href ? (
        <a href={href} target="_blank" rel={REL}>
          {children}
        </a>
      ) : (
        <span>{source(node) || children}</span>
      ),
    img: ({ node, src, alt }) =>
      typeof src === "string" && src ? (
        <a href={src} target="_blank" rel={REL}>
          {alt || src}
        </a>
      ) : (
        <span>{source(node)}</span>
      ),
  };
  return (
    <div className="md">
      <Markdown remarkPlugins={mentions?.length ? [...PLUGINS, remarkMentions(mentions)] : PLUGINS} urlTransform={safeUrl} components={components} disallowedElements={["iframe", "script", "style"]}>
        {text}
      </Markdown>
    </div>
  );
}
