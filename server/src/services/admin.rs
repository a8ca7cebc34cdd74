//! What the server's admin may do (through `kitsulan admin`): the admin is trusted, as the
//! user's documents say, and helps people back in. Every operation is logged.

use super::auth::{ADMIN_CODE_TTL, Auth, admin_code};
use super::names::{DisplayName, Email, Password, Username};
use super::{Error, ErrorReason, tokens};
use crate::ids::{AccountId, DeviceId};
use crate::store::{AccountRecord, CodePurpose, DeviceRecord, NewAccount, now_ms};

/// Admin operations.
#[derive(Clone)]
pub struct Admin {
    pub(super) auth: Auth,
}

/// A one-time sign-in code printed for a person who is locked out.
pub struct IssuedCode {
    /// The code, `XXXX-XXXX-XXXX-XXXX`.
    pub code: String,
    /// When it expires (ms since the Unix epoch).
    pub expires_at_ms: i64,
}

/// A new account and, if the admin did not give one, its generated password.
pub struct CreatedAccount {
    /// The account.
    pub account: AccountRecord,
    /// The generated password, to hand to the person.
    pub generated_password: Option<String>,
}

/// A readable random password: 4 groups of 5 characters (about 100 bits).
fn generated_password() -> String {
    let token = tokens::random_token("");
    let chars: Vec<char> = token.chars().filter(char::is_ascii_alphanumeric).take(20).collect();
    chars.chunks(5).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

impl Admin {
    async fn account(&self, username: &str) -> Result<AccountRecord, Error> {
        let username = Username::parse(username)?;
        self.auth.core.store.account_by_username(username.as_str()).await?.ok_or_else(|| {
            Error::invalid(ErrorReason::NoSuchUser, "username", format!("no user {:?}", username.as_str()))
        })
    }

    /// Creates an account (no device). Without `password`, one is generated and returned.
    pub async fn create_user(
        &self,
        username: &str,
        display_name: Option<&str>,
        email: Option<&str>,
        password: Option<&str>,
    ) -> Result<CreatedAccount, Error> {
        let core = &self.auth.core;
        let username = Username::parse(username)?;
        let display_name =
            DisplayName::parse(display_name.filter(|d| !d.trim().is_empty()).unwrap_or(username.as_str()))?;
        let email = email.filter(|e| !e.trim().is_empty()).map(Email::parse).transpose()?;
        let generated = password.is_none().then(generated_password);
        let password = Password::parse(
            password.or(generated.as_deref()).unwrap_or_default(),
            "password",
            Some(&username),
        )?;
        let account = NewAccount {
            id: AccountId::generate(),
            username: username.as_str().to_owned(),
            display_name: display_name.as_str().to_owned(),
            email: email.map(|e| e.as_str().to_owned()),
            password_hash: core.hasher.hash(password.expose()).await?,
            created_at_ms: now_ms(),
        };
        core.store.create_account_without_device(&account).await?;
        tracing::info!(account = %account.id, username = %account.username, "admin created an account");
        let account = core
            .store
            .account(account.id)
            .await?
            .ok_or_else(|| Error::Internal("account vanished".into()))?;
        Ok(CreatedAccount { account, generated_password: generated })
    }

    /// Every account.
    pub async fn list_users(&self) -> Result<Vec<AccountRecord>, Error> {
        Ok(self.auth.core.store.list_accounts().await?)
    }

    /// Issues a one-time sign-in code (valid a day, single use) for a locked-out person.
    pub async fn reset_password(&self, username: &str) -> Result<(AccountRecord, IssuedCode), Error> {
        let account = self.account(username).await?;
        let (code, expires_at_ms) = self
            .auth
            .core
            .issue_code(account.id, CodePurpose::AdminSignIn, None, admin_code(), ADMIN_CODE_TTL)
            .await?;
        tracing::info!(account = %account.id, "admin issued a one-time sign-in code");
        Ok((account, IssuedCode { code, expires_at_ms }))
    }

    /// Disables or re-enables an account. A disabled account cannot sign in and its sessions
    /// stop working at once.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<AccountRecord, Error> {
        let account = self.account(username).await?;
        self.auth.core.store.set_disabled(account.id, disabled).await?;
        tracing::info!(account = %account.id, disabled, "admin changed whether the account is disabled");
        self.account(username).await
    }

    /// Turns TOTP off for a person who lost their authenticator.
    pub async fn remove_totp(&self, username: &str) -> Result<AccountRecord, Error> {
        let account = self.account(username).await?;
        self.auth.core.store.disable_totp(account.id).await?;
        tracing::info!(account = %account.id, "admin removed TOTP");
        self.account(username).await
    }

    /// A person's devices.
    pub async fn list_devices(&self, username: &str) -> Result<(AccountRecord, Vec<DeviceRecord>), Error> {
        let account = self.account(username).await?;
        let devices = self.auth.core.store.list_devices(account.id).await?;
        Ok((account, devices))
    }

    /// Signs a device out, whoever owns it.
    pub async fn revoke_device(&self, device: DeviceId) -> Result<DeviceRecord, Error> {
        let store = &self.auth.core.store;
        let record = store.device(device).await?.ok_or(Error::DeviceNotFound)?;
        if !store.delete_device(None, device).await? {
            return Err(Error::DeviceNotFound);
        }
        self.auth.core.delivery.device_gone(record.account_id, device).await;
        tracing::info!(%device, "admin revoked a device");
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_passwords_are_long_and_readable() {
        let password = super::generated_password();
        assert_eq!(password.len(), 23, "{password}");
        assert!(password.split('-').all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_alphanumeric())));
    }
}
