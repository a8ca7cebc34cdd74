// AddContact.tsx — "Scan a QR code": reads a person's contact QR code with the camera (or takes
// their link pasted, where there is no camera: an insecure page, a refusal, no camera at all),
// checks it (lib/contactLink: this server's link; Chat.addContact: an account the server knows,
// with the key the code carries) and opens the direct conversation; the caller then offers the
// emoji check. Opening someone's link (`/#/add/…`) lands here with the link already read. A code
// that is not a contact link of this server, or that fails a check, is said plainly and changes
// nothing.
import { ConnectError } from "@connectrpc/connect";
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { reasonOf } from "../../errors";
import { useI18n, type Translate } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import { parseContactLink, type ContactLinkProblem } from "../../lib/contactLink";
import { isLimited } from "../../lib/secureContext";
import { ContactLinkRefused, type Chat } from "../../state/chat";
import { Dialog } from "../Dialog";
import { canScanQr, QrScanner } from "../link/QrScanner";

const PROBLEMS: Record<ContactLinkProblem, "contactNotOurs" | "contactOtherServer" | "contactDamaged"> = {
  "not-ours": "contactNotOurs",
  "other-server": "contactOtherServer",
  damaged: "contactDamaged",
};

function refusalText(t: Translate, err: unknown): string {
  if (err instanceof ContactLinkRefused) {
    if (err.why === "self") return t("contactSelf");
    if (err.why === "unknown") return t("contactUnknown");
    return t("contactKeyMismatch");
  }
  if (err instanceof ConnectError) return errorText(t, reasonOf(err));
  return t("errorGeneric", { reason: err instanceof Error ? err.message : String(err) });
}

function cameraText(t: Translate, err: unknown): string {
  if (!canScanQr() || isLimited("calls")) return t("cameraInsecure");
  const name = err instanceof DOMException ? err.name : "";
  if (name === "NotAllowedError" || name === "SecurityError") return t("cameraDenied");
  if (name === "NotFoundError" || name === "OverconstrainedError") return t("cameraMissing");
  return t("cameraFailed");
}

const isOurLink = (text: string) => parseContactLink(text, window.location.origin).ok;

export function AddContact({
  chat,
  initialLink,
  onAdded,
  onClose,
}: {
  chat: Chat;
  /** A link the app was opened with: checked at once. */
  initialLink?: string | undefined;
  onAdded: (conversationId: string, accountId: string) => void;
  onClose: () => void;
}) {
  const { t } = useI18n();
  const [camera, setCamera] = useState<"on" | "off">(() => (canScanQr() && !initialLink ? "on" : "off"));
  const [cameraProblem, setCameraProblem] = useState<string | null>(() => (canScanQr() ? null : t("cameraInsecure")));
  const [pasted, setPasted] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const started = useRef(false);

  const take = useCallback(
    async (text: string) => {
      setError(null);
      const parsed = parseContactLink(text, window.location.origin);
      if (!parsed.ok) {
        setError(t(PROBLEMS[parsed.problem]));
        return;
      }
      setBusy(true);
      try {
        const conversationId = await chat.addContact(parsed.link);
        onAdded(conversationId, parsed.link.accountId);
      } catch (err) {
        setError(refusalText(t, err));
        // Scanned: a refused code stops the camera, so the message stays readable.
        setCamera("off");
      } finally {
        setBusy(false);
      }
    },
    [chat, onAdded, t],
  );

  useEffect(() => {
    if (!initialLink || started.current) return;
    started.current = true;
    void take(initialLink);
  }, [initialLink, take]);

  const onScanned = useCallback((text: string) => void take(text), [take]);
  const onRejected = useCallback(
    (text: string) => {
      const parsed = parseContactLink(text, window.location.origin);
      setError(t(parsed.ok ? "contactNotOurs" : PROBLEMS[parsed.problem]));
    },
    [t],
  );
  const onCameraError = useCallback(
    (err: unknown) => {
      setCameraProblem(cameraText(t, err));
      setCamera("off");
    },
    [t],
  );

  function submit(e: FormEvent) {
    e.preventDefault();
    void take(pasted);
  }

  return (
    <Dialog title={t("scanContactTitle")} onClose={onClose}>
      <p className="muted">{t("scanContactHowTo")}</p>
      {camera === "on" ? (
        <>
          <QrScanner label={t("camera")} accept={isOurLink} onText={onScanned} onRejected={onRejected} onError={onCameraError} />
          <button type="button" onClick={() => setCamera("off")}>
            {t("stopScan")}
          </button>
        </>
      ) : (
        canScanQr() &&
        !cameraProblem && (
          <div className="row">
            <button type="button" onClick={() => setCamera("on")}>
              {t("scanWithCamera")}
            </button>
          </div>
        )
      )}
      {cameraProblem && (
        <p role="status" className="notice">
          {cameraProblem}
        </p>
      )}
      {busy && <p role="status">{t("working")}</p>}
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <form className="form" onSubmit={submit}>
        <label>
          {t("pasteContactLink")}
          <input
            name="contactLink"
            type="url"
            autoComplete="off"
            spellCheck={false}
            required
            value={pasted}
            onChange={(e) => setPasted(e.target.value)}
          />
        </label>
        <div className="row">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {t("openContactLink")}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** After a contact was added by code: the offer to compare the emoji (VerifyDialog does it). */
export function ContactAdded({ chat, accountId, name, onClose }: { chat: Chat; accountId: string; name: string; onClose: () => void }) {
  const { t } = useI18n();
  const verified = chat.get().verified[accountId] === true;
  return (
    <Dialog title={t("contactAddedTitle", { name })} onClose={onClose}>
      <p>{t("contactKeyMatches", { name })}</p>
      {verified ? (
        <p role="status" className="verified-result">
          {t("contactAlreadyVerified", { name })}
        </p>
      ) : (
        <p className="muted">{t("contactOfferVerify", { name })}</p>
      )}
      <div className="row">
        <button type="button" onClick={onClose}>
          {verified ? t("close") : t("later")}
        </button>
        {!verified && (
          <button
            type="button"
            className="primary"
            onClick={() => {
              onClose();
              chat.verify(accountId);
            }}
          >
            {t("verifyNow")}
          </button>
        )}
      </div>
    </Dialog>
  );
}
