//! One-time codes (`one_time_codes`): emailed sign-in and verification codes and admin sign-in
//! codes. At most one live code per account and purpose; the code itself is stored only as an
//! Argon2id hash, with a count of tries.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use crate::ids::{AccountId, CodeId};

/// What a code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodePurpose {
    /// Emailed: signs a new device in.
    EmailSignIn,
    /// Emailed: proves the account owns the address.
    EmailVerify,
    /// Printed by `kitsulan admin user reset-password`: signs a new device in.
    AdminSignIn,
}

impl CodePurpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::EmailSignIn => "email_sign_in",
            Self::EmailVerify => "email_verify",
            Self::AdminSignIn => "admin_sign_in",
        }
    }
}

/// A code to store.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// Its id.
    pub id: CodeId,
    /// Whose it is.
    pub account_id: AccountId,
    /// What it is for.
    pub purpose: CodePurpose,
    /// The address it was sent to (email purposes).
    pub email: Option<String>,
    /// Argon2id PHC string of the code.
    pub code_hash: String,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: i64,
    /// Expiry (ms since the Unix epoch).
    pub expires_at_ms: i64,
}

/// A stored code.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CodeRecord {
    /// Its id.
    #[sqlx(try_from = "Uuid")]
    pub id: CodeId,
    /// The address it was sent to (email purposes).
    pub email: Option<String>,
    /// Argon2id PHC string of the code.
    pub code_hash: String,
    /// Tries so far, including the one being checked if [`CodeStore::count_attempt`] ran.
    pub attempts: i32,
    /// Expiry (ms since the Unix epoch).
    pub expires_at_ms: i64,
}

/// One-time codes.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a code, replacing any earlier code of the same account and purpose.
    async fn put_code(&self, code: &NewCode) -> Result<(), StoreError>;
    /// Counts one more try at the account's code for `purpose` and returns it as it is now,
    /// unless it has expired or already had `max_attempts` tries (then it is deleted and
    /// `None` returned). Atomic: parallel guesses cannot exceed `max_attempts`.
    async fn count_attempt(
        &self,
        account: AccountId,
        purpose: CodePurpose,
        max_attempts: i32,
        now_ms: i64,
    ) -> Result<Option<CodeRecord>, StoreError>;
    /// Deletes a code. `true` if it was still there: the caller that gets `true` is the one
    /// that used it, so a code works only once even under races.
    async fn consume_code(&self, id: CodeId) -> Result<bool, StoreError>;
    /// Deletes expired codes. Returns how many.
    async fn prune_codes(&self, now_ms: i64) -> Result<u64, StoreError>;
}

impl_for_backends! {
    impl CodeStore {
        async fn put_code(&self, code: &NewCode) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO one_time_codes (id, account_id, purpose, email, code_hash, attempts, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7) \
                 ON CONFLICT (account_id, purpose) DO UPDATE SET id = excluded.id, email = excluded.email, \
                 code_hash = excluded.code_hash, attempts = 0, created_at_ms = excluded.created_at_ms, \
                 expires_at_ms = excluded.expires_at_ms",
            )
            .bind(code.id.as_uuid())
            .bind(code.account_id.as_uuid())
            .bind(code.purpose.as_str())
            .bind(code.email.as_deref())
            .bind(&code.code_hash)
            .bind(code.created_at_ms)
            .bind(code.expires_at_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn count_attempt(
            &self,
            account: AccountId,
            purpose: CodePurpose,
            max_attempts: i32,
            now_ms: i64,
        ) -> Result<Option<CodeRecord>, StoreError> {
            let counted: Option<CodeRecord> = sqlx::query_as(
                "UPDATE one_time_codes SET attempts = attempts + 1 \
                 WHERE account_id = $1 AND purpose = $2 AND attempts < $3 AND expires_at_ms > $4 \
                 RETURNING id, email, code_hash, attempts, expires_at_ms",
            )
            .bind(account.as_uuid())
            .bind(purpose.as_str())
            .bind(max_attempts)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            if counted.is_none() {
                // Dead (expired or out of tries) or absent: make sure nothing is left behind.
                sqlx::query("DELETE FROM one_time_codes WHERE account_id = $1 AND purpose = $2")
                    .bind(account.as_uuid())
                    .bind(purpose.as_str())
                    .execute(&self.pool)
                    .await?;
            }
            Ok(counted)
        }

        async fn consume_code(&self, id: CodeId) -> Result<bool, StoreError> {
            let done = sqlx::query("DELETE FROM one_time_codes WHERE id = $1")
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn prune_codes(&self, now_ms: i64) -> Result<u64, StoreError> {
            let done = sqlx::query("DELETE FROM one_time_codes WHERE expires_at_ms <= $1")
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }
    }
}
