// NeedsKeyBanner.tsx — the warning above a conversation on a device without the account key: it
// cannot read or send encrypted messages. With a backup on the account, the way out is here on
// this device (Settings → Recovery key restores in place: the button opens it, as an
// undecryptable message's Restore button does); without one, linking from a device that has the
// key (sign out, then "Link to an existing device" on the sign-in screen).
import { useEffect, useState } from "react";
import { useI18n } from "../../i18n/i18n";
import { accountFacts } from "../conversation/accountFacts";
import { openRecoverySettings } from "./openRecovery";

export function NeedsKeyBanner() {
  const { t } = useI18n();
  /** Whether the account has a backup (null: not known yet, or the server did not say). */
  const [backup, setBackup] = useState<boolean | null>(null);

  useEffect(() => {
    let live = true;
    void accountFacts().then((f) => {
      if (live) setBackup(f.backup);
    });
    return () => {
      live = false;
    };
  }, []);

  return (
    <div className="warning needs-key">
      <p role="alert">
        {t("needsLink")}{" "}
        {backup === true ? t("needsLinkRestore") : backup === false ? t("needsLinkNoBackup") : null}
      </p>
      {backup === true && (
        <div className="row row-start">
          <button type="button" className="primary" onClick={openRecoverySettings}>
            {t("utdRestoreButton")}
          </button>
        </div>
      )}
    </div>
  );
}
