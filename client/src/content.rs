//! What a message says: the typed Content inside a message's E2EE plaintext. The codec —
//! framing, legacy plaintexts, the rules a reader and a writer apply, and the Rust types of
//! `content.proto` — lives once, in the crypto crate ([`kitsulan_crypto::content`]), which the
//! PWA runs as WebAssembly; the Rust client uses it as it is. (`kitsulan_proto` leaves
//! `content.proto` out of its API types: nothing in the API refers to them.)

pub use kitsulan_crypto::content::proto::{
    Content, FileContent, FileThumbnail, Reaction, TextContent, TextSpan,
};
pub use kitsulan_crypto::content::{
    Body, ContentError, Decoded, FORMAT, MARKER, MAX_TEXT_LENGTH, Span, TextStyle, VERSION, decode, deletion,
    edit, encode, file, reaction, text,
};
