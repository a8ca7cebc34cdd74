//! The client protocol: the Olm-plaintext parser (kinds 0x01-0x06) and the machine's record
//! decoders.
#![no_main]

use kitsulan_crypto::client::fuzz_hooks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_hooks::payload(data);
    fuzz_hooks::record(data);
});
