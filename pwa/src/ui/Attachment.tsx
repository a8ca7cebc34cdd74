// Attachment.tsx — a received or sent file in a conversation (docs/attachments.md): an image
// preview from its encrypted thumbnail (full image on click) or a file card (download, save),
// "expired" when the server says it is gone, and for our own files who downloaded them; the TTL
// and size labels. Sending files: conversation/Uploads.tsx.
import { useCallback, useEffect, useRef, useState } from "react";
import type { FileRef } from "../attachments/content";
import { downloadDecrypt, Expired, HashMismatch, reportDownloaded } from "../attachments/lazy";
import { useI18n, type Translate } from "../i18n/i18n";
import { useChat, type Chat, type FileState } from "../state/chat";
import { FileIcon, HourglassIcon } from "./call/icons";
import { Dialog } from "./Dialog";
import { personName } from "./names";

const NO_FILE: FileState = {};

/** "1 hour", "1 день": a TTL in the largest unit that divides it. */
export function ttlLabel(lang: string, seconds: number): string {
  const units: Array<[number, "week" | "day" | "hour" | "minute" | "second"]> = [
    [604800, "week"],
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
    [1, "second"],
  ];
  const [size, unit] = units.find(([s]) => seconds % s === 0) ?? [1, "second"];
  return new Intl.NumberFormat(lang, { style: "unit", unit, unitDisplay: "long" }).format(seconds / size);
}

/** "73 B", "12 kB", "3.4 MB". */
export function sizeLabel(t: Translate, lang: string, bytes: number): string {
  if (bytes < 1e3) return t("bytes", { n: new Intl.NumberFormat(lang).format(bytes) });
  const units: Array<[number, "kilobyte" | "megabyte" | "gigabyte"]> = [
    [1e9, "gigabyte"],
    [1e6, "megabyte"],
    [1e3, "kilobyte"],
  ];
  const [size, unit] = units.find(([s]) => bytes >= s) ?? [1e3, "kilobyte"];
  return new Intl.NumberFormat(lang, { style: "unit", unit, unitDisplay: "short", maximumFractionDigits: 1 }).format(
    bytes / size,
  );
}

type Fetched = { state: "idle" } | { state: "loading"; done: number; total: number } | { state: "ready"; url: string } | { state: "error"; text: string };

/** Downloads, decrypts and checks one attachment into an object URL (revoked on unmount). */
function useDownload(chat: Chat, attachmentId: string, secrets: string, type: string, report: boolean) {
  const { t } = useI18n();
  const [fetched, setFetched] = useState<Fetched>({ state: "idle" });
  const url = useRef<string | null>(null);
  useEffect(
    () => () => {
      if (url.current) URL.revokeObjectURL(url.current);
    },
    [],
  );
  const start = useCallback(async (): Promise<string | null> => {
    if (url.current) return url.current;
    setFetched({ state: "loading", done: 0, total: 0 });
    try {
      const blob = await downloadDecrypt(attachmentId, secrets, type, (done, total) =>
        setFetched({ state: "loading", done, total }),
      );
      url.current = URL.createObjectURL(blob);
      setFetched({ state: "ready", url: url.current });
      if (report) void reportDownloaded(attachmentId);
      return url.current;
    } catch (err) {
      if (err instanceof Expired) {
        chat.files.markExpired(attachmentId);
        setFetched({ state: "idle" });
      } else {
        setFetched({ state: "error", text: err instanceof HashMismatch ? t("attachmentTampered") : t("downloadFailed") });
      }
      return null;
    }
  }, [chat, attachmentId, secrets, type, report, t]);
  return { fetched, start };
}

function DownloadProgress({ fetched, name }: { fetched: Fetched; name: string }) {
  const { t } = useI18n();
  if (fetched.state === "loading") {
    return <progress max={fetched.total || 1} value={fetched.done} aria-label={t("downloading", { name })} />;
  }
  if (fetched.state === "error") {
    return (
      <p role="alert" className="error">
        {fetched.text}
      </p>
    );
  }
  return null;
}

/** A file in a message: image preview or file card, "expired", and our own files' downloads. */
export function FileView({ chat, file, mine, sending }: { chat: Chat; file: FileRef; mine: boolean; sending: boolean }) {
  const { t, lang } = useI18n();
  const state = useChat(chat, (s) => s.files[file.attachment] ?? NO_FILE);
  const thumbState = useChat(chat, (s) => (file.thumbnail ? s.files[file.thumbnail.attachment] ?? NO_FILE : NO_FILE));
  useChat(chat, (s) => s.profiles); // names of who downloaded
  const expired = state.expired === true || thumbState.expired === true;
  const full = useDownload(chat, file.attachment, file.secrets, file.type, !mine);
  const thumb = useDownload(chat, file.thumbnail?.attachment ?? "", file.thumbnail?.secrets ?? "", "image/jpeg", false);
  const [open, setOpen] = useState(false);
  const saveRef = useRef<HTMLAnchorElement>(null);
  const autoSave = useRef(false);

  // The thumbnail is fetched as soon as the message shows, unless it expired.
  const thumbId = file.thumbnail?.attachment;
  const thumbIdle = thumb.fetched.state === "idle";
  const startThumb = thumb.start;
  useEffect(() => {
    if (thumbId && !expired && thumbIdle) void startThumb();
  }, [thumbId, expired, thumbIdle, startThumb]);
  useEffect(() => {
    if (mine && !sending) void chat.files.loadDownloads(file.attachment);
  }, [chat, mine, sending, file.attachment]);
  useEffect(() => {
    if (autoSave.current && full.fetched.state === "ready") {
      autoSave.current = false;
      saveRef.current?.click();
    }
  }, [full.fetched]);

  const downloads = mine && state.downloads && state.downloads.length > 0 && (
    <ul className="downloads">
      {state.downloads.map((d) => (
        <li key={d.accountId}>
          {t("downloadedBy", {
            name: personName(chat, t, d.accountId),
            time: new Date(d.atMs).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" }),
          })}
        </li>
      ))}
    </ul>
  );

  if (expired) {
    return (
      <div className="file-card expired">
        <HourglassIcon />
        <span className="file-name">{file.name}</span>
        <span className="expired-note">{t("attachmentExpired")}</span>
        {downloads}
      </div>
    );
  }

  if (file.thumbnail) {
    const th = file.thumbnail;
    return (
      <div className="file-image">
        <button
          type="button"
          className="image-preview"
          aria-label={t("openImage", { name: file.name })}
          onClick={() => {
            setOpen(true);
            void full.start();
          }}
        >
          {thumb.fetched.state === "ready" ? (
            <img src={thumb.fetched.url} alt={file.name} width={th.width} height={th.height} />
          ) : (
            <span className="image-placeholder" style={{ aspectRatio: `${th.width} / ${th.height}` }} />
          )}
        </button>
        {thumb.fetched.state === "error" && <DownloadProgress fetched={thumb.fetched} name={file.name} />}
        {downloads}
        {open && (
          <Dialog title={file.name} onClose={() => setOpen(false)}>
            <DownloadProgress fetched={full.fetched} name={file.name} />
            {full.fetched.state === "ready" && (
              <img className="full-image" src={full.fetched.url} alt={file.name} />
            )}
            <div className="row-end">
              {full.fetched.state === "ready" && (
                <a className="button" href={full.fetched.url} download={file.name}>
                  {t("save")}
                </a>
              )}
              <button type="button" onClick={() => setOpen(false)}>
                {t("close")}
              </button>
            </div>
          </Dialog>
        )}
      </div>
    );
  }

  return (
    <div className="file-card">
      <FileIcon />
      <span className="file-name">{file.name}</span>
      <span className="muted">{sizeLabel(t, lang, file.size)}</span>
      {full.fetched.state === "ready" ? (
        <a ref={saveRef} className="button" href={full.fetched.url} download={file.name}>
          {t("save")}
        </a>
      ) : (
        <button
          type="button"
          disabled={full.fetched.state === "loading"}
          aria-label={t("downloadFile", { name: file.name })}
          onClick={() => {
            autoSave.current = true;
            void full.start();
          }}
        >
          {t("download")}
        </button>
      )}
      <DownloadProgress fetched={full.fetched} name={file.name} />
      {downloads}
    </div>
  );
}
