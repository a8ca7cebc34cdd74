//! The one error type of the services. Each variant carries a stable [`ErrorReason`] that
//! clients see (see docs/api.md); the transport maps it to a gRPC status in one place.

use std::time::Duration;

pub use kitsulan_proto::v1::ErrorReason;

use crate::store::{Conflict, StoreError};

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field is malformed; `reason` names the rule, `field` the request field.
    #[error("{message}")]
    InvalidArgument {
        /// Stable code, e.g. [`ErrorReason::UsernameInvalid`].
        reason: ErrorReason,
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
        /// Stable code, e.g. [`ErrorReason::PairingNotFound`].
        reason: ErrorReason,
        /// For people.
        message: String,
    },
    /// The request is well-formed but the state does not allow it.
    #[error("{message}")]
    FailedPrecondition {
        /// Stable code, e.g. [`ErrorReason::NoAccountKey`].
        reason: ErrorReason,
        /// For people.
        message: String,
    },
    /// The caller's role does not allow this.
    #[error("{message}")]
    Forbidden {
        /// Stable code, e.g. [`ErrorReason::NotAllowed`].
        reason: ErrorReason,
        /// For people.
        message: String,
    },
    /// The request would duplicate something that exists.
    #[error("{message}")]
    Conflict {
        /// Stable code, e.g. [`ErrorReason::MessageIdTaken`].
        reason: ErrorReason,
        /// For people.
        message: String,
    },
    /// A size or count limit would be exceeded.
    #[error("{message}")]
    LimitExceeded {
        /// Stable code, e.g. [`ErrorReason::InboxFull`].
        reason: ErrorReason,
        /// For people.
        message: String,
    },
    /// Too many attempts.
    #[error("too many attempts; try again in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long until the next attempt would be allowed.
        retry_after: Duration,
    },
    /// The server is busy with work that is bounded on purpose (password hashing) and
    /// refuses more for now.
    #[error("the server is busy; try again in {} s", retry_after.as_secs().max(1))]
    Busy {
        /// When trying again is likely to work.
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
    pub fn reason(&self) -> ErrorReason {
        match self {
            Self::InvalidArgument { reason, .. }
            | Self::NotFound { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::Conflict { reason, .. }
            | Self::Forbidden { reason, .. }
            | Self::LimitExceeded { reason, .. } => *reason,
            Self::UsernameTaken => ErrorReason::UsernameTaken,
            Self::EmailTaken => ErrorReason::EmailTaken,
            Self::InvalidCredentials => ErrorReason::InvalidCredentials,
            Self::TotpRequired => ErrorReason::TotpRequired,
            Self::TotpInvalid => ErrorReason::TotpInvalid,
            Self::OneTimeCodeInvalid => ErrorReason::OneTimeCodeInvalid,
            Self::SessionInvalid => ErrorReason::SessionInvalid,
            Self::RefreshTokenInvalid => ErrorReason::RefreshTokenInvalid,
            Self::RefreshTokenReused => ErrorReason::RefreshTokenReused,
            Self::AccountDisabled => ErrorReason::AccountDisabled,
            Self::SignUpClosed => ErrorReason::SignUpClosed,
            Self::PasswordRequired => ErrorReason::PasswordRequired,
            Self::EmailUnavailable => ErrorReason::EmailUnavailable,
            Self::NoEmail => ErrorReason::NoEmail,
            Self::TotpNotPending => ErrorReason::TotpNotPending,
            Self::TotpAlreadyEnabled => ErrorReason::TotpAlreadyEnabled,
            Self::TotpNotEnabled => ErrorReason::TotpNotEnabled,
            Self::DeviceNotFound => ErrorReason::DeviceNotFound,
            Self::CannotSignOutCurrentDevice => ErrorReason::CannotSignOutCurrentDevice,
            Self::MalformedRequest => ErrorReason::MalformedRequest,
            Self::RequestTooLarge { .. } => ErrorReason::RequestTooLarge,
            Self::RateLimited { .. } | Self::Busy { .. } => ErrorReason::RateLimited,
            Self::EmailSendFailed => ErrorReason::EmailSendFailed,
            Self::Unavailable(_) => ErrorReason::Unavailable,
            Self::StorageUnavailable(_) => ErrorReason::StorageUnavailable,
            Self::Internal(_) => ErrorReason::Internal,
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(reason: ErrorReason, message: impl Into<String>) -> Self {
        Self::NotFound { reason, message: message.into() }
    }

    /// Shorthand for [`Error::FailedPrecondition`].
    pub fn precondition(reason: ErrorReason, message: impl Into<String>) -> Self {
        Self::FailedPrecondition { reason, message: message.into() }
    }

    /// Shorthand for [`Error::LimitExceeded`].
    pub fn limit(reason: ErrorReason, message: impl Into<String>) -> Self {
        Self::LimitExceeded { reason, message: message.into() }
    }

    /// Shorthand for a refused field.
    pub fn invalid(reason: ErrorReason, field: &'static str, message: impl Into<String>) -> Self {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The reasons docs/api.md lists: the first cells of its tables whose header is `| reason |`.
    fn documented_reasons(doc: &str) -> BTreeSet<String> {
        let mut reasons = BTreeSet::new();
        let mut in_table = false;
        for line in doc.lines() {
            if !line.starts_with('|') {
                in_table = false;
                continue;
            }
            if line.starts_with("| reason |") {
                in_table = true;
                continue;
            }
            let Some(first) = line.split('|').nth(1).filter(|_| in_table) else { continue };
            reasons.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
        }
        reasons
    }

    #[test]
    fn every_reason_has_a_line_in_the_api_docs() {
        let documented = documented_reasons(include_str!("../../../docs/api.md"));
        let missing: Vec<&str> =
            ErrorReason::all().map(ErrorReason::as_wire_str).filter(|r| !documented.contains(*r)).collect();
        assert!(missing.is_empty(), "reasons without a line in docs/api.md's error tables: {missing:?}");
        let unknown: Vec<&String> =
            documented.iter().filter(|r| ErrorReason::from_wire_str(r).is_none()).collect();
        assert!(unknown.is_empty(), "docs/api.md's error tables name reasons that do not exist: {unknown:?}");
    }

    #[test]
    fn the_docs_tables_are_read_as_they_are_written() {
        let doc = "| reason | status | when |\n|---|---|---|\n| `A_B`, `C` / `D` | X | `E` here |\n\n\
                   | limit | default |\n|---|---|\n| `F` | 1 |\n";
        let expected: BTreeSet<String> = ["A_B", "C", "D"].map(str::to_owned).into();
        assert_eq!(documented_reasons(doc), expected);
    }

    #[test]
    fn fixed_variants_send_their_own_reason() {
        assert_eq!(Error::UsernameTaken.reason().as_wire_str(), "USERNAME_TAKEN");
        assert_eq!(Error::RateLimited { retry_after: Duration::ZERO }.reason().as_wire_str(), "RATE_LIMITED");
        let error = Error::invalid(ErrorReason::UsernameInvalid, "username", "too short");
        assert_eq!(error.reason().as_wire_str(), "USERNAME_INVALID");
    }
}
