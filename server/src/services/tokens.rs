//! Session tokens: random, prefixed so secret scanners recognise them (`kat_` access, `krt_`
//! refresh), handed to the device once and stored only as SHA-256 hashes.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub use crate::ids::fill_random;
use crate::store::SessionTokens;

/// A new random token: `prefix` + 32 random bytes, base64url without padding.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A device's new pair of tokens, and their hashes for the store.
pub struct IssuedTokens {
    /// The access token (`kat_…`).
    pub access: String,
    /// The refresh token (`krt_…`).
    pub refresh: String,
    /// Their hashes and expiry times.
    pub stored: SessionTokens,
}

/// Issues a fresh access and refresh token.
pub fn issue(now_ms: i64, access_ttl_ms: i64, refresh_ttl_ms: i64) -> IssuedTokens {
    let access = random_token("kat_");
    let refresh = random_token("krt_");
    let stored = SessionTokens {
        access_hash: hash_token(&access),
        access_expires_at_ms: now_ms + access_ttl_ms,
        refresh_hash: hash_token(&refresh),
        refresh_expires_at_ms: now_ms + refresh_ttl_ms,
    };
    IssuedTokens { access, refresh, stored }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = issue(0, 10, 20);
        let b = issue(0, 10, 20);
        assert!(a.access.starts_with("kat_") && a.refresh.starts_with("krt_"));
        assert_eq!(a.access.len(), 4 + 43);
        assert_ne!(a.access, b.access);
        assert_eq!(a.stored.access_hash, hash_token(&a.access));
        assert_eq!((a.stored.access_expires_at_ms, a.stored.refresh_expires_at_ms), (10, 20));
    }
}
