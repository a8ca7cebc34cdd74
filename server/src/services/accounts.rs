//! The signed-in person's own account: profile, password, email address and TOTP.

use super::auth::{Auth, Caller, ClientAddr};
use super::names::{DisplayName, Email, Password, Username};
use super::rate_limits::address_key;
use super::{Error, totp};
use crate::ids::AccountId;
use crate::store::{AccountRecord, CodePurpose, now_ms};

/// Profiles per `GetProfiles` call, at most.
pub const MAX_PROFILES: usize = 1000;

/// Operations on the caller's own account.
#[derive(Clone)]
pub struct Accounts {
    pub(super) auth: Auth,
}

/// TOTP enrolment data for the authenticator app.
pub struct TotpEnrollment {
    /// The secret in base32.
    pub secret_base32: String,
    /// `otpauth://` URI (for a QR code).
    pub otpauth_uri: String,
}

impl Accounts {
    async fn mine(&self, caller: &Caller) -> Result<AccountRecord, Error> {
        // The session was valid a moment ago; if the account is gone now, so is the session.
        self.auth.core.store.account(caller.account_id).await?.ok_or(Error::SessionInvalid)
    }

    /// The caller's account.
    pub async fn get(&self, caller: &Caller) -> Result<AccountRecord, Error> {
        self.mine(caller).await
    }

    /// Another account's public profile, by username (disabled accounts are not found).
    pub async fn lookup(&self, _caller: &Caller, username: &str) -> Result<AccountRecord, Error> {
        let username = Username::parse(username)?;
        let not_found = || Error::not_found("ACCOUNT_NOT_FOUND", "no account with that username");
        let account =
            self.auth.core.store.account_by_username(username.as_str()).await?.ok_or_else(not_found)?;
        if account.disabled {
            return Err(not_found());
        }
        Ok(account)
    }

    /// Public profiles of `ids` (at most [`MAX_PROFILES`]); unknown ones are left out.
    pub async fn profiles(&self, _caller: &Caller, ids: &[AccountId]) -> Result<Vec<AccountRecord>, Error> {
        if ids.len() > MAX_PROFILES {
            return Err(Error::limit(
                "TOO_MANY_ACCOUNTS",
                format!("at most {MAX_PROFILES} accounts at once"),
            ));
        }
        let mut profiles = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(account) = self.auth.core.store.account(*id).await? {
                profiles.push(account);
            }
        }
        Ok(profiles)
    }

    /// Changes the display name.
    pub async fn update_profile(&self, caller: &Caller, display_name: &str) -> Result<AccountRecord, Error> {
        let name = DisplayName::parse(display_name)?;
        self.auth.core.store.set_display_name(caller.account_id, name.as_str()).await?;
        self.mine(caller).await
    }

    /// Sets a new password; needs the current one unless the reset window is open.
    pub async fn change_password(&self, caller: &Caller, current: &str, new: &str) -> Result<(), Error> {
        let core = &self.auth.core;
        let account = self.mine(caller).await?;
        let username = Username::parse(&account.username)?;
        let new = Password::parse(new, "new_password", Some(&username))?;
        let in_reset_window = caller.password_reset_until_ms > now_ms();
        if !in_reset_window && !core.hasher.verify(current, &account.password_hash).await? {
            return Err(Error::PasswordRequired);
        }
        let hash = core.hasher.hash(new.expose()).await?;
        core.store.set_password_hash(caller.account_id, &hash).await?;
        core.store.end_password_reset(caller.device_id).await?;
        tracing::info!(account = %caller.account_id, device = %caller.device_id, "password changed");
        Ok(())
    }

    /// Sets the (unverified) email address and sends it a verification code. An address
    /// another account has verified is refused at once, so nobody can make us mail strangers.
    pub async fn set_email(
        &self,
        caller: &Caller,
        client: ClientAddr,
        email: &str,
    ) -> Result<AccountRecord, Error> {
        let core = &self.auth.core;
        let email = Email::parse(email)?;
        if core.mailer.is_none() {
            return Err(Error::EmailUnavailable);
        }
        let limit = &core.policy.limits.code_requests;
        core.limiter.take(limit, &format!("code_requests:{}", address_key(client.0))).await?;
        core.limiter.take(limit, &format!("code_requests:{}", caller.account_id)).await?;
        core.limiter.take(limit, &format!("code_requests:{}", email.as_str())).await?;
        if core
            .store
            .account_by_verified_email(email.as_str())
            .await?
            .is_some_and(|a| a.id != caller.account_id)
        {
            return Err(Error::EmailTaken);
        }
        let current = self.mine(caller).await?;
        if !(current.email.as_deref() == Some(email.as_str()) && current.email_verified) {
            core.store.set_email(caller.account_id, Some(email.as_str())).await?;
        }
        core.mail_code(caller.account_id, CodePurpose::EmailVerify, &email, "verify your email address")
            .await?;
        self.mine(caller).await
    }

    /// Verifies the account's email address with the code sent to it.
    pub async fn verify_email(
        &self,
        caller: &Caller,
        client: ClientAddr,
        code: &str,
    ) -> Result<AccountRecord, Error> {
        let core = &self.auth.core;
        core.limiter
            .take(&core.policy.limits.code_checks, &format!("code_checks:{}", address_key(client.0)))
            .await?;
        let account = self.mine(caller).await?;
        let Some(email) = account.email.clone() else { return Err(Error::NoEmail) };
        let code_id = core.check_code(&account, CodePurpose::EmailVerify, code).await?;
        if !core.store.consume_code(code_id).await?
            || !core.store.mark_email_verified(account.id, &email).await?
        {
            return Err(Error::OneTimeCodeInvalid);
        }
        tracing::info!(account = %account.id, "email address verified");
        self.mine(caller).await
    }

    /// Starts TOTP enrolment (needs the password).
    pub async fn begin_totp(&self, caller: &Caller, password: &str) -> Result<TotpEnrollment, Error> {
        let core = &self.auth.core;
        let account = self.mine(caller).await?;
        if account.totp_secret.is_some() {
            return Err(Error::TotpAlreadyEnabled);
        }
        if !core.hasher.verify(password, &account.password_hash).await? {
            return Err(Error::PasswordRequired);
        }
        let secret = totp::new_secret();
        let (secret_base32, otpauth_uri) = totp::enrolment(&secret, &account.username, &core.server_name)?;
        // Stored sealed: the database never holds the secret in plaintext.
        let sealed = core.policy.totp_key.seal(account.id, &secret)?;
        core.store.set_totp_pending(account.id, Some(&sealed)).await?;
        Ok(TotpEnrollment { secret_base32, otpauth_uri })
    }

    /// Turns TOTP on with a code from the newly set-up authenticator.
    pub async fn confirm_totp(&self, caller: &Caller, code: &str) -> Result<AccountRecord, Error> {
        let core = &self.auth.core;
        let account = self.mine(caller).await?;
        if account.totp_secret.is_some() {
            return Err(Error::TotpAlreadyEnabled);
        }
        let Some(pending) = &account.totp_pending_secret else { return Err(Error::TotpNotPending) };
        let secret = core.policy.totp_key.open(account.id, pending)?;
        let Some(step) = totp::matching_step(&secret, code, totp::unix_seconds())? else {
            return Err(Error::TotpInvalid);
        };
        if !core.store.enable_totp(account.id, pending, step).await? {
            return Err(Error::TotpNotPending);
        }
        tracing::info!(account = %account.id, "TOTP enabled");
        self.mine(caller).await
    }

    /// Turns TOTP off (needs the password and a current code).
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        password: &str,
        code: &str,
    ) -> Result<AccountRecord, Error> {
        let core = &self.auth.core;
        let account = self.mine(caller).await?;
        let Some(secret) = &account.totp_secret else { return Err(Error::TotpNotEnabled) };
        if !core.hasher.verify(password, &account.password_hash).await? {
            return Err(Error::PasswordRequired);
        }
        core.check_totp(&account, secret, code).await?;
        core.store.disable_totp(account.id).await?;
        tracing::info!(account = %account.id, "TOTP disabled");
        self.mine(caller).await
    }
}
