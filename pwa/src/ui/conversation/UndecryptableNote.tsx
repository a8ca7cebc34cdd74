// UndecryptableNote.tsx — the body of a message bubble that did not decrypt: who sent it (unless
// the bubble's group header already names them; and from which of our devices, when it is ours), why (crypto/undecryptable.ts maps the
// machine's reason), and what brings the key: the sender sharing it, our other devices answering
// the key request, or a restore from the recovery key (a button to Settings → Recovery key).
// When the key arrives the message decrypts in place (messages.retryUndecrypted, or the engine
// swap after a restore); this only explains the wait.
import { useEffect, useState } from "react";
import { categoryOf, explainWaiting, refusalLine } from "../../crypto/undecryptable";
import { useI18n } from "../../i18n/i18n";
import type { Chat, Item } from "../../state/chat";
import { personName } from "../names";
import { accountFacts, type AccountFacts } from "./accountFacts";
import { openRecoverySettings } from "../recovery/openRecovery";

/** How often a waiting bubble looks at the key request again. */
const POLL_MS = 2_000;

export function UndecryptableNote({
  chat,
  item,
  senderShown = false,
}: {
  chat: Chat;
  item: Item;
  /** The bubble names its sender above (a group): "From …" would only repeat it. */
  senderShown?: boolean;
}) {
  const { t } = useI18n();
  const [known, setKnown] = useState<AccountFacts | null>(null);
  const [, setPoll] = useState(0);
  const m = item.message;
  const reason = item.content.kind === "undecryptable" ? item.content.reason : "";
  const sessionId = item.content.kind === "undecryptable" ? item.content.sessionId : "";
  const waiting = categoryOf(reason) === "waiting";

  useEffect(() => {
    if (!waiting) return;
    let live = true;
    void accountFacts().then((f) => {
      if (live) setKnown(f);
    });
    // The key request's state lives in the engine: look again now and then.
    const timer = setInterval(() => setPoll((n) => n + 1), POLL_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [waiting]);

  const me = chat.get().me.accountId;
  const fromOwn = m.senderAccountId === me;
  const sender = personName(chat, t, m.senderAccountId);
  const device = fromOwn ? (known?.names.get(m.senderDeviceId) ?? null) : null;
  const vars = { sender, device: device ?? "" };

  let lines;
  let restore = false;
  const category = categoryOf(reason);
  if (category === "waiting") {
    const ready = chat.engine.state === "ready";
    const request = ready && sessionId ? chat.engine.keyRequestOf(m.senderDeviceId, sessionId) : null;
    const since = known?.thisDeviceSince ?? null;
    const why = explainWaiting({
      deviceReady: ready,
      fromOwnAccount: fromOwn,
      senderDeviceName: device,
      beforeThisDevice: since === null ? null : Number(m.sentAtMs) < since,
      otherDevices: known?.others ?? null,
      asked: request === "asked",
      backup: known?.backup ?? null,
    });
    lines = why.lines;
    restore = why.restore;
  } else {
    lines = [refusalLine(category)];
  }

  const whyId = `utd-${m.id}`;
  return (
    <div className="utd" data-utd={category}>
      <p className="muted">{waiting ? t("waitingForKey") : t("undecryptable")}</p>
      {device ? (
        <p className="utd-from">{t("utdFromDevice", vars)}</p>
      ) : (
        !senderShown && <p className="utd-from">{t("utdFrom", vars)}</p>
      )}
      <div id={whyId} className="utd-why">
        {lines.map((key) => (
          <p key={key}>{t(key, vars)}</p>
        ))}
      </div>
      {restore && (
        <button type="button" className="utd-restore" aria-describedby={whyId} onClick={openRecoverySettings}>
          {t("utdRestoreButton")}
        </button>
      )}
    </div>
  );
}
