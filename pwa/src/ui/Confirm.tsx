// Confirm.tsx — "are you sure?" for actions that cannot be undone (deleting a message, signing
// out): a modal dialog with the consequence spelled out, Cancel focused first (Enter or Escape
// never destroys anything by accident) and the action as a danger button.
import { useEffect, useRef, type ReactNode } from "react";
import { useI18n } from "../i18n/i18n";
import { Dialog } from "./Dialog";

export function Confirm({
  title,
  children,
  action,
  busy = false,
  onConfirm,
  onCancel,
}: {
  title: string;
  /** What will happen (a paragraph or two). */
  children: ReactNode;
  /** The action's button text ("Delete", "Sign out"). */
  action: string;
  busy?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const { t } = useI18n();
  const cancel = useRef<HTMLButtonElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  return (
    <Dialog title={title} onClose={onCancel} focusInput={false}>
      <div className="confirm-text">{children}</div>
      <div className="row">
        <button ref={cancel} type="button" onClick={onCancel}>
          {t("cancel")}
        </button>
        <button type="button" className="danger" disabled={busy} onClick={onConfirm}>
          {action}
        </button>
      </div>
    </Dialog>
  );
}
