//! Backup blobs and the backup-key transfer encoding. (Passphrase derivation is not fuzzed:
//! a valid header may ask Argon2id for up to 1 GiB, which is the point of the range check.)
#![no_main]

use std::sync::OnceLock;

use kitsulan_crypto::backup::{BackupHeader, KdfParams, PassphraseKey};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static PassphraseKey {
    static K: OnceLock<PassphraseKey> = OnceLock::new();
    K.get_or_init(|| PassphraseKey::derive(b"fuzz", [1; 16], KdfParams::MIN).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let _ = BackupHeader::parse(data);
    let _ = key().decrypt(data);
    if let Ok(k) = PassphraseKey::from_bytes(data) {
        assert_eq!(&k.to_bytes()[..], data);
    }
});
