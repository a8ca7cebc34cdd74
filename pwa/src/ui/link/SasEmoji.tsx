// SasEmoji.tsx — the 7 emoji of the pairing SAS with their names in the UI language; both
// devices show them and the person checks they are the same, in the same order.
import { sasEmojiChar } from "../../crypto/pairing";
import { useI18n } from "../../i18n/i18n";
import { sasEmojiNames } from "../../i18n/messages";

export function SasEmoji({ indices }: { indices: number[] }) {
  const { t, lang } = useI18n();
  const names = sasEmojiNames[lang];
  return (
    <ol className="sas-emoji" aria-label={t("sasEmoji")}>
      {indices.map((index, n) => (
        <li key={n} data-sas-index={index}>
          <span className="sas-char" aria-hidden="true">
            {sasEmojiChar(index)}
          </span>
          <span className="sas-name">{names[index & 63]}</span>
        </li>
      ))}
    </ol>
  );
}
