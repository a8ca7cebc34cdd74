//! The one error type of the services. Each variant is a stable `reason` code that clients
//! see (see docs/api.md); the transport maps it to a gRPC status in one place.

use std::time::Duration;

use crate::store::{Conflict, StoreError};

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field is malformed; `reason` names the rule, `field` the request field.
    #[error("{message}")]
    InvalidArgument {
        /// Stable code, e.g. `USERNAME_INVALID`.
        reason: &'static str,
        /// The request field that was refused.
        field: &'static str,
        /// What is wrong, for people.
        message: String,
    },
    /// Another account has that username.
    #[error("that username is taken")]
    UsernameTaken,
    /// Another account verified that email address.
    #[error("that email address belongs to another account")]
    EmailTaken,
    /// Wrong username or password (the same for both, on purpose).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The password was right; the account needs a TOTP code too.
    #[error("a code from your authenticator app is required")]
    TotpRequired,
    /// Wrong or already used TOTP code.
    #[error("the authenticator code is wrong or was already used")]
    TotpInvalid,
    /// Wrong, expired, used or exhausted one-time code.
    #[error("the code is wrong or no longer valid; request a new one")]
    OneTimeCodeInvalid,
    /// No valid access token.
    #[error("not signed in, or the session has ended")]
    SessionInvalid,
    /// Unknown or expired refresh token.
    #[error("the refresh token is not valid; sign in again")]
    RefreshTokenInvalid,
    /// An already used refresh token was presented: the device has been signed out.
    #[error("this refresh token was already used; the device has been signed out")]
    RefreshTokenReused,
    /// The account is disabled by an admin.
    #[error("this account is disabled; ask the server's admin")]
    AccountDisabled,
    /// The server takes no new accounts.
    #[error("this server does not take new accounts")]
    SignUpClosed,
    /// The current password is needed and was wrong or missing.
    #[error("the current password is wrong or missing")]
    PasswordRequired,
    /// Email needs SMTP, which is not configured.
    #[error("email is not available on this server")]
    EmailUnavailable,
    /// The account has no email address.
    #[error("the account has no email address")]
    NoEmail,
    /// Confirming TOTP without starting enrolment.
    #[error("start TOTP enrolment first")]
    TotpNotPending,
    /// TOTP is on already.
    #[error("TOTP is already enabled")]
    TotpAlreadyEnabled,
    /// TOTP is off.
    #[error("TOTP is not enabled")]
    TotpNotEnabled,
    /// No such device among the caller's.
    #[error("no such device")]
    DeviceNotFound,
    /// SignOutDevice on the calling device.
    #[error("use SignOut to sign out this device")]
    CannotSignOutCurrentDevice,
    /// The request is not a well-formed gRPC message of the method's type (bad protobuf, a
    /// truncated frame, an unknown compression flag). Set by the transport, before any service.
    #[error("the request could not be decoded: it is not a valid message for this method")]
    MalformedRequest,
    /// The request is larger than the server takes for this method (set by the transport).
    #[error("the request is larger than the {limit} bytes this server takes")]
    RequestTooLarge {
        /// The most bytes one request message may have.
        limit: usize,
    },
    /// Something named in the request does not exist (for the caller).
    #[error("{message}")]
    NotFound {
        /// Stable code, e.g. `PAIRING_NOT_FOUND`.
        reason: &'static str,
        /// For people.
        message: String,
    },
    /// The request is well-formed but the state does not allow it.
    #[error("{message}")]
    FailedPrecondition {
        /// Stable code, e.g. `NO_ACCOUNT_KEY`.
        reason: &'static str,
        /// For people.
        message: String,
    },
    /// The caller's role does not allow this.
    #[error("{message}")]
    Forbidden {
        /// Stable code, e.g. `NOT_ALLOWED`.
        reason: &'static str,
        /// For people.
        message: String,
    },
    /// The request would duplicate something that exists.
    #[error("{message}")]
    Conflict {
        /// Stable code, e.g. `MESSAGE_ID_TAKEN`.
        reason: &'static str,
        /// For people.
        message: String,
    },
    /// A size or count limit would be exceeded.
    #[error("{message}")]
    LimitExceeded {
        /// Stable code, e.g. `INBOX_FULL`.
        reason: &'static str,
        /// For people.
        message: String,
    },
    /// Too many attempts.
    #[error("too many attempts; try again in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long until the next attempt would be allowed.
        retry_after: Duration,
    },
    /// The SMTP server refused or could not be reached.
    #[error("the email could not be sent; try again later")]
    EmailSendFailed,
    /// The database did not answer.
    #[error("the server's database is unavailable; try again")]
    Unavailable(#[source] StoreError),
    /// The blob store (data dir or S3) failed; the cause is logged, never sent.
    #[error("file storage is unavailable; try again")]
    StorageUnavailable(String),
    /// A bug or broken invariant; details are in the server log.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The stable code clients match on.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument { reason, .. }
            | Self::NotFound { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::Conflict { reason, .. }
            | Self::Forbidden { reason, .. }
            | Self::LimitExceeded { reason, .. } => reason,
            Self::UsernameTaken => "USERNAME_TAKEN",
            Self::EmailTaken => "EMAIL_TAKEN",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::TotpRequired => "TOTP_REQUIRED",
            Self::TotpInvalid => "TOTP_INVALID",
            Self::OneTimeCodeInvalid => "ONE_TIME_CODE_INVALID",
            Self::SessionInvalid => "SESSION_INVALID",
            Self::RefreshTokenInvalid => "REFRESH_TOKEN_INVALID",
            Self::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Self::AccountDisabled => "ACCOUNT_DISABLED",
            Self::SignUpClosed => "SIGN_UP_CLOSED",
            Self::PasswordRequired => "PASSWORD_REQUIRED",
            Self::EmailUnavailable => "EMAIL_UNAVAILABLE",
            Self::NoEmail => "NO_EMAIL",
            Self::TotpNotPending => "TOTP_NOT_PENDING",
            Self::TotpAlreadyEnabled => "TOTP_ALREADY_ENABLED",
            Self::TotpNotEnabled => "TOTP_NOT_ENABLED",
            Self::DeviceNotFound => "DEVICE_NOT_FOUND",
            Self::CannotSignOutCurrentDevice => "CANNOT_SIGN_OUT_CURRENT_DEVICE",
            Self::MalformedRequest => "MALFORMED_REQUEST",
            Self::RequestTooLarge { .. } => "REQUEST_TOO_LARGE",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::EmailSendFailed => "EMAIL_SEND_FAILED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::StorageUnavailable(_) => "STORAGE_UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound { reason, message: message.into() }
    }

    /// Shorthand for [`Error::FailedPrecondition`].
    pub fn precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::FailedPrecondition { reason, message: message.into() }
    }

    /// Shorthand for [`Error::LimitExceeded`].
    pub fn limit(reason: &'static str, message: impl Into<String>) -> Self {
        Self::LimitExceeded { reason, message: message.into() }
    }

    /// Shorthand for a refused field.
    pub fn invalid(reason: &'static str, field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument { reason, field, message: message.into() }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(Conflict::Username) => Self::UsernameTaken,
            StoreError::Conflict(Conflict::Email) => Self::EmailTaken,
            StoreError::Unavailable(_) => Self::Unavailable(e),
            StoreError::Migration(_) | StoreError::Corrupt(_) => Self::Internal(e.to_string()),
        }
    }
}
