//! Accounts: username, profile, password hash, email and TOTP state (`accounts` table).

use async_trait::async_trait;
use uuid::Uuid;

use super::devices::{NewDevice, insert_device};
use super::{Conflict, StoreError, conflict_or};
use crate::ids::{AccountId, AvatarId};

/// A new account, written together with its first device.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Its id.
    pub id: AccountId,
    /// Normalised username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Unverified email address, if given.
    pub email: Option<String>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: i64,
}

/// An account as stored.
#[derive(Clone, sqlx::FromRow)]
pub struct AccountRecord {
    /// Its id.
    #[sqlx(try_from = "Uuid")]
    pub id: AccountId,
    /// Normalised username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Email address, verified or not.
    pub email: Option<String>,
    /// Whether `email` was verified with a code.
    pub email_verified: bool,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// The active TOTP secret, if TOTP is on.
    pub totp_secret: Option<Vec<u8>>,
    /// A TOTP secret being enrolled.
    pub totp_pending_secret: Option<Vec<u8>>,
    /// Set by an admin: no sign-in, no session works.
    pub disabled: bool,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// The current avatar's blob (`avatars/<id>`), if one is set.
    #[sqlx(try_from = "OptionalUuid")]
    pub avatar_id: Option<AvatarId>,
    /// Goes up with every avatar change (set or removed); 0: never had one.
    pub avatar_version: i64,
}

/// A nullable UUID column, for `#[sqlx(try_from)]`.
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(super) struct OptionalUuid(Option<Uuid>);

impl From<OptionalUuid> for Option<AvatarId> {
    fn from(value: OptionalUuid) -> Self {
        value.0.map(AvatarId::from_uuid)
    }
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets (password hash, TOTP secrets) are never printed.
        f.debug_struct("AccountRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email_verified", &self.email_verified)
            .field("totp", &self.totp_secret.is_some())
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// Accounts.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates the account and its first device in one transaction: both or neither.
    /// [`StoreError::Conflict`] if the username is taken.
    async fn create_account(&self, account: &NewAccount, device: &NewDevice) -> Result<(), StoreError>;
    /// Creates an account with no device (admin CLI). [`StoreError::Conflict`] as above.
    async fn create_account_without_device(&self, account: &NewAccount) -> Result<(), StoreError>;
    /// The account with this id.
    async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError>;
    /// The account with this (normalised) username.
    async fn account_by_username(&self, username: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// The account that verified this (normalised) email address.
    async fn account_by_verified_email(&self, email: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account, oldest first.
    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// Changes the display name. `false` if there is no such account.
    async fn set_display_name(&self, id: AccountId, name: &str) -> Result<bool, StoreError>;
    /// Replaces the password hash. `false` if there is no such account.
    async fn set_password_hash(&self, id: AccountId, hash: &str) -> Result<bool, StoreError>;
    /// Sets the email address (unverified) or clears it. `false` if there is no such account.
    async fn set_email(&self, id: AccountId, email: Option<&str>) -> Result<bool, StoreError>;
    /// Marks `email` verified if it is still the account's address. `false` otherwise;
    /// [`StoreError::Conflict`] if another account verified it first.
    async fn mark_email_verified(&self, id: AccountId, email: &str) -> Result<bool, StoreError>;
    /// Stores (or clears) the TOTP secret being enrolled.
    async fn set_totp_pending(&self, id: AccountId, secret: Option<&[u8]>) -> Result<bool, StoreError>;
    /// Makes the pending secret active, if it is still `secret`, and records `step` as used.
    async fn enable_totp(&self, id: AccountId, secret: &[u8], step: i64) -> Result<bool, StoreError>;
    /// Turns TOTP off (active and pending secret cleared).
    async fn disable_totp(&self, id: AccountId) -> Result<bool, StoreError>;
    /// Records TOTP `step` as used if it is later than every step used before. `false` if it
    /// is not (the code was already used): the caller must refuse the code.
    async fn accept_totp_step(&self, id: AccountId, step: i64) -> Result<bool, StoreError>;
    /// Replaces the active or pending TOTP secret that is exactly `old` with `new` (sealing one
    /// stored in plaintext). `false` if neither is `old` any more.
    async fn replace_totp_secret(&self, id: AccountId, old: &[u8], new: &[u8]) -> Result<bool, StoreError>;
    /// Disables or enables the account.
    async fn set_disabled(&self, id: AccountId, disabled: bool) -> Result<bool, StoreError>;
}

const COLUMNS: &str = "id, username, display_name, email, email_verified, password_hash, \
                       totp_secret, totp_pending_secret, disabled, created_at_ms, avatar_id, avatar_version";

/// Writes a [`NewAccount`] (used inside transactions too, hence a macro over the executor).
macro_rules! insert_account {
    ($account:expr) => {
        sqlx::query(
            "INSERT INTO accounts (id, username, display_name, email, password_hash, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($account.id.as_uuid())
        .bind(&$account.username)
        .bind(&$account.display_name)
        .bind($account.email.as_deref())
        .bind(&$account.password_hash)
        .bind($account.created_at_ms)
    };
}

const ACCOUNT_CONFLICTS: &[(&str, Conflict)] = &[
    ("username", Conflict::Username),
    ("accounts_verified_email", Conflict::Email),
    ("email", Conflict::Email),
];

impl_for_backends! {
    impl AccountStore {
        async fn create_account(&self, account: &NewAccount, device: &NewDevice) -> Result<(), StoreError> {
            let mut tx = self.pool.begin().await?;
            insert_account!(account).execute(&mut *tx).await.map_err(|e| conflict_or(e, ACCOUNT_CONFLICTS))?;
            insert_device!(device).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn create_account_without_device(&self, account: &NewAccount) -> Result<(), StoreError> {
            insert_account!(account).execute(&self.pool).await.map_err(|e| conflict_or(e, ACCOUNT_CONFLICTS))?;
            Ok(())
        }

        async fn account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
            Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn account_by_username(&self, username: &str) -> Result<Option<AccountRecord>, StoreError> {
            Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM accounts WHERE username = $1"))
                .bind(username)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn account_by_verified_email(&self, email: &str) -> Result<Option<AccountRecord>, StoreError> {
            Ok(sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM accounts WHERE email = $1 AND email_verified = TRUE"
            ))
            .bind(email)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
            Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM accounts ORDER BY id"))
                .fetch_all(&self.pool)
                .await?)
        }

        async fn set_display_name(&self, id: AccountId, name: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE accounts SET display_name = $2 WHERE id = $1")
                .bind(id.as_uuid())
                .bind(name)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn set_password_hash(&self, id: AccountId, hash: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE accounts SET password_hash = $2 WHERE id = $1")
                .bind(id.as_uuid())
                .bind(hash)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn set_email(&self, id: AccountId, email: Option<&str>) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE accounts SET email = $2, email_verified = FALSE WHERE id = $1")
                .bind(id.as_uuid())
                .bind(email)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn mark_email_verified(&self, id: AccountId, email: &str) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE accounts SET email_verified = TRUE WHERE id = $1 AND email = $2")
                .bind(id.as_uuid())
                .bind(email)
                .execute(&self.pool)
                .await
                .map_err(|e| conflict_or(e, ACCOUNT_CONFLICTS))?;
            Ok(done.rows_affected() == 1)
        }

        async fn set_totp_pending(&self, id: AccountId, secret: Option<&[u8]>) -> Result<bool, StoreError> {
            let done = sqlx::query("UPDATE accounts SET totp_pending_secret = $2 WHERE id = $1")
                .bind(id.as_uuid())
                .bind(secret)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn enable_totp(&self, id: AccountId, secret: &[u8], step: i64) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE accounts SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
                 totp_last_step = $3 WHERE id = $1 AND totp_pending_secret = $2",
            )
            .bind(id.as_uuid())
            .bind(secret)
            .bind(step)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn disable_totp(&self, id: AccountId) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE accounts SET totp_secret = NULL, totp_pending_secret = NULL, totp_last_step = NULL \
                 WHERE id = $1",
            )
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn accept_totp_step(&self, id: AccountId, step: i64) -> Result<bool, StoreError> {
            // One conditional write, so two sign-ins racing with the same code cannot both win.
            let done = sqlx::query(
                "UPDATE accounts SET totp_last_step = $2 \
                 WHERE id = $1 AND totp_secret IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $2)",
            )
            .bind(id.as_uuid())
            .bind(step)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn replace_totp_secret(&self, id: AccountId, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE accounts SET \
                 totp_secret = CASE WHEN totp_secret = $2 THEN $3 ELSE totp_secret END, \
                 totp_pending_secret = CASE WHEN totp_pending_secret = $2 THEN $3 ELSE totp_pending_secret END \
                 WHERE id = $1 AND (totp_secret = $2 OR totp_pending_secret = $2)",
            )
            .bind(id.as_uuid())
            .bind(old)
            .bind(new)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn set_disabled(&self, id: AccountId, disabled: bool) -> Result<bool, StoreError> {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("UPDATE accounts SET disabled = $2 WHERE id = $1")
                .bind(id.as_uuid())
                .bind(disabled)
                .execute(&mut *tx)
                .await?;
            if disabled {
                // Every node closes the account's gateway connections when it sees these.
                sqlx::query("INSERT INTO device_revocations (device_id, at_ms) SELECT id, $2 FROM devices WHERE account_id = $1")
                    .bind(id.as_uuid())
                    .bind(crate::now_ms())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        }
    }
}
