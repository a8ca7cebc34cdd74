//! What a text or a file a sender writes must be, checked the same on a device (the crypto
//! crate's codec, before encrypting) and on the server (cloud content, stored as sent).

use crate::{FileContent, Mention, TextContent, TextStyle};

/// The longest text, in UTF-16 code units (what the browser counts; `TextContent.body`).
pub const MAX_TEXT_LENGTH: usize = 16_000;
/// The most people one text mentions (`TextContent.mentions`).
pub const MAX_MENTIONS: usize = 50;
/// The longest quote of a reply (`Reply.quote`), in UTF-16 code units.
pub const MAX_QUOTE_LENGTH: usize = 1_000;

/// Why a text or a file cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A text longer than [`MAX_TEXT_LENGTH`].
    TextTooLong,
    /// A formatting span that is empty, ends past its text or has no style.
    InvalidSpan,
    /// A field a reader requires is empty (a file's attachment id or secrets, a thumbnail's).
    Missing(&'static str),
    /// More than [`MAX_MENTIONS`] mentions in one text.
    TooManyMentions,
    /// A mention that is empty, ends past its text or names nobody.
    InvalidMention,
    /// A quote longer than [`MAX_QUOTE_LENGTH`].
    QuoteTooLong,
}

/// The length of `text` in UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// A text of at most [`MAX_TEXT_LENGTH`] with every span inside it and styled, and at most
/// [`MAX_MENTIONS`] mentions, each inside it and naming someone.
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
    if text.mentions.len() > MAX_MENTIONS {
        return Err(Problem::TooManyMentions);
    }
    if text.mentions.iter().any(|m| !mention_within(m, len)) {
        return Err(Problem::InvalidMention);
    }
    Ok(())
}

/// Whether `mention` names someone over a non-empty range inside a text of `len` UTF-16 code
/// units (a reader shows only those).
pub fn mention_within(mention: &Mention, len: usize) -> bool {
    !mention.account_id.is_empty() && mention.start < mention.end && mention.end as usize <= len
}

/// A quote of at most [`MAX_QUOTE_LENGTH`].
pub fn check_quote(quote: &str) -> Result<(), Problem> {
    if utf16_len(quote) > MAX_QUOTE_LENGTH { Err(Problem::QuoteTooLong) } else { Ok(()) }
}

/// `quote` cut to at most [`MAX_QUOTE_LENGTH`] UTF-16 code units, at a character boundary.
pub fn quote_within_limit(quote: &str) -> &str {
    let mut units = 0;
    for (at, c) in quote.char_indices() {
        units += c.len_utf16();
        if units > MAX_QUOTE_LENGTH {
            return &quote[..at];
        }
    }
    quote
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str, mentions: Vec<Mention>) -> TextContent {
        TextContent { body: body.to_owned(), spans: Vec::new(), mentions }
    }

    fn mention(start: u32, end: u32) -> Mention {
        Mention { account_id: "someone".to_owned(), start, end }
    }

    #[test]
    fn mentions_lie_inside_their_text_and_are_bounded_in_number() {
        // "@Ёлка" is five UTF-16 units, as the browser counts them.
        assert_eq!(check_text(&text("@Ёлка hi", vec![mention(0, 5)])), Ok(()));
        assert_eq!(check_text(&text("@Ёлка", vec![mention(0, 6)])), Err(Problem::InvalidMention));
        assert_eq!(check_text(&text("@Ёлка", vec![mention(3, 3)])), Err(Problem::InvalidMention));
        let nobody = Mention { account_id: String::new(), start: 0, end: 1 };
        assert_eq!(check_text(&text("@x", vec![nobody])), Err(Problem::InvalidMention));
        let many = "@a ".repeat(MAX_MENTIONS + 1);
        let fits: Vec<Mention> = (0..MAX_MENTIONS as u32).map(|i| mention(i * 3, i * 3 + 2)).collect();
        assert_eq!(check_text(&text(&many, fits.clone())), Ok(()));
        let mut over = fits;
        over.push(mention(MAX_MENTIONS as u32 * 3, MAX_MENTIONS as u32 * 3 + 2));
        assert_eq!(check_text(&text(&many, over)), Err(Problem::TooManyMentions));
    }

    #[test]
    fn a_quote_is_bounded_and_cut_at_a_character() {
        let at_limit = "q".repeat(MAX_QUOTE_LENGTH);
        assert_eq!(check_quote(&at_limit), Ok(()));
        assert_eq!(check_quote(&format!("{at_limit}q")), Err(Problem::QuoteTooLong));
        // An emoji is two UTF-16 units: one that would straddle the limit is left out whole.
        let straddling = format!("{}🦊", "q".repeat(MAX_QUOTE_LENGTH - 1));
        assert_eq!(check_quote(&straddling), Err(Problem::QuoteTooLong));
        let cut = quote_within_limit(&straddling);
        assert_eq!(cut, "q".repeat(MAX_QUOTE_LENGTH - 1));
        assert_eq!(quote_within_limit("short"), "short");
    }
}
