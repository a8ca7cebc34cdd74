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
//! that names nothing, a reaction whose emoji is not one emoji ([`emoji`]), a mention outside
//! its text or more than [`MAX_MENTIONS`] (a quote past [`MAX_QUOTE_LENGTH`] is cut). A text or
//! a file carries its [`Extras`] (quote, forwarded mark, mentions) both ways.

/// One emoji: what a reaction carries (shared with the server, which checks cloud reactions).
pub use kitsulan_content::emoji;
pub(crate) mod legacy;
#[cfg(test)]
mod tests;

/// The prost messages of `content.proto` (generated once, in the `kitsulan-content` crate).
pub use kitsulan_content as proto;

use kitsulan_content::rules::{self, utf16_len};
use prost::Message as _;
use proto::{Content, Deletion, Edit, FileContent, Reaction, Reply, TextContent, TextSpan, content};
pub use proto::{Forwarded, Mention};

pub use emoji::{EmojiProblem, MAX_REACTION_BYTES};
pub use proto::TextStyle;

/// The first byte of a typed plaintext: no UTF-8 text the old clients sent starts with it.
pub const MARKER: u8 = 0x00;
/// The format of the Content that follows the marker.
pub const FORMAT: u8 = 0x01;
/// The revision of the Content schema this crate writes.
pub const VERSION: u32 = 1;
/// The most people one text mentions.
pub use kitsulan_content::rules::MAX_MENTIONS;
/// The longest quote of a reply, in UTF-16 code units.
pub use kitsulan_content::rules::MAX_QUOTE_LENGTH;
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
    /// Writing: more than [`MAX_MENTIONS`] mentions in one text.
    #[error("too many mentions")]
    TooManyMentions,
    /// Writing: a mention that is empty, ends past its text or names nobody (or a file's).
    #[error("a mention outside its text")]
    InvalidMention,
    /// Writing: a quote longer than [`MAX_QUOTE_LENGTH`] in a Content given whole to [`encode`]
    /// ([`Outgoing`] cuts a quote to the limit).
    #[error("quote too long")]
    QuoteTooLong,
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
            Self::TooManyMentions => "too_many_mentions",
            Self::InvalidMention => "invalid_mention",
            Self::QuoteTooLong => "quote_too_long",
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
    /// What a text or a file carries besides its body (empty for everything else).
    pub extras: Extras,
}

/// What a text or a file may carry besides its body: the part of the message answered that it
/// quotes, that it was forwarded (and from whom), and (texts) the people it mentions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// The part of the message answered that it shows, at most [`MAX_QUOTE_LENGTH`] (empty:
    /// a plain reply). Only with a reply: a quote that answers nothing is not written or read.
    pub quote: String,
    /// Forwarded: who wrote the original ("" when hidden) and when it was sent.
    pub forwarded: Option<Forwarded>,
    /// The people a text names (`@name`): each inside the text, at most [`MAX_MENTIONS`].
    /// A reader keeps those that lie inside the text and leaves out the rest.
    pub mentions: Vec<Mention>,
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
        /// Quote, forwarded mark, mentions (a quote longer than [`MAX_QUOTE_LENGTH`] is cut).
        extras: Extras,
    },
    /// A file, answering `reply_to` (empty for none).
    File {
        /// The file: its attachment id and secrets are required.
        file: FileContent,
        /// The message answered, or empty.
        reply_to: String,
        /// Quote and forwarded mark (a file mentions nobody: its mentions are refused).
        extras: Extras,
    },
    /// The new text of our message `message_id` (sent through EditMessage).
    Edit {
        /// The message edited: the one whose ciphertext this replaces.
        message_id: String,
        /// The new text.
        text: String,
        /// Its formatting.
        spans: Vec<Span>,
        /// The people the new text mentions.
        mentions: Vec<Mention>,
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
        let (reply_to, extras, body) = match self {
            Self::Text { text, spans, reply_to, mut extras } => {
                let mentions = std::mem::take(&mut extras.mentions);
                (reply_to, extras, content::Body::Text(text_content(text, &spans, mentions)?))
            }
            Self::File { file, reply_to, extras } => {
                if !extras.mentions.is_empty() {
                    return Err(ContentError::InvalidMention);
                }
                (reply_to, extras, content::Body::File(file))
            }
            Self::Edit { message_id, text, spans, mentions } => {
                let text = Some(text_content(text, &spans, mentions)?);
                (String::new(), Extras::default(), content::Body::Edit(Edit { message_id, text }))
            }
            Self::Reaction { message_id, emoji, remove } => (
                String::new(),
                Extras::default(),
                content::Body::Reaction(Reaction { message_id, emoji, remove }),
            ),
            Self::Deletion { message_id } => {
                (String::new(), Extras::default(), content::Body::Deletion(Deletion { message_id }))
            }
        };
        let reply = (!reply_to.is_empty()).then(|| Reply {
            message_id: reply_to,
            quote: rules::quote_within_limit(&extras.quote).to_owned(),
        });
        encode(Content { version: VERSION, reply, forwarded: extras.forwarded, body: Some(body) })
    }
}

/// The plaintext of `content` (its `version` set to [`VERSION`]), checked as [`Outgoing`] is:
/// a Content without a body, or one a reader would find malformed, is refused.
pub fn encode(mut content: Content) -> Result<Vec<u8>, ContentError> {
    content.version = VERSION;
    if let Some(reply) = &content.reply {
        rules::check_quote(&reply.quote)?;
    }
    match &content.body {
        None => return Err(ContentError::Missing("body")),
        Some(content::Body::Text(t)) => rules::check_text(t)?,
        Some(content::Body::File(f)) => rules::check_file(f)?,
        Some(content::Body::Edit(e)) => {
            required(&e.message_id, "message id")?;
            if let Some(t) = &e.text {
                rules::check_text(t)?;
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
    Outgoing::Text {
        text: text.to_owned(),
        spans: Vec::new(),
        reply_to: reply_to.to_owned(),
        extras: Extras::default(),
    }
    .encode()
}

/// The plaintext of a file message (`reply_to` may be empty).
pub fn file(file: FileContent, reply_to: &str) -> Result<Vec<u8>, ContentError> {
    Outgoing::File { file, reply_to: reply_to.to_owned(), extras: Extras::default() }.encode()
}

/// The plaintext that `EditMessage` puts in place of our message `message_id`.
pub fn edit(message_id: &str, text: &str) -> Result<Vec<u8>, ContentError> {
    Outgoing::Edit {
        message_id: message_id.to_owned(),
        text: text.to_owned(),
        spans: Vec::new(),
        mentions: Vec::new(),
    }
    .encode()
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

fn text_content(body: String, spans: &[Span], mentions: Vec<Mention>) -> Result<TextContent, ContentError> {
    let spans =
        spans.iter().map(|s| TextSpan { start: s.start, end: s.end, style: s.style.into() }).collect();
    let text = TextContent { body, spans, mentions };
    rules::check_text(&text)?;
    Ok(text)
}

impl From<rules::Problem> for ContentError {
    fn from(problem: rules::Problem) -> Self {
        use rules::Problem;
        match problem {
            Problem::TextTooLong => Self::TextTooLong,
            Problem::InvalidSpan => Self::InvalidSpan,
            Problem::Missing(what) => Self::Missing(what),
            Problem::TooManyMentions => Self::TooManyMentions,
            Problem::InvalidMention => Self::InvalidMention,
            Problem::QuoteTooLong => Self::QuoteTooLong,
        }
    }
}

/// What the decrypted `plaintext` of the message `message_id` says.
pub fn decode(plaintext: &[u8], message_id: &str) -> Result<Decoded, ContentError> {
    match plaintext {
        [MARKER, FORMAT, rest @ ..] => decode_typed(rest, message_id),
        [MARKER] => Err(ContentError::Malformed),
        [MARKER, ..] => Ok(Decoded { body: Body::Unsupported, reply_to: None, extras: Extras::default() }),
        legacy => {
            let text = std::str::from_utf8(legacy).map_err(|_| ContentError::NotUtf8)?;
            let body = match legacy::file(text) {
                Some(file) => Body::File(file),
                None => Body::Text { text: text.to_owned(), spans: Vec::new() },
            };
            Ok(Decoded { body, reply_to: None, extras: Extras::default() })
        }
    }
}

fn decode_typed(bytes: &[u8], message_id: &str) -> Result<Decoded, ContentError> {
    let content = Content::decode(bytes).map_err(|_| ContentError::Malformed)?;
    let (reply_to, quote) = content.reply.map(|r| (r.message_id, r.quote)).unwrap_or_default();
    // A quote shows only with the message it answers, cut to the limit whatever was sent.
    let quote =
        if reply_to.is_empty() { String::new() } else { rules::quote_within_limit(&quote).to_owned() };
    let mut extras = Extras { quote, forwarded: content.forwarded, mentions: Vec::new() };
    let reply_to = Some(reply_to);
    let (body, reply_to) = match content.body {
        Some(content::Body::Text(text)) => {
            let (body, mentions) = text_of(text)?;
            extras.mentions = mentions;
            (body, reply_to)
        }
        Some(content::Body::File(file)) => (Body::File(file_of(file)?), reply_to),
        Some(content::Body::Edit(edit)) => {
            // An edit replaces the ciphertext of one message: shown only there, so a server
            // cannot move it to another message. Its text is the message's text; it answers
            // nothing of its own.
            if edit.message_id != message_id {
                return Err(ContentError::EditForAnotherMessage);
            }
            let (body, mentions) = text_of(edit.text.unwrap_or_default())?;
            extras = Extras { mentions, ..Extras::default() };
            (body, None)
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
    if !matches!(body, Body::Text { .. } | Body::File(_)) {
        extras = Extras::default();
    }
    Ok(Decoded { body, reply_to, extras })
}

/// A received text: refused when too long; spans clamped to the text, the empty ones and those
/// of an unknown style left out; the mentions inside the text (at most [`MAX_MENTIONS`]), the
/// others left out.
fn text_of(text: TextContent) -> Result<(Body, Vec<Mention>), ContentError> {
    let len = utf16_len(&text.body);
    if len > MAX_TEXT_LENGTH {
        return Err(ContentError::Malformed);
    }
    let units = len;
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
    let mentions =
        text.mentions.into_iter().filter(|m| rules::mention_within(m, units)).take(MAX_MENTIONS).collect();
    Ok((Body::Text { text: text.body, spans }, mentions))
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
