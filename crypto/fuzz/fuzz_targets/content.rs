//! The typed message Content: framing, protobuf, the legacy text and attachment JSON. Whatever
//! the bytes, decoding never panics; what it reads, the crate writes again and reads the same.
#![no_main]

use kitsulan_crypto::content::{self, Body, ContentError, Outgoing};
use libfuzzer_sys::fuzz_target;

const MESSAGE: &str = "0193a0a0-0000-7000-8000-000000000001";

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = content::decode(data, MESSAGE) else { return };
    let reply_to = decoded.reply_to.clone().unwrap_or_default();
    let extras = decoded.extras.clone();
    let out = match decoded.body.clone() {
        Body::Text { text, spans } => Outgoing::Text { text, spans, reply_to, extras },
        Body::File(file) => Outgoing::File { file, reply_to, extras },
        Body::Reaction { message_id, emoji, remove } => Outgoing::Reaction { message_id, emoji, remove },
        Body::Deletion { message_id } => Outgoing::Deletion { message_id },
        Body::Unsupported => return,
    };
    match out.encode() {
        Ok(plaintext) => {
            let again = content::decode(&plaintext, MESSAGE).expect("what the crate writes, it reads");
            assert_eq!(again.body, decoded.body);
            assert_eq!(again.extras, decoded.extras);
        }
        // Only a legacy text (no marker) has no length limit.
        Err(e) => assert!(data.first() != Some(&content::MARKER) && e == ContentError::TextTooLong, "{e}"),
    }
});
