//! Guilds (docs/guilds.md) from outside: an owner sets up a community with categories, a private
//! channel and an announcement channel; people join by invite; roles decide who sees and does
//! what; moderation is recorded in the audit log. Each refusal is written as the attack it
//! stops: a stranger reading a guild, a member granting themselves what they lack or acting on
//! someone above them, guessing invite codes, a banned account coming back by a new invite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use kitsulan_client::people::{PASSWORD, account_id, start};
use kitsulan_client::{Client, Database, TestServer, assert_refused};
use kitsulan_proto::v1::{
    AuditAction, BanMemberRequest, DeleteGuildRequest, GetInviteRequest, GuildChannelKind, KickMemberRequest,
    LeaveGuildRequest, ListAuditLogRequest, ListMembersRequest, PermissionOverwrite,
    SetChannelOverwriteRequest, TimeOutMemberRequest, UpdateRoleRequest, permission_overwrite,
};

const VIEW_CHANNEL: u64 = 1 << 0;
const SEND_MESSAGES: u64 = 1 << 1;
const MANAGE_MESSAGES: u64 = 1 << 2;
const KICK_MEMBERS: u64 = 1 << 5;
const TIMEOUT_MEMBERS: u64 = 1 << 7;
const ADMINISTRATOR: u64 = 1 << 16;

async fn plain(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client.sign_up(username, PASSWORD).await.unwrap_or_else(|e| panic!("SignUp of {username}: {e:?}"));
    client
}

/// The names of the channels `client` sees in the guild, in the list's order.
async fn visible(client: &Client, guild: &str) -> Vec<String> {
    client.get_guild(guild).await.unwrap().channels.into_iter().map(|c| c.name).collect()
}

async fn set_up_a_community_with_roles_invites_and_moderation(database: Database) {
    let server = start(database).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let mallory = plain(&server, "mallory").await;
    let (b, c, m) = (account_id(&bob), account_id(&carol), account_id(&mallory));

    // A new guild starts with two categories, #general and a voice lobby.
    let guild = alice.create_guild("LAN party").await.unwrap();
    let id = guild.id.as_str();
    assert_eq!(guild.member_count, 1);
    assert_eq!(visible(&alice, id).await, ["Text channels", "general", "Voice channels", "Lobby"]);
    let text = alice.get_guild(id).await.unwrap().channels[0].id.clone();
    let news = alice.create_channel(id, GuildChannelKind::Announcement, "news", &text, false).await.unwrap();
    let staff = alice.create_channel(id, GuildChannelKind::Text, "staff", &text, true).await.unwrap();
    assert_eq!(news.permissions & SEND_MESSAGES, SEND_MESSAGES, "the owner posts everywhere");

    // A stranger learns nothing about it, not even that it exists.
    assert_refused(mallory.get_guild(id).await, "GUILD_NOT_FOUND");
    assert_refused(
        mallory.create_channel(id, GuildChannelKind::Text, "spam", "", false).await,
        "GUILD_NOT_FOUND",
    );

    // Invites: the code is shown once; guessing or mangling it finds nothing.
    let invite = alice.create_invite(id, 3600, 2).await.unwrap();
    assert_eq!(invite.code.len(), 22);
    let preview =
        bob.guilds().get_invite(GetInviteRequest { code: invite.code.clone() }).await.unwrap().into_inner();
    assert_eq!((preview.guild_name.as_str(), preview.member_count, preview.member), ("LAN party", 1, false));
    for guess in ["AAAAAAAAAAAAAAAAAAAAAA", "' OR 1=1 --", "", &invite.code[..21]] {
        assert_refused(bob.join_guild(guess).await, "INVITE_NOT_FOUND");
    }
    let joined = bob.join_guild(&invite.code).await.unwrap();
    assert!(joined.joined);
    assert!(!bob.join_guild(&invite.code).await.unwrap().joined, "a member's second visit does not count");
    carol.join_guild(&invite.code).await.unwrap();
    assert_refused(mallory.join_guild(&invite.code).await, "INVITE_USED_UP");

    // Members see what @everyone may see: not the private channel; they cannot post news.
    assert_eq!(visible(&bob, id).await, ["Text channels", "general", "news", "Voice channels", "Lobby"]);
    let bob_view = bob.get_guild(id).await.unwrap();
    let bob_news = bob_view.channels.iter().find(|ch| ch.id == news.id).unwrap();
    assert_eq!(bob_news.permissions & SEND_MESSAGES, 0);
    assert!(bob_news.overwrites.is_empty(), "a plain member does not see the overwrites");
    assert_refused(
        bob.guilds()
            .delete_channel(kitsulan_proto::v1::DeleteChannelRequest { channel_id: staff.id.clone() })
            .await,
        "CHANNEL_NOT_FOUND",
    );

    // Roles: moderators may kick, time out and manage messages, and see #staff.
    let mods =
        alice.create_role(id, "Moderators", KICK_MEMBERS | TIMEOUT_MEMBERS | MANAGE_MESSAGES).await.unwrap();
    alice.set_member_roles(id, &b, &[&mods.id]).await.unwrap();
    let overwrite = PermissionOverwrite {
        target: Some(permission_overwrite::Target::RoleId(mods.id.clone())),
        allow: VIEW_CHANNEL,
        deny: 0,
    };
    alice
        .guilds()
        .set_channel_overwrite(SetChannelOverwriteRequest {
            channel_id: staff.id.clone(),
            overwrite: Some(overwrite),
        })
        .await
        .unwrap();
    assert!(visible(&bob, id).await.contains(&"staff".to_owned()), "the role's overwrite shows it");
    assert!(!visible(&carol, id).await.contains(&"staff".to_owned()));

    // Nobody grants themselves what they lack, or touches someone above them.
    let escalate = UpdateRoleRequest {
        guild_id: id.to_owned(),
        role_id: mods.id.clone(),
        name: "Moderators".to_owned(),
        color: 0,
        permissions: ADMINISTRATOR,
    };
    assert_refused(bob.guilds().update_role(escalate).await, "NOT_ALLOWED");
    assert_refused(bob.create_role(id, "Admins", ADMINISTRATOR).await, "NOT_ALLOWED");
    assert_refused(bob.set_member_roles(id, &c, &[&mods.id]).await, "NOT_ALLOWED");
    let kick = |who: &str| KickMemberRequest {
        guild_id: id.to_owned(),
        account_id: who.to_owned(),
        reason: "spam".to_owned(),
    };
    assert_refused(bob.guilds().kick_member(kick(&account_id(&alice))).await, "NOT_ALLOWED");
    assert_refused(carol.guilds().kick_member(kick(&b)).await, "NOT_ALLOWED");
    let unknown_bits = UpdateRoleRequest {
        guild_id: id.to_owned(),
        role_id: mods.id.clone(),
        name: "Moderators".to_owned(),
        color: 0,
        permissions: 1 << 40,
    };
    assert_refused(alice.guilds().update_role(unknown_bits).await, "PERMISSIONS_INVALID");

    // A moderator times Carol out, then removes her; she comes back, and the owner bans her.
    let timeout = TimeOutMemberRequest {
        guild_id: id.to_owned(),
        account_id: c.clone(),
        duration_s: 600,
        reason: "flood".to_owned(),
    };
    let until = bob.guilds().time_out_member(timeout).await.unwrap().into_inner().timed_out_until_ms;
    assert!(until > 0);
    let carol_view = carol.get_guild(id).await.unwrap();
    assert_eq!(carol_view.my_timed_out_until_ms, until);
    assert!(
        carol_view.channels.iter().all(|ch| ch.permissions & SEND_MESSAGES == 0),
        "a timeout only lets her read"
    );
    bob.guilds().kick_member(kick(&c)).await.unwrap();
    assert_refused(carol.get_guild(id).await, "GUILD_NOT_FOUND");
    let again = alice.create_invite(id, 0, 0).await.unwrap();
    carol.join_guild(&again.code).await.unwrap();
    let ban =
        BanMemberRequest { guild_id: id.to_owned(), account_id: c.clone(), reason: "ban evasion".to_owned() };
    alice.guilds().ban_member(ban).await.unwrap();
    assert_refused(carol.get_guild(id).await, "GUILD_NOT_FOUND");
    assert_refused(carol.join_guild(&again.code).await, "BANNED");
    // Mallory can still use the new invite.
    mallory.join_guild(&again.code).await.unwrap();
    let members = alice
        .guilds()
        .list_members(ListMembersRequest { guild_id: id.to_owned(), after: String::new(), limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .members;
    let mut ids: Vec<String> = members.into_iter().map(|member| member.account_id).collect();
    ids.sort();
    let mut expected = vec![account_id(&alice), b.clone(), m.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    // The audit log: who did what, newest first, for those allowed to read it.
    let log_request = || ListAuditLogRequest { guild_id: id.to_owned(), before: String::new(), limit: 0 };
    assert_refused(bob.guilds().list_audit_log(log_request()).await, "NOT_ALLOWED");
    let log = alice.guilds().list_audit_log(log_request()).await.unwrap().into_inner().entries;
    let actions: Vec<AuditAction> = log.iter().map(|e| e.action()).collect();
    assert_eq!(actions[0], AuditAction::MemberBanned);
    assert_eq!(
        (log[0].actor_id.as_str(), log[0].target_id.as_str(), log[0].detail.as_str()),
        (account_id(&alice).as_str(), c.as_str(), "ban evasion")
    );
    let kicked = log.iter().find(|e| e.action() == AuditAction::MemberKicked).expect("the kick is recorded");
    assert_eq!((kicked.actor_id.as_str(), kicked.target_id.as_str()), (b.as_str(), c.as_str()));
    for action in [
        AuditAction::MemberTimedOut,
        AuditAction::OverwriteSet,
        AuditAction::MemberRolesChanged,
        AuditAction::RoleCreated,
        AuditAction::InviteCreated,
        AuditAction::ChannelCreated,
        AuditAction::GuildCreated,
    ] {
        assert!(actions.contains(&action), "{action:?} in {actions:?}");
    }
    assert_eq!(actions.last(), Some(&AuditAction::GuildCreated));
    assert!(!actions.contains(&AuditAction::RoleUpdated), "refused changes are not recorded");

    // Bob's export (GDPR access) lists the guild and his role there.
    let export: serde_json::Value = serde_json::from_str(&bob.export_account().await.unwrap()).unwrap();
    assert_eq!(export["guilds"][0]["name"], "LAN party");
    assert_eq!(export["guilds"][0]["roles"], serde_json::json!(["Moderators"]));

    // The owner leaves only after handing the guild on, and deletes it only by its name.
    assert_refused(
        alice.guilds().leave_guild(LeaveGuildRequest { guild_id: id.to_owned() }).await,
        "OWNER_CANNOT_LEAVE",
    );
    let delete =
        |confirm: &str| DeleteGuildRequest { guild_id: id.to_owned(), confirm_name: confirm.to_owned() };
    assert_refused(bob.guilds().delete_guild(delete("LAN party")).await, "NOT_ALLOWED");
    assert_refused(alice.guilds().delete_guild(delete("lan party")).await, "CONFIRMATION_MISMATCH");
    alice.guilds().delete_guild(delete("LAN party")).await.unwrap();
    assert_refused(bob.get_guild(id).await, "GUILD_NOT_FOUND");
    assert!(
        bob.guilds()
            .list_guilds(kitsulan_proto::v1::ListGuildsRequest {})
            .await
            .unwrap()
            .into_inner()
            .guilds
            .is_empty()
    );
}

on_both_databases!(set_up_a_community_with_roles_invites_and_moderation: guild_setup_on_sqlite, guild_setup_on_postgres);

/// Invite codes carry 128 random bits, and looking them up is limited per account: a flood of
/// guesses stops at 30 per 10 minutes.
#[tokio::test]
async fn invite_lookups_are_rate_limited() {
    let server = start(Database::Sqlite).await;
    let guesser = plain(&server, "guesser").await;
    for n in 0..30 {
        let code = format!("{n:0>22}");
        assert_refused(guesser.join_guild(&code).await, "INVITE_NOT_FOUND");
    }
    assert_refused(guesser.join_guild("0000000000000000000030").await, "RATE_LIMITED");
    let preview =
        guesser.guilds().get_invite(GetInviteRequest { code: "0000000000000000000031".to_owned() }).await;
    assert_refused(preview, "RATE_LIMITED");
}
