// pairing.test.ts — the glue of pairing.ts over the crate's linking flows (WASM), against an
// in-memory PairingService that relays like the server does (and can tamper, as an attacker).
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { initSync } from "kitsulan-crypto";
import { PairingState } from "../gen/kitsulan/v1/pairing_pb";

interface Posted {
  index: number;
  payload: Uint8Array;
  fromNew: boolean;
}

const relay = vi.hoisted(() => ({
  pairingId: "",
  publicKey: new Uint8Array() as Uint8Array,
  posted: [] as Posted[],
  state: 0,
  approved: false,
  sessionTaken: false,
  cancels: 0,
  /** Changes a payload the existing device posts, before the new device reads it. */
  tamper: null as null | ((payload: Uint8Array, n: number) => Uint8Array),
}));

vi.mock("../api", () => ({
  pairingClient: {
    createPairing: ({ pairingId, publicKey }: { pairingId: string; publicKey: Uint8Array }) => {
      relay.pairingId = pairingId;
      relay.publicKey = publicKey;
      relay.state = 1; // OPEN
      return Promise.resolve({ pin: "12345678", secret: "secret", expiresAtMs: 0n });
    },
    findPairing: () => Promise.resolve({ pairingId: relay.pairingId, publicKey: relay.publicKey }),
    postPairingMessage: ({ secret, payload }: { secret: string; payload: Uint8Array }) => {
      const fromNew = secret !== "";
      const n = relay.posted.filter((p) => p.fromNew === fromNew).length;
      const stored = !fromNew && relay.tamper ? relay.tamper(payload, n) : payload;
      relay.posted.push({ index: relay.posted.length + 1, payload: stored, fromNew });
      if (!fromNew) relay.state = 2; // CLAIMED
      return Promise.resolve({ index: relay.posted.length });
    },
    getPairing: ({ secret, afterIndex }: { secret: string; afterIndex: number }) => {
      const forNew = secret !== "";
      const messages = relay.posted.filter((p) => p.fromNew !== forNew && p.index > afterIndex);
      let session;
      if (forNew && relay.approved && !relay.sessionTaken) {
        relay.sessionTaken = true;
        session = { accountId: "account", deviceId: "device" };
      }
      return Promise.resolve({ state: relay.state, messages, session });
    },
    approvePairing: () => {
      relay.approved = true;
      relay.state = 3; // APPROVED
      return Promise.resolve({ deviceId: "device" });
    },
    cancelPairing: () => {
      relay.cancels += 1;
      relay.state = PairingState.CANCELLED;
      return Promise.resolve({});
    },
  },
}));

vi.mock("./load", () => ({ loadCrypto: () => Promise.resolve() }));

const { ExistingDeviceLink, NewDeviceLink, PairingInputError, PairingVerificationError, findByPin, fromQr } = await import(
  "./pairing"
);

// The crate's WASM, read from disk (the tests run in Node, without types for it).
beforeAll(async () => {
  const nodeFs = "node:fs";
  const { readFileSync } = (await import(/* @vite-ignore */ nodeFs)) as { readFileSync(path: URL): Uint8Array };
  initSync({ module: readFileSync(new URL("../../../crypto/pkg/kitsulan_crypto_bg.wasm", import.meta.url)) });
});

beforeEach(() => {
  Object.assign(relay, { posted: [], state: 0, approved: false, sessionTaken: false, cancels: 0, tamper: null });
});

/** Both devices up to the emoji. */
async function toCompare(by: "pin" | "qr" = "pin") {
  const fresh = await NewDeviceLink.open("https://chat.lan");
  const found = by === "pin" ? await findByPin(fresh.pin) : await fromQr(fresh.qrText, "https://chat.lan");
  expect(found.pairingId).toBe(fresh.pairingId);
  const old = await ExistingDeviceLink.connect(found);
  expect(fresh.channelOpen).toBe(false);
  await fresh.poll(); // HELLO in, commitment out
  expect(fresh.channelOpen).toBe(true);
  await old.poll(); // commitment in, SAS key out
  await fresh.poll(); // SAS key in, reveal out
  const { emoji } = await old.poll(); // reveal checked
  expect(emoji).toHaveLength(7);
  expect(fresh.emoji).toEqual(emoji);
  return { fresh, old };
}

describe("linking through the WASM flows", () => {
  it("links with the account key and the backup key, in the documented order", async () => {
    const { fresh, old } = await toCompare();
    await fresh.confirm();
    await old.confirm();
    expect((await old.poll()).verified).toBe(true);
    const secret = new Uint8Array(32).fill(7);
    const backup = new Uint8Array(32).fill(9);
    expect(await old.approve(secret, "Tablet", backup)).toBe("device");
    const { session } = await fresh.poll();
    expect(session).toBeDefined();
    expect(fresh.takeAccountKey()).toEqual(secret);
    expect(fresh.takeAccountKey()).toBeNull();
    expect(fresh.takeBackupKey()).toEqual(backup);
    // HELLO, key, MAC, account key, backup key from the existing device; commitment, reveal,
    // MAC from the new one; each posted once, in order.
    expect(relay.posted.map((p) => p.fromNew)).toEqual([false, true, false, true, true, false, false, false]);
    expect(relay.cancels).toBe(0);
    fresh.dispose();
    old.dispose();
  });

  it("links without the backup key", async () => {
    const { fresh, old } = await toCompare();
    await old.confirm();
    await fresh.confirm();
    await old.poll();
    await old.approve(new Uint8Array(32).fill(1), "Phone");
    await fresh.poll();
    expect(fresh.takeAccountKey()).toEqual(new Uint8Array(32).fill(1));
    expect(fresh.takeBackupKey()).toBeNull();
  });

  it("links by QR code the same way, and refuses a QR code of another server", async () => {
    const { fresh, old } = await toCompare("qr");
    await fresh.confirm();
    await old.confirm();
    await old.poll();
    await old.approve(new Uint8Array(32).fill(4), "Phone");
    await fresh.poll();
    expect(fresh.takeAccountKey()).toEqual(new Uint8Array(32).fill(4));
    await expect(fromQr(fresh.qrText, "https://other.lan")).rejects.toBeInstanceOf(PairingInputError);
  });

  it("refuses to send the account key before both MACs", async () => {
    const { fresh, old } = await toCompare();
    await old.confirm();
    await expect(old.approve(new Uint8Array(32), "Tablet")).rejects.toBeInstanceOf(PairingVerificationError);
    expect(relay.approved).toBe(false);
    fresh.dispose();
  });

  it("stops the new device on a tampered message and cancels the pairing", async () => {
    // The relay flips a bit in the existing device's SAS key message (its 2nd payload).
    relay.tamper = (payload, n) => {
      if (n !== 1) return payload;
      const out = payload.slice();
      out[out.length - 1] = (out[out.length - 1] ?? 0) ^ 1;
      return out;
    };
    const fresh = await NewDeviceLink.open("https://chat.lan");
    const old = await ExistingDeviceLink.connect(await findByPin(fresh.pin));
    await fresh.poll();
    await old.poll();
    await expect(fresh.poll()).rejects.toBeInstanceOf(PairingVerificationError);
    expect(relay.cancels).toBe(1);
    expect(fresh.emoji).toBeNull();
    await expect(fresh.poll()).rejects.toBeInstanceOf(PairingVerificationError);
    await expect(fresh.confirm()).rejects.toBeInstanceOf(PairingVerificationError);
    expect(fresh.takeAccountKey()).toBeNull();
  });

  it("a cancel here wipes what came", async () => {
    const { fresh, old } = await toCompare();
    await fresh.confirm();
    await old.confirm();
    await old.poll();
    await old.approve(new Uint8Array(32).fill(3), "Tablet");
    await fresh.cancel();
    expect(fresh.takeAccountKey()).toBeNull();
  });
});
