//! What a message says, as protobuf types: `Content` and its parts, generated from
//! `proto/kitsulan/v1/content.proto`. The codec (the format prefix, limits, legacy plaintext)
//! lives in `kitsulan_crypto::content`; what a reaction's emoji may be ([`emoji`]) and what a text
//! or file must be ([`rules`]) are here, since the server checks cloud content by the same rules. The API crate (`kitsulan-proto`) refers to these types
//! where a cloud conversation carries Content unencrypted, so they exist once.

#[allow(missing_docs, clippy::all, clippy::pedantic)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/kitsulan.v1.rs"));
}
pub use generated::*;

pub mod emoji;
pub mod rules;
