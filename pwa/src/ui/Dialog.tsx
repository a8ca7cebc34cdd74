// Dialog.tsx — a modal dialog: labelled, closes on Escape, keeps focus inside (native <dialog>).
import { useEffect, useRef, type ReactNode, type RefObject } from "react";

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

export function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const ref = useModal();
  return (
    <dialog ref={ref} className="dialog" aria-labelledby="dialog-title" onCancel={onClose}>
      <h2 id="dialog-title">{title}</h2>
      {children}
    </dialog>
  );
}
