//! What a message says: the typed Content (`proto/kitsulan/v1/content.proto`) inside a
//! message's E2EE plaintext, written and read here once for every client: the PWA (through
//! `wasm/content.rs`), the Rust client and the tests (docs/e2ee.md, "What a message says";
//! FORMAT.md, "Message content").
//!
//! A plaintext is `0x00 0x01 || protobuf Content` (format 1). One whose first byte is not
//! `0x00` is LEGACY, from before the typed Content: UTF-8 text, or the old attachment JSON
//! (docs/attachments.md), still read so older messages show; nothing new is written that way.
//! `0x00` followed by another format byte is a newer client's format: [`Body::Unsupported`].
//! A Content whose body is unset or of a kind this client does not know is
//! [`Body::Unsupported`] too, never dropped and never guessed at. Anything that does not parse
//! or breaks a rule is [`ContentError::Malformed`]; [`decode`] never panics, whatever the bytes.
//!
//! Writing goes through [`Outgoing`] (or the helpers [`text`], [`file`], [`edit`],
//! [`reaction`], [`deletion`]), which refuses what a reader would refuse: a text over
//! [`MAX_TEXT_LENGTH`], a formatting span outside its text, a file, reaction, edit or deletion
//! that names nothing, a reaction whose emoji is not one emoji ([`emoji`]).

/// One emoji: what a reaction carries (shared with the server, which checks cloud reactions).
pub use kitsulan_content::emoji;
pub(crate) mod legacy;
#[cfg(test)]
mod tests;

/// The prost messages of `content.proto` (generated once, in the `kitsulan-content` crate).
pub use kitsulan_content as proto;

use kitsulan_content::rules::utf16_len;
use prost::Message as _;
use proto::{Content, Deletion, Edit, FileContent, Reaction, Reply, TextContent, TextSpan, content};

pub use emoji::{EmojiProblem, MAX_REACTION_BYTES};
pub use proto::TextStyle;

/// The first byte of a typed plaintext: no UTF-8 text the old clients sent starts with it.
pub const MARKER: u8 = 0x00;
/// The format of the Content that follows the marker.
pub const FORMAT: u8 = 0x01;
/// The revision of the Content schema this crate writes.
pub const VERSION: u32 = 1;
/// The longest text, in UTF-16 code units (what the browser counts; `TextContent.body`).
pub use kitsulan_content::rules::MAX_TEXT_LENGTH;
/// The media type of a thumbnail that names none.
pub const THUMBNAIL_TYPE: &str = "image/jpeg";
/// The name of a file that names none.
pub const UNNAMED_FILE: &str = "file";

/// Why a plaintext says nothing this device can show, or why a Content is not written. The
/// `Display` forms of the first four are the reasons the PWA shows for an undecryptable
/// message; [`ContentError::code`] gives stable codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// A legacy plaintext that is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// A typed plaintext that does not parse, or breaks a rule (a text too long, a file
    /// without its attachment id or secrets, a reaction or deletion naming no message).
    #[error("malformed content")]
    Malformed,
    /// An edit that names another message than the one whose ciphertext it is (a server
    /// moving an edit between messages).
    #[error("edit for another message")]
    EditForAnotherMessage,
    /// A reaction whose emoji is not exactly one emoji of at most [`MAX_REACTION_BYTES`] bytes
    /// ([`emoji`]): never shown, not even as an error.
    #[error("malformed reaction")]
    MalformedReaction,
    /// Writing: a text longer than [`MAX_TEXT_LENGTH`].
    #[error("text too long")]
    TextTooLong,
    /// Writing: a formatting span that is empty, ends past its text or has no style.
    #[error("a formatting span outside its text")]
    InvalidSpan,
    /// Writing: a field a reader requires is empty (the message an edit, reaction or
    /// deletion names, a reaction's emoji, a file's attachment id or secrets, a thumbnail's).
    #[error("no {0}")]
    Missing(&'static str),
    /// Writing: a reaction whose emoji is not exactly one emoji of at most
    /// [`MAX_REACTION_BYTES`] bytes ([`emoji`]).
    #[error("not a reaction: {}", .0.reason())]
    InvalidReaction(EmojiProblem),
}

impl ContentError {
    /// A stable code for the browser (`KitsulanCryptoError.code`).
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NotUtf8 => "not_utf8",
            Self::Malformed => "malformed_content",
            Self::EditForAnotherMessage => "edit_for_another_message",
            Self::MalformedReaction => "malformed_reaction",
            Self::TextTooLong => "text_too_long",
            Self::InvalidSpan => "invalid_span",
            Self::Missing(_) => "missing_field",
            Self::InvalidReaction(_) => "invalid_reaction",
        }
    }
}

/// A formatting span, checked: inside the text, not empty, of a known style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Start, in UTF-16 code units.
    pub start: u32,
    /// End (exclusive), in UTF-16 code units.
    pub end: u32,
    /// The style (never [`TextStyle::Unspecified`]).
    pub style: TextStyle,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Text (a typed text, a legacy text, or the text of an edit of this very message).
    Text {
        /// The text.
        text: String,
        /// Its formatting: inside the text, none empty, of known styles.
        spans: Vec<Span>,
    },
    /// A file (typed, or the legacy JSON). Always with its attachment id and secrets; the name
    /// is never empty ([`UNNAMED_FILE`]); `width` and `height` are both set or both 0; a
    /// thumbnail is kept only with its id and secrets, its media type never empty
    /// ([`THUMBNAIL_TYPE`]).
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
    /// The message it answers: `Some` for a typed text or file (`Some("")` when none; the
    /// sender's word, which the server cannot change), `None` for a legacy plaintext (only the
    /// server's `Message.reply_to` says) and for what answers nothing (an edit, a reaction, a
    /// deletion, an unsupported kind).
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

/// What this device sends: the body of a new Content. [`Outgoing::encode`] checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// A text, formatted by `spans`, answering `reply_to` (empty for none).
    Text {
        /// The text, at most [`MAX_TEXT_LENGTH`] UTF-16 code units.
        text: String,
        /// Its formatting.
        spans: Vec<Span>,
        /// The message answered, or empty.
        reply_to: String,
    },
    /// A file, answering `reply_to` (empty for none).
    File {
        /// The file: its attachment id and secrets are required.
        file: FileContent,
        /// The message answered, or empty.
        reply_to: String,
    },
    /// The new text of our message `message_id` (sent through EditMessage).
    Edit {
        /// The message edited: the one whose ciphertext this replaces.
        message_id: String,
        /// The new text.
        text: String,
        /// Its formatting.
        spans: Vec<Span>,
    },
    /// A reaction to `message_id` (or taking it back).
    Reaction {
        /// The message reacted to.
        message_id: String,
        /// The emoji.
        emoji: String,
        /// Taken back.
        remove: bool,
    },
    /// A deletion of `message_id`, announced inside the encryption.
    Deletion {
        /// The message deleted.
        message_id: String,
    },
}

impl Outgoing {
    /// The plaintext to encrypt: `0x00 0x01 || Content` (version [`VERSION`]), or why not.
    pub fn encode(self) -> Result<Vec<u8>, ContentError> {
        let (reply_to, body) = match self {
            Self::Text { text, spans, reply_to } => {
                (reply_to, content::Body::Text(text_content(text, &spans)?))
            }
            Self::File { file, reply_to } => (reply_to, content::Body::File(file)),
            Self::Edit { message_id, text, spans } => {
                let text = Some(text_content(text, &spans)?);
                (String::new(), content::Body::Edit(Edit { message_id, text }))
            }
            Self::Reaction { message_id, emoji, remove } => {
                (String::new(), content::Body::Reaction(Reaction { message_id, emoji, remove }))
            }
            Self::Deletion { message_id } => {
                (String::new(), content::Body::Deletion(Deletion { message_id }))
            }
        };
        let reply = (!reply_to.is_empty()).then_some(Reply { message_id: reply_to, quote: String::new() });
        encode(Content { version: VERSION, reply, forwarded: None, body: Some(body) })
    }
}

/// The plaintext of `content` (its `version` set to [`VERSION`]), checked as [`Outgoing`] is:
/// a Content without a body, or one a reader would find malformed, is refused.
pub fn encode(mut content: Content) -> Result<Vec<u8>, ContentError> {
    content.version = VERSION;
    match &content.body {
        None => return Err(ContentError::Missing("body")),
        Some(content::Body::Text(t)) => check_text(t)?,
        Some(content::Body::File(f)) => check_file(f)?,
        Some(content::Body::Edit(e)) => {
            required(&e.message_id, "message id")?;
            if let Some(t) = &e.text {
                check_text(t)?;
            }
        }
        Some(content::Body::Reaction(r)) => {
            required(&r.message_id, "message id")?;
            required(&r.emoji, "emoji")?;
            if let Some(problem) = emoji::problem(&r.emoji) {
                return Err(ContentError::InvalidReaction(problem));
            }
        }
        Some(content::Body::Deletion(d)) => required(&d.message_id, "message id")?,
    }
    let mut plaintext = Vec::with_capacity(2 + content.encoded_len());
    plaintext.extend_from_slice(&[MARKER, FORMAT]);
    content.encode_raw(&mut plaintext);
    Ok(plaintext)
}

/// The plaintext of a text message (`reply_to` may be empty).
pub fn text(text: &str, reply_to: &str) -> Result<Vec<u8>, ContentError> {
    Outgoing::Text { text: text.to_owned(), spans: Vec::new(), reply_to: reply_to.to_owned() }.encode()
}

/// The plaintext of a file message (`reply_to` may be empty).
pub fn file(file: FileContent, reply_to: &str) -> Result<Vec<u8>, ContentError> {
    Outgoing::File { file, reply_to: reply_to.to_owned() }.encode()
}

/// The plaintext that `EditMessage` puts in place of our message `message_id`.
pub fn edit(message_id: &str, text: &str) -> Result<Vec<u8>, ContentError> {
    Outgoing::Edit { message_id: message_id.to_owned(), text: text.to_owned(), spans: Vec::new() }.encode()
}

/// The plaintext of a reaction to `message_id` (or of taking it back).
pub fn reaction(message_id: &str, emoji: &str, remove: bool) -> Result<Vec<u8>, ContentError> {
    Outgoing::Reaction { message_id: message_id.to_owned(), emoji: emoji.to_owned(), remove }.encode()
}

/// The plaintext of a deletion of `message_id`.
pub fn deletion(message_id: &str) -> Result<Vec<u8>, ContentError> {
    Outgoing::Deletion { message_id: message_id.to_owned() }.encode()
}

fn required(value: &str, what: &'static str) -> Result<(), ContentError> {
    if value.is_empty() { Err(ContentError::Missing(what)) } else { Ok(()) }
}

fn text_content(body: String, spans: &[Span]) -> Result<TextContent, ContentError> {
    let spans =
        spans.iter().map(|s| TextSpan { start: s.start, end: s.end, style: s.style.into() }).collect();
    let text = TextContent { body, spans, mentions: Vec::new() };
    check_text(&text)?;
    Ok(text)
}

fn check_text(text: &TextContent) -> Result<(), ContentError> {
    kitsulan_content::rules::check_text(text).map_err(ContentError::from)
}

fn check_file(file: &FileContent) -> Result<(), ContentError> {
    kitsulan_content::rules::check_file(file).map_err(ContentError::from)
}

impl From<kitsulan_content::rules::Problem> for ContentError {
    fn from(problem: kitsulan_content::rules::Problem) -> Self {
        use kitsulan_content::rules::Problem;
        match problem {
            Problem::TextTooLong => Self::TextTooLong,
            Problem::InvalidSpan => Self::InvalidSpan,
            Problem::Missing(what) => Self::Missing(what),
        }
    }
}

/// What the decrypted `plaintext` of the message `message_id` says.
pub fn decode(plaintext: &[u8], message_id: &str) -> Result<Decoded, ContentError> {
    match plaintext {
        [MARKER, FORMAT, rest @ ..] => decode_typed(rest, message_id),
        [MARKER] => Err(ContentError::Malformed),
        [MARKER, ..] => Ok(Decoded { body: Body::Unsupported, reply_to: None }),
        legacy => {
            let text = std::str::from_utf8(legacy).map_err(|_| ContentError::NotUtf8)?;
            let body = match legacy::file(text) {
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
    let (body, reply_to) = match content.body {
        Some(content::Body::Text(text)) => (text_of(text)?, reply_to),
        Some(content::Body::File(file)) => (Body::File(file_of(file)?), reply_to),
        Some(content::Body::Edit(edit)) => {
            // An edit replaces the ciphertext of one message: shown only there, so a server
            // cannot move it to another message. Its text is the message's text; it answers
            // nothing of its own.
            if edit.message_id != message_id {
                return Err(ContentError::EditForAnotherMessage);
            }
            (text_of(edit.text.unwrap_or_default())?, None)
        }
        Some(content::Body::Reaction(r)) => {
            if r.message_id.is_empty() || r.emoji.is_empty() {
                return Err(ContentError::Malformed);
            }
            // Shown as a chip with a count: one emoji, bounded (never text, never a long string).
            if emoji::problem(&r.emoji).is_some() {
                return Err(ContentError::MalformedReaction);
            }
            (Body::Reaction { message_id: r.message_id, emoji: r.emoji, remove: r.remove }, None)
        }
        Some(content::Body::Deletion(d)) => {
            if d.message_id.is_empty() {
                return Err(ContentError::Malformed);
            }
            (Body::Deletion { message_id: d.message_id }, None)
        }
        // Unset, or a kind this client does not know (an unknown field prost skipped).
        None => (Body::Unsupported, None),
    };
    Ok(Decoded { body, reply_to })
}

/// A received text: refused when too long; spans clamped to the text, the empty ones and those
/// of an unknown style left out.
fn text_of(text: TextContent) -> Result<Body, ContentError> {
    let len = utf16_len(&text.body);
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

/// A received file: refused without its attachment id or secrets; the rest made regular (see
/// [`Body::File`]).
fn file_of(mut file: FileContent) -> Result<FileContent, ContentError> {
    if file.attachment_id.is_empty() || file.secrets.is_empty() {
        return Err(ContentError::Malformed);
    }
    if file.name.is_empty() {
        UNNAMED_FILE.clone_into(&mut file.name);
    }
    if file.width == 0 || file.height == 0 {
        (file.width, file.height) = (0, 0);
    }
    file.thumbnail =
        file.thumbnail.filter(|t| !t.attachment_id.is_empty() && !t.secrets.is_empty()).map(|mut t| {
            if t.media_type.is_empty() {
                THUMBNAIL_TYPE.clone_into(&mut t.media_type);
            }
            t
        });
    Ok(file)
}
