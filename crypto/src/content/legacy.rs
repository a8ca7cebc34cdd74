//! The attachment JSON of clients from before the typed Content (docs/attachments.md), read
//! only out of a LEGACY plaintext (no `0x00` marker) so older messages still show:
//!
//! ```text
//! {"attachment": id, "secrets": base64(AttachmentSecrets), "name", "type", "size",
//!  "width"?, "height"?, "thumbnail"?: {"attachment", "secrets", "type", "width", "height"}}
//! ```
//!
//! Also the base64 the browser gives secrets in (`btoa`/`atob`: standard alphabet, padded when
//! written, padding optional when read).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::{Map, Value};

use super::proto::{FileContent, FileThumbnail};
use super::{THUMBNAIL_TYPE, file_of};

/// As the browser's `btoa` writes and `atob` reads (without its whitespace skipping).
const BROWSER: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Padded standard base64, as the PWA holds a file's secrets (`FileRef.secrets`).
#[cfg(any(test, all(target_arch = "wasm32", feature = "wasm")))]
pub(crate) fn to_base64(bytes: &[u8]) -> String {
    BROWSER.encode(bytes)
}

/// Standard base64, padded or not; `None` when it is not base64.
pub(crate) fn from_base64(text: &str) -> Option<Vec<u8>> {
    BROWSER.decode(text).ok()
}

/// A JSON number that is finite and not negative, saturated into the integer type (JSON
/// numbers are doubles).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn count(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_f64).filter(|n| *n >= 0.0).map(|n| n as u64)
}

fn dimension(value: Option<&Value>) -> Option<u32> {
    count(value).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn string(o: &Map<String, Value>, key: &str) -> Option<String> {
    o.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn thumbnail(value: Option<&Value>) -> Option<FileThumbnail> {
    let t = value?.as_object()?;
    Some(FileThumbnail {
        attachment_id: string(t, "attachment")?,
        secrets: from_base64(t.get("secrets")?.as_str()?)?,
        media_type: string(t, "type").unwrap_or_else(|| THUMBNAIL_TYPE.to_owned()),
        width: dimension(t.get("width"))?,
        height: dimension(t.get("height"))?,
    })
}

/// The file a legacy plaintext describes: a JSON object with string `attachment` and `secrets`
/// (base64), neither empty; `None` when it is text.
pub(super) fn file(text: &str) -> Option<FileContent> {
    if !text.starts_with('{') {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    let o = value.as_object()?;
    let (width, height) = dimension(o.get("width")).zip(dimension(o.get("height"))).unwrap_or((0, 0));
    let file = FileContent {
        attachment_id: string(o, "attachment")?,
        secrets: from_base64(o.get("secrets")?.as_str()?)?,
        name: string(o, "name").unwrap_or_default(),
        media_type: string(o, "type").unwrap_or_default(),
        size: count(o.get("size")).unwrap_or(0),
        width,
        height,
        thumbnail: thumbnail(o.get("thumbnail")),
    };
    file_of(file).ok()
}
