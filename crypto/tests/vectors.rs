//! Recorded test vectors: any change to a KitsuLAN wire or pickle format fails here.
//!
//! * Deterministic vectors for our own formats, from fixed seeds and a seeded ChaCha20 RNG,
//!   recorded once as constants: the device certificate, the one-time-key signing payload and
//!   signature, attachment ciphertext and hash, the backup KDF output and blob, key backup v1
//!   (recovery key, auth data, identity, session entry, backup-key pickle). Plus one NIST
//!   SP 800-38A vector so our AES-256-CTR is known to be the standard one.
//! * Fixtures recorded once: `tests/vectors/fixture-v1.json` (pickled accounts, Olm and Megolm
//!   sessions with a replay record, and ciphertexts made with them) must still unpickle and
//!   decrypt; `tests/vectors/key-backup-v1.json` (a key backup of a real Megolm session) must
//!   still restore and decrypt its recorded messages. vodozemac's own randomness cannot be
//!   seeded, so these are files, not constants; regenerate them only for a deliberate format
//!   change: `KITSULAN_WRITE_VECTORS=1 cargo test -p kitsulan-crypto --test vectors -- --ignored`
//!   (both are rewritten: commit only the one whose format changed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chacha20::ChaCha20Rng;
use kitsulan_crypto::attachment::{AttachmentDecryptor, AttachmentEncryptor, AttachmentSecrets};
use kitsulan_crypto::backup::{self, BackupKey, KdfParams, PassphraseKey, SessionOrigin};
use kitsulan_crypto::certificate::CertificateFields;
use kitsulan_crypto::device::{ClaimedKey, one_time_key_payload};
use kitsulan_crypto::megolm::{InboundGroupSession, OutboundGroupSession};
use kitsulan_crypto::olm::OlmSession;
use kitsulan_crypto::{
    AccountKey, DeviceAccount, Error, PickleKey, SignedOneTimeKey, verify_device_certificate,
    verify_one_time_key,
};
use rand_core::SeedableRng as _;
use serde_json::{Value, json};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

// ---------------------------------------------------------------- certificate

const CERT_V1: &str = "4b495453554c414e2d44455643455254010190f5a1b2c37d4e8f9a0b1c2d3e4f500190f5a1b2c37d4e8f9a0b1c2d3e4f5105a2ed1a761aa71857c5a6e12131565f6f86a1bec6691920295f78136b99b90e8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3943333333333333333333333333333333333333333333333333333333333333333000000006955b90043aee94482789302de7bed5db23d8f2efa4b3700825e17fc4b4502bd99037182768977cb2213269f4a24faee42dfc323f9ba47fe1b484fff8d76b8a2e3ae3c01";

#[test]
fn device_certificate_vector() {
    let mut rng = ChaCha20Rng::from_seed([0x42; 32]);
    let account_key = AccountKey::generate(&mut rng);
    // A second Ed25519 key from a fixed seed stands in for the device key.
    let device_ed25519 = AccountKey::from_secret_bytes(&[0x02; 32]).public_key();
    let fields = CertificateFields {
        account_id: unhex("0190f5a1b2c37d4e8f9a0b1c2d3e4f50").try_into().unwrap(),
        device_id: unhex("0190f5a1b2c37d4e8f9a0b1c2d3e4f51").try_into().unwrap(),
        device_ed25519,
        device_curve25519: [0x33; 32],
        created_at: 1_767_225_600,
    };
    let cert = account_key.certify(&fields).to_bytes();
    assert_eq!(hex(&cert), CERT_V1, "device certificate v1 encoding or signature changed");
    let parsed = verify_device_certificate(&unhex(CERT_V1), &account_key.public_key()).unwrap();
    assert_eq!(parsed.fields, fields);
}

// ---------------------------------------------------------------- one-time keys

const OTK_PAYLOAD: &str = "6b697473756c616e2f6f746b2f76310000000000000007abababababababababababababababababababababababababababababababab";
const OTK_SIGNATURE: &str = "684344fa42ac07136d380e98f4ba3361db095288ccec08bb84993fc0f51f2331e8f9bf52a79000652f365633ee95d45e2eed747fb9006b5c0ce88f8264e3d10c";

#[test]
fn one_time_key_payload_and_signature_vector() {
    let payload = one_time_key_payload(7, &[0xab; 32]);
    assert_eq!(hex(&payload), OTK_PAYLOAD, "one-time key signing payload changed");
    // Ed25519 is deterministic, so a fixed key gives a fixed signature over the payload.
    let signer = vodozemac::Ed25519SecretKey::from_slice(&[0x07; 32]);
    assert_eq!(hex(&signer.sign(&payload).to_bytes()), OTK_SIGNATURE, "Ed25519 over the payload changed");
    let key = SignedOneTimeKey {
        key_id: 7,
        public_key: [0xab; 32],
        signature: unhex(OTK_SIGNATURE).try_into().unwrap(),
    };
    verify_one_time_key(signer.public_key().as_bytes(), &key).unwrap();
}

// ---------------------------------------------------------------- attachments

const ATTACHMENT_SECRETS: &str = "015cf17e61e7e3a4a16223ccb4a4cc85e3d8a70c938c8b8e6b2cccbc3df6cc71fb2c5fe846e053d07300000000000000001203c694f1b3d04609e4aeb0dcb7665778ff1b978edda17e56660a810a8c48c2";
const ATTACHMENT_CIPHERTEXT: &str = "2f94f16c301844d9e839355963b375c5a71986e323fc47fee26aebeeed219a75c5c21f53920850d9c052aa2358ab7a1646888de68c6c193fa596d75cd7dd1cd0d0c06edfb71a8b531c77c8a99c37d48d612412f29c30507bd0df6ee278e0c7f457ba1fdb03ce43dad7c77e23b306493e8dd3e98b6027dc3633521743e0ab795114f1c2705d6da6";

fn attachment_plaintext() -> Vec<u8> {
    b"KitsuLAN attachment vector: 0123456789abcdef\n".repeat(3)
}

#[test]
fn attachment_vector() {
    let mut rng = ChaCha20Rng::from_seed([0x43; 32]);
    let mut enc = AttachmentEncryptor::new(&mut rng);
    let data = attachment_plaintext();
    let ct: Vec<u8> = data.chunks(50).flat_map(|c| enc.update(c)).collect();
    let secrets = enc.finish();
    assert_eq!(hex(&secrets.to_bytes()), ATTACHMENT_SECRETS, "attachment key/IV/hash encoding changed");
    assert_eq!(hex(&ct), ATTACHMENT_CIPHERTEXT, "attachment ciphertext changed");
    let recorded = AttachmentSecrets::from_bytes(&unhex(ATTACHMENT_SECRETS)).unwrap();
    let mut dec = AttachmentDecryptor::new(&recorded);
    assert_eq!(dec.update(&unhex(ATTACHMENT_CIPHERTEXT)), data);
    dec.finish().unwrap();
}

#[test]
fn aes_256_ctr_is_nist_sp800_38a_f5_5() {
    let key = unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
    let iv = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    let plaintext = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    let ciphertext = unhex("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5");
    let secrets =
        AttachmentSecrets { key: key.try_into().unwrap(), iv: iv.try_into().unwrap(), sha256: [0; 32] };
    let mut dec = AttachmentDecryptor::new(&secrets);
    assert_eq!(dec.update(&ciphertext), plaintext);
    // The all-zero hash is of course wrong.
    assert_eq!(dec.finish().unwrap_err(), Error::AttachmentHashMismatch);
}

// ---------------------------------------------------------------- backups

const BACKUP_KEY: &str = "01818259b6310026a8e0dbac5d2e6927abcfdb07b32258fac4f61b18b80f929085000102030405060708090a0b0c0d0e0f00004c000000000200000001";
const BACKUP_BLOB: &str = "4b4c424b010100004c000000000200000001000102030405060708090a0b0c0d0e0f73a448384bab47d419f52711ebdb360bf68a16cd8764d0d069405e99ee932af15492d55d7c113404";

#[test]
fn backup_vector() {
    let salt: [u8; 16] = unhex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
    let key = PassphraseKey::derive(b"correct horse battery staple", salt, KdfParams::MIN).unwrap();
    assert_eq!(hex(&key.to_bytes()), BACKUP_KEY, "Argon2id derivation or key encoding changed");
    let mut rng = ChaCha20Rng::from_seed([0x44; 32]);
    let blob = key.encrypt(b"room keys v1", &mut rng);
    assert_eq!(hex(&blob), BACKUP_BLOB, "backup blob format changed");
    let (_, pt) =
        backup::decrypt_with_passphrase(b"correct horse battery staple", &unhex(BACKUP_BLOB)).unwrap();
    assert_eq!(&*pt, b"room keys v1");
    assert_eq!(
        backup::decrypt_with_passphrase(b"Correct horse battery staple", &unhex(BACKUP_BLOB)).unwrap_err(),
        Error::BackupDecryption
    );
}

// ---------------------------------------------------------------- key backup v1

const KB_RECOVERY_KEY: &str = "819D DR4Y VQGZ TAK7 HX5B JA3Z 0WAQ J7BB 338M P2VT CPMT Z40F JNRE NS8";
const KB_AUTH_DATA: &str = "4b4c424101e60d01e51bc8c0c38185b0dbc274e0ea77cfe6b9a21246b51285206baba4d7eb0000";
const KB_AUTH_DATA_PASSPHRASE: &str = "4b4c424101e60d01e51bc8c0c38185b0dbc274e0ea77cfe6b9a21246b51285206baba4d7eb005e4b4c424b010100004c0000000002000000013c4f733de3caaf1ef6cb54a4ae137c5194f8080f1b31a9fca70d43b7dec4ffed23516a8bb11dc33070d23d6c759d856f819ffd6ba3cfe09686e57d1956b395f4b4ac06b1a27bd78add76897d";
const KB_IDENTITY: &str = "4b4c4249017714ff77de8523523306c2103ca865ec7bfdcc77cbde5dd06fb8eaaa8deef1ff4f246b1510af2176982bfa30affe1fc340d89034f39c703406ed5d30";
const KB_SESSION: &str = "4b4c425301a664d83427243f60bf75fcc04985b5a99fc332b8de1ff92bd557c8e6e4d13ad688ef54d43b3389f963be3a0dc07ecc42c15cf843a983bccfded9d83668e37e237cb6dd60bc3b199cc4174b47a3e190f14966b9556169973cc7d7b5002e9b7d7db33fb3b18763c2483e7439e963b55a4af37af8d33c06e994d9ef4455c84d4f3094d72a5d61552975b91499854f94859c16b70e933eec26b92b1f9e7152fc8541f2cd3fc7ea9578d7415d761161e78cc43bede521224c542e6a59286ea7c7c817e2efbf93e3d01c4a41b38ba1c8dc1b9cb018bcd2315bc4fc7b6695ba5b813ae9bb0da7a34cc8e79f6fa35d456d2b55ca5a9332";
const KB_PICKLE: &str =
    "S0xQSwEEP57vGLwcwcpAfDmp9F1kbnmVyPvxMoB0tbas2jgxeIKl+HdksLqXY8gBQaKVryqVP6iII6OnBQr2N2zi";

const KB_ACCOUNT_ID: &str = "0190f5a1b2c37d4e8f9a0b1c2d3e4f50";
const KB_PASSPHRASE: &[u8] = b"correct horse battery staple";

fn kb_origin() -> SessionOrigin {
    SessionOrigin {
        sender_account_id: unhex("0190f5a1b2c37d4e8f9a0b1c2d3e4f60").try_into().unwrap(),
        sender_device_id: unhex("0190f5a1b2c37d4e8f9a0b1c2d3e4f61").try_into().unwrap(),
        conversation_id: Some(unhex("0190f5a1b2c37d4e8f9a0b1c2d3e4f62").try_into().unwrap()),
    }
}

/// A Megolm session key exported at index 5, from fixed bytes (vodozemac's own sessions
/// cannot be seeded): `version 1 | index | ratchet (128) | Ed25519 signing key`.
fn kb_exported_session_key() -> Vec<u8> {
    let mut exported = vec![1];
    exported.extend_from_slice(&5u32.to_be_bytes());
    exported.extend((0..128u8).map(|i| i.wrapping_mul(7) ^ 0x5a));
    exported.extend_from_slice(&AccountKey::from_secret_bytes(&[0x48; 32]).public_key());
    exported
}

#[test]
fn key_backup_vector() {
    let mut rng = ChaCha20Rng::from_seed([0x46; 32]);
    let account_id: [u8; 16] = unhex(KB_ACCOUNT_ID).try_into().unwrap();
    let key = BackupKey::generate(&mut rng);
    let auth = key.auth_data(None, &mut rng).unwrap();
    let wrapped = key.auth_data_with_params(Some(KB_PASSPHRASE), KdfParams::MIN, &mut rng).unwrap();
    let identity = key.encrypt_identity(&account_id, &[0x47; 32], &mut rng);
    let session = InboundGroupSession::import(&kb_exported_session_key()).unwrap();
    let entry = key.encrypt_session(&account_id, &session, &kb_origin(), &mut rng);
    let pickle = key.pickle(&PickleKey::from_bytes([0x49; 32]), &mut rng);
    let written = [
        ("KB_RECOVERY_KEY", key.recovery_key().to_string()),
        ("KB_AUTH_DATA", hex(&auth)),
        ("KB_AUTH_DATA_PASSPHRASE", hex(&wrapped)),
        ("KB_IDENTITY", hex(&identity)),
        ("KB_SESSION", hex(&entry)),
        ("KB_PICKLE", pickle),
    ];
    let recorded =
        [KB_RECOVERY_KEY, KB_AUTH_DATA, KB_AUTH_DATA_PASSPHRASE, KB_IDENTITY, KB_SESSION, KB_PICKLE];
    for ((name, value), expected) in written.iter().zip(recorded) {
        assert_eq!(value, expected, "{name}: key backup v1 encoding changed");
    }
}

#[test]
fn key_backup_recorded_blobs_still_decode() {
    let account_id: [u8; 16] = unhex(KB_ACCOUNT_ID).try_into().unwrap();
    let key = BackupKey::from_recovery_key(KB_RECOVERY_KEY).unwrap();
    key.check(&unhex(KB_AUTH_DATA)).unwrap();
    key.check(&unhex(KB_AUTH_DATA_PASSPHRASE)).unwrap();
    assert!(!backup::has_passphrase(&unhex(KB_AUTH_DATA)).unwrap());
    assert!(backup::has_passphrase(&unhex(KB_AUTH_DATA_PASSPHRASE)).unwrap());
    let opened = BackupKey::from_passphrase(KB_PASSPHRASE, &unhex(KB_AUTH_DATA_PASSPHRASE)).unwrap();
    assert_eq!(*opened.recovery_key(), KB_RECOVERY_KEY);
    assert_eq!(
        BackupKey::from_passphrase(b"Correct horse battery staple", &unhex(KB_AUTH_DATA_PASSPHRASE))
            .unwrap_err(),
        Error::WrongPassphrase
    );
    assert_eq!(*key.decrypt_identity(&account_id, &unhex(KB_IDENTITY)).unwrap(), [0x47; 32]);
    let session_id = InboundGroupSession::import(&kb_exported_session_key()).unwrap().session_id();
    let restored = key.decrypt_session(&account_id, &session_id, &unhex(KB_SESSION)).unwrap();
    assert_eq!(restored.origin, kb_origin());
    assert_eq!(restored.session.first_known_index(), 5);
    assert_eq!(*restored.session.export_at_first_known_index(), kb_exported_session_key());
    let unpickled = BackupKey::from_pickle(KB_PICKLE, &PickleKey::from_bytes([0x49; 32])).unwrap();
    assert_eq!(*unpickled.recovery_key(), KB_RECOVERY_KEY);
    // Another backup key is refused as such, before anything is decrypted.
    let other = BackupKey::generate(&mut ChaCha20Rng::from_seed([0x4a; 32]));
    assert_eq!(other.check(&unhex(KB_AUTH_DATA)).unwrap_err(), Error::WrongRecoveryKey);
}

/// A key backup made with real vodozemac sessions (unseedable, so recorded once in
/// `tests/vectors/key-backup-v1.json`): the restored session must still decrypt the recorded
/// history, and the passphrase must still open the recorded auth data.
const KEY_BACKUP_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/key-backup-v1.json");

fn make_key_backup_fixture() -> Value {
    let mut rng = ChaCha20Rng::from_seed([0x4b; 32]);
    let account_id: [u8; 16] = unhex(KB_ACCOUNT_ID).try_into().unwrap();
    let key = BackupKey::generate(&mut rng);
    let auth = key.auth_data_with_params(Some(KB_PASSPHRASE), KdfParams::MIN, &mut rng).unwrap();
    let mut group = OutboundGroupSession::new();
    let inbound = InboundGroupSession::from_session_key(&group.session_key()).unwrap();
    let entry = key.encrypt_session(&account_id, &inbound, &kb_origin(), &mut rng);
    let m0 = group.encrypt(b"history at index 0");
    let m1 = group.encrypt(b"history at index 1");
    json!({
        "format": "kitsulan-crypto key backup fixture v1",
        "recovery_key": s(&key.recovery_key()),
        "auth_data": hex(&auth),
        "session_id": s(&inbound.session_id()),
        "session_entry": hex(&entry),
        "megolm_0": hex(&m0),
        "megolm_1": hex(&m1),
    })
}

#[test]
#[ignore = "writes tests/vectors/key-backup-v1.json; only for a deliberate format change"]
fn write_key_backup_fixture() {
    assert_eq!(std::env::var("KITSULAN_WRITE_VECTORS").as_deref(), Ok("1"), "set KITSULAN_WRITE_VECTORS=1");
    let text = serde_json::to_string_pretty(&make_key_backup_fixture()).unwrap();
    std::fs::write(KEY_BACKUP_FIXTURE, text + "\n").unwrap();
}

#[test]
fn recorded_key_backup_restores_and_decrypts_history() {
    let text = std::fs::read_to_string(KEY_BACKUP_FIXTURE)
        .expect("tests/vectors/key-backup-v1.json is part of the crate");
    let f: Value = serde_json::from_str(&text).unwrap();
    let g = |k: &str| f[k].as_str().unwrap().to_owned();
    let account_id: [u8; 16] = unhex(KB_ACCOUNT_ID).try_into().unwrap();
    let key = BackupKey::from_passphrase(KB_PASSPHRASE, &unhex(&g("auth_data"))).unwrap();
    assert_eq!(*key.recovery_key(), g("recovery_key"));
    let mut restored =
        key.decrypt_session(&account_id, &g("session_id"), &unhex(&g("session_entry"))).unwrap();
    assert_eq!(restored.origin, kb_origin());
    let d1 = restored.session.decrypt(&unhex(&g("megolm_1"))).unwrap();
    assert_eq!((d1.plaintext.as_slice(), d1.message_index), (&b"history at index 1"[..], 1));
    let d0 = restored.session.decrypt(&unhex(&g("megolm_0"))).unwrap();
    assert_eq!((d0.plaintext.as_slice(), d0.message_index), (&b"history at index 0"[..], 0));
}

// ---------------------------------------------------------------- recorded fixture

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/fixture-v1.json");

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// Makes the fixture. Run once; the result is committed.
fn make_fixture() -> Value {
    let mut rng = ChaCha20Rng::from_seed([0x45; 32]);
    let pickle_key = PickleKey::generate(&mut rng);
    let account_key = AccountKey::generate(&mut rng);
    let alice = DeviceAccount::new();
    let mut bob = DeviceAccount::new();
    let otk = bob.generate_one_time_keys(2)[0];
    bob.mark_keys_as_published();
    let mut a_olm = alice
        .create_outbound_session(&bob.ed25519_key(), &bob.curve25519_key(), &ClaimedKey::OneTime(otk))
        .unwrap();
    let mut group = OutboundGroupSession::new();
    let share = a_olm.encrypt(&group.session_key()).unwrap();
    let (mut b_olm, session_key) = bob.create_inbound_session(&alice.curve25519_key(), &share).unwrap();
    let mut inbound = InboundGroupSession::from_session_key(&session_key).unwrap();
    let m0 = group.encrypt(b"megolm index 0, already read");
    inbound.decrypt(&m0).unwrap();
    let m1 = group.encrypt(b"megolm index 1, unread");
    let reply = b_olm.encrypt(b"olm reply from bob, unread").unwrap();
    let next = a_olm.encrypt(b"olm from alice, unread").unwrap();
    let cert = account_key.certify(&alice.certificate_fields([1; 16], [2; 16], 1_767_225_600)).to_bytes();
    json!({
        "format": "kitsulan-crypto fixture v1",
        "pickle_key": hex(pickle_key.as_bytes()),
        "account_key": s(&account_key.pickle(&pickle_key, &mut rng)),
        "account_key_public": hex(&account_key.public_key()),
        "alice": s(&alice.pickle(&pickle_key)),
        "alice_ed25519": hex(&alice.ed25519_key()),
        "bob": s(&bob.pickle(&pickle_key)),
        "alice_olm": s(&a_olm.pickle(&pickle_key)),
        "bob_olm": s(&b_olm.pickle(&pickle_key)),
        "olm_session_id": s(&a_olm.session_id()),
        "group": s(&group.pickle(&pickle_key)),
        "inbound": s(&inbound.pickle(&pickle_key, &mut rng)),
        "megolm_session_id": s(&group.session_id()),
        "megolm_0": hex(&m0),
        "megolm_1": hex(&m1),
        "olm_to_alice": hex(&reply),
        "olm_to_bob": hex(&next),
        "certificate": hex(&cert),
    })
}

#[test]
#[ignore = "writes tests/vectors/fixture-v1.json; only for a deliberate format change"]
fn write_fixture() {
    assert_eq!(std::env::var("KITSULAN_WRITE_VECTORS").as_deref(), Ok("1"), "set KITSULAN_WRITE_VECTORS=1");
    let text = serde_json::to_string_pretty(&make_fixture()).unwrap();
    std::fs::write(FIXTURE, text + "\n").unwrap();
}

#[test]
fn recorded_fixture_still_unpickles_and_decrypts() {
    let text = std::fs::read_to_string(FIXTURE).expect("tests/vectors/fixture-v1.json is part of the crate");
    let f: Value = serde_json::from_str(&text).unwrap();
    let g = |k: &str| f[k].as_str().unwrap().to_owned();
    let pickle_key = PickleKey::from_bytes(unhex(&g("pickle_key")).try_into().unwrap());

    let account_key = AccountKey::from_pickle(&g("account_key"), &pickle_key).unwrap();
    assert_eq!(hex(&account_key.public_key()), g("account_key_public"));
    let alice = DeviceAccount::from_pickle(&g("alice"), &pickle_key).unwrap();
    assert_eq!(hex(&alice.ed25519_key()), g("alice_ed25519"));
    let cert = verify_device_certificate(&unhex(&g("certificate")), &account_key.public_key()).unwrap();
    assert_eq!(cert.fields.device_ed25519, alice.ed25519_key());
    let _bob = DeviceAccount::from_pickle(&g("bob"), &pickle_key).unwrap();

    let mut a_olm = OlmSession::from_pickle(&g("alice_olm"), &pickle_key).unwrap();
    let mut b_olm = OlmSession::from_pickle(&g("bob_olm"), &pickle_key).unwrap();
    assert_eq!(a_olm.session_id(), g("olm_session_id"));
    assert_eq!(a_olm.decrypt(&unhex(&g("olm_to_alice"))).unwrap(), b"olm reply from bob, unread");
    assert_eq!(b_olm.decrypt(&unhex(&g("olm_to_bob"))).unwrap(), b"olm from alice, unread");

    let mut group = OutboundGroupSession::from_pickle(&g("group"), &pickle_key).unwrap();
    let mut inbound = InboundGroupSession::from_pickle(&g("inbound"), &pickle_key).unwrap();
    assert_eq!(group.session_id(), g("megolm_session_id"));
    assert_eq!(inbound.session_id(), g("megolm_session_id"));
    assert_eq!(inbound.decrypt(&unhex(&g("megolm_0"))).unwrap_err(), Error::MegolmReplay(0));
    let d = inbound.decrypt(&unhex(&g("megolm_1"))).unwrap();
    assert_eq!((d.plaintext.as_slice(), d.message_index), (&b"megolm index 1, unread"[..], 1));
    assert_eq!(group.message_index(), 2);
    let m2 = group.encrypt(b"after restore");
    assert_eq!(inbound.decrypt(&m2).unwrap().message_index, 2);

    // The wrong pickle key is refused for every kind.
    let wrong = PickleKey::from_bytes([0; 32]);
    assert_eq!(DeviceAccount::from_pickle(&g("alice"), &wrong).unwrap_err(), Error::PickleDecryption);
    assert_eq!(OlmSession::from_pickle(&g("alice_olm"), &wrong).unwrap_err(), Error::PickleDecryption);
    assert_eq!(OutboundGroupSession::from_pickle(&g("group"), &wrong).unwrap_err(), Error::PickleDecryption);
    assert_eq!(InboundGroupSession::from_pickle(&g("inbound"), &wrong).unwrap_err(), Error::PickleDecryption);
    assert_eq!(AccountKey::from_pickle(&g("account_key"), &wrong).unwrap_err(), Error::PickleDecryption);
}
