//! [`Client`]: one device of one person, talking to a KitsuLAN server over native gRPC the way
//! an app does: it signs up or in, keeps the device's [`Session`], refreshes it, and sends
//! `authorization: Bearer <access token>` with every call. The e2e tests, the load generator
//! and bots share it.
//!
//! Failed calls are plain [`tonic::Status`]es; [`Refusal`] reads the stable `reason` out of
//! their `google.rpc.ErrorInfo` (docs/api.md "Errors"), and [`assert_refused`] checks a
//! refusal against the documented reason *and* status code, so tests never match message text.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use kitsulan_proto::v1::account_service_client::AccountServiceClient;
use kitsulan_proto::v1::auth_service_client::AuthServiceClient;
use kitsulan_proto::v1::call_service_client::CallServiceClient;
use kitsulan_proto::v1::conversation_service_client::ConversationServiceClient;
use kitsulan_proto::v1::device_service_client::DeviceServiceClient;
use kitsulan_proto::v1::key_service_client::KeyServiceClient;
use kitsulan_proto::v1::pairing_service_client::PairingServiceClient;
use kitsulan_proto::v1::push_service_client::PushServiceClient;
use kitsulan_proto::v1::server_info_service_client::ServerInfoServiceClient;
use kitsulan_proto::v1::to_device_service_client::ToDeviceServiceClient;
use kitsulan_proto::v1::{
    Account, ErrorReason, GetMyAccountRequest, GetServerInfoRequest, GetServerInfoResponse,
    GetTurnCredentialsRequest, GetTurnCredentialsResponse, RefreshRequest, Session, SignInRequest,
    SignInWithCodeRequest, SignOutRequest, SignUpRequest,
};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt as _;

/// The error domain of every KitsuLAN `ErrorInfo`.
pub const ERROR_DOMAIN: &str = "kitsulan";

/// A channel that adds this client's headers (the bearer token, and any extra) to each call.
pub type Authed = InterceptedService<Channel, Headers>;

/// The interceptor behind [`Authed`]: `authorization: Bearer …` when signed in, plus extra
/// headers set with [`Client::with_header`].
#[derive(Clone, Debug, Default)]
pub struct Headers {
    bearer: Option<AsciiMetadataValue>,
    extra: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
}

impl Interceptor for Headers {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        if let Some(bearer) = &self.bearer {
            metadata.insert("authorization", bearer.clone());
        }
        for (key, value) in &self.extra {
            metadata.insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

/// One device: a connection and, once signed in, its session.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    session: Option<Session>,
    extra: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
}

impl Client {
    /// Connects to `url` (`http://host:port`), not signed in.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .connect()
            .await?;
        Ok(Self::new(channel))
    }

    /// A client on an existing channel, not signed in.
    pub fn new(channel: Channel) -> Self {
        Self { channel, session: None, extra: Vec::new() }
    }

    /// Another device on the same connection: same extra headers, no session.
    pub fn another_device(&self) -> Self {
        Self { channel: self.channel.clone(), session: None, extra: self.extra.clone() }
    }

    /// Sends `key: value` with every call (e.g. `x-forwarded-for` through a trusted proxy).
    pub fn with_header(mut self, key: &str, value: &str) -> anyhow::Result<Self> {
        self.extra.push((key.parse()?, value.parse()?));
        Ok(self)
    }

    /// The current session, if signed in.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Replaces the session (e.g. to present an old token on purpose).
    pub fn set_session(&mut self, session: Option<Session>) {
        self.session = session;
    }

    /// The current access token, or "" when signed out.
    pub fn access_token(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.access_token.as_str())
    }

    /// This device's id, or "" when signed out.
    pub fn device_id(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.device_id.as_str())
    }

    /// The connection.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub(crate) fn headers(&self) -> Headers {
        let bearer = self
            .session
            .as_ref()
            .and_then(|s| AsciiMetadataValue::try_from(format!("Bearer {}", s.access_token)).ok());
        Headers { bearer, extra: self.extra.clone() }
    }

    /// `AuthService`, with this device's token when signed in (SignOut needs it).
    pub fn auth(&self) -> AuthServiceClient<Authed> {
        AuthServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    /// `AccountService`, as this device.
    pub fn account(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    /// `DeviceService`, as this device.
    pub fn devices(&self) -> DeviceServiceClient<Authed> {
        DeviceServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    /// `PushService`, as this device.
    pub fn push(&self) -> PushServiceClient<Authed> {
        PushServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    /// `KeyService`, as this device.
    pub fn keys(&self) -> KeyServiceClient<Authed> {
        KeyServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    /// `ToDeviceService`, as this device.
    pub fn to_device(&self) -> ToDeviceServiceClient<Authed> {
        ToDeviceServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    /// `ConversationService`, as this device.
    pub fn conversations(&self) -> ConversationServiceClient<Authed> {
        ConversationServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    /// `ServerInfoService.GetServerInfo` (needs no session).
    pub async fn server_info(&self) -> Result<GetServerInfoResponse, Status> {
        let mut info = ServerInfoServiceClient::with_interceptor(self.channel.clone(), self.headers());
        Ok(info.get_server_info(GetServerInfoRequest {}).await?.into_inner())
    }

    /// `CallService`, as this device.
    pub fn calls(&self) -> CallServiceClient<Authed> {
        CallServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    /// `CallService.GetTurnCredentials`.
    pub async fn turn_credentials(&self) -> Result<GetTurnCredentialsResponse, Status> {
        Ok(self.calls().get_turn_credentials(GetTurnCredentialsRequest {}).await?.into_inner())
    }

    /// `PairingService`, as this device (a new device calls it without a session).
    pub fn pairing(&self) -> PairingServiceClient<Authed> {
        PairingServiceClient::with_interceptor(self.channel.clone(), self.headers())
    }

    fn keep(&mut self, session: Option<Session>) -> Result<Session, Status> {
        let session = session.ok_or_else(|| Status::internal("the server answered without a session"))?;
        self.session = Some(session.clone());
        Ok(session)
    }

    /// Creates an account and signs this device in.
    pub async fn sign_up(&mut self, username: &str, password: &str) -> Result<Session, Status> {
        self.sign_up_with(SignUpRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device_name: "e2e".to_owned(),
            ..SignUpRequest::default()
        })
        .await
    }

    /// Sign-up with every field under the caller's control.
    pub async fn sign_up_with(&mut self, request: SignUpRequest) -> Result<Session, Status> {
        let response = self.auth().sign_up(request).await?.into_inner();
        self.keep(response.session)
    }

    /// Signs this device in with a password (no TOTP).
    pub async fn sign_in(&mut self, username: &str, password: &str) -> Result<Session, Status> {
        self.sign_in_as(username, password, "e2e").await
    }

    /// Signs this device in with a password (no TOTP) under a device name.
    pub async fn sign_in_as(
        &mut self,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<Session, Status> {
        self.sign_in_with(SignInRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            device_name: device_name.to_owned(),
            totp_code: String::new(),
        })
        .await
    }

    /// Password sign-in with every field under the caller's control.
    pub async fn sign_in_with(&mut self, request: SignInRequest) -> Result<Session, Status> {
        let response = self.auth().sign_in(request).await?.into_inner();
        self.keep(response.session)
    }

    /// Signs this device in with a one-time code (emailed, or from `admin user reset-password`);
    /// `totp_code` may be empty.
    pub async fn sign_in_with_code(
        &mut self,
        login: &str,
        code: &str,
        totp_code: &str,
    ) -> Result<Session, Status> {
        let request = SignInWithCodeRequest {
            login: login.to_owned(),
            code: code.to_owned(),
            device_name: "e2e".to_owned(),
            totp_code: totp_code.to_owned(),
        };
        let response = self.auth().sign_in_with_code(request).await?.into_inner();
        self.keep(response.session)
    }

    /// Exchanges the refresh token for new tokens and keeps them.
    pub async fn refresh(&mut self) -> Result<Session, Status> {
        let refresh_token = self
            .session
            .as_ref()
            .map(|s| s.refresh_token.clone())
            .ok_or_else(|| Status::failed_precondition("not signed in"))?;
        let response = self.auth().refresh(RefreshRequest { refresh_token }).await?.into_inner();
        self.keep(response.session)
    }

    /// Signs this device out and forgets the session.
    pub async fn sign_out(&mut self) -> Result<(), Status> {
        self.auth().sign_out(SignOutRequest {}).await?;
        self.session = None;
        Ok(())
    }

    /// `AccountService.GetMyAccount`.
    pub async fn my_account(&self) -> Result<Account, Status> {
        let response = self.account().get_my_account(GetMyAccountRequest {}).await?.into_inner();
        response.account.ok_or_else(|| Status::internal("the server answered without an account"))
    }
}

/// What a failed call said, read from its status and `google.rpc.ErrorInfo`.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The gRPC status code.
    pub code: Code,
    /// `ErrorInfo.reason` ("" when the status has no ErrorInfo).
    pub reason: String,
    /// `ErrorInfo.domain`.
    pub domain: String,
    /// `ErrorInfo.metadata`, e.g. `field` for a refused field.
    pub metadata: HashMap<String, String>,
    /// `google.rpc.RetryInfo.retry_delay`, if present.
    pub retry_delay: Option<Duration>,
    /// The `retry-after` header in seconds, if present.
    pub retry_after: Option<u64>,
    /// The message, for people (and for test failure output only).
    pub message: String,
}

impl Refusal {
    /// Reads everything a client may rely on from `status`.
    pub fn of(status: &Status) -> Self {
        let info = status.get_details_error_info();
        let retry_after = status
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Self {
            code: status.code(),
            reason: info.as_ref().map(|i| i.reason.clone()).unwrap_or_default(),
            domain: info.as_ref().map(|i| i.domain.clone()).unwrap_or_default(),
            metadata: info.map(|i| i.metadata).unwrap_or_default(),
            retry_delay: status.get_details_retry_info().and_then(|r| r.retry_delay),
            retry_after,
            message: status.message().to_owned(),
        }
    }

    /// The refused field (`ErrorInfo.metadata["field"]`), if named.
    pub fn field(&self) -> Option<&str> {
        self.metadata.get("field").map(String::as_str)
    }
}

/// The `ErrorInfo.reason` of `status`, if it has one.
pub fn reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// The gRPC status code docs/api.md gives for `reason` (`None` for a string that is no
/// [`ErrorReason`], and for the reasons only the gateway or the admin commands give).
pub fn documented_code(reason: &str) -> Option<Code> {
    use ErrorReason as R;
    Some(match ErrorReason::from_wire_str(reason)? {
        R::UsernameInvalid
        | R::PasswordInvalid
        | R::DisplayNameInvalid
        | R::DeviceNameInvalid
        | R::EmailInvalid
        | R::IdInvalid
        | R::AccountKeyInvalid
        | R::CertificateInvalid
        | R::KeySignatureInvalid
        | R::MessageEmpty
        | R::MessageTooLarge
        | R::TooManyMessages
        | R::PublicKeyInvalid
        | R::PinInvalid
        | R::PayloadInvalid
        | R::CannotMessageSelf
        | R::TitleInvalid
        | R::RoleInvalid
        | R::UseLeave
        | R::SessionIdInvalid
        | R::LimitInvalid
        | R::SeqInvalid
        | R::SeqInFuture
        | R::SizeInvalid
        | R::TtlInvalid
        | R::TooManyAttachments
        | R::AvatarTypeInvalid
        | R::AvatarInvalid
        | R::CannotBlockSelf
        | R::PageTokenInvalid
        | R::BackupAuthDataInvalid
        | R::BackupIdentityInvalid
        | R::BackupSessionInvalid
        | R::BackupBatchInvalid
        | R::PushEndpointInvalid
        | R::PushKeysInvalid
        | R::WrongMode
        | R::ContentInvalid
        | R::SearchQueryInvalid
        | R::ReactionInvalid
        | R::TimerInvalid
        | R::ChannelParentInvalid
        | R::LayoutInvalid
        | R::PermissionsInvalid
        | R::ConfirmationMismatch
        | R::TextInvalid
        | R::DurationInvalid
        | R::ChannelKindInvalid
        | R::OfferInvalid
        | R::MalformedRequest => Code::InvalidArgument,
        R::UsernameTaken | R::EmailTaken | R::MessageIdTaken => Code::AlreadyExists,
        R::InvalidCredentials
        | R::TotpRequired
        | R::TotpInvalid
        | R::OneTimeCodeInvalid
        | R::SessionInvalid
        | R::RefreshTokenInvalid
        | R::RefreshTokenReused => Code::Unauthenticated,
        R::AccountDisabled | R::SignUpClosed | R::PasswordRequired | R::NotAllowed | R::Banned => {
            Code::PermissionDenied
        }
        R::EmailUnavailable
        | R::NoEmail
        | R::TotpNotPending
        | R::TotpAlreadyEnabled
        | R::TotpNotEnabled
        | R::CannotSignOutCurrentDevice
        | R::AccountKeyExists
        | R::NoAccountKey
        | R::KeysCertificateRequired
        | R::PairingExists
        | R::PairingTaken
        | R::PairingNotClaimed
        | R::PairingAlreadyApproved
        | R::PairingExpired
        | R::PairingClosed
        | R::ModeUnavailable
        | R::NotAGroup
        | R::MessageDeleted
        | R::TurnUnavailable
        | R::AttachmentExpired
        | R::AttachmentNotUploaded
        | R::AttachmentNotLinkable
        | R::UploadIncomplete
        | R::NotARequest
        | R::RequestPending
        | R::AccountBlocked
        | R::BackupVersionStale
        | R::BackupVersionCurrent
        | R::PushUnavailable
        | R::InviteExpired
        | R::InviteUsedUp
        | R::OwnerCannotLeave
        | R::VoiceUnavailable
        | R::NotAVoiceChannel => Code::FailedPrecondition,
        R::DeviceNotFound
        | R::PairingNotFound
        | R::AccountNotFound
        | R::MemberNotFound
        | R::ConversationNotFound
        | R::GuildNotFound
        | R::ChannelNotFound
        | R::RoleNotFound
        | R::InviteNotFound
        | R::MessageNotFound
        | R::ReplyNotFound
        | R::AttachmentNotFound
        | R::AvatarNotFound
        | R::BackupNotFound => Code::NotFound,
        R::RateLimited
        | R::TooManyKeys
        | R::TooManyItems
        | R::InboxFull
        | R::TooManyPending
        | R::StrangerInboxFull
        | R::PairingFull
        | R::TooManyMembers
        | R::TooManyAccounts
        | R::AttachmentTooLarge
        | R::QuotaExceeded
        | R::AvatarTooLarge
        | R::GroupFull
        | R::BackupFull
        | R::BackupTooManyVersions
        | R::TooManyReactions
        | R::TooManyPins
        | R::TooManyRoles
        | R::VoiceFull
        | R::PayloadTooLarge
        | R::TooManyChannels
        | R::TooManyInvites
        | R::RequestTooLarge => Code::ResourceExhausted,
        R::EmailSendFailed | R::Unavailable | R::StorageUnavailable => Code::Unavailable,
        R::Internal => Code::Internal,
        // Refusals of gateway frames and call signals (`GatewayError`), and of `kitsulan admin`.
        R::NotAMember
        | R::CallNotFound
        | R::CallEnded
        | R::CallInProgress
        | R::CallFull
        | R::NotInCall
        | R::DeviceNotInCall
        | R::ToDeviceRequired
        | R::ActionInvalid
        | R::MalformedFrame
        | R::HelloRequired
        | R::HelloTimeout
        | R::Unauthenticated
        | R::SignedOut
        | R::SlowConsumer
        | R::HeartbeatTimeout
        | R::FrameTooLarge
        | R::AckInFuture
        | R::AlreadyReady
        | R::ShuttingDown
        | R::Gone
        | R::NoSuchUser
        | R::Unspecified => return None,
    })
}

/// Asserts that `result` failed with one of `reasons`, carried as docs/api.md says: an
/// `ErrorInfo` in the `kitsulan` domain and the status code the table gives for that reason.
/// Returns what the refusal said.
#[track_caller]
pub fn assert_refused_with<T: Debug>(result: Result<T, Status>, reasons: &[&str]) -> Refusal {
    let status = match result {
        Ok(value) => panic!("expected a refusal with {reasons:?}, but the call succeeded: {value:?}"),
        Err(status) => status,
    };
    let refusal = Refusal::of(&status);
    assert!(
        reasons.contains(&refusal.reason.as_str()),
        "expected reason {reasons:?}, got {:?} ({:?}: {:?})",
        refusal.reason,
        refusal.code,
        refusal.message
    );
    assert_eq!(refusal.domain, ERROR_DOMAIN, "ErrorInfo.domain of {refusal:?}");
    assert_eq!(
        Some(refusal.code),
        documented_code(&refusal.reason),
        "status code of {} (docs/api.md), message {:?}",
        refusal.reason,
        refusal.message
    );
    if refusal.reason == "RATE_LIMITED" {
        let after = refusal.retry_after.unwrap_or(0);
        assert!(after >= 1, "RATE_LIMITED without a retry-after header of at least 1 s: {refusal:?}");
        assert!(refusal.retry_delay.is_some(), "RATE_LIMITED without google.rpc.RetryInfo: {refusal:?}");
    }
    refusal
}

/// [`assert_refused_with`] for exactly one reason.
#[track_caller]
pub fn assert_refused<T: Debug>(result: Result<T, Status>, reason: &str) -> Refusal {
    assert_refused_with(result, &[reason])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn a_refusal_is_read_from_error_details_and_headers() {
        let mut details = ErrorDetails::with_error_info(
            "RATE_LIMITED",
            ERROR_DOMAIN,
            HashMap::from([("field".to_owned(), "username".to_owned())]),
        );
        details.set_retry_info(Some(Duration::from_secs(42)));
        let mut status = Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        status.metadata_mut().insert("retry-after", "42".parse().unwrap());

        assert_eq!(reason(&status).as_deref(), Some("RATE_LIMITED"));
        let refusal = assert_refused(Err::<(), _>(status), "RATE_LIMITED");
        assert_eq!(refusal.field(), Some("username"));
        assert_eq!(refusal.retry_after, Some(42));
        assert_eq!(refusal.retry_delay, Some(Duration::from_secs(42)));
    }

    #[test]
    #[should_panic(expected = "status code of INVALID_CREDENTIALS")]
    fn the_documented_code_is_checked() {
        let details = ErrorDetails::with_error_info("INVALID_CREDENTIALS", ERROR_DOMAIN, HashMap::new());
        let status = Status::with_error_details(Code::PermissionDenied, "no", details);
        assert_refused(Err::<(), _>(status), "INVALID_CREDENTIALS");
    }

    #[test]
    #[should_panic(expected = "the call succeeded")]
    fn success_is_not_a_refusal() {
        assert_refused(Ok::<_, Status>(1), "INVALID_CREDENTIALS");
    }

    #[test]
    fn the_bearer_header_is_sent_when_signed_in() {
        let mut headers = Headers {
            bearer: Some("Bearer kat_x".parse().unwrap()),
            extra: vec![("x-forwarded-for".parse().unwrap(), "10.0.0.1".parse().unwrap())],
        };
        let request = headers.call(Request::new(())).unwrap();
        assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer kat_x");
        assert_eq!(request.metadata().get("x-forwarded-for").unwrap(), "10.0.0.1");
        let request = Headers::default().call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }
}
