//! The recovery-key parser (typed text: any Unicode, any length). A parsed key renders to a
//! canonical form that parses back to the same key.
#![no_main]

use kitsulan_crypto::backup::BackupKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = BackupKey::from_recovery_key(&text) {
        let display = key.recovery_key();
        let again = BackupKey::from_recovery_key(&display).unwrap();
        assert_eq!(*again.recovery_key(), *display);
    }
});
