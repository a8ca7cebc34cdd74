// accountFacts.ts — what the account's device list and backup say, fetched once and reused for a
// while by everything that explains a missing key: the undecryptable bubbles (UndecryptableNote)
// and the banner on a device without the account key (recovery/NeedsKeyBanner).
import { deviceClient } from "../../api";
import { currentBackup } from "../../crypto/backup";

/** What the account's device list and backup say (fetched once for every waiting bubble). */
export interface AccountFacts {
  /** When this device was signed in (null: unknown). */
  thisDeviceSince: number | null;
  /** Our devices' names by id. */
  names: Map<string, string>;
  /** How many other devices we have (null: unknown). */
  others: number | null;
  /** Whether the account has a key backup (null: unknown). */
  backup: boolean | null;
}

/** How long the facts are reused. */
const FACTS_MS = 30_000;
let facts: { at: number; value: Promise<AccountFacts> } | null = null;

export function accountFacts(): Promise<AccountFacts> {
  if (facts && Date.now() - facts.at < FACTS_MS) return facts.value;
  const value = Promise.all([
    deviceClient.listDevices({}).then(
      (r) => r.devices,
      () => null,
    ),
    currentBackup().then(
      (b) => b !== null,
      () => null,
    ),
  ]).then(([devices, backup]) => {
    const here = devices?.find((d) => d.current);
    return {
      thisDeviceSince: here ? Number(here.createdAtMs) : null,
      names: new Map((devices ?? []).map((d) => [d.id, d.name])),
      others: devices ? devices.filter((d) => !d.current).length : null,
      backup,
    };
  });
  facts = { at: Date.now(), value };
  return value;
}

