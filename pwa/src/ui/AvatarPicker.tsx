// AvatarPicker.tsx — "Change picture" (a file picker for PNG, JPEG or WebP) and "Remove picture"
// for our own avatar or a group's; the server checks, resizes and strips the image, and its
// refusals (too large, not an image, corrupt) are shown as they are.
import { useRef, useState, type ReactNode } from "react";
import { reasonOf } from "../errors";
import { useI18n } from "../i18n/i18n";
import { errorText } from "../i18n/messages";

/** Above twice the server's default limit gRPC cuts the request off before the service answers. */
const TOO_LARGE_REASONS = new Set(["AVATAR_TOO_LARGE", "RESOURCE_EXHAUSTED"]);

export function AvatarPicker({
  preview,
  hasPicture,
  onSet,
  onRemove,
  name = "avatar",
}: {
  preview: ReactNode;
  hasPicture: boolean;
  onSet: (file: File) => Promise<void>;
  onRemove: () => Promise<void>;
  name?: string;
}) {
  const { t } = useI18n();
  const input = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);

  async function run(action: () => Promise<void>, done: string) {
    setBusy(true);
    setResult(null);
    try {
      await action();
      setResult({ ok: true, text: done });
    } catch (err) {
      const reason = reasonOf(err);
      setResult({ ok: false, text: errorText(t, TOO_LARGE_REASONS.has(reason) ? "AVATAR_TOO_LARGE" : reason) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="avatar-picker">
      {preview}
      <div className="avatar-picker-actions">
        <div className="row">
          <button type="button" disabled={busy} onClick={() => input.current?.click()}>
            {t("changePicture")}
          </button>
          {hasPicture && (
            <button type="button" disabled={busy} onClick={() => void run(onRemove, t("pictureRemoved"))}>
              {t("removePicture")}
            </button>
          )}
        </div>
        <input
          ref={input}
          type="file"
          name={name}
          aria-label={t("changePicture")}
          accept="image/png,image/jpeg,image/webp"
          hidden
          onChange={(e) => {
            const file = e.target.files?.[0];
            e.target.value = ""; // the same file can be picked again
            if (file) void run(() => onSet(file), t("pictureSaved"));
          }}
        />
        <p role={result && !result.ok ? "alert" : "status"} className={result && !result.ok ? "error" : "muted"}>
          {busy ? t("pictureUploading") : result?.text}
        </p>
      </div>
    </div>
  );
}
