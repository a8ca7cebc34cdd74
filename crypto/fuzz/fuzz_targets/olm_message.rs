//! Olm messages: parsing, decryption in an established session, and inbound session creation.
#![no_main]

use std::sync::OnceLock;

use kitsulan_crypto::device::ClaimedKey;
use kitsulan_crypto::olm::{OlmSession, is_pre_key_message};
use kitsulan_crypto::{DeviceAccount, PickleKey};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    bob: String,
    bob_session: String,
    alice_curve: [u8; 32],
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = PickleKey::from_bytes([1; 32]);
        let alice = DeviceAccount::new();
        let mut bob = DeviceAccount::new();
        let otk = bob.generate_one_time_keys(4)[0];
        bob.mark_keys_as_published();
        let mut out = alice
            .create_outbound_session(&bob.ed25519_key(), &bob.curve25519_key(), &ClaimedKey::OneTime(otk))
            .unwrap();
        let first = out.encrypt(b"hi").unwrap();
        let (session, _) = bob.create_inbound_session(&alice.curve25519_key(), &first).unwrap();
        Fixture {
            bob: bob.pickle(&key),
            bob_session: session.pickle(&key),
            alice_curve: alice.curve25519_key(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let key = PickleKey::from_bytes([1; 32]);
    let _ = is_pre_key_message(data);
    let mut session = OlmSession::from_pickle(&f.bob_session, &key).unwrap();
    let _ = session.decrypt(data);
    let _ = session.matches_pre_key_message(data);
    let mut bob = DeviceAccount::from_pickle(&f.bob, &key).unwrap();
    let _ = bob.create_inbound_session(&f.alice_curve, data);
});
