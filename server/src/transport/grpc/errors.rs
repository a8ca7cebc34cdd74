//! The one place where service errors become gRPC statuses: a status code, a safe message and
//! a `google.rpc.ErrorInfo` (domain `kitsulan`, the stable reason). The cause of internal and
//! availability errors is never sent: the status keeps the error as its source, and
//! [`log_failed_calls`] logs it with the method, beside every other refusal.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::services::Error;

/// The gRPC status code of each kind of service error.
fn code(error: &Error) -> Code {
    use Error as E;
    match error {
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
        E::RateLimited { .. } | E::Busy { .. } | E::LimitExceeded { .. } | E::RequestTooLarge { .. } => {
            Code::ResourceExhausted
        }
        E::EmailSendFailed | E::Unavailable(_) | E::StorageUnavailable(_) => Code::Unavailable,
        E::Internal(_) => Code::Internal,
    }
}

impl From<Error> for Status {
    /// The gRPC status for a service error. The error rides along as the status's source (for
    /// [`log_failed_calls`]); only its safe message and reason are sent.
    fn from(error: Error) -> Self {
        let mut metadata = HashMap::new();
        if let Error::InvalidArgument { field, .. } = &error {
            metadata.insert("field".to_owned(), (*field).to_owned());
        }
        let mut details = ErrorDetails::with_error_info(error.reason().as_wire_str(), "kitsulan", metadata);
        let retry_after = match &error {
            Error::RateLimited { retry_after } | Error::Busy { retry_after } => {
                details.set_retry_info(Some(*retry_after));
                Some(retry_after.as_secs_f64().ceil().max(1.0))
            }
            _ => None,
        };
        let mut status = Status::with_error_details(code(&error), error.to_string(), details);
        if let Some(seconds) = retry_after
            && let Ok(value) = format!("{seconds:.0}").parse()
        {
            status.metadata_mut().insert("retry-after", value);
        }
        status.set_source(Arc::new(error));
        status
    }
}

/// Logs every call a service refused, with its method, status code and reason: the causes of
/// internal errors (`error`) and of an unavailable database or blob store (`warn`), which
/// clients never see; other refusals at `debug`. Never the request, nor secrets.
///
/// tonic puts the [`Status`] of a refused call into the response's extensions; its source is
/// the service [`Error`] when the status came from one (not for tonic's own refusals).
pub async fn log_failed_calls(request: Request, next: Next) -> Response {
    let uri = request.uri().clone();
    let response = next.run(request).await;
    if let Some(status) = response.extensions().get::<Status>() {
        log_failure(uri.path(), status);
    }
    response
}

fn log_failure(method: &str, status: &Status) {
    let Some(error) = std::error::Error::source(status).and_then(|e| e.downcast_ref::<Error>()) else {
        return;
    };
    let code = status.code();
    let reason = error.reason();
    match error {
        Error::Internal(cause) => tracing::error!(method, ?code, %reason, %cause, "internal error"),
        Error::Unavailable(cause) => tracing::warn!(method, ?code, %reason, %cause, "database unavailable"),
        Error::StorageUnavailable(cause) => {
            tracing::warn!(method, ?code, %reason, %cause, "blob storage unavailable");
        }
        _ => tracing::debug!(method, ?code, %reason, "call refused"),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt as _;

    use super::*;
    use crate::services::ErrorReason;

    #[test]
    fn reasons_travel_as_error_info() {
        let status = Status::from(Error::invalid(ErrorReason::UsernameInvalid, "username", "too short"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_details_error_info().unwrap();
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("USERNAME_INVALID", "kitsulan"));
        assert_eq!(info.metadata.get("field").map(String::as_str), Some("username"));
    }

    #[test]
    fn rate_limits_carry_retry_info_and_header() {
        let status = Status::from(Error::RateLimited { retry_after: Duration::from_millis(1500) });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.get_details_retry_info().unwrap().retry_delay, Some(Duration::from_millis(1500)));
        assert_eq!(status.metadata().get("retry-after").unwrap(), "2");
    }

    #[test]
    fn busy_is_resource_exhausted_with_a_retry_delay() {
        let status = Status::from(Error::Busy { retry_after: Duration::from_secs(1) });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "the server is busy; try again in 1 s");
        assert_eq!(status.get_details_retry_info().unwrap().retry_delay, Some(Duration::from_secs(1)));
        assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
    }

    #[test]
    fn internal_causes_are_not_sent() {
        let status = Status::from(Error::Internal("secret detail at /var/lib".into()));
        assert_eq!(status.message(), "internal error");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "INTERNAL");
        assert!(!format!("{:?}", status.details()).contains("secret detail"));
    }

    /// Collects what a test's tracing subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What the layer logs (at `debug` and above) for one call that fails with `error`.
    async fn logged_for(error: fn() -> Error) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route(
                "/kitsulan.v1.AuthService/SignIn",
                post(move || async move { Status::from(error()).into_http::<Body>() }),
            )
            .layer(axum::middleware::from_fn(log_failed_calls));
        let request =
            axum::http::Request::post("/kitsulan.v1.AuthService/SignIn").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert!(response.headers().contains_key("grpc-status"));
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[tokio::test]
    async fn failed_calls_are_logged_with_method_code_reason_and_the_hidden_cause() {
        let log = logged_for(|| Error::Internal("disk on fire".into())).await;
        assert!(log.contains("ERROR"), "{log}");
        for part in [
            "internal error",
            "/kitsulan.v1.AuthService/SignIn",
            "code=Internal",
            "reason=INTERNAL",
            "disk on fire",
        ] {
            assert!(log.contains(part), "{part:?} missing from {log}");
        }

        let log = logged_for(|| Error::StorageUnavailable("bucket gone".into())).await;
        assert!(log.contains("WARN") && log.contains("blob storage unavailable"), "{log}");
        assert!(log.contains("reason=STORAGE_UNAVAILABLE") && log.contains("bucket gone"), "{log}");

        let log = logged_for(|| Error::InvalidCredentials).await;
        assert!(log.contains("DEBUG") && log.contains("call refused"), "{log}");
        assert!(log.contains("code=Unauthenticated") && log.contains("reason=INVALID_CREDENTIALS"), "{log}");
    }
}
