//! Native Rust and the WASM build (under Node 20) talk to each other: a full Olm + Megolm
//! exchange in both directions, plus certificates, SAS, pairing and attachments across the two
//! builds, key backups (each build restores what the other backed up, and the errors carry
//! their codes), and a contact verification with native Rust on one side and the WASM build on
//! the other (one state machine, two builds).
//!
//! The WASM side is `crypto/wasm-tests/peer.mjs`, speaking JSON lines over stdio. It needs
//! `crypto/pkg`, built by `crypto/build-wasm.sh`; if that is missing or older than the sources
//! this test FAILS (it never skips) and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kitsulan_crypto::attachment::{AttachmentDecryptor, AttachmentEncryptor, AttachmentSecrets};
use kitsulan_crypto::backup::{self, BackupKey, SessionOrigin};
use kitsulan_crypto::device::ClaimedKey;
use kitsulan_crypto::megolm::{InboundGroupSession, OutboundGroupSession};
use kitsulan_crypto::pairing::{self, PairingQr};
use kitsulan_crypto::sas::SasVerification;
use kitsulan_crypto::verification::{Identity, State, Verification};
use kitsulan_crypto::{
    AccountKey, DeviceAccount, Error, OsRng, SignedFallbackKey, SignedOneTimeKey, verify_device_certificate,
    verify_fallback_key, verify_one_time_key,
};
use serde_json::{Value, json};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let t = if meta.is_dir() { newest_mtime(&entry.path()) } else { meta.modified().unwrap() };
        newest = newest.max(t);
    }
    newest
}

/// Fails (never skips) with a clear message when the WASM package is missing or stale.
fn require_pkg() {
    let wasm = crate_dir().join("pkg/kitsulan_crypto_bg.wasm");
    let js = crate_dir().join("pkg/kitsulan_crypto.js");
    assert!(
        wasm.exists() && js.exists(),
        "crypto/pkg is missing: run crypto/build-wasm.sh before this test (it builds the WASM package)"
    );
    let built = std::fs::metadata(&wasm).unwrap().modified().unwrap();
    // The package holds kitsulan-content too (the Content types, the emoji and text rules).
    let mut sources =
        newest_mtime(&crate_dir().join("src")).max(newest_mtime(&crate_dir().join("../content/src")));
    sources = sources.max(std::fs::metadata(crate_dir().join("Cargo.toml")).unwrap().modified().unwrap());
    assert!(
        built >= sources,
        "crypto/pkg is older than crypto/src or content/src: run crypto/build-wasm.sh again before this test"
    );
}

struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn() -> Self {
        require_pkg();
        let mut child = Command::new("node")
            .arg(crate_dir().join("wasm-tests/peer.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (20+) must be on PATH for the WASM round-trip test");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdin, stdout }
    }

    /// Sends a command; returns the reply (asserting `ok` unless `expect_error`).
    fn raw(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "the Node peer exited early (see its stderr above)");
        serde_json::from_str(&line).unwrap()
    }

    fn call(&mut self, request: Value) -> Value {
        let reply = self.raw(request.clone());
        assert_eq!(reply["ok"], true, "{request} -> {reply}");
        reply
    }

    fn error_code(&mut self, request: Value) -> String {
        let reply = self.raw(request.clone());
        assert_eq!(reply["ok"], false, "{request} unexpectedly succeeded: {reply}");
        assert_eq!(reply["name"], "KitsulanCryptoError", "{reply}");
        reply["code"].as_str().unwrap().to_owned()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    unb64(v).try_into().unwrap()
}

fn otk_from(v: &Value) -> SignedOneTimeKey {
    SignedOneTimeKey {
        key_id: v["keyId"].as_str().unwrap().parse().unwrap(),
        public_key: arr(&v["publicKey"]),
        signature: arr(&v["signature"]),
    }
}

fn key_json(key_id: u64, public_key: &[u8], signature: &[u8], fallback: bool) -> Value {
    json!({"keyId": key_id.to_string(), "publicKey": b64(public_key), "signature": b64(signature), "fallback": fallback})
}

#[test]
fn olm_and_megolm_in_both_directions() {
    let mut wasm = Peer::spawn();
    let w = wasm.call(json!({"cmd": "init"}));
    let w_ed = unb64(&w["ed25519"]);
    let w_curve = unb64(&w["curve25519"]);

    // WASM-made signatures verify natively, and the other way round.
    let w_otks: Vec<SignedOneTimeKey> = w["otks"].as_array().unwrap().iter().map(otk_from).collect();
    assert_eq!(w_otks.len(), 3);
    for k in &w_otks {
        verify_one_time_key(&w_ed, k).unwrap();
    }
    let f = &w["fallback"];
    verify_fallback_key(
        &w_ed,
        &SignedFallbackKey {
            key_id: f["keyId"].as_str().unwrap().parse().unwrap(),
            public_key: arr(&f["publicKey"]),
            signature: arr(&f["signature"]),
        },
    )
    .unwrap();

    let mut native = DeviceAccount::new();
    let n_otks = native.generate_one_time_keys(2);
    native.mark_keys_as_published();
    let n0 = n_otks[0];
    wasm.call(json!({"cmd": "verifySignedKey", "deviceEd25519": b64(&native.ed25519_key()),
        "key": key_json(n0.key_id, &n0.public_key, &n0.signature, false)}));
    let mut forged = key_json(n0.key_id, &n0.public_key, &n0.signature, false);
    forged["keyId"] = json!("7");
    assert_eq!(
        wasm.error_code(
            json!({"cmd": "verifySignedKey", "deviceEd25519": b64(&native.ed25519_key()), "key": forged})
        ),
        "one_time_key_signature"
    );

    // --- native -> WASM: Olm pre-key message carrying a Megolm session key, then Megolm. ---
    let mut n_olm = native.create_outbound_session(&w_ed, &w_curve, &ClaimedKey::OneTime(w_otks[0])).unwrap();
    let mut n_group = OutboundGroupSession::new();
    let share = n_olm.encrypt(&n_group.session_key()).unwrap();
    let r = wasm.call(json!({"cmd": "olmInbound", "theirCurve25519": b64(&native.curve25519_key()), "message": b64(&share)}));
    assert_eq!(r["sessionId"], n_olm.session_id());
    wasm.call(json!({"cmd": "megolmInbound", "sessionKey": r["plaintext"]}));
    let m0 = n_group.encrypt(b"hello from native");
    let m1 = n_group.encrypt(b"second from native");
    let d = wasm.call(json!({"cmd": "megolmDecrypt", "message": b64(&m1)}));
    assert_eq!((unb64(&d["plaintext"]), d["index"].as_u64()), (b"second from native".to_vec(), Some(1)));
    let d = wasm.call(json!({"cmd": "megolmDecrypt", "message": b64(&m0)}));
    assert_eq!(unb64(&d["plaintext"]), b"hello from native");
    // Replay refused in WASM too; history may re-read it; tampering is refused.
    assert_eq!(wasm.error_code(json!({"cmd": "megolmDecrypt", "message": b64(&m0)})), "megolm_replay");
    wasm.call(json!({"cmd": "megolmDecrypt", "message": b64(&m0), "history": true}));
    let mut bad = n_group.encrypt(b"x");
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert_eq!(wasm.error_code(json!({"cmd": "megolmDecrypt", "message": b64(&bad)})), "megolm_decryption");

    // WASM answers over the same Olm session (a normal message) after reloading its state.
    let re = wasm.call(json!({"cmd": "repickle"}));
    assert_eq!(re["wrongKey"], "pickle_decryption");
    assert_eq!(wasm.error_code(json!({"cmd": "megolmDecrypt", "message": b64(&m1)})), "megolm_replay");
    let reply = wasm.call(json!({"cmd": "olmEncrypt", "plaintext": b64(b"olm reply from wasm")}));
    assert_eq!(n_olm.decrypt(&unb64(&reply["message"])).unwrap(), b"olm reply from wasm");

    // --- WASM -> native: WASM claims our one-time key, shares its own Megolm key. ---
    let mut native_b = DeviceAccount::new();
    let otk = native_b.generate_one_time_keys(1)[0];
    let r = wasm.call(json!({"cmd": "olmOutbound", "theirEd25519": b64(&native_b.ed25519_key()),
        "theirCurve25519": b64(&native_b.curve25519_key()),
        "key": key_json(otk.key_id, &otk.public_key, &otk.signature, false)}));
    let g = wasm.call(json!({"cmd": "megolmOutbound"}));
    let share = wasm.call(json!({"cmd": "olmEncrypt", "plaintext": g["sessionKey"]}));
    let share = unb64(&share["message"]);
    assert!(kitsulan_crypto::olm::is_pre_key_message(&share));
    let (mut b_olm, key) = native_b.create_inbound_session(&w_curve, &share).unwrap();
    assert_eq!(r["sessionId"], b_olm.session_id());
    let mut b_group = InboundGroupSession::from_session_key(&key).unwrap();
    assert_eq!(b_group.session_id(), g["sessionId"].as_str().unwrap());
    for (i, text) in ["hello from wasm", "second from wasm"].iter().enumerate() {
        let m = wasm.call(json!({"cmd": "megolmEncrypt", "plaintext": b64(text.as_bytes())}));
        assert_eq!(m["index"].as_u64(), Some(i as u64));
        let message = unb64(&m["message"]);
        let d = b_group.decrypt(&message).unwrap();
        assert_eq!((d.plaintext.as_slice(), d.message_index), (text.as_bytes(), i as u32));
        assert_eq!(b_group.decrypt(&message).unwrap_err(), kitsulan_crypto::Error::MegolmReplay(i as u32));
    }
    // Native answers over Olm; WASM decrypts it after another reload.
    let answer = b_olm.encrypt(b"olm reply from native").unwrap();
    wasm.call(json!({"cmd": "repickle"}));
    let d = wasm.call(json!({"cmd": "olmDecrypt", "message": b64(&answer)}));
    assert_eq!(unb64(&d["plaintext"]), b"olm reply from native");
    // The outbound group session survived the reload with its index.
    let m = wasm.call(json!({"cmd": "megolmEncrypt", "plaintext": b64(b"after reload")}));
    assert_eq!(m["index"].as_u64(), Some(2));
    assert_eq!(b_group.decrypt(&unb64(&m["message"])).unwrap().plaintext, b"after reload");
}

#[test]
fn certificates_sas_pairing_and_attachments_across_builds() {
    let mut wasm = Peer::spawn();
    let w = wasm.call(json!({"cmd": "init"}));

    // Certificates: WASM signs, native verifies; native signs, WASM verifies.
    let c = wasm.call(json!({"cmd": "certify", "accountId": b64(&[1; 16]), "deviceId": b64(&[2; 16]),
        "createdAt": "1760000000"}));
    let cert = verify_device_certificate(&unb64(&c["certificate"]), &unb64(&w["accountKey"])).unwrap();
    assert_eq!(cert.fields.device_ed25519.to_vec(), unb64(&w["ed25519"]));
    assert_eq!(cert.fields.created_at, 1_760_000_000);
    let native = DeviceAccount::new();
    let account_key = AccountKey::generate(&mut OsRng::new());
    let n_cert = account_key.certify(&native.certificate_fields([3; 16], [4; 16], 42)).to_bytes();
    let v = wasm.call(json!({"cmd": "verifyCertificate", "certificate": b64(&n_cert),
        "accountKey": b64(&account_key.public_key())}));
    assert_eq!(unb64(&v["deviceEd25519"]), native.ed25519_key());
    assert_eq!(
        wasm.error_code(
            json!({"cmd": "verifyCertificate", "certificate": b64(&n_cert), "accountKey": w["accountKey"]})
        ),
        "certificate_account_key_mismatch"
    );

    // SAS: the same emoji and decimals on both sides, MACs verify across builds.
    let native_sas = SasVerification::new();
    let s = wasm.call(json!({"cmd": "sasStart"}));
    let n_pk = native_sas.public_key();
    let native_sas = native_sas.establish(&unb64(&s["publicKey"])).unwrap();
    let f = wasm.call(json!({"cmd": "sasFinish", "theirPublicKey": b64(&n_pk), "txn": "t1",
        "keyId": "device_ed25519", "key": w["ed25519"]}));
    let sas = native_sas.short_auth_string("t1");
    let emoji: Vec<u8> = f["emoji"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
    assert_eq!(emoji, sas.emoji_indices.to_vec());
    let names: Vec<&str> = f["names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, sas.emoji().iter().map(|e| e.name).collect::<Vec<_>>());
    let decimals: Vec<u16> =
        f["decimals"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u16).collect();
    assert_eq!(decimals, sas.decimals.to_vec());
    native_sas.verify_mac("t1", "device_ed25519", &unb64(&w["ed25519"]), &unb64(&f["mac"])).unwrap();
    let my_mac = native_sas.mac("t1", "device_ed25519", &native.ed25519_key());
    wasm.call(json!({"cmd": "sasVerifyMac", "txn": "t1", "keyId": "device_ed25519",
        "key": b64(&native.ed25519_key()), "mac": b64(&my_mac)}));
    assert_eq!(
        wasm.error_code(json!({"cmd": "sasVerifyMac", "txn": "t2", "keyId": "device_ed25519",
            "key": b64(&native.ed25519_key()), "mac": b64(&my_mac)})),
        "sas_mac_mismatch"
    );

    // Pairing: WASM is the new device showing a QR; native scans and connects.
    let offer = wasm.call(
        json!({"cmd": "pairingOffer", "pairingId": b64(&[9; 16]), "serverUrl": "http://10.0.0.2:8080"}),
    );
    let qr = PairingQr::from_text(offer["qr"].as_str().unwrap()).unwrap();
    assert_eq!((qr.pairing_id, qr.server_url.as_str()), ([9; 16], "http://10.0.0.2:8080"));
    let (mut channel, initial) = pairing::connect(&qr.public_key, b"hello new device").unwrap();
    let a = wasm.call(json!({"cmd": "pairingAccept", "message": b64(&initial)}));
    assert_eq!(unb64(&a["plaintext"]), b"hello new device");
    assert_eq!(a["checkCode"].as_str().unwrap(), channel.check_code().digits());
    let secret = channel.encrypt(&account_key.to_secret_bytes()[..]);
    let d = wasm.call(json!({"cmd": "channelDecrypt", "message": b64(&secret)}));
    assert_eq!(unb64(&d["plaintext"]), account_key.to_secret_bytes().to_vec());
    let e = wasm.call(json!({"cmd": "channelEncrypt", "plaintext": b64(b"approved")}));
    assert_eq!(channel.decrypt(&unb64(&e["message"])).unwrap(), b"approved");

    // Attachments, 100 KB in odd chunk sizes, both directions; a flipped byte is caught.
    let file: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let r = wasm.call(json!({"cmd": "attachmentEncrypt", "plaintext": b64(&file), "chunk": 7777}));
    let secrets = AttachmentSecrets::from_bytes(&unb64(&r["secrets"])).unwrap();
    let mut dec = AttachmentDecryptor::new(&secrets);
    let mut plain = Vec::new();
    for chunk in unb64(&r["ciphertext"]).chunks(4096) {
        plain.extend(dec.update(chunk));
    }
    dec.finish().unwrap();
    assert_eq!(plain, file);
    let mut enc = AttachmentEncryptor::new(&mut OsRng::new());
    let mut ct: Vec<u8> = file.chunks(5000).flat_map(|c| enc.update(c)).collect();
    let secrets = enc.finish();
    let d = wasm.call(json!({"cmd": "attachmentDecrypt", "ciphertext": b64(&ct), "secrets": b64(&secrets.to_bytes()), "chunk": 3333}));
    assert_eq!(unb64(&d["plaintext"]), file);
    ct[500] ^= 1;
    assert_eq!(
        wasm.error_code(json!({"cmd": "attachmentDecrypt", "ciphertext": b64(&ct), "secrets": b64(&secrets.to_bytes()), "chunk": 3333})),
        "attachment_hash_mismatch"
    );
}

#[test]
fn key_backup_across_builds() {
    let mut wasm = Peer::spawn();
    let account_id = [0x11; 16];
    let (sender_account, sender_device, conversation) = ([0x21; 16], [0x22; 16], [0x23; 16]);

    // --- WASM backs up (Argon2id at the default parameters), native restores. ---
    let created = wasm.call(json!({"cmd": "keyBackupCreate", "passphrase": "correct horse battery",
        "accountId": b64(&account_id), "accountKeySecret": b64(&[0x33; 32])}));
    assert_eq!(created["hasPassphrase"], true);
    let auth = unb64(&created["authData"]);
    let recovery = created["recoveryKey"].as_str().unwrap();
    let g = wasm.call(json!({"cmd": "megolmOutbound"}));
    let entry = wasm.call(json!({"cmd": "keyBackupSession", "accountId": b64(&account_id),
        "sessionKey": g["sessionKey"], "senderAccountId": b64(&sender_account),
        "senderDeviceId": b64(&sender_device), "conversationId": b64(&conversation)}));
    assert_eq!(entry["sessionId"], g["sessionId"]);
    let m = wasm.call(json!({"cmd": "megolmEncrypt", "plaintext": b64(b"history from wasm")}));

    let key = BackupKey::from_recovery_key(recovery).unwrap();
    key.check(&auth).unwrap();
    assert!(backup::has_passphrase(&auth).unwrap());
    assert_eq!(*key.decrypt_identity(&account_id, &unb64(&created["identity"])).unwrap(), [0x33; 32]);
    let mut restored =
        key.decrypt_session(&account_id, g["sessionId"].as_str().unwrap(), &unb64(&entry["entry"])).unwrap();
    assert_eq!(
        restored.origin,
        SessionOrigin {
            sender_account_id: sender_account,
            sender_device_id: sender_device,
            conversation_id: Some(conversation)
        }
    );
    assert_eq!(restored.session.decrypt(&unb64(&m["message"])).unwrap().plaintext, b"history from wasm");
    let by_passphrase = BackupKey::from_passphrase(b"correct horse battery", &auth).unwrap();
    assert_eq!(by_passphrase.recovery_key(), key.recovery_key());
    assert_eq!(BackupKey::from_passphrase(b"correct horse", &auth).unwrap_err(), Error::WrongPassphrase);

    // --- native backs up, WASM restores with the recovery key (typed loosely) or passphrase. ---
    let key = BackupKey::generate(&mut OsRng::new());
    let auth =
        key.auth_data_with_params(Some(b"native pass"), backup::KdfParams::MIN, &mut OsRng::new()).unwrap();
    let plain_auth = key.auth_data(None, &mut OsRng::new()).unwrap();
    let identity = key.encrypt_identity(&account_id, &[0x44; 32], &mut OsRng::new());
    let mut out = OutboundGroupSession::new();
    let inbound = InboundGroupSession::from_session_key(&out.session_key()).unwrap();
    let origin = SessionOrigin {
        sender_account_id: sender_account,
        sender_device_id: sender_device,
        conversation_id: None,
    };
    let entry = key.encrypt_session(&account_id, &inbound, &origin, &mut OsRng::new());
    let message = out.encrypt(b"history from native");
    let typed = key.recovery_key().to_lowercase().replace(' ', "-");
    let restore = |wasm: &mut Peer, how: Value| {
        let mut request = json!({"cmd": "keyBackupRestore", "authData": b64(&auth),
            "accountId": b64(&account_id), "identity": b64(&identity), "sessionId": out.session_id(),
            "entry": b64(&entry), "message": b64(&message)});
        for (k, v) in how.as_object().unwrap() {
            request[k] = v.clone();
        }
        wasm.call(request)
    };
    for how in [json!({"recoveryKey": typed}), json!({"passphrase": "native pass"})] {
        let r = restore(&mut wasm, how);
        assert_eq!(r["recoveryKey"].as_str().unwrap(), key.recovery_key().as_str());
        assert_eq!(r["pickledRecoveryKey"], r["recoveryKey"]);
        assert_eq!(unb64(&r["bytes"]), *key.to_bytes());
        assert_eq!(unb64(&r["seed"]), [0x44; 32]);
        assert_eq!(unb64(&r["senderAccountId"]), sender_account);
        assert_eq!(unb64(&r["senderDeviceId"]), sender_device);
        assert_eq!(r["conversationId"], Value::Null);
        assert_eq!(r["sessionId"], out.session_id());
        assert_eq!(unb64(&r["plaintext"]), b"history from native");
    }

    // --- the errors the PWA shows, with their stable codes. ---
    let recovery = key.recovery_key().to_string();
    // A typo in the checksum characters (compact positions 52 and 53) is always caught.
    let mut typo: Vec<u8> = recovery.bytes().filter(|b| *b != b' ').collect();
    typo[52] = if typo[52] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(typo).unwrap();
    assert_eq!(
        wasm.error_code(json!({"cmd": "keyBackupCheck", "recoveryKey": typo, "authData": b64(&auth)})),
        "recovery_key_malformed"
    );
    let other = BackupKey::generate(&mut OsRng::new()).recovery_key().to_string();
    assert_eq!(
        wasm.error_code(json!({"cmd": "keyBackupCheck", "recoveryKey": other, "authData": b64(&auth)})),
        "wrong_recovery_key"
    );
    assert_eq!(
        wasm.error_code(
            json!({"cmd": "keyBackupCheck", "recoveryKey": recovery, "authData": b64(&auth[..20])})
        ),
        "malformed_backup"
    );
    assert_eq!(
        wasm.error_code(
            json!({"cmd": "keyBackupPassphrase", "passphrase": "native pas", "authData": b64(&auth)})
        ),
        "wrong_passphrase"
    );
    assert_eq!(
        wasm.error_code(
            json!({"cmd": "keyBackupPassphrase", "passphrase": "native pass", "authData": b64(&plain_auth)})
        ),
        "no_passphrase"
    );
    let mut weak = auth.clone();
    weak[39 + 6..39 + 10].copy_from_slice(&1024u32.to_be_bytes());
    assert_eq!(
        wasm.error_code(
            json!({"cmd": "keyBackupPassphrase", "passphrase": "native pass", "authData": b64(&weak)})
        ),
        "backup_params_out_of_range"
    );
    let (_, other_session) = {
        let o = OutboundGroupSession::new();
        let i = InboundGroupSession::from_session_key(&o.session_key()).unwrap();
        (o, i)
    };
    assert_eq!(
        wasm.error_code(json!({"cmd": "keyBackupDecryptSession", "recoveryKey": recovery,
            "accountId": b64(&account_id), "sessionId": other_session.session_id(), "entry": b64(&entry)})),
        "backup_decryption"
    );
    let h = wasm.call(json!({"cmd": "hasPassphrase", "authData": b64(&plain_auth)}));
    assert_eq!(h["hasPassphrase"], false);
    assert_eq!(
        wasm.error_code(json!({"cmd": "hasPassphrase", "authData": b64(b"KLBA")})),
        "malformed_backup"
    );
}

#[test]
fn a_contact_verification_between_native_and_wasm() {
    let mut wasm = Peer::spawn();
    let alice = Identity { device_ed25519: [0xa1; 32], account_key: [0xa2; 32] };
    let bob = Identity { device_ed25519: [0xb1; 32], account_key: [0xb2; 32] };
    let now: u64 = 1_700_000_000_000;
    let strings =
        |v: &Value| -> Vec<Vec<u8>> { v["outgoing"].as_array().unwrap().iter().map(unb64).collect() };

    // Native Alice asks; WASM Bob takes the request and accepts.
    let mut a = Verification::request([7; 16], alice, bob.account_key, now);
    let request = a.take_outgoing().unwrap();
    let r = wasm.call(json!({"cmd": "verifyFromRequest", "request": b64(&request),
        "theirDevice": b64(&alice.device_ed25519), "theirAccount": b64(&alice.account_key),
        "ourDevice": b64(&bob.device_ed25519), "ourAccount": b64(&bob.account_key), "now": now + 10}));
    assert_eq!(r["state"], "requested");
    let r = wasm.call(json!({"cmd": "verifyAccept"}));
    let mut to_alice = strings(&r);
    let pass = |a: &mut Verification, wasm: &mut Peer, to_alice: &mut Vec<Vec<u8>>| -> Value {
        for m in to_alice.drain(..) {
            a.receive(&m, bob.device_ed25519);
        }
        let mut last = Value::Null;
        while let Some(m) = a.take_outgoing() {
            last = wasm.call(json!({"cmd": "verifyReceive", "message": b64(&m),
                "sender": b64(&alice.device_ed25519)}));
            to_alice.extend(strings(&last));
        }
        last
    };
    let r = pass(&mut a, &mut wasm, &mut to_alice); // ready -> key -> reveal
    assert_eq!(r["state"], "compare");
    for m in to_alice.drain(..) {
        a.receive(&m, bob.device_ed25519);
    }
    assert_eq!(a.state(), State::Compare);
    let emoji: Vec<u8> = r["emoji"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
    assert_eq!(emoji, a.short_auth_string().unwrap().emoji_indices.to_vec());

    // Both confirm; each side is done and names the other's account key.
    let r = wasm.call(json!({"cmd": "verifyConfirm"}));
    to_alice.extend(strings(&r));
    a.confirm().unwrap();
    let r = pass(&mut a, &mut wasm, &mut to_alice);
    assert_eq!(r["state"], "done");
    assert_eq!(unb64(&r["verified"]), alice.account_key.to_vec());
    for m in to_alice.drain(..) {
        a.receive(&m, bob.device_ed25519);
    }
    assert_eq!(a.state(), State::Done);
    assert_eq!(a.verified_account_key(), Some(bob.account_key));

    // A stale request is refused with its stable code.
    let code = wasm.error_code(json!({"cmd": "verifyFromRequest", "request": b64(&request),
        "theirDevice": b64(&alice.device_ed25519), "theirAccount": b64(&alice.account_key),
        "ourDevice": b64(&bob.device_ed25519), "ourAccount": b64(&bob.account_key), "now": now + 3_600_000}));
    assert_eq!(code, "verification_request_expired");
}

// --- The client machine: a native Machine and the WASM CryptoMachine in one conversation. ---

fn bin(bytes: &[u8]) -> Value {
    json!({"b64": b64(bytes)})
}

fn unbin(v: &Value) -> Vec<u8> {
    unb64(&v["b64"])
}

impl Peer {
    /// Calls a `CryptoMachine` method (the peer persists its records after each call, and
    /// restores the machine from them when it was created with `restoreEachStep`).
    fn machine(&mut self, method: &str, args: Value) -> Value {
        self.call(json!({"cmd": "machine", "method": method, "args": args}))["result"].clone()
    }

    fn machine_error(&mut self, method: &str, args: Value) -> String {
        self.error_code(json!({"cmd": "machine", "method": method, "args": args}))
    }
}

fn claimed_json(key: &SignedOneTimeKey) -> Value {
    json!({"signedKey": key_json(key.key_id, &key.public_key, &key.signature, false)})
}

fn machine_otk(v: &Value) -> SignedOneTimeKey {
    otk_from(&v["signedKey"])
}

#[test]
fn client_machines_native_and_wasm_in_one_conversation() {
    use kitsulan_crypto::PickleKey;
    use kitsulan_crypto::client::{Config, GroupMessage, Id, Machine, MissingKey, Received};

    for restore_each_step in [false, true] {
        let mut wasm = Peer::spawn();
        let now = 1_760_000_000_000u64;
        let conversation = Id::new_v7(now);
        let (alice_account, alice_device) = (Id::new_v7(now), Id::new_v7(now));
        let (bob_account, bob_device, bob2_device) = (Id::new_v7(now), Id::new_v7(now), Id::new_v7(now));

        // Alice: a native machine.
        let alice_key = AccountKey::generate(&mut OsRng::new());
        let alice_public = alice_key.public_key();
        let mut alice = Machine::new(
            PickleKey::generate(&mut OsRng::new()),
            Config::default(),
            alice_account,
            alice_device,
            Some(alice_key),
        );
        let alice_up = alice.keys_to_upload(3, now).unwrap();
        alice.keys_uploaded();
        let alice_cert = alice_up.certificate.clone().unwrap();
        let mut alice_otks = alice_up.one_time_keys.clone();

        // Bob: the WASM machine, and a second native device of bob's that comes later.
        let bob_key = AccountKey::generate(&mut OsRng::new());
        let bob_public = bob_key.public_key();
        wasm.call(json!({"cmd": "machineCreate", "accountId": bob_account.to_string(),
            "deviceId": bob_device.to_string(), "accountKeySecret": b64(&*bob_key.to_secret_bytes()),
            "restoreEachStep": restore_each_step}));
        let bob_up = wasm.machine("keysToUpload", json!([3, now]));
        wasm.machine("keysUploaded", json!([]));
        let bob_cert = unbin(&bob_up["certificate"]);
        let mut bob_otks: Vec<SignedOneTimeKey> =
            bob_up["oneTimeKeys"].as_array().unwrap().iter().map(machine_otk).collect();
        assert_eq!(bob_otks.len(), 3);
        assert_eq!(wasm.machine("isReady", json!(null)), json!(true));

        // Alice learns bob's device (its certificate checked natively against bob's key).
        let change = alice.receive_keys(bob_account, &bob_public, &[(bob_device, &bob_cert)]).unwrap();
        assert_eq!(change.added, vec![bob_device]);
        alice.receive_keys(alice_account, &alice_public, &[(alice_device, &alice_cert)]).unwrap();
        assert_eq!(alice.devices_missing_olm(&[bob_device]), vec![bob_device]);
        alice.receive_claimed_key(bob_device, &ClaimedKey::OneTime(bob_otks.remove(0))).unwrap();

        // Native -> WASM: the room key over Olm, then a Megolm message.
        let share = alice.share_room_key(conversation, &[bob_account], now).unwrap();
        assert_eq!(share.messages.len(), 1);
        let key_message = &share.messages[0];
        // WASM does not know alice yet: a clear error, and the message is not taken.
        assert_eq!(
            wasm.machine_error(
                "receiveToDevice",
                json!([
                    alice_account.to_string(),
                    alice_device.to_string(),
                    key_message.message_id.to_string(),
                    bin(&key_message.ciphertext),
                    now
                ])
            ),
            "unknown_device"
        );
        let change = wasm.machine(
            "receiveKeys",
            json!([
                alice_account.to_string(),
                bin(&alice_public),
                [alice_device.to_string()],
                [bin(&alice_cert)]
            ]),
        );
        assert_eq!(change["added"], json!([alice_device.to_string()]));
        let got = wasm.machine(
            "receiveToDevice",
            json!([
                alice_account.to_string(),
                alice_device.to_string(),
                key_message.message_id.to_string(),
                bin(&key_message.ciphertext),
                now
            ]),
        );
        assert_eq!(got["kind"], "roomKey");
        assert_eq!(got["sessionId"], json!(share.session_id));
        assert_eq!(got["conversationId"], json!(conversation.to_string()));
        alice.confirm_room_key_share(&share);
        let hello = alice.encrypt(conversation, b"hello from native").unwrap();
        assert!(hello.unreadable_by.is_empty());
        let hello_id = Id::new_v7(now);
        let d = wasm.machine(
            "decrypt",
            json!([
                hello_id.to_string(),
                conversation.to_string(),
                alice_account.to_string(),
                alice_device.to_string(),
                bin(hello.session_id.as_bytes()),
                bin(&hello.ciphertext)
            ]),
        );
        assert_eq!(d["ok"], true, "{d}");
        assert_eq!(unbin(&d["plaintext"]), b"hello from native");
        // Replayed under another id: refused in WASM too.
        let d = wasm.machine(
            "decrypt",
            json!([
                Id::new_v7(now).to_string(),
                conversation.to_string(),
                alice_account.to_string(),
                alice_device.to_string(),
                bin(hello.session_id.as_bytes()),
                bin(&hello.ciphertext)
            ]),
        );
        assert_eq!((d["ok"].clone(), d["reason"].clone()), (json!(false), json!("replayed")));

        // WASM -> native: bob claims one of alice's keys, shares, encrypts.
        assert_eq!(
            wasm.machine_error("encrypt", json!([conversation.to_string(), bin(b"x")])),
            "no_outbound_session"
        );
        wasm.machine(
            "receiveKeys",
            json!([bob_account.to_string(), bin(&bob_public), [bob_device.to_string()], [bin(&bob_cert)]]),
        );
        // Bob answers on the Olm session alice's pre-key message opened: nothing to claim.
        let missing = wasm.machine("devicesMissingOlm", json!([[alice_device.to_string()]]));
        assert_eq!(missing, json!([]));
        // A claimed key with a forged signature is refused in WASM as natively.
        let mut forged = alice_otks.remove(0);
        forged.key_id += 1;
        assert_eq!(
            wasm.machine_error("receiveClaimedKey", json!([alice_device.to_string(), claimed_json(&forged)])),
            "one_time_key_signature"
        );
        let share =
            wasm.machine("shareRoomKey", json!([conversation.to_string(), [alice_account.to_string()], now]));
        assert_eq!(share["rotated"], true);
        let messages = share["messages"].as_array().unwrap().clone();
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(m["recipientDeviceId"], json!(alice_device.to_string()));
        let received = alice
            .receive_to_device(
                bob_account,
                bob_device,
                Id::parse(m["messageId"].as_str().unwrap()).unwrap(),
                &unbin(&m["ciphertext"]),
                now,
            )
            .unwrap();
        assert!(matches!(received, Received::RoomKey { conversation_id: Some(c), .. } if c == conversation));
        wasm.machine(
            "confirmRoomKeyShare",
            json!([conversation.to_string(), share["sessionId"].clone(), [alice_device.to_string()]]),
        );
        let reply = wasm.machine("encrypt", json!([conversation.to_string(), bin(b"hi from wasm")]));
        assert_eq!(reply["unreadableBy"], json!([]));
        let session_id = reply["sessionId"].as_str().unwrap().to_owned();
        let ciphertext = unbin(&reply["ciphertext"]);
        let message = GroupMessage {
            message_id: Id::new_v7(now),
            conversation_id: conversation,
            sender_account_id: bob_account,
            sender_device_id: bob_device,
            session_id: session_id.as_bytes(),
            ciphertext: &ciphertext,
        };
        assert_eq!(&*alice.decrypt(&message).unwrap().plaintext, b"hi from wasm");

        // A second native device of bob's, made after alice's message, asks the WASM device for
        // that session; the WASM device forwards it; the native device reads the message.
        let mut bob2 = Machine::new(
            PickleKey::generate(&mut OsRng::new()),
            Config::default(),
            bob_account,
            bob2_device,
            Some(AccountKey::from_secret_bytes(&bob_key.to_secret_bytes())),
        );
        let bob2_up = bob2.keys_to_upload(3, now).unwrap();
        bob2.keys_uploaded();
        let bob2_cert = bob2_up.certificate.unwrap();
        let own = [(bob_device, bob_cert.as_slice()), (bob2_device, bob2_cert.as_slice())];
        bob2.receive_keys(bob_account, &bob_public, &own).unwrap();
        bob2.receive_claimed_key(bob_device, &ClaimedKey::OneTime(bob_otks.remove(0))).unwrap();
        let old = GroupMessage {
            message_id: hello_id,
            conversation_id: conversation,
            sender_account_id: alice_account,
            sender_device_id: alice_device,
            session_id: hello.session_id.as_bytes(),
            ciphertext: &hello.ciphertext,
        };
        let missing: MissingKey = bob2.decrypt(&old).unwrap_err().missing.unwrap();
        let requests = bob2.request_missing_key(&missing, now).unwrap();
        assert_eq!(requests.len(), 1);
        wasm.machine(
            "receiveKeys",
            json!([
                bob_account.to_string(),
                bin(&bob_public),
                [bob_device.to_string(), bob2_device.to_string()],
                [bin(&bob_cert), bin(&bob2_cert)]
            ]),
        );
        let asked = wasm.machine(
            "receiveToDevice",
            json!([
                bob_account.to_string(),
                bob2_device.to_string(),
                requests[0].message_id.to_string(),
                bin(&requests[0].ciphertext),
                now
            ]),
        );
        assert_eq!(asked["kind"], "keyRequest", "{asked}");
        let answer = &asked["answer"];
        assert_eq!(answer["recipientDeviceId"], json!(bob2_device.to_string()));
        let forwarded = bob2
            .receive_to_device(
                bob_account,
                bob_device,
                Id::parse(answer["messageId"].as_str().unwrap()).unwrap(),
                &unbin(&answer["ciphertext"]),
                now,
            )
            .unwrap();
        assert!(matches!(forwarded, Received::ForwardedKey { key, .. } if key == missing));
        assert_eq!(&*bob2.decrypt(&old).unwrap().plaintext, b"hello from native");
    }
}
