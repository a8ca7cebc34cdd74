//! Key backup v1: auth data (key check, passphrase wrap header), identity blobs and session
//! entries from untrusted bytes, and the session entry's plaintext (reached through
//! `fuzz_hooks`, since the fuzzer cannot forge the AEAD tag). Opening a passphrase wrap is not
//! fuzzed: a valid header may ask Argon2id for up to 1 GiB, which is the point of the range
//! check (tested in `backup.rs`).
#![no_main]

use std::sync::OnceLock;

use kitsulan_crypto::backup::{self, BackupKey};
use kitsulan_crypto::{OsRng, fuzz_hooks};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static BackupKey {
    static K: OnceLock<BackupKey> = OnceLock::new();
    K.get_or_init(|| BackupKey::generate(&mut OsRng::new()))
}

fuzz_target!(|data: &[u8]| {
    let key = key();
    let _ = backup::has_passphrase(data);
    let _ = key.check(data);
    let _ = key.decrypt_identity(&[1; 16], data);
    let _ = key.decrypt_session(&[1; 16], "AAAA", data);
    fuzz_hooks::backup_session_body(key, data);
});
