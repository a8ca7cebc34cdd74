// openRecovery.ts — "Restore from recovery key" outside Settings (an undecryptable message's
// bubble): Messenger opens Settings, and its Recovery key section comes into view.
const EVENT = "kitsulan:open-recovery";
/** The next RecoverySettings to mount scrolls itself into view. */
let focusNext = false;

export function openRecoverySettings(): void {
  focusNext = true;
  window.dispatchEvent(new Event(EVENT));
}

/** Messenger: `open` is called when something asks for Settings → Recovery key. */
export function onOpenRecovery(open: () => void): () => void {
  window.addEventListener(EVENT, open);
  return () => window.removeEventListener(EVENT, open);
}

/** Whether the Recovery key section was asked for (once). */
export function takeRecoveryFocus(): boolean {
  const v = focusNext;
  focusNext = false;
  return v;
}
