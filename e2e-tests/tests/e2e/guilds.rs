//! Guilds (docs/guilds.md) from outside: an owner sets up a community with categories, a private
//! channel and an announcement channel; people join by invite; roles decide who sees and does
//! what; moderation is recorded in the audit log. Each refusal is written as the attack it
//! stops: a stranger reading a guild, a member granting themselves what they lack or acting on
//! someone above them, guessing invite codes, a banned account coming back by a new invite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::time::Duration;

use kitsulan_client::people::{PASSWORD, account_id, online, start};
use kitsulan_client::{Client, Database, TestServer, assert_refused};
use kitsulan_proto::v1::event::Body;
use kitsulan_proto::v1::{
    AuditAction, BanMemberRequest, DeleteGuildRequest, GetInviteRequest, GuildChannelKind, KickMemberRequest,
    LeaveGuildRequest, ListAuditLogRequest, ListMembersRequest, PermissionOverwrite,
    SetChannelOverwriteRequest, TimeOutMemberRequest, UpdateRoleRequest, permission_overwrite,
};

const WAIT: Duration = Duration::from_secs(10);

/// Whether `event` is a guild event for `guild` (`removed` or not).
fn guild_event(event: &kitsulan_proto::v1::Event, guild: &str, removed: bool) -> bool {
    matches!(&event.body, Some(Body::Guild(g)) if g.guild_id == guild && g.removed == removed)
}

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
    assert!(!bob_news.private);
    let alice_staff =
        alice.get_guild(id).await.unwrap().channels.into_iter().find(|ch| ch.id == staff.id).unwrap();
    assert!(alice_staff.private && staff.private);
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
    // The kick reaches Carol's open app at once, and the others' apps hear that the guild
    // changed; a stranger's hears nothing.
    let mut carol_live = online(&server, &carol, "carol").await;
    let mut alice_live = online(&server, &alice, "alice").await;
    let mut mallory_live = online(&server, &mallory, "mallory").await;
    bob.guilds().kick_member(kick(&c)).await.unwrap();
    carol_live.wait_event(WAIT, "Carol's guild removed", |e| guild_event(e, id, true)).await.unwrap();
    alice_live.wait_event(WAIT, "the guild changed", |e| guild_event(e, id, false)).await.unwrap();
    assert_refused(carol.get_guild(id).await, "GUILD_NOT_FOUND");
    let again = alice.create_invite(id, 0, 0).await.unwrap();
    carol.join_guild(&again.code).await.unwrap();
    let ban = BanMemberRequest {
        guild_id: id.to_owned(),
        account_id: c.clone(),
        reason: "ban evasion".to_owned(),
        delete_messages_s: 0,
    };
    alice.guilds().ban_member(ban).await.unwrap();
    carol_live.wait_event(WAIT, "Carol banned", |e| guild_event(e, id, true)).await.unwrap();
    assert_refused(carol.get_guild(id).await, "GUILD_NOT_FOUND");
    assert_refused(carol.join_guild(&again.code).await, "BANNED");
    mallory_live
        .expect_none(Duration::from_millis(300), "a stranger hears of the guild", |e| {
            matches!(e.body, Some(Body::Guild(_)))
        })
        .await
        .unwrap();
    // Mallory can still use the new invite.
    mallory.join_guild(&again.code).await.unwrap();
    mallory_live.wait_event(WAIT, "the guild Mallory joined", |e| guild_event(e, id, false)).await.unwrap();
    let members = alice
        .guilds()
        .list_members(ListMembersRequest {
            guild_id: id.to_owned(),
            after: String::new(),
            limit: 0,
            online_only: false,
        })
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

const MANAGE_CHANNELS: u64 = 1 << 3;
const MANAGE_ROLES: u64 = 1 << 4;
const CREATE_INVITES: u64 = 1 << 8;

/// Every refusal of bad input and of reaching above one's place, each leaving the guild as it
/// was: names, texts, durations, page sizes, kinds, layouts, and a role manager trying to edit,
/// delete, move or out-grant roles above their own.
async fn bad_input_and_reaching_above_ones_place_change_nothing(database: Database) {
    use kitsulan_proto::v1::{
        ArrangeChannelsRequest, ArrangeRolesRequest, ChannelPlace, CreateGuildRequest, CreateInviteRequest,
        DeleteRoleRequest, UpdateChannelRequest, UpdateGuildRequest,
    };
    let server = start(database).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let b = account_id(&bob);
    let guild = alice.create_guild("Club").await.unwrap();
    let id = guild.id.as_str();
    let invite = alice.create_invite(id, 0, 0).await.unwrap();
    bob.join_guild(&invite.code).await.unwrap();

    // Names and texts.
    let create = |name: &str, description: &str| CreateGuildRequest {
        name: name.to_owned(),
        description: description.to_owned(),
    };
    assert_refused(alice.guilds().create_guild(create("", "")).await, "TITLE_INVALID");
    assert_refused(alice.guilds().create_guild(create("Admins\u{202E}nimdA", "")).await, "TITLE_INVALID");
    assert_refused(alice.guilds().create_guild(create("Club", &"x".repeat(1001))).await, "TEXT_INVALID");
    let update = UpdateGuildRequest {
        guild_id: id.to_owned(),
        name: "Club".to_owned(),
        description: "a\u{200B}b".to_owned(),
    };
    assert_refused(alice.guilds().update_guild(update).await, "TEXT_INVALID");

    // Kinds, parents and layouts.
    let details = alice.get_guild(id).await.unwrap();
    let general = details.channels.iter().find(|c| c.name == "general").unwrap().clone();
    // Only a text channel is end-to-end encrypted.
    let (voice, category, news) = (
        GuildChannelKind::Voice as i32,
        GuildChannelKind::Category as i32,
        GuildChannelKind::Announcement as i32,
    );
    for (kind, e2ee) in [(0, false), (99, false), (voice, true), (category, true), (news, true)] {
        let request = kitsulan_proto::v1::CreateChannelRequest {
            guild_id: id.to_owned(),
            kind,
            name: "x".to_owned(),
            topic: String::new(),
            parent_id: String::new(),
            private: false,
            e2ee,
        };
        assert_refused(alice.guilds().create_channel(request).await, "CHANNEL_KIND_INVALID");
    }
    assert_refused(
        alice.create_channel(id, GuildChannelKind::Text, "inside", &general.id, false).await,
        "CHANNEL_PARENT_INVALID",
    );
    let some = details
        .channels
        .iter()
        .take(2)
        .map(|c| ChannelPlace { channel_id: c.id.clone(), parent_id: String::new() });
    let partial = ArrangeChannelsRequest { guild_id: id.to_owned(), layout: some.collect() };
    assert_refused(alice.guilds().arrange_channels(partial).await, "LAYOUT_INVALID");
    let slow = |s: u32| UpdateChannelRequest {
        channel_id: general.id.clone(),
        name: "general".to_owned(),
        topic: String::new(),
        slow_mode_s: s,
    };
    assert_refused(alice.guilds().update_channel(slow(21_601)).await, "DURATION_INVALID");
    alice.guilds().update_channel(slow(30)).await.unwrap();

    // Durations and page sizes.
    let invite_for = |expires_in_s: u32, max_uses: u32| CreateInviteRequest {
        guild_id: id.to_owned(),
        expires_in_s,
        max_uses,
    };
    assert_refused(alice.guilds().create_invite(invite_for(30, 0)).await, "DURATION_INVALID");
    assert_refused(alice.guilds().create_invite(invite_for(31 * 24 * 3600, 0)).await, "DURATION_INVALID");
    assert_refused(alice.guilds().create_invite(invite_for(0, 1001)).await, "LIMIT_INVALID");
    let timeout = TimeOutMemberRequest {
        guild_id: id.to_owned(),
        account_id: b.clone(),
        duration_s: 29 * 24 * 3600,
        reason: String::new(),
    };
    assert_refused(alice.guilds().time_out_member(timeout).await, "DURATION_INVALID");
    let members =
        ListMembersRequest { guild_id: id.to_owned(), after: String::new(), limit: 1001, online_only: false };
    assert_refused(alice.guilds().list_members(members).await, "LIMIT_INVALID");
    let log = ListAuditLogRequest { guild_id: id.to_owned(), before: String::new(), limit: 101 };
    assert_refused(alice.guilds().list_audit_log(log).await, "LIMIT_INVALID");

    // Bob manages roles and channels below his own: "Helpers" is his, "Staff" above it.
    let helpers =
        alice.create_role(id, "Helpers", MANAGE_ROLES | MANAGE_CHANNELS | VIEW_CHANNEL).await.unwrap();
    let staff = alice.create_role(id, "Staff", KICK_MEMBERS).await.unwrap(); // made last: lowest
    let arrange = |ids: &[&str]| ArrangeRolesRequest {
        guild_id: id.to_owned(),
        role_ids: ids.iter().map(|r| (*r).to_owned()).collect(),
    };
    alice.guilds().arrange_roles(arrange(&[&helpers.id, &staff.id])).await.unwrap(); // Staff above Helpers
    alice.set_member_roles(id, &b, &[&helpers.id]).await.unwrap();
    let roles_before = alice.get_guild(id).await.unwrap().roles;

    let edit = |role: &str, permissions: u64| UpdateRoleRequest {
        guild_id: id.to_owned(),
        role_id: role.to_owned(),
        name: "renamed".to_owned(),
        color: 0,
        permissions,
    };
    assert_refused(bob.guilds().update_role(edit(&staff.id, 0)).await, "NOT_ALLOWED");
    assert_refused(bob.guilds().update_role(edit(&helpers.id, 0)).await, "NOT_ALLOWED"); // his own highest
    let delete = DeleteRoleRequest { guild_id: id.to_owned(), role_id: staff.id.clone() };
    assert_refused(bob.guilds().delete_role(delete).await, "NOT_ALLOWED");
    assert_refused(bob.guilds().arrange_roles(arrange(&[&staff.id, &helpers.id])).await, "LAYOUT_INVALID");
    assert_refused(bob.set_member_roles(id, &b, &[&helpers.id, &staff.id]).await, "NOT_ALLOWED");
    // A role below him, but with a permission he lacks.
    let low = bob.create_role(id, "Guests", VIEW_CHANNEL).await.unwrap();
    assert_refused(bob.guilds().update_role(edit(&low.id, VIEW_CHANNEL | KICK_MEMBERS)).await, "NOT_ALLOWED");
    assert_refused(bob.create_role(id, "Kickers", KICK_MEMBERS).await, "NOT_ALLOWED");
    bob.guilds().update_role(edit(&low.id, VIEW_CHANNEL | CREATE_INVITES)).await.unwrap_or_else(|e| {
        // CREATE_INVITES comes from @everyone, so Bob has it and may give it.
        panic!("a permission he has: {e:?}")
    });
    // An overwrite giving what he lacks there, or for a role above him.
    let overwrite = |target: permission_overwrite::Target, allow: u64| SetChannelOverwriteRequest {
        channel_id: general.id.clone(),
        overwrite: Some(PermissionOverwrite { target: Some(target), allow, deny: 0 }),
    };
    let for_low = permission_overwrite::Target::RoleId(low.id.clone());
    assert_refused(
        bob.guilds().set_channel_overwrite(overwrite(for_low.clone(), KICK_MEMBERS)).await,
        "NOT_ALLOWED",
    );
    let for_staff = permission_overwrite::Target::RoleId(staff.id.clone());
    assert_refused(
        bob.guilds().set_channel_overwrite(overwrite(for_staff, SEND_MESSAGES)).await,
        "NOT_ALLOWED",
    );
    bob.guilds().set_channel_overwrite(overwrite(for_low, SEND_MESSAGES)).await.unwrap();

    // The refusals changed nothing: Staff and Helpers are as they were, Staff still above
    // (Guests, made since, went in below both).
    let roles_after = alice.get_guild(id).await.unwrap().roles;
    let find = |roles: &[kitsulan_proto::v1::GuildRole], id: &str| {
        roles.iter().find(|r| r.id == id).unwrap().clone()
    };
    for role in [&staff.id, &helpers.id] {
        let (before, after) = (find(&roles_before, role), find(&roles_after, role));
        assert_eq!((&before.name, before.permissions), (&after.name, after.permissions));
    }
    assert!(find(&roles_after, &staff.id).position > find(&roles_after, &helpers.id).position);
    assert!(find(&roles_after, &helpers.id).position > find(&roles_after, &low.id).position);

    // A flood of guilds from one account stops at 10 an hour.
    for n in 1..10 {
        alice.create_guild(&format!("Guild {n}")).await.unwrap();
    }
    assert_refused(alice.create_guild("Guild 10").await, "RATE_LIMITED");
}

on_both_databases!(bad_input_and_reaching_above_ones_place_change_nothing: guild_refusals_on_sqlite, guild_refusals_on_postgres);

/// Whether `event` is a new message in `conversation` saying `text`.
fn says(event: &kitsulan_proto::v1::Event, conversation: &str, text: &str) -> bool {
    matches!(&event.body, Some(Body::Message(m)) if m.message.as_ref().is_some_and(|message| {
        message.conversation_id == conversation && kitsulan_client::people::cloud_text_of(message) == text
    }))
}

/// Whether `event` is any message or typing in `conversation`.
fn anything_in(event: &kitsulan_proto::v1::Event, conversation: &str) -> bool {
    match &event.body {
        Some(Body::Message(m)) => {
            m.message.as_ref().is_some_and(|message| message.conversation_id == conversation)
        }
        Some(Body::Typing(t)) => t.conversation_id == conversation,
        _ => false,
    }
}

/// Messages in channels, as members live them: each online member's socket gets a channel's
/// messages and typing once, and only for channels their roles let them see; who may post
/// where follows the roles (an announcement channel, a timeout, slow mode); a moderator's
/// deletion is audited; a member given a channel hears it at once, and a kicked one hears
/// nothing more; a ban takes the banned member's last day of messages with it.
async fn channel_messages_follow_the_roles(database: Database) {
    use kitsulan_client::people::cloud_text;
    use kitsulan_proto::v1::{HistoryDirection, UpdateChannelRequest};
    let server = start(database).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let mallory = plain(&server, "mallory").await;
    let (b, c) = (account_id(&bob), account_id(&carol));
    let guild = alice.create_guild("LAN party").await.unwrap();
    let id = guild.id.as_str();
    let details = alice.get_guild(id).await.unwrap();
    let text = details.channels[0].id.clone();
    let general = details.channels.iter().find(|ch| ch.name == "general").unwrap().id.clone();
    let news =
        alice.create_channel(id, GuildChannelKind::Announcement, "news", &text, false).await.unwrap().id;
    let staff = alice.create_channel(id, GuildChannelKind::Text, "staff", &text, true).await.unwrap().id;
    let invite = alice.create_invite(id, 0, 0).await.unwrap();
    bob.join_guild(&invite.code).await.unwrap();
    carol.join_guild(&invite.code).await.unwrap();
    let mut bob_live = online(&server, &bob, "bob").await;
    let mut carol_live = online(&server, &carol, "carol").await;

    // A message in #general reaches every member's socket; one in #staff reaches nobody who
    // cannot see it, and neither does typing there.
    alice.send_message(cloud_text(&general, "welcome!")).await.unwrap();
    bob_live.wait_event(WAIT, "#general at Bob", |e| says(e, &general, "welcome!")).await.unwrap();
    carol_live.wait_event(WAIT, "#general at Carol", |e| says(e, &general, "welcome!")).await.unwrap();
    // Someone already online joins and hears the very next message: their socket follows the
    // channels from the join on, not from when it gets round to the guild event.
    for n in 0..5 {
        let dave = plain(&server, &format!("dave{n}")).await;
        let mut dave_live = online(&server, &dave, "dave").await;
        dave.join_guild(&invite.code).await.unwrap();
        let hello = format!("hi dave{n}");
        alice.send_message(cloud_text(&general, &hello)).await.unwrap();
        dave_live
            .wait_event(WAIT, "the first message after joining", |e| says(e, &general, &hello))
            .await
            .unwrap();
    }
    alice.send_message(cloud_text(&staff, "ban list draft")).await.unwrap();
    let mut alice_live = online(&server, &alice, "alice").await;
    alice_live.gateway().unwrap().typing(&staff, true).unwrap();
    bob_live
        .expect_none(Duration::from_millis(400), "#staff reached Bob", |e| anything_in(e, &staff))
        .await
        .unwrap();
    // Nor can anyone outside read, post in or search it, or even tell it from nothing.
    let history = |client: &Client, channel: &str| {
        let (client, channel) = (client.clone(), channel.to_owned());
        async move { client.list_messages(&channel, 0, HistoryDirection::Backward, 50).await }
    };
    assert_refused(history(&bob, &staff).await, "CONVERSATION_NOT_FOUND");
    assert_refused(bob.send_message(cloud_text(&staff, "let me in")).await, "CONVERSATION_NOT_FOUND");
    assert_refused(history(&mallory, &general).await, "CONVERSATION_NOT_FOUND");
    assert_refused(mallory.send_message(cloud_text(&general, "spam")).await, "CONVERSATION_NOT_FOUND");
    // Typing in #general reaches the others.
    bob_live.gateway().unwrap().typing(&general, true).unwrap();
    carol_live
        .wait_event(WAIT, "Bob typing", |e| matches!(&e.body, Some(Body::Typing(t)) if t.account_id == b))
        .await
        .unwrap();

    // Only the roles given SEND_MESSAGES post news; everyone reads it live.
    assert_refused(bob.send_message(cloud_text(&news, "hi")).await, "NOT_ALLOWED");
    alice.send_message(cloud_text(&news, "doors open at 6")).await.unwrap();
    bob_live.wait_event(WAIT, "news at Bob", |e| says(e, &news, "doors open at 6")).await.unwrap();

    // Unread and mentions: Carol is mentioned once; reading clears it.
    let mention = {
        use kitsulan_crypto::content::proto::{Content, Mention, TextContent, content};
        let body = "@carol bring the router";
        let text = TextContent {
            body: body.to_owned(),
            mentions: vec![Mention { account_id: c.clone(), start: 0, end: 6 }],
            ..Default::default()
        };
        let mut request = cloud_text(&general, body);
        request.content =
            Some(Content { version: 1, body: Some(content::Body::Text(text)), ..Default::default() });
        request
    };
    // A mention names a member of the guild: naming a stranger (to ping them, or to learn
    // whether an account exists) is refused.
    let mut stranger = mention.clone();
    if let Some(kitsulan_crypto::content::proto::content::Body::Text(t)) =
        stranger.content.as_mut().and_then(|c| c.body.as_mut())
    {
        t.mentions[0].account_id = account_id(&mallory);
    }
    assert_refused(alice.send_message(stranger).await, "CONTENT_INVALID");
    let mentioned = alice.send_message(mention).await.unwrap();
    let carol_general = |view: kitsulan_proto::v1::GetGuildResponse| {
        view.channels.into_iter().find(|ch| ch.id == general).unwrap()
    };
    let before = carol_general(carol.get_guild(id).await.unwrap());
    assert_eq!((before.last_seq, before.read_seq, before.mention_count), (mentioned.seq as i64, 0, 1));
    carol.mark_read(&general, mentioned.seq).await.unwrap();
    let after = carol_general(carol.get_guild(id).await.unwrap());
    assert_eq!((after.read_seq, after.mention_count), (mentioned.seq as i64, 0));
    // GetConversation on a channel says the same, with no member rows to list.
    let as_conversation = carol.get_conversation(&general).await.unwrap();
    assert_eq!((as_conversation.unread_count, as_conversation.mention_count), (0, 0));
    assert!(as_conversation.members.is_empty());
    let page = history(&carol, &general).await.unwrap();
    let texts: Vec<String> = page.messages.iter().map(kitsulan_client::people::cloud_text_of).collect();
    assert!(texts.contains(&"welcome!".to_owned()) && texts.contains(&"@carol bring the router".to_owned()));

    // Slow mode: one message a minute for members; a retry of the one sent is not a second
    // message; the owner is exempt.
    let slow = UpdateChannelRequest {
        channel_id: general.clone(),
        name: "general".to_owned(),
        topic: String::new(),
        slow_mode_s: 60,
    };
    alice.guilds().update_channel(slow).await.unwrap();
    let first = cloud_text(&general, "one");
    let stored = bob.send_message(first.clone()).await.unwrap();
    assert_eq!(bob.send_message(first).await.unwrap().id, stored.id, "a retry is answered with the message");
    // Carol's socket gets it once, retry or not.
    let once = |e: &kitsulan_proto::v1::Event| says(e, &general, "one");
    carol_live.wait_event(WAIT, "Bob's message", once).await.unwrap();
    carol_live.expect_none(Duration::from_millis(300), "Bob's message twice", once).await.unwrap();
    assert_refused(bob.send_message(cloud_text(&general, "two")).await, "RATE_LIMITED");
    alice.send_message(cloud_text(&general, "a")).await.unwrap();
    alice.send_message(cloud_text(&general, "b")).await.unwrap();

    // Deleting others' messages takes MANAGE_MESSAGES, and is audited.
    let carols = carol.send_message(cloud_text(&general, "rude words")).await.unwrap();
    assert_refused(bob.delete_message(&general, &carols.id).await, "NOT_ALLOWED");
    alice.delete_message(&general, &carols.id).await.unwrap();
    let log = |client: &Client| {
        let client = client.clone();
        let request = ListAuditLogRequest { guild_id: id.to_owned(), before: String::new(), limit: 0 };
        async move { client.guilds().list_audit_log(request).await.unwrap().into_inner().entries }
    };
    let entries = log(&alice).await;
    assert_eq!(
        (entries[0].action(), entries[0].target_id.as_str()),
        (AuditAction::MessageDeleted, carols.id.as_str())
    );

    // Bob is let into #staff: his open socket follows it at once. What is still on its way to
    // him (the guild events of the slow mode and the timeout) is taken first, so that the guild
    // event waited for below is the overwrite's, not an earlier one (then the post would race
    // his socket's following).
    bob_live.expect_none(Duration::from_millis(500), "nothing, only draining", |_| false).await.unwrap();
    let let_in = SetChannelOverwriteRequest {
        channel_id: staff.clone(),
        overwrite: Some(PermissionOverwrite {
            target: Some(permission_overwrite::Target::AccountId(b.clone())),
            allow: VIEW_CHANNEL | SEND_MESSAGES,
            deny: 0,
        }),
    };
    alice.guilds().set_channel_overwrite(let_in).await.unwrap();
    bob_live.wait_event(WAIT, "the overwrite", |e| guild_event(e, id, false)).await.unwrap();
    alice.send_message(cloud_text(&staff, "welcome to staff")).await.unwrap();
    bob_live.wait_event(WAIT, "#staff at Bob", |e| says(e, &staff, "welcome to staff")).await.unwrap();

    // Carol is kicked: nothing of the guild reaches her socket any more.
    let kick = KickMemberRequest { guild_id: id.to_owned(), account_id: c.clone(), reason: String::new() };
    alice.guilds().kick_member(kick).await.unwrap();
    carol_live.wait_event(WAIT, "Carol removed", |e| guild_event(e, id, true)).await.unwrap();
    alice.send_message(cloud_text(&general, "after the kick")).await.unwrap();
    carol_live
        .expect_none(Duration::from_millis(400), "#general reached Carol after the kick", |e| {
            anything_in(e, &general)
        })
        .await
        .unwrap();
    assert_refused(history(&carol, &general).await, "CONVERSATION_NOT_FOUND");

    // Bob is banned with his last day of messages: they are deleted for everyone, live.
    let ban = BanMemberRequest {
        guild_id: id.to_owned(),
        account_id: b.clone(),
        reason: "spam".to_owned(),
        delete_messages_s: 24 * 3600,
    };
    alice.guilds().ban_member(ban).await.unwrap();
    let deleted = |e: &kitsulan_proto::v1::Event| matches!(&e.body, Some(Body::Message(m)) if m.message.as_ref().is_some_and(|message| message.id == stored.id));
    alice_live.wait_event(WAIT, "Bob's message deleted", deleted).await.unwrap();
    let page = history(&alice, &general).await.unwrap();
    let bobs = page.messages.iter().find(|m| m.id == stored.id).unwrap();
    assert!(bobs.deleted_at_ms > 0 && bobs.content.is_none(), "the banned member's message is gone");
    let entries = log(&alice).await;
    assert_eq!(
        (entries[0].action(), entries[0].target_id.as_str()),
        (AuditAction::MessageDeleted, b.as_str())
    );
    assert_eq!(entries[1].action(), AuditAction::MemberBanned);
    let too_long = BanMemberRequest {
        guild_id: id.to_owned(),
        account_id: c.clone(),
        reason: String::new(),
        delete_messages_s: 8 * 24 * 3600,
    };
    assert_refused(alice.guilds().ban_member(too_long).await, "DURATION_INVALID");
}

on_both_databases!(channel_messages_follow_the_roles: channel_messages_on_sqlite, channel_messages_on_postgres);

/// The member list says who is online, and lists only them on request; in a small guild the
/// members' apps hear each other come and go live, though they share no conversation.
async fn members_show_who_is_online(database: Database) {
    let server = start(database).await;
    let alice = plain(&server, "alice").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let mallory = plain(&server, "mallory").await;
    let (b, c) = (account_id(&bob), account_id(&carol));
    let guild = alice.create_guild("LAN party").await.unwrap();
    let id = guild.id.as_str();
    let invite = alice.create_invite(id, 0, 0).await.unwrap();
    bob.join_guild(&invite.code).await.unwrap();
    carol.join_guild(&invite.code).await.unwrap();
    let mut bob_live = online(&server, &bob, "bob").await;
    let _mallory_live = online(&server, &mallory, "mallory").await;

    let list = |online_only: bool| {
        let alice = alice.clone();
        let request =
            ListMembersRequest { guild_id: id.to_owned(), after: String::new(), limit: 0, online_only };
        async move { alice.guilds().list_members(request).await.unwrap().into_inner().members }
    };
    let everyone = list(false).await;
    assert_eq!(everyone.len(), 3);
    let online_of = |who: &str| everyone.iter().find(|m| m.account_id == who).unwrap().online;
    assert!(online_of(&b) && !online_of(&c));
    let now: Vec<String> = list(true).await.into_iter().map(|m| m.account_id).collect();
    assert_eq!(
        now,
        std::slice::from_ref(&b),
        "online now: Bob, not the stranger Mallory nor the offline Carol"
    );

    // Carol comes online: Bob's app hears it, with no conversation between them.
    let carol_live = online(&server, &carol, "carol").await;
    bob_live
        .wait_event(
            WAIT,
            "Carol online",
            |e| matches!(&e.body, Some(Body::Presence(p)) if p.account_id == c && p.online),
        )
        .await
        .unwrap();
    drop(carol_live);
    bob_live
        .wait_event(
            WAIT,
            "Carol offline",
            |e| matches!(&e.body, Some(Body::Presence(p)) if p.account_id == c && !p.online),
        )
        .await
        .unwrap();
}

on_both_databases!(members_show_who_is_online: members_online_on_sqlite, members_online_on_postgres);

/// The words of a history as `device` reads them (system entries left out).
async fn read_words(device: &mut kitsulan_client::e2ee::E2eeDevice, conversation: &str) -> Vec<String> {
    use kitsulan_client::conversations::Content;
    let history = device.read_history(conversation).await.unwrap();
    history
        .iter()
        .filter_map(|entry| match &entry.content {
            Content::Text(plaintext) => Some(String::from_utf8_lossy(plaintext).into_owned()),
            Content::Undecryptable(_) => Some("<undecryptable>".to_owned()),
            Content::Deleted | Content::System(_) => None,
        })
        .collect()
}

/// A private end-to-end encrypted channel: only its members see it, whatever their roles (the
/// owner and an administrator included when they are not in it); its members are guild members
/// added by someone who may manage it; its words never reach the server; a kick and a ban take
/// the member out of it live, and the next message is sealed with a key they do not have.
async fn a_private_e2ee_channel_is_seen_and_read_only_by_its_members(database: Database) {
    use kitsulan_client::people::person;
    use kitsulan_client::scan::scan_for_plaintexts;
    let server = start(database).await;
    let olga = person(&server, "olga").await; // the owner
    let mut mia = person(&server, "mia").await; // a moderator who runs the private channel
    let mut ned = person(&server, "ned").await;
    let mut pia = person(&server, "pia").await;
    let eve = plain(&server, "eve").await; // an administrator who is not in the channel
    let stranger = plain(&server, "stranger").await;
    let (m, n, p, e) =
        (account_id(&mia.client), account_id(&ned.client), account_id(&pia.client), account_id(&eve));
    let owner = olga.client.clone();

    // The owner's guild: two categories, an announcement channel; everyone joins by invite.
    let guild = owner.create_guild("Raid night").await.unwrap();
    let id = guild.id.as_str();
    let text = owner.get_guild(id).await.unwrap().channels[0].id.clone();
    let planning = owner.create_channel(id, GuildChannelKind::Category, "Planning", "", false).await.unwrap();
    owner.create_channel(id, GuildChannelKind::Announcement, "news", &text, false).await.unwrap();
    let invite = owner.create_invite(id, 0, 0).await.unwrap();
    for client in [&mia.client, &ned.client, &pia.client, &eve] {
        client.join_guild(&invite.code).await.unwrap();
    }
    const MANAGE_CHANNELS: u64 = 1 << 3;
    const MANAGE_ROLES: u64 = 1 << 4;
    let leads =
        owner.create_role(id, "Raid leads", MANAGE_CHANNELS | MANAGE_ROLES | KICK_MEMBERS).await.unwrap();
    owner.set_member_roles(id, &m, &[&leads.id]).await.unwrap();
    let admins = owner.create_role(id, "Admins", ADMINISTRATOR).await.unwrap();
    // Eve is a raid lead too: as high as Mia, so Mia cannot remove her.
    owner.set_member_roles(id, &e, &[&admins.id, &leads.id]).await.unwrap();

    // Mia makes the private channel: she is its only member, and nobody else sees it.
    let secret = mia.client.create_e2ee_channel(id, "strategy", &planning.id).await.unwrap();
    assert!(secret.e2ee && secret.private);
    assert_eq!(secret.permissions & VIEW_CHANNEL, VIEW_CHANNEL);
    let channel = secret.id.as_str();
    assert!(visible(&mia.client, id).await.contains(&"strategy".to_owned()));
    for outsider in [&owner, &eve, &ned.client] {
        assert!(!visible(outsider, id).await.contains(&"strategy".to_owned()), "seen by an outsider");
        assert_refused(outsider.get_conversation(channel).await, "CONVERSATION_NOT_FOUND");
        assert_refused(
            outsider.list_messages(channel, 0, kitsulan_proto::v1::HistoryDirection::Backward, 10).await,
            "CONVERSATION_NOT_FOUND",
        );
    }
    // An overwrite cannot open it: membership, not roles, decides who sees it.
    let everyone_sees = PermissionOverwrite {
        target: Some(permission_overwrite::Target::RoleId(id.to_owned())),
        allow: VIEW_CHANNEL,
        deny: 0,
    };
    mia.client
        .guilds()
        .set_channel_overwrite(SetChannelOverwriteRequest {
            channel_id: channel.to_owned(),
            overwrite: Some(everyone_sees),
        })
        .await
        .unwrap();
    assert!(!visible(&ned.client, id).await.contains(&"strategy".to_owned()), "opened by an overwrite");
    // The owner and an administrator cannot let themselves in.
    assert_refused(owner.add_members(channel, &[&account_id(&owner)]).await, "CONVERSATION_NOT_FOUND");
    assert_refused(eve.add_members(channel, &[&e]).await, "CONVERSATION_NOT_FOUND");

    // Mia adds guild members; someone outside the guild cannot be added, and that add adds
    // nobody.
    assert_refused(mia.client.add_members(channel, &[&n, &account_id(&stranger)]).await, "MEMBER_NOT_FOUND");
    assert_eq!(mia.client.get_conversation(channel).await.unwrap().members.len(), 1);
    let mut ned_live = online(&server, &ned.client, "ned").await;
    let added = mia.client.add_members(channel, &[&n, &p]).await.unwrap();
    assert_eq!(added.members.len(), 3);
    assert!(!ned.client.get_conversation(channel).await.unwrap().request, "guild members join, not ask");
    ned_live
        .wait_event(WAIT, "Ned's app hears the guild changed", |e| guild_event(e, id, false))
        .await
        .unwrap();
    let ned_sees = ned.client.get_guild(id).await.unwrap();
    let ned_channel = ned_sees.channels.iter().find(|c| c.id == channel).expect("Ned sees it now");
    assert!(ned_channel.e2ee);
    // A member without MANAGE_CHANNELS adds and removes nobody; nobody removes someone at or
    // above their own highest role; a flood of names is refused before any is looked up.
    assert_refused(ned.client.add_members(channel, &[&e]).await, "NOT_ALLOWED");
    assert_refused(ned.client.remove_member(channel, &p).await, "NOT_ALLOWED");
    mia.client.add_members(channel, &[&e]).await.unwrap();
    assert_refused(mia.client.remove_member(channel, &e).await, "NOT_ALLOWED");
    eve.leave_conversation(channel).await.unwrap();
    assert_refused(eve.get_conversation(channel).await, "CONVERSATION_NOT_FOUND");
    let flood: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
    assert_refused(mia.client.add_members(channel, &flood).await, "GROUP_FULL");
    assert_eq!(mia.client.get_conversation(channel).await.unwrap().members.len(), 3);

    // Messages are Megolm ciphertext; cloud text is refused.
    mia.refresh_conversation(channel).await.unwrap();
    let plan = "we pull the dragon at 21:00, Ned tanks";
    mia.send_to_conversation(channel, plan.as_bytes()).await.unwrap();
    let cloud = kitsulan_client::people::cloud_text(channel, "plaintext in a private channel");
    assert!(mia.client.send_message(cloud).await.is_err(), "cloud text in an E2EE channel");
    assert_eq!(read_words(&mut ned, channel).await, [plan]);
    assert_eq!(read_words(&mut pia, channel).await, [plan]);
    ned.refresh_conversation(channel).await.unwrap();
    let reply = "ok, bring potions";
    ned.send_to_conversation(channel, reply.as_bytes()).await.unwrap();
    assert_eq!(read_words(&mut mia, channel).await, [plan, reply]);

    // An admin who cannot see it still arranges the channels (here: #news into Planning); it
    // keeps its category, and naming it is refused as naming a channel that is not there.
    let seen = eve.get_guild(id).await.unwrap().channels;
    let place = |c: &kitsulan_proto::v1::GuildChannel| {
        let parent = if c.name == "news" { planning.id.clone() } else { c.parent_id.clone() };
        kitsulan_proto::v1::ChannelPlace { channel_id: c.id.clone(), parent_id: parent }
    };
    let layout: Vec<kitsulan_proto::v1::ChannelPlace> = seen.iter().map(place).collect();
    let arrange = |layout: Vec<kitsulan_proto::v1::ChannelPlace>| {
        kitsulan_proto::v1::ArrangeChannelsRequest { guild_id: id.to_owned(), layout }
    };
    let mut probing = layout.clone();
    probing
        .push(kitsulan_proto::v1::ChannelPlace { channel_id: channel.to_owned(), parent_id: String::new() });
    assert_refused(eve.guilds().arrange_channels(arrange(probing)).await, "LAYOUT_INVALID");
    eve.guilds().arrange_channels(arrange(layout)).await.unwrap();
    let mia_sees = mia.client.get_guild(id).await.unwrap().channels;
    let parent_of = |name: &str| mia_sees.iter().find(|c| c.name == name).map(|c| c.parent_id.clone());
    assert_eq!(parent_of("news"), Some(planning.id.clone()));
    assert_eq!(parent_of("strategy"), Some(planning.id.clone()));

    // A kick takes Ned out of it at once: his app hears it, he reads nothing more, and the
    // next message is sealed with a session he never gets.
    let kick = KickMemberRequest { guild_id: id.to_owned(), account_id: n.clone(), reason: "afk".to_owned() };
    mia.client.guilds().kick_member(kick).await.unwrap();
    ned_live.wait_event(WAIT, "Ned removed from the guild", |e| guild_event(e, id, true)).await.unwrap();
    ned_live
        .wait_event(WAIT, "Ned out of the channel", |e| {
            matches!(&e.body, Some(Body::Member(m)) if m.conversation_id == channel && m.account_id == n && m.removed)
        })
        .await
        .unwrap();
    assert_refused(ned.client.get_conversation(channel).await, "CONVERSATION_NOT_FOUND");
    let after = mia.client.get_conversation(channel).await.unwrap();
    assert!(after.members.iter().all(|member| member.account_id != n));
    mia.refresh_conversation(channel).await.unwrap();
    let later = "new plan: Pia tanks";
    let sent = mia.send_to_conversation(channel, later.as_bytes()).await.unwrap();
    assert_eq!(ned.decrypt_with_any_session(&sent.encrypted.ciphertext), None, "the key was rotated");
    assert_eq!(read_words(&mut pia, channel).await, [plan, reply, later]);

    // A ban does the same; the channel stays Mia's.
    let ban = BanMemberRequest {
        guild_id: id.to_owned(),
        account_id: p.clone(),
        reason: "leaked plans".to_owned(),
        delete_messages_s: 0,
    };
    let mut pia_live = online(&server, &pia.client, "pia").await;
    owner.guilds().ban_member(ban).await.unwrap();
    pia_live
        .wait_event(
            WAIT,
            "Pia out of the channel",
            |e| matches!(&e.body, Some(Body::Member(m)) if m.conversation_id == channel && m.removed),
        )
        .await
        .unwrap();
    assert_refused(pia.client.get_conversation(channel).await, "CONVERSATION_NOT_FOUND");
    assert_eq!(mia.client.get_conversation(channel).await.unwrap().members.len(), 1);

    // The audit log has the channel, the kick and the ban.
    let log = owner
        .guilds()
        .list_audit_log(ListAuditLogRequest { guild_id: id.to_owned(), before: String::new(), limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<AuditAction> = log.iter().map(|e| e.action()).collect();
    assert_eq!(actions[..2], [AuditAction::MemberBanned, AuditAction::MemberKicked]);
    assert!(
        log.iter().any(|entry| entry.action() == AuditAction::ChannelCreated && entry.target_id == channel)
    );

    // The server's files hold none of the channel's words.
    let found =
        scan_for_plaintexts(&server, &[plan.as_bytes(), reply.as_bytes(), later.as_bytes()]).await.unwrap();
    assert!(found.is_empty(), "E2EE channel plaintext on the server: {found:?}");
}

on_both_databases!(a_private_e2ee_channel_is_seen_and_read_only_by_its_members: e2ee_channel_on_sqlite, e2ee_channel_on_postgres);
