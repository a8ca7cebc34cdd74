//! What a message says: the typed [`Content`] (proto/kitsulan/v1/content.proto) inside a
//! message's E2EE plaintext, written and read exactly as the PWA does
//! (`pwa/src/crypto/content.ts`; docs/e2ee.md, "What a message says"), so the Rust client and
//! the browser read each other.
//!
//! A plaintext is `0x00 0x01 || protobuf Content` (format 1). One whose first byte is not
//! `0x00` is LEGACY, from before the typed Content: UTF-8 text, or the old attachment JSON
//! (docs/attachments.md), still read so older messages show; nothing new is written that way.
//! `0x00` followed by another format byte is a newer client's format: [`Body::Unsupported`].
//! A Content whose body is unset or of a kind this client does not know is
//! [`Body::Unsupported`] too, never dropped and never guessed at. Anything that does not parse
//! is [`ContentError::Malformed`]; [`decode`] never panics, whatever the bytes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kitsulan_proto::v1::{
    Content, Deletion, Edit, FileContent, FileThumbnail, Reaction, Reply, TextContent, TextStyle, content,
};
use prost::Message as _;

/// The first byte of a typed plaintext: no UTF-8 text the old clients sent starts with it.
pub const MARKER: u8 = 0x00;
/// The format of the Content that follows the marker.
pub const FORMAT: u8 = 0x01;
/// The revision of the Content schema this client writes.
pub const VERSION: u32 = 1;
/// The longest text, in UTF-16 code units (what the browser counts; `TextContent.body`).
pub const MAX_TEXT_LENGTH: usize = 16_000;

/// Why a plaintext says nothing this device can show. The `Display` forms are the reasons
/// the PWA shows (its `undecryptable` reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentError {
    /// A legacy plaintext that is not UTF-8.
    NotUtf8,
    /// A typed plaintext that does not parse, or breaks a rule (a text too long, a file
    /// without its attachment id or secrets, a reaction or deletion naming no message).
    Malformed,
    /// An edit that names another message than the one whose ciphertext it is (a server
    /// moving an edit between messages).
    EditForAnotherMessage,
    /// A text longer than [`MAX_TEXT_LENGTH`], refused when writing.
    TextTooLong,
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotUtf8 => "not UTF-8",
            Self::Malformed => "malformed content",
            Self::EditForAnotherMessage => "edit for another message",
            Self::TextTooLong => "text too long",
        })
    }
}

impl std::error::Error for ContentError {}

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

/// What a message says.
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

/// A plaintext as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// What it says.
    pub body: Body,
    /// The message it answers: `Some` for a typed Content (`Some("")` when none; the sender's
    /// word, which the server cannot change), `None` for a legacy plaintext (only the server's
    /// `Message.reply_to` says).
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

/// The plaintext of `content`: `0x00 0x01 || Content` (with `version` set to [`VERSION`]).
pub fn encode(mut content: Content) -> Vec<u8> {
    content.version = VERSION;
    [&[MARKER, FORMAT][..], &content.encode_to_vec()].concat()
}

fn text_content(text: &str) -> Result<TextContent, ContentError> {
    if text.encode_utf16().count() > MAX_TEXT_LENGTH {
        return Err(ContentError::TextTooLong);
    }
    Ok(TextContent { body: text.to_owned(), spans: Vec::new() })
}

fn reply(reply_to: &str) -> Option<Reply> {
    (!reply_to.is_empty()).then(|| Reply { message_id: reply_to.to_owned() })
}

/// The plaintext of a text message (`reply_to` may be empty). Refuses a text longer than
/// [`MAX_TEXT_LENGTH`].
pub fn text(text: &str, reply_to: &str) -> Result<Vec<u8>, ContentError> {
    let body = content::Body::Text(text_content(text)?);
    Ok(encode(Content { version: VERSION, reply: reply(reply_to), body: Some(body) }))
}

/// The plaintext of a file message (`reply_to` may be empty).
pub fn file(file: FileContent, reply_to: &str) -> Vec<u8> {
    encode(Content { version: VERSION, reply: reply(reply_to), body: Some(content::Body::File(file)) })
}

/// The plaintext that `EditMessage` puts in place of our message `message_id`.
pub fn edit(message_id: &str, text: &str) -> Result<Vec<u8>, ContentError> {
    let edit = Edit { message_id: message_id.to_owned(), text: Some(text_content(text)?) };
    Ok(encode(Content { version: VERSION, reply: None, body: Some(content::Body::Edit(edit)) }))
}

/// The plaintext of a reaction to `message_id` (or of taking it back).
pub fn reaction(message_id: &str, emoji: &str, remove: bool) -> Vec<u8> {
    let reaction = Reaction { message_id: message_id.to_owned(), emoji: emoji.to_owned(), remove };
    encode(Content { version: VERSION, reply: None, body: Some(content::Body::Reaction(reaction)) })
}

/// The plaintext of a deletion of `message_id`.
pub fn deletion(message_id: &str) -> Vec<u8> {
    let deletion = Deletion { message_id: message_id.to_owned() };
    encode(Content { version: VERSION, reply: None, body: Some(content::Body::Deletion(deletion)) })
}

/// What the decrypted `plaintext` of the message `message_id` says.
pub fn decode(plaintext: &[u8], message_id: &str) -> Result<Decoded, ContentError> {
    match plaintext {
        [MARKER, FORMAT, rest @ ..] => decode_typed(rest, message_id),
        [MARKER] => Err(ContentError::Malformed),
        [MARKER, ..] => Ok(Decoded { body: Body::Unsupported, reply_to: None }),
        legacy => {
            let text = std::str::from_utf8(legacy).map_err(|_| ContentError::NotUtf8)?;
            let body = match legacy_file(text) {
                Some(file) => Body::File(file),
                None => Body::Text { text: text.to_owned(), spans: Vec::new() },
            };
            Ok(Decoded { body, reply_to: None })
        }
    }
}

fn decode_typed(bytes: &[u8], message_id: &str) -> Result<Decoded, ContentError> {
    let content = Content::decode(bytes).map_err(|_| ContentError::Malformed)?;
    let reply_to = Some(content.reply.map(|r| r.message_id).unwrap_or_default());
    let body = match content.body {
        Some(content::Body::Text(text)) => text_of(text)?,
        Some(content::Body::File(file)) => {
            if file.attachment_id.is_empty() || file.secrets.is_empty() {
                return Err(ContentError::Malformed);
            }
            Body::File(file)
        }
        Some(content::Body::Edit(edit)) => {
            if edit.message_id != message_id {
                return Err(ContentError::EditForAnotherMessage);
            }
            // The text of an edit is the message's text; it answers nothing of its own.
            let body = text_of(edit.text.unwrap_or_default())?;
            return Ok(Decoded { body, reply_to: None });
        }
        Some(content::Body::Reaction(r)) => {
            if r.message_id.is_empty() || r.emoji.is_empty() {
                return Err(ContentError::Malformed);
            }
            Body::Reaction { message_id: r.message_id, emoji: r.emoji, remove: r.remove }
        }
        Some(content::Body::Deletion(d)) => {
            if d.message_id.is_empty() {
                return Err(ContentError::Malformed);
            }
            Body::Deletion { message_id: d.message_id }
        }
        // Unset, or a kind this client does not know (an unknown field prost skipped).
        None => Body::Unsupported,
    };
    Ok(Decoded { body, reply_to })
}

/// A received text: refused when too long; spans clamped to the text, the empty ones and those
/// of an unknown style left out.
fn text_of(text: TextContent) -> Result<Body, ContentError> {
    let len = text.body.encode_utf16().count();
    if len > MAX_TEXT_LENGTH {
        return Err(ContentError::Malformed);
    }
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let spans = text
        .spans
        .iter()
        .filter_map(|s| {
            let style = TextStyle::try_from(s.style).ok().filter(|s| *s != TextStyle::Unspecified)?;
            let end = s.end.min(len);
            (s.start < end).then_some(Span { start: s.start, end, style })
        })
        .collect();
    Ok(Body::Text { text: text.body, spans })
}

/// The file a legacy plaintext describes: a JSON object with string `attachment` and
/// `secrets` (base64 of AttachmentSecrets); `None` when it is text.
fn legacy_file(text: &str) -> Option<FileContent> {
    if !text.starts_with('{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let o = value.as_object()?;
    let attachment_id = o.get("attachment")?.as_str()?.to_owned();
    let secrets = STANDARD.decode(o.get("secrets")?.as_str()?).ok()?;
    let string = |key: &str| o.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let number = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_f64).filter(|n| *n >= 0.0);
    // JSON numbers are doubles: a non-negative one saturates into the integer types.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (size, dims) = (
        number(o.get("size")).map_or(0, |n| n as u64),
        number(o.get("width")).zip(number(o.get("height"))).map(|(w, h)| (w as u32, h as u32)),
    );
    let thumbnail = o.get("thumbnail").and_then(|t| t.as_object()).and_then(|t| {
        let attachment_id = t.get("attachment")?.as_str()?.to_owned();
        let secrets = STANDARD.decode(t.get("secrets")?.as_str()?).ok()?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (width, height) = (number(t.get("width"))? as u32, number(t.get("height"))? as u32);
        let media_type = t.get("type").and_then(|v| v.as_str()).unwrap_or("image/jpeg").to_owned();
        Some(FileThumbnail { attachment_id, secrets, media_type, width, height })
    });
    let (width, height) = dims.unwrap_or((0, 0));
    Some(FileContent {
        attachment_id,
        secrets,
        name: string("name").filter(|n| !n.is_empty()).unwrap_or_else(|| "file".to_owned()),
        media_type: string("type").unwrap_or_default(),
        size,
        width,
        height,
        thumbnail,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use kitsulan_proto::v1::TextSpan;

    use super::*;

    const MSG: &str = "0193a0a0-0000-7000-8000-000000000001";
    const OTHER: &str = "0193a0a0-0000-7000-8000-000000000002";

    fn typed(body: &[u8]) -> Vec<u8> {
        [&[MARKER, FORMAT][..], body].concat()
    }

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

    /// The JSON an older client sent for `a_file()` (docs/attachments.md).
    fn legacy_json() -> String {
        serde_json::json!({
            "attachment": "0193a0a0-0000-7000-8000-0000000000aa",
            "secrets": STANDARD.encode([1, 2, 3, 4, 5, 6, 7, 8]),
            "name": "holiday.jpg",
            "type": "image/jpeg",
            "size": 123_456,
            "width": 4032,
            "height": 3024,
            "thumbnail": {
                "attachment": "0193a0a0-0000-7000-8000-0000000000bb",
                "secrets": STANDARD.encode([9, 10, 11]),
                "type": "image/jpeg",
                "width": 320,
                "height": 240,
            },
        })
        .to_string()
    }

    fn text_body(text: &str) -> Body {
        Body::Text { text: text.to_owned(), spans: Vec::new() }
    }

    #[test]
    fn a_typed_text_is_prefixed_and_reads_back_with_its_reply() {
        let plaintext = text("hello 👋", OTHER).unwrap();
        assert_eq!(&plaintext[..2], &[0x00, 0x01]);
        let read = decode(&plaintext, MSG).unwrap();
        assert_eq!(read, Decoded { body: text_body("hello 👋"), reply_to: Some(OTHER.to_owned()) });
        let read = decode(&text("no reply", "").unwrap(), MSG).unwrap();
        assert_eq!(read.reply_to.as_deref(), Some(""));
    }

    /// The same bytes as the PWA's test (pwa/src/crypto/content.test.ts): both write them.
    #[test]
    fn the_recorded_vector_is_what_the_pwa_writes() {
        let vector =
            [0x00, 0x01, 0x08, 0x01, 0x12, 0x03, 0x0a, 0x01, b'm', 0x52, 0x04, 0x0a, 0x02, b'h', b'i'];
        assert_eq!(text("hi", "m").unwrap(), vector);
        assert_eq!(
            decode(&vector, MSG).unwrap(),
            Decoded { body: text_body("hi"), reply_to: Some("m".to_owned()) }
        );
    }

    #[test]
    fn a_file_reads_back_with_its_secrets_as_raw_bytes() {
        let plaintext = file(a_file(), "");
        assert!(plaintext.windows(8).any(|w| w == [1, 2, 3, 4, 5, 6, 7, 8]), "raw secrets");
        assert!(!String::from_utf8_lossy(&plaintext).contains(&STANDARD.encode([1, 2, 3, 4, 5, 6, 7, 8])));
        assert_eq!(decode(&plaintext, MSG).unwrap().file(), Some(&a_file()));
    }

    #[test]
    fn a_legacy_text_is_read_as_text() {
        let read = decode(b"plain old text", MSG).unwrap();
        assert_eq!(read, Decoded { body: text_body("plain old text"), reply_to: None });
        assert_eq!(decode(b"", MSG).unwrap().body, text_body(""));
        assert_eq!(decode(&[0xff, 0xfe, b'a'], MSG), Err(ContentError::NotUtf8));
    }

    #[test]
    fn a_legacy_json_attachment_is_read_as_a_file() {
        let read = decode(legacy_json().as_bytes(), MSG).unwrap();
        assert_eq!(read.file(), Some(&a_file()));
        assert_eq!(read.reply_to, None);
        // Only `attachment` and `secrets` are required (the old Rust test sent `name` too).
        let minimal = format!("{{\"attachment\":\"a1\",\"secrets\":\"{}\"}}", STANDARD.encode([7]));
        let file = decode(minimal.as_bytes(), MSG).unwrap().file().cloned().unwrap();
        assert_eq!((file.name.as_str(), file.media_type.as_str(), file.size), ("file", "", 0));
        // Not such an object: text.
        for text in
            ["{\"attachment\":1,\"secrets\":\"AQ==\"}", "{not json", "[1,2]", "{\"secrets\":\"AQ==\"}"]
        {
            assert_eq!(decode(text.as_bytes(), MSG).unwrap().body, text_body(text), "{text}");
        }
    }

    #[test]
    fn a_typed_text_that_looks_like_attachment_json_is_text() {
        let json = legacy_json();
        let read = decode(&text(&json, "").unwrap(), MSG).unwrap();
        assert_eq!(read.body, text_body(&json));
    }

    #[test]
    fn unknown_kinds_and_formats_are_unsupported() {
        // Content { version: 2, field 15 (a body kind from the future): { 1: "x" } }
        let future = typed(&[0x08, 0x02, 0x7a, 0x03, 0x0a, 0x01, b'x']);
        assert_eq!(decode(&future, MSG).unwrap().body, Body::Unsupported);
        assert_eq!(decode(&typed(&[]), MSG).unwrap().body, Body::Unsupported);
        assert_eq!(decode(&typed(&[0x08, 0x01]), MSG).unwrap().body, Body::Unsupported);
        assert_eq!(decode(&[0x00, 0x02, 0x01], MSG).unwrap().body, Body::Unsupported);
    }

    #[test]
    fn malformed_content_is_an_error() {
        let cases: [&[u8]; 8] = [
            &[0x00],                                     // the marker without a format
            &[0x00, 0x01, 0x52],                         // field 10 (text), length missing
            &[0x00, 0x01, 0x52, 0x05, 0x0a],             // truncated
            &[0x00, 0x01, 0x52, 0x03, 0x0a, 0x01, 0xff], // text body not UTF-8
            &[0x00, 0x01, 0x08],                         // version without its value
            &[0x00, 0x01, 0x5a, 0x00],                   // a file naming no attachment
            &[0x00, 0x01, 0x62, 0x00],                   // a reaction to nothing
            &[0x00, 0x01, 0x72, 0x00],                   // a deletion of nothing
        ];
        for case in cases {
            assert_eq!(decode(case, MSG), Err(ContentError::Malformed), "{case:?}");
        }
        assert_eq!(ContentError::Malformed.to_string(), "malformed content");
    }

    #[test]
    fn an_edit_shows_only_on_the_message_it_names() {
        let plaintext = edit(MSG, "fixed").unwrap();
        assert_eq!(decode(&plaintext, MSG).unwrap(), Decoded { body: text_body("fixed"), reply_to: None });
        assert_eq!(decode(&plaintext, OTHER), Err(ContentError::EditForAnotherMessage));
        assert_eq!(decode(&edit("", "x").unwrap(), MSG), Err(ContentError::EditForAnotherMessage));
        assert_eq!(ContentError::EditForAnotherMessage.to_string(), "edit for another message");
    }

    #[test]
    fn reactions_and_deletions_are_their_own_kinds() {
        let read = decode(&reaction(OTHER, "🎉", false), MSG).unwrap();
        assert_eq!(
            read.body,
            Body::Reaction { message_id: OTHER.to_owned(), emoji: "🎉".to_owned(), remove: false }
        );
        let read = decode(&deletion(OTHER), MSG).unwrap();
        assert_eq!(read.body, Body::Deletion { message_id: OTHER.to_owned() });
    }

    #[test]
    fn text_length_is_limited_both_ways() {
        let long = "x".repeat(MAX_TEXT_LENGTH + 1);
        assert_eq!(text(&long, ""), Err(ContentError::TextTooLong));
        assert_eq!(edit(MSG, &long), Err(ContentError::TextTooLong));
        // UTF-16 code units: an emoji is two.
        let emoji = "👋".repeat(MAX_TEXT_LENGTH / 2);
        assert!(text(&emoji, "").is_ok());
        assert_eq!(text(&format!("{emoji}x"), ""), Err(ContentError::TextTooLong));
        let raw = encode(Content {
            version: 1,
            reply: None,
            body: Some(content::Body::Text(TextContent { body: long, spans: Vec::new() })),
        });
        assert_eq!(decode(&raw, MSG), Err(ContentError::Malformed));
    }

    #[test]
    fn spans_are_clamped_to_the_text_and_unknown_styles_left_out() {
        let span = |start, end, style: i32| TextSpan { start, end, style };
        let spans = vec![
            span(0, 4, TextStyle::Bold as i32),
            span(5, 999, TextStyle::Italic as i32),
            span(3, 3, TextStyle::Code as i32),
            span(50, 60, TextStyle::Strike as i32),
            span(0, 2, TextStyle::Unspecified as i32),
            span(0, 2, 77),
        ];
        let raw = encode(Content {
            version: 1,
            reply: None,
            body: Some(content::Body::Text(TextContent { body: "bold text".to_owned(), spans })),
        });
        let Body::Text { spans, .. } = decode(&raw, MSG).unwrap().body else { panic!("a text") };
        assert_eq!(
            spans,
            [
                Span { start: 0, end: 4, style: TextStyle::Bold },
                Span { start: 5, end: 9, style: TextStyle::Italic },
            ]
        );
    }

    /// xorshift: deterministic "random" bytes.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
        }
        fn byte(&mut self) -> u8 {
            self.next().to_le_bytes()[0]
        }
    }

    #[test]
    fn decoding_never_panics_on_random_or_mutated_bytes() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let valid = [
            text("hello", OTHER).unwrap(),
            file(a_file(), ""),
            edit(MSG, "x").unwrap(),
            reaction(OTHER, "👍", true),
            deletion(OTHER),
            legacy_json().into_bytes(),
        ];
        for i in 0..20_000 {
            let bytes = match i % 3 {
                0 => (0..rng.below(96)).map(|_| rng.byte()).collect::<Vec<u8>>(),
                1 => {
                    let mut b: Vec<u8> = (0..rng.below(96)).map(|_| rng.byte()).collect();
                    b.splice(0..0, [MARKER, FORMAT]);
                    b
                }
                _ => {
                    let base = &valid[rng.below(valid.len())];
                    let mut b = base[..rng.below(base.len() + 1)].to_vec();
                    for _ in 0..rng.below(4) {
                        if !b.is_empty() {
                            let at = rng.below(b.len());
                            b[at] = rng.byte();
                        }
                    }
                    b
                }
            };
            // Whatever it says, it says it without panicking; a success re-encodes cleanly.
            if let Ok(Decoded { body: Body::Text { text: t, .. }, .. }) = decode(&bytes, MSG) {
                assert!(t.encode_utf16().count() <= MAX_TEXT_LENGTH);
            }
        }
    }
}
