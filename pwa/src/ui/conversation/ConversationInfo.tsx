// ConversationInfo.tsx — about one conversation: its kind with the sentence on what the server
// can read (a cloud chat offers "Start an end-to-end encrypted chat with the same people": a
// conversation never changes kind), and its disappearing-message timer (off, 1 hour, 1 day,
// 1 week, or custom), which any member of a direct conversation and a group's owners and admins
// may set (others see it, disabled).
import { useState, type FormEvent } from "react";
import { reasonOf } from "../../errors";
import { ConversationKind, MemberRole, type Conversation } from "../../gen/kitsulan/v1/conversation_pb";
import { useI18n } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";
import type { Chat } from "../../state/chat";
import { Dialog } from "../Dialog";
import { durationText, MAX_TIMER_SECONDS, MIN_TIMER_SECONDS, TIMER_CHOICES } from "../duration";
import { KindMark, useKindTexts } from "../KindMark";

/** Whether `me` may set the timer: any member of a direct conversation, a group's owners and admins. */
export function canSetTimer(c: Conversation, me: string): boolean {
  const role = c.members.find((m) => m.accountId === me)?.role;
  if (role === undefined) return false;
  return c.kind !== ConversationKind.GROUP || role === MemberRole.OWNER || role === MemberRole.ADMIN;
}

const UNITS = { seconds: 1, minutes: 60, hours: 3_600, days: 86_400 } as const;
type Unit = keyof typeof UNITS;

export function ConversationInfo({ chat, conversation, onClose }: { chat: Chat; conversation: Conversation; onClose: () => void }) {
  const { t, lang } = useI18n();
  const kind = useKindTexts(conversation.mode);
  const me = chat.get().me.accountId;
  const allowed = canSetTimer(conversation, me);
  const current = conversation.messageTimerSeconds;
  const preset = current === 0 || (TIMER_CHOICES as readonly number[]).includes(current);
  const [choice, setChoice] = useState<number | "custom">(preset ? current : "custom");
  const [amount, setAmount] = useState(preset ? "1" : String(Math.max(1, Math.round(current / 3_600))));
  const [unit, setUnit] = useState<Unit>("hours");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const seconds = choice === "custom" ? Math.round(Number(amount) * UNITS[unit]) : choice;
  const valid = seconds === 0 || (Number.isFinite(seconds) && seconds >= MIN_TIMER_SECONDS && seconds <= MAX_TIMER_SECONDS);

  async function save(e: FormEvent) {
    e.preventDefault();
    if (!valid) {
      setError(errorText(t, "TIMER_INVALID"));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await chat.conversations.setTimer(conversation.id, seconds);
      onClose();
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  async function encryptedCopy() {
    setBusy(true);
    setError(null);
    try {
      const id = await chat.conversations.startEncryptedCopy(conversation.id);
      chat.setActive(id);
      onClose();
    } catch (err) {
      setError(errorText(t, reasonOf(err)));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title={t("conversationInfo")} onClose={onClose} focusInput={false}>
      <p>
        <KindMark mode={conversation.mode} />
      </p>
      <p className="muted">{kind.note}</p>
      {kind.cloud && (
        <div className="form">
          <button type="button" onClick={() => void encryptedCopy()} disabled={busy}>
            {t("startEncryptedCopy")}
          </button>
          <p className="muted">{t("startEncryptedCopyNote")}</p>
        </div>
      )}
      <form className="form" onSubmit={save}>
        <fieldset className="timer-choices" disabled={!allowed || busy}>
          <legend>{t("disappearing")}</legend>
          <p className="muted">{allowed ? t("disappearingNote") : t("disappearingNotAllowed")}</p>
          {[0, ...TIMER_CHOICES].map((s) => (
            <label key={s} className="radio">
              <input type="radio" name="timer" checked={choice === s} onChange={() => setChoice(s)} />
              {s === 0 ? t("timerOff") : durationText(lang, s)}
            </label>
          ))}
          <label className="radio">
            <input type="radio" name="timer" checked={choice === "custom"} onChange={() => setChoice("custom")} />
            {t("timerCustom")}
          </label>
          {choice === "custom" && (
            <div className="timer-custom">
              <label>
                {t("timerCustomValue")}
                <input type="number" min={1} inputMode="numeric" value={amount} onChange={(e) => setAmount(e.target.value)} />
              </label>
              <label>
                {t("timerUnit")}
                <select value={unit} onChange={(e) => setUnit(e.target.value as Unit)}>
                  <option value="seconds">{t("unitSeconds")}</option>
                  <option value="minutes">{t("unitMinutes")}</option>
                  <option value="hours">{t("unitHours")}</option>
                  <option value="days">{t("unitDays")}</option>
                </select>
              </label>
            </div>
          )}
        </fieldset>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <div className="row">
          <button type="button" onClick={onClose}>
            {t("cancel")}
          </button>
          {allowed && (
            <button type="submit" className="primary" disabled={busy || seconds === current}>
              {t("save")}
            </button>
          )}
        </div>
      </form>
    </Dialog>
  );
}
