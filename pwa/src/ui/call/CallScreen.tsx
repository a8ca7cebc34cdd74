// CallScreen.tsx — the call layer over the app: the outgoing call (calling / ringing, cancel),
// the incoming call (who, answer with or without video, decline; the ringtone plays meanwhile),
// the call itself (InCall.tsx) and, for a few seconds, why it ended. It is one modal <dialog>
// (the top layer): above any other dialog that was open, and the app behind it is inert, so the
// keyboard stays in the call. On a page that cannot call (an insecure context: no camera or
// microphone) an incoming call still rings, with the answer buttons off and the reason shown.
import { useEffect, useRef, type ReactNode } from "react";
import type { Calls, EndReason } from "../../calls/calls";
import { ConversationKind } from "../../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../../i18n/i18n";
import type { MessageKey } from "../../i18n/messages";
import { isLimited } from "../../lib/secureContext";
import { useChat, type Chat } from "../../state/chat";
import { useModal } from "../Dialog";
import { conversationTitle, personName } from "../names";
import { Avatar } from "../Avatar";
import { HangUpIcon, PhoneIcon, VideoIcon } from "./icons";
import { InCall } from "./InCall";
import { MediaView } from "./MediaView";
import { useCalls } from "./useCalls";

const ENDED_TEXT: Record<EndReason, MessageKey> = {
  missed: "callEndedMissed",
  cancelled: "callEndedCancelled",
  unanswered: "callEndedUnanswered",
  hung_up: "callEndedHungUp",
  declined: "callEndedDeclined",
  busy: "callEndedBusy",
  in_progress: "callEndedInProgress",
  full: "callEndedFull",
  media: "callEndedMedia",
  offline: "callEndedOffline",
};

function Layer({
  role,
  labelledBy,
  describedBy,
  label,
  className = "",
  children,
}: {
  role?: "alertdialog";
  labelledBy?: string;
  describedBy?: string;
  label?: string;
  className?: string;
  children: ReactNode;
}) {
  const ref = useModal();
  return (
    <dialog
      ref={ref}
      className={`call-screen ${className}`}
      role={role}
      aria-labelledby={labelledBy}
      aria-describedby={describedBy}
      aria-label={label}
      // Escape does not close a call: it has its own buttons.
      onCancel={(e) => e.preventDefault()}
    >
      {children}
    </dialog>
  );
}

export function CallScreen({ chat, calls }: { chat: Chat; calls: Calls }) {
  const { t } = useI18n();
  const call = useCalls(calls, (s) => s.call);
  const conversation = useChat(chat, (s) => s.conversations.find((c) => c.id === call.conversationId));
  useChat(chat, (s) => s.profiles);
  const focusRef = useRef<HTMLButtonElement>(null);

  // The main action takes the focus when a screen appears (keyboard and screen reader users).
  useEffect(() => {
    focusRef.current?.focus();
  }, [call.phase, call.callId]);

  if (call.phase === "idle") return null;
  const isGroup = conversation?.kind === ConversationKind.GROUP;
  const title = conversation ? conversationTitle(chat, t, conversation) : "";
  const caller = personName(chat, t, call.callerAccountId);

  if (call.phase === "active") {
    return (
      <Layer label={t("callWith", { name: title })} className="in-call">
        <InCall chat={chat} calls={calls} title={title} />
      </Layer>
    );
  }

  if (call.phase === "incoming") {
    const heading = t(call.video ? "incomingVideoCall" : "incomingAudioCall");
    const cannot = isLimited("calls");
    return (
      <Layer role="alertdialog" labelledBy="call-heading" describedBy={cannot ? "call-who call-why" : "call-who"} className="call-ring">
        <div className="call-center">
          <Avatar name={caller} />
          <h2 id="call-heading">{heading}</h2>
          <p id="call-who" className="call-who">
            {isGroup ? t("callerInGroup", { name: caller, group: title }) : caller}
          </p>
          {cannot && (
            <p id="call-why" className="insecure-why">
              {t("insecureReasonCalls")}
            </p>
          )}
        </div>
        <div className="call-controls">
          {call.video && (
            <button
              type="button"
              className="call-accept"
              ref={cannot ? undefined : focusRef}
              disabled={cannot}
              aria-describedby={cannot ? "call-why" : undefined}
              onClick={() => void calls.accept(true)}
            >
              <VideoIcon /> <span>{t("answerVideo")}</span>
            </button>
          )}
          <button
            type="button"
            className="call-accept"
            ref={call.video || cannot ? undefined : focusRef}
            disabled={cannot}
            aria-describedby={cannot ? "call-why" : undefined}
            onClick={() => void calls.accept(false)}
          >
            <PhoneIcon /> <span>{call.video ? t("answerAudio") : t("answer")}</span>
          </button>
          <button type="button" className="call-hangup" ref={cannot ? focusRef : undefined} onClick={() => calls.decline()}>
            <HangUpIcon /> <span>{t("decline")}</span>
          </button>
        </div>
      </Layer>
    );
  }

  if (call.phase === "outgoing") {
    return (
      <Layer labelledBy="call-heading" describedBy="call-status">
        {call.local && call.local.getVideoTracks().length > 0 && (
          <div className="call-preview">
            <MediaView stream={call.local} muted mirrored label={t("yourCamera")} />
          </div>
        )}
        <div className="call-center">
          <Avatar name={title} />
          <h2 id="call-heading">{title}</h2>
          <p id="call-status" className="call-who" role="status">
            {call.ringing ? t("callRinging") : t("callCalling")}
          </p>
        </div>
        <div className="call-controls">
          <button type="button" className="call-hangup" ref={focusRef} onClick={() => calls.cancel()}>
            <HangUpIcon /> <span>{t("cancelCall")}</span>
          </button>
        </div>
      </Layer>
    );
  }

  // Ended.
  return (
    <Layer labelledBy="call-heading">
      <div className="call-center">
        <Avatar name={title} />
        <h2 id="call-heading">{t("callEnded")}</h2>
        <p className="call-who" role="status">
          {call.endReason ? t(ENDED_TEXT[call.endReason]) : ""}
        </p>
      </div>
      <div className="call-controls">
        <button type="button" ref={focusRef} onClick={() => calls.dismiss()}>
          {t("close")}
        </button>
      </div>
    </Layer>
  );
}
