// The WASM side of crypto/tests/wasm_node.rs: loads crypto/pkg (built by crypto/build-wasm.sh)
// under Node and answers JSON-line commands on stdin with JSON lines on stdout.
// Request:  {"cmd": "...", ...args}    bytes are standard base64 strings.
// Response: {"ok": true, ...result} or {"ok": false, "code": "<Error.code>", "message": "..."}.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.join(here, "..", "pkg");
const k = await import(path.join(pkg, "kitsulan_crypto.js"));
await k.default({ module_or_path: readFileSync(path.join(pkg, "kitsulan_crypto_bg.wasm")) });

const b64 = (u8) => Buffer.from(u8).toString("base64");
const bytes = (s) => new Uint8Array(Buffer.from(s, "base64"));
const utf8 = (u8) => Buffer.from(u8).toString("utf8");
const enc = (s) => new TextEncoder().encode(s);

const state = { pickleKey: k.generatePickleKey() };
const signedKey = (key) => ({
  keyId: key.keyId.toString(),
  publicKey: b64(key.publicKey),
  signature: b64(key.signature),
  fallback: key.fallback,
});

/** The verification's state, what it queued (taken), its emoji and the verified key. */
function verificationView() {
  const v = state.verification;
  const outgoing = [];
  for (let m = v.takeOutgoing(); m; m = v.takeOutgoing()) outgoing.push(b64(m));
  const emoji = v.emojiIndices;
  const verified = v.verifiedAccountKey;
  return {
    state: v.state,
    cancelReason: v.cancelReason ?? null,
    outgoing,
    emoji: emoji ? Array.from(emoji) : null,
    verified: verified ? b64(verified) : null,
  };
}

const commands = {
  // --- device account, certificates ---
  init() {
    state.account = new k.DeviceAccount();
    state.accountKey = k.AccountKey.generate();
    const otks = state.account.generateOneTimeKeys(3).map(signedKey);
    const fallback = signedKey(state.account.generateFallbackKey());
    state.account.markKeysAsPublished();
    return {
      ed25519: b64(state.account.ed25519Key),
      curve25519: b64(state.account.curve25519Key),
      otks,
      fallback,
      accountKey: b64(state.accountKey.publicKey),
    };
  },
  certify({ accountId, deviceId, createdAt }) {
    const cert = state.accountKey.certify(
      bytes(accountId), bytes(deviceId), state.account.ed25519Key, state.account.curve25519Key,
      BigInt(createdAt));
    return { certificate: b64(cert) };
  },
  verifyCertificate({ certificate, accountKey }) {
    const c = k.verifyDeviceCertificate(bytes(certificate), bytes(accountKey));
    return { deviceEd25519: b64(c.deviceEd25519), createdAt: c.createdAt.toString() };
  },
  verifySignedKey({ deviceEd25519, key }) {
    k.verifySignedKey(bytes(deviceEd25519), new k.SignedKey(BigInt(key.keyId), bytes(key.publicKey),
      bytes(key.signature), key.fallback));
    return {};
  },
  // --- Olm ---
  olmInbound({ theirCurve25519, message }) {
    const result = state.account.createInboundSession(bytes(theirCurve25519), bytes(message));
    state.olm = result.takeSession();
    return { plaintext: b64(result.plaintext), sessionId: state.olm.sessionId };
  },
  olmOutbound({ theirEd25519, theirCurve25519, key }) {
    const claimed = new k.SignedKey(BigInt(key.keyId), bytes(key.publicKey), bytes(key.signature), key.fallback);
    state.olm = state.account.createOutboundSession(bytes(theirEd25519), bytes(theirCurve25519), claimed);
    return { sessionId: state.olm.sessionId };
  },
  olmEncrypt({ plaintext }) {
    return { message: b64(state.olm.encrypt(bytes(plaintext))) };
  },
  olmDecrypt({ message }) {
    return { plaintext: b64(state.olm.decrypt(bytes(message))) };
  },
  // --- Megolm ---
  megolmInbound({ sessionKey }) {
    state.inbound = k.InboundGroupSession.fromSessionKey(bytes(sessionKey));
    return { sessionId: state.inbound.sessionId };
  },
  megolmDecrypt({ message, history }) {
    const d = history ? state.inbound.decryptHistory(bytes(message)) : state.inbound.decrypt(bytes(message));
    return { plaintext: b64(d.plaintext), index: d.messageIndex };
  },
  megolmOutbound() {
    state.outbound = new k.OutboundGroupSession();
    return { sessionId: state.outbound.sessionId, sessionKey: b64(state.outbound.sessionKey()) };
  },
  megolmEncrypt({ plaintext }) {
    const index = state.outbound.messageIndex;
    return { message: b64(state.outbound.encrypt(bytes(plaintext))), index };
  },
  // Pickles everything under the pickle key and restores it, as a page reload would.
  repickle() {
    const pk = state.pickleKey;
    state.account = k.DeviceAccount.fromPickle(state.account.pickle(pk), pk);
    state.accountKey = k.AccountKey.fromPickle(state.accountKey.pickle(pk), pk);
    if (state.olm) state.olm = k.OlmSession.fromPickle(state.olm.pickle(pk), pk);
    if (state.inbound) state.inbound = k.InboundGroupSession.fromPickle(state.inbound.pickle(pk), pk);
    if (state.outbound) state.outbound = k.OutboundGroupSession.fromPickle(state.outbound.pickle(pk), pk);
    let wrongKey = "none";
    try {
      k.DeviceAccount.fromPickle(state.account.pickle(pk), k.generatePickleKey());
    } catch (e) {
      wrongKey = e.code;
    }
    return { wrongKey };
  },
  // --- SAS ---
  // --- verifying a contact (verification.rs), the WASM side as the responder ---
  verifyFromRequest({ request, theirDevice, theirAccount, ourDevice, ourAccount, now }) {
    state.verification = k.Verification.fromRequest(
      bytes(request), bytes(theirDevice), bytes(theirAccount), bytes(ourDevice), bytes(ourAccount), BigInt(now));
    return verificationView();
  },
  verifyAccept() {
    state.verification.accept();
    return verificationView();
  },
  verifyConfirm() {
    state.verification.confirm();
    return verificationView();
  },
  verifyReceive({ message, sender }) {
    state.verification.receive(bytes(message), bytes(sender));
    return verificationView();
  },
  sasStart() {
    state.sas = new k.SasVerification();
    return { publicKey: b64(state.sas.publicKey) };
  },
  sasFinish({ theirPublicKey, txn, keyId, key }) {
    const sas = state.sas.establish(bytes(theirPublicKey));
    state.establishedSas = sas;
    const emoji = Array.from(sas.emojiIndices(txn));
    return {
      emoji,
      names: emoji.map((i) => k.sasEmojiName(i)),
      decimals: Array.from(sas.decimals(txn)),
      mac: b64(sas.mac(txn, keyId, bytes(key))),
    };
  },
  sasVerifyMac({ txn, keyId, key, mac }) {
    state.establishedSas.verifyMac(txn, keyId, bytes(key), bytes(mac));
    return {};
  },
  // --- pairing (WASM is the new device) ---
  pairingOffer({ pairingId, serverUrl }) {
    state.pairing = new k.NewDevicePairing(bytes(pairingId), serverUrl);
    return { qr: state.pairing.qrText() };
  },
  pairingAccept({ message }) {
    const start = state.pairing.accept(bytes(message));
    state.channel = start.takeChannel();
    return { plaintext: b64(start.bytes), checkCode: state.channel.checkCode };
  },
  channelDecrypt({ message }) {
    return { plaintext: b64(state.channel.decrypt(bytes(message))) };
  },
  channelEncrypt({ plaintext }) {
    return { message: b64(state.channel.encrypt(bytes(plaintext))) };
  },
  // --- attachments ---
  attachmentEncrypt({ plaintext, chunk }) {
    const e = new k.AttachmentEncryptor();
    const data = bytes(plaintext);
    const parts = [];
    for (let i = 0; i < data.length; i += chunk) parts.push(e.update(data.subarray(i, i + chunk)));
    const secrets = e.finish();
    return { ciphertext: b64(Buffer.concat(parts)), secrets: b64(secrets.toBytes()) };
  },
  attachmentDecrypt({ ciphertext, secrets, chunk }) {
    const d = new k.AttachmentDecryptor(k.AttachmentSecrets.fromBytes(bytes(secrets)));
    const data = bytes(ciphertext);
    const parts = [];
    for (let i = 0; i < data.length; i += chunk) parts.push(d.update(data.subarray(i, i + chunk)));
    d.finish();
    return { plaintext: b64(Buffer.concat(parts)) };
  },
  // --- key backup v1 ---
  keyBackupCreate({ passphrase, accountId, accountKeySecret }) {
    const key = k.BackupKey.generate();
    const authData = key.authData(passphrase ?? undefined);
    const identity = key.encryptIdentity(bytes(accountId), bytes(accountKeySecret));
    state.backupKey = key;
    return { recoveryKey: key.recoveryKey(), authData: b64(authData), identity: b64(identity),
      hasPassphrase: k.hasPassphrase(authData) };
  },
  keyBackupSession({ accountId, sessionKey, senderAccountId, senderDeviceId, conversationId }) {
    const session = k.InboundGroupSession.fromSessionKey(bytes(sessionKey));
    const entry = state.backupKey.encryptSession(bytes(accountId), session, bytes(senderAccountId),
      bytes(senderDeviceId), bytes(conversationId ?? ""));
    return { sessionId: session.sessionId, entry: b64(entry) };
  },
  // Restores with the recovery key or the passphrase: check, identity, one session, and a
  // message decrypted with it; the key survives a pickle and a bytes round trip.
  keyBackupRestore({ recoveryKey, passphrase, authData, accountId, identity, sessionId, entry, message }) {
    const key = recoveryKey !== undefined
      ? k.BackupKey.fromRecoveryKey(recoveryKey)
      : k.BackupKey.fromPassphrase(passphrase, bytes(authData));
    key.check(bytes(authData));
    const seed = key.decryptIdentity(bytes(accountId), bytes(identity));
    const restored = key.decryptSession(bytes(accountId), sessionId, bytes(entry));
    const session = restored.takeSession();
    const d = session.decrypt(bytes(message));
    const again = k.BackupKey.fromBytes(
      k.BackupKey.fromPickle(key.pickle(state.pickleKey), state.pickleKey).toBytes());
    const conversationId = restored.conversationId;
    return {
      recoveryKey: key.recoveryKey(),
      pickledRecoveryKey: again.recoveryKey(),
      bytes: b64(key.toBytes()),
      seed: b64(seed),
      senderAccountId: b64(restored.senderAccountId),
      senderDeviceId: b64(restored.senderDeviceId),
      conversationId: conversationId === undefined ? null : b64(conversationId),
      sessionId: session.sessionId,
      plaintext: b64(d.plaintext),
    };
  },
  keyBackupCheck({ recoveryKey, authData }) {
    k.BackupKey.fromRecoveryKey(recoveryKey).check(bytes(authData));
    return {};
  },
  keyBackupPassphrase({ passphrase, authData }) {
    return { recoveryKey: k.BackupKey.fromPassphrase(passphrase, bytes(authData)).recoveryKey() };
  },
  keyBackupDecryptSession({ recoveryKey, accountId, sessionId, entry }) {
    k.BackupKey.fromRecoveryKey(recoveryKey).decryptSession(bytes(accountId), sessionId, bytes(entry));
    return {};
  },
  hasPassphrase({ authData }) {
    return { hasPassphrase: k.hasPassphrase(bytes(authData)) };
  },
  ping() {
    return { pong: utf8(enc("pong")) };
  },
};

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let reply;
  try {
    const req = JSON.parse(line);
    const fn = commands[req.cmd];
    if (!fn) throw Object.assign(new Error(`unknown command ${req.cmd}`), { code: "unknown_command" });
    reply = { ok: true, ...fn(req) };
  } catch (e) {
    reply = { ok: false, code: e.code ?? "js_error", message: String(e.message ?? e), name: e.name };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
