//! What a message says: the typed Content inside a message's E2EE plaintext, for the Rust
//! client in the server API's types (`kitsulan_proto::v1`). The codec itself — framing, legacy
//! plaintexts, the rules a reader and a writer apply — lives once, in the crypto crate
//! ([`kitsulan_crypto::content`]), which the PWA runs as WebAssembly: this module only converts
//! between the two sets of prost types of the same `content.proto`.

use kitsulan_crypto::content::{self as codec, proto};
use kitsulan_proto::v1::{Content, FileContent, FileThumbnail, TextStyle};
use prost::Message as _;

pub use kitsulan_crypto::content::{ContentError, FORMAT, MARKER, MAX_TEXT_LENGTH, VERSION};

/// A formatting span, checked: inside the text, not empty, of a known style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Start, in UTF-16 code units.
    pub start: u32,
    /// End (exclusive), in UTF-16 code units.
    pub end: u32,
    /// The style.
    pub style: TextStyle,
}

/// What a message says ([`codec::Body`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Text (a typed text, a legacy text, or the text of an edit of this very message).
    Text {
        /// The text.
        text: String,
        /// Its formatting.
        spans: Vec<Span>,
    },
    /// A file (typed, or the legacy JSON).
    File(FileContent),
    /// A reaction to another message.
    Reaction {
        /// The message reacted to.
        message_id: String,
        /// The emoji.
        emoji: String,
        /// Taken back.
        remove: bool,
    },
    /// A deletion of another message, announced inside the encryption.
    Deletion {
        /// The message deleted.
        message_id: String,
    },
    /// A kind or a format of a newer client: "unsupported message, update the app".
    Unsupported,
}

/// A plaintext as read ([`codec::Decoded`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// What it says.
    pub body: Body,
    /// The message it answers: `Some` for a typed text or file (`Some("")` when none; the
    /// sender's word, which the server cannot change), `None` for a legacy plaintext (only the
    /// server's `Message.reply_to` says) and for what answers nothing.
    pub reply_to: Option<String>,
}

impl Decoded {
    /// The text, for a text.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            Body::Text { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The file, for a file.
    pub fn file(&self) -> Option<&FileContent> {
        match &self.body {
            Body::File(file) => Some(file),
            _ => None,
        }
    }
}

fn file_to_codec(f: FileContent) -> proto::FileContent {
    proto::FileContent {
        attachment_id: f.attachment_id,
        secrets: f.secrets,
        name: f.name,
        media_type: f.media_type,
        size: f.size,
        width: f.width,
        height: f.height,
        thumbnail: f.thumbnail.map(|t| proto::FileThumbnail {
            attachment_id: t.attachment_id,
            secrets: t.secrets,
            media_type: t.media_type,
            width: t.width,
            height: t.height,
        }),
    }
}

fn file_from_codec(f: proto::FileContent) -> FileContent {
    FileContent {
        attachment_id: f.attachment_id,
        secrets: f.secrets,
        name: f.name,
        media_type: f.media_type,
        size: f.size,
        width: f.width,
        height: f.height,
        thumbnail: f.thumbnail.map(|t| FileThumbnail {
            attachment_id: t.attachment_id,
            secrets: t.secrets,
            media_type: t.media_type,
            width: t.width,
            height: t.height,
        }),
    }
}

/// The same style in the server API's enum (both are `content.proto`'s `TextStyle`).
fn style_from_codec(style: codec::TextStyle) -> TextStyle {
    TextStyle::try_from(i32::from(style)).unwrap_or(TextStyle::Unspecified)
}

/// The plaintext of `content` (its `version` set to [`VERSION`]), refused where a reader
/// would refuse it ([`codec::encode`]).
pub fn encode(content: Content) -> Result<Vec<u8>, ContentError> {
    // The same schema on both sides: its bytes are the conversion.
    let content =
        proto::Content::decode(content.encode_to_vec().as_slice()).map_err(|_| ContentError::Malformed)?;
    codec::encode(content)
}

/// The plaintext of a text message (`reply_to` may be empty). Refuses a text longer than
/// [`MAX_TEXT_LENGTH`].
pub fn text(text: &str, reply_to: &str) -> Result<Vec<u8>, ContentError> {
    codec::text(text, reply_to)
}

/// The plaintext of a file message (`reply_to` may be empty). Refuses a file without its
/// attachment id or secrets.
pub fn file(file: FileContent, reply_to: &str) -> Result<Vec<u8>, ContentError> {
    codec::file(file_to_codec(file), reply_to)
}

/// The plaintext that `EditMessage` puts in place of our message `message_id`.
pub fn edit(message_id: &str, text: &str) -> Result<Vec<u8>, ContentError> {
    codec::edit(message_id, text)
}

/// The plaintext of a reaction to `message_id` (or of taking it back).
pub fn reaction(message_id: &str, emoji: &str, remove: bool) -> Result<Vec<u8>, ContentError> {
    codec::reaction(message_id, emoji, remove)
}

/// The plaintext of a deletion of `message_id`.
pub fn deletion(message_id: &str) -> Result<Vec<u8>, ContentError> {
    codec::deletion(message_id)
}

/// What the decrypted `plaintext` of the message `message_id` says.
pub fn decode(plaintext: &[u8], message_id: &str) -> Result<Decoded, ContentError> {
    let decoded = codec::decode(plaintext, message_id)?;
    let body = match decoded.body {
        codec::Body::Text { text, spans } => Body::Text {
            text,
            spans: spans
                .into_iter()
                .map(|s| Span { start: s.start, end: s.end, style: style_from_codec(s.style) })
                .collect(),
        },
        codec::Body::File(file) => Body::File(file_from_codec(file)),
        codec::Body::Reaction { message_id, emoji, remove } => Body::Reaction { message_id, emoji, remove },
        codec::Body::Deletion { message_id } => Body::Deletion { message_id },
        codec::Body::Unsupported => Body::Unsupported,
    };
    Ok(Decoded { body, reply_to: decoded.reply_to })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The conversions only: the codec's own tests are in the crypto crate.
    use kitsulan_proto::v1::{TextContent, TextSpan, content};

    use super::*;

    const MSG: &str = "0193a0a0-0000-7000-8000-000000000001";

    fn a_file() -> FileContent {
        FileContent {
            attachment_id: "0193a0a0-0000-7000-8000-0000000000aa".to_owned(),
            secrets: vec![1, 2, 3, 4, 5, 6, 7, 8],
            name: "holiday.jpg".to_owned(),
            media_type: "image/jpeg".to_owned(),
            size: 123_456,
            width: 4032,
            height: 3024,
            thumbnail: Some(FileThumbnail {
                attachment_id: "0193a0a0-0000-7000-8000-0000000000bb".to_owned(),
                secrets: vec![9, 10, 11],
                media_type: "image/jpeg".to_owned(),
                width: 320,
                height: 240,
            }),
        }
    }

    #[test]
    fn a_file_goes_through_both_types_unchanged() {
        let plaintext = file(a_file(), "m").unwrap();
        let read = decode(&plaintext, MSG).unwrap();
        assert_eq!(read, Decoded { body: Body::File(a_file()), reply_to: Some("m".to_owned()) });
        let mut nameless = a_file();
        nameless.attachment_id.clear();
        assert_eq!(file(nameless, ""), Err(ContentError::Missing("attachment id")));
    }

    #[test]
    fn a_raw_content_is_checked_and_its_spans_come_back_in_the_api_enum() {
        let spans = vec![TextSpan { start: 0, end: 2, style: TextStyle::Spoiler as i32 }];
        let content = Content {
            version: 7,
            reply: None,
            body: Some(content::Body::Text(TextContent { body: "hi".to_owned(), spans })),
        };
        let plaintext = encode(content.clone()).unwrap();
        assert_eq!(&plaintext[..4], &[MARKER, FORMAT, 0x08, 0x01], "written as version 1");
        let read = decode(&plaintext, MSG).unwrap();
        let expected = vec![Span { start: 0, end: 2, style: TextStyle::Spoiler }];
        assert_eq!(read.body, Body::Text { text: "hi".to_owned(), spans: expected });
        let mut outside = content;
        if let Some(content::Body::Text(t)) = &mut outside.body {
            t.spans[0].end = 3;
        }
        assert_eq!(encode(outside), Err(ContentError::InvalidSpan));
        assert_eq!(encode(Content::default()), Err(ContentError::Missing("body")));
    }

    #[test]
    fn every_style_maps_to_the_same_one() {
        for style in [
            codec::TextStyle::Bold,
            codec::TextStyle::Italic,
            codec::TextStyle::Code,
            codec::TextStyle::Strike,
            codec::TextStyle::Spoiler,
        ] {
            assert_eq!(style_from_codec(style).as_str_name(), style.as_str_name());
        }
    }

    #[test]
    fn the_helpers_write_the_codec_s_bytes() {
        assert_eq!(text("hi", "m").unwrap(), codec::text("hi", "m").unwrap());
        assert_eq!(edit(MSG, "x").unwrap(), codec::edit(MSG, "x").unwrap());
        assert_eq!(reaction(MSG, "👍", true).unwrap(), codec::reaction(MSG, "👍", true).unwrap());
        assert_eq!(deletion(MSG).unwrap(), codec::deletion(MSG).unwrap());
        assert_eq!(decode(b"legacy", MSG).unwrap().text(), Some("legacy"));
        assert_eq!(decode(&[0x00], MSG), Err(ContentError::Malformed));
    }

    #[test]
    fn a_reaction_emoji_follows_the_codec_s_rule() {
        // Written with the API's types, as any sender could: "ok" is no emoji.
        let raw = |emoji: &str| Content {
            version: VERSION,
            reply: None,
            body: Some(content::Body::Reaction(kitsulan_proto::v1::Reaction {
                message_id: MSG.to_owned(),
                emoji: emoji.to_owned(),
                remove: false,
            })),
        };
        assert!(matches!(encode(raw("ok")), Err(ContentError::InvalidReaction(_))));
        assert!(matches!(reaction(MSG, "🦊🦊", false), Err(ContentError::InvalidReaction(_))));
        let mut plaintext = vec![MARKER, FORMAT];
        plaintext.extend(raw("ok").encode_to_vec());
        assert_eq!(decode(&plaintext, MSG), Err(ContentError::MalformedReaction));
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        let read = decode(&encode(raw(family)).unwrap(), MSG).unwrap();
        assert_eq!(read.body, Body::Reaction { message_id: MSG.into(), emoji: family.into(), remove: false });
    }
}
