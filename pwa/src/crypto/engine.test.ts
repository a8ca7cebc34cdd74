// engine.test.ts — the glue of engine.ts over the crate's CryptoMachine (real WASM), against an
// in-memory IndexedDB and key/to-device services: a browser that ran the engine before the
// machine (its records seeded here as that engine wrote them: "device", "accountKey", "olm:…",
// "out:…", "in:…", "pinned", "seen", …) is converted once on load and keeps reading its history,
// sending on the same sessions, its verified contacts and its replay record; a record that does
// not open leaves everything as it was. Then the key request: a message waiting for its key is
// asked of our own device, which answers, and it decrypts.
import { create } from "@bufbuild/protobuf";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  AccountKey,
  CryptoMachine,
  DeviceAccount,
  InboundGroupSession,
  OutboundGroupSession,
  SignedKey,
  generatePickleKey,
  initSync,
  type MachineToDevice,
} from "kitsulan-crypto";
import { MessageSchema, type Message } from "../gen/kitsulan/v1/conversation_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ToDeviceMessageSchema } from "../gen/kitsulan/v1/to_device_pb";
import { uuidBytes, uuidv7 } from "../lib/ids";

type Stores = Map<string, Map<string, unknown>>;
const idb = vi.hoisted(() => ({ stores: new Map() as Stores, failWrites: false }));
const storeOf = (name: string) => {
  let s = idb.stores.get(name);
  if (!s) idb.stores.set(name, (s = new Map()));
  return s;
};

vi.mock("../storage/db", () => ({
  get: (s: string, k: string) => Promise.resolve(storeOf(s).get(k)),
  put: (s: string, k: string, v: unknown) => Promise.resolve(void storeOf(s).set(k, v)),
  all: (s: string) => Promise.resolve([...storeOf(s)].sort(([a], [b]) => (a < b ? -1 : 1))),
  entries: (s: string, prefix: string) => Promise.resolve([...storeOf(s)].filter(([k]) => k.startsWith(prefix))),
  writeAll: (writes: Array<{ store: string; key: string; value?: unknown }>) => {
    if (idb.failWrites) return Promise.reject(new Error("quota"));
    for (const w of writes) {
      if (w.value === undefined) storeOf(w.store).delete(w.key);
      else storeOf(w.store).set(w.key, w.value);
    }
    return Promise.resolve();
  },
}));

interface ServerDevice {
  accountId: string;
  deviceId: string;
  certificate: Uint8Array;
  keys: Array<{ keyId: bigint; publicKey: Uint8Array; signature: Uint8Array }>;
}
const server = vi.hoisted(() => ({
  accountKeys: new Map<string, Uint8Array>(),
  devices: [] as ServerDevice[],
  sent: [] as Array<{ from: string; m: MachineToDevice }>,
  sender: "",
  certificates: [] as Uint8Array[],
}));

vi.mock("../api", () => ({
  keyClient: {
    queryKeys: ({ accountIds }: { accountIds: string[] }) =>
      Promise.resolve({
        accounts: accountIds.map((accountId) => ({
          accountId,
          accountKey: server.accountKeys.get(accountId) ?? new Uint8Array(),
          devices: server.devices
            .filter((d) => d.accountId === accountId)
            .map((d) => ({ deviceId: d.deviceId, certificate: d.certificate })),
        })),
      }),
    claimKeys: ({ deviceIds }: { deviceIds: string[] }) =>
      Promise.resolve({
        keys: deviceIds.flatMap((deviceId) => {
          const key = server.devices.find((d) => d.deviceId === deviceId)?.keys.shift();
          return key ? [{ deviceId, key, fallback: false }] : [];
        }),
      }),
    uploadKeys: ({ deviceCertificate }: { deviceCertificate: Uint8Array }) => {
      if (deviceCertificate.length > 0) server.certificates.push(deviceCertificate);
      return Promise.resolve({});
    },
    getKeyCounts: () => Promise.resolve({ oneTimeKeyCount: 100 }),
    publishAccountKey: () => Promise.resolve({}),
  },
  toDeviceClient: {
    sendToDevice: ({ messages }: { messages: MachineToDevice[] }) => {
      for (const m of messages) server.sent.push({ from: server.sender, m });
      return Promise.resolve({});
    },
  },
}));
vi.mock("kitsulan-crypto/kitsulan_crypto_bg.wasm?url", () => ({ default: "" }));

const { E2ee } = await import("./engine");
const { undecryptableStats } = await import("./undecryptable");

const te = new TextEncoder();
const td = new TextDecoder();

beforeAll(async () => {
  const nodeFs = "node:fs";
  const { readFileSync } = (await import(/* @vite-ignore */ nodeFs)) as { readFileSync(path: URL): Uint8Array };
  initSync({ module: readFileSync(new URL("../../../crypto/pkg/kitsulan_crypto_bg.wasm", import.meta.url)) });
});

beforeEach(() => {
  idb.stores.clear();
  idb.failWrites = false;
  server.accountKeys.clear();
  server.devices = [];
  server.sent = [];
  server.certificates = [];
});

/** A device of the new kind (a bare CryptoMachine), registered on the fake server. */
function machineDevice(accountId: string, key: AccountKey): CryptoMachine {
  const m = CryptoMachine.create(generatePickleKey(), accountId, uuidv7(), key.toSecretBytes());
  const up = m.keysToUpload(5, Date.now());
  m.keysUploaded();
  server.accountKeys.set(accountId, key.publicKey);
  server.devices.push({
    accountId,
    deviceId: m.deviceId,
    certificate: up.certificate ?? new Uint8Array(),
    keys: up.oneTimeKeys.map((k) => ({ keyId: k.keyId, publicKey: k.publicKey, signature: k.signature })),
  });
  return m;
}

function message(over: MessageInitShape<typeof MessageSchema>): Message {
  return create(MessageSchema, { id: uuidv7(), seq: 1n, ...over });
}

/** Hands `machine` the to-device messages sent to it. */
function deliverTo(machine: CryptoMachine, senderAccountId: string) {
  const mine = server.sent.filter((s) => s.m.recipientDeviceId === machine.deviceId);
  server.sent = server.sent.filter((s) => s.m.recipientDeviceId !== machine.deviceId);
  return mine.map((s) => {
    const peer = machine.peer(s.from);
    if (!peer) {
      const d = server.devices.filter((x) => x.accountId === senderAccountId);
      machine.receiveKeys(senderAccountId, server.accountKeys.get(senderAccountId)!, d.map((x) => x.deviceId), d.map((x) => x.certificate));
    }
    return machine.receiveToDevice(senderAccountId, s.from, s.m.messageId, s.m.ciphertext, Date.now());
  });
}

/**
 * Alice's browser as the engine before the machine left it: her device and account key, Bob's
 * key pinned and verified, an Olm session with Bob's device, the conversation's outbound session
 * shared with it, her own inbound half, one message she sent (read once: in "seen").
 */
function seedOldEngine() {
  const alice = uuidv7();
  const bob = uuidv7();
  const conversation = uuidv7();
  const aliceKey = AccountKey.generate();
  const bobKey = AccountKey.generate();
  const bobMachine = machineDevice(bob, bobKey);
  const bobDevice = server.devices[0]!;

  const pickleKey = generatePickleKey();
  const aliceDevice = uuidv7();
  const account = new DeviceAccount();
  const certificate = aliceKey.certify(uuidBytes(alice), uuidBytes(aliceDevice), account.ed25519Key, account.curve25519Key, 1n);
  server.accountKeys.set(alice, aliceKey.publicKey);
  server.devices.push({ accountId: alice, deviceId: aliceDevice, certificate, keys: [] });

  // The old engine's share: 0x01 || Olm(0x02 || conversation id || session key).
  const claimed = bobDevice.keys.shift()!;
  const key = new SignedKey(claimed.keyId, claimed.publicKey, claimed.signature, false);
  const olm = account.createOutboundSession(bobMachine.ed25519Key, bobMachine.curve25519Key, key);
  const outbound = new OutboundGroupSession();
  const sessionKey = outbound.sessionKey();
  const share = new Uint8Array([0x02, ...uuidBytes(conversation), ...sessionKey]);
  const ciphertext = new Uint8Array([0x01, ...olm.encrypt(share)]);
  bobMachine.receiveKeys(alice, aliceKey.publicKey, [aliceDevice], [certificate]);
  expect(bobMachine.receiveToDevice(alice, aliceDevice, uuidv7(), ciphertext, Date.now()).kind).toBe("roomKey");

  const sent = message({
    conversationId: conversation,
    senderAccountId: alice,
    senderDeviceId: aliceDevice,
    sessionId: te.encode(outbound.sessionId),
    ciphertext: outbound.encrypt(te.encode("written before the update")),
  });
  const inbound = InboundGroupSession.fromSessionKey(sessionKey);
  const crypto = storeOf("crypto");
  crypto.set("pickleKey", pickleKey);
  crypto.set("device", account.pickle(pickleKey));
  crypto.set("accountKey", aliceKey.pickle(pickleKey));
  crypto.set("certificateUploaded", true);
  crypto.set("pinned", { [bob]: bobKey.publicKey, [alice]: aliceKey.publicKey });
  crypto.set("verified", { [bob]: bobKey.publicKey });
  crypto.set("verifiedThenChanged", []);
  crypto.set("peers", [
    { accountId: bob, deviceId: bobMachine.deviceId, ed25519: bobMachine.ed25519Key, curve25519: bobMachine.curve25519Key },
  ]);
  crypto.set("devices", { [bob]: [bobMachine.deviceId], [alice]: [] });
  crypto.set(`olm:${bobMachine.deviceId}`, [olm.pickle(pickleKey)]);
  crypto.set(`out:${conversation}`, { pickle: outbound.pickle(pickleKey), sharedWith: [bobMachine.deviceId], createdAtMs: Date.now() });
  crypto.set(`in:${aliceDevice}|${outbound.sessionId}`, {
    pickle: inbound.pickle(pickleKey),
    senderAccountId: alice,
    conversationId: conversation,
  });
  crypto.set("seen", { [`${aliceDevice}|${outbound.sessionId}|0`]: sent.id });
  crypto.set("taken", [uuidv7()]);
  crypto.set("backup", "not the engine's");
  return { alice, aliceDevice, bob, bobMachine, conversation, sent };
}

describe("a browser updated from the engine before the machine", () => {
  it("converts the old records once and keeps its sessions, trust and replay record", async () => {
    const { alice, aliceDevice, bob, bobMachine, conversation, sent } = seedOldEngine();
    const engine = (await E2ee.load(alice, aliceDevice))!;
    expect(engine.state).toBe("ready");

    // The old records are gone (the pickle key and other modules' records stay), the machine's are there.
    const crypto = storeOf("crypto");
    expect([...crypto.keys()].sort()).toEqual(["backup", "pickleKey"]);
    const names = [...storeOf("machine").keys()];
    expect(names).toContain("identity");
    expect(names.filter((n) => n.startsWith("in:"))).toHaveLength(1);
    expect(names.filter((n) => n.startsWith("olm:"))).toHaveLength(1);

    expect(engine.isVerified(bob)).toBe(true);
    expect(engine.verifiedAccounts()).toEqual([bob]);
    expect(await engine.decrypt(sent)).toMatchObject({ kind: "text", text: "written before the update" });
    // The replay record came along: the same ciphertext under another id is refused.
    const failedBefore = undecryptableStats.counts().failed;
    const replayed = { ...sent, id: uuidv7() };
    const replay = await engine.decrypt(replayed);
    expect(replay).toMatchObject({ kind: "undecryptable", reason: "replayed" });
    // Counted once as a message this device could not read (a second try is the same message).
    await engine.decrypt(replayed);
    expect(undecryptableStats.counts().failed).toBe(failedBefore + 1);

    // Sending goes on with the same Megolm session (no new share) and Bob reads it.
    const e = await engine.encrypt(conversation, [alice, bob], te.encode("after the update"));
    expect(server.sent).toEqual([]);
    expect(td.decode(e.sessionId)).toBe(td.decode(sent.sessionId));
    const d = bobMachine.decrypt(e.messageId, conversation, alice, aliceDevice, e.sessionId, e.ciphertext);
    expect(d.ok && td.decode(d.plaintext)).toBe("after the update");
    await engine.idle();
    engine.dispose();

    // Loaded again: from the machine's records only, same state.
    const again = (await E2ee.load(alice, aliceDevice))!;
    expect(again.isVerified(bob)).toBe(true);
    expect(await again.decrypt(sent)).toMatchObject({ kind: "text", text: "written before the update" });
    again.dispose();
  });

  it("leaves the old records as they were when one does not open", async () => {
    const { alice, aliceDevice } = seedOldEngine();
    const crypto = storeOf("crypto");
    const key = [...crypto.keys()].find((k) => k.startsWith("in:"))!;
    const broken = { ...(crypto.get(key) as object), pickle: "not a pickle" };
    crypto.set(key, broken);
    const before = new Map(crypto);
    await expect(E2ee.load(alice, aliceDevice)).rejects.toMatchObject({ code: "malformed_record" });
    expect(new Map(crypto)).toEqual(before);
    expect(storeOf("machine").size).toBe(0);
  });

  it("leaves the old records as they were when the write fails", async () => {
    const { alice, aliceDevice } = seedOldEngine();
    const before = new Map(storeOf("crypto"));
    idb.failWrites = true;
    await expect(E2ee.load(alice, aliceDevice)).rejects.toThrow("quota");
    expect(new Map(storeOf("crypto"))).toEqual(before);
    idb.failWrites = false;
    expect((await E2ee.load(alice, aliceDevice))?.state).toBe("ready");
  });
});

describe("a message waiting for its key", () => {
  it("is asked of our own device, which answers, and then decrypts", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout"] });
    try {
      const alice = uuidv7();
      const bob = uuidv7();
      const conversation = uuidv7();
      const aliceKey = AccountKey.generate();
      // Alice's first device (a bare machine) got Bob's message; her browser (the engine) did not.
      const phone = machineDevice(alice, aliceKey);
      const bobMachine = machineDevice(bob, AccountKey.generate());
      for (const m of [phone, bobMachine]) {
        for (const a of [alice, bob]) {
          const d = server.devices.filter((x) => x.accountId === a);
          m.receiveKeys(a, server.accountKeys.get(a)!, d.map((x) => x.deviceId), d.map((x) => x.certificate));
        }
      }
      const claim = server.devices.find((d) => d.deviceId === phone.deviceId)!.keys.shift()!;
      bobMachine.receiveClaimedKey(phone.deviceId, new SignedKey(claim.keyId, claim.publicKey, claim.signature, false));
      const share = bobMachine.shareRoomKey(conversation, [alice, bob], Date.now());
      expect(share.messages).toHaveLength(1);
      server.sender = bobMachine.deviceId;
      for (const m of share.messages) server.sent.push({ from: bobMachine.deviceId, m });
      bobMachine.confirmRoomKeyShare(conversation, share.sessionId, [phone.deviceId]);
      expect(deliverTo(phone, bob).map((r) => r.kind)).toEqual(["roomKey"]);
      const e = bobMachine.encrypt(conversation, te.encode("did you get this?"));
      const waiting = message({
        conversationId: conversation,
        senderAccountId: bob,
        senderDeviceId: bobMachine.deviceId,
        sessionId: te.encode(e.sessionId),
        ciphertext: e.ciphertext,
      });

      // The browser: a linked device of Alice's.
      storeOf("crypto").clear();
      const browser = await E2ee.setUpLinked(alice, uuidv7(), aliceKey.toSecretBytes());
      expect(server.certificates).toHaveLength(1);
      server.devices.push({ accountId: alice, deviceId: browser.deviceId, certificate: server.certificates[0]!, keys: [] });
      const before = undecryptableStats.counts();
      expect(await browser.decrypt(waiting)).toMatchObject({ kind: "undecryptable", reason: "waiting for the key" });
      // Waiting (not a failure), and about to be asked of our own devices.
      expect(undecryptableStats.counts()).toEqual({ ...before, waiting: before.waiting + 1 });
      expect(browser.keyRequestOf(bobMachine.deviceId, e.sessionId)).toBe("asking");
      expect(browser.keyRequestOf(bobMachine.deviceId, "another session")).toBeNull();

      // After a moment, the browser asks its own device (the phone).
      server.sender = browser.deviceId;
      await vi.advanceTimersByTimeAsync(2000);
      await browser.idle();
      expect(browser.keyRequestOf(bobMachine.deviceId, e.sessionId)).toBe("asked");
      const requests = server.sent.filter((s) => s.m.recipientDeviceId === phone.deviceId);
      expect(requests).toHaveLength(1);
      const answered = deliverTo(phone, alice);
      expect(answered.map((r) => r.kind)).toEqual(["keyRequest"]);
      const answer = answered[0]!;
      if (answer.kind !== "keyRequest") throw new Error("no answer");

      // The answer arrives: the browser takes it as a room key and the message decrypts.
      const taken = await browser.takeToDevice(
        create(ToDeviceMessageSchema, {
          messageId: answer.answer.messageId,
          senderAccountId: alice,
          senderDeviceId: phone.deviceId,
          ciphertext: answer.answer.ciphertext,
        }),
      );
      expect(taken).toEqual({ kind: "roomKey", sessionId: e.sessionId });
      expect(await browser.decrypt(waiting)).toMatchObject({ kind: "text", text: "did you get this?" });
      // Answered: no request left, and the message no longer waits (nothing counted as failed).
      expect(browser.keyRequestOf(bobMachine.deviceId, e.sessionId)).toBeNull();
      expect(undecryptableStats.counts()).toEqual(before);
      browser.dispose();
    } finally {
      vi.useRealTimers();
    }
  });
});
