// CallButtons.tsx — audio and video call buttons in a conversation's header, or "Join" buttons
// while a call is going on there that this device is not in. In an insecure context (plain HTTP
// by a LAN address: no camera or microphone) they are off and say why (title, aria-description).
import { useI18n } from "../../i18n/i18n";
import type { Calls } from "../../calls/calls";
import { isLimited } from "../../lib/secureContext";
import { useChat, type Chat } from "../../state/chat";
import { PhoneIcon, VideoIcon } from "./icons";
import { useCallsOr, useLoadedCalls } from "./useCalls";

export function CallButtons({ chat, conversationId, disabled }: { chat: Chat; conversationId: string; disabled: boolean }) {
  const { t } = useI18n();
  // The call code loads on the first press (or the first call event); until then, no call.
  const loaded = useLoadedCalls(chat);
  const use = (act: (c: Calls) => Promise<void>) => void chat.loadCalls().then(act);
  const ongoing = useCallsOr(loaded, (s) => s.ongoing[conversationId], undefined);
  const phase = useCallsOr(loaded, (s) => s.call.phase, "idle");
  const inThisCall = useCallsOr(loaded, (s) => s.call.conversationId === conversationId && s.call.phase !== "idle", false);
  const online = useChat(chat, (s) => s.status === "online");
  const busy = phase === "outgoing" || phase === "incoming" || phase === "active";
  // The browser gives this page no camera or microphone: a call could not even start.
  const why = isLimited("calls") ? t("insecureReasonCalls") : undefined;
  const off = disabled || !online || busy || why !== undefined;
  /** The tooltip: what the button does, and why it is off when the page cannot call. */
  const tip = (label: string) => (why ? `${label} — ${why}` : label);

  if (ongoing && !inThisCall) {
    return (
      <div className="call-buttons" role="group" aria-label={t("callOngoing")}>
        <button
          type="button"
          className="join"
          title={why && tip(t("joinCall"))}
          aria-description={why}
          disabled={off}
          onClick={() => use((c) => c.joinOngoing(conversationId, false))}
        >
          <PhoneIcon /> <span>{t("joinCall")}</span>
        </button>
        <button
          type="button"
          className="icon"
          aria-label={t("joinCallVideo")}
          title={tip(t("joinCallVideo"))}
          aria-description={why}
          disabled={off}
          onClick={() => use((c) => c.joinOngoing(conversationId, true))}
        >
          <VideoIcon />
        </button>
      </div>
    );
  }
  return (
    <div className="call-buttons">
      <button
        type="button"
        className="icon"
        aria-label={t("audioCall")}
        title={tip(t("audioCall"))}
        aria-description={why}
        disabled={off}
        onClick={() => use((c) => c.start(conversationId, false))}
      >
        <PhoneIcon />
      </button>
      <button
        type="button"
        className="icon"
        aria-label={t("videoCall")}
        title={tip(t("videoCall"))}
        aria-description={why}
        disabled={off}
        onClick={() => use((c) => c.start(conversationId, true))}
      >
        <VideoIcon />
      </button>
    </div>
  );
}
