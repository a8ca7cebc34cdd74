//! Typed ids. Every entity is identified by a UUIDv7 (time-ordered, globally unique, so data
//! from different servers never collides). Each kind of id is its own type, parsed at the edge;
//! nothing inside the server passes ids around as strings. Secrets (tokens, keys, nonces) draw
//! their random bytes from [`fill_random`].

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Why a piece of text is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The text is not a UUID at all.
    #[error("not a UUID")]
    Malformed,
    /// The text is a UUID, but not version 7.
    #[error("not a UUIDv7")]
    WrongVersion,
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    // Without OS randomness nothing here can be secure; stopping is the only safe answer.
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

macro_rules! uuid_v7_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id for an entity created now.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps a UUID read back from storage; it was validated when it was created.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID, for storage.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                let uuid = Uuid::try_parse(s).map_err(|_| IdError::Malformed)?;
                if uuid.get_version_num() != 7 {
                    return Err(IdError::WrongVersion);
                }
                Ok(Self(uuid))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }
    };
}

uuid_v7_id!(
    /// This installation of KitsuLAN, created once with its database.
    InstanceId
);
uuid_v7_id!(
    /// A person's account.
    AccountId
);
uuid_v7_id!(
    /// One signed-in device of an account (a browser, a phone); each has its own session.
    DeviceId
);
uuid_v7_id!(
    /// A one-time code (emailed, or printed by the admin).
    CodeId
);
uuid_v7_id!(
    /// A message (to-device now; conversation messages later), chosen by the sending device.
    MessageId
);
uuid_v7_id!(
    /// A device-linking session, chosen by the new device.
    PairingId
);
uuid_v7_id!(
    /// A conversation (direct, group, or a guild's channel: a channel's conversation has the
    /// channel's id).
    ConversationId
);
uuid_v7_id!(
    /// A call, chosen by the caller's device.
    CallId
);
uuid_v7_id!(
    /// An attachment (an encrypted blob), chosen by the server at CreateUpload.
    AttachmentId
);
uuid_v7_id!(
    /// An avatar image (one per upload; a new one replaces the old), chosen by the server.
    AvatarId
);
uuid_v7_id!(
    /// A version of an account's key backup (a new one per recovery key), chosen by the server.
    BackupVersionId
);
uuid_v7_id!(
    /// A guild (a community with channels, roles and members), chosen by the server.
    GuildId
);
uuid_v7_id!(
    /// A role in a guild, chosen by the server (a guild's `@everyone` role has the guild's id).
    RoleId
);
uuid_v7_id!(
    /// A guild's channel or category, chosen by the server. A channel that holds messages (all
    /// but categories) is also a conversation with the same id ([`ChannelId::conversation`]).
    ChannelId
);
uuid_v7_id!(
    /// A guild invite, chosen by the server (its code is a separate secret).
    InviteId
);
uuid_v7_id!(
    /// An entry of a guild's audit log, chosen by the store.
    AuditId
);

impl ChannelId {
    /// The conversation that holds this channel's messages.
    pub fn conversation(self) -> ConversationId {
        ConversationId::from_uuid(self.0)
    }
}

impl GuildId {
    /// The guild's `@everyone` role, which has the guild's id.
    pub fn everyone(self) -> RoleId {
        RoleId::from_uuid(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = InstanceId::generate();
        assert_eq!(id.to_string().parse::<InstanceId>(), Ok(id));
    }

    #[test]
    fn only_uuid_v7_is_accepted() {
        let cases = [
            ("", Err(IdError::Malformed)),
            ("not-a-uuid", Err(IdError::Malformed)),
            ("6ba7b810-9dad-11d1-80b4-00c04fd430c8", Err(IdError::WrongVersion)),
            ("0192f9a0-7c4e-7000-8000-000000000000", Ok(())),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<InstanceId>().map(|_| ()), want, "{text:?}");
        }
    }

    #[test]
    fn newer_ids_sort_after_older_ones() {
        let a = InstanceId::generate();
        let b = InstanceId::generate();
        assert!(a < b);
    }
}
