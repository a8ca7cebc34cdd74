//! TURN REST credentials, the format coturn's `use-auth-secret` / `static-auth-secret` checks.
//!
//! The KitsuLAN server and the TURN relay (ours or coturn) share one secret and nothing else: the
//! server hands a signed-in account a short-lived pair
//!
//! ```text
//! username = "<expiry unix seconds>:<account id>"
//! password = base64(HMAC-SHA1(secret, username))
//! ```
//!
//! and the relay recomputes the password from the username, so it needs no database and no call
//! back to the server. The pair stops working at the expiry written into the username.
//!
//! # Security
//! - The secret never leaves the server and the relay; it is zeroized on drop and its `Debug` is
//!   redacted. The password is a bearer credential until it expires, so its `Debug` is redacted
//!   too.
//! - Passwords are compared in constant time (`hmac`'s `verify_slice`).
//! - HMAC-SHA1 is what coturn and browsers' TURN implementations agree on; SHA-1's collision
//!   weakness does not apply to HMAC.
//! - Credentials cannot be revoked before their expiry (nothing is stored), which is why the
//!   lifetime is bounded by [`MAX_LIFETIME`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit as _, Mac as _};
use zeroize::{Zeroize, ZeroizeOnDrop};

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// The shortest secret we accept, in bytes. coturn accepts anything; we refuse guessable ones.
pub const MIN_SECRET_LEN: usize = 16;

/// The longest credential lifetime we issue. Credentials cannot be revoked, so a leaked one must
/// die on its own.
pub const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The default lifetime: long enough to set up a call (and the ICE restarts early in it), short
/// enough that a leaked pair soon cannot start allocations. A running call does not need its
/// credentials to stay valid: the embedded relay (like coturn) keeps serving the Refresh,
/// CreatePermission and ChannelBind requests of an allocation made with them, and clients fetch
/// fresh ones before these expire for connections made later.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The longest account id we put in a username (STUN usernames must stay under 513 bytes).
pub const MAX_ACCOUNT_ID_LEN: usize = 128;

/// The secret shared between the KitsuLAN server and the TURN relay.
///
/// It is a string because coturn's `static-auth-secret=` takes one; the HMAC key is its UTF-8
/// bytes, exactly as coturn uses it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TurnSecret(String);

impl TurnSecret {
    /// Wraps a configured secret (e.g. `KITSULAN_TURN_SECRET`).
    ///
    /// # Errors
    /// [`SecretError::TooShort`] when it has fewer than [`MIN_SECRET_LEN`] bytes;
    /// [`SecretError::Unprintable`] when it has whitespace or control characters, which would not
    /// survive a `turnserver.conf` line.
    pub fn new(secret: impl Into<String>) -> Result<Self, SecretError> {
        let secret = Self(secret.into());
        if secret.0.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort { min: MIN_SECRET_LEN });
        }
        if secret.0.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SecretError::Unprintable);
        }
        Ok(secret)
    }

    /// A fresh random secret: 32 bytes from the OS, as unpadded base64url (43 characters), safe to
    /// paste into `turnserver.conf`.
    ///
    /// # Errors
    /// [`SecretError::Random`] when the OS random source fails.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| SecretError::Random)?;
        let secret = Self(URL_SAFE_NO_PAD.encode(bytes));
        bytes.zeroize();
        Ok(secret)
    }

    /// The secret itself, for writing coturn's `static-auth-secret=` line. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `base64(HMAC-SHA1(secret, username))`: the password for `username`.
    pub(crate) fn password_for(&self, username: &str) -> Result<String, KeyError> {
        Ok(STANDARD.encode(self.mac(username)?.finalize().into_bytes()))
    }

    /// HMAC-SHA1 keyed with the secret, fed `username`.
    fn mac(&self, username: &str) -> Result<HmacSha1, KeyError> {
        // HMAC takes keys of any length, so this never fails; the API is fallible only because
        // `KeyInit` is shared with fixed-key MACs, and we would rather fail closed than panic.
        let mut mac = HmacSha1::new_from_slice(self.0.as_bytes()).map_err(|_| KeyError)?;
        mac.update(username.as_bytes());
        Ok(mac)
    }
}

impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TurnSecret(<redacted>)")
    }
}

/// What the server hands a client for one call setup: a username/password pair for every TURN
/// URL in `urls`, valid until `expires_at`.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnCredentials {
    /// `"<expiry unix seconds>:<account id>"`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub password: String,
    /// How long the pair is valid from when it was issued.
    pub ttl: Duration,
    /// When the pair stops working (whole seconds; the same instant as in `username`).
    pub expires_at: SystemTime,
    /// The TURN/STUN URLs the client should use (`turn:host:3478?transport=udp`, `stun:…`).
    pub urls: Vec<String>,
}

impl TurnCredentials {
    /// Issues credentials for `account_id`, valid for `lifetime` from now.
    ///
    /// # Errors
    /// See [`TurnCredentials::generate_at`].
    pub fn generate(
        secret: &TurnSecret,
        account_id: &str,
        lifetime: Duration,
        urls: &[String],
    ) -> Result<Self, IssueError> {
        Self::generate_at(secret, account_id, lifetime, urls, SystemTime::now())
    }

    /// Issues credentials for `account_id`, valid for `lifetime` from `now` (tests pass a clock).
    ///
    /// The expiry is `now + lifetime` rounded down to whole seconds.
    ///
    /// # Errors
    /// [`IssueError::InvalidAccountId`] when the id is empty, longer than [`MAX_ACCOUNT_ID_LEN`],
    /// or not printable ASCII without `:`; [`IssueError::InvalidLifetime`] when `lifetime` is
    /// under one second or over [`MAX_LIFETIME`]; [`IssueError::ClockBeforeEpoch`] when `now` is
    /// before 1970.
    pub fn generate_at(
        secret: &TurnSecret,
        account_id: &str,
        lifetime: Duration,
        urls: &[String],
        now: SystemTime,
    ) -> Result<Self, IssueError> {
        if !valid_account_id(account_id) {
            return Err(IssueError::InvalidAccountId);
        }
        if lifetime < Duration::from_secs(1) || lifetime > MAX_LIFETIME {
            return Err(IssueError::InvalidLifetime { max: MAX_LIFETIME });
        }
        let now = now.duration_since(UNIX_EPOCH).map_err(|_| IssueError::ClockBeforeEpoch)?;
        let expiry = (now + lifetime).as_secs();
        let username = format!("{expiry}:{account_id}");
        let password = secret.password_for(&username).map_err(|_| IssueError::Key)?;
        Ok(Self {
            username,
            password,
            ttl: lifetime,
            expires_at: UNIX_EPOCH + Duration::from_secs(expiry),
            urls: urls.to_vec(),
        })
    }

    /// The expiry as unix seconds (what goes over the wire to clients).
    pub fn expires_at_unix(&self) -> u64 {
        self.expires_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}

impl fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ttl", &self.ttl)
            .field("expires_at", &self.expires_at)
            .field("urls", &self.urls)
            .finish()
    }
}

/// A username/password pair that [`verify`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The account id from the username.
    pub account_id: String,
    /// When the credentials expire.
    pub expires_at: SystemTime,
}

/// Checks a username/password pair against `secret` and the current time.
///
/// # Errors
/// See [`verify_at`].
pub fn verify(secret: &TurnSecret, username: &str, password: &str) -> Result<VerifiedUser, VerifyError> {
    verify_at(secret, username, password, SystemTime::now())
}

/// Checks a username/password pair against `secret`, as of `now` (tests pass a clock).
///
/// The password is checked before the expiry, so [`VerifyError::Expired`] means the pair was
/// genuine but is too old.
///
/// # Errors
/// [`VerifyError::MalformedUsername`] when the username is not `<digits>:<account id>`;
/// [`VerifyError::BadPassword`] when the password is not the HMAC of the username under
/// `secret`; [`VerifyError::Expired`] when `now` is at or after the expiry.
pub fn verify_at(
    secret: &TurnSecret,
    username: &str,
    password: &str,
    now: SystemTime,
) -> Result<VerifiedUser, VerifyError> {
    let parsed = ParsedUsername::parse(username)?;
    let tag = STANDARD.decode(password).map_err(|_| VerifyError::BadPassword)?;
    let mac = secret.mac(username).map_err(|_| VerifyError::BadPassword)?;
    mac.verify_slice(&tag).map_err(|_| VerifyError::BadPassword)?;
    parsed.check_expiry(now)?;
    Ok(VerifiedUser { account_id: parsed.account_id.to_owned(), expires_at: parsed.expires_at() })
}

/// A username split into its expiry and account id, not yet authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParsedUsername<'a> {
    pub(crate) expiry_unix: u64,
    pub(crate) account_id: &'a str,
}

impl<'a> ParsedUsername<'a> {
    /// Splits `"<expiry>:<account id>"`; the expiry is plain decimal digits (no sign, no spaces).
    pub(crate) fn parse(username: &'a str) -> Result<Self, VerifyError> {
        let (expiry, account_id) = username.split_once(':').ok_or(VerifyError::MalformedUsername)?;
        if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VerifyError::MalformedUsername);
        }
        let expiry_unix = expiry.parse().map_err(|_| VerifyError::MalformedUsername)?;
        if !valid_account_id(account_id) {
            return Err(VerifyError::MalformedUsername);
        }
        Ok(Self { expiry_unix, account_id })
    }

    /// Valid strictly before the expiry second.
    pub(crate) fn check_expiry(&self, now: SystemTime) -> Result<(), VerifyError> {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now >= self.expiry_unix { Err(VerifyError::Expired) } else { Ok(()) }
    }

    fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expiry_unix)
    }
}

/// Account ids are UUIDs in KitsuLAN; we accept any short printable ASCII without the `:` that
/// separates the expiry, so the username means the same thing to us and to coturn.
fn valid_account_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ACCOUNT_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The configured secret is shorter than `min` bytes.
    #[error("the TURN secret must be at least {min} bytes long")]
    TooShort {
        /// [`MIN_SECRET_LEN`].
        min: usize,
    },
    /// The configured secret contains whitespace or control characters.
    #[error("the TURN secret must not contain whitespace or control characters")]
    Unprintable,
    /// The OS random source failed while generating a secret.
    #[error("the OS random source failed")]
    Random,
}

/// Why credentials could not be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The account id is empty, too long, or has characters other than printable ASCII (or `:`).
    #[error("the account id cannot be used in a TURN username")]
    InvalidAccountId,
    /// The lifetime is under one second or over `max`.
    #[error("the TURN credential lifetime must be between 1 second and {max:?}")]
    InvalidLifetime {
        /// [`MAX_LIFETIME`].
        max: Duration,
    },
    /// The clock passed in is before 1970.
    #[error("the clock is before the unix epoch")]
    ClockBeforeEpoch,
    /// HMAC-SHA1 refused the secret as a key (it takes keys of any length, so this is not expected).
    #[error("HMAC-SHA1 refused the TURN secret as a key")]
    Key,
}

/// HMAC-SHA1 refused the secret as a key; see [`IssueError::Key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyError;

/// Why a username/password pair was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The username is not `<expiry unix seconds>:<account id>`.
    #[error("malformed TURN username")]
    MalformedUsername,
    /// The password is not base64 of the HMAC of the username under our secret (wrong secret,
    /// tampered username, or a guess).
    #[error("wrong TURN password")]
    BadPassword,
    /// The pair is genuine but its expiry has passed.
    #[error("expired TURN credentials")]
    Expired,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: &str = "kitsulan-test-secret";
    const ACCOUNT: &str = "0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b";

    // Computed independently with Python's standard library:
    //   python3 -c "import hmac,hashlib,base64; u='1700000000:0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b'; \
    //     print(base64.b64encode(hmac.new(b'kitsulan-test-secret', u.encode(), hashlib.sha1).digest()).decode())"
    const VECTOR_USERNAME: &str = "1700000000:0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b";
    const VECTOR_PASSWORD: &str = "ZXLHeG3iARyuAI7FNujXZ/m85rU=";

    fn secret() -> TurnSecret {
        TurnSecret::new(SECRET).unwrap()
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn generates_the_known_vector() {
        let urls = vec!["turn:192.0.2.10:3478?transport=udp".to_owned()];
        let creds = TurnCredentials::generate_at(
            &secret(),
            ACCOUNT,
            Duration::from_secs(3600),
            &urls,
            at(1_699_996_400),
        )
        .unwrap();
        assert_eq!(creds.username, VECTOR_USERNAME);
        assert_eq!(creds.password, VECTOR_PASSWORD);
        assert_eq!(creds.expires_at_unix(), 1_700_000_000);
        assert_eq!(creds.ttl, Duration::from_secs(3600));
        assert_eq!(creds.urls, urls);
    }

    #[test]
    fn sub_second_clocks_round_the_expiry_down() {
        let now = at(1_699_996_400) + Duration::from_millis(999);
        let creds =
            TurnCredentials::generate_at(&secret(), ACCOUNT, Duration::from_secs(3600), &[], now).unwrap();
        assert_eq!(creds.username, VECTOR_USERNAME);
    }

    #[test]
    fn verifies_the_known_vector_until_it_expires() {
        let user = verify_at(&secret(), VECTOR_USERNAME, VECTOR_PASSWORD, at(1_699_999_999)).unwrap();
        assert_eq!(user, VerifiedUser { account_id: ACCOUNT.to_owned(), expires_at: at(1_700_000_000) });
        assert_eq!(
            verify_at(&secret(), VECTOR_USERNAME, VECTOR_PASSWORD, at(1_700_000_000)),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify_at(&secret(), VECTOR_USERNAME, VECTOR_PASSWORD, at(1_800_000_000)),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn generated_credentials_verify_with_the_system_clock() {
        let creds = TurnCredentials::generate(&secret(), ACCOUNT, DEFAULT_LIFETIME, &[]).unwrap();
        assert_eq!(verify(&secret(), &creds.username, &creds.password).unwrap().account_id, ACCOUNT);
    }

    #[test]
    fn refuses_a_different_secret() {
        let other = TurnSecret::new("another-secret-of-16+").unwrap();
        assert_eq!(
            verify_at(&other, VECTOR_USERNAME, VECTOR_PASSWORD, at(1_600_000_000)),
            Err(VerifyError::BadPassword)
        );
    }

    #[test]
    fn refuses_wrong_and_garbled_passwords() {
        let now = at(1_600_000_000);
        for password in [
            "",
            "not base64!",
            "ZXLHeG3iARyuAI7FNujXZ/m85rQ=", // one bit off
            "ZXLHeG3iARyuAI7FNujXZ/m85g==", // truncated tag
            "ZXLHeG3iARyuAI7FNujXZ/m85rU",  // missing padding
        ] {
            assert_eq!(
                verify_at(&secret(), VECTOR_USERNAME, password, now),
                Err(VerifyError::BadPassword),
                "{password:?}"
            );
        }
    }

    #[test]
    fn a_changed_username_breaks_the_password() {
        let now = at(1_600_000_000);
        for username in [
            "1700000001:0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b",
            "1700000000:0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6c",
        ] {
            assert_eq!(verify_at(&secret(), username, VECTOR_PASSWORD, now), Err(VerifyError::BadPassword));
        }
    }

    #[test]
    fn refuses_malformed_usernames() {
        let now = at(1_600_000_000);
        for username in [
            "",
            ":",
            "1700000000",
            "1700000000:",
            ":alice",
            "alice:1700000000",
            "+1700000000:alice",
            "-1700000000:alice",
            " 1700000000:alice",
            "17000000x0:alice",
            "99999999999999999999999:alice",
            "18446744073709551616:alice", // u64::MAX + 1
            "1700000000:alice:bob",
            "1700000000:al ice",
            "1700000000:alice\n",
            "1700000000:ålice",
        ] {
            let password = secret().password_for(username).unwrap();
            assert_eq!(
                verify_at(&secret(), username, &password, now),
                Err(VerifyError::MalformedUsername),
                "{username:?}"
            );
        }
        let long = format!("1700000000:{}", "a".repeat(MAX_ACCOUNT_ID_LEN + 1));
        assert_eq!(
            verify_at(&secret(), &long, &secret().password_for(&long).unwrap(), now),
            Err(VerifyError::MalformedUsername)
        );
    }

    #[test]
    fn refuses_to_issue_for_unusable_account_ids_and_lifetimes() {
        let now = at(1_600_000_000);
        for id in ["", "a:b", "a b", "ålice", &"a".repeat(MAX_ACCOUNT_ID_LEN + 1)] {
            assert_eq!(
                TurnCredentials::generate_at(&secret(), id, DEFAULT_LIFETIME, &[], now),
                Err(IssueError::InvalidAccountId),
                "{id:?}"
            );
        }
        for lifetime in [Duration::ZERO, Duration::from_millis(999), MAX_LIFETIME + Duration::from_secs(1)] {
            assert!(matches!(
                TurnCredentials::generate_at(&secret(), ACCOUNT, lifetime, &[], now),
                Err(IssueError::InvalidLifetime { .. })
            ));
        }
        assert!(TurnCredentials::generate_at(&secret(), ACCOUNT, MAX_LIFETIME, &[], now).is_ok());
        assert_eq!(
            TurnCredentials::generate_at(
                &secret(),
                ACCOUNT,
                DEFAULT_LIFETIME,
                &[],
                UNIX_EPOCH - Duration::from_secs(1)
            ),
            Err(IssueError::ClockBeforeEpoch)
        );
    }

    #[test]
    fn secrets_are_checked_generated_and_redacted() {
        assert_eq!(TurnSecret::new("short").unwrap_err(), SecretError::TooShort { min: MIN_SECRET_LEN });
        assert_eq!(TurnSecret::new("has a space in it ok").unwrap_err(), SecretError::Unprintable);
        let a = TurnSecret::generate().unwrap();
        let b = TurnSecret::generate().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
        assert!(TurnSecret::new(a.expose()).is_ok());
        assert_eq!(format!("{a:?}"), "TurnSecret(<redacted>)");
        assert!(!format!("{:?}", secret()).contains(SECRET));
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let creds = TurnCredentials::generate_at(
            &secret(),
            ACCOUNT,
            Duration::from_secs(3600),
            &[],
            at(1_699_996_400),
        )
        .unwrap();
        let debug = format!("{creds:?}");
        assert!(debug.contains(VECTOR_USERNAME));
        assert!(!debug.contains(VECTOR_PASSWORD));
    }
}
