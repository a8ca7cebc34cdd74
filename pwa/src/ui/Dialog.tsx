// Dialog.tsx — a modal dialog: labelled, closes on Escape, keeps focus inside (native <dialog>),
// and puts the cursor in its first text field so the person can type at once.
import { useEffect, useId, useRef, type ReactNode, type RefObject } from "react";

/** A <dialog> ref that is shown modally (top layer, the rest inert) while the component lives. */
export function useModal(): RefObject<HTMLDialogElement | null> {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return ref;
}

/** The fields that take typing (not checkboxes, radios, buttons or hidden file inputs). */
const TEXT_FIELD =
  'input:not([type]), input[type="text"], input[type="email"], input[type="password"], input[type="search"], ' +
  'input[type="tel"], input[type="url"], input[type="number"], textarea';

/** Focuses the first enabled, visible text field inside `root` (true when there was one). */
export function focusFirstField(root: HTMLElement): boolean {
  for (const el of root.querySelectorAll<HTMLInputElement | HTMLTextAreaElement>(TEXT_FIELD)) {
    if (el.disabled || el.readOnly || el.closest("[hidden]") || el.getClientRects().length === 0) continue;
    el.focus();
    return true;
  }
  return false;
}

export function Dialog({
  title,
  onClose,
  children,
  focusInput = true,
  wide = false,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  /** Focus the first text field on open (off where typing is not why the dialog opens). */
  focusInput?: boolean;
  /** A wider dialog (guild settings). */
  wide?: boolean;
}) {
  const ref = useModal();
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    // showModal focused the first focusable element (often a button); a field that someone
    // opened the dialog to fill in is the better start, unless a field already has the focus.
    const current = document.activeElement;
    const inField = current instanceof HTMLElement && d?.contains(current) && current.matches(TEXT_FIELD);
    if (d && focusInput && !inField) focusFirstField(d);
  }, [ref, focusInput]);
  return (
    <dialog ref={ref} className={wide ? "dialog wide" : "dialog"} aria-labelledby={titleId} onCancel={onClose}>
      <h2 id={titleId}>{title}</h2>
      {children}
    </dialog>
  );
}
