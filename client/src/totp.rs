//! [`Authenticator`]: the phone app of the tests. It holds the secret that
//! `AccountService.BeginTotpEnrollment` returned and computes RFC 6238 codes (SHA-1, 6 digits,
//! 30-second steps, as docs/api.md says) with `totp-rs`, remembering which step it last handed
//! out so a test can ask for a code the server has not seen yet.
//!
//! The unit tests check the generator against every RFC 6238 Appendix B vector, so a failing
//! TOTP test points at the server, not at the test's arithmetic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// The step length KitsuLAN uses (docs/api.md "TOTP").
pub const STEP_SECONDS: u64 = 30;

/// An authenticator app holding one account's TOTP secret.
pub struct Authenticator {
    totp: Totp,
    /// The step of the newest code handed out, so the next fresh code is from a later one.
    last_step: Option<u64>,
}

impl Authenticator {
    /// Turns TOTP on for `client`'s account as a person does (BeginTotpEnrollment with the
    /// password, then ConfirmTotpEnrollment with a fresh code) and returns the app holding the
    /// secret, and the secret in base32 as the server handed it out.
    pub async fn enrol(client: &crate::Client, password: &str) -> anyhow::Result<(Self, String)> {
        use kitsulan_proto::v1::{BeginTotpEnrollmentRequest, ConfirmTotpEnrollmentRequest};
        let begin = client
            .account()
            .begin_totp_enrollment(BeginTotpEnrollmentRequest { password: password.into() })
            .await?
            .into_inner();
        let mut app = Self::from_base32(&begin.secret_base32)?;
        let code = app.fresh_code().await;
        let account = client
            .account()
            .confirm_totp_enrollment(ConfirmTotpEnrollmentRequest { code })
            .await?
            .into_inner()
            .account
            .context("ConfirmTotpEnrollment answered without the account")?;
        anyhow::ensure!(account.totp_enabled, "TOTP is still off after confirming");
        Ok((app, begin.secret_base32))
    }

    /// From the base32 secret (RFC 4648, padding optional) of `BeginTotpEnrollmentResponse`.
    pub fn from_base32(secret: &str) -> anyhow::Result<Self> {
        let secret = Secret::try_from_base32(secret.trim().trim_end_matches('='))
            .map_err(|e| anyhow::anyhow!("the TOTP secret {secret:?} is not base32: {e}"))?;
        Ok(Self { totp: build(Algorithm::SHA1, 6, secret)?, last_step: None })
    }

    /// The 6-digit code for the step that holds `unix_seconds`.
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.totp.generate(unix_seconds).to_string()
    }

    /// The code for step number `step` (a step is `unix_seconds / 30`).
    pub fn code_for_step(&self, step: u64) -> String {
        self.code_at(step * STEP_SECONDS)
    }

    /// The current step and its code (does not count as handed out).
    pub fn now(&self) -> (u64, String) {
        let step = current_step();
        (step, self.code_for_step(step))
    }

    /// A code from a step later than any code this authenticator handed out before: the
    /// current one, after waiting for the next step boundary if the current step was used
    /// already (at most 30 s). This is what a person does when the app shows a used code.
    pub async fn fresh_code(&mut self) -> String {
        if let Some(last) = self.last_step {
            let next_start = (last + 1) * STEP_SECONDS;
            let now = unix_now();
            if now.as_secs() < next_start {
                // A little past the boundary, so our clock and the server's agree on the step.
                let wait = Duration::from_secs(next_start) - now + Duration::from_millis(200);
                tokio::time::sleep(wait).await;
            }
        }
        let (step, code) = self.now();
        self.last_step = Some(step);
        code
    }

    /// The steps whose codes the server accepts right now (the current one and one either side).
    pub fn accepted_steps(&self) -> [u64; 3] {
        let step = current_step();
        [step.saturating_sub(1), step, step + 1]
    }

    /// A 6-digit code that is *not* valid now (differs from the codes of the accepted steps and
    /// of the one after them, so it stays wrong for the next step too): a guess that must fail.
    /// `n` picks a different wrong code each time.
    pub fn wrong_code(&self, n: u32) -> String {
        let step = current_step();
        let valid: Vec<String> = (step.saturating_sub(1)..=step + 2).map(|s| self.code_for_step(s)).collect();
        (0..)
            .map(|i: u32| format!("{:06}", (u64::from(n) * 7919 + u64::from(i) * 104_729) % 1_000_000))
            .find(|code| !valid.contains(code))
            .unwrap_or_else(|| "000000".to_owned())
    }
}

fn build(algorithm: Algorithm, digits: u8, secret: Secret) -> anyhow::Result<Totp> {
    Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_secret(secret)
        .with_step_duration(STEP_SECONDS)
        .with_skew(1)
        .build()
        .context("cannot build a TOTP generator")
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The current RFC 6238 step number.
pub fn current_step() -> u64 {
    unix_now().as_secs() / STEP_SECONDS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// RFC 6238 Appendix B: time, then the 8-digit codes for SHA-1, SHA-256 and SHA-512.
    const VECTORS: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn generator_matches_all_rfc_6238_appendix_b_vectors() {
        // The RFC's seeds: the ASCII digits "1234567890" repeated to the hash's key length.
        let seed = |len: usize| -> Vec<u8> { b"1234567890".iter().copied().cycle().take(len).collect() };
        let generators = [
            ("SHA1", build(Algorithm::SHA1, 8, Secret::from(seed(20))).unwrap()),
            ("SHA256", build(Algorithm::SHA256, 8, Secret::from(seed(32))).unwrap()),
            ("SHA512", build(Algorithm::SHA512, 8, Secret::from(seed(64))).unwrap()),
        ];
        let mut checked = 0;
        for (time, sha1, sha256, sha512) in VECTORS {
            for ((name, totp), want) in generators.iter().zip([sha1, sha256, sha512]) {
                assert_eq!(totp.generate(time).to_string(), want, "{name} at T={time}");
                checked += 1;
            }
        }
        assert_eq!(checked, 18);
    }

    #[test]
    fn six_digit_sha1_codes_are_the_low_digits_of_the_rfc_codes() {
        // The same SHA-1 seed as base32, through the path the tests use.
        let authenticator = Authenticator::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(authenticator.code_at(59), "287082");
        assert_eq!(authenticator.code_at(1_111_111_109), "081804");
        assert_eq!(authenticator.code_for_step(1_111_111_109 / 30), "081804");
    }

    #[test]
    fn wrong_codes_are_never_the_valid_ones() {
        let authenticator = Authenticator::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let valid: Vec<String> =
            authenticator.accepted_steps().iter().map(|&s| authenticator.code_for_step(s)).collect();
        let guesses: Vec<String> = (0..50).map(|n| authenticator.wrong_code(n)).collect();
        for guess in &guesses {
            assert_eq!(guess.len(), 6);
            assert!(!valid.contains(guess), "{guess} is valid");
        }
        let distinct: std::collections::HashSet<_> = guesses.iter().collect();
        assert!(distinct.len() > 40, "{distinct:?}");
    }

    #[test]
    fn a_bad_secret_is_refused() {
        assert!(Authenticator::from_base32("not base32!").is_err());
    }
}
