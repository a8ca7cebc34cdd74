//! The signed-in person's own account: profile, password, email address and TOTP.
//!
//! # Security
//! An access token can be copied (a stolen laptop, a malicious extension). Whatever would let
//! its holder keep the account for good — a new password, a new email address (which signs in
//! by code), TOTP on or off — needs the owner's factors again: the current password and, when
//! enrolled, a TOTP code, counted against the sign-in failure limits. A device that signed in
//! with a one-time code may set a new password without the old one for a short window (that is
//! the reset). A new password signs every other device out unless the person keeps them, and
//! the old verified address is told when the email address changes.

use super::auth::{Auth, Caller, ClientAddr};
use super::names::{DisplayName, Email, Password, Username};
use super::rate_limits::address_key;
use super::{Error, ErrorReason, totp};
use crate::ids::AccountId;
use crate::store::{AccountRecord, CodePurpose, now_ms};

/// Profiles per `GetProfiles` call, at most.
pub const MAX_PROFILES: usize = 1000;

/// Operations on the caller's own account.
#[derive(Clone)]
pub struct Accounts {
    pub(super) auth: Auth,
    /// Whether a deleted account's messages lose their content (`KITSULAN_DELETED_ACCOUNT_MESSAGES
    /// =delete`) or stay without its name (`anonymize`, the default).
    pub delete_messages_with_account: bool,
}

/// A new password, and what proves the owner asks for it.
pub struct PasswordChange<'a> {
    /// The current password (not needed in the reset window).
    pub current: &'a str,
    /// A TOTP code, when the account has TOTP (not needed in the reset window).
    pub totp_code: &'a str,
    /// The new password.
    pub new: &'a str,
    /// Leave the account's other devices signed in.
    pub keep_other_devices: bool,
}

/// A new email address, and what proves the owner asks for it.
pub struct EmailChange<'a> {
    /// The address as typed.
    pub email: &'a str,
    /// The current password.
    pub current_password: &'a str,
    /// A TOTP code, when the account has TOTP.
    pub totp_code: &'a str,
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
        let not_found = || Error::not_found(ErrorReason::AccountNotFound, "no account with that username");
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
                ErrorReason::TooManyAccounts,
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

    /// Sets a new password; needs the owner's factors ([`AuthCore::confirm_owner`]) unless the
    /// reset window is open. Signs every other device out unless `change.keep_other_devices`.
    /// Returns how many devices were signed out.
    ///
    /// [`AuthCore::confirm_owner`]: super::auth::AuthCore::confirm_owner
    pub async fn change_password(
        &self,
        caller: &Caller,
        client: ClientAddr,
        change: PasswordChange<'_>,
    ) -> Result<usize, Error> {
        let core = &self.auth.core;
        let account = self.mine(caller).await?;
        let username = Username::parse(&account.username)?;
        let new = Password::parse(change.new, "new_password", Some(&username))?;
        let in_reset_window = caller.password_reset_until_ms > now_ms();
        if !in_reset_window {
            core.confirm_owner(&account, client, change.current, change.totp_code).await?;
        }
        let hash = core.hasher.hash(new.expose()).await?;
        core.store.set_password_hash(caller.account_id, &hash).await?;
        core.store.end_password_reset(caller.device_id).await?;
        let signed_out = if change.keep_other_devices {
            Vec::new()
        } else {
            core.store.delete_other_devices(caller.account_id, caller.device_id).await?
        };
        core.delivery.devices_gone(caller.account_id, &signed_out).await;
        tracing::info!(
            account = %caller.account_id,
            device = %caller.device_id,
            signed_out = signed_out.len(),
            "password changed"
        );
        Ok(signed_out.len())
    }

    /// Sets the (unverified) email address and sends it a verification code; needs the
    /// owner's factors. An address another account has verified is refused at once, so nobody
    /// can make us mail strangers. The previous verified address is told of the change.
    pub async fn set_email(
        &self,
        caller: &Caller,
        client: ClientAddr,
        change: EmailChange<'_>,
    ) -> Result<AccountRecord, Error> {
        let core = &self.auth.core;
        let email = Email::parse(change.email)?;
        if core.mailer.is_none() {
            return Err(Error::EmailUnavailable);
        }
        let current = self.mine(caller).await?;
        core.confirm_owner(&current, client, change.current_password, change.totp_code).await?;
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
        if !(current.email.as_deref() == Some(email.as_str()) && current.email_verified) {
            core.store.set_email(caller.account_id, Some(email.as_str())).await?;
            if let Some(old) =
                current.email.as_deref().filter(|old| current.email_verified && *old != email.as_str())
            {
                self.tell_old_address(&current, old, &email).await;
            }
        }
        core.mail_code(caller.account_id, CodePurpose::EmailVerify, &email, "verify your email address")
            .await?;
        self.mine(caller).await
    }

    /// Tells the owner, at the address they verified, that it was replaced: if it was not them,
    /// they learn it while their other devices may still be signed in. A failure is logged
    /// only (the change itself was confirmed with the password).
    async fn tell_old_address(&self, account: &AccountRecord, old: &str, new: &Email) {
        let core = &self.auth.core;
        let Some(mailer) = &core.mailer else { return };
        let subject = format!("The email address of your {} account was changed", core.server_name);
        let body = format!(
            "The email address of the account @{username} on {server} was changed from this address \
             to {new}.\n\nIf you did this, there is nothing to do.\n\nIf you did not, someone has \
             your password: sign in on a device you trust, change your password (this signs every \
             other device out) and ask the server's admin for help. Sign-in codes are no longer \
             sent to this address.\n",
            username = account.username,
            server = core.server_name,
            new = new.as_str(),
        );
        if let Err(e) = mailer.send(old, &subject, &body).await {
            tracing::warn!(account = %account.id, error = %e, "could not tell the old address of an email change");
        }
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
        let guesses = core.guesses(&account.username, client).await;
        guesses.check().await?;
        let code_id = core.check_code(&account, CodePurpose::EmailVerify, code, &guesses).await?;
        if !core.store.consume_code(code_id).await?
            || !core.store.mark_email_verified(account.id, &email).await?
        {
            return Err(Error::OneTimeCodeInvalid);
        }
        tracing::info!(account = %account.id, "email address verified");
        self.mine(caller).await
    }

    /// Starts TOTP enrolment (needs the password).
    pub async fn begin_totp(
        &self,
        caller: &Caller,
        client: ClientAddr,
        password: &str,
    ) -> Result<TotpEnrollment, Error> {
        let core = &self.auth.core;
        let account = self.mine(caller).await?;
        if account.totp_secret.is_some() {
            return Err(Error::TotpAlreadyEnabled);
        }
        core.confirm_owner(&account, client, password, "").await?;
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
        client: ClientAddr,
        password: &str,
        code: &str,
    ) -> Result<AccountRecord, Error> {
        let core = &self.auth.core;
        let account = self.mine(caller).await?;
        if account.totp_secret.is_none() {
            return Err(Error::TotpNotEnabled);
        }
        core.confirm_owner(&account, client, password, code).await?;
        core.store.disable_totp(account.id).await?;
        tracing::info!(account = %account.id, "TOTP disabled");
        self.mine(caller).await
    }
}
