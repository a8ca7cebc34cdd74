#![allow(clippy::unwrap_used)] // A table row that cannot be set up should stop loudly.

//! The precedence rules as a table: each row a member, a channel and what they may do there.

use uuid::Uuid;

use super::*;

const NOW: i64 = 1_700_000_000_000;

/// Ids that read well in the table (UUIDv7-shaped is not needed by the rules).
fn role_id(n: u8) -> RoleId {
    RoleId::from_uuid(Uuid::from_u128(0x1000 + u128::from(n)))
}

fn account(n: u8) -> AccountId {
    AccountId::from_uuid(Uuid::from_u128(0x2000 + u128::from(n)))
}

const OWNER: u8 = 0;
const EVERYONE: u8 = 0;
const HELPER: u8 = 1;
const MUTED: u8 = 2;
const MODERATOR: u8 = 3;
const ADMIN: u8 = 4;

use Permissions as P;

struct World {
    everyone: Role,
    roles: Vec<Role>,
}

impl World {
    fn new() -> Self {
        let role = |n, position, permissions| Role { id: role_id(n), position, permissions };
        Self {
            everyone: role(EVERYONE, 0, P::EVERYONE_DEFAULT),
            roles: vec![
                role(HELPER, 1, P::MENTION_EVERYONE | P::MANAGE_MESSAGES),
                role(MUTED, 1, P::NONE),
                role(
                    MODERATOR,
                    2,
                    P::KICK_MEMBERS | P::TIMEOUT_MEMBERS | P::MANAGE_ROLES | P::MANAGE_MESSAGES,
                ),
                role(ADMIN, 3, P::ADMINISTRATOR),
            ],
        }
    }

    fn guild(&self) -> Guild<'_> {
        Guild { owner: account(OWNER), everyone: &self.everyone, roles: &self.roles }
    }

    fn role(&self, n: u8) -> &Role {
        if n == EVERYONE { &self.everyone } else { self.roles.iter().find(|r| r.id == role_id(n)).unwrap() }
    }
}

fn member(n: u8, roles: &[RoleId]) -> Member<'_> {
    Member { account: account(n), roles, timed_out_until_ms: 0 }
}

fn everyone_ow(allow: Permissions, deny: Permissions) -> Overwrite {
    Overwrite { target: Target::Role(role_id(EVERYONE)), allow, deny }
}

fn role_ow(n: u8, allow: Permissions, deny: Permissions) -> Overwrite {
    Overwrite { target: Target::Role(role_id(n)), allow, deny }
}

fn member_ow(n: u8, allow: Permissions, deny: Permissions) -> Overwrite {
    Overwrite { target: Target::Member(account(n)), allow, deny }
}

/// One row: who (account number, roles, timeout), the channel, what they may do there.
struct Row {
    says: &'static str,
    who: u8,
    roles: Vec<u8>,
    timed_out_until_ms: i64,
    kind: ChannelKind,
    sight: Sight,
    overwrites: Vec<Overwrite>,
    expect: Permissions,
}

fn row(says: &'static str, who: u8, roles: &[u8], overwrites: Vec<Overwrite>, expect: Permissions) -> Row {
    Row {
        says,
        who,
        roles: roles.to_vec(),
        timed_out_until_ms: 0,
        kind: ChannelKind::Text,
        sight: Sight::Roles,
        overwrites,
        expect,
    }
}

const NO: Permissions = P::NONE;
const MEMBER: u8 = 10;

#[test]
fn the_precedence_table() {
    let world = World::new();
    let guild = world.guild();
    let default = P::EVERYONE_DEFAULT;
    let no_view = everyone_ow(NO, P::VIEW_CHANNEL);
    let rows = vec![
        row("a member with no role has what @everyone has", MEMBER, &[], vec![], default),
        row(
            "roles add to @everyone",
            MEMBER,
            &[HELPER],
            vec![],
            default | P::MENTION_EVERYONE | P::MANAGE_MESSAGES,
        ),
        row(
            "the owner has everything, whatever the channel says",
            OWNER,
            &[],
            vec![no_view, member_ow(OWNER, NO, P::ALL)],
            P::ALL,
        ),
        row(
            "an administrator has everything, overwrites do not apply",
            MEMBER,
            &[ADMIN],
            vec![no_view, role_ow(ADMIN, NO, P::ALL)],
            P::ALL,
        ),
        row("@everyone denied viewing: the channel gives nothing", MEMBER, &[HELPER], vec![no_view], NO),
        row(
            "a role's allow beats the @everyone deny",
            MEMBER,
            &[MODERATOR],
            vec![no_view, role_ow(MODERATOR, P::VIEW_CHANNEL, NO)],
            default | P::KICK_MEMBERS | P::TIMEOUT_MEMBERS | P::MANAGE_ROLES | P::MANAGE_MESSAGES,
        ),
        row(
            "one role's allow beats another role's deny",
            MEMBER,
            &[MUTED, HELPER],
            vec![role_ow(MUTED, NO, P::SEND_MESSAGES), role_ow(HELPER, P::SEND_MESSAGES, NO)],
            default | P::MENTION_EVERYONE | P::MANAGE_MESSAGES,
        ),
        row(
            "the member's own deny beats a role's allow",
            MEMBER,
            &[HELPER],
            vec![role_ow(HELPER, P::SEND_MESSAGES, NO), member_ow(MEMBER, NO, P::SEND_MESSAGES)],
            // No SEND_MESSAGES: no @everyone mentions or files either (rule 4).
            default.without(P::SEND_MESSAGES | P::ATTACH_FILES) | P::MANAGE_MESSAGES,
        ),
        row(
            "the member's own allow beats the @everyone deny",
            MEMBER,
            &[],
            vec![no_view, member_ow(MEMBER, P::VIEW_CHANNEL, NO)],
            default,
        ),
        row(
            "another member's overwrite is not this one's",
            MEMBER,
            &[],
            vec![no_view, member_ow(11, P::VIEW_CHANNEL, NO)],
            NO,
        ),
        row(
            "allow and deny of one bit in one overwrite: allow wins",
            MEMBER,
            &[],
            vec![everyone_ow(P::MANAGE_MESSAGES, P::MANAGE_MESSAGES)],
            default | P::MANAGE_MESSAGES,
        ),
        row(
            "an announcement channel: @everyone cannot post, mention everyone or attach, still reads and reacts",
            MEMBER,
            &[HELPER],
            vec![everyone_ow(NO, P::SEND_MESSAGES)],
            default.without(P::SEND_MESSAGES | P::ATTACH_FILES) | P::MANAGE_MESSAGES,
        ),
        row(
            "an announcement channel: a role allowed to post posts",
            MEMBER,
            &[HELPER],
            vec![everyone_ow(NO, P::SEND_MESSAGES), role_ow(HELPER, P::SEND_MESSAGES, NO)],
            default | P::MENTION_EVERYONE | P::MANAGE_MESSAGES,
        ),
        row(
            "an overwrite cannot make an administrator",
            MEMBER,
            &[],
            vec![member_ow(MEMBER, P::ADMINISTRATOR | P::BAN_MEMBERS, NO)],
            default | P::BAN_MEMBERS,
        ),
        row(
            "a role that no longer exists gives nothing",
            MEMBER,
            &[99],
            vec![no_view, role_ow(99, P::VIEW_CHANNEL, NO)],
            NO,
        ),
        Row {
            kind: ChannelKind::Voice,
            ..row(
                "voice: no connecting, no speaking",
                MEMBER,
                &[],
                vec![everyone_ow(NO, P::CONNECT)],
                default.without(P::CONNECT | P::SPEAK),
            )
        },
        Row {
            kind: ChannelKind::Voice,
            ..row(
                "voice: without sending messages one still speaks",
                MEMBER,
                &[],
                vec![everyone_ow(NO, P::SEND_MESSAGES)],
                default.without(P::SEND_MESSAGES),
            )
        },
        Row {
            timed_out_until_ms: NOW + 60_000,
            ..row("a timeout leaves only reading", MEMBER, &[HELPER], vec![], P::VIEW_CHANNEL)
        },
        Row {
            timed_out_until_ms: NOW - 1,
            ..row("a timeout that ended leaves nothing behind", MEMBER, &[], vec![], default)
        },
        Row {
            timed_out_until_ms: NOW + 60_000,
            ..row("a timeout in a channel one cannot see: still nothing", MEMBER, &[], vec![no_view], NO)
        },
        Row {
            timed_out_until_ms: NOW + 60_000,
            ..row("an administrator is never timed out", MEMBER, &[ADMIN], vec![], P::ALL)
        },
        Row {
            sight: Sight::Outsider,
            ..row("E2EE, not in it: nothing, even for the owner", OWNER, &[], vec![], NO)
        },
        Row {
            sight: Sight::Outsider,
            ..row("E2EE, not in it: nothing, even for an administrator", MEMBER, &[ADMIN], vec![], NO)
        },
        Row {
            sight: Sight::Member,
            ..row("E2EE, in it: seen though @everyone is denied", MEMBER, &[], vec![no_view], default)
        },
        Row {
            sight: Sight::Member,
            ..row(
                "E2EE, in it: seen though their own overwrite denies it",
                MEMBER,
                &[],
                vec![no_view, member_ow(MEMBER, NO, P::VIEW_CHANNEL | P::ADD_REACTIONS)],
                default.without(P::ADD_REACTIONS),
            )
        },
        Row {
            sight: Sight::Member,
            ..row(
                "E2EE, in it: overwrites still take sending away",
                MEMBER,
                &[],
                vec![everyone_ow(NO, P::VIEW_CHANNEL | P::SEND_MESSAGES)],
                default.without(P::SEND_MESSAGES | P::ATTACH_FILES),
            )
        },
        Row {
            sight: Sight::Member,
            timed_out_until_ms: NOW + 60_000,
            ..row("E2EE, in it, in a timeout: only reading", MEMBER, &[], vec![no_view], P::VIEW_CHANNEL)
        },
    ];
    let mut wrong = Vec::new();
    for r in &rows {
        let ids: Vec<RoleId> = r.roles.iter().map(|n| role_id(*n)).collect();
        let who = Member { account: account(r.who), roles: &ids, timed_out_until_ms: r.timed_out_until_ms };
        let channel = Channel { kind: r.kind, overwrites: &r.overwrites, sight: r.sight };
        let got = in_channel(&guild, &who, &channel, NOW);
        if got != r.expect {
            wrong.push(format!("{}:\n   expected {:?}\n   got      {:?}", r.says, r.expect, got));
        }
    }
    assert!(wrong.is_empty(), "{} of {} rows wrong:\n{}", wrong.len(), rows.len(), wrong.join("\n"));
}

#[test]
fn guild_wide_permissions_follow_rules_one_two_and_five() {
    let world = World::new();
    let guild = world.guild();
    let moderator = [role_id(MODERATOR)];
    assert_eq!(in_guild(&guild, &member(OWNER, &[]), NOW), P::ALL);
    assert_eq!(in_guild(&guild, &member(MEMBER, &[role_id(ADMIN)]), NOW), P::ALL);
    assert!(in_guild(&guild, &member(MEMBER, &moderator), NOW).contains(P::KICK_MEMBERS));
    let timed_out = Member { timed_out_until_ms: NOW + 1, ..member(MEMBER, &moderator) };
    assert_eq!(in_guild(&guild, &timed_out, NOW), P::VIEW_CHANNEL);
}

#[test]
fn nobody_edits_a_role_at_or_above_their_own() {
    let world = World::new();
    let guild = world.guild();
    let moderator = [role_id(MODERATOR)];
    let m = member(MEMBER, &moderator);
    assert!(can_edit_role(&guild, &m, world.role(HELPER), NOW));
    assert!(can_edit_role(&guild, &m, world.role(EVERYONE), NOW));
    assert!(!can_edit_role(&guild, &m, world.role(MODERATOR), NOW), "their own role");
    assert!(!can_edit_role(&guild, &m, world.role(ADMIN), NOW), "a role above");
    let helper = [role_id(HELPER)];
    assert!(!can_edit_role(&guild, &member(MEMBER, &helper), world.role(MUTED), NOW), "no MANAGE_ROLES");
    let owner = member(OWNER, &[]);
    assert!(can_edit_role(&guild, &owner, world.role(ADMIN), NOW));
    // An administrator without a high role is still bound by the order.
    let admin = [role_id(ADMIN)];
    assert!(can_edit_role(&guild, &member(MEMBER, &admin), world.role(MODERATOR), NOW));
    assert!(!can_edit_role(&guild, &member(MEMBER, &admin), world.role(ADMIN), NOW));
}

#[test]
fn nobody_grants_what_they_do_not_have() {
    let world = World::new();
    let guild = world.guild();
    let moderator = [role_id(MODERATOR)];
    let has = in_guild(&guild, &member(MEMBER, &moderator), NOW);
    assert!(can_grant(has, P::KICK_MEMBERS | P::SEND_MESSAGES));
    assert!(!can_grant(has, P::BAN_MEMBERS), "a moderator cannot hand out bans");
    assert!(!can_grant(has, P::ADMINISTRATOR));
    assert!(can_grant(in_guild(&guild, &member(OWNER, &[]), NOW), P::ALL));
    // In a channel, what they have there.
    let hidden = [everyone_ow(NO, P::VIEW_CHANNEL)];
    let there = in_channel(
        &guild,
        &member(MEMBER, &moderator),
        &Channel { kind: ChannelKind::Text, overwrites: &hidden, sight: Sight::Roles },
        NOW,
    );
    assert!(!can_grant(there, P::VIEW_CHANNEL), "an overwrite for a channel they cannot see");
}

#[test]
fn moderation_reaches_only_below() {
    let world = World::new();
    let guild = world.guild();
    let (moderator, admin, helper) = ([role_id(MODERATOR)], [role_id(ADMIN)], [role_id(HELPER)]);
    let m = member(MEMBER, &moderator);
    let kick = P::KICK_MEMBERS;
    assert!(can_moderate(&guild, &m, &member(11, &helper), kick, NOW));
    assert!(can_moderate(&guild, &m, &member(11, &[]), P::TIMEOUT_MEMBERS, NOW));
    assert!(!can_moderate(&guild, &m, &member(11, &moderator), kick, NOW), "an equal");
    assert!(!can_moderate(&guild, &m, &member(11, &admin), kick, NOW), "someone above");
    assert!(!can_moderate(&guild, &m, &member(OWNER, &[]), kick, NOW), "the owner");
    assert!(!can_moderate(&guild, &m, &m, kick, NOW), "oneself");
    assert!(!can_moderate(&guild, &m, &member(11, &[]), P::BAN_MEMBERS, NOW), "without the permission");
    let owner = member(OWNER, &[]);
    assert!(can_moderate(&guild, &owner, &member(11, &admin), P::BAN_MEMBERS, NOW));
    assert!(
        !can_moderate(&guild, &owner, &member(11, &admin), P::TIMEOUT_MEMBERS, NOW),
        "an administrator in a timeout"
    );
    let timed_out = Member { timed_out_until_ms: NOW + 1, ..member(MEMBER, &moderator) };
    assert!(!can_moderate(&guild, &timed_out, &member(11, &[]), kick, NOW), "a moderator in a timeout");
}

#[test]
fn bits_are_stable_and_unknown_ones_refused() {
    // Stored and sent: these numbers never change.
    assert_eq!(P::VIEW_CHANNEL.bits(), 1);
    assert_eq!(P::ADMINISTRATOR.bits(), 1 << 16);
    assert_eq!(P::ALL.bits(), (1 << 17) - 1);
    assert_eq!(P::from_bits(1 << 40), None);
    assert_eq!(P::from_bits_truncate((1 << 40) | 1), P::VIEW_CHANNEL);
    assert_eq!(format!("{:?}", P::VIEW_CHANNEL | P::SPEAK), "Permissions(VIEW_CHANNEL | SPEAK)");
}
