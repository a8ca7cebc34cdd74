// Uploads.tsx — sending files from a conversation: files picked, pasted or dropped are staged in
// the attach dialog (TTL, "keep original"), then sent one upload each; the list of uploads in
// flight shows their progress (cancel) or error (dismiss). The sending itself: state/files.ts.
import { useReducer, useRef, useState } from "react";
import { isPreviewable } from "../../attachments/content";
import { Cancelled } from "../../attachments/errors";
import { useI18n } from "../../i18n/i18n";
import type { Chat } from "../../state/chat";
import { applyUploads, type Upload } from "../../state/files";
import { sizeLabel, ttlLabel } from "../Attachment";
import { Dialog } from "../Dialog";

/** The files staged for the attach dialog and the uploads in flight of one conversation. */
export function useUploads(chat: Chat, conversationId: string, disabled: boolean) {
  const { t } = useI18n();
  const [staged, setStaged] = useState<File[] | null>(null);
  const [uploads, dispatch] = useReducer(applyUploads, []);
  const uploadKey = useRef(0);

  /** Opens the attach dialog for `files` (none, or no E2EE on this device yet: nothing). */
  function stage(files: FileList | File[] | null | undefined) {
    const list = files ? [...files] : [];
    if (list.length > 0 && !disabled) setStaged(list);
  }

  function send(files: File[], ttlSeconds: number, keepOriginal: boolean) {
    setStaged(null);
    for (const file of files) {
      const key = ++uploadKey.current;
      const controller = new AbortController();
      dispatch({ type: "started", upload: { key, name: file.name, done: 0, total: file.size, controller } });
      chat.files
        .sendFile(
          conversationId,
          file,
          { ttlSeconds, keepOriginal },
          (done, total) => dispatch({ type: "progress", key, done, total }),
          controller.signal,
        )
        .then(
          () => dispatch({ type: "gone", key }),
          (err: unknown) => {
            if (err instanceof Cancelled) dispatch({ type: "gone", key });
            else {
              console.warn("sending a file failed", err);
              dispatch({ type: "failed", key, error: t("uploadFailed", { name: file.name }) });
            }
          },
        );
    }
  }

  function cancel(u: Upload) {
    if (u.error) dispatch({ type: "gone", key: u.key });
    else u.controller.abort();
  }

  return { staged, stage, unstage: () => setStaged(null), send, uploads, cancel };
}

/** The files about to be sent: TTL and "keep original (with metadata)", then Send. */
export function AttachDialog({
  files,
  ttlChoices,
  onSend,
  onClose,
}: {
  files: File[];
  ttlChoices: number[];
  onSend: (ttlSeconds: number, keepOriginal: boolean) => void;
  onClose: () => void;
}) {
  const { t, lang } = useI18n();
  const [ttl, setTtl] = useState(0);
  const [keep, setKeep] = useState(false);
  const images = files.some((f) => isPreviewable(f.type));
  return (
    <Dialog title={t("attachTitle")} onClose={onClose}>
      <form
        className="attach-form"
        onSubmit={(e) => {
          e.preventDefault();
          onSend(ttl, keep);
        }}
      >
        <ul className="attach-list" aria-label={t("attachFiles")}>
          {files.map((f, i) => (
            <li key={`${i}-${f.name}`}>
              <span className="file-name">{f.name}</span> <span className="muted">{sizeLabel(t, lang, f.size)}</span>
            </li>
          ))}
        </ul>
        <label>
          {t("attachTtl")}
          <select value={ttl} onChange={(e) => setTtl(Number(e.target.value))}>
            <option value={0}>{t("attachTtlNone")}</option>
            {ttlChoices.map((s) => (
              <option key={s} value={s}>
                {ttlLabel(lang, s)}
              </option>
            ))}
          </select>
        </label>
        {images && (
          <label className="check">
            <input type="checkbox" checked={keep} onChange={(e) => setKeep(e.target.checked)} />
            {t("attachKeepOriginal")}
          </label>
        )}
        {images && !keep && <p className="muted small">{t("attachStripNote")}</p>}
        <div className="row-end">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          <button type="submit" className="primary" autoFocus>
            {t("send")}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** The uploads in flight: progress, cancel (or the error, dismissed). */
export function UploadList({ uploads, onCancel }: { uploads: Upload[]; onCancel: (u: Upload) => void }) {
  const { t } = useI18n();
  if (uploads.length === 0) return null;
  return (
    <ul className="uploads" aria-label={t("uploads")}>
      {uploads.map((u) => (
        <li key={u.key} className="upload">
          <span className="file-name">{u.name}</span>
          {u.error ? (
            <span role="alert" className="error">
              {u.error}
            </span>
          ) : (
            <progress
              max={u.total || 1}
              value={u.done}
              aria-label={t("uploading", { name: u.name })}
            />
          )}
          <button type="button" onClick={() => onCancel(u)} aria-label={u.error ? t("dismiss") : t("cancelUpload", { name: u.name })}>
            {u.error ? "×" : t("cancel")}
          </button>
        </li>
      ))}
    </ul>
  );
}
