//! The strings [`ErrorReason`] and [`GatewayCloseCode`] travel as: the server never sends the
//! enums themselves, but the value's name without its prefix (`ERROR_REASON_USERNAME_INVALID`
//! is sent as `"USERNAME_INVALID"` in `google.rpc.ErrorInfo.reason` and `GatewayError.reason`),
//! and the close code's number.

use std::fmt;

use crate::v1::{ErrorReason, GatewayCloseCode};

const REASON_PREFIX: &str = "ERROR_REASON_";

impl ErrorReason {
    /// The string clients see, e.g. `"USERNAME_INVALID"` (`""` for `Unspecified`, which the
    /// server never sends).
    pub fn as_wire_str(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            reason => reason.as_str_name().strip_prefix(REASON_PREFIX).unwrap_or_default(),
        }
    }

    /// The reason a client received as `reason` (`None` for a string no reason is sent as).
    pub fn from_wire_str(reason: &str) -> Option<Self> {
        if reason.is_empty() || reason.starts_with(REASON_PREFIX) {
            return None;
        }
        Self::from_str_name(&format!("{REASON_PREFIX}{reason}")).filter(|r| *r != Self::Unspecified)
    }

    /// Every reason the server sends (all values but `Unspecified`), in the `.proto` order.
    pub fn all() -> impl Iterator<Item = Self> {
        (1..).map_while(|n| Self::try_from(n).ok())
    }
}

impl fmt::Display for ErrorReason {
    /// The wire string ([`ErrorReason::as_wire_str`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_wire_str())
    }
}

impl GatewayCloseCode {
    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        u16::try_from(i32::from(self)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_its_wire_string() {
        let all: Vec<ErrorReason> = ErrorReason::all().collect();
        assert!(all.len() > 100, "{} reasons", all.len());
        for reason in all {
            let wire = reason.as_wire_str();
            assert!(!wire.is_empty() && !wire.starts_with(REASON_PREFIX), "{reason:?} is sent as {wire:?}");
            assert_eq!(format!("ERROR_REASON_{wire}"), reason.as_str_name());
            assert_eq!(ErrorReason::from_wire_str(wire), Some(reason), "{wire}");
            assert_eq!(reason.to_string(), wire);
        }
        assert_eq!(ErrorReason::UsernameInvalid.as_wire_str(), "USERNAME_INVALID");
        assert_eq!(ErrorReason::CannotSignOutCurrentDevice.as_wire_str(), "CANNOT_SIGN_OUT_CURRENT_DEVICE");
    }

    #[test]
    fn strings_that_are_no_reason_are_refused() {
        for wire in ["", "UNSPECIFIED", "ERROR_REASON_INTERNAL", "internal", "NO_SUCH_REASON"] {
            assert_eq!(ErrorReason::from_wire_str(wire), None, "{wire:?}");
        }
    }

    #[test]
    fn the_numbers_run_without_gaps() {
        // `all` stops at the first unused number: a gap would hide every reason after it.
        let defined = (1..10_000).filter(|n| ErrorReason::try_from(*n).is_ok()).count();
        assert_eq!(ErrorReason::all().count(), defined);
    }

    #[test]
    fn close_codes_are_the_numbers_sent() {
        assert_eq!(GatewayCloseCode::Unauthenticated.code(), 4001);
        assert_eq!(GatewayCloseCode::Protocol.code(), 4002);
        assert_eq!(GatewayCloseCode::SignedOut.code(), 4003);
        assert_eq!(GatewayCloseCode::SlowConsumer.code(), 4008);
        assert_eq!(GatewayCloseCode::HeartbeatTimeout.code(), 4009);
        assert_eq!(GatewayCloseCode::GoingAway.code(), 1001);
        assert_eq!(GatewayCloseCode::TooLarge.code(), 1009);
        assert_eq!(GatewayCloseCode::Internal.code(), 1011);
    }
}
