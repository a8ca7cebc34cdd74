#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::proto::{FileThumbnail, TextSpan};
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
        "secrets": legacy::to_base64(&[1, 2, 3, 4, 5, 6, 7, 8]),
        "name": "holiday.jpg",
        "type": "image/jpeg",
        "size": 123_456,
        "width": 4032,
        "height": 3024,
        "thumbnail": {
            "attachment": "0193a0a0-0000-7000-8000-0000000000bb",
            "secrets": legacy::to_base64(&[9, 10, 11]),
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

fn raw_text(body: &str, spans: Vec<TextSpan>) -> Vec<u8> {
    let content = Content {
        forwarded: None,
        version: 1,
        reply: None,
        body: Some(content::Body::Text(TextContent { mentions: Vec::new(), body: body.to_owned(), spans })),
    };
    typed(&content.encode_to_vec())
}

#[test]
fn a_typed_text_is_prefixed_and_reads_back_with_its_reply() {
    let plaintext = text("hello 👋", OTHER).unwrap();
    assert_eq!(&plaintext[..2], &[0x00, 0x01]);
    let read = decode(&plaintext, MSG).unwrap();
    assert_eq!(
        read,
        Decoded {
            body: text_body("hello 👋"), reply_to: Some(OTHER.to_owned()), extras: Extras::default()
        }
    );
    let read = decode(&text("no reply", "").unwrap(), MSG).unwrap();
    assert_eq!(read.reply_to.as_deref(), Some(""));
}

#[test]
fn formatted_text_reads_back_with_its_spans() {
    let spans = vec![
        Span { start: 0, end: 4, style: TextStyle::Bold },
        Span { start: 5, end: 8, style: TextStyle::Spoiler },
    ];
    let out = Outgoing::Text {
        text: "bold 👋x".to_owned(),
        spans: spans.clone(),
        reply_to: String::new(),
        extras: Extras::default(),
    };
    let read = decode(&out.encode().unwrap(), MSG).unwrap();
    assert_eq!(read.body, Body::Text { text: "bold 👋x".to_owned(), spans });
}

#[test]
fn spans_outside_the_text_or_without_a_style_are_not_written() {
    let write = |start, end, style| {
        let spans = vec![Span { start, end, style }];
        Outgoing::Text {
            text: "👋ab".to_owned(), spans, reply_to: String::new(), extras: Extras::default()
        }
        .encode()
    };
    // "👋ab" is four UTF-16 code units.
    assert!(write(0, 4, TextStyle::Bold).is_ok());
    assert_eq!(write(0, 5, TextStyle::Bold), Err(ContentError::InvalidSpan));
    assert_eq!(write(2, 2, TextStyle::Bold), Err(ContentError::InvalidSpan));
    assert_eq!(write(3, 1, TextStyle::Bold), Err(ContentError::InvalidSpan));
    assert_eq!(write(0, 1, TextStyle::Unspecified), Err(ContentError::InvalidSpan));
    let edit = Outgoing::Edit {
        message_id: MSG.to_owned(),
        text: "ab".to_owned(),
        spans: vec![Span { start: 0, end: 3, style: TextStyle::Code }],
        mentions: Vec::new(),
    };
    assert_eq!(edit.encode(), Err(ContentError::InvalidSpan));
    // A raw Content with a span of an unknown style is refused as well.
    let content = Content {
        forwarded: None,
        version: 1,
        reply: None,
        body: Some(content::Body::Text(TextContent {
            mentions: Vec::new(),
            body: "ab".to_owned(),
            spans: vec![TextSpan { start: 0, end: 1, style: 77 }],
        })),
    };
    assert_eq!(encode(content), Err(ContentError::InvalidSpan));
}

#[test]
fn a_file_reads_back_with_its_secrets_as_raw_bytes() {
    let plaintext = file(a_file(), "").unwrap();
    assert!(plaintext.windows(8).any(|w| w == [1, 2, 3, 4, 5, 6, 7, 8]), "raw secrets");
    assert!(!String::from_utf8_lossy(&plaintext).contains(&legacy::to_base64(&[1, 2, 3, 4, 5, 6, 7, 8])));
    assert_eq!(decode(&plaintext, MSG).unwrap().file(), Some(&a_file()));
}

#[test]
fn a_received_file_is_made_regular() {
    let mut f = a_file();
    f.name.clear();
    f.width = 0;
    f.thumbnail.as_mut().unwrap().media_type.clear();
    let read = decode(&file(f, "").unwrap(), MSG).unwrap();
    let got = read.file().unwrap();
    assert_eq!((got.name.as_str(), got.width, got.height), (UNNAMED_FILE, 0, 0));
    assert_eq!(got.thumbnail.as_ref().unwrap().media_type, THUMBNAIL_TYPE);
    // A thumbnail without its id is left out (written raw: the writer refuses it).
    let mut f = a_file();
    f.thumbnail.as_mut().unwrap().attachment_id.clear();
    let raw = Content { forwarded: None, version: 1, reply: None, body: Some(content::Body::File(f)) };
    let read = decode(&typed(&raw.encode_to_vec()), MSG).unwrap();
    assert_eq!(read.file().unwrap().thumbnail, None);
}

#[test]
fn what_names_nothing_is_not_written() {
    let mut f = a_file();
    f.attachment_id.clear();
    assert_eq!(file(f, ""), Err(ContentError::Missing("attachment id")));
    let mut f = a_file();
    f.secrets.clear();
    assert_eq!(file(f, ""), Err(ContentError::Missing("secrets")));
    let mut f = a_file();
    f.thumbnail.as_mut().unwrap().secrets.clear();
    assert_eq!(file(f, ""), Err(ContentError::Missing("thumbnail secrets")));
    assert_eq!(edit("", "x"), Err(ContentError::Missing("message id")));
    assert_eq!(reaction("", "👍", false), Err(ContentError::Missing("message id")));
    assert_eq!(reaction(OTHER, "", false), Err(ContentError::Missing("emoji")));
    assert_eq!(deletion(""), Err(ContentError::Missing("message id")));
    assert_eq!(encode(Content::default()), Err(ContentError::Missing("body")));
    assert_eq!(ContentError::Missing("emoji").to_string(), "no emoji");
}

#[test]
fn a_legacy_text_is_read_as_text() {
    let read = decode(b"plain old text", MSG).unwrap();
    assert_eq!(
        read,
        Decoded { body: text_body("plain old text"), reply_to: None, extras: Extras::default() }
    );
    assert_eq!(decode(b"", MSG).unwrap().body, text_body(""));
    assert_eq!(decode(&[0xff, 0xfe, b'a'], MSG), Err(ContentError::NotUtf8));
    assert_eq!(ContentError::NotUtf8.to_string(), "not UTF-8");
}

#[test]
fn a_legacy_json_attachment_is_read_as_a_file() {
    let read = decode(legacy_json().as_bytes(), MSG).unwrap();
    assert_eq!(read.file(), Some(&a_file()));
    assert_eq!(read.reply_to, None);
    // Only `attachment` and `secrets` are required; base64 padded or not.
    for secrets in ["Bw==", "Bw"] {
        let minimal = format!("{{\"attachment\":\"a1\",\"secrets\":\"{secrets}\"}}");
        let file = decode(minimal.as_bytes(), MSG).unwrap().file().cloned().unwrap();
        assert_eq!(
            (file.name.as_str(), file.media_type.as_str(), file.size, file.secrets),
            ("file", "", 0, vec![7])
        );
    }
    // Not such an object: text.
    for text in [
        "{\"attachment\":1,\"secrets\":\"AQ==\"}",
        "{not json",
        "[1,2]",
        "{\"secrets\":\"AQ==\"}",
        "{\"attachment\":\"a1\",\"secrets\":\"not base64!\"}",
        "{\"attachment\":\"\",\"secrets\":\"AQ==\"}",
        "{\"attachment\":\"a1\",\"secrets\":\"\"}",
        " {\"attachment\":\"a1\",\"secrets\":\"AQ==\"}",
    ] {
        assert_eq!(decode(text.as_bytes(), MSG).unwrap().body, text_body(text), "{text}");
    }
}

#[test]
fn legacy_json_numbers_are_read_as_before() {
    let json = r#"{"attachment":"a1","secrets":"AQ==","size":-5,"width":1e12,"height":7.9,
        "thumbnail":{"attachment":"t1","secrets":"Ag==","width":1}}"#;
    let file = decode(json.as_bytes(), MSG).unwrap().file().cloned().unwrap();
    // A negative size is unknown (0); a dimension saturates and truncates; a thumbnail without
    // its height is left out.
    assert_eq!((file.size, file.width, file.height, file.thumbnail), (0, u32::MAX, 7, None));
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
    assert_eq!(
        decode(&future, MSG).unwrap(),
        Decoded { body: Body::Unsupported, reply_to: None, extras: Extras::default() }
    );
    assert_eq!(decode(&typed(&[]), MSG).unwrap().body, Body::Unsupported);
    assert_eq!(decode(&typed(&[0x08, 0x01]), MSG).unwrap().body, Body::Unsupported);
    assert_eq!(decode(&[0x00, 0x02, 0x01], MSG).unwrap().body, Body::Unsupported);
    assert_eq!(decode(&[0x00, 0xff], MSG).unwrap().body, Body::Unsupported);
}

#[test]
fn malformed_content_is_an_error() {
    let cases: [&[u8]; 9] = [
        &[0x00],                                     // the marker without a format
        &[0x00, 0x01, 0x52],                         // field 10 (text), length missing
        &[0x00, 0x01, 0x52, 0x05, 0x0a],             // truncated
        &[0x00, 0x01, 0x52, 0x03, 0x0a, 0x01, 0xff], // text body not UTF-8
        &[0x00, 0x01, 0x08],                         // version without its value
        &[0x00, 0x01, 0x5a, 0x00],                   // a file naming no attachment
        &[0x00, 0x01, 0x62, 0x00],                   // a reaction to nothing
        &[0x00, 0x01, 0x72, 0x00],                   // a deletion of nothing
        &[0x00, 0x01, 0x52, 0x02, 0x0a],             // a length past the end
    ];
    for case in cases {
        assert_eq!(decode(case, MSG), Err(ContentError::Malformed), "{case:?}");
    }
    // A reaction without its emoji.
    let raw = Content {
        forwarded: None,
        version: 1,
        reply: None,
        body: Some(content::Body::Reaction(Reaction {
            message_id: OTHER.to_owned(),
            emoji: String::new(),
            remove: false,
        })),
    };
    assert_eq!(decode(&typed(&raw.encode_to_vec()), MSG), Err(ContentError::Malformed));
    assert_eq!(ContentError::Malformed.to_string(), "malformed content");
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    // An unknown field 15 as a group (wire type 3) nested ten thousand times: prost's recursion
    // limit refuses it.
    let depth = 10_000;
    let body = [vec![0x7b; depth], vec![0x7c; depth]].concat();
    assert_eq!(decode(&typed(&body), MSG), Err(ContentError::Malformed));
    // Nested a few times it is an unknown field like any other.
    assert_eq!(decode(&typed(&[0x7b, 0x7b, 0x7c, 0x7c]), MSG).unwrap().body, Body::Unsupported);
}

#[test]
fn an_edit_shows_only_on_the_message_it_names() {
    let plaintext = edit(MSG, "fixed").unwrap();
    assert_eq!(
        decode(&plaintext, MSG).unwrap(),
        Decoded { body: text_body("fixed"), reply_to: None, extras: Extras::default() }
    );
    assert_eq!(decode(&plaintext, OTHER), Err(ContentError::EditForAnotherMessage));
    assert_eq!(ContentError::EditForAnotherMessage.to_string(), "edit for another message");
    // One naming no message (written raw: the writer refuses it) is refused everywhere.
    let raw = Content {
        forwarded: None,
        version: 1,
        reply: None,
        body: Some(content::Body::Edit(Edit { message_id: String::new(), text: None })),
    };
    assert_eq!(decode(&typed(&raw.encode_to_vec()), MSG), Err(ContentError::EditForAnotherMessage));
    // Without a text: an empty text.
    let raw = Content {
        forwarded: None,
        version: 1,
        reply: None,
        body: Some(content::Body::Edit(Edit { message_id: MSG.to_owned(), text: None })),
    };
    assert_eq!(decode(&typed(&raw.encode_to_vec()), MSG).unwrap().body, text_body(""));
}

#[test]
fn an_edit_answers_nothing_even_with_a_reply() {
    let raw = Content {
        forwarded: None,
        version: 1,
        reply: Some(Reply { quote: String::new(), message_id: OTHER.to_owned() }),
        body: Some(content::Body::Edit(Edit { message_id: MSG.to_owned(), text: None })),
    };
    assert_eq!(decode(&typed(&raw.encode_to_vec()), MSG).unwrap().reply_to, None);
}

#[test]
fn reactions_and_deletions_are_their_own_kinds() {
    let read = decode(&reaction(OTHER, "🎉", false).unwrap(), MSG).unwrap();
    assert_eq!(
        read.body,
        Body::Reaction { message_id: OTHER.to_owned(), emoji: "🎉".to_owned(), remove: false }
    );
    let read = decode(&reaction(OTHER, "👍", true).unwrap(), MSG).unwrap();
    assert_eq!(
        read.body,
        Body::Reaction { message_id: OTHER.to_owned(), emoji: "👍".to_owned(), remove: true }
    );
    let read = decode(&deletion(OTHER).unwrap(), MSG).unwrap();
    assert_eq!(
        read,
        Decoded {
            body: Body::Deletion { message_id: OTHER.to_owned() },
            reply_to: None,
            extras: Extras::default()
        }
    );
}

#[test]
fn text_length_is_limited_both_ways() {
    let long = "x".repeat(MAX_TEXT_LENGTH + 1);
    assert_eq!(text(&long, ""), Err(ContentError::TextTooLong));
    assert_eq!(edit(MSG, &long), Err(ContentError::TextTooLong));
    assert!(text(&long[1..], "").is_ok());
    // UTF-16 code units: an emoji is two.
    let emoji = "👋".repeat(MAX_TEXT_LENGTH / 2);
    assert!(text(&emoji, "").is_ok());
    assert_eq!(text(&format!("{emoji}x"), ""), Err(ContentError::TextTooLong));
    assert_eq!(decode(&raw_text(&long, Vec::new()), MSG), Err(ContentError::Malformed));
    // An edit's text too.
    let raw = Content {
        forwarded: None,
        version: 1,
        reply: None,
        body: Some(content::Body::Edit(Edit {
            message_id: MSG.to_owned(),
            text: Some(TextContent { mentions: Vec::new(), body: long, spans: Vec::new() }),
        })),
    };
    assert_eq!(decode(&typed(&raw.encode_to_vec()), MSG), Err(ContentError::Malformed));
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
        span(u32::MAX, u32::MAX, TextStyle::Bold as i32),
    ];
    let Body::Text { spans, .. } = decode(&raw_text("bold text", spans), MSG).unwrap().body else {
        panic!("a text")
    };
    assert_eq!(
        spans,
        [
            Span { start: 0, end: 4, style: TextStyle::Bold },
            Span { start: 5, end: 9, style: TextStyle::Italic }
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

/// What a decoded plaintext writes back as (see also the fuzz target): `None` for what this
/// crate does not write (an unsupported kind).
fn rewrite(decoded: Decoded) -> Option<Outgoing> {
    let reply_to = decoded.reply_to.unwrap_or_default();
    let extras = decoded.extras;
    Some(match decoded.body {
        Body::Text { text, spans } => Outgoing::Text { text, spans, reply_to, extras },
        Body::File(file) => Outgoing::File { file, reply_to, extras },
        Body::Reaction { message_id, emoji, remove } => Outgoing::Reaction { message_id, emoji, remove },
        Body::Deletion { message_id } => Outgoing::Deletion { message_id },
        Body::Unsupported => return None,
    })
}

#[test]
fn decoding_never_panics_and_what_it_reads_writes_back() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let valid = [
        text("hello", OTHER).unwrap(),
        file(a_file(), "").unwrap(),
        edit(MSG, "x").unwrap(),
        reaction(OTHER, "👍", true).unwrap(),
        deletion(OTHER).unwrap(),
        raw_text("bold", vec![TextSpan { start: 0, end: 9, style: 1 }]),
        legacy_json().into_bytes(),
    ];
    let mut rewritten = 0;
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
        let Ok(decoded) = decode(&bytes, MSG) else { continue };
        let Some(out) = rewrite(decoded.clone()) else { continue };
        // What this crate reads, it writes again, and reads the same (a legacy text or file
        // written again is typed: it answers nothing rather than "unknown").
        match out.encode() {
            Ok(plaintext) => {
                let again = decode(&plaintext, MSG).unwrap();
                assert_eq!(again.body, decoded.body, "{bytes:?}");
                let reply = match decoded.body {
                    Body::Text { .. } | Body::File(_) => Some(decoded.reply_to.unwrap_or_default()),
                    _ => None,
                };
                assert_eq!(again.reply_to, reply, "{bytes:?}");
                rewritten += 1;
            }
            // Only a legacy text has no length limit.
            Err(e) => {
                assert!(bytes.first() != Some(&MARKER) && e == ContentError::TextTooLong, "{e}: {bytes:?}")
            }
        }
    }
    assert!(rewritten > 1_000, "only {rewritten} inputs decoded");
}

/// A reaction Content carrying `emoji`, as any sender could write it (unchecked).
fn raw_reaction(emoji: &str) -> Vec<u8> {
    let content = Content {
        forwarded: None,
        version: VERSION,
        reply: None,
        body: Some(content::Body::Reaction(Reaction {
            message_id: OTHER.to_owned(),
            emoji: emoji.to_owned(),
            remove: false,
        })),
    };
    typed(&content.encode_to_vec())
}

const SCOTLAND: &str = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
const FAMILY: &str = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}\u{200D}\u{1F466}";
const RAINBOW: &str = "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}";
const HOLDING_HANDS: &str = "\u{1F9D1}\u{1F3FD}\u{200D}\u{1F91D}\u{200D}\u{1F9D1}\u{1F3FB}";

#[test]
fn one_emoji_of_any_kind_is_a_reaction() {
    // The same cases as pwa/src/state/reactions.test.ts.
    for e in [
        "🦊",
        "❤️",
        "☺",
        "👍🏽",
        FAMILY,
        RAINBOW,
        HOLDING_HANDS,
        "🇷🇺",
        "1️⃣",
        "#\u{20E3}",
        "*\u{20E3}",
        SCOTLAND,
    ] {
        assert_eq!(emoji::problem(e), None, "{e:?}");
        let read = decode(&raw_reaction(e), MSG).unwrap();
        assert_eq!(read.body, Body::Reaction { message_id: OTHER.into(), emoji: e.into(), remove: false });
        assert_eq!(decode(&reaction(OTHER, e, false).unwrap(), MSG).unwrap().body, read.body, "{e:?}");
    }
    // The edges of the tables: the first and last Extended_Pictographic, a skin tone on a hand.
    for e in ["\u{A9}", "\u{1FFFD}", "\u{270C}\u{1F3FF}", "\u{1F1E6}\u{1F1FF}"] {
        assert_eq!(emoji::problem(e), None, "{e:?}");
    }
}

#[test]
fn anything_but_one_emoji_is_a_malformed_reaction_and_never_written() {
    let zalgo = format!("🦊{}", "\u{301}".repeat(40));
    assert!(zalgo.len() > MAX_REACTION_BYTES);
    // Exactly 64 bytes of one ZWJ sequence passes; one pictograph more does not.
    let long = format!("{}\u{1F3FD}", ["\u{1F9D1}"; 9].join("\u{200D}"));
    assert_eq!((long.len(), emoji::problem(&long)), (64, None));
    let too_long = ["\u{1F9D1}"; 10].join("\u{200D}");
    assert_eq!((too_long.len(), emoji::problem(&too_long)), (67, Some(EmojiProblem::TooLong)));
    let refused = [
        "a",
        "1",
        "#",
        "ok",
        "🦊🦊",
        "🦊 ",
        " 🦊",
        "\u{202E}🦊",
        "🦊\u{0}",
        "🦊\u{301}",
        "\u{200D}🦊",
        "🦊\u{200D}",
        "🦊\u{200D}\u{200D}🦊",
        "🇷",
        "🇷🇺🇺",
        "<img>",
        "1\u{FE0F}",
        "1\u{20E3}\u{20E3}",
        "🦊\u{FE0F}\u{FE0F}",
        "👍🏽🏽",
        "\u{1F3FD}",
        "\u{1F3F4}\u{E0067}\u{E0062}",
        "\u{1F3F4}\u{E007F}",
        "\u{E0067}\u{E007F}",
        "\u{FE0F}",
        "\u{FFFD}",
        &zalgo,
        &too_long,
        &"🦊".repeat(20),
    ];
    for e in refused {
        assert!(emoji::problem(e).is_some(), "{e:?}");
        assert_eq!(decode(&raw_reaction(e), MSG), Err(ContentError::MalformedReaction), "{e:?}");
        let written = reaction(OTHER, e, false);
        assert!(matches!(written, Err(ContentError::InvalidReaction(_))), "{e:?}: {written:?}");
        assert_eq!(written.unwrap_err().code(), "invalid_reaction");
    }
    assert_eq!(emoji::problem("two words"), Some(EmojiProblem::NotOneEmoji));
    assert_eq!(emoji::problem(&zalgo), Some(EmojiProblem::TooLong));
    assert_eq!(ContentError::MalformedReaction.to_string(), "malformed reaction");
    assert_eq!(ContentError::MalformedReaction.code(), "malformed_reaction");
    assert_eq!(
        ContentError::InvalidReaction(EmojiProblem::NotOneEmoji).to_string(),
        "not a reaction: not one emoji"
    );
    // An empty emoji stays what it was: malformed content, and a missing field when writing.
    assert_eq!(emoji::problem(""), Some(EmojiProblem::Empty));
    assert_eq!(decode(&raw_reaction(""), MSG), Err(ContentError::Malformed));
    assert_eq!(reaction(OTHER, "", false), Err(ContentError::Missing("emoji")));
}

#[test]
fn the_extended_pictographic_table_is_sorted_and_apart() {
    for pair in emoji::EXTENDED_PICTOGRAPHIC.windows(2) {
        assert!(pair[0].0 <= pair[0].1 && pair[0].1 + 1 < pair[1].0, "{pair:x?}");
    }
}

fn mention(account: &str, start: u32, end: u32) -> Mention {
    Mention { account_id: account.to_owned(), start, end }
}

#[test]
fn quotes_forwarded_marks_and_mentions_are_written_and_read_back() {
    let extras = Extras {
        quote: "the part answered".to_owned(),
        forwarded: Some(Forwarded { from_account_id: "bob".to_owned(), sent_at_ms: 1_700_000_000_000 }),
        mentions: vec![mention("alice", 0, 6)],
    };
    let out = Outgoing::Text {
        text: "@Alice, look".to_owned(),
        spans: Vec::new(),
        reply_to: OTHER.to_owned(),
        extras: extras.clone(),
    };
    let read = decode(&out.encode().unwrap(), MSG).unwrap();
    assert_eq!(read.extras, extras);
    assert_eq!(read.reply_to.as_deref(), Some(OTHER));
    // A forwarded file keeps its mark; a file mentions nobody.
    let forwarded = Extras { forwarded: extras.forwarded.clone(), ..Extras::default() };
    let file = Outgoing::File { file: a_file(), reply_to: String::new(), extras: forwarded.clone() };
    assert_eq!(decode(&file.encode().unwrap(), MSG).unwrap().extras, forwarded);
    let named = Outgoing::File { file: a_file(), reply_to: String::new(), extras: extras.clone() };
    assert_eq!(named.encode(), Err(ContentError::InvalidMention));
    // An edit's new text carries its own mentions.
    let edit = Outgoing::Edit {
        message_id: MSG.to_owned(),
        text: "@Alice fixed".to_owned(),
        spans: Vec::new(),
        mentions: vec![mention("alice", 0, 6)],
    };
    let read = decode(&edit.encode().unwrap(), MSG).unwrap();
    assert_eq!(read.extras, Extras { mentions: vec![mention("alice", 0, 6)], ..Extras::default() });
}

#[test]
fn a_writer_refuses_mentions_a_reader_would_not_show_and_cuts_a_long_quote() {
    let with = |mentions: Vec<Mention>, quote: &str| Outgoing::Text {
        text: "@A hi".to_owned(),
        spans: Vec::new(),
        reply_to: OTHER.to_owned(),
        extras: Extras { quote: quote.to_owned(), forwarded: None, mentions },
    };
    assert_eq!(with(vec![mention("a", 0, 9)], "").encode(), Err(ContentError::InvalidMention));
    assert_eq!(with(vec![mention("", 0, 2)], "").encode(), Err(ContentError::InvalidMention));
    assert_eq!(
        with(vec![mention("a", 0, 2); MAX_MENTIONS + 1], "").encode(),
        Err(ContentError::TooManyMentions)
    );
    let long = "q".repeat(MAX_QUOTE_LENGTH + 500);
    let read = decode(&with(Vec::new(), &long).encode().unwrap(), MSG).unwrap();
    assert_eq!(read.extras.quote.len(), MAX_QUOTE_LENGTH);
    // A Content given whole is checked, not cut.
    let content = Content {
        version: 1,
        reply: Some(Reply { message_id: OTHER.to_owned(), quote: long }),
        forwarded: None,
        body: Some(content::Body::Text(TextContent { body: "x".to_owned(), ..TextContent::default() })),
    };
    assert_eq!(encode(content), Err(ContentError::QuoteTooLong));
}

#[test]
fn a_reader_shows_only_mentions_inside_the_text_and_a_quote_with_its_reply() {
    // As another client (or a server, for cloud content) might send it.
    let mut mentions = vec![mention("inside", 0, 2), mention("past the end", 1, 40), mention("", 0, 1)];
    mentions.extend(std::iter::repeat_n(mention("many", 0, 1), MAX_MENTIONS + 10));
    let content = Content {
        version: 1,
        // A quote without the message it answers shows nothing.
        reply: Some(Reply { message_id: String::new(), quote: "orphan".to_owned() }),
        forwarded: None,
        body: Some(content::Body::Text(TextContent { body: "@I x".to_owned(), spans: Vec::new(), mentions })),
    };
    let read = decode(&typed(&content.encode_to_vec()), MSG).unwrap();
    assert_eq!(read.extras.quote, "");
    assert_eq!(read.extras.mentions.len(), MAX_MENTIONS);
    assert_eq!(read.extras.mentions[0], mention("inside", 0, 2));
    assert!(read.extras.mentions[1..].iter().all(|m| m.account_id == "many"));
    // A long quote is cut where it is read.
    let content = Content {
        version: 1,
        reply: Some(Reply { message_id: OTHER.to_owned(), quote: "🦊".repeat(MAX_QUOTE_LENGTH) }),
        forwarded: None,
        body: Some(content::Body::Text(TextContent { body: "x".to_owned(), ..TextContent::default() })),
    };
    let read = decode(&typed(&content.encode_to_vec()), MSG).unwrap();
    assert_eq!(read.extras.quote, "🦊".repeat(MAX_QUOTE_LENGTH / 2));
    // A reaction carries none of them, whatever its Content says.
    let content = Content {
        version: 1,
        reply: Some(Reply { message_id: OTHER.to_owned(), quote: "q".to_owned() }),
        forwarded: Some(Forwarded { from_account_id: "x".to_owned(), sent_at_ms: 1 }),
        body: Some(content::Body::Reaction(Reaction {
            message_id: OTHER.to_owned(),
            emoji: "🎉".to_owned(),
            remove: false,
        })),
    };
    assert_eq!(decode(&typed(&content.encode_to_vec()), MSG).unwrap().extras, Extras::default());
}
