// SafeMarkdown.tsx — message text as Markdown, rendered to React elements (react-markdown).
// # Security
// Message text comes from other people. Raw HTML in it is never interpreted: react-markdown
// escapes it (no rehype-raw, no dangerouslySetInnerHTML), so `<script>` shows as text. Links keep
// only http(s) and mailto; any other link (javascript:, data:, …) is shown as its source text, not
// as a link. Images are not loaded (they would be requests to other hosts): shown as links.
import type { Element } from "hast";
import Markdown, { type Components } from "react-markdown";

const SAFE_PROTOCOL = /^(https?:|mailto:)/i;

function safeUrl(url: string): string {
  const trimmed = url.trim();
  return SAFE_PROTOCOL.test(trimmed) ? trimmed : "";
}

export function SafeMarkdown({ text }: { text: string }) {
  const source = (node: Element | undefined) => {
    const start = node?.position?.start.offset;
    const end = node?.position?.end.offset;
    return start !== undefined && end !== undefined ? text.slice(start, end) : "";
  };
  const components: Components = {
    a: ({ node, href, children }) =>
      href ? (
        <a href={href} target="_blank" rel="noopener noreferrer">
          {children}
        </a>
      ) : (
        <span>{source(node) || children}</span>
      ),
    img: ({ node, src, alt }) =>
      typeof src === "string" && src ? (
        <a href={src} target="_blank" rel="noopener noreferrer">
          {alt || src}
        </a>
      ) : (
        <span>{source(node)}</span>
      ),
  };
  return (
    <div className="md">
      <Markdown urlTransform={safeUrl} components={components} disallowedElements={["iframe", "script", "style"]}>
        {text}
      </Markdown>
    </div>
  );
}
