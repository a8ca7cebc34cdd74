// errors.ts — what to say when a backup step fails: a restore's own failures (wrong key or
// passphrase, no backup, a damaged one), the server's reasons, or anything else as it is.
import { ConnectError } from "@connectrpc/connect";
import { RestoreError } from "../../crypto/backup";
import { reasonOf } from "../../errors";
import type { Translate } from "../../i18n/i18n";
import { errorText, type MessageKey } from "../../i18n/messages";

const restoreTexts: Record<RestoreError["failure"], MessageKey> = {
  "no-backup": "restoreNoBackup",
  "not-a-key": "restoreNotAKey",
  "wrong-key": "restoreWrongKey",
  "wrong-passphrase": "restoreWrongPassphrase",
  damaged: "restoreDamaged",
};

export function backupErrorText(t: Translate, err: unknown): string {
  if (err instanceof RestoreError) return t(restoreTexts[err.failure]);
  if (err instanceof ConnectError) return errorText(t, reasonOf(err));
  return t("errorGeneric", { reason: err instanceof Error ? err.message : String(err) });
}
