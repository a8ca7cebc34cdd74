// KindMark.tsx — which kind a conversation is, on every screen that shows it: the lock for end-to-
// end encrypted, the cloud for cloud, each with its one sentence on what the server can read
// (on hover, and in the header on a tap too). Drawn inline (no icon font, no emoji font needed).
import { useState } from "react";
import { ConversationMode } from "../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../i18n/i18n";
import { LockIcon } from "./LockIcon";

export function CloudIcon({ label }: { label?: string }) {
  return (
    <svg
      className="cloud"
      viewBox="0 0 16 16"
      width="14"
      height="12"
      {...(label ? { role: "img", "aria-label": label } : { "aria-hidden": true })}
    >
      {label && <title>{label}</title>}
      <path
        fill="currentColor"
        d="M4.5 13A3.5 3.5 0 0 1 4 6.04 4.5 4.5 0 0 1 12.7 6.6 3.2 3.2 0 0 1 12.5 13h-8Z"
      />
    </svg>
  );
}

/** The kind's name and its sentence on what the server can read. */
export function useKindTexts(mode: ConversationMode): { name: string; note: string; cloud: boolean } {
  const { t } = useI18n();
  const cloud = mode === ConversationMode.CLOUD;
  return cloud ? { name: t("cloudMark"), note: t("cloudNote"), cloud } : { name: t("e2ee"), note: t("encryptedNote"), cloud };
}

/** The small mark of the conversation list (the row is a button: the sentence is its title). */
export function KindIcon({ mode }: { mode: ConversationMode }) {
  const { name, note, cloud } = useKindTexts(mode);
  return (
    <span className={cloud ? "kind-icon cloud-mark" : "kind-icon e2ee-icon"} title={note}>
      {cloud ? <CloudIcon label={name} /> : <LockIcon label={name} />}
    </span>
  );
}

/** The header's mark: the kind's name; a tap (or hover) shows what the server can read. */
export function KindMark({ mode }: { mode: ConversationMode }) {
  const { name, note, cloud } = useKindTexts(mode);
  const [open, setOpen] = useState(false);
  return (
    <span className="kind-mark-wrap">
      <button
        type="button"
        className={cloud ? "kind-mark cloud-mark" : "kind-mark e2ee-mark"}
        title={note}
        aria-expanded={open}
        onClick={() => setOpen((v) => !v)}
      >
        {cloud ? <CloudIcon /> : <LockIcon />} {name}
      </button>
      {open && (
        <span className="kind-note" role="note">
          {note}
        </span>
      )}
    </span>
  );
}
