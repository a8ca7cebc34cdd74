// CopyId.tsx — shows an id with a button that copies it (CopyButton: works on plain HTTP too).
import { useRef } from "react";
import { CopyButton } from "./CopyButton";

export function CopyId({ label, value }: { label: string; value: string }) {
  const shown = useRef<HTMLOutputElement>(null);
  return (
    <div className="copy-id">
      <span>{label}</span>
      <output ref={shown} aria-label={label} className="mono">
        {value}
      </output>
      <CopyButton text={value} select={shown} />
    </div>
  );
}
