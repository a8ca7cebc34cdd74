//! Encrypted-at-rest ("pickled") state: the [`PickleKey`], and the sealed envelope used for
//! the state KitsuLAN adds on top of vodozemac.
//!
//! Every stateful object pickles to a text string under a 32-byte pickle key and restores
//! from it: [`crate::DeviceAccount`], [`crate::olm::OlmSession`],
//! [`crate::megolm::OutboundGroupSession`] use vodozemac's own encrypted pickle
//! (`.pickle().encrypt(&key)`, AES-256-CBC + HMAC-SHA-256, unpadded base64). Objects with state
//! of our own ([`crate::megolm::InboundGroupSession`] with its replay record,
//! [`crate::AccountKey`], [`crate::backup::BackupKey`]) use the envelope below (`FORMAT.md`, "Pickle envelope"):
//!
//! ```text
//! base64( "KLPK" | version=1 | kind | nonce[12] | ChaCha20-Poly1305(body) )
//! key = SHA-256("kitsulan/pickle/v1" || pickle_key),  AAD = "KLPK" | version | kind
//! ```
//!
//! # Security
//!
//! A pickle is only as safe as its key: the PWA keeps the pickle key non-extractable in the
//! browser's key store (or derived from the login), never next to the pickles. Pickles are
//! authenticated, so tampering is detected, but not rolled-back copies: an attacker who can
//! replace the whole store with an older copy can bring back an older replay record.

use chacha20poly1305::aead::Aead as _;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit as _};
use rand_core::CryptoRng;
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::encoding::{Reader, b64, unb64};
use crate::{Error, Result};

/// The 32-byte key every pickle is encrypted under.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PickleKey([u8; 32]);

impl PickleKey {
    /// Wraps existing key bytes (for example, unwrapped from the browser's key store).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A new random pickle key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The raw key, for vodozemac.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for PickleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PickleKey([redacted])")
    }
}

/// Which object a sealed envelope holds; a pickle of one kind never restores as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    AccountKey = 1,
    InboundGroupSession = 2,
    LocalRecord = 3,
    BackupKey = 4,
}

const MAGIC: &[u8; 4] = b"KLPK";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

fn envelope_cipher(key: &PickleKey) -> ChaCha20Poly1305 {
    let mut derived = Zeroizing::new([0u8; 32]);
    let mut hasher = Sha256::new();
    hasher.update(b"kitsulan/pickle/v1");
    hasher.update(key.as_bytes());
    derived.copy_from_slice(&hasher.finalize());
    ChaCha20Poly1305::new(&(*derived).into())
}

/// Seals `body` in the pickle envelope.
pub(crate) fn seal<R: CryptoRng + ?Sized>(kind: Kind, key: &PickleKey, body: &[u8], rng: &mut R) -> String {
    seal_bound(kind, key, body, b"", rng)
}

/// Opens a pickle envelope of the expected `kind`.
pub(crate) fn open(kind: Kind, key: &PickleKey, pickle: &str) -> Result<Zeroizing<Vec<u8>>> {
    open_bound(kind, key, pickle, b"")
}

/// Seals a record the app keeps on the device (the PWA's offline copy of conversations and
/// history, its outbox of unsent messages) under the pickle key, bound to `name` (the record's
/// key in the device's store): a record moved to another name does not open.
pub fn seal_local<R: CryptoRng + ?Sized>(key: &PickleKey, name: &str, body: &[u8], rng: &mut R) -> String {
    seal_bound(Kind::LocalRecord, key, body, name.as_bytes(), rng)
}

/// Opens a record sealed by [`seal_local`] under the same `name`.
pub fn open_local(key: &PickleKey, name: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>> {
    open_bound(Kind::LocalRecord, key, sealed, name.as_bytes())
}

/// The AAD: the 6-byte header, then `bound` (empty for pickles, the record name for local
/// records).
fn aad(header: &[u8; 6], bound: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + bound.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(bound);
    aad
}

fn seal_bound<R: CryptoRng + ?Sized>(
    kind: Kind,
    key: &PickleKey,
    body: &[u8],
    bound: &[u8],
    rng: &mut R,
) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let mut header = [0u8; 6];
    header[..4].copy_from_slice(MAGIC);
    header[4] = VERSION;
    header[5] = kind as u8;
    let sealed = envelope_cipher(key)
        .encrypt(&nonce.into(), chacha20poly1305::aead::Payload { msg: body, aad: &aad(&header, bound) })
        // ChaCha20-Poly1305 fails only for messages over 256 GiB.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(header.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    b64(&out)
}

fn open_bound(kind: Kind, key: &PickleKey, pickle: &str, bound: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = unb64(pickle).map_err(|_| Error::MalformedPickle)?;
    let mut r = Reader::new(&bytes, Error::MalformedPickle);
    let header: [u8; 6] = r.array()?;
    if &header[..4] != MAGIC || header[4] != VERSION || header[5] != kind as u8 {
        return Err(Error::MalformedPickle);
    }
    let nonce: [u8; NONCE_LEN] = r.array()?;
    let sealed = r.rest();
    envelope_cipher(key)
        .decrypt(&nonce.into(), chacha20poly1305::aead::Payload { msg: sealed, aad: &aad(&header, bound) })
        .map(Zeroizing::new)
        .map_err(|_| Error::PickleDecryption)
}

/// Maps vodozemac's pickle errors: a failed MAC means a wrong key (or corruption).
pub(crate) fn from_vodozemac(error: vodozemac::PickleError) -> Error {
    match error {
        vodozemac::PickleError::Decryption(_) => Error::PickleDecryption,
        _ => Error::MalformedPickle,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    use super::*;

    #[test]
    fn envelope_round_trips_and_refuses_wrong_key_kind_and_tampering() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let key = PickleKey::generate(&mut rng);
        let sealed = seal(Kind::AccountKey, &key, b"state", &mut rng);
        assert_eq!(&*open(Kind::AccountKey, &key, &sealed).unwrap(), b"state");

        let other = PickleKey::from_bytes([9; 32]);
        assert_eq!(open(Kind::AccountKey, &other, &sealed).unwrap_err(), Error::PickleDecryption);
        assert_eq!(open(Kind::InboundGroupSession, &key, &sealed).unwrap_err(), Error::MalformedPickle);

        let mut raw = unb64(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(open(Kind::AccountKey, &key, &b64(&raw)).unwrap_err(), Error::PickleDecryption);
        assert_eq!(open(Kind::AccountKey, &key, "KLPK").unwrap_err(), Error::MalformedPickle);
        assert_eq!(open(Kind::AccountKey, &key, "not base64!").unwrap_err(), Error::MalformedPickle);
    }

    #[test]
    fn local_records_are_bound_to_their_name_and_kind() {
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let key = PickleKey::generate(&mut rng);
        let sealed = seal_local(&key, "cache:conversations", b"{}", &mut rng);
        assert_eq!(&*open_local(&key, "cache:conversations", &sealed).unwrap(), b"{}");
        // Moved to another record, or read with another key: refused.
        assert_eq!(open_local(&key, "outbox:1", &sealed).unwrap_err(), Error::PickleDecryption);
        let other = PickleKey::from_bytes([7; 32]);
        assert_eq!(open_local(&other, "cache:conversations", &sealed).unwrap_err(), Error::PickleDecryption);
        // A pickle is not a local record, and a local record is not a pickle.
        let pickle = seal(Kind::AccountKey, &key, b"seed", &mut rng);
        assert_eq!(open_local(&key, "", &pickle).unwrap_err(), Error::MalformedPickle);
        assert_eq!(open(Kind::AccountKey, &key, &sealed).unwrap_err(), Error::MalformedPickle);
    }

    #[test]
    fn debug_is_redacted() {
        let key = PickleKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{key:?}"), "PickleKey([redacted])");
    }
}
