//! The typed message Content ([`crate::content`]) for the PWA: `encodeContent(outgoing)` gives
//! the plaintext to encrypt, `decodeContent(plaintext, messageId)` what a decrypted one says,
//! both as plain JS objects in the shapes of `pwa/src/crypto/content.ts` (a file's secrets as
//! padded base64, as `FileRef` holds them). `encodeContent` throws a `KitsulanCryptoError`: the
//! codes of [`ContentError::code`], or `invalid_content` for an object that is not an
//! `Outgoing` (a field missing or of the wrong type); `decodeContent` never throws: what does
//! not decode is `{ undecryptable: reason }` with the reason the PWA shows (a reaction whose
//! emoji is not one emoji: "malformed reaction"). `reactionEmojiProblem(emoji)` says why a
//! string is no reaction emoji ([`content::emoji`]), for the app to ask before it sends.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use super::JsResult;
use crate::content::proto::{FileContent, FileThumbnail};
use crate::content::{
    self, Body, ContentError, Extras, Forwarded, Mention, Outgoing, Span, TextStyle, emoji, legacy,
};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A formatting span over a text: UTF-16 offsets, end exclusive. */
export interface ContentSpan { start: number; end: number; style: "bold" | "italic" | "code" | "strike" | "spoiler" }
/** A file's thumbnail (its own attachment); `secrets` is padded base64. */
export interface ContentThumbnail { attachment: string; secrets: string; type: string; width: number; height: number }
/** A file in a message; `secrets` is padded base64 of AttachmentSecrets. */
export interface ContentFile {
  attachment: string; secrets: string; name: string; type: string; size: number;
  width?: number; height?: number; thumbnail?: ContentThumbnail;
}
/** `@name`: the account named, over a UTF-16 range of the text. */
export interface ContentMention { accountId: string; start: number; end: number }
/** A forwarded message: who wrote the original ("" when hidden) and when (ms). */
export interface ContentForwarded { fromAccountId: string; sentAtMs: number }
/** What a text or a file carries besides its body. A quote goes only with `replyTo` and is
 * cut to 1,000 UTF-16 units; a file mentions nobody. Read back only when set. */
export interface ContentExtras { quote?: string; forwarded?: ContentForwarded; mentions?: ContentMention[] }
/** What this device sends. */
export type ContentOutgoing =
  | ({ kind: "text"; text: string; spans?: ContentSpan[]; replyTo?: string } & ContentExtras)
  | ({ kind: "attachment"; file: ContentFile; replyTo?: string } & ContentExtras)
  | { kind: "edit"; messageId: string; text: string; spans?: ContentSpan[]; mentions?: ContentMention[] }
  | { kind: "reaction"; messageId: string; emoji: string; remove?: boolean }
  | { kind: "deletion"; messageId: string };
/** What a plaintext says. `replyTo` is set for a typed text or file ("" for none). */
export type ContentBody =
  | ({ kind: "text"; text: string; spans?: ContentSpan[]; replyTo?: string } & ContentExtras)
  | ({ kind: "attachment"; file: ContentFile; replyTo?: string } & ContentExtras)
  | { kind: "reaction"; messageId: string; emoji: string; remove: boolean }
  | { kind: "deletion"; messageId: string }
  | { kind: "unsupported" };
export type ContentRead = { ok: ContentBody } | { undecryptable: string };
"#;

const STYLES: [(TextStyle, &str); 5] = [
    (TextStyle::Bold, "bold"),
    (TextStyle::Italic, "italic"),
    (TextStyle::Code, "code"),
    (TextStyle::Strike, "strike"),
    (TextStyle::Spoiler, "spoiler"),
];

fn content_error(error: ContentError) -> JsValue {
    thrown(&error.to_string(), error.code())
}

fn thrown(message: &str, code: &str) -> JsValue {
    let js = js_sys::Error::new(message);
    js.set_name("KitsulanCryptoError");
    set(&js, "code", code);
    js.into()
}

/// An object that is not an `Outgoing`: `invalid_content`, naming the field.
fn invalid(field: &str, expected: &str) -> JsValue {
    thrown(&format!("content: `{field}` must be {expected}"), "invalid_content")
}

fn set(target: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(key), &value.into());
}

/// `object[key]`; `undefined` when `object` is not an object.
fn get(object: &JsValue, key: &str) -> JsValue {
    if !object.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn object(parent: &JsValue, key: &str, field: &str) -> JsResult<JsValue> {
    let value = get(parent, key);
    if value.is_object() { Ok(value) } else { Err(invalid(field, "an object")) }
}

fn string(parent: &JsValue, key: &str, field: &str) -> JsResult<String> {
    get(parent, key).as_string().ok_or_else(|| invalid(field, "a string"))
}

/// A string that may be missing (`undefined` or `null`: empty).
fn optional_string(parent: &JsValue, key: &str, field: &str) -> JsResult<String> {
    let value = get(parent, key);
    if value.is_undefined() || value.is_null() { Ok(String::new()) } else { string(parent, key, field) }
}

fn optional_bool(parent: &JsValue, key: &str, field: &str) -> JsResult<bool> {
    let value = get(parent, key);
    if value.is_undefined() || value.is_null() {
        return Ok(false);
    }
    value.as_bool().ok_or_else(|| invalid(field, "a boolean"))
}

/// An integer from 0 to 2^32 - 1 (`undefined` or `null`: 0), as protobuf's uint32 takes it.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn uint32(parent: &JsValue, key: &str, field: &str) -> JsResult<u32> {
    let value = get(parent, key);
    if value.is_undefined() || value.is_null() {
        return Ok(0);
    }
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n) => Ok(n as u32),
        _ => Err(invalid(field, "an integer from 0 to 4294967295")),
    }
}

/// A file size: a finite number, rounded down, negative as 0 (as the PWA always wrote it).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn size(parent: &JsValue, key: &str, field: &str) -> JsResult<u64> {
    // 2^64: the first double past u64::MAX.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    match get(parent, key).as_f64() {
        Some(n) if n.is_finite() && n < LIMIT => Ok(n.floor().max(0.0) as u64),
        _ => Err(invalid(field, "a finite number")),
    }
}

fn secrets(parent: &JsValue, key: &str, field: &str) -> JsResult<Vec<u8>> {
    legacy::from_base64(&string(parent, key, field)?).ok_or_else(|| invalid(field, "base64"))
}

/// The array `parent[key]`, each item read by `item` (missing or `null`: empty).
fn list<T>(
    parent: &JsValue,
    key: &str,
    field: &str,
    item: impl Fn(&JsValue) -> JsResult<T>,
) -> JsResult<Vec<T>> {
    let value = get(parent, key);
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    if !Array::is_array(&value) {
        return Err(invalid(field, "an array"));
    }
    Array::from(&value).iter().map(|v| item(&v)).collect()
}

fn spans(parent: &JsValue, field: &str) -> JsResult<Vec<Span>> {
    list(parent, "spans", field, |s| {
        let name = s.is_object().then(|| get(s, "style").as_string()).flatten();
        let style = STYLES
            .iter()
            .find(|(_, n)| Some(*n) == name.as_deref())
            .map(|(style, _)| *style)
            .ok_or_else(|| invalid(&format!("{field}[].style"), "a known style"))?;
        let start = uint32(s, "start", &format!("{field}[].start"))?;
        let end = uint32(s, "end", &format!("{field}[].end"))?;
        Ok(Span { start, end, style })
    })
}

fn mentions(parent: &JsValue, field: &str) -> JsResult<Vec<Mention>> {
    list(parent, "mentions", field, |m| {
        Ok(Mention {
            account_id: string(m, "accountId", &format!("{field}[].accountId"))?,
            start: uint32(m, "start", &format!("{field}[].start"))?,
            end: uint32(m, "end", &format!("{field}[].end"))?,
        })
    })
}

/// A time in ms: an integer a JS number holds exactly.
#[allow(clippy::cast_possible_truncation)]
fn millis(parent: &JsValue, key: &str, field: &str) -> JsResult<i64> {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    match get(parent, key).as_f64() {
        Some(n) if n.fract() == 0.0 && (-SAFE..=SAFE).contains(&n) => Ok(n as i64),
        _ => Err(invalid(field, "an integer number of milliseconds")),
    }
}

fn extras(out: &JsValue) -> JsResult<Extras> {
    let forwarded = get(out, "forwarded");
    let forwarded = if forwarded.is_undefined() || forwarded.is_null() {
        None
    } else {
        let f = object(out, "forwarded", "forwarded")?;
        Some(Forwarded {
            from_account_id: optional_string(&f, "fromAccountId", "forwarded.fromAccountId")?,
            sent_at_ms: millis(&f, "sentAtMs", "forwarded.sentAtMs")?,
        })
    };
    Ok(Extras {
        quote: optional_string(out, "quote", "quote")?,
        forwarded,
        mentions: mentions(out, "mentions")?,
    })
}

fn file_from(out: &JsValue) -> JsResult<FileContent> {
    let f = object(out, "file", "file")?;
    let thumbnail = get(&f, "thumbnail");
    let thumbnail = if thumbnail.is_undefined() || thumbnail.is_null() {
        None
    } else {
        let t = object(&f, "thumbnail", "file.thumbnail")?;
        Some(FileThumbnail {
            attachment_id: string(&t, "attachment", "file.thumbnail.attachment")?,
            secrets: secrets(&t, "secrets", "file.thumbnail.secrets")?,
            media_type: optional_string(&t, "type", "file.thumbnail.type")?,
            width: uint32(&t, "width", "file.thumbnail.width")?,
            height: uint32(&t, "height", "file.thumbnail.height")?,
        })
    };
    Ok(FileContent {
        attachment_id: string(&f, "attachment", "file.attachment")?,
        secrets: secrets(&f, "secrets", "file.secrets")?,
        name: string(&f, "name", "file.name")?,
        media_type: string(&f, "type", "file.type")?,
        size: size(&f, "size", "file.size")?,
        width: uint32(&f, "width", "file.width")?,
        height: uint32(&f, "height", "file.height")?,
        thumbnail,
    })
}

fn outgoing(out: &JsValue) -> JsResult<Outgoing> {
    let kind = string(out, "kind", "kind")?;
    Ok(match kind.as_str() {
        "text" => Outgoing::Text {
            text: string(out, "text", "text")?,
            spans: spans(out, "spans")?,
            reply_to: optional_string(out, "replyTo", "replyTo")?,
            extras: extras(out)?,
        },
        "attachment" => Outgoing::File {
            file: file_from(out)?,
            reply_to: optional_string(out, "replyTo", "replyTo")?,
            extras: extras(out)?,
        },
        "edit" => Outgoing::Edit {
            message_id: string(out, "messageId", "messageId")?,
            text: string(out, "text", "text")?,
            spans: spans(out, "spans")?,
            mentions: mentions(out, "mentions")?,
        },
        "reaction" => Outgoing::Reaction {
            message_id: string(out, "messageId", "messageId")?,
            emoji: string(out, "emoji", "emoji")?,
            remove: optional_bool(out, "remove", "remove")?,
        },
        "deletion" => Outgoing::Deletion { message_id: string(out, "messageId", "messageId")? },
        _ => return Err(invalid("kind", "text, attachment, edit, reaction or deletion")),
    })
}

/// The plaintext to encrypt for `out` (a `ContentOutgoing`): `0x00 0x01 || Content`.
#[wasm_bindgen(js_name = encodeContent)]
pub fn encode_content(
    #[wasm_bindgen(unchecked_param_type = "ContentOutgoing")] out: JsValue,
) -> JsResult<Vec<u8>> {
    outgoing(&out)?.encode().map_err(content_error)
}

fn file_ref(file: &FileContent) -> Object {
    let o = Object::new();
    set(&o, "attachment", file.attachment_id.as_str());
    set(&o, "secrets", legacy::to_base64(&file.secrets));
    set(&o, "name", file.name.as_str());
    set(&o, "type", file.media_type.as_str());
    // Sizes past 2^53 lose precision as a JS number, as they always did.
    #[allow(clippy::cast_precision_loss)]
    set(&o, "size", file.size as f64);
    if file.width > 0 && file.height > 0 {
        set(&o, "width", file.width);
        set(&o, "height", file.height);
    }
    if let Some(t) = &file.thumbnail {
        let js = Object::new();
        set(&js, "attachment", t.attachment_id.as_str());
        set(&js, "secrets", legacy::to_base64(&t.secrets));
        set(&js, "type", t.media_type.as_str());
        set(&js, "width", t.width);
        set(&js, "height", t.height);
        set(&o, "thumbnail", js);
    }
    o
}

fn span_object(span: &Span) -> Object {
    let o = Object::new();
    set(&o, "start", span.start);
    set(&o, "end", span.end);
    let name = STYLES.iter().find(|(s, _)| *s == span.style).map_or("", |(_, n)| *n);
    set(&o, "style", name);
    o
}

fn body(decoded: content::Decoded) -> Object {
    let o = Object::new();
    let content::Decoded { body, reply_to, extras } = decoded;
    match body {
        Body::Text { text, spans } => {
            set(&o, "kind", "text");
            set(&o, "text", text);
            if !spans.is_empty() {
                set(&o, "spans", spans.iter().map(span_object).collect::<Array>());
            }
        }
        Body::File(file) => {
            set(&o, "kind", "attachment");
            set(&o, "file", file_ref(&file));
        }
        Body::Reaction { message_id, emoji, remove } => {
            set(&o, "kind", "reaction");
            set(&o, "messageId", message_id);
            set(&o, "emoji", emoji);
            set(&o, "remove", remove);
        }
        Body::Deletion { message_id } => {
            set(&o, "kind", "deletion");
            set(&o, "messageId", message_id);
        }
        Body::Unsupported => set(&o, "kind", "unsupported"),
    }
    if let Some(reply_to) = reply_to {
        set(&o, "replyTo", reply_to);
    }
    let Extras { quote, forwarded, mentions } = extras;
    if !quote.is_empty() {
        set(&o, "quote", quote);
    }
    if let Some(f) = forwarded {
        let js = Object::new();
        set(&js, "fromAccountId", f.from_account_id);
        // Times past 2^53 ms (year 287,396) lose precision as a JS number.
        #[allow(clippy::cast_precision_loss)]
        set(&js, "sentAtMs", f.sent_at_ms as f64);
        set(&o, "forwarded", js);
    }
    if !mentions.is_empty() {
        let list: Array = mentions
            .iter()
            .map(|m| {
                let js = Object::new();
                set(&js, "accountId", m.account_id.as_str());
                set(&js, "start", m.start);
                set(&js, "end", m.end);
                js
            })
            .collect();
        set(&o, "mentions", list);
    }
    o
}

/// What the decrypted `plaintext` of the message `messageId` says: `{ ok: ContentBody }`, or
/// `{ undecryptable: reason }` ("malformed content", "edit for another message", "not UTF-8").
#[wasm_bindgen(js_name = decodeContent, unchecked_return_type = "ContentRead")]
pub fn decode_content(plaintext: &[u8], message_id: &str) -> Object {
    let o = Object::new();
    match content::decode(plaintext, message_id) {
        Ok(decoded) => set(&o, "ok", body(decoded)),
        Err(e) => set(&o, "undecryptable", e.to_string()),
    }
    o
}

/// Why `emoji` is no reaction emoji ("empty", "too long", "not one emoji"), or `undefined`
/// when it is exactly one emoji of at most 64 UTF-8 bytes: the rule `encodeContent` and
/// `decodeContent` apply to a reaction.
#[wasm_bindgen(js_name = reactionEmojiProblem)]
pub fn reaction_emoji_problem(emoji: &str) -> Option<String> {
    emoji::problem(emoji).map(|p| p.reason().to_owned())
}
