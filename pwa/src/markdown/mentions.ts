// mentions.ts — a remark plugin that marks the `@name`s a message mentions (TextContent.mentions,
// given as the exact text of each) as <span class="mention">, wherever they stand in plain text
// (not inside code or links). Only the names the sender marked are highlighted, never any "@word".
import type { Parent, Root, RootContent, Text } from "mdast";

/** Splits `text` at the mentions in it (null when it has none). */
export function splitMentions(text: string, names: string[]): Array<{ text: string; mention: boolean }> | null {
  const sorted = [...new Set(names)].filter(Boolean).sort((a, b) => b.length - a.length);
  if (sorted.length === 0) return null;
  const out: Array<{ text: string; mention: boolean }> = [];
  let rest = text;
  let found = false;
  while (rest) {
    let best: { at: number; name: string } | null = null;
    for (const name of sorted) {
      const at = rest.indexOf(name);
      if (at !== -1 && (best === null || at < best.at)) best = { at, name };
    }
    if (!best) break;
    found = true;
    if (best.at > 0) out.push({ text: rest.slice(0, best.at), mention: false });
    out.push({ text: best.name, mention: true });
    rest = rest.slice(best.at + best.name.length);
  }
  if (!found) return null;
  if (rest) out.push({ text: rest, mention: false });
  return out;
}

function walk(node: Parent, names: string[]): void {
  const children: RootContent[] = [];
  let changed = false;
  for (const child of node.children as RootContent[]) {
    if (child.type === "text") {
      const parts = splitMentions(child.value, names);
      if (parts) {
        for (const p of parts) {
          const text: Text = { type: "text", value: p.text };
          // An mdast node react-markdown turns into <span class="mention"> (data.hName).
          children.push(
            p.mention
              ? ({ type: "emphasis", children: [text], data: { hName: "span", hProperties: { className: ["mention"] } } } as RootContent)
              : text,
          );
        }
        changed = true;
        continue;
      }
    } else if ("children" in child && child.type !== "link" && child.type !== "linkReference") {
      walk(child, names);
    }
    children.push(child);
  }
  if (changed) node.children = children as Parent["children"];
}

/** The remark plugin for the mentions `names` (each the exact text, "@Alice"). */
export function remarkMentions(names: string[]) {
  return () => (tree: Root) => walk(tree, names);
}
