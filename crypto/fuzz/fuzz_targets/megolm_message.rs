//! Megolm messages and session keys: parsing, decryption and the replay record.
#![no_main]

use std::sync::OnceLock;

use kitsulan_crypto::megolm::{InboundGroupSession, OutboundGroupSession};
use libfuzzer_sys::fuzz_target;

fn session_key() -> &'static Vec<u8> {
    static K: OnceLock<Vec<u8>> = OnceLock::new();
    K.get_or_init(|| OutboundGroupSession::new().session_key().to_vec())
}

fuzz_target!(|data: &[u8]| {
    let mut inbound = InboundGroupSession::from_session_key(session_key()).unwrap();
    if inbound.decrypt(data).is_ok() {
        // A message that decrypted once is a replay the second time.
        assert!(inbound.decrypt(data).is_err());
        assert!(inbound.decrypt_history(data).is_ok());
    }
    let _ = InboundGroupSession::from_session_key(data);
    if let Ok(mut s) = InboundGroupSession::import(data) {
        let _ = s.decrypt(data);
    }
});
