//! Calls as a device and an operator see them (docs/calls.md): building call signals, reading
//! TURN credentials and checking their format. coturn's real tools ([`Uclient`], [`Coturn`])
//! come from `kitsulan-testkit` and are re-exported here.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac as _};
use kitsulan_proto::v1::{CallAction, CallEvent, CallSignal, Event, event};
use sha1::Sha1;

pub use kitsulan_testkit::coturn::{
    Coturn, REALM, REFUSED_BY_COTURN, REFUSED_BY_EMBEDDED, Uclient, coturn_tool, free_port_range,
    free_udp_port, wait_for_stun,
};

/// The largest signal payload the server relays.
pub const MAX_PAYLOAD: usize = 32 * 1024;
/// The most devices in one call.
pub const MAX_CALL_DEVICES: usize = 6;
/// How long a device whose gateway connection dropped stays in its calls.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(10);

/// A signal with no target device, payload or video.
pub fn signal(conversation_id: &str, call_id: &str, action: CallAction) -> CallSignal {
    CallSignal {
        conversation_id: conversation_id.to_owned(),
        call_id: call_id.to_owned(),
        action: action.into(),
        ..CallSignal::default()
    }
}

/// An OFFER, ANSWER or ICE_CANDIDATE for `to_device_id` carrying `payload`.
pub fn directed(
    conversation_id: &str,
    call_id: &str,
    action: CallAction,
    to_device_id: &str,
    payload: &[u8],
) -> CallSignal {
    CallSignal {
        to_device_id: to_device_id.to_owned(),
        payload: payload.to_vec(),
        ..signal(conversation_id, call_id, action)
    }
}

/// The call event in `event`, if it is one.
pub fn call_of(event: &Event) -> Option<&CallEvent> {
    match &event.body {
        Some(event::Body::Call(call)) => Some(call),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials

/// The TURN REST password for `username`: base64(HMAC-SHA1(secret, username)).
pub fn turn_password(secret: &str, username: &str) -> String {
    // HMAC takes keys of any length, so this never fails; an empty result would not match.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `(expiry unix seconds, account id)` from a TURN REST username `<expiry>:<account id>`.
pub fn parse_username(username: &str) -> anyhow::Result<(u64, String)> {
    let (expiry, account) =
        username.split_once(':').with_context(|| format!("no ':' in TURN username {username:?}"))?;
    let expiry = expiry.parse().with_context(|| format!("expiry of TURN username {username:?}"))?;
    Ok((expiry, account.to_owned()))
}

/// The UDP address of a `turn:IP:PORT?transport=udp` (or `stun:IP:PORT`) URL.
pub fn url_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url
        .strip_prefix("turn:")
        .or_else(|| url.strip_prefix("stun:"))
        .with_context(|| format!("{url:?} is no turn: or stun: URL"))?;
    let host = rest.split('?').next().unwrap_or(rest);
    host.parse().with_context(|| format!("the address in {url:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_usernames_are_read() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(url_addr("turn:127.0.0.1:3478?transport=udp").unwrap(), addr("127.0.0.1:3478"));
        assert_eq!(url_addr("stun:192.0.2.7:3478").unwrap(), addr("192.0.2.7:3478"));
        assert!(url_addr("http://x").is_err());
        let (expiry, account) = parse_username("1700000000:0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b").unwrap();
        assert_eq!((expiry, account.as_str()), (1_700_000_000, "0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b"));
    }
}
