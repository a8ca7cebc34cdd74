// copyText.ts — the one way every Copy button copies. The clipboard API exists only in a secure
// context (HTTPS or localhost); opened as http://<LAN name> it is missing, so the fallback is the
// older document.execCommand("copy") on a hidden textarea. When both fail, the caller selects the
// visible text and asks the person to copy it by hand ("manual").

/** How the copy went: "copied", or "manual" (nothing copied; the text must be copied by hand). */
export type CopyResult = "copied" | "manual";

/** Copies `text`: clipboard API when there is one, else execCommand on a hidden textarea. */
export async function copyText(text: string, doc: Document = document): Promise<CopyResult> {
  const clipboard = doc.defaultView?.navigator.clipboard;
  if (clipboard && typeof clipboard.writeText === "function") {
    try {
      await clipboard.writeText(text);
      return "copied";
    } catch {
      // Refused (no permission, page not focused): the older way may still work.
    }
  }
  return execCopy(text, doc) ? "copied" : "manual";
}

/** The pre-clipboard-API way: select the text in a hidden textarea and ask for "copy". */
function execCopy(text: string, doc: Document): boolean {
  const area = doc.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.setAttribute("aria-hidden", "true");
  // Off screen but rendered (a display:none element cannot be selected).
  area.style.position = "fixed";
  area.style.top = "0";
  area.style.left = "-9999px";
  area.style.opacity = "0";
  // Focus goes back where it was (the Copy button) after the textarea is gone.
  const active = doc.activeElement as HTMLElement | null;
  // Inside a modal dialog everything outside it is inert (cannot be focused or selected): the
  // textarea goes into the button's dialog, else into the body.
  const host = (typeof active?.closest === "function" ? active.closest("dialog") : null) ?? doc.body;
  host.appendChild(area);
  let ok = false;
  try {
    area.focus();
    area.select();
    area.setSelectionRange(0, text.length);
    // Nothing selected (the textarea could not take focus): "copy" would copy nothing yet
    // report success, so this is a failure.
    const selected = doc.activeElement === area && area.selectionStart === 0 && area.selectionEnd === text.length;
    ok = selected && typeof doc.execCommand === "function" && doc.execCommand("copy");
  } catch {
    ok = false;
  } finally {
    area.remove();
    if (active && typeof active.focus === "function") active.focus();
  }
  return ok;
}

/** Selects everything inside `el`, so the person can copy it by hand. */
export function selectContents(el: Element | null): void {
  if (!el) return;
  const selection = el.ownerDocument.defaultView?.getSelection();
  if (!selection) return;
  const range = el.ownerDocument.createRange();
  range.selectNodeContents(el);
  selection.removeAllRanges();
  selection.addRange(range);
}
