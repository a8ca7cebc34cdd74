// CopyButton.tsx — every Copy button: copies with copyText (clipboard API, else the execCommand
// fallback for plain HTTP), says "Copied"; when nothing could copy, selects the visible text
// (`select`) and says how to copy it by hand, instead of doing nothing.
import { useState, type RefObject } from "react";
import { useI18n } from "../i18n/i18n";
import { copyText, selectContents } from "./copyText";

export function CopyButton({ text, select }: { text: string; select: RefObject<HTMLElement | null> }) {
  const { t } = useI18n();
  const [state, setState] = useState<"idle" | "copied" | "manual">("idle");
  return (
    <>
      <button
        type="button"
        onClick={() => {
          void copyText(text).then((r) => {
            if (r === "manual") selectContents(select.current);
            setState(r);
          });
        }}
      >
        {state === "copied" ? t("copied") : t("copy")}
      </button>
      {state === "manual" && (
        <span role="status" className="copy-manual">
          {t("copyManual")}
        </span>
      )}
    </>
  );
}
