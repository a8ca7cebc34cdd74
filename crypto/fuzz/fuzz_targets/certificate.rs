//! Device certificates and signed one-time/fallback keys: decoding and verification.
#![no_main]

use kitsulan_crypto::device::{SignedFallbackKey, SignedOneTimeKey};
use kitsulan_crypto::{
    DeviceCertificate, verify_device_certificate, verify_fallback_key, verify_one_time_key,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = DeviceCertificate::decode(data) {
        // Whatever decodes must re-encode to exactly the same bytes (one encoding per value).
        assert_eq!(cert.to_bytes(), data);
        let _ = cert.verify(&cert.account_key);
    }
    let key = data.get(..32).unwrap_or(&[0; 32]);
    let _ = verify_device_certificate(data, key);
    if data.len() >= 8 + 32 + 64 + 32 {
        let mut id = [0u8; 8];
        id.copy_from_slice(&data[..8]);
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(&data[8..40]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&data[40..104]);
        let device = &data[104..136];
        let key_id = u64::from_be_bytes(id);
        let _ = verify_one_time_key(device, &SignedOneTimeKey { key_id, public_key, signature });
        let _ = verify_fallback_key(device, &SignedFallbackKey { key_id, public_key, signature });
    }
});
