//! Attachments: the secrets encoding and the streaming decryptor with its hash check.
#![no_main]

use kitsulan_crypto::attachment::{AttachmentDecryptor, AttachmentSecrets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(secrets) = AttachmentSecrets::from_bytes(data) {
        assert_eq!(&secrets.to_bytes()[..], data);
    }
    let secrets = AttachmentSecrets { key: [3; 32], iv: [4; 16], sha256: [5; 32] };
    let mut dec = AttachmentDecryptor::new(&secrets);
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (a, b) = data.split_at(split);
    let mut out = dec.update(a);
    out.extend(dec.update(b));
    assert_eq!(out.len(), data.len());
    let _ = dec.finish();
});
