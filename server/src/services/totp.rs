//! TOTP (RFC 6238) as second factor: SHA-1, 6 digits, 30-second steps, one step of drift either
//! way. Which steps were already used is kept in the store, so a code works only once.

use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::Error;

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
    fn enrolment_uri_names_issuer_and_account() {
        let (base32, uri) = enrolment(&new_secret(), "alice", "KitsuLAN").unwrap();
        assert_eq!(base32.len(), 32);
        assert!(uri.starts_with("otpauth://totp/KitsuLAN:alice?"), "{uri}");
    }
}
