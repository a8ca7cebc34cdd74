//! What a text or a file a sender writes must be, checked the same on a device (the crypto
//! crate's codec, before encrypting) and on the server (cloud content, stored as sent).

use crate::{FileContent, TextContent, TextStyle};

/// The longest text, in UTF-16 code units (what the browser counts; `TextContent.body`).
pub const MAX_TEXT_LENGTH: usize = 16_000;

/// Why a text or a file cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A text longer than [`MAX_TEXT_LENGTH`].
    TextTooLong,
    /// A formatting span that is empty, ends past its text or has no style.
    InvalidSpan,
    /// A field a reader requires is empty (a file's attachment id or secrets, a thumbnail's).
    Missing(&'static str),
}

/// The length of `text` in UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// A text of at most [`MAX_TEXT_LENGTH`] with every span inside it and styled.
pub fn check_text(text: &TextContent) -> Result<(), Problem> {
    let len = utf16_len(&text.body);
    if len > MAX_TEXT_LENGTH {
        return Err(Problem::TextTooLong);
    }
    for s in &text.spans {
        let known = TextStyle::try_from(s.style).is_ok_and(|s| s != TextStyle::Unspecified);
        if !known || s.start >= s.end || s.end as usize > len {
            return Err(Problem::InvalidSpan);
        }
    }
    Ok(())
}

/// A file that names its attachment and the secrets that open it (and its thumbnail's).
pub fn check_file(file: &FileContent) -> Result<(), Problem> {
    let required = |value: bool, what| if value { Ok(()) } else { Err(Problem::Missing(what)) };
    required(!file.attachment_id.is_empty(), "attachment id")?;
    required(!file.secrets.is_empty(), "secrets")?;
    if let Some(t) = &file.thumbnail {
        required(!t.attachment_id.is_empty(), "thumbnail attachment id")?;
        required(!t.secrets.is_empty(), "thumbnail secrets")?;
    }
    Ok(())
}
