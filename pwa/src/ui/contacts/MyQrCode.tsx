// MyQrCode.tsx — "My QR code": the link that names this person on this server (lib/contactLink:
// the origin, the account id and the account key), as a QR code to show someone next to you and
// as text to copy into another app. Whoever scans or opens it gets the direct conversation with
// us and is offered the emoji check (AddContact.tsx).
import { useMemo, useRef } from "react";
import { useI18n } from "../../i18n/i18n";
import { contactLink } from "../../lib/contactLink";
import { useChat, type Chat } from "../../state/chat";
import { CopyButton } from "../CopyButton";
import { Dialog } from "../Dialog";
import { QrCode } from "../link/QrCode";

export function MyQrCode({ chat, onClose }: { chat: Chat; onClose: () => void }) {
  const { t } = useI18n();
  const me = useChat(chat, (s) => s.me);
  const text = useRef<HTMLElement>(null);
  const link = useMemo(() => {
    try {
      return contactLink(window.location.origin, me.accountId, chat.engine.ownIdentity().accountKey);
    } catch {
      // A device that does not hold the account key (not set up yet) has nothing to vouch for.
      return null;
    }
  }, [chat, me.accountId]);
  return (
    <Dialog title={t("myQrTitle")} onClose={onClose}>
      {link ? (
        <div className="my-qr">
          <p className="muted">{t("myQrHowTo")}</p>
          <QrCode text={link} label={t("myQrLabel", { name: me.displayName || me.username })} size={280} />
          <p>
            <strong>{me.displayName}</strong> <span className="muted">@{me.username}</span>
          </p>
          <code ref={text} className="contact-link" data-testid="my-contact-link">
            {link}
          </code>
          <div className="row">
            <CopyButton text={link} select={text} />
          </div>
        </div>
      ) : (
        <p role="alert" className="error">
          {t("myQrNoKey")}
        </p>
      )}
      <div className="row">
        <button type="button" onClick={onClose}>
          {t("close")}
        </button>
      </div>
    </Dialog>
  );
}
