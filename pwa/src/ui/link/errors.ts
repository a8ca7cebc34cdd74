// errors.ts — what to say when a linking step fails.
import { ConnectError } from "@connectrpc/connect";
import { PairingInputError, PairingVerificationError } from "../../crypto/pairing";
import { reasonOf } from "../../errors";
import type { Translate } from "../../i18n/i18n";
import { errorText } from "../../i18n/messages";

export function linkErrorText(t: Translate, err: unknown): string {
  if (err instanceof PairingInputError) {
    if (err.reason === "QR_OTHER_SERVER") return t("qrOtherServer");
    return errorText(t, err.reason);
  }
  if (err instanceof PairingVerificationError) return t("pairingVerifyFailed");
  if (err instanceof ConnectError) return errorText(t, reasonOf(err));
  return t("errorGeneric", { reason: err instanceof Error ? err.message : String(err) });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How often both sides ask the server for the other side's messages. */
export const POLL_MS = 1000;
