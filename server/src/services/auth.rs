//! Signing up, signing in (password, emailed code, admin code; TOTP as second factor),
//! refreshing sessions and recognising callers by their access token.
//!
//! # Security
//! - An unknown username costs one Argon2id verification, like a wrong password, and both
//!   answer `INVALID_CREDENTIALS`; failures are limited per username whether or not it exists.
//! - Failures count per username *and client address* (so a stranger's wrong guesses elsewhere
//!   do not lock the owner out) and per username from all addresses (the ceiling for guessing
//!   spread over many addresses). TOTP and one-time codes are short, so their failures also
//!   count per username alone, with the per-address budget (only someone who knows the
//!   password, or guesses codes, is held up by that). Checks behind a session (changing the password or email,
//!   TOTP) count against the same budgets as signing in.
//! - Limits are checked before any secret is compared, and one account's checks run one at a
//!   time on a node ([`OneAtATime`]), so guessing is bounded by the limits alone, even in
//!   parallel.
//! - Asking for an emailed code answers the same whether or not the address is registered,
//!   and sends in the background so timing does not tell either.
//! - Refresh tokens are single use; a second use signs the device out (stolen token).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::names::{DeviceName, DisplayName, Email, Password, Username};
use super::rate_limits::{Limits, OneAtATime, RateLimiter, Turn, address_key, is_private_network};
use super::tokens::{self, hash_token};
use super::{Error, SecretHasher, totp};
use crate::ids::{AccountId, CodeId, DeviceId};
use crate::mail::Mailer;
use crate::store::{
    AccountRecord, CodePurpose, NewAccount, NewCode, NewDevice, RefreshOutcome, Store, now_ms,
};

/// Email codes: lifetime.
pub const EMAIL_CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Admin sign-in codes: lifetime.
pub const ADMIN_CODE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Tries per one-time code.
pub const CODE_MAX_ATTEMPTS: i32 = 5;
/// After signing in with a one-time code: how long a new password may be set without the old.
pub const PASSWORD_RESET_WINDOW: Duration = Duration::from_secs(15 * 60);

/// How sessions and sign-in behave (from the settings).
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Whether anyone may sign up.
    pub sign_up_open: bool,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Rate limits.
    pub limits: Limits,
    /// Seals TOTP secrets at rest (`totp-key` in the data dir).
    pub totp_key: Arc<totp::TotpKey>,
    /// Threads and queue of the password-hashing pool.
    pub hash_pool: super::HashPoolSize,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            sign_up_open: true,
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            limits: Limits::default(),
            // The admin CLI never reads or writes TOTP secrets (it only clears them).
            totp_key: Arc::new(totp::TotpKey::ephemeral()),
            hash_pool: super::HashPoolSize::default_for_this_machine(),
        }
    }
}

/// Who is calling: the device behind a valid access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The account.
    pub account_id: AccountId,
    /// The device.
    pub device_id: DeviceId,
    /// Until when this device may set a new password without the old one.
    pub password_reset_until_ms: i64,
}

/// Where a request comes from, for rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// A signed-in device's tokens, handed to it once.
pub struct NewSession {
    /// The account.
    pub account_id: AccountId,
    /// The new device.
    pub device_id: DeviceId,
    /// Access token (`kat_…`).
    pub access_token: String,
    /// When it expires (ms).
    pub access_expires_at_ms: i64,
    /// Refresh token (`krt_…`).
    pub refresh_token: String,
    /// When it expires (ms).
    pub refresh_expires_at_ms: i64,
    /// Until when a new password may be set without the old one (0: not).
    pub password_reset_until_ms: i64,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

/// What a sign-up asks for.
pub struct SignUp<'a> {
    /// Username as typed.
    pub username: &'a str,
    /// Password as typed.
    pub password: &'a str,
    /// Display name as typed (empty: the username).
    pub display_name: &'a str,
    /// Email as typed (empty: none).
    pub email: &'a str,
    /// Device name as typed.
    pub device_name: &'a str,
}

/// Which ways of signing in the server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthMethods {
    /// Always true.
    pub password: bool,
    /// Emailed codes (needs SMTP).
    pub email_code: bool,
    /// Whether anyone may sign up.
    pub sign_up_open: bool,
}

/// What sign-in flows share.
pub(super) struct AuthCore {
    pub store: Arc<dyn Store>,
    pub hasher: SecretHasher,
    pub limiter: RateLimiter,
    /// One check of an account's secrets at a time.
    pub guesses: OneAtATime,
    pub mailer: Option<Arc<dyn Mailer>>,
    pub policy: AuthPolicy,
    pub server_name: String,
    /// Tells connected devices when an account's devices change.
    pub delivery: super::Delivery,
}

/// Sign-up, sign-in and sessions.
#[derive(Clone)]
pub struct Auth {
    pub(super) core: Arc<AuthCore>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The failure budgets a guess at one account's secrets from one address spends.
pub(super) struct Guesses<'a> {
    limits: &'a Limits,
    limiter: &'a RateLimiter,
    per_address: String,
    per_account: String,
    codes: String,
    _turn: Turn,
}

impl Guesses<'_> {
    /// Fails with `RATE_LIMITED` once the budget of this address or of the account is spent;
    /// nothing is compared then.
    pub(super) async fn check(&self) -> Result<(), Error> {
        self.limiter.check(&self.limits.sign_in_failures, &self.per_address).await?;
        self.limiter.check(&self.limits.account_failures, &self.per_account).await
    }

    /// Counts a wrong password.
    pub(super) async fn failed(&self) -> Result<(), Error> {
        self.limiter.record_failure(&self.limits.sign_in_failures, &self.per_address).await?;
        self.limiter.record_failure(&self.limits.account_failures, &self.per_account).await
    }

    /// Before a TOTP or one-time code is compared, after [`Guesses::check`] (every caller
    /// has made it): codes are short (six digits), so their failures are also limited per
    /// account alone, from every address together. Only someone who knows the password (TOTP)
    /// or guesses codes is held up by this, never a password sign-in.
    pub(super) async fn check_code(&self) -> Result<(), Error> {
        self.limiter.check(&self.limits.sign_in_failures, &self.codes).await
    }

    /// Counts a wrong TOTP or one-time code.
    pub(super) async fn code_failed(&self) -> Result<(), Error> {
        self.failed().await?;
        self.limiter.record_failure(&self.limits.sign_in_failures, &self.codes).await
    }
}

impl AuthCore {
    /// Waits for this account's turn to have a secret checked, and names the budgets a wrong
    /// guess spends (per username and address, and per username).
    pub(super) async fn guesses(&self, username: &str, client: ClientAddr) -> Guesses<'_> {
        let turn = self.guesses.turn(username).await;
        Guesses {
            limits: &self.policy.limits,
            limiter: &self.limiter,
            per_address: format!("sign_in_failures:{username}:{}", address_key(client.0)),
            per_account: format!("account_failures:{username}"),
            codes: format!("code_failures:{username}"),
            _turn: turn,
        }
    }

    /// Confirms, behind a session, that the person is the owner and not someone holding a
    /// copied token: the current password and, when enrolled, a TOTP code — the factors of a
    /// sign-in, from the same failure budgets.
    pub(super) async fn confirm_owner(
        &self,
        account: &AccountRecord,
        client: ClientAddr,
        password: &str,
        totp_code: &str,
    ) -> Result<(), Error> {
        let guesses = self.guesses(&account.username, client).await;
        guesses.check().await?;
        if password.is_empty() || !self.hasher.verify(password, &account.password_hash).await? {
            if !password.is_empty() {
                guesses.failed().await?;
            }
            return Err(Error::PasswordRequired);
        }
        if let Some(secret) = &account.totp_secret {
            if totp_code.trim().is_empty() {
                return Err(Error::TotpRequired);
            }
            self.check_totp(account, secret, totp_code, &guesses).await?;
        }
        Ok(())
    }

    /// Creates the device row of a new sign-in and returns its tokens.
    fn new_device(
        &self,
        account: AccountId,
        name: &DeviceName,
        reset_window: bool,
    ) -> (NewDevice, NewSession) {
        let now = now_ms();
        let issued = tokens::issue(now, ms(self.policy.access_ttl), ms(self.policy.refresh_ttl));
        let password_reset_until_ms = if reset_window { now + ms(PASSWORD_RESET_WINDOW) } else { 0 };
        let device = NewDevice {
            id: DeviceId::generate(),
            account_id: account,
            name: name.as_str().to_owned(),
            created_at_ms: now,
            tokens: issued.stored.clone(),
            password_reset_until_ms,
        };
        let session = NewSession {
            account_id: account,
            device_id: device.id,
            access_token: issued.access,
            access_expires_at_ms: issued.stored.access_expires_at_ms,
            refresh_token: issued.refresh,
            refresh_expires_at_ms: issued.stored.refresh_expires_at_ms,
            password_reset_until_ms,
        };
        (device, session)
    }

    /// The checks after the first factor: the account is enabled and, when it has TOTP, the
    /// code is there and right (and marked used).
    pub(super) async fn may_sign_in(
        &self,
        account: &AccountRecord,
        totp_code: &str,
        guesses: &Guesses<'_>,
    ) -> Result<(), Error> {
        if account.disabled {
            return Err(Error::AccountDisabled);
        }
        if let Some(secret) = &account.totp_secret {
            if totp_code.trim().is_empty() {
                return Err(Error::TotpRequired);
            }
            self.check_totp(account, secret, totp_code, guesses).await?;
        }
        Ok(())
    }

    /// The TOTP step a code from this account's authenticator is for, checked and marked used.
    /// Counts a failure against the account when the code is wrong or reused.
    pub(super) async fn check_totp(
        &self,
        account: &AccountRecord,
        secret: &[u8],
        code: &str,
        guesses: &Guesses<'_>,
    ) -> Result<(), Error> {
        guesses.check_code().await?;
        // `secret` as stored: sealed (or plaintext from before sealing; see `totp`).
        let secret = self.policy.totp_key.open(account.id, secret)?;
        let step = totp::matching_step(&secret, code, totp::unix_seconds())?;
        match step {
            Some(step) if self.store.accept_totp_step(account.id, step).await? => Ok(()),
            _ => {
                guesses.code_failed().await?;
                Err(Error::TotpInvalid)
            }
        }
    }

    /// A fresh one-time code for `account`, stored hashed. Returns the code.
    pub(super) async fn issue_code(
        &self,
        account: AccountId,
        purpose: CodePurpose,
        email: Option<&str>,
        code: String,
        ttl: Duration,
    ) -> Result<(String, i64), Error> {
        let now = now_ms();
        let expires_at_ms = now + ms(ttl);
        let code_hash = self.hasher.hash(&normalise_code(&code)).await?;
        self.store
            .put_code(&NewCode {
                id: CodeId::generate(),
                account_id: account,
                purpose,
                email: email.map(str::to_owned),
                code_hash,
                created_at_ms: now,
                expires_at_ms,
            })
            .await?;
        Ok((code, expires_at_ms))
    }

    /// Checks a one-time code of `account` without using it up. Each call is one try; after
    /// [`CODE_MAX_ATTEMPTS`] tries, or once expired, the code is gone.
    pub(super) async fn check_code(
        &self,
        account: &AccountRecord,
        purpose: CodePurpose,
        code: &str,
        guesses: &Guesses<'_>,
    ) -> Result<CodeId, Error> {
        guesses.check_code().await?;
        let Some(stored) = self.store.count_attempt(account.id, purpose, CODE_MAX_ATTEMPTS, now_ms()).await?
        else {
            // Spend the same time as a real check, so "no code" and "wrong code" look alike.
            self.hasher.verify_decoy(code).await?;
            return Err(Error::OneTimeCodeInvalid);
        };
        let fits = match purpose {
            CodePurpose::EmailSignIn | CodePurpose::EmailVerify => {
                stored.email.is_some() && stored.email == account.email
            }
            CodePurpose::AdminSignIn => true,
        };
        if !self.hasher.verify(&normalise_code(code), &stored.code_hash).await? || !fits {
            guesses.code_failed().await?;
            return Err(Error::OneTimeCodeInvalid);
        }
        Ok(stored.id)
    }

    /// Issues a fresh 6-digit code for `purpose` and emails it to `email` (needs SMTP).
    /// `what` completes "Your code to … on <server>".
    pub(super) async fn mail_code(
        &self,
        account: AccountId,
        purpose: CodePurpose,
        email: &Email,
        what: &str,
    ) -> Result<(), Error> {
        let mailer = self.mailer.as_ref().ok_or(Error::EmailUnavailable)?;
        let (code, _) =
            self.issue_code(account, purpose, Some(email.as_str()), six_digit_code(), EMAIL_CODE_TTL).await?;
        let minutes = EMAIL_CODE_TTL.as_secs() / 60;
        let subject = format!("{code} is your KitsuLAN code");
        let body = format!(
            "Your code to {what} on {server}:\n\n{code}\n\nIt is valid for {minutes} minutes and works once.\n\
             If you did not ask for it, ignore this message; nobody can use it without this mailbox.\n",
            server = self.server_name,
        );
        mailer.send(email.as_str(), &subject, &body).await.map_err(|e| {
            tracing::warn!(error = %e, "could not send a code by email");
            Error::EmailSendFailed
        })
    }
}

/// Upper-cases and strips separators, so `k7qx-m2pd…` and `K7QXM2PD…` are the same code.
pub(super) fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// A uniformly random 6-digit code.
pub(super) fn six_digit_code() -> String {
    loop {
        let mut bytes = [0u8; 4];
        tokens::fill_random(&mut bytes);
        let n = u32::from_le_bytes(bytes);
        // Reject the top sliver so every code is equally likely.
        if n < u32::MAX - (u32::MAX % 1_000_000) {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// An admin sign-in code: 16 characters of Crockford base32 (80 bits), as `XXXX-XXXX-XXXX-XXXX`.
pub(super) fn admin_code() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bytes = [0u8; 16];
    tokens::fill_random(&mut bytes);
    let chars: Vec<char> = bytes.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

impl Auth {
    /// Which ways of signing in are offered.
    pub fn methods(&self) -> AuthMethods {
        AuthMethods {
            password: true,
            email_code: self.core.mailer.is_some(),
            sign_up_open: self.core.policy.sign_up_open,
        }
    }

    /// Creates an account and signs its first device in.
    pub async fn sign_up(&self, client: ClientAddr, request: SignUp<'_>) -> Result<NewSession, Error> {
        let core = &self.core;
        // Validate everything first: bad input changes nothing and costs no rate budget.
        let username = Username::parse(request.username)?;
        let password = Password::parse(request.password, "password", Some(&username))?;
        let display_name = match request.display_name.trim() {
            "" => DisplayName::parse(username.as_str())?,
            name => DisplayName::parse(name)?,
        };
        let device_name = DeviceName::parse(request.device_name)?;
        let email = match request.email.trim() {
            "" => None,
            raw => Some(Email::parse(raw)?),
        };
        if !core.policy.sign_up_open {
            return Err(Error::SignUpClosed);
        }
        if email.is_some() && core.mailer.is_none() {
            return Err(Error::EmailUnavailable);
        }
        let limits = &core.policy.limits;
        let limit = if is_private_network(client.0) { &limits.sign_up_private } else { &limits.sign_up };
        core.limiter.take(limit, &format!("sign_up:{}", address_key(client.0))).await?;
        let account = NewAccount {
            id: AccountId::generate(),
            username: username.as_str().to_owned(),
            display_name: display_name.as_str().to_owned(),
            email: email.as_ref().map(|e| e.as_str().to_owned()),
            password_hash: core.hasher.hash(password.expose()).await?,
            created_at_ms: now_ms(),
        };
        let (device, session) = core.new_device(account.id, &device_name, false);
        core.store.create_account(&account, &device).await?;
        tracing::info!(account = %account.id, device = %device.id, "account created");
        if let Some(email) = &email {
            // The account exists now; a failed email only means the code must be asked again.
            if let Err(e) =
                core.mail_code(account.id, CodePurpose::EmailVerify, email, "verify your email address").await
            {
                tracing::warn!(account = %account.id, error = %e, "verification code not sent at sign-up");
            }
        }
        Ok(session)
    }

    /// Signs a new device in with username and password (and TOTP when enrolled).
    pub async fn sign_in(
        &self,
        client: ClientAddr,
        username: &str,
        password: &str,
        device_name: &str,
        totp_code: &str,
    ) -> Result<NewSession, Error> {
        let core = &self.core;
        let device_name = DeviceName::parse(device_name)?;
        let limits = &core.policy.limits;
        core.limiter.take(&limits.sign_in, &format!("sign_in:{}", address_key(client.0))).await?;
        let Ok(username) = Username::parse(username) else {
            // No such account can exist; answer exactly as for a wrong password.
            core.hasher.verify_decoy(password).await?;
            return Err(Error::InvalidCredentials);
        };
        let guesses = core.guesses(username.as_str(), client).await;
        guesses.check().await?;
        let account = core.store.account_by_username(username.as_str()).await?;
        let verified = match &account {
            Some(account) => core.hasher.verify(password, &account.password_hash).await?,
            None => core.hasher.verify_decoy(password).await?,
        };
        let Some(account) = account.filter(|_| verified) else {
            guesses.failed().await?;
            return Err(Error::InvalidCredentials);
        };
        core.may_sign_in(&account, totp_code, &guesses).await?;
        let (device, session) = core.new_device(account.id, &device_name, false);
        core.store.create_device(&device).await?;
        core.delivery.devices_changed(account.id).await;
        tracing::info!(account = %account.id, device = %device.id, "signed in with password");
        Ok(session)
    }

    /// Emails a sign-in code to a verified address (answers the same if there is none).
    pub async fn request_sign_in_code(&self, client: ClientAddr, email: &str) -> Result<(), Error> {
        let core = self.core.clone();
        let email = Email::parse(email)?;
        if core.mailer.is_none() {
            return Err(Error::EmailUnavailable);
        }
        let limits = &core.policy.limits;
        core.limiter.take(&limits.code_requests, &format!("code_requests:{}", address_key(client.0))).await?;
        core.limiter.take(&limits.code_requests, &format!("code_requests:{}", email.as_str())).await?;
        // Look up and send in the background: the answer comes at once and says nothing.
        tokio::spawn(async move {
            let sent = async {
                let Some(account) = core.store.account_by_verified_email(email.as_str()).await? else {
                    return Ok(());
                };
                if account.disabled {
                    return Ok(());
                }
                core.mail_code(account.id, CodePurpose::EmailSignIn, &email, "sign in").await
            };
            if let Err(e) = sent.await {
                tracing::warn!(error = %e, "sign-in code not sent");
            }
        });
        Ok(())
    }

    /// Signs a new device in with an emailed code (login = email) or an admin code
    /// (login = username), plus TOTP when enrolled.
    pub async fn sign_in_with_code(
        &self,
        client: ClientAddr,
        login: &str,
        code: &str,
        device_name: &str,
        totp_code: &str,
    ) -> Result<NewSession, Error> {
        let core = &self.core;
        let device_name = DeviceName::parse(device_name)?;
        let limits = &core.policy.limits;
        let address = address_key(client.0);
        core.limiter.take(&limits.sign_in, &format!("sign_in:{address}")).await?;
        core.limiter.take(&limits.code_checks, &format!("code_checks:{address}")).await?;
        let (account, purpose) = if login.contains('@') {
            let email = Email::parse(login)?;
            (core.store.account_by_verified_email(email.as_str()).await?, CodePurpose::EmailSignIn)
        } else {
            let username = Username::parse(login)?;
            (core.store.account_by_username(username.as_str()).await?, CodePurpose::AdminSignIn)
        };
        let Some(account) = account else {
            core.hasher.verify_decoy(code).await?;
            return Err(Error::OneTimeCodeInvalid);
        };
        let guesses = core.guesses(&account.username, client).await;
        guesses.check().await?;
        let code_id = core.check_code(&account, purpose, code, &guesses).await?;
        // Checked before the code is used up, so a missing TOTP code costs only a try.
        core.may_sign_in(&account, totp_code, &guesses).await?;
        if !core.store.consume_code(code_id).await? {
            return Err(Error::OneTimeCodeInvalid);
        }
        let (device, session) = core.new_device(account.id, &device_name, true);
        core.store.create_device(&device).await?;
        core.delivery.devices_changed(account.id).await;
        tracing::info!(account = %account.id, device = %device.id, ?purpose, "signed in with a one-time code");
        Ok(session)
    }

    /// Exchanges a refresh token for new tokens. A token that was already exchanged signs its
    /// device out at once, everywhere: someone else has a copy.
    pub async fn refresh(&self, client: ClientAddr, refresh_token: &str) -> Result<NewSession, Error> {
        let core = &self.core;
        core.limiter.take(&core.policy.limits.refresh, &format!("refresh:{}", address_key(client.0))).await?;
        if !refresh_token.starts_with("krt_") || refresh_token.len() > 128 {
            return Err(Error::RefreshTokenInvalid);
        }
        let now = now_ms();
        let issued = tokens::issue(now, ms(core.policy.access_ttl), ms(core.policy.refresh_ttl));
        match core.store.rotate_refresh(&hash_token(refresh_token), &issued.stored, now).await? {
            RefreshOutcome::Rotated(device) if device.account_disabled => Err(Error::AccountDisabled),
            RefreshOutcome::Rotated(device) => Ok(NewSession {
                account_id: device.account_id,
                device_id: device.device_id,
                access_token: issued.access,
                access_expires_at_ms: issued.stored.access_expires_at_ms,
                refresh_token: issued.refresh,
                refresh_expires_at_ms: issued.stored.refresh_expires_at_ms,
                password_reset_until_ms: device.password_reset_until_ms,
            }),
            RefreshOutcome::Reused { device, account } => {
                // Treated as a sign-out: the store recorded the revocation (other nodes close
                // their sockets from it); this node closes its own now.
                core.delivery.device_gone(account, device).await;
                tracing::warn!(%device, "a used refresh token was presented again; device signed out");
                Err(Error::RefreshTokenReused)
            }
            RefreshOutcome::Unknown => Err(Error::RefreshTokenInvalid),
        }
    }

    /// Signs the calling device out.
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), Error> {
        if self.core.store.delete_device(Some(caller.account_id), caller.device_id).await? {
            self.core.delivery.device_gone(caller.account_id, caller.device_id).await;
        }
        tracing::info!(device = %caller.device_id, "signed out");
        Ok(())
    }

    /// The caller behind an access token.
    pub async fn authenticate(&self, access_token: &str) -> Result<Caller, Error> {
        if !access_token.starts_with("kat_") || access_token.len() > 128 {
            return Err(Error::SessionInvalid);
        }
        let device = self.core.store.authenticate(&hash_token(access_token), now_ms()).await?;
        match device {
            None => Err(Error::SessionInvalid),
            Some(device) if device.account_disabled => Err(Error::AccountDisabled),
            Some(device) => Ok(Caller {
                account_id: device.account_id,
                device_id: device.device_id,
                password_reset_until_ms: device.password_reset_until_ms,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_documented_shape() {
        for _ in 0..100 {
            let code = six_digit_code();
            assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
            let admin = admin_code();
            assert_eq!(admin.len(), 19, "{admin}");
            assert_eq!(admin.split('-').count(), 4);
            assert!(!admin.contains(['I', 'L', 'O', 'U']));
        }
        assert_eq!(normalise_code(" k7qx-m2pd 9htr-4wzb "), "K7QXM2PD9HTR4WZB");
    }
}
