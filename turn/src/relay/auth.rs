//! The relay's `AuthHandler`: accepts exactly the credentials [`crate::credentials`] issues.
//!
//! The `turn` crate asks for the long-term key of a username (RFC 5389 §15.4:
//! `MD5(username:realm:password)`) and then checks the request's MESSAGE-INTEGRITY with it, so a
//! client is accepted only if it knows `password = base64(HMAC-SHA1(secret, username))`. The
//! crate's own `LongTermAuthHandler` takes a bare expiry as username; ours takes
//! `expiry:account`, checks the expiry first and refuses everything else.
//!
//! # Security
//! Every authenticated request (Allocate, Refresh, CreatePermission, ChannelBind) comes through
//! here, so an allocation cannot be refreshed past its credentials' expiry. Refusals are logged
//! at debug level with the reason and source address, never with a password; usernames that do
//! not parse are not logged at all (they are attacker-controlled text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use turn::auth::{AuthHandler, generate_auth_key};

use super::gate::RequestContext;
use crate::credentials::{ParsedUsername, TurnSecret, VerifyError};

/// Derives long-term keys from the shared secret for `expiry:account` usernames.
pub(crate) struct RestAuthHandler {
    secret: TurnSecret,
    realm: String,
    context: Arc<RequestContext>,
}

impl RestAuthHandler {
    pub(crate) fn new(secret: TurnSecret, realm: String, context: Arc<RequestContext>) -> Self {
        Self { secret, realm, context }
    }

    /// The long-term key for `username` in `realm`, checking its expiry against `now` unless
    /// `now` is `None`.
    fn key_for(&self, username: &str, realm: &str, now: Option<SystemTime>) -> Result<Vec<u8>, Refusal> {
        if realm != self.realm {
            return Err(Refusal::Realm);
        }
        let parsed = ParsedUsername::parse(username).map_err(|_| Refusal::Malformed)?;
        if let Some(now) = now {
            parsed.check_expiry(now).map_err(|e| match e {
                VerifyError::Expired => Refusal::Expired { account_id: parsed.account_id.to_owned() },
                VerifyError::MalformedUsername | VerifyError::BadPassword => Refusal::Malformed,
            })?;
        }
        let password = self.secret.password_for(username).map_err(|_| Refusal::Key)?;
        Ok(generate_auth_key(username, realm, &password))
    }

    /// The long-term key for `username`, expired or not (the gate checks integrity with it).
    pub(crate) fn key_ignoring_expiry(&self, username: &str, realm: &str) -> Result<Vec<u8>, Refusal> {
        self.key_for(username, realm, None)
    }
}

impl AuthHandler for RestAuthHandler {
    fn auth_handle(&self, username: &str, realm: &str, src_addr: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        let now = if self.context.is_follow_up() { None } else { Some(SystemTime::now()) };
        match self.key_for(username, realm, now) {
            Ok(key) => {
                // The password check itself happens in the crate, against this key.
                tracing::trace!(%src_addr, "TURN username accepted, checking its password");
                Ok(key)
            }
            Err(refusal) => {
                tracing::debug!(%src_addr, %refusal, "TURN request refused");
                Err(turn::Error::Other(refusal.to_string()))
            }
        }
    }
}

/// Why a TURN request was refused before its password was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("the realm is not ours")]
    Realm,
    #[error("the username is not <expiry>:<account id>")]
    Malformed,
    #[error("the credentials of account {account_id} have expired")]
    Expired { account_id: String },
    #[error("the secret cannot key HMAC-SHA1")]
    Key,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const USERNAME: &str = "1700000000:0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b";

    fn handler() -> RestAuthHandler {
        RestAuthHandler::new(
            TurnSecret::new("kitsulan-test-secret").unwrap(),
            "kitsulan".to_owned(),
            Arc::new(RequestContext::default()),
        )
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn derives_the_known_long_term_key() {
        // Independently: python3 -c "import hashlib; print(hashlib.md5(
        //   b'1700000000:0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b:kitsulan:ZXLHeG3iARyuAI7FNujXZ/m85rU=').hexdigest())"
        let key = handler().key_for(USERNAME, "kitsulan", Some(at(1_699_999_999))).unwrap();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "cf20874d04a9c9e5822225b0bf56cd24");
    }

    #[test]
    fn refuses_expired_malformed_and_foreign_realm() {
        let h = handler();
        assert_eq!(
            h.key_for(USERNAME, "kitsulan", Some(at(1_700_000_000))),
            Err(Refusal::Expired { account_id: "0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b".to_owned() })
        );
        // The gate checks integrity of expired credentials too; the same key.
        assert_eq!(
            h.key_ignoring_expiry(USERNAME, "kitsulan"),
            h.key_for(USERNAME, "kitsulan", Some(at(1_699_999_999)))
        );
        assert_eq!(h.key_for(USERNAME, "elsewhere", Some(at(1_600_000_000))), Err(Refusal::Realm));
        assert_eq!(h.key_ignoring_expiry(USERNAME, "elsewhere"), Err(Refusal::Realm));
        for username in ["1700000000", "alice", "1700000000:", "x:alice", ""] {
            assert_eq!(
                h.key_for(username, "kitsulan", Some(at(1_600_000_000))),
                Err(Refusal::Malformed),
                "{username:?}"
            );
        }
        // With no request known (or an Allocate), the expiry is checked: USERNAME expired in 2023.
        assert!(h.auth_handle(USERNAME, "kitsulan", "127.0.0.1:1".parse().unwrap()).is_err());
    }
}
