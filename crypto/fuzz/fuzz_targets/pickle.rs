//! Pickle import: every pickled type from untrusted text, and the bodies of our own sealed
//! envelopes (reached through `fuzz_hooks`, since the fuzzer cannot forge the AEAD tag).
#![no_main]

use kitsulan_crypto::backup::BackupKey;
use kitsulan_crypto::megolm::{InboundGroupSession, OutboundGroupSession};
use kitsulan_crypto::olm::OlmSession;
use kitsulan_crypto::{AccountKey, DeviceAccount, PickleKey, fuzz_hooks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_hooks::inbound_group_session_body(data);
    fuzz_hooks::account_key_body(data);
    fuzz_hooks::backup_key_body(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let key = PickleKey::from_bytes([7; 32]);
        let _ = DeviceAccount::from_pickle(text, &key);
        let _ = OlmSession::from_pickle(text, &key);
        let _ = OutboundGroupSession::from_pickle(text, &key);
        let _ = InboundGroupSession::from_pickle(text, &key);
        let _ = AccountKey::from_pickle(text, &key);
        let _ = BackupKey::from_pickle(text, &key);
    }
});
