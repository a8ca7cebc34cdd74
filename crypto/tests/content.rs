//! Recorded vectors of the typed message Content (`kitsulan_crypto::content`): the exact bytes
//! the PWA (`pwa/src/crypto/content.ts` with protobuf-es) and the Rust client
//! (`client/src/content.rs` with prost) each wrote before the codec moved into this crate,
//! recorded once. Each must decode to what those clients read, and encode back to the same
//! bytes; the legacy plaintexts (text, the old attachment JSON) must still read. Any change to
//! the Content's bytes fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kitsulan_crypto::content::proto::{FileContent, FileThumbnail};
use kitsulan_crypto::content::{self, Body, ContentError, Decoded, Extras, Outgoing, Span, TextStyle};

const MSG: &str = "0193a0a0-0000-7000-8000-000000000001";
const OTHER: &str = "0193a0a0-0000-7000-8000-000000000002";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn the_file() -> FileContent {
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

fn text(text: &str, spans: Vec<Span>) -> Body {
    Body::Text { text: text.to_owned(), spans }
}

fn reply(to: &str) -> Option<String> {
    Some(to.to_owned())
}

/// One recorded vector: what was sent, its bytes, and what a reader of message `MSG` reads.
struct Vector {
    name: &'static str,
    out: Outgoing,
    hex: &'static str,
    read: Decoded,
}

fn vectors() -> Vec<Vector> {
    let span = |start, end, style| Span { start, end, style };
    let spans = vec![
        span(0, 4, TextStyle::Bold),
        span(5, 9, TextStyle::Italic),
        span(10, 14, TextStyle::Code),
        span(15, 21, TextStyle::Strike),
        span(22, 29, TextStyle::Spoiler),
    ];
    vec![
        Vector {
            name: "text with a reply",
            out: Outgoing::Text {
                text: "hi".into(),
                spans: vec![],
                reply_to: "m".into(),
                extras: Extras::default(),
            },
            hex: "0001080112030a016d52040a026869",
            read: Decoded { body: text("hi", vec![]), reply_to: reply("m"), extras: Extras::default() },
        },
        Vector {
            name: "text with an emoji",
            out: Outgoing::Text {
                text: "hello 👋".into(),
                spans: vec![],
                reply_to: String::new(),
                extras: Extras::default(),
            },
            hex: "00010801520c0a0a68656c6c6f20f09f918b",
            read: Decoded {
                body: text("hello 👋", vec![]), reply_to: reply(""), extras: Extras::default()
            },
        },
        Vector {
            name: "text with every style and a reply",
            out: Outgoing::Text {
                text: "bold ital code strike spoiler".into(),
                spans: spans.clone(),
                reply_to: OTHER.into(),
                extras: Extras::default(),
            },
            hex: "0001080112260a2430313933613061302d303030302d373030302d383030302d30303030303030303030303252450a1d626f6c64206974616c20636f646520737472696b652073706f696c657212041004180112060805100918021206080a100e18031206080f1015180412060816101d1805",
            read: Decoded {
                body: text("bold ital code strike spoiler", spans),
                reply_to: reply(OTHER),
                extras: Extras::default(),
            },
        },
        Vector {
            name: "file with a thumbnail and a reply",
            out: Outgoing::File { file: the_file(), reply_to: OTHER.into(), extras: Extras::default() },
            hex: "0001080112260a2430313933613061302d303030302d373030302d383030302d3030303030303030303030325a92010a2430313933613061302d303030302d373030302d383030302d303030303030303030306161120801020304050607081a0b686f6c696461792e6a7067220a696d6167652f6a70656728c0c40730c01f38d017423d0a2430313933613061302d303030302d373030302d383030302d3030303030303030303062621203090a0b1a0a696d6167652f6a70656720c00228f001",
            read: Decoded { body: Body::File(the_file()), reply_to: reply(OTHER), extras: Extras::default() },
        },
        Vector {
            name: "file with only what is required",
            out: Outgoing::File {
                file: FileContent {
                    attachment_id: "a".into(),
                    secrets: vec![1],
                    name: "x".into(),
                    ..FileContent::default()
                },
                reply_to: String::new(),
                extras: Extras::default(),
            },
            hex: "000108015a090a01611201011a0178",
            read: Decoded {
                body: Body::File(FileContent {
                    attachment_id: "a".into(),
                    secrets: vec![1],
                    name: "x".into(),
                    ..FileContent::default()
                }),
                reply_to: reply(""),
                extras: Extras::default(),
            },
        },
        Vector {
            name: "edit",
            out: Outgoing::Edit {
                message_id: MSG.into(),
                text: "fixed".into(),
                spans: vec![],
                mentions: vec![],
            },
            hex: "000108016a2f0a2430313933613061302d303030302d373030302d383030302d30303030303030303030303112070a056669786564",
            read: Decoded { body: text("fixed", vec![]), reply_to: None, extras: Extras::default() },
        },
        Vector {
            name: "reaction",
            out: Outgoing::Reaction { message_id: OTHER.into(), emoji: "🎉".into(), remove: false },
            hex: "00010801622c0a2430313933613061302d303030302d373030302d383030302d3030303030303030303030321204f09f8e89",
            read: Decoded {
                body: Body::Reaction { message_id: OTHER.into(), emoji: "🎉".into(), remove: false },
                reply_to: None,
                extras: Extras::default(),
            },
        },
        Vector {
            name: "reaction taken back",
            out: Outgoing::Reaction { message_id: OTHER.into(), emoji: "👍".into(), remove: true },
            hex: "00010801622e0a2430313933613061302d303030302d373030302d383030302d3030303030303030303030321204f09f918d1801",
            read: Decoded {
                body: Body::Reaction { message_id: OTHER.into(), emoji: "👍".into(), remove: true },
                reply_to: None,
                extras: Extras::default(),
            },
        },
        Vector {
            name: "deletion",
            out: Outgoing::Deletion { message_id: OTHER.into() },
            hex: "0001080172260a2430313933613061302d303030302d373030302d383030302d303030303030303030303032",
            read: Decoded {
                body: Body::Deletion { message_id: OTHER.into() },
                reply_to: None,
                extras: Extras::default(),
            },
        },
    ]
}

#[test]
fn recorded_contents_decode_and_encode_to_the_same_bytes() {
    for v in vectors() {
        let bytes = unhex(v.hex);
        assert_eq!(content::decode(&bytes, MSG).unwrap(), v.read, "{}: read", v.name);
        assert_eq!(v.out.encode().unwrap(), bytes, "{}: written", v.name);
    }
}

#[test]
fn the_helpers_write_the_recorded_bytes() {
    assert_eq!(content::text("hi", "m").unwrap(), unhex("0001080112030a016d52040a026869"));
    assert_eq!(
        content::deletion(OTHER).unwrap(),
        unhex("0001080172260a2430313933613061302d303030302d373030302d383030302d303030303030303030303032")
    );
    let edit = content::edit(MSG, "fixed").unwrap();
    assert_eq!(edit, unhex(vectors()[5].hex));
}

#[test]
fn an_edit_is_refused_on_another_message() {
    let edit = unhex(vectors()[5].hex);
    assert_eq!(content::decode(&edit, OTHER), Err(ContentError::EditForAnotherMessage));
}

/// Reactions to OTHER whose emoji is not one emoji, as a sender could write them (the crate
/// never does): "ok", and two foxes.
const MALFORMED_REACTIONS: [&str; 2] = [
    "00010801622a0a2430313933613061302d303030302d373030302d383030302d30303030303030303030303212026f6b",
    "0001080162300a2430313933613061302d303030302d373030302d383030302d3030303030303030303030321208f09fa68af09fa68a",
];

#[test]
fn recorded_malformed_reactions_read_as_malformed_reaction() {
    for hex in MALFORMED_REACTIONS {
        let read = content::decode(&unhex(hex), MSG);
        assert_eq!(read, Err(ContentError::MalformedReaction));
        assert_eq!(read.unwrap_err().to_string(), "malformed reaction");
    }
    // The same reactions are never written.
    for emoji in ["ok", "🦊🦊"] {
        let out = Outgoing::Reaction { message_id: OTHER.into(), emoji: emoji.into(), remove: false };
        assert_eq!(out.encode().unwrap_err().code(), "invalid_reaction");
    }
}

/// `{"attachment":…,"secrets":"AQIDBAUGBwg=",…,"thumbnail":{…}}` as an older PWA sent it.
const LEGACY_FILE: &str = "7b226174746163686d656e74223a2230313933613061302d303030302d373030302d383030302d303030303030303030306161222c2273656372657473223a2241514944424155474277673d222c226e616d65223a22686f6c696461792e6a7067222c2274797065223a22696d6167652f6a706567222c2273697a65223a3132333435362c227769647468223a343033322c22686569676874223a333032342c227468756d626e61696c223a7b226174746163686d656e74223a2230313933613061302d303030302d373030302d383030302d303030303030303030306262222c2273656372657473223a2243516f4c222c2274797065223a22696d6167652f6a706567222c227769647468223a3332302c22686569676874223a3234307d7d";

#[test]
fn recorded_legacy_plaintexts_still_read() {
    let read = content::decode(&unhex(LEGACY_FILE), MSG).unwrap();
    assert_eq!(read, Decoded { body: Body::File(the_file()), reply_to: None, extras: Extras::default() });
    // Written again, a legacy file is the typed one (answering nothing).
    let typed = Outgoing::File { file: the_file(), reply_to: String::new(), extras: Extras::default() }
        .encode()
        .unwrap();
    assert_eq!(content::decode(&typed, MSG).unwrap().body, read.body);

    let read = content::decode(&unhex("706c61696e206f6c642074657874"), MSG).unwrap();
    assert_eq!(
        read,
        Decoded { body: text("plain old text", vec![]), reply_to: None, extras: Extras::default() }
    );
}
