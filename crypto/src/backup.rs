//! Key backup: the backup key `B` and its recovery key, the auth data that checks a key (and
//! optionally wraps `B` under a passphrase), and the encrypted identity and Megolm session
//! entries the server stores (`FORMAT.md`, "Key backup v1"); plus the Argon2id passphrase blob
//! the wrap is made of (`FORMAT.md`, "Backup blob v1").
//!
//! # Key backup v1
//!
//! The backup key [`BackupKey`] is 32 random bytes `B`. The person keeps it as a recovery key
//! (Crockford base32 with a 2-byte checksum, [`BackupKey::recovery_key`]) and, if they want,
//! behind a passphrase. What the server stores is opaque to it:
//!
//! ```text
//! auth data  "KLBA" | 1 | SHA-256("KLBA check" || B) | wrap len (u16) | wrap (empty, or a
//!            Backup blob v1 of B under Argon2id(passphrase))
//! identity   "KLBI" | 1 | nonce[12] | ChaCha20-Poly1305(account key secret)
//!            key = SHA-256("kitsulan/backup/v1/identity" || B), AAD = "KLBI" | 1 | account id
//! session    "KLBS" | 1 | nonce[12] | ChaCha20-Poly1305(1 | sender account | sender device
//!            | has conversation | conversation id | exported Megolm session key)
//!            key = SHA-256("kitsulan/backup/v1/session" || B),
//!            AAD = "KLBS" | 1 | account id | session id (UTF-8)
//! ```
//!
//! # The passphrase blob (Backup blob v1)
//!
//! A 32-byte [`PassphraseKey`] derived from a passphrase with Argon2id, and authenticated
//! encryption (ChaCha20-Poly1305) of blobs under it. The blob carries everything needed to
//! re-derive the key from the passphrase alone:
//!
//! ```text
//! "KLBK" | version=1 | kdf=1 (Argon2id v1.3) | m KiB (u32) | t (u32) | p (u32) | salt[16]
//!        | nonce[12] | ChaCha20-Poly1305 ciphertext+tag      (AAD = every byte before it)
//! ```
//!
//! The Argon2id parameters live in one place, [`KdfParams::DEFAULT`] (64 MiB, 3 passes,
//! 1 lane: above OWASP's minimum of 19 MiB / 2 / 1, and RFC 9106's second recommendation
//! adapted to a single-threaded browser).
//!
//! # Security
//!
//! Everything here comes back from the server, so it is untrusted:
//! * a key is checked against the auth data in constant time before use
//!   ([`Error::WrongRecoveryKey`]); a passphrase that does not open the wrap is
//!   [`Error::WrongPassphrase`], after the KDF; nothing is returned on failure;
//! * the wrap's Argon2id parameters are refused below [`KdfParams::MIN`] (a downgrade) or above
//!   [`KdfParams::MAX`] (a memory-exhaustion attack on the browser) before deriving; its header
//!   is authenticated and a changed salt or parameter changes the key, so tampering fails;
//! * identity and session entries are bound by their AAD to the account, and a session entry to
//!   its session id, so the server cannot move an entry to another account or session; the
//!   exported key inside must carry the session id the entry claims (a foreign session is
//!   refused);
//! * separate subkeys for identity and sessions, so one kind of entry never opens as the other.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit as _};
use rand_core::CryptoRng;
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::encoding::Reader;
use crate::megolm::InboundGroupSession;
use crate::pickle::{self, Kind, PickleKey};
use crate::{Error, Result};

// ------------------------------------------------------------------------------ passphrase blob

const MAGIC: &[u8; 4] = b"KLBK";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
/// Length of the blob header (the AAD).
pub const HEADER_LEN: usize = 4 + 1 + 1 + 12 + 16 + 12;
const KEY_TRANSFER_VERSION: u8 = 1;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Zeroize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// What new backups use.
    pub const DEFAULT: Self = Self { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 };
    /// The weakest parameters accepted from a blob (OWASP's minimum for Argon2id).
    pub const MIN: Self = Self { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1 };
    /// The most expensive parameters accepted from a blob.
    pub const MAX: Self = Self { m_cost_kib: 1024 * 1024, t_cost: 10, p_cost: 8 };

    fn check(&self) -> Result<()> {
        let ok = (Self::MIN.m_cost_kib..=Self::MAX.m_cost_kib).contains(&self.m_cost_kib)
            && (Self::MIN.t_cost..=Self::MAX.t_cost).contains(&self.t_cost)
            && (Self::MIN.p_cost..=Self::MAX.p_cost).contains(&self.p_cost);
        if ok { Ok(()) } else { Err(Error::BackupParamsOutOfRange) }
    }
}

/// A key derived from a passphrase with Argon2id (what a passphrase blob is encrypted under),
/// with the salt and parameters it was derived with. Key backup v1 uses it for the passphrase
/// wrap of the [`BackupKey`]. Zeroized on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PassphraseKey {
    key: [u8; 32],
    salt: [u8; 16],
    params: KdfParams,
}

impl PassphraseKey {
    /// Derives the key from a passphrase with a new random salt and [`KdfParams::DEFAULT`].
    pub fn from_new_passphrase<R: CryptoRng + ?Sized>(passphrase: &[u8], rng: &mut R) -> Result<Self> {
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        Self::derive(passphrase, salt, KdfParams::DEFAULT)
    }

    /// Derives the key from a passphrase, salt and parameters (checked against the accepted
    /// range).
    pub fn derive(passphrase: &[u8], salt: [u8; 16], params: KdfParams) -> Result<Self> {
        params.check()?;
        let argon_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|_| Error::KeyDerivation)?;
        let mut key = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
            .hash_password_into(passphrase, &salt, &mut key)
            .map_err(|_| Error::KeyDerivation)?;
        Ok(Self { key, salt, params })
    }

    /// The salt (stored in every blob's header).
    pub const fn salt(&self) -> [u8; 16] {
        self.salt
    }

    /// The Argon2id parameters the key was derived with.
    pub const fn params(&self) -> KdfParams {
        self.params
    }

    /// The transfer encoding: `version=1 | key[32] | salt[16] | m | t | p` (u32 BE each).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(61));
        out.push(KEY_TRANSFER_VERSION);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.salt);
        for v in [self.params.m_cost_kib, self.params.t_cost, self.params.p_cost] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    /// Parses [`PassphraseKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Error::MalformedBackup);
        if r.u8()? != KEY_TRANSFER_VERSION {
            return Err(Error::MalformedBackup);
        }
        let key = r.array()?;
        let salt = r.array()?;
        let params = KdfParams { m_cost_kib: r.u32()?, t_cost: r.u32()?, p_cost: r.u32()? };
        r.finish()?;
        params.check()?;
        Ok(Self { key, salt, params })
    }

    /// Encrypts a backup blob with a random nonce.
    pub fn encrypt<R: CryptoRng + ?Sized>(&self, plaintext: &[u8], rng: &mut R) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let mut blob = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        blob.extend_from_slice(MAGIC);
        blob.push(VERSION);
        blob.push(KDF_ARGON2ID);
        for v in [self.params.m_cost_kib, self.params.t_cost, self.params.p_cost] {
            blob.extend_from_slice(&v.to_be_bytes());
        }
        blob.extend_from_slice(&self.salt);
        blob.extend_from_slice(&nonce);
        let sealed = ChaCha20Poly1305::new(&self.key.into())
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad: &blob })
            // Fails only for messages over 256 GiB.
            .unwrap_or_default();
        blob.extend_from_slice(&sealed);
        blob
    }

    /// Decrypts a blob made under this key.
    pub fn decrypt(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let header = BackupHeader::parse(blob)?;
        let (aad, sealed) = blob.split_at(HEADER_LEN);
        ChaCha20Poly1305::new(&self.key.into())
            .decrypt(&header.nonce.into(), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| Error::BackupDecryption)
    }
}

impl std::fmt::Debug for PassphraseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassphraseKey").field("key", &"[redacted]").field("params", &self.params).finish()
    }
}

/// The parsed, unauthenticated header of a backup blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupHeader {
    /// Argon2id parameters.
    pub params: KdfParams,
    /// Argon2id salt.
    pub salt: [u8; 16],
    /// AEAD nonce.
    pub nonce: [u8; 12],
}

impl BackupHeader {
    /// Parses the header of a blob (magic, version and KDF id checked; not authenticated).
    pub fn parse(blob: &[u8]) -> Result<Self> {
        let mut r = Reader::new(blob, Error::MalformedBackup);
        if r.take(4)? != MAGIC || r.u8()? != VERSION || r.u8()? != KDF_ARGON2ID {
            return Err(Error::MalformedBackup);
        }
        let params = KdfParams { m_cost_kib: r.u32()?, t_cost: r.u32()?, p_cost: r.u32()? };
        let salt = r.array()?;
        let nonce = r.array()?;
        if r.rest().len() < 16 {
            return Err(Error::MalformedBackup);
        }
        Ok(Self { params, salt, nonce })
    }
}

/// Re-derives the key from the passphrase and the blob's own salt and parameters, and
/// decrypts the blob. Returns the key too, so the caller can keep using it.
pub fn decrypt_with_passphrase(
    passphrase: &[u8],
    blob: &[u8],
) -> Result<(PassphraseKey, Zeroizing<Vec<u8>>)> {
    let header = BackupHeader::parse(blob)?;
    let key = PassphraseKey::derive(passphrase, header.salt, header.params)?;
    let plaintext = key.decrypt(blob)?;
    Ok((key, plaintext))
}

// ------------------------------------------------------------------------------ key backup v1

/// Length of the recovery key without separators (34 bytes in Crockford base32).
pub const RECOVERY_KEY_CHARS: usize = 55;
/// The largest auth data accepted (the server's limit too).
pub const MAX_AUTH_DATA_LEN: usize = 1024;
/// The largest identity blob accepted.
pub const MAX_IDENTITY_LEN: usize = 1024;
/// The largest session entry accepted.
pub const MAX_SESSION_ENTRY_LEN: usize = 4096;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const RECOVERY_CHECKSUM_LABEL: &[u8] = b"KLRK";
const AUTH_MAGIC: &[u8; 4] = b"KLBA";
const KEY_CHECK_LABEL: &[u8] = b"KLBA check";
const IDENTITY_MAGIC: &[u8; 4] = b"KLBI";
const IDENTITY_LABEL: &[u8] = b"kitsulan/backup/v1/identity";
const SESSION_MAGIC: &[u8; 4] = b"KLBS";
const SESSION_LABEL: &[u8] = b"kitsulan/backup/v1/session";
const ENTRY_VERSION: u8 = 1;
const SESSION_BODY_VERSION: u8 = 1;
/// A wrap is a Backup blob v1 of the 32-byte key: header, key, tag.
const WRAP_LEN: usize = HEADER_LEN + 32 + 16;
/// Entry header: magic, version, nonce.
const ENTRY_HEADER_LEN: usize = 4 + 1 + 12;
/// An exported Megolm session key: version, index (u32), ratchet (128), signing key (32).
const EXPORTED_KEY_LEN: usize = 1 + 4 + 128 + 32;
/// The fixed part of a session entry's plaintext before the exported key.
const SESSION_BODY_FIXED: usize = 1 + 16 + 16 + 1 + 16;

/// Constant-time equality of two equally long byte strings.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn sha256(parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&hasher.finalize());
    out
}

/// Where a backed-up Megolm session came from: who sent it, and in which conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOrigin {
    /// The sender's account id (16 bytes).
    pub sender_account_id: [u8; 16],
    /// The sender's device id (16 bytes).
    pub sender_device_id: [u8; 16],
    /// The conversation the session belongs to, when known.
    pub conversation_id: Option<[u8; 16]>,
}

/// A session entry opened by [`BackupKey::decrypt_session`]: the imported session (its replay
/// record starts empty) and where it came from.
#[derive(Debug)]
pub struct BackedUpSession {
    /// The session, imported at the first index the backing-up device knew.
    pub session: InboundGroupSession,
    /// Sender and conversation, as the backing-up device recorded them.
    pub origin: SessionOrigin,
}

/// The backup key `B`: 32 random bytes that encrypt everything in a key backup. Zeroized on
/// drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BackupKey {
    key: [u8; 32],
}

impl BackupKey {
    /// A new random backup key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Self { key }
    }

    /// Wraps existing key bytes (received over the pairing channel from another device of the
    /// same account, [`BackupKey::to_bytes`]).
    pub const fn from_bytes(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The 32 bytes `B`, for the pairing channel only (the person keeps the recovery key).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key)
    }

    /// The recovery key the person writes down: Crockford base32 of `B || first 2 bytes of
    /// SHA-256("KLRK" || B)` (55 characters), in groups of 4 separated by spaces.
    pub fn recovery_key(&self) -> Zeroizing<String> {
        let checksum = sha256(&[RECOVERY_CHECKSUM_LABEL, &self.key]);
        let mut bytes = Zeroizing::new([0u8; 34]);
        bytes[..32].copy_from_slice(&self.key);
        bytes[32..].copy_from_slice(&checksum[..2]);
        let mut chars = Zeroizing::new(Vec::with_capacity(RECOVERY_KEY_CHARS));
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in bytes.iter() {
            acc = (acc << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                chars.push(CROCKFORD[((acc >> bits) & 31) as usize]);
            }
            acc &= (1 << bits) - 1;
        }
        // 272 bits: 54 whole characters and 2 bits left, padded with zero bits.
        chars.push(CROCKFORD[((acc << (5 - bits)) & 31) as usize]);
        let mut out = Zeroizing::new(String::with_capacity(RECOVERY_KEY_CHARS + RECOVERY_KEY_CHARS / 4));
        for (i, c) in chars.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push(' ');
            }
            out.push(char::from(*c));
        }
        out
    }

    /// Parses a recovery key as typed: case-insensitive, spaces and dashes anywhere, `I`/`L`
    /// read as `1` and `O` as `0`. A wrong length, an unknown character, non-zero padding bits or
    /// a wrong checksum is [`Error::RecoveryKeyMalformed`] (a typo, caught before any network
    /// use); a well-formed key that is not this backup's fails later in [`BackupKey::check`].
    pub fn from_recovery_key(display: &str) -> Result<Self> {
        let mut values = Zeroizing::new([0u8; RECOVERY_KEY_CHARS]);
        let mut n = 0;
        for c in display.chars() {
            if c.is_whitespace() || matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}') {
                continue;
            }
            let v = match c.to_ascii_uppercase() {
                'O' => 0,
                'I' | 'L' => 1,
                u => CROCKFORD
                    .iter()
                    .position(|&a| u32::from(a) == u32::from(u))
                    .ok_or(Error::RecoveryKeyMalformed)?,
            };
            *values.get_mut(n).ok_or(Error::RecoveryKeyMalformed)? = v as u8;
            n += 1;
        }
        if n != RECOVERY_KEY_CHARS {
            return Err(Error::RecoveryKeyMalformed);
        }
        let mut bytes = Zeroizing::new([0u8; 34]);
        let (mut acc, mut bits, mut i) = (0u32, 0u32, 0usize);
        for &v in values.iter() {
            acc = (acc << 5) | u32::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes[i] = (acc >> bits) as u8;
                i += 1;
                acc &= (1 << bits) - 1;
            }
        }
        // Three padding bits remain; they must be zero (one spelling per key).
        if acc != 0 {
            return Err(Error::RecoveryKeyMalformed);
        }
        let key: [u8; 32] = bytes[..32].try_into().map_err(|_| Error::RecoveryKeyMalformed)?;
        let candidate = Self { key };
        let checksum = sha256(&[RECOVERY_CHECKSUM_LABEL, &candidate.key]);
        if checksum[..2] != bytes[32..] {
            return Err(Error::RecoveryKeyMalformed);
        }
        Ok(candidate)
    }

    /// Opens the passphrase wrap in `auth_data` (Argon2id with the wrap's own salt and
    /// parameters, refused outside [`KdfParams::MIN`]..=[`KdfParams::MAX`]) and checks the key
    /// inside against the auth data's key check.
    ///
    /// Errors: [`Error::NoPassphrase`] when the backup has no passphrase,
    /// [`Error::WrongPassphrase`] when the wrap does not open, [`Error::MalformedBackup`] for
    /// malformed auth data or a wrap that opens to a key the auth data does not check (a wrap
    /// spliced from another backup), [`Error::BackupParamsOutOfRange`].
    pub fn from_passphrase(passphrase: &[u8], auth_data: &[u8]) -> Result<Self> {
        let parsed = AuthData::parse(auth_data)?;
        let wrap = parsed.wrap.ok_or(Error::NoPassphrase)?;
        let header = BackupHeader::parse(wrap)?;
        let passphrase_key = PassphraseKey::derive(passphrase, header.salt, header.params)?;
        let plaintext = passphrase_key.decrypt(wrap).map_err(|e| match e {
            Error::BackupDecryption => Error::WrongPassphrase,
            other => other,
        })?;
        let key: [u8; 32] = plaintext.as_slice().try_into().map_err(|_| Error::MalformedBackup)?;
        let candidate = Self { key };
        if !ct_eq(&candidate.key_check(), &parsed.key_check) {
            return Err(Error::MalformedBackup);
        }
        Ok(candidate)
    }

    /// New auth data for this key: the key check, and a passphrase wrap with
    /// [`KdfParams::DEFAULT`] when `passphrase` is given (an empty passphrase is refused with
    /// [`Error::InvalidLength`]).
    pub fn auth_data<R: CryptoRng + ?Sized>(
        &self,
        passphrase: Option<&[u8]>,
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        self.auth_data_with_params(passphrase, KdfParams::DEFAULT, rng)
    }

    /// [`BackupKey::auth_data`] with other Argon2id parameters (within the accepted range; for
    /// tests and recorded vectors, which cannot afford 64 MiB per derivation).
    pub fn auth_data_with_params<R: CryptoRng + ?Sized>(
        &self,
        passphrase: Option<&[u8]>,
        params: KdfParams,
        rng: &mut R,
    ) -> Result<Vec<u8>> {
        let wrap = match passphrase {
            None => Vec::new(),
            Some([]) => return Err(Error::InvalidLength("passphrase")),
            Some(passphrase) => {
                let mut salt = [0u8; 16];
                rng.fill_bytes(&mut salt);
                PassphraseKey::derive(passphrase, salt, params)?.encrypt(&self.key, rng)
            }
        };
        let mut out = Vec::with_capacity(4 + 1 + 32 + 2 + wrap.len());
        out.extend_from_slice(AUTH_MAGIC);
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&*self.key_check());
        // WRAP_LEN (94) or 0: always fits.
        out.extend_from_slice(&u16::try_from(wrap.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&wrap);
        Ok(out)
    }

    /// Checks this key against a backup's auth data (constant time):
    /// [`Error::WrongRecoveryKey`] when it is another key, [`Error::MalformedBackup`] when the
    /// auth data is malformed.
    pub fn check(&self, auth_data: &[u8]) -> Result<()> {
        let parsed = AuthData::parse(auth_data)?;
        if ct_eq(&self.key_check(), &parsed.key_check) { Ok(()) } else { Err(Error::WrongRecoveryKey) }
    }

    fn key_check(&self) -> Zeroizing<[u8; 32]> {
        sha256(&[KEY_CHECK_LABEL, &self.key])
    }

    fn cipher(&self, label: &[u8]) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&(*sha256(&[label, &self.key])).into())
    }

    fn seal<R: CryptoRng + ?Sized>(
        &self,
        magic: &[u8; 4],
        label: &[u8],
        bound: &[&[u8]],
        plaintext: &[u8],
        rng: &mut R,
    ) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(magic);
        aad.push(ENTRY_VERSION);
        for part in bound {
            aad.extend_from_slice(part);
        }
        let sealed = self
            .cipher(label)
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad: &aad })
            // Fails only for messages over 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ENTRY_HEADER_LEN + sealed.len());
        out.extend_from_slice(magic);
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    fn open(
        &self,
        magic: &[u8; 4],
        label: &[u8],
        bound: &[&[u8]],
        blob: &[u8],
        max_len: usize,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if blob.len() > max_len {
            return Err(Error::MalformedBackup);
        }
        let mut r = Reader::new(blob, Error::MalformedBackup);
        if r.take(4)? != magic || r.u8()? != ENTRY_VERSION {
            return Err(Error::MalformedBackup);
        }
        let nonce: [u8; 12] = r.array()?;
        let sealed = r.rest();
        if sealed.len() < 16 {
            return Err(Error::MalformedBackup);
        }
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(magic);
        aad.push(ENTRY_VERSION);
        for part in bound {
            aad.extend_from_slice(part);
        }
        self.cipher(label)
            .decrypt(&nonce.into(), Payload { msg: sealed, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| Error::BackupDecryption)
    }

    /// Encrypts the account key's secret seed for the backup of account `account_id`.
    pub fn encrypt_identity<R: CryptoRng + ?Sized>(
        &self,
        account_id: &[u8; 16],
        account_key_secret: &[u8; 32],
        rng: &mut R,
    ) -> Vec<u8> {
        self.seal(IDENTITY_MAGIC, IDENTITY_LABEL, &[account_id], account_key_secret, rng)
    }

    /// Decrypts an identity blob of account `account_id`: the account key's 32-byte seed.
    /// [`Error::BackupDecryption`] when it does not open (another key — call
    /// [`BackupKey::check`] first to tell that apart —, another account, or tampering),
    /// [`Error::MalformedBackup`] when it is malformed.
    pub fn decrypt_identity(&self, account_id: &[u8; 16], blob: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let plaintext = self.open(IDENTITY_MAGIC, IDENTITY_LABEL, &[account_id], blob, MAX_IDENTITY_LEN)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        if plaintext.len() != 32 {
            return Err(Error::MalformedBackup);
        }
        seed.copy_from_slice(&plaintext);
        Ok(seed)
    }

    /// Encrypts a Megolm session (exported at its first known index) for the backup of
    /// account `account_id`, bound to the session's id.
    pub fn encrypt_session<R: CryptoRng + ?Sized>(
        &self,
        account_id: &[u8; 16],
        session: &InboundGroupSession,
        origin: &SessionOrigin,
        rng: &mut R,
    ) -> Vec<u8> {
        let exported = session.export_at_first_known_index();
        let mut body = Zeroizing::new(Vec::with_capacity(SESSION_BODY_FIXED + exported.len()));
        body.push(SESSION_BODY_VERSION);
        body.extend_from_slice(&origin.sender_account_id);
        body.extend_from_slice(&origin.sender_device_id);
        body.push(u8::from(origin.conversation_id.is_some()));
        body.extend_from_slice(&origin.conversation_id.unwrap_or_default());
        body.extend_from_slice(&exported);
        self.encrypt_session_body(account_id, &session.session_id(), &body, rng)
    }

    pub(crate) fn encrypt_session_body<R: CryptoRng + ?Sized>(
        &self,
        account_id: &[u8; 16],
        session_id: &str,
        body: &[u8],
        rng: &mut R,
    ) -> Vec<u8> {
        self.seal(SESSION_MAGIC, SESSION_LABEL, &[account_id, session_id.as_bytes()], body, rng)
    }

    /// Decrypts the session entry stored under `session_id` in the backup of account
    /// `account_id` and imports the session. [`Error::BackupDecryption`] when it does not open
    /// (another key, account or session id, or tampering); [`Error::MalformedBackup`] when it
    /// is truncated, of an unknown version, or holds a session whose own id is not
    /// `session_id` (a foreign session).
    pub fn decrypt_session(
        &self,
        account_id: &[u8; 16],
        session_id: &str,
        blob: &[u8],
    ) -> Result<BackedUpSession> {
        let body = self.open(
            SESSION_MAGIC,
            SESSION_LABEL,
            &[account_id, session_id.as_bytes()],
            blob,
            MAX_SESSION_ENTRY_LEN,
        )?;
        let mut r = Reader::new(&body, Error::MalformedBackup);
        if r.u8()? != SESSION_BODY_VERSION {
            return Err(Error::MalformedBackup);
        }
        let sender_account_id = r.array()?;
        let sender_device_id = r.array()?;
        let has_conversation = r.u8()?;
        let conversation: [u8; 16] = r.array()?;
        let conversation_id = match has_conversation {
            1 => Some(conversation),
            0 if conversation == [0; 16] => None,
            _ => return Err(Error::MalformedBackup),
        };
        // vodozemac's decoder ignores trailing bytes; this format does not.
        let exported = r.rest();
        if exported.len() != EXPORTED_KEY_LEN {
            return Err(Error::MalformedBackup);
        }
        let session = InboundGroupSession::import(exported).map_err(|_| Error::MalformedBackup)?;
        if session.session_id() != session_id {
            return Err(Error::MalformedBackup);
        }
        Ok(BackedUpSession {
            session,
            origin: SessionOrigin { sender_account_id, sender_device_id, conversation_id },
        })
    }

    /// Pickles the key under `pickle_key` (the sealed envelope of [`crate::pickle`], kind
    /// backup key).
    pub fn pickle<R: CryptoRng + ?Sized>(&self, pickle_key: &PickleKey, rng: &mut R) -> String {
        pickle::seal(Kind::BackupKey, pickle_key, &self.key, rng)
    }

    /// Restores a key from [`BackupKey::pickle`].
    pub fn from_pickle(pickle: &str, pickle_key: &PickleKey) -> Result<Self> {
        let body = pickle::open(Kind::BackupKey, pickle_key, pickle)?;
        let key: [u8; 32] = body.as_slice().try_into().map_err(|_| Error::MalformedPickle)?;
        Ok(Self { key })
    }
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey([redacted])")
    }
}

/// Parsed auth data (borrowed).
struct AuthData<'a> {
    key_check: [u8; 32],
    wrap: Option<&'a [u8]>,
}

impl<'a> AuthData<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() > MAX_AUTH_DATA_LEN {
            return Err(Error::MalformedBackup);
        }
        let mut r = Reader::new(bytes, Error::MalformedBackup);
        if r.take(4)? != AUTH_MAGIC || r.u8()? != ENTRY_VERSION {
            return Err(Error::MalformedBackup);
        }
        let key_check = r.array()?;
        let len = usize::from(r.u16()?);
        let wrap = r.take(len)?;
        r.finish()?;
        let wrap = match len {
            0 => None,
            WRAP_LEN => {
                BackupHeader::parse(wrap)?;
                Some(wrap)
            }
            _ => return Err(Error::MalformedBackup),
        };
        Ok(Self { key_check, wrap })
    }
}

/// Whether auth data carries a passphrase wrap ([`Error::MalformedBackup`] when it is
/// malformed).
pub fn has_passphrase(auth_data: &[u8]) -> Result<bool> {
    Ok(AuthData::parse(auth_data)?.wrap.is_some())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    use super::*;

    #[test]
    fn round_trip_wrong_passphrase_and_tampering() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let key = PassphraseKey::derive(b"correct horse", [7; 16], KdfParams::MIN).unwrap();
        let blob = key.encrypt(b"room keys", &mut rng);
        assert_eq!(&*key.decrypt(&blob).unwrap(), b"room keys");
        let (again, pt) = decrypt_with_passphrase(b"correct horse", &blob).unwrap();
        assert_eq!(&*pt, b"room keys");
        assert_eq!(again.to_bytes(), key.to_bytes());
        assert_eq!(decrypt_with_passphrase(b"wrong horse", &blob).unwrap_err(), Error::BackupDecryption);

        for i in [0, 4, 5, 30, HEADER_LEN - 1, HEADER_LEN, blob.len() - 1] {
            let mut t = blob.clone();
            t[i] ^= 1;
            let err = key.decrypt(&t).unwrap_err();
            let expected = if i < 6 { Error::MalformedBackup } else { Error::BackupDecryption };
            assert_eq!(err, expected, "byte {i}");
        }
        assert_eq!(key.decrypt(&blob[..HEADER_LEN + 15]).unwrap_err(), Error::MalformedBackup);
    }

    #[test]
    fn parameters_out_of_range_are_refused() {
        let weak = KdfParams { m_cost_kib: 1024, ..KdfParams::MIN };
        assert_eq!(PassphraseKey::derive(b"p", [0; 16], weak).unwrap_err(), Error::BackupParamsOutOfRange);
        let huge = KdfParams { m_cost_kib: 4 * 1024 * 1024, ..KdfParams::MIN };
        assert_eq!(PassphraseKey::derive(b"p", [0; 16], huge).unwrap_err(), Error::BackupParamsOutOfRange);
        // A blob whose header asks for huge memory is refused before any work.
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let key = PassphraseKey::derive(b"p", [0; 16], KdfParams::MIN).unwrap();
        let mut blob = key.encrypt(b"x", &mut rng);
        blob[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decrypt_with_passphrase(b"p", &blob).unwrap_err(), Error::BackupParamsOutOfRange);
    }

    #[test]
    fn key_transfer_encoding() {
        let key = PassphraseKey::derive(b"p", [3; 16], KdfParams::MIN).unwrap();
        let bytes = key.to_bytes();
        let back = PassphraseKey::from_bytes(&bytes).unwrap();
        assert_eq!(back.salt(), [3; 16]);
        assert_eq!(back.params(), KdfParams::MIN);
        assert_eq!(PassphraseKey::from_bytes(&bytes[..20]).unwrap_err(), Error::MalformedBackup);
        assert!(format!("{key:?}").contains("[redacted]"));
    }

    // ------------------------------------------------------------------ key backup v1

    use crate::megolm::OutboundGroupSession;
    use crate::{AccountKey, PickleKey};

    fn seeded(seed: u8) -> ChaCha20Rng {
        ChaCha20Rng::from_seed([seed; 32])
    }

    const ACCOUNT: [u8; 16] = [0xa1; 16];
    const OTHER_ACCOUNT: [u8; 16] = [0xa2; 16];
    const ORIGIN: SessionOrigin = SessionOrigin {
        sender_account_id: [0xb1; 16],
        sender_device_id: [0xb2; 16],
        conversation_id: Some([0xc1; 16]),
    };

    fn same_key(a: &BackupKey, b: &BackupKey) -> bool {
        a.recovery_key() == b.recovery_key()
    }

    #[test]
    fn recovery_key_display_form_round_trips() {
        let mut rng = seeded(10);
        for _ in 0..64 {
            let key = BackupKey::generate(&mut rng);
            let display = key.recovery_key();
            let groups: Vec<&str> = display.split(' ').collect();
            assert_eq!(groups.len(), 14);
            assert!(groups[..13].iter().all(|g| g.len() == 4));
            assert_eq!(groups[13].len(), 3);
            assert!(display.bytes().all(|b| b == b' ' || CROCKFORD.contains(&b)));
            assert!(same_key(&BackupKey::from_recovery_key(&display).unwrap(), &key));
        }
        // The all-zero and all-one keys: the padding bits stay zero.
        for byte in [0u8, 0xff] {
            let key = BackupKey { key: [byte; 32] };
            assert!(same_key(&BackupKey::from_recovery_key(&key.recovery_key()).unwrap(), &key));
        }
    }

    #[test]
    fn recovery_key_parser_forgives_case_separators_and_look_alikes() {
        let key = BackupKey::generate(&mut seeded(11));
        let display = key.recovery_key();
        let compact: String = display.chars().filter(|c| *c != ' ').collect();
        let variants = [
            compact.clone(),
            compact.to_lowercase(),
            display.replace(' ', "-"),
            format!("  {}\n", display.replace(' ', " - ")),
            compact.chars().map(|c| format!("{c}\u{2013}")).collect::<String>(),
            compact.replace('0', "O").replace('1', "l"),
            compact.replace('0', "o").replace('1', "I"),
            compact.replace('1', "i"),
        ];
        for v in &variants {
            assert!(same_key(&BackupKey::from_recovery_key(v).unwrap(), &key), "{v}");
        }
    }

    #[test]
    fn malformed_recovery_keys_are_refused() {
        let key = BackupKey::generate(&mut seeded(12));
        let compact: String = key.recovery_key().chars().filter(|c| *c != ' ').collect();
        let bad = |text: &str| BackupKey::from_recovery_key(text).unwrap_err();
        assert_eq!(bad(""), Error::RecoveryKeyMalformed);
        assert_eq!(bad(&compact[..54]), Error::RecoveryKeyMalformed);
        assert_eq!(bad(&format!("{compact}0")), Error::RecoveryKeyMalformed);
        assert_eq!(bad(&compact.repeat(1000)), Error::RecoveryKeyMalformed);
        // Characters outside Crockford base32 (U is not in it), and non-ASCII look-alikes.
        for c in ['U', 'u', '*', '\u{00d8}', '\u{0430}'] {
            let mut s = compact.clone();
            s.replace_range(10..11, &c.to_string());
            assert_eq!(bad(&s), Error::RecoveryKeyMalformed, "{c}");
        }
        // For this key every single-character typo is caught (by the checksum, or by non-zero
        // padding bits). In general a typo in the key part slips past the 16-bit checksum with
        // probability 2^-16, and then fails `check` as a wrong key.
        for i in 0..RECOVERY_KEY_CHARS {
            let original = compact.as_bytes()[i];
            for &replacement in CROCKFORD.iter().filter(|&&c| c != original) {
                let mut typo = compact.clone().into_bytes();
                typo[i] = replacement;
                let typo = String::from_utf8(typo).unwrap();
                assert_eq!(bad(&typo), Error::RecoveryKeyMalformed, "position {i}");
            }
        }
        // Two neighbouring characters swapped.
        let mut swapped = compact.clone().into_bytes();
        let j = (0..54).find(|&j| swapped[j] != swapped[j + 1]).unwrap();
        swapped.swap(j, j + 1);
        assert_eq!(bad(&String::from_utf8(swapped).unwrap()), Error::RecoveryKeyMalformed);
    }

    #[test]
    fn a_wrong_key_is_wrong_recovery_key_and_nothing_else() {
        let mut rng = seeded(13);
        let key = BackupKey::generate(&mut rng);
        let other = BackupKey::generate(&mut rng);
        let plain = key.auth_data(None, &mut rng).unwrap();
        let wrapped = key.auth_data_with_params(Some(b"hunter2 hunter2"), KdfParams::MIN, &mut rng).unwrap();
        for auth in [&plain, &wrapped] {
            key.check(auth).unwrap();
            assert_eq!(other.check(auth).unwrap_err(), Error::WrongRecoveryKey);
            // The same through the typed recovery key of the other backup.
            let typed = BackupKey::from_recovery_key(&other.recovery_key()).unwrap();
            assert_eq!(typed.check(auth).unwrap_err(), Error::WrongRecoveryKey);
        }
        // A wrong key also opens no entry of the backup.
        let identity = key.encrypt_identity(&ACCOUNT, &[7; 32], &mut rng);
        assert_eq!(other.decrypt_identity(&ACCOUNT, &identity).unwrap_err(), Error::BackupDecryption);
    }

    #[test]
    fn auth_data_without_passphrase() {
        let mut rng = seeded(14);
        let key = BackupKey::generate(&mut rng);
        let auth = key.auth_data(None, &mut rng).unwrap();
        assert_eq!(auth.len(), 4 + 1 + 32 + 2);
        assert!(!has_passphrase(&auth).unwrap());
        assert_eq!(BackupKey::from_passphrase(b"anything", &auth).unwrap_err(), Error::NoPassphrase);
        assert_eq!(key.auth_data(Some(b""), &mut rng).unwrap_err(), Error::InvalidLength("passphrase"));
    }

    #[test]
    fn passphrase_wrap_opens_only_with_the_passphrase() {
        let mut rng = seeded(15);
        let key = BackupKey::generate(&mut rng);
        let auth = key.auth_data_with_params(Some(b"correct horse"), KdfParams::MIN, &mut rng).unwrap();
        assert_eq!(auth.len(), 4 + 1 + 32 + 2 + WRAP_LEN);
        assert!(has_passphrase(&auth).unwrap());
        let opened = BackupKey::from_passphrase(b"correct horse", &auth).unwrap();
        assert!(same_key(&opened, &key));
        assert_eq!(BackupKey::from_passphrase(b"correct horsE", &auth).unwrap_err(), Error::WrongPassphrase);
        assert_eq!(BackupKey::from_passphrase(b"", &auth).unwrap_err(), Error::WrongPassphrase);

        // A wrap spliced in from another backup under the same passphrase opens, but holds a
        // key this auth data does not check.
        let other = BackupKey::generate(&mut rng);
        let other_auth =
            other.auth_data_with_params(Some(b"correct horse"), KdfParams::MIN, &mut rng).unwrap();
        let mut spliced = auth.clone();
        spliced[39..].copy_from_slice(&other_auth[39..]);
        assert_eq!(
            BackupKey::from_passphrase(b"correct horse", &spliced).unwrap_err(),
            Error::MalformedBackup
        );
        key.check(&spliced).unwrap();

        // The wrap's ciphertext or salt changed: the passphrase no longer opens it.
        for i in [39 + 18, 39 + 30, auth.len() - 1] {
            let mut t = auth.clone();
            t[i] ^= 1;
            assert_eq!(BackupKey::from_passphrase(b"correct horse", &t).unwrap_err(), Error::WrongPassphrase);
        }
    }

    #[test]
    fn a_wrap_with_kdf_parameters_out_of_range_is_refused() {
        let mut rng = seeded(16);
        let key = BackupKey::generate(&mut rng);
        let auth = key.auth_data_with_params(Some(b"pw"), KdfParams::MIN, &mut rng).unwrap();
        // Wrap header: "KLBK" 1 1 | m | t | p at offsets 6, 10, 14 of the wrap (39 in the auth data).
        let with = |offset: usize, value: u32| {
            let mut t = auth.clone();
            t[39 + offset..39 + offset + 4].copy_from_slice(&value.to_be_bytes());
            t
        };
        let cases = [
            with(6, KdfParams::MIN.m_cost_kib - 1),
            with(6, KdfParams::MAX.m_cost_kib + 1),
            with(6, u32::MAX),
            with(10, KdfParams::MIN.t_cost - 1),
            with(10, KdfParams::MAX.t_cost + 1),
            with(14, 0),
            with(14, KdfParams::MAX.p_cost + 1),
        ];
        for t in &cases {
            // Refused before any derivation (a 4 GiB Argon2id would not return in a test).
            assert_eq!(BackupKey::from_passphrase(b"pw", t).unwrap_err(), Error::BackupParamsOutOfRange);
        }
        // New wraps are never made outside the range either.
        let weak = KdfParams { t_cost: 1, ..KdfParams::MIN };
        assert_eq!(
            key.auth_data_with_params(Some(b"pw"), weak, &mut rng).unwrap_err(),
            Error::BackupParamsOutOfRange
        );
    }

    #[test]
    fn truncated_bit_flipped_or_padded_auth_data_fails_cleanly() {
        let mut rng = seeded(17);
        let key = BackupKey::generate(&mut rng);
        for auth in [
            key.auth_data(None, &mut rng).unwrap(),
            key.auth_data_with_params(Some(b"pw"), KdfParams::MIN, &mut rng).unwrap(),
        ] {
            for n in 0..auth.len() {
                assert_eq!(key.check(&auth[..n]).unwrap_err(), Error::MalformedBackup, "prefix {n}");
                assert_eq!(has_passphrase(&auth[..n]).unwrap_err(), Error::MalformedBackup);
            }
            let mut longer = auth.clone();
            longer.push(0);
            assert_eq!(key.check(&longer).unwrap_err(), Error::MalformedBackup);
            for i in 0..auth.len() {
                let mut t = auth.clone();
                t[i] ^= 0x80;
                let result = key.check(&t);
                match i {
                    // Magic, version, wrap length, wrap magic/version/KDF id.
                    0..=4 | 37..=38 => assert_eq!(result.unwrap_err(), Error::MalformedBackup, "byte {i}"),
                    5..=36 => assert_eq!(result.unwrap_err(), Error::WrongRecoveryKey, "byte {i}"),
                    39..=44 => assert_eq!(result.unwrap_err(), Error::MalformedBackup, "byte {i}"),
                    // The rest of the wrap is checked when a passphrase opens it.
                    _ => result.unwrap(),
                }
            }
        }
        let mut huge = key.auth_data(None, &mut rng).unwrap();
        huge.resize(MAX_AUTH_DATA_LEN + 1, 0);
        assert_eq!(key.check(&huge).unwrap_err(), Error::MalformedBackup);
        // A wrap of any length but the one v1 defines is refused.
        let mut odd = key.auth_data(None, &mut rng).unwrap();
        odd[37..39].copy_from_slice(&3u16.to_be_bytes());
        odd.extend_from_slice(b"abc");
        assert_eq!(key.check(&odd).unwrap_err(), Error::MalformedBackup);
    }

    #[test]
    fn identity_round_trips_and_is_bound_to_the_account() {
        let mut rng = seeded(18);
        let key = BackupKey::generate(&mut rng);
        let account_key = AccountKey::generate(&mut rng);
        let blob = key.encrypt_identity(&ACCOUNT, &account_key.to_secret_bytes(), &mut rng);
        assert_eq!(blob.len(), ENTRY_HEADER_LEN + 32 + 16);
        let seed = key.decrypt_identity(&ACCOUNT, &blob).unwrap();
        assert_eq!(AccountKey::from_secret_bytes(&seed).public_key(), account_key.public_key());
        // Moved to another account: refused.
        assert_eq!(key.decrypt_identity(&OTHER_ACCOUNT, &blob).unwrap_err(), Error::BackupDecryption);
        // Truncated, padded or any bit flipped: refused, never a wrong seed.
        for n in 0..blob.len() {
            assert!(key.decrypt_identity(&ACCOUNT, &blob[..n]).is_err(), "prefix {n}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert_eq!(key.decrypt_identity(&ACCOUNT, &longer).unwrap_err(), Error::BackupDecryption);
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut t = blob.clone();
                t[i] ^= 1 << bit;
                let expected = if i < 5 { Error::MalformedBackup } else { Error::BackupDecryption };
                assert_eq!(key.decrypt_identity(&ACCOUNT, &t).unwrap_err(), expected, "byte {i} bit {bit}");
            }
        }
        // A session entry is not an identity, even with the magic changed.
        let (_, inbound) = megolm_pair();
        let mut entry = key.encrypt_session(&ACCOUNT, &inbound, &ORIGIN, &mut rng);
        assert_eq!(key.decrypt_identity(&ACCOUNT, &entry).unwrap_err(), Error::MalformedBackup);
        entry[..4].copy_from_slice(IDENTITY_MAGIC);
        assert_eq!(key.decrypt_identity(&ACCOUNT, &entry).unwrap_err(), Error::BackupDecryption);
        let mut huge = blob.clone();
        huge.resize(MAX_IDENTITY_LEN + 1, 0);
        assert_eq!(key.decrypt_identity(&ACCOUNT, &huge).unwrap_err(), Error::MalformedBackup);
    }

    fn megolm_pair() -> (OutboundGroupSession, InboundGroupSession) {
        let out = OutboundGroupSession::new();
        let inbound = InboundGroupSession::from_session_key(&out.session_key()).unwrap();
        (out, inbound)
    }

    #[test]
    fn session_entries_round_trip_with_their_origin() {
        let mut rng = seeded(19);
        let key = BackupKey::generate(&mut rng);
        let (mut out, mut inbound) = megolm_pair();
        let m0 = out.encrypt(b"first");
        let m1 = out.encrypt(b"second");
        inbound.decrypt(&m0).unwrap();
        let blob = key.encrypt_session(&ACCOUNT, &inbound, &ORIGIN, &mut rng);
        assert!(blob.len() <= MAX_SESSION_ENTRY_LEN);
        let mut restored = key.decrypt_session(&ACCOUNT, &inbound.session_id(), &blob).unwrap();
        assert_eq!(restored.origin, ORIGIN);
        assert_eq!(restored.session.session_id(), out.session_id());
        assert_eq!(restored.session.first_known_index(), 0);
        // The restored session reads the whole history, replayed messages included (its
        // replay record starts empty).
        assert_eq!(restored.session.decrypt(&m0).unwrap().plaintext, b"first");
        assert_eq!(restored.session.decrypt(&m1).unwrap().plaintext, b"second");

        // No conversation recorded.
        let origin = SessionOrigin { conversation_id: None, ..ORIGIN };
        let blob = key.encrypt_session(&ACCOUNT, &inbound, &origin, &mut rng);
        assert_eq!(key.decrypt_session(&ACCOUNT, &inbound.session_id(), &blob).unwrap().origin, origin);

        // A late joiner's session keeps its first known index.
        let late = InboundGroupSession::from_session_key(&out.session_key()).unwrap();
        let blob = key.encrypt_session(&ACCOUNT, &late, &ORIGIN, &mut rng);
        let restored = key.decrypt_session(&ACCOUNT, &late.session_id(), &blob).unwrap();
        assert_eq!(restored.session.first_known_index(), 2);
    }

    #[test]
    fn a_session_entry_moved_to_another_session_or_account_fails() {
        let mut rng = seeded(20);
        let key = BackupKey::generate(&mut rng);
        let (_, a) = megolm_pair();
        let (_, b) = megolm_pair();
        let entry_a = key.encrypt_session(&ACCOUNT, &a, &ORIGIN, &mut rng);
        key.decrypt_session(&ACCOUNT, &a.session_id(), &entry_a).unwrap();
        // Stored under b's id (the server swapped two entries): refused.
        assert_eq!(
            key.decrypt_session(&ACCOUNT, &b.session_id(), &entry_a).unwrap_err(),
            Error::BackupDecryption
        );
        // Moved into another account's backup (same key, e.g. a shared recovery key): refused.
        assert_eq!(
            key.decrypt_session(&OTHER_ACCOUNT, &a.session_id(), &entry_a).unwrap_err(),
            Error::BackupDecryption
        );
        // Another key.
        let other = BackupKey::generate(&mut rng);
        assert_eq!(
            other.decrypt_session(&ACCOUNT, &a.session_id(), &entry_a).unwrap_err(),
            Error::BackupDecryption
        );
        // An identity blob is not a session entry, even with the magic changed.
        let mut identity = key.encrypt_identity(&ACCOUNT, &[1; 32], &mut rng);
        assert_eq!(
            key.decrypt_session(&ACCOUNT, &a.session_id(), &identity).unwrap_err(),
            Error::MalformedBackup
        );
        identity[..4].copy_from_slice(SESSION_MAGIC);
        assert_eq!(
            key.decrypt_session(&ACCOUNT, &a.session_id(), &identity).unwrap_err(),
            Error::BackupDecryption
        );
    }

    #[test]
    fn a_foreign_session_is_refused() {
        let mut rng = seeded(21);
        let key = BackupKey::generate(&mut rng);
        let (_, a) = megolm_pair();
        let (_, b) = megolm_pair();
        // An entry that authenticates under b's id but carries a's exported key (made by a
        // buggy or hostile holder of the key): the session's own id must match.
        let mut body = vec![SESSION_BODY_VERSION];
        body.extend_from_slice(&[0xb1; 16]);
        body.extend_from_slice(&[0xb2; 16]);
        body.push(0);
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&a.export_at_first_known_index());
        let foreign = key.encrypt_session_body(&ACCOUNT, &b.session_id(), &body, &mut rng);
        assert_eq!(
            key.decrypt_session(&ACCOUNT, &b.session_id(), &foreign).unwrap_err(),
            Error::MalformedBackup
        );
        // The same body under a's own id is fine.
        let own = key.encrypt_session_body(&ACCOUNT, &a.session_id(), &body, &mut rng);
        key.decrypt_session(&ACCOUNT, &a.session_id(), &own).unwrap();
    }

    #[test]
    fn malformed_session_bodies_are_refused() {
        let mut rng = seeded(22);
        let key = BackupKey::generate(&mut rng);
        let (_, a) = megolm_pair();
        let id = a.session_id();
        let mut good = vec![SESSION_BODY_VERSION];
        good.extend_from_slice(&[0xb1; 16]);
        good.extend_from_slice(&[0xb2; 16]);
        good.push(1);
        good.extend_from_slice(&[0xc1; 16]);
        good.extend_from_slice(&a.export_at_first_known_index());
        let open = |body: &[u8], rng: &mut ChaCha20Rng| {
            key.decrypt_session(&ACCOUNT, &id, &key.encrypt_session_body(&ACCOUNT, &id, body, rng))
        };
        open(&good, &mut rng).unwrap();
        for n in 0..good.len() {
            assert_eq!(open(&good[..n], &mut rng).unwrap_err(), Error::MalformedBackup, "prefix {n}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(open(&longer, &mut rng).unwrap_err(), Error::MalformedBackup);
        let mut t = good.clone();
        t[0] = 2; // unknown body version
        assert_eq!(open(&t, &mut rng).unwrap_err(), Error::MalformedBackup);
        let mut t = good.clone();
        t[33] = 2; // has-conversation must be 0 or 1
        assert_eq!(open(&t, &mut rng).unwrap_err(), Error::MalformedBackup);
        let mut t = good.clone();
        t[33] = 0; // no conversation, but a non-zero id
        assert_eq!(open(&t, &mut rng).unwrap_err(), Error::MalformedBackup);
        // A session key (signed, for Olm shares) is not an exported key.
        let (out, _) = megolm_pair();
        let mut t = good[..SESSION_BODY_FIXED].to_vec();
        t.extend_from_slice(&out.session_key());
        assert_eq!(open(&t, &mut rng).unwrap_err(), Error::MalformedBackup);
    }

    #[test]
    fn truncated_bit_flipped_or_oversized_session_entries_fail_cleanly() {
        let mut rng = seeded(23);
        let key = BackupKey::generate(&mut rng);
        let (_, a) = megolm_pair();
        let id = a.session_id();
        let blob = key.encrypt_session(&ACCOUNT, &a, &ORIGIN, &mut rng);
        for n in 0..blob.len() {
            let err = key.decrypt_session(&ACCOUNT, &id, &blob[..n]).unwrap_err();
            let expected =
                if n < ENTRY_HEADER_LEN + 16 { Error::MalformedBackup } else { Error::BackupDecryption };
            assert_eq!(err, expected, "prefix {n}");
        }
        for i in 0..blob.len() {
            let mut t = blob.clone();
            t[i] ^= 0x10;
            let expected = if i < 5 { Error::MalformedBackup } else { Error::BackupDecryption };
            assert_eq!(key.decrypt_session(&ACCOUNT, &id, &t).unwrap_err(), expected, "byte {i}");
        }
        let mut huge = blob.clone();
        huge.resize(MAX_SESSION_ENTRY_LEN + 1, 0);
        assert_eq!(key.decrypt_session(&ACCOUNT, &id, &huge).unwrap_err(), Error::MalformedBackup);
    }

    #[test]
    fn backup_key_pickles_as_its_own_kind() {
        let mut rng = seeded(24);
        let key = BackupKey::generate(&mut rng);
        let pickle_key = PickleKey::generate(&mut rng);
        let pickled = key.pickle(&pickle_key, &mut rng);
        assert!(same_key(&BackupKey::from_pickle(&pickled, &pickle_key).unwrap(), &key));
        assert_eq!(
            BackupKey::from_pickle(&pickled, &PickleKey::from_bytes([0; 32])).unwrap_err(),
            Error::PickleDecryption
        );
        // An account key's pickle (also 32 bytes inside) is not a backup key, nor the reverse.
        let account = AccountKey::generate(&mut rng).pickle(&pickle_key, &mut rng);
        assert_eq!(BackupKey::from_pickle(&account, &pickle_key).unwrap_err(), Error::MalformedPickle);
        assert_eq!(AccountKey::from_pickle(&pickled, &pickle_key).unwrap_err(), Error::MalformedPickle);
        assert_eq!(format!("{key:?}"), "BackupKey([redacted])");
        assert!(same_key(&BackupKey::from_bytes(*key.to_bytes()), &key));
    }
}
