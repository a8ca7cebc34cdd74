//! Words and stems for full-text search of cloud messages.
//!
//! Both databases find a word in any inflected form: PostgreSQL with its `russian` text-search
//! configuration (Snowball: Russian for Cyrillic words, English for the rest), SQLite with FTS5
//! over the stems this module computes with the same Snowball algorithms. A query is only ever
//! a list of words: quotes, operators and other search syntax are not read, so no input can
//! make the database fail.

use rust_stemmers::{Algorithm, Stemmer};

/// The longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;

/// The words of `text`: runs of letters and digits, lowercased, `ё` read as `е`. Each comes with
/// its place in `text` (byte offsets), for highlighting.
pub fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = None;
    let mut out = Vec::new();
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push((s, &text[s..i]));
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out.into_iter()
}

/// The stem of one word (as [`words`] gives it): Russian Snowball for a word with Cyrillic
/// letters, English for the rest.
pub fn stem(word: &str) -> String {
    let lower: String =
        word.chars().flat_map(char::to_lowercase).map(|c| if c == 'ё' { 'е' } else { c }).collect();
    let cyrillic = lower.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c));
    let stemmer = Stemmer::create(if cyrillic { Algorithm::Russian } else { Algorithm::English });
    stemmer.stem(&lower).into_owned()
}

/// The stems of `text`, space-separated: what SQLite's search index holds for a message.
pub fn index_terms(text: &str) -> String {
    words(text).map(|(_, w)| stem(w)).collect::<Vec<_>>().join(" ")
}

/// The distinct stems of a query, in order (empty when it has no word).
pub fn query_stems(query: &str) -> Vec<String> {
    let mut stems: Vec<String> = Vec::new();
    for (_, word) in words(query) {
        let s = stem(word);
        if !stems.contains(&s) {
            stems.push(s);
        }
    }
    stems
}

/// An FTS5 query that matches rows holding every stem: each a quoted string (letters and digits
/// only, so nothing in it is FTS5 syntax).
pub(crate) fn fts5_query(stems: &[String]) -> String {
    stems.iter().map(|s| format!("\"{}\"", s.replace('"', "\"\""))).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflected_russian_and_english_words_share_a_stem() {
        assert_eq!(stem("кошками"), stem("кошка"));
        assert_eq!(stem("Ёлки"), stem("елка"));
        assert_eq!(stem("running"), stem("runs"));
        assert_ne!(stem("кошка"), stem("мышка"));
    }

    #[test]
    fn search_syntax_is_only_words() {
        assert_eq!(query_stems("\"NEAR(a b)\" OR -x* ^col:y"), vec!["near", "a", "b", "or", "x", "col", "y"]);
        assert!(query_stems("*** \"\" ()").is_empty());
        assert_eq!(fts5_query(&query_stems("привет, world!")), "\"привет\" \"world\"");
    }

    #[test]
    fn words_keep_their_place() {
        let text = "Hi, Мир!";
        let found: Vec<_> = words(text).collect();
        assert_eq!(found, vec![(0, "Hi"), (4, "Мир")]);
    }
}
