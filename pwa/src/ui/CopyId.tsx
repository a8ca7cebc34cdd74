// CopyId.tsx — shows an id with a button that copies it.
import { useState } from "react";
import { useI18n } from "../i18n/i18n";

export function CopyId({ label, value }: { label: string; value: string }) {
  const { t } = useI18n();
  const [copied, setCopied] = useState(false);
  return (
    <div className="copy-id">
      <span>{label}</span>
      <output aria-label={label} className="mono">
        {value}
      </output>
      <button
        type="button"
        onClick={() => {
          void navigator.clipboard?.writeText(value).then(() => setCopied(true), () => undefined);
        }}
      >
        {copied ? t("copied") : t("copy")}
      </button>
    </div>
  );
}
