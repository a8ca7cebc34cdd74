// Reactions.tsx — the reactions of one message (state/reactions.ts): chips under its bubble
// ("🦊 2", ours pressed; who reacted in the title and the label; a click adds or takes back ours,
// or retries ours that is not sent), and the React picker of the message menu (quick emoji and a
// field for any emoji).
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { reactionProblem } from "../../crypto/content";
import { useI18n } from "../../i18n/i18n";
import { QUICK_REACTIONS, type ReactionChip } from "../../state/reactions";

export function ReactionChips({
  chips,
  mine,
  nameOf,
  disabled,
  onToggle,
}: {
  chips: ReactionChip[];
  /** Under our own message (the row aligns with its bubble). */
  mine: boolean;
  nameOf: (accountId: string) => string;
  /** The history of a group we were removed from: shown, not changed. */
  disabled: boolean;
  onToggle: (chip: ReactionChip) => void;
}) {
  const { t } = useI18n();
  return (
    <div className={mine ? "reactions mine" : "reactions"} role="group" aria-label={t("reactions")}>
      {chips.map((chip) => {
        const names = chip.accounts.map(nameOf).join(", ");
        const label = t("reactionChip", { emoji: chip.emoji, n: (chip.count ?? chip.accounts.length), names });
        const failed = chip.local === "failed";
        const cls = ["reaction", chip.mine ? "own" : "", chip.local ?? ""].filter(Boolean).join(" ");
        return (
          <button
            key={chip.emoji}
            type="button"
            className={cls}
            aria-pressed={chip.mine}
            aria-label={failed ? `${label}. ${t("reactionNotSent")}` : label}
            title={failed ? t("reactionNotSent") : names}
            disabled={disabled && !failed}
            onClick={() => onToggle(chip)}
          >
            <span className="reaction-emoji" aria-hidden="true">
              {chip.emoji}
            </span>
            <span className="reaction-count" aria-hidden="true">
              {failed ? "!" : (chip.count ?? chip.accounts.length)}
            </span>
          </button>
        );
      })}
    </div>
  );
}

/** The React picker: the quick emoji, and any one emoji typed or pasted. `onPick` returns an
 * error to show (the limit), or null when the reaction went into the outbox. */
export function ReactionPicker({ onPick, onClose }: { onPick: (emoji: string) => string | null; onClose: () => void }) {
  const { t } = useI18n();
  const [custom, setCustom] = useState("");
  const [error, setError] = useState<string | null>(null);
  const first = useRef<HTMLButtonElement>(null);
  const box = useRef<HTMLDivElement>(null);
  // The whole bubble with its picker in view (it opens under the last message too), the first
  // emoji focused.
  useEffect(() => {
    const around = box.current?.closest("article") ?? box.current;
    around?.scrollIntoView?.({ block: "nearest" });
    first.current?.focus({ preventScroll: true });
  }, []);
  const pick = (emoji: string) => {
    const problem = onPick(emoji);
    if (problem) setError(problem);
    else onClose();
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const emoji = custom.trim();
    if (reactionProblem(emoji)) {
      setError(t("reactionInvalid"));
      return;
    }
    pick(emoji);
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      onClose();
    }
  };
  return (
    <div ref={box} className="reaction-picker" role="group" aria-label={t("react")} onKeyDown={onKeyDown}>
      <div className="reaction-quick">
        {QUICK_REACTIONS.map((emoji, i) => (
          <button
            key={emoji}
            ref={i === 0 ? first : undefined}
            type="button"
            className="reaction-choice"
            aria-label={t("reactWith", { emoji })}
            title={t("reactWith", { emoji })}
            onClick={() => pick(emoji)}
          >
            {emoji}
          </button>
        ))}
      </div>
      <form className="reaction-custom" onSubmit={submit}>
        <input
          aria-label={t("anyEmoji")}
          placeholder={t("anyEmoji")}
          value={custom}
          maxLength={32}
          autoComplete="off"
          enterKeyHint="done"
          aria-invalid={error !== null}
          onChange={(e) => {
            setCustom(e.target.value);
            setError(null);
          }}
        />
        <button type="submit" disabled={custom.trim() === ""}>
          {t("addReaction")}
        </button>
      </form>
      {error && (
        <p className="reaction-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
