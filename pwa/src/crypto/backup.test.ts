// backup.test.ts — how a restore reads what the person typed (backup.ts keyFrom): a recovery key
// first, then — only when the backup has a passphrase — the same text as a passphrase; each
// failure its own clear error. The WASM BackupKey is faked here (its formats have their own
// native tests and vectors); the recovery.spec.ts Playwright test runs the real one. Also: a
// linked device keeps the backup key it received only if it opens the account's backup
// (adoptBackupKey; devices.spec.ts runs it for real).
import { beforeEach, describe, expect, it, vi } from "vitest";

const RIGHT_KEY = "RIGHT";
const OTHER_KEY = "OTHER";
const PASSPHRASE = "a long and private passphrase";

function codeError(code: string): Error {
  return Object.assign(new Error(code), { name: "KitsulanCryptoError", code });
}

class FakeKey {
  static made: FakeKey[] = [];
  freed = false;
  constructor(readonly which: string) {
    FakeKey.made.push(this);
  }
  static fromRecoveryKey(typed: string): FakeKey {
    if (typed !== RIGHT_KEY && typed !== OTHER_KEY) throw codeError("recovery_key_malformed");
    return new FakeKey(typed);
  }
  static fromPassphrase(typed: string, authData: Uint8Array): FakeKey {
    if (authData[0] !== 1) throw codeError("no_passphrase");
    if (typed !== PASSPHRASE) throw codeError("wrong_passphrase");
    return new FakeKey(RIGHT_KEY);
  }
  check(authData: Uint8Array): void {
    if (authData[1] === 9) throw codeError("malformed_backup");
    if (this.which !== RIGHT_KEY) throw codeError("wrong_recovery_key");
  }
  free(): void {
    this.freed = true;
  }
}

vi.mock("kitsulan-crypto", () => ({
  BackupKey: FakeKey,
  hasPassphrase: (authData: Uint8Array) => authData[0] === 1,
}));
/** The account's backup as GetBackup answers it (null: none), and what backup.ts stored. */
const server = vi.hoisted(() => ({
  backup: null as { version: string; authData: Uint8Array } | null,
  stored: new Map<string, unknown>(),
}));
vi.mock("../api", () => ({
  keyBackupClient: { getBackup: () => Promise.resolve({ backup: server.backup ?? undefined }) },
}));
vi.mock("./engine", () => ({ E2ee: {} }));
vi.mock("./load", () => ({ loadCrypto: () => Promise.resolve() }));
vi.mock("../storage/db", () => ({
  get: (_store: string, key: string) => Promise.resolve(server.stored.get(key)),
  put: (_store: string, key: string, value: unknown) => {
    server.stored.set(key, value);
    return Promise.resolve();
  },
}));

const { adoptBackupKey, keyFrom, RestoreError } = await import("./backup");

const withPassphrase = new Uint8Array([1, 0]);
const withoutPassphrase = new Uint8Array([0, 0]);
const damaged = new Uint8Array([0, 9]);

async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RestoreError) return err.failure;
    throw err;
  }
  throw new Error("no failure");
}

describe("keyFrom", () => {
  beforeEach(() => {
    FakeKey.made = [];
  });

  it("takes the right recovery key without deriving anything", async () => {
    const steps: string[] = [];
    const key = (await keyFrom(RIGHT_KEY, withPassphrase, (p) => steps.push(p.step))) as unknown as FakeKey;
    expect(key.which).toBe(RIGHT_KEY);
    expect(key.freed).toBe(false);
    expect(steps).toEqual([]);
  });

  it("a malformed key for a backup without passphrase: not a key", async () => {
    expect(await failure(keyFrom("typo", withoutPassphrase, () => undefined))).toBe("not-a-key");
  });

  it("another backup's key: wrong key, and the key is freed", async () => {
    expect(await failure(keyFrom(OTHER_KEY, withoutPassphrase, () => undefined))).toBe("wrong-key");
    expect(FakeKey.made.every((k) => k.freed)).toBe(true);
  });

  it("with a passphrase backup, anything else is tried as the passphrase", async () => {
    const steps: string[] = [];
    const key = (await keyFrom(PASSPHRASE, withPassphrase, (p) => steps.push(p.step))) as unknown as FakeKey;
    expect(key.which).toBe(RIGHT_KEY);
    expect(steps).toEqual(["deriving"]);
    expect(await failure(keyFrom("not the passphrase", withPassphrase, () => undefined))).toBe("wrong-passphrase");
    // A well-formed but wrong recovery key is tried as a passphrase too, and said to be a wrong key.
    expect(await failure(keyFrom(OTHER_KEY, withPassphrase, () => undefined))).toBe("wrong-key");
  });

  it("a damaged auth data is said to be damaged", async () => {
    expect(await failure(keyFrom(RIGHT_KEY, damaged, () => undefined))).toBe("damaged");
  });
});

describe("adoptBackupKey", () => {
  let resets = 0;
  const engine = {
    pickleBackupKey: (k: FakeKey) => `pickled ${k.which}`,
    resetBackedUp: () => {
      resets++;
      return Promise.resolve();
    },
  } as unknown as Parameters<typeof adoptBackupKey>[0];
  const adopt = (k: FakeKey) => adoptBackupKey(engine, k as unknown as Parameters<typeof adoptBackupKey>[1]);

  beforeEach(() => {
    server.backup = { version: "v-current", authData: withoutPassphrase };
    server.stored.clear();
    resets = 0;
  });

  it("keeps the key that opens the current backup, for its version", async () => {
    const key = new FakeKey(RIGHT_KEY);
    expect(await adopt(key)).toBe(true);
    expect(server.stored.get("backup")).toEqual({ version: "v-current", key: `pickled ${RIGHT_KEY}` });
    expect(key.freed).toBe(true);
    expect(resets).toBe(0);
  });

  it("a key for a newer version than the one this device backed up to: everything goes again", async () => {
    server.stored.set("backup", { version: "v-old", key: "pickled old" });
    expect(await adopt(new FakeKey(RIGHT_KEY))).toBe(true);
    expect(server.stored.get("backup")).toEqual({ version: "v-current", key: `pickled ${RIGHT_KEY}` });
    expect(resets).toBe(1);
  });

  it("refuses a key that does not open the backup: nothing kept, the key freed", async () => {
    const key = new FakeKey(OTHER_KEY);
    expect(await adopt(key)).toBe(false);
    expect(server.stored.size).toBe(0);
    expect(key.freed).toBe(true);
  });

  it("refuses any key when the account has no backup", async () => {
    server.backup = null;
    const key = new FakeKey(RIGHT_KEY);
    expect(await adopt(key)).toBe(false);
    expect(server.stored.size).toBe(0);
    expect(key.freed).toBe(true);
  });

  it("refuses a key when the backup's auth data is damaged", async () => {
    server.backup = { version: "v-current", authData: damaged };
    expect(await adopt(new FakeKey(RIGHT_KEY))).toBe(false);
    expect(server.stored.size).toBe(0);
  });
});
