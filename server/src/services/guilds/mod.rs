//! Guilds: communities with channels, roles, invites and moderation (docs/guilds.md as it
//! grows). What a member may do is computed once, in [`permissions`].

pub mod permissions;
