//! The one place where service errors become gRPC statuses: a status code, a safe message and
//! a `google.rpc.ErrorInfo` (domain `kitsulan`, the stable reason). The cause of internal and
//! availability errors is logged here and never sent.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::services::Error;

/// The gRPC status for a service error.
pub fn status(error: Error) -> Status {
    use Error as E;
    let code = match &error {
        E::InvalidArgument { .. } | E::MalformedRequest => Code::InvalidArgument,
        E::UsernameTaken | E::EmailTaken | E::Conflict { .. } => Code::AlreadyExists,
        E::InvalidCredentials
        | E::TotpRequired
        | E::TotpInvalid
        | E::OneTimeCodeInvalid
        | E::SessionInvalid
        | E::RefreshTokenInvalid
        | E::RefreshTokenReused => Code::Unauthenticated,
        E::AccountDisabled | E::SignUpClosed | E::PasswordRequired | E::Forbidden { .. } => {
            Code::PermissionDenied
        }
        E::EmailUnavailable
        | E::NoEmail
        | E::TotpNotPending
        | E::TotpAlreadyEnabled
        | E::TotpNotEnabled
        | E::CannotSignOutCurrentDevice => Code::FailedPrecondition,
        E::DeviceNotFound | E::NotFound { .. } => Code::NotFound,
        E::FailedPrecondition { .. } => Code::FailedPrecondition,
        E::RateLimited { .. } | E::LimitExceeded { .. } | E::RequestTooLarge { .. } => {
            Code::ResourceExhausted
        }
        E::EmailSendFailed | E::Unavailable(_) | E::StorageUnavailable(_) => Code::Unavailable,
        E::Internal(_) => Code::Internal,
    };
    match &error {
        E::Internal(cause) => tracing::error!(%cause, "internal error"),
        E::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
        E::StorageUnavailable(cause) => tracing::warn!(%cause, "blob storage unavailable"),
        _ => {}
    }
    let mut metadata = HashMap::new();
    if let E::InvalidArgument { field, .. } = &error {
        metadata.insert("field".to_owned(), (*field).to_owned());
    }
    let mut details = ErrorDetails::with_error_info(error.reason(), "kitsulan", metadata);
    let retry_after = match &error {
        E::RateLimited { retry_after } => {
            details.set_retry_info(Some(*retry_after));
            Some(retry_after.as_secs_f64().ceil().max(1.0))
        }
        _ => None,
    };
    let mut status = Status::with_error_details(code, error.to_string(), details);
    if let Some(seconds) = retry_after
        && let Ok(value) = format!("{seconds:.0}").parse()
    {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn reasons_travel_as_error_info() {
        let status = status(Error::invalid("USERNAME_INVALID", "username", "too short"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_details_error_info().unwrap();
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("USERNAME_INVALID", "kitsulan"));
        assert_eq!(info.metadata.get("field").map(String::as_str), Some("username"));
    }

    #[test]
    fn rate_limits_carry_retry_info_and_header() {
        let status = status(Error::RateLimited { retry_after: Duration::from_millis(1500) });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.get_details_retry_info().unwrap().retry_delay, Some(Duration::from_millis(1500)));
        assert_eq!(status.metadata().get("retry-after").unwrap(), "2");
    }

    #[test]
    fn internal_causes_are_not_sent() {
        let status = status(Error::Internal("secret detail at /var/lib".into()));
        assert_eq!(status.message(), "internal error");
    }
}
