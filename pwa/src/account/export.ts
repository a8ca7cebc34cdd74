// export.ts — "Download my data" (Settings → Your data): AccountService.ExportAccount streams one
// JSON document in chunks of UTF-8 bytes, a chunk possibly ending inside a character. The bytes
// are joined first and decoded once, so a character split between two chunks comes out whole;
// the document is saved as kitsulan-<username>-<yyyy-mm-dd>.json through a Blob and a link.

/** The chunks of the export, in order, joined and decoded (throws on bytes that are not UTF-8). */
export async function collectExport(chunks: AsyncIterable<{ json: Uint8Array }>): Promise<string> {
  const parts: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of chunks) {
    parts.push(chunk.json);
    length += chunk.json.length;
  }
  const all = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new TextDecoder("utf-8", { fatal: true }).decode(all);
}

/** The file's name: the username and today's local date, e.g. kitsulan-alice-2026-03-01.json. */
export function exportFileName(username: string, now: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  const day = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  // A username is already safe in a file name (letters, digits, _ . -); anything else is dropped.
  return `kitsulan-${username.replace(/[^\p{L}\p{N}_.-]/gu, "")}-${day}.json`;
}

/** Hands `text` to the browser as a downloaded file called `name`. */
export function saveFile(text: string, name: string, type = "application/json"): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked once the browser has taken the download (it reads the URL on click).
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
