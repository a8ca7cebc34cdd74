//! TOTP (RFC 6238) as second factor: SHA-1, 6 digits, 30-second steps, one step of drift either
//! way. Which steps were already used is kept in the store, so a code works only once.
//!
//! # Security
//! A TOTP secret is as good as a second password, so it is never stored in plaintext: the
//! database holds it sealed ([`TotpKey`], ChaCha20-Poly1305 bound to the account id) under a
//! key kept in the data dir (`totp-key`, readable by this user only). A copy of the database
//! alone (a backup, a dump, a stolen disk image of the PostgreSQL host) does not give the
//! secrets away. Every node sharing one database needs the same key file; a node whose key does
//! not open the secrets already stored refuses to start. Secrets stored in plaintext by earlier
//! versions are sealed on start ([`seal_stored_secrets`]) and read in both forms meanwhile.

use std::path::Path;

use anyhow::Context as _;
use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit as _};
use sha2::{Digest as _, Sha256};
use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

use super::Error;
use crate::ids::AccountId;
use crate::store::Store;

/// Digits per code.
pub const DIGITS: u8 = 6;
/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Steps of clock drift accepted either way.
pub const SKEW: u16 = 1;
/// Secret length in bytes (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

fn totp(secret: &[u8], account_name: &str, issuer: &str) -> Result<Totp, Error> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret.to_vec())
        .with_account_name(account_name)
        .with_issuer(Some(issuer))
        .build()
        .map_err(|e| Error::Internal(format!("TOTP setup: {e}")))
}

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    super::tokens::fill_random(&mut secret);
    secret
}

/// The secret as base32 and as an `otpauth://` URI for authenticator apps.
pub fn enrolment(secret: &[u8], account_name: &str, issuer: &str) -> Result<(String, String), Error> {
    let totp = totp(secret, account_name, issuer)?;
    let uri = totp.to_url().map_err(|e| Error::Internal(format!("TOTP URI: {e}")))?;
    Ok((Secret::from(secret.to_vec()).to_base32(), uri))
}

/// The time step `code` is valid for at `unix_seconds` (within the drift window), if any.
pub fn matching_step(secret: &[u8], code: &str, unix_seconds: u64) -> Result<Option<i64>, Error> {
    let code = code.trim();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = totp(secret, "check", "KitsuLAN")?;
    Ok(totp.check(code, unix_seconds).and_then(|step| i64::try_from(step).ok()))
}

/// The start of a sealed secret (a plaintext one is exactly [`SECRET_BYTES`] long).
const SEALED_MAGIC: &[u8; 4] = b"KTS1";
const KEY_ID_BYTES: usize = 4;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const SEALED_HEADER: usize = SEALED_MAGIC.len() + KEY_ID_BYTES + NONCE_BYTES;

/// The key that seals TOTP secrets at rest (see the module docs).
pub struct TotpKey {
    key: Zeroizing<[u8; 32]>,
    id: [u8; KEY_ID_BYTES],
}

impl std::fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpKey").field("id", &self.id).field("key", &"***").finish()
    }
}

/// What a stored secret turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredForm {
    /// Plaintext, from a version before secrets were sealed.
    Plaintext,
    /// Sealed under this key.
    Sealed,
    /// Sealed under another key (another node's `totp-key`).
    OtherKey,
    /// Neither: a damaged row.
    Unreadable,
}

impl TotpKey {
    fn from_bytes(key: [u8; 32]) -> Self {
        let digest = Sha256::new().chain_update(b"kitsulan-totp-key-id\n").chain_update(key).finalize();
        let mut id = [0u8; KEY_ID_BYTES];
        id.copy_from_slice(&digest[..KEY_ID_BYTES]);
        Self { key: Zeroizing::new(key), id }
    }

    /// A key only this process knows: for the admin CLI, which never reads or writes secrets.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        super::tokens::fill_random(&mut key);
        Self::from_bytes(key)
    }

    /// The key kept at `path` (base64 of 32 bytes), made (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        match crate::data_dir::read_private_file(path) {
            Ok(text) => {
                let bytes = Zeroizing::new(engine.decode(text.trim()).unwrap_or_default());
                let key: [u8; 32] = bytes.as_slice().try_into().ok().with_context(|| {
                    format!(
                        "{}: not a TOTP key (base64 of 32 bytes); restore it from a backup or from \
                         another node: without it, TOTP secrets cannot be read",
                        path.display()
                    )
                })?;
                Ok(Self::from_bytes(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::ephemeral();
                let text = Zeroizing::new(engine.encode(*key.key));
                crate::data_dir::write_private_file(path, text.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                tracing::info!(path = %path.display(), "made the key that seals TOTP secrets");
                Ok(key)
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&(*self.key).into())
    }

    fn aad(account: AccountId) -> Vec<u8> {
        let mut aad = b"kitsulan-totp-v1\n".to_vec();
        aad.extend_from_slice(account.as_uuid().as_bytes());
        aad
    }

    /// `secret` sealed for `account`, as the store keeps it.
    pub fn seal(&self, account: AccountId, secret: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_BYTES];
        super::tokens::fill_random(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(&nonce.into(), Payload { msg: secret, aad: &Self::aad(account) })
            .map_err(|_| Error::Internal("cannot seal a TOTP secret".into()))?;
        let mut out = Vec::with_capacity(SEALED_HEADER + sealed.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// What `stored` is: plaintext, sealed under this key, under another, or damaged.
    pub fn form(&self, stored: &[u8]) -> StoredForm {
        if stored.len() == SECRET_BYTES {
            StoredForm::Plaintext
        } else if stored.len() < SEALED_HEADER + TAG_BYTES || !stored.starts_with(SEALED_MAGIC) {
            StoredForm::Unreadable
        } else if stored[SEALED_MAGIC.len()..SEALED_MAGIC.len() + KEY_ID_BYTES] != self.id {
            StoredForm::OtherKey
        } else {
            StoredForm::Sealed
        }
    }

    /// The secret of `account` from its stored form (sealed, or plaintext from before sealing).
    pub fn open(&self, account: AccountId, stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        match self.form(stored) {
            StoredForm::Plaintext => Ok(Zeroizing::new(stored.to_vec())),
            StoredForm::Sealed => {
                let (header, sealed) = stored.split_at(SEALED_HEADER);
                let mut nonce = [0u8; NONCE_BYTES];
                nonce.copy_from_slice(&header[SEALED_MAGIC.len() + KEY_ID_BYTES..]);
                self.cipher()
                    .decrypt(&nonce.into(), Payload { msg: sealed, aad: &Self::aad(account) })
                    .map(Zeroizing::new)
                    .map_err(|_| {
                        Error::Internal(format!("the TOTP secret of account {account} does not open"))
                    })
            }
            StoredForm::OtherKey => Err(Error::Internal(format!(
                "the TOTP secret of account {account} was sealed with another totp-key: every node \
                 needs the same key file"
            ))),
            StoredForm::Unreadable => {
                Err(Error::Internal(format!("the TOTP secret of account {account} is damaged")))
            }
        }
    }
}

/// Seals every TOTP secret still stored in plaintext (from before secrets were sealed) and
/// checks that this node's key opens the sealed ones. Returns how many were sealed. Refuses
/// (with what to do) when secrets were sealed under another key: another node's `totp-key`.
pub async fn seal_stored_secrets(store: &dyn Store, key: &TotpKey) -> anyhow::Result<usize> {
    let mut sealed = 0;
    let mut foreign = 0;
    for account in store.list_accounts().await? {
        for stored in [&account.totp_secret, &account.totp_pending_secret].into_iter().flatten() {
            match key.form(stored) {
                StoredForm::Plaintext => {
                    let new = key.seal(account.id, stored).map_err(|e| anyhow::anyhow!("{e}"))?;
                    // Only if it is still the same (a concurrent enrolment wins).
                    if store.replace_totp_secret(account.id, stored, &new).await? {
                        sealed += 1;
                    }
                }
                StoredForm::OtherKey => foreign += 1,
                StoredForm::Sealed | StoredForm::Unreadable => {}
            }
        }
    }
    if foreign > 0 {
        anyhow::bail!(
            "{foreign} TOTP secret(s) in the database were sealed with another key: copy the file \
             `totp-key` from the data dir of the node that made it into this node's data dir \
             (every node sharing a database needs the same one)"
        );
    }
    Ok(sealed)
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: (unix time, SHA-1 8-digit code). A 6-digit code is the last six
    /// digits (both are the same truncated value mod 10^n).
    const RFC6238_SHA1: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_vectors_in_six_digits() {
        let secret = b"12345678901234567890";
        for (time, eight) in RFC6238_SHA1 {
            let six = &eight[2..];
            let step = matching_step(secret, six, time).unwrap();
            assert_eq!(step, Some(i64::try_from(time / 30).unwrap()), "t={time} code={six}");
        }
    }

    #[test]
    fn drift_window_is_one_step_each_way() {
        let secret = b"12345678901234567890";
        let code = &RFC6238_SHA1[3].1[2..]; // valid at 1234567890 (step 41152263)
        for (time, ok) in
            [(1_234_567_890 - 30, true), (1_234_567_890 + 30, true), (1_234_567_890 + 60, false)]
        {
            assert_eq!(matching_step(secret, code, time).unwrap().is_some(), ok, "t={time}");
        }
    }

    #[test]
    fn malformed_codes_never_match() {
        for code in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(matching_step(b"12345678901234567890", code, 59).unwrap(), None, "{code:?}");
        }
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_account() {
        let key = TotpKey::ephemeral();
        let (alice, bob) = (AccountId::generate(), AccountId::generate());
        let secret = new_secret();
        let sealed = key.seal(alice, &secret).unwrap();
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_slice()), "no plaintext inside");
        assert_eq!(key.form(&sealed), StoredForm::Sealed);
        assert_eq!(key.open(alice, &sealed).unwrap().as_slice(), secret.as_slice());
        assert!(key.open(bob, &sealed).is_err(), "bound to the account");
        let other = TotpKey::ephemeral();
        assert_eq!(other.form(&sealed), StoredForm::OtherKey);
        assert!(other.open(alice, &sealed).is_err());
        // Plaintext from before sealing is still read.
        assert_eq!(key.form(&secret), StoredForm::Plaintext);
        assert_eq!(key.open(alice, &secret).unwrap().as_slice(), secret.as_slice());
        let mut damaged = sealed.clone();
        if let Some(last) = damaged.last_mut() {
            *last ^= 1;
        }
        assert!(key.open(alice, &damaged).is_err());
        assert_eq!(key.form(b"short"), StoredForm::Unreadable);
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("totp-key");
        let first = TotpKey::load_or_create(&path).unwrap();
        let again = TotpKey::load_or_create(&path).unwrap();
        assert_eq!(first.id, again.id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(TotpKey::load_or_create(&path).is_err());
    }

    #[test]
    fn enrolment_uri_names_issuer_and_account() {
        let (base32, uri) = enrolment(&new_secret(), "alice", "KitsuLAN").unwrap();
        assert_eq!(base32.len(), 32);
        assert!(uri.starts_with("otpauth://totp/KitsuLAN:alice?"), "{uri}");
    }
}
