//! Pairing: QR payloads (bytes and text), PINs, initial messages and channel messages.
#![no_main]

use kitsulan_crypto::pairing::{NewDevicePairing, PairingQr, connect, normalize_pin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(qr) = PairingQr::from_bytes(data) {
        assert_eq!(qr.to_bytes(), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PairingQr::from_text(text);
        let _ = normalize_pin(text);
    }
    let new_device = NewDevicePairing::new([0; 16], "https://fuzz").unwrap();
    let _ = NewDevicePairing::new([0; 16], "https://fuzz").unwrap().accept(data);
    let (mut existing, initial) = connect(&new_device.public_key(), b"hello").unwrap();
    let (mut fresh, _) = new_device.accept(&initial).unwrap();
    let _ = fresh.decrypt(data);
    let _ = existing.decrypt(data);
});
