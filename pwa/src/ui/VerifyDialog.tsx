// VerifyDialog.tsx — verifying a contact with SAS emoji (crypto/verification.ts): the incoming
// request (accept or decline), waiting for the other side, the 7 emoji with their names to
// compare ("They match" / "They differ"), and the result. Escape or "Cancel" cancels it.
import { useI18n } from "../i18n/i18n";
import type { MessageKey } from "../i18n/messages";
import { useChat, type Chat } from "../state/chat";
import { Dialog } from "./Dialog";
import { SasEmoji } from "./link/SasEmoji";
import { personName } from "./names";

const REASONS: Record<string, MessageKey> = {
  user: "verifyCancelledUser",
  timeout: "verifyCancelledTimeout",
  mismatch: "verifyCancelledMismatch",
  mac_mismatch: "verifyCancelledKeys",
  key_mismatch: "verifyCancelledKeys",
  accepted_elsewhere: "verifyCancelledElsewhere",
};

export function VerifyDialog({ chat }: { chat: Chat }) {
  const { t } = useI18n();
  const view = useChat(chat, (s) => s.verification);
  useChat(chat, (s) => s.profiles); // re-render when names arrive
  if (!view) return null;
  const name = personName(chat, t, view.otherAccountId);
  const verifier = chat.verifier;
  const over = view.state === "done" || view.state === "cancelled";
  const onClose = () => verifier.close();

  let body;
  if (view.state === "requested" && !view.initiator) {
    body = (
      <>
        <p>{t("verifyIncoming", { name })}</p>
        <p className="muted">{t("verifyHowTo")}</p>
        <div className="row">
          <button type="button" className="primary" onClick={() => void verifier.accept()}>
            {t("verifyAccept")}
          </button>
          <button type="button" onClick={() => void verifier.cancel()}>
            {t("verifyDecline")}
          </button>
        </div>
      </>
    );
  } else if (view.state === "requested" || view.state === "ready") {
    body = (
      <p role="status">{view.state === "requested" ? t("verifyWaitingAccept", { name }) : t("verifyPreparing")}</p>
    );
  } else if ((view.state === "compare" || view.state === "confirmed") && view.emoji) {
    body = (
      <>
        <p>{t("verifyCompare", { name })}</p>
        <SasEmoji indices={view.emoji} />
        {view.state === "compare" ? (
          <div className="row">
            <button type="button" className="primary" onClick={() => void verifier.confirm()}>
              {t("emojiMatch")}
            </button>
            <button type="button" className="danger" onClick={() => void verifier.mismatch()}>
              {t("emojiDiffer")}
            </button>
          </div>
        ) : (
          <p role="status">{t("verifyWaitingConfirm", { name })}</p>
        )}
      </>
    );
  } else if (view.state === "done") {
    body = (
      <p role="status" className="verified-result">
        {t("verifyDone", { name })}
      </p>
    );
  } else {
    const reason = view.cancelReason ? REASONS[view.cancelReason] : undefined;
    body = (
      <p role="alert" className="error">
        {view.error ? t("verifyFailed") : t(reason ?? "verifyCancelledOther", { name })}
      </p>
    );
  }

  return (
    <Dialog title={t("verifyTitle", { name })} onClose={onClose}>
      {body}
      <div className="row">
        <button type="button" onClick={onClose}>
          {over ? t("close") : t("cancel")}
        </button>
      </div>
    </Dialog>
  );
}
