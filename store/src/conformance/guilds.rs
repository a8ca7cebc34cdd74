//! Conformance of `GuildStore`: guilds, channels and categories, roles, overwrites, invites,
//! bans, timeouts, read marks and the audit log.

use uuid::Uuid;

use super::Fresh;
use super::conversations::{accounts, message, send};
use crate::ids::{AccountId, ChannelId, GuildId, InviteId, RoleId};
use crate::{
    AuditAction, AuditEntry, ChannelRefusal, ConversationKind, GuildChannelKind, GuildJoin, GuildJoinRefusal,
    MAX_GUILD_CHANNELS, MAX_GUILD_INVITES, MAX_GUILD_ROLES, NewChannel, NewGuild, NewInvite, OverwriteRecord,
    OverwriteTarget, RoleRefusal, now_ms,
};

const EVERYONE: u64 = 0b11;

fn entry(actor: AccountId, action: AuditAction, target: Option<Uuid>) -> AuditEntry {
    AuditEntry { actor, action, target, detail: String::new(), at_ms: now_ms() }
}

fn channel(
    guild: GuildId,
    kind: GuildChannelKind,
    parent: Option<ChannelId>,
    name: &str,
    by: AccountId,
) -> NewChannel {
    NewChannel {
        id: ChannelId::generate(),
        guild_id: guild,
        kind,
        e2ee: false,
        parent,
        name: name.to_owned(),
        topic: String::new(),
        overwrites: Vec::new(),
        created_by: by,
        created_at_ms: now_ms(),
    }
}

fn new_guild(owner: AccountId, name: &str) -> NewGuild {
    NewGuild {
        id: GuildId::generate(),
        name: name.to_owned(),
        description: String::new(),
        owner,
        everyone_permissions: EVERYONE,
        created_at_ms: now_ms(),
    }
}

/// A guild owned by `owner` with one text channel at the top; returns it and the channel.
async fn guild_with_channel(db: &Fresh, owner: AccountId) -> anyhow::Result<(GuildId, ChannelId)> {
    let guild = new_guild(owner, "LAN party");
    let general = channel(guild.id, GuildChannelKind::Text, None, "general", owner);
    db.store.create_guild(&guild, std::slice::from_ref(&general)).await?;
    Ok((guild.id, general.id))
}

fn invite(guild: GuildId, by: AccountId, code: u8, expires_at_ms: i64, max_uses: i64) -> NewInvite {
    NewInvite {
        id: InviteId::generate(),
        guild_id: guild,
        code_hash: [code; 32],
        code_hint: format!("{code:02x}"),
        created_by: by,
        created_at_ms: now_ms(),
        expires_at_ms,
        max_uses,
    }
}

/// Adds `accounts` to the guild through an invite of their own.
async fn join_all(
    db: &Fresh,
    guild: GuildId,
    owner: AccountId,
    accounts: &[AccountId],
) -> anyhow::Result<()> {
    let code = 200;
    assert!(
        db.store
            .create_invite(&invite(guild, owner, code, 0, 0), &entry(owner, AuditAction::InviteCreated, None))
            .await?
    );
    for account in accounts {
        assert_eq!(db.store.join_guild(&[code; 32], *account, now_ms()).await?, Ok(GuildJoin::Joined(guild)));
    }
    Ok(())
}

pub(super) async fn guilds_are_made_with_everyone_their_owner_and_channels(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["gia", "hal", "ivo"]).await?;
    let (owner, member, stranger) = (ids[0], ids[1], ids[2]);
    let guild = new_guild(owner, "LAN party");
    let category = channel(guild.id, GuildChannelKind::Category, None, "Text channels", owner);
    let general = channel(guild.id, GuildChannelKind::Text, Some(category.id), "general", owner);
    let mut private = channel(guild.id, GuildChannelKind::Text, Some(category.id), "admins", owner);
    private.e2ee = true;
    private.overwrites =
        vec![OverwriteRecord { target: OverwriteTarget::Role(guild.id.everyone()), allow: 0, deny: 1 }];
    let voice = channel(guild.id, GuildChannelKind::Voice, None, "Lobby", owner);
    db.store
        .create_guild(&guild, &[category.clone(), general.clone(), private.clone(), voice.clone()])
        .await?;

    let record = db.store.guild(guild.id).await?.expect("made");
    assert_eq!((record.name.as_str(), record.owner, record.member_count), ("LAN party", owner, 1));
    let roles = db.store.guild_roles(guild.id).await?;
    assert_eq!(roles.len(), 1);
    assert_eq!(
        (roles[0].id, roles[0].name.as_str(), roles[0].position, roles[0].permissions),
        (guild.id.everyone(), "@everyone", 0, EVERYONE)
    );
    assert_eq!(db.store.guild_member(guild.id, owner).await?.expect("the owner is a member").roles, []);
    assert_eq!(db.store.guilds_of(owner).await?.into_iter().map(|g| g.id).collect::<Vec<_>>(), [guild.id]);
    assert!(db.store.guilds_of(stranger).await?.is_empty());

    // The list shows top-level channels first, then each category with its channels.
    let channels = db.store.guild_channels(guild.id).await?;
    let order: Vec<ChannelId> = channels.iter().map(|c| c.id).collect();
    assert_eq!(order, [voice.id, category.id, general.id, private.id]);
    let admins = &channels[3];
    assert!(admins.e2ee && !channels[2].e2ee);
    assert_eq!(
        admins.overwrites, private.overwrites,
        "a private channel is never visible to all, not for a moment"
    );
    // Channels with messages are conversations of kind Channel; a category is not.
    let conversation = db.store.conversation(general.id.conversation()).await?.expect("a conversation");
    assert_eq!(
        (conversation.kind, conversation.e2ee, conversation.title.as_deref()),
        (ConversationKind::Channel, false, Some("general"))
    );
    assert!(db.store.conversation(private.id.conversation()).await?.expect("a conversation").e2ee);
    assert!(db.store.conversation(category.id.conversation()).await?.is_none());
    // ...without member rows: who may read it comes from the roles.
    assert!(db.store.members(general.id.conversation()).await?.is_empty());

    assert!(
        db.store
            .update_guild(
                guild.id,
                "LAN party 2026",
                "bring a cable",
                &entry(owner, AuditAction::GuildUpdated, None)
            )
            .await?
    );
    assert!(
        !db.store
            .update_guild(GuildId::generate(), "x", "", &entry(owner, AuditAction::GuildUpdated, None))
            .await?
    );
    let record = db.store.guild(guild.id).await?.expect("there");
    assert_eq!((record.name.as_str(), record.description.as_str()), ("LAN party 2026", "bring a cable"));

    // Ownership goes only to a member.
    let transfer = |to: AccountId| entry(owner, AuditAction::OwnershipTransferred, Some(to.as_uuid()));
    assert!(!db.store.transfer_guild(guild.id, stranger, &transfer(stranger)).await?);
    join_all(db, guild.id, owner, &[member]).await?;
    assert!(db.store.transfer_guild(guild.id, member, &transfer(member)).await?);
    assert_eq!(db.store.guild(guild.id).await?.expect("there").owner, member);
    assert!(!db.store.leave_guild(guild.id, member).await?, "the owner cannot leave");
    assert!(db.store.leave_guild(guild.id, owner).await?, "the old owner can");
    assert!(!db.store.leave_guild(guild.id, owner).await?);

    // Deleting the guild deletes its channels' conversations and messages.
    send(db, &message(general.id.conversation(), member, 1)).await?;
    assert!(db.store.delete_guild(guild.id).await?);
    assert!(!db.store.delete_guild(guild.id).await?);
    assert!(db.store.guild(guild.id).await?.is_none());
    assert!(db.store.conversation(general.id.conversation()).await?.is_none());
    assert!(db.store.guild_channels(guild.id).await?.is_empty());
    assert!(db.store.guilds_of(member).await?.is_empty());
    Ok(())
}

pub(super) async fn roles_keep_one_order_and_a_cap(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["jan", "kit"]).await?;
    let (owner, member) = (ids[0], ids[1]);
    let (guild, _) = guild_with_channel(db, owner).await?;
    let made = |role: RoleId| entry(owner, AuditAction::RoleCreated, Some(role.as_uuid()));
    let (mods, djs, guests) = (RoleId::generate(), RoleId::generate(), RoleId::generate());
    for (role, name) in [(mods, "mods"), (djs, "DJs"), (guests, "guests")] {
        assert_eq!(db.store.create_role(guild, role, name, 0x00ff_8800, 1 << 5, &made(role)).await?, Ok(()));
    }
    // A new role goes just above @everyone.
    let order = || async {
        Ok::<_, anyhow::Error>(
            db.store.guild_roles(guild).await?.into_iter().map(|r| (r.id, r.position)).collect::<Vec<_>>(),
        )
    };
    assert_eq!(order().await?, [(guild.everyone(), 0), (guests, 1), (djs, 2), (mods, 3)]);

    let arranged = entry(owner, AuditAction::RolesArranged, None);
    assert_eq!(db.store.arrange_roles(guild, &[djs, guests, mods], &arranged).await?, Ok(()));
    assert_eq!(order().await?, [(guild.everyone(), 0), (djs, 1), (guests, 2), (mods, 3)]);
    for bad in [
        &[djs, guests][..],
        &[djs, guests, mods, guild.everyone()],
        &[djs, djs, mods],
        &[djs, guests, RoleId::generate()],
    ] {
        assert_eq!(
            db.store.arrange_roles(guild, bad, &arranged).await?,
            Err(RoleRefusal::NotAPermutation),
            "{bad:?}"
        );
    }
    assert_eq!(
        order().await?,
        [(guild.everyone(), 0), (djs, 1), (guests, 2), (mods, 3)],
        "a refused order changes nothing"
    );

    // @everyone keeps its name and cannot be deleted.
    let updated = entry(owner, AuditAction::RoleUpdated, None);
    assert!(db.store.update_role(guild, guild.everyone(), "all", 0, 1, &updated).await?);
    let everyone = db.store.guild_roles(guild).await?.remove(0);
    assert_eq!((everyone.name.as_str(), everyone.permissions), ("@everyone", 1));
    assert!(db.store.update_role(guild, mods, "moderators", 0x123456, 7, &updated).await?);
    let other = GuildId::generate();
    assert!(!db.store.update_role(other, mods, "x", 0, 0, &updated).await?, "not through another guild");
    let deleted = entry(owner, AuditAction::RoleDeleted, None);
    assert!(!db.store.delete_role(guild, guild.everyone(), &deleted).await?);

    // Members get exactly the roles given; roles of other guilds and @everyone are refused whole.
    join_all(db, guild, owner, &[member]).await?;
    let changed = entry(owner, AuditAction::MemberRolesChanged, Some(member.as_uuid()));
    assert_eq!(db.store.set_member_roles(guild, member, &[mods, djs, mods], &changed).await?, Ok(()));
    let mut expected = vec![mods, djs];
    expected.sort_unstable();
    assert_eq!(db.store.guild_member(guild, member).await?.expect("a member").roles, expected);
    for bad in [vec![guests, guild.everyone()], vec![guests, RoleId::generate()]] {
        assert_eq!(
            db.store.set_member_roles(guild, member, &bad, &changed).await?,
            Err(RoleRefusal::NotFound)
        );
    }
    assert_eq!(
        db.store.guild_member(guild, member).await?.expect("a member").roles,
        expected,
        "nothing changed"
    );
    let stranger = accounts(db, &["lou"]).await?[0];
    assert_eq!(
        db.store.set_member_roles(guild, stranger, &[mods], &changed).await?,
        Err(RoleRefusal::NotMember)
    );

    // Deleting a role closes the gap and takes it from its members.
    assert!(db.store.delete_role(guild, djs, &deleted).await?);
    assert!(!db.store.delete_role(guild, djs, &deleted).await?);
    assert_eq!(order().await?, [(guild.everyone(), 0), (guests, 1), (mods, 2)]);
    assert_eq!(db.store.guild_member(guild, member).await?.expect("a member").roles, [mods]);

    // The cap counts @everyone.
    for _ in 3..MAX_GUILD_ROLES {
        let role = RoleId::generate();
        assert_eq!(db.store.create_role(guild, role, "r", 0, 0, &made(role)).await?, Ok(()));
    }
    let one_more = RoleId::generate();
    assert_eq!(
        db.store.create_role(guild, one_more, "r", 0, 0, &made(one_more)).await?,
        Err(RoleRefusal::TooMany)
    );
    assert_eq!(db.store.guild_roles(guild).await?.len(), MAX_GUILD_ROLES);
    assert_eq!(
        db.store.create_role(other, one_more, "r", 0, 0, &made(one_more)).await?,
        Err(RoleRefusal::NotFound)
    );
    Ok(())
}

pub(super) async fn channels_are_arranged_overwritten_and_capped(db: &Fresh) -> anyhow::Result<()> {
    let owner = accounts(db, &["mia"]).await?[0];
    let (guild, general) = guild_with_channel(db, owner).await?;
    let made = |c: &NewChannel| entry(owner, AuditAction::ChannelCreated, Some(c.id.as_uuid()));
    let text = channel(guild, GuildChannelKind::Category, None, "Text", owner);
    let games = channel(guild, GuildChannelKind::Category, None, "Games", owner);
    let news = channel(guild, GuildChannelKind::Announcement, Some(text.id), "news", owner);
    let lobby = channel(guild, GuildChannelKind::Voice, Some(games.id), "Lobby", owner);
    for c in [&text, &games, &news, &lobby] {
        assert_eq!(db.store.create_channel(c, &made(c)).await?, Ok(()));
    }
    let order = || async {
        Ok::<_, anyhow::Error>(
            db.store
                .guild_channels(guild)
                .await?
                .into_iter()
                .map(|c| (c.id, c.parent, c.position))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        order().await?,
        [
            (general, None, 0),
            (text.id, None, 0),
            (news.id, Some(text.id), 0),
            (games.id, None, 1),
            (lobby.id, Some(games.id), 0)
        ]
    );

    // Refused: a category inside a category, a channel inside a channel, a parent elsewhere.
    let bad_parents = [
        channel(guild, GuildChannelKind::Category, Some(text.id), "nested", owner),
        channel(guild, GuildChannelKind::Text, Some(general), "inside a channel", owner),
        channel(guild, GuildChannelKind::Text, Some(ChannelId::generate()), "nowhere", owner),
    ];
    for c in &bad_parents {
        assert_eq!(db.store.create_channel(c, &made(c)).await?, Err(ChannelRefusal::BadParent), "{}", c.name);
    }
    let elsewhere = channel(GuildId::generate(), GuildChannelKind::Text, None, "x", owner);
    assert_eq!(db.store.create_channel(&elsewhere, &made(&elsewhere)).await?, Err(ChannelRefusal::NotFound));

    // Drag and drop: the whole layout at once, checked whole.
    let arranged = entry(owner, AuditAction::ChannelsArranged, None);
    let layout = [
        (games.id, None),
        (lobby.id, Some(games.id)),
        (general, Some(games.id)),
        (text.id, None),
        (news.id, None),
    ];
    assert_eq!(db.store.arrange_channels(guild, &layout, &arranged).await?, Ok(()));
    let arranged_order = [
        (news.id, None, 0),
        (games.id, None, 0),
        (lobby.id, Some(games.id), 0),
        (general, Some(games.id), 1),
        (text.id, None, 1),
    ];
    assert_eq!(order().await?, arranged_order);
    let refusals = [
        (vec![(games.id, None), (lobby.id, Some(games.id))], ChannelRefusal::NotAPermutation),
        (
            vec![(games.id, None), (games.id, None), (lobby.id, None), (general, None), (text.id, None)],
            ChannelRefusal::NotAPermutation,
        ),
        (
            vec![
                (games.id, Some(text.id)),
                (lobby.id, None),
                (general, None),
                (text.id, None),
                (news.id, None),
            ],
            ChannelRefusal::BadParent,
        ),
        (
            vec![
                (games.id, None),
                (lobby.id, Some(general)),
                (general, None),
                (text.id, None),
                (news.id, None),
            ],
            ChannelRefusal::BadParent,
        ),
    ];
    for (layout, refusal) in refusals {
        assert_eq!(db.store.arrange_channels(guild, &layout, &arranged).await?, Err(refusal), "{layout:?}");
    }
    assert_eq!(order().await?, arranged_order, "a refused layout changes nothing");

    // Overwrites: one per role or member, replaced by the next; roles of the guild only.
    let role = RoleId::generate();
    assert_eq!(
        db.store.create_role(guild, role, "DJs", 0, 0, &entry(owner, AuditAction::RoleCreated, None)).await?,
        Ok(())
    );
    let set = entry(owner, AuditAction::OverwriteSet, Some(general.as_uuid()));
    let for_role = OverwriteRecord { target: OverwriteTarget::Role(role), allow: 2, deny: 1 };
    let for_owner = OverwriteRecord { target: OverwriteTarget::Member(owner), allow: 4, deny: 0 };
    assert!(db.store.set_overwrite(general, &for_role, &set).await?);
    assert!(db.store.set_overwrite(general, &for_owner, &set).await?);
    let replaced = OverwriteRecord { allow: 8, ..for_role };
    assert!(db.store.set_overwrite(general, &replaced, &set).await?);
    let foreign = OverwriteRecord { target: OverwriteTarget::Role(RoleId::generate()), allow: 1, deny: 0 };
    assert!(!db.store.set_overwrite(general, &foreign, &set).await?);
    assert!(!db.store.set_overwrite(ChannelId::generate(), &for_owner, &set).await?);
    let overwrites = db.store.guild_channel(general).await?.expect("there").overwrites;
    assert_eq!(overwrites, [replaced, for_owner]);
    let removed = entry(owner, AuditAction::OverwriteRemoved, Some(general.as_uuid()));
    assert!(db.store.remove_overwrite(general, OverwriteTarget::Member(owner), &removed).await?);
    assert!(!db.store.remove_overwrite(general, OverwriteTarget::Member(owner), &removed).await?);
    // Deleting a role takes its overwrites with it.
    assert!(db.store.delete_role(guild, role, &entry(owner, AuditAction::RoleDeleted, None)).await?);
    assert!(db.store.guild_channel(general).await?.expect("there").overwrites.is_empty());

    let updated = entry(owner, AuditAction::ChannelUpdated, Some(general.as_uuid()));
    assert!(db.store.update_channel(general, "chat", "say hi", 30, &updated).await?);
    let record = db.store.guild_channel(general).await?.expect("there");
    assert_eq!((record.name.as_str(), record.topic.as_str(), record.slow_mode_s), ("chat", "say hi", 30));
    assert_eq!(
        db.store.conversation(general.conversation()).await?.expect("there").title.as_deref(),
        Some("chat")
    );

    // Deleting a category moves its channels to the top level, after those there.
    let deleted = entry(owner, AuditAction::ChannelDeleted, None);
    assert!(db.store.delete_channel(games.id, &deleted).await?);
    assert!(!db.store.delete_channel(games.id, &deleted).await?);
    assert_eq!(
        order().await?,
        [(news.id, None, 0), (lobby.id, None, 1), (general, None, 2), (text.id, None, 1)]
    );
    send(db, &message(news.id.conversation(), owner, 1)).await?;
    assert!(db.store.delete_channel(news.id, &deleted).await?);
    assert!(db.store.conversation(news.id.conversation()).await?.is_none(), "its messages go with it");

    // The cap counts categories too.
    let have = db.store.guild_channels(guild).await?.len();
    for _ in have..MAX_GUILD_CHANNELS {
        let c = channel(guild, GuildChannelKind::Text, None, "c", owner);
        assert_eq!(db.store.create_channel(&c, &made(&c)).await?, Ok(()));
    }
    let c = channel(guild, GuildChannelKind::Category, None, "one more", owner);
    assert_eq!(db.store.create_channel(&c, &made(&c)).await?, Err(ChannelRefusal::TooMany));
    Ok(())
}

pub(super) async fn invites_admit_until_used_up_expired_or_revoked_and_bans_hold(
    db: &Fresh,
) -> anyhow::Result<()> {
    let ids = accounts(db, &["ned", "ola", "pip", "quin"]).await?;
    let (owner, a, b, c) = (ids[0], ids[1], ids[2], ids[3]);
    let (guild, _) = guild_with_channel(db, owner).await?;
    let created = |i: &NewInvite| entry(owner, AuditAction::InviteCreated, Some(i.id.as_uuid()));
    let once = invite(guild, owner, 1, 0, 1);
    let expired = invite(guild, owner, 2, now_ms() - 1, 0);
    let open = invite(guild, owner, 3, now_ms() + 3_600_000, 0);
    for i in [&once, &expired, &open] {
        assert!(db.store.create_invite(i, &created(i)).await?);
    }
    let preview = db.store.invite_by_code(&[1; 32]).await?.expect("found by its code's hash");
    assert_eq!((preview.guild_id, preview.code_hint.as_str(), preview.uses), (guild, "01", 0));
    assert!(db.store.invite_by_code(&[9; 32]).await?.is_none());

    let now = now_ms();
    assert_eq!(db.store.join_guild(&[9; 32], a, now).await?, Err(GuildJoinRefusal::UnknownInvite));
    assert_eq!(db.store.join_guild(&[2; 32], a, now).await?, Err(GuildJoinRefusal::Expired));
    assert_eq!(db.store.join_guild(&[1; 32], a, now).await?, Ok(GuildJoin::Joined(guild)));
    assert_eq!(db.store.join_guild(&[1; 32], a, now).await?, Ok(GuildJoin::AlreadyMember(guild)));
    assert_eq!(db.store.join_guild(&[1; 32], b, now).await?, Err(GuildJoinRefusal::UsedUp));
    assert_eq!(db.store.join_guild(&[3; 32], owner, now).await?, Ok(GuildJoin::AlreadyMember(guild)));
    assert_eq!(
        db.store.invite_by_code(&[3; 32]).await?.expect("there").uses,
        0,
        "a member's visit does not count"
    );
    assert_eq!(db.store.guild(guild).await?.expect("there").member_count, 2);

    let revoked = entry(owner, AuditAction::InviteRevoked, Some(open.id.as_uuid()));
    assert!(db.store.revoke_invite(guild, open.id, &revoked).await?);
    assert!(!db.store.revoke_invite(guild, open.id, &revoked).await?);
    assert!(
        !db.store.revoke_invite(GuildId::generate(), once.id, &revoked).await?,
        "not through another guild"
    );
    assert_eq!(db.store.join_guild(&[3; 32], b, now).await?, Err(GuildJoinRefusal::UnknownInvite));
    let listed: Vec<InviteId> = db.store.guild_invites(guild).await?.into_iter().map(|i| i.id).collect();
    assert_eq!(listed, [open.id, expired.id, once.id], "newest first, revoked ones too");

    // A ban removes the member and holds against every invite until lifted.
    let again = invite(guild, owner, 4, 0, 0);
    assert!(db.store.create_invite(&again, &created(&again)).await?);
    let banned = entry(owner, AuditAction::MemberBanned, Some(a.as_uuid()));
    assert!(db.store.ban_member(guild, a, "spam", &banned).await?);
    assert!(!db.store.ban_member(guild, a, "spam", &banned).await?);
    assert!(db.store.guild_member(guild, a).await?.is_none());
    assert!(db.store.is_banned(guild, a).await?);
    assert_eq!(db.store.join_guild(&[4; 32], a, now).await?, Err(GuildJoinRefusal::Banned));
    let bans = db.store.guild_bans(guild).await?;
    assert_eq!(
        (bans.len(), bans[0].account_id, bans[0].banned_by, bans[0].reason.as_str()),
        (1, a, owner, "spam")
    );
    // Someone who never joined can be banned before they come.
    assert!(db.store.ban_member(guild, c, "", &banned).await?);
    assert_eq!(db.store.join_guild(&[4; 32], c, now).await?, Err(GuildJoinRefusal::Banned));
    let unbanned = entry(owner, AuditAction::MemberUnbanned, Some(a.as_uuid()));
    assert!(db.store.unban_member(guild, a, &unbanned).await?);
    assert!(!db.store.unban_member(guild, a, &unbanned).await?);
    assert_eq!(db.store.join_guild(&[4; 32], a, now).await?, Ok(GuildJoin::Joined(guild)));

    // The owner cannot be kicked, banned or leave; others can be kicked once.
    let kicked = |who: AccountId| entry(owner, AuditAction::MemberKicked, Some(who.as_uuid()));
    assert!(!db.store.kick_member(guild, owner, &kicked(owner)).await?);
    assert!(!db.store.ban_member(guild, owner, "", &banned).await?);
    assert!(!db.store.leave_guild(guild, owner).await?);
    assert!(db.store.kick_member(guild, a, &kicked(a)).await?);
    assert!(!db.store.kick_member(guild, a, &kicked(a)).await?);
    assert_eq!(
        db.store.join_guild(&[4; 32], a, now).await?,
        Ok(GuildJoin::Joined(guild)),
        "a kick is not a ban"
    );

    // Timeouts are kept per member.
    let until = now + 60_000;
    let timed = entry(owner, AuditAction::MemberTimedOut, Some(a.as_uuid()));
    assert!(db.store.time_out_member(guild, a, until, &timed).await?);
    assert!(!db.store.time_out_member(guild, b, until, &timed).await?, "not a member");
    assert_eq!(db.store.guild_member(guild, a).await?.expect("a member").timed_out_until_ms, until);

    // Usable invites are capped; used-up, expired and revoked ones do not count.
    // Usable now: `again` only.
    for code in 0..MAX_GUILD_INVITES - 1 {
        let mut i = invite(guild, owner, 0, 0, 0);
        i.code_hash[..8].copy_from_slice(&u64::try_from(code)?.to_be_bytes());
        i.code_hash[31] = 0xAA;
        assert!(db.store.create_invite(&i, &created(&i)).await?, "invite {code}");
    }
    let over = invite(guild, owner, 5, 0, 0);
    assert!(!db.store.create_invite(&over, &created(&over)).await?);
    Ok(())
}

pub(super) async fn racing_joins_cannot_exceed_an_invites_uses(db: &Fresh) -> anyhow::Result<()> {
    let names: Vec<String> = (0..10).map(|i| format!("racer{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ids = accounts(db, &names).await?;
    let owner = accounts(db, &["rex"]).await?[0];
    let (guild, _) = guild_with_channel(db, owner).await?;
    let three = invite(guild, owner, 7, 0, 3);
    assert!(db.store.create_invite(&three, &entry(owner, AuditAction::InviteCreated, None)).await?);
    let mut racers = tokio::task::JoinSet::new();
    for account in ids {
        let store = db.reopen().await?;
        racers.spawn(async move { store.join_guild(&[7; 32], account, now_ms()).await });
    }
    let (mut joined, mut used_up) = (0, 0);
    while let Some(result) = racers.join_next().await {
        match result?? {
            Ok(GuildJoin::Joined(_)) => joined += 1,
            Err(GuildJoinRefusal::UsedUp) => used_up += 1,
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    assert_eq!((joined, used_up), (3, 7));
    assert_eq!(db.store.invite_by_code(&[7; 32]).await?.expect("there").uses, 3);
    assert_eq!(db.store.guild(guild).await?.expect("there").member_count, 4);
    Ok(())
}

pub(super) async fn the_audit_log_records_each_change_with_it(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["sam", "tia"]).await?;
    let (owner, member) = (ids[0], ids[1]);
    let (guild, _) = guild_with_channel(db, owner).await?;
    join_all(db, guild, owner, &[member]).await?;
    let mut detailed = entry(owner, AuditAction::MemberTimedOut, Some(member.as_uuid()));
    detailed.detail = "10 minutes: flooding".to_owned();
    assert!(db.store.time_out_member(guild, member, now_ms() + 600_000, &detailed).await?);
    // A change that does not happen is not recorded.
    assert!(
        !db.store
            .kick_member(guild, owner, &entry(owner, AuditAction::MemberKicked, Some(owner.as_uuid())))
            .await?
    );
    assert!(!db.store.unban_member(guild, member, &entry(owner, AuditAction::MemberUnbanned, None)).await?);
    let deleted_message = entry(member, AuditAction::MessageDeleted, Some(Uuid::now_v7()));
    db.store.record_audit(guild, &deleted_message).await?;
    assert!(
        db.store
            .kick_member(guild, member, &entry(owner, AuditAction::MemberKicked, Some(member.as_uuid())))
            .await?
    );

    let log = db.store.audit_log(guild, None, 100).await?;
    let actions: Vec<AuditAction> = log.iter().map(|r| r.entry.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::MemberKicked,
            AuditAction::MessageDeleted,
            AuditAction::MemberTimedOut,
            AuditAction::InviteCreated,
            AuditAction::GuildCreated,
        ],
        "newest first"
    );
    assert_eq!(log[2].entry, detailed);
    assert_eq!(log[1].entry, deleted_message);
    assert_eq!((log[4].entry.actor, log[4].entry.detail.as_str()), (owner, "LAN party"));
    // Paged by the last id seen.
    let first = db.store.audit_log(guild, None, 2).await?;
    let rest = db.store.audit_log(guild, Some(first[1].id), 100).await?;
    assert_eq!(
        first.iter().chain(&rest).map(|r| r.id).collect::<Vec<_>>(),
        log.iter().map(|r| r.id).collect::<Vec<_>>()
    );
    assert!(db.store.audit_log(GuildId::generate(), None, 100).await?.is_empty());
    Ok(())
}

pub(super) async fn read_marks_move_forward_within_the_channel(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["uma", "val"]).await?;
    let (owner, member) = (ids[0], ids[1]);
    let (guild, general) = guild_with_channel(db, owner).await?;
    assert_eq!(db.store.mark_channel_read(general, member, 5).await?, 0, "nothing to read yet");
    for byte in 1..=3 {
        send(db, &message(general.conversation(), owner, byte)).await?;
    }
    assert_eq!(db.store.guild_channels(guild).await?[0].last_seq, 3);
    assert_eq!(db.store.mark_channel_read(general, member, 2).await?, 2);
    assert_eq!(db.store.mark_channel_read(general, member, 1).await?, 2, "never back");
    assert_eq!(db.store.mark_channel_read(general, member, 99).await?, 3, "never past the newest");
    assert_eq!(db.store.mark_channel_read(general, member, -4).await?, 3);
    assert_eq!(db.store.mark_channel_read(ChannelId::generate(), member, 1).await?, 0, "no such channel");
    assert_eq!(db.store.channel_reads(guild, member).await?, [(general, 3)]);
    assert!(db.store.channel_reads(guild, owner).await?.is_empty());
    Ok(())
}

pub(super) async fn deleting_the_owners_account_hands_the_guild_on(db: &Fresh) -> anyhow::Result<()> {
    let ids = accounts(db, &["wyn", "xia", "yul", "zed"]).await?;
    let (owner, early, promoted, alone) = (ids[0], ids[1], ids[2], ids[3]);
    let (guild, _) = guild_with_channel(db, owner).await?;
    join_all(db, guild, owner, &[early, promoted]).await?;
    let role = RoleId::generate();
    let made = entry(owner, AuditAction::RoleCreated, Some(role.as_uuid()));
    assert_eq!(db.store.create_role(guild, role, "mods", 0, 0, &made).await?, Ok(()));
    let given = entry(owner, AuditAction::MemberRolesChanged, Some(promoted.as_uuid()));
    assert_eq!(db.store.set_member_roles(guild, promoted, &[role], &given).await?, Ok(()));
    let (lonely, _) = guild_with_channel(db, alone).await?;

    // The member with the highest role takes over, though another joined first.
    db.store.delete_account(owner, false, now_ms()).await?.expect("deleted");
    let record = db.store.guild(guild).await?.expect("the guild stays");
    assert_eq!((record.owner, record.member_count), (promoted, 2));
    let last = db.store.audit_log(guild, None, 1).await?.remove(0).entry;
    assert_eq!(
        (last.action, last.actor, last.target),
        (AuditAction::OwnershipTransferred, owner, Some(promoted.as_uuid()))
    );
    // Then, among equals, the longest-standing member.
    db.store.delete_account(promoted, false, now_ms()).await?.expect("deleted");
    assert_eq!(db.store.guild(guild).await?.expect("the guild stays").owner, early);
    // A guild with nobody else in it goes with its owner.
    db.store.delete_account(alone, false, now_ms()).await?.expect("deleted");
    assert!(db.store.guild(lonely).await?.is_none());
    Ok(())
}

pub(super) async fn channel_messages_count_mentions_search_files_and_a_bans_sweep(
    db: &Fresh,
) -> anyhow::Result<()> {
    use super::attachments::new_attachment;
    use super::cloud::cloud;
    use crate::{CreateAttachmentOutcome, SearchQuery};
    let ids = accounts(db, &["ada", "bea", "cyd"]).await?;
    let (owner, member, stranger) = (ids[0], ids[1], ids[2]);
    let (guild, general) = guild_with_channel(db, owner).await?;
    join_all(db, guild, owner, &[member]).await?;
    let conversation = general.conversation();

    // Mentions after the read mark, per channel.
    let first = send(db, &cloud(conversation, owner, "кошки на турнире", &[member])).await?;
    send(db, &cloud(conversation, owner, "ещё кошку", &[member])).await?;
    assert_eq!(db.store.channel_mentions(guild, member).await?, [(general, 2)]);
    assert!(db.store.channel_mentions(guild, owner).await?.is_empty());
    db.store.mark_channel_read(general, member, first.seq).await?;
    assert_eq!(db.store.channel_mentions(guild, member).await?, [(general, 1)]);

    // Search within a channel: found once the server says the account may read it (it has no
    // member rows there), not otherwise.
    let query = |channel: bool| SearchQuery {
        account: member,
        text: "кошка".to_owned(),
        conversation: Some(conversation),
        channel,
        sender: None,
        after_ms: 0,
        before_ms: 0,
        older_than: None,
        limit: 10,
    };
    assert_eq!(db.store.search_messages(&query(true)).await?.len(), 2);
    assert!(db.store.search_messages(&query(false)).await?.is_empty());

    // Files: a member of the guild reserves one in its cloud channel; a stranger cannot.
    let outcome = db.store.create_attachment(&new_attachment(conversation, member, 10), 1000).await?;
    assert!(matches!(outcome, CreateAttachmentOutcome::Created(_)), "{outcome:?}");
    let outsider = new_attachment(conversation, stranger, 10);
    assert_eq!(db.store.create_attachment(&outsider, 1000).await?, CreateAttachmentOutcome::NotMember);

    // What a member sent lately, for a ban that deletes it: not before `since`, not deleted,
    // not someone else's, oldest first, `limit` at a time.
    let old = send(db, &cloud(conversation, member, "old", &[])).await?;
    let since = old.sent_at_ms + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut recent = Vec::new();
    for text in ["one", "two", "three"] {
        recent.push(send(db, &cloud(conversation, member, text, &[])).await?.id);
    }
    let listed = db.store.guild_messages_since(guild, member, since, 10).await?;
    assert_eq!(listed, recent.iter().map(|id| (general, *id)).collect::<Vec<_>>());
    assert_eq!(db.store.guild_messages_since(guild, member, since, 2).await?.len(), 2);
    db.store.delete_message(conversation, recent[0], now_ms()).await?;
    assert_eq!(db.store.guild_messages_since(guild, member, since, 10).await?.len(), 2);
    assert!(db.store.guild_messages_since(guild, stranger, 0, 10).await?.is_empty());
    Ok(())
}

pub(super) async fn members_are_found_among_accounts_and_presence_reaches_small_guilds(
    db: &Fresh,
) -> anyhow::Result<()> {
    let ids = accounts(db, &["kai", "lea", "mo", "ned", "oz"]).await?;
    let (owner, member, blocked, stranger, big_only) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    let (guild, _) = guild_with_channel(db, owner).await?;
    join_all(db, guild, owner, &[member, blocked]).await?;
    let role = RoleId::generate();
    let made = entry(owner, AuditAction::RoleCreated, Some(role.as_uuid()));
    assert_eq!(db.store.create_role(guild, role, "mods", 0, 0, &made).await?, Ok(()));
    let given = entry(owner, AuditAction::MemberRolesChanged, Some(member.as_uuid()));
    assert_eq!(db.store.set_member_roles(guild, member, &[role], &given).await?, Ok(()));

    // Members among some accounts (a stranger and an unknown id are left out), with roles.
    let found = db.store.guild_members_in(guild, &[stranger, member, AccountId::generate(), owner]).await?;
    let mut expected = vec![owner, member];
    expected.sort();
    assert_eq!(found.iter().map(|m| m.account_id).collect::<Vec<_>>(), expected);
    assert_eq!(found.iter().find(|m| m.account_id == member).map(|m| m.roles.clone()), Some(vec![role]));
    let many: Vec<AccountId> = (0..450).map(|_| AccountId::generate()).chain([member]).collect();
    assert_eq!(db.store.guild_members_in(guild, &many).await?.len(), 1, "past one chunk of ids");

    // Presence peers: everyone in a guild small enough, not those the account blocked.
    db.store.block(owner, blocked, now_ms()).await?;
    let mut peers = db.store.guild_peers(owner, 3).await?;
    peers.sort();
    assert_eq!(peers, [member]);
    assert_eq!(
        db.store.guild_peers(blocked, 3).await?.len(),
        2,
        "blocking is one-way: the blocked still sees"
    );
    assert!(db.store.guild_peers(owner, 2).await?.is_empty(), "a guild bigger than the bound");
    assert!(db.store.guild_peers(stranger, 100).await?.is_empty());
    let (other, _) = guild_with_channel(db, big_only).await?;
    let made = entry(big_only, AuditAction::InviteCreated, None);
    assert!(db.store.create_invite(&invite(other, big_only, 201, 0, 0), &made).await?);
    assert_eq!(db.store.join_guild(&[201; 32], member, now_ms()).await?, Ok(GuildJoin::Joined(other)));
    let mut peers = db.store.guild_peers(member, 3).await?;
    peers.sort();
    let mut expected = vec![owner, blocked, big_only];
    expected.sort();
    assert_eq!(peers, expected, "across guilds, once each");
    Ok(())
}

pub(super) async fn an_icon_is_set_replaced_and_removed_with_its_audit(db: &Fresh) -> anyhow::Result<()> {
    use crate::ids::AvatarId;
    let ids = accounts(db, &["pia"]).await?;
    let owner = ids[0];
    let (guild, _) = guild_with_channel(db, owner).await?;
    let changed = entry(owner, AuditAction::GuildUpdated, None);
    let (first, second) = (AvatarId::generate(), AvatarId::generate());
    let set = db.store.set_guild_icon(guild, Some(first), &changed).await?.expect("the guild exists");
    assert_eq!((set.previous, set.version), (None, 1));
    let replaced = db.store.set_guild_icon(guild, Some(second), &changed).await?.expect("the guild exists");
    assert_eq!((replaced.previous, replaced.version), (Some(first), 2));
    let record = db.store.guild(guild).await?.expect("the guild exists");
    assert_eq!((record.icon_id, record.icon_version), (Some(second), 2));
    let removed = db.store.set_guild_icon(guild, None, &changed).await?.expect("the guild exists");
    assert_eq!((removed.previous, removed.version), (Some(second), 3));
    assert_eq!(db.store.guild(guild).await?.expect("the guild exists").icon_id, None);
    assert!(db.store.set_guild_icon(GuildId::generate(), Some(first), &changed).await?.is_none());
    let log = db.store.audit_log(guild, None, 10).await?;
    assert_eq!(log.iter().filter(|e| e.entry.action == AuditAction::GuildUpdated).count(), 3);
    Ok(())
}

pub(super) async fn private_e2ee_channels_keep_members_who_are_in_the_guild(
    db: &Fresh,
) -> anyhow::Result<()> {
    let ids = accounts(db, &["pia", "quin", "rolf", "sami", "tove"]).await?;
    let (owner, maker, friend, other, stranger) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    let (guild, _) = guild_with_channel(db, owner).await?;
    join_all(db, guild, owner, &[maker, friend, other]).await?;
    let mut sealed = channel(guild, GuildChannelKind::Text, None, "secret", maker);
    sealed.e2ee = true;
    let made = entry(maker, AuditAction::ChannelCreated, Some(sealed.id.as_uuid()));
    assert_eq!(db.store.create_channel(&sealed, &made).await?, Ok(()));
    let conversation = sealed.id.conversation();
    let member_ids = |db: &Fresh| {
        let store = db.store.clone();
        async move {
            let members = store.members(conversation).await?;
            anyhow::Ok(members.iter().map(|m| (m.account_id, m.request)).collect::<Vec<_>>())
        }
    };
    // Its maker is its first member, never a request; the guild's owner is not in it.
    assert_eq!(member_ids(db).await?, [(maker, false)]);
    assert_eq!(db.store.sealed_channels(guild, maker).await?, [sealed.id]);
    assert!(db.store.sealed_channels(guild, owner).await?.is_empty());

    // Guild members join as members (not requests, though nobody here is a contact)...
    let (outcome, entries) =
        db.store.add_channel_members(conversation, maker, &[friend, friend], 3, now_ms()).await?;
    assert_eq!(outcome, crate::AddOutcome::Added(vec![friend]));
    assert_eq!(entries.len(), 1, "one system entry for the one added");
    // ...someone outside the guild makes the whole add fail, as would passing the cap.
    let (outcome, _) =
        db.store.add_channel_members(conversation, maker, &[other, stranger], 3, now_ms()).await?;
    assert_eq!(outcome, crate::AddOutcome::NotInGuild(stranger));
    let (outcome, _) =
        db.store.add_channel_members(conversation, maker, &[other, owner], 3, now_ms()).await?;
    assert_eq!(outcome, crate::AddOutcome::Full);
    let mut members = member_ids(db).await?;
    members.sort();
    let mut expected = vec![(maker, false), (friend, false)];
    expected.sort();
    assert_eq!(members, expected, "a refused add adds nobody");
    // A cloud channel or a group is not a private channel.
    let (_, general) =
        (guild, db.store.guild_channels(guild).await?.into_iter().find(|c| !c.e2ee).expect("#general"));
    let (outcome, _) =
        db.store.add_channel_members(general.id.conversation(), maker, &[other], 3, now_ms()).await?;
    assert_eq!(outcome, crate::AddOutcome::NotAChannel);

    // Read marks of its member rows are the guild's read marks for it.
    let sent = send(db, &message(conversation, friend, 1)).await?;
    db.store.mark_read(conversation, maker, sent.seq).await?;
    assert!(db.store.channel_reads(guild, maker).await?.contains(&(sealed.id, sent.seq)));

    // Leaving the guild, a kick or a ban take the member out of its private channels too.
    assert!(db.store.kick_member(guild, friend, &entry(owner, AuditAction::MemberKicked, None)).await?);
    assert_eq!(member_ids(db).await?, [(maker, false)]);
    assert!(db.store.sealed_channels(guild, friend).await?.is_empty());
    let (outcome, _) = db.store.add_channel_members(conversation, maker, &[other], 3, now_ms()).await?;
    assert_eq!(outcome, crate::AddOutcome::Added(vec![other]));
    assert!(db.store.ban_member(guild, other, "", &entry(owner, AuditAction::MemberBanned, None)).await?);
    assert_eq!(member_ids(db).await?, [(maker, false)]);
    assert!(db.store.leave_guild(guild, maker).await?);
    assert!(member_ids(db).await?.is_empty());
    // Someone kicked cannot be added back while out of the guild.
    let (outcome, _) = db.store.add_channel_members(conversation, owner, &[friend], 3, now_ms()).await?;
    assert_eq!(outcome, crate::AddOutcome::NotInGuild(friend));

    // An account deleted leaves its private channels with a line the others read.
    let uma = accounts(db, &["uma"]).await?[0];
    let made = entry(owner, AuditAction::InviteCreated, None);
    assert!(db.store.create_invite(&invite(guild, owner, 201, 0, 0), &made).await?);
    assert_eq!(db.store.join_guild(&[201; 32], uma, now_ms()).await?, Ok(GuildJoin::Joined(guild)));
    let (outcome, _) = db.store.add_channel_members(conversation, owner, &[owner, uma], 3, now_ms()).await?;
    assert_eq!(outcome, crate::AddOutcome::Added(vec![owner, uma]));
    let done = db.store.delete_account(uma, false, now_ms()).await?.expect("deleted");
    assert!(done.conversations.contains(&conversation));
    let line =
        done.changed.iter().find(|m| m.conversation_id == conversation).expect("a line in the channel");
    assert_eq!(line.system, Some(crate::SystemEntry::MemberLeft));
    assert_eq!(member_ids(db).await?, [(owner, false)]);
    Ok(())
}

/// Adds to private channels racing each other and other writers all go through: each waits
/// for the write lock rather than failing with "database is locked" (a SQLite transaction that
/// reads first and writes later cannot wait; this one broke a CI run).
pub(super) async fn adds_to_private_channels_wait_for_racing_writers(db: &Fresh) -> anyhow::Result<()> {
    let names: Vec<String> = (0..9).map(|i| format!("racer{i}")).collect();
    let ids = accounts(db, &names.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let (owner, joiners) = (ids[0], &ids[1..]);
    let (guild, general) = guild_with_channel(db, owner).await?;
    join_all(db, guild, owner, joiners).await?;
    let mut channels = Vec::new();
    for (i, _) in joiners.iter().enumerate() {
        let mut sealed = channel(guild, GuildChannelKind::Text, None, &format!("sealed-{i}"), owner);
        sealed.e2ee = true;
        let made = entry(owner, AuditAction::ChannelCreated, Some(sealed.id.as_uuid()));
        assert_eq!(db.store.create_channel(&sealed, &made).await?, Ok(()));
        channels.push(sealed.id.conversation());
    }
    let mut racers = tokio::task::JoinSet::new();
    for round in 0..3 {
        for (i, (&conversation, &joiner)) in channels.iter().zip(joiners).enumerate() {
            let store = db.store.clone();
            racers.spawn(async move {
                let (outcome, _) =
                    store.add_channel_members(conversation, owner, &[joiner], 10, now_ms()).await?;
                anyhow::Ok(Some(outcome))
            });
            // Another writer in the same guild between every two adds.
            let store = db.store.clone();
            let note = message(general.conversation(), owner, (round * 10 + i) as u8);
            racers.spawn(async move {
                store.send_message(&note).await?;
                anyhow::Ok(None)
            });
        }
    }
    let mut added = 0;
    while let Some(result) = racers.join_next().await {
        match result?? {
            // Later rounds find them in already and add nobody.
            Some(crate::AddOutcome::Added(accounts)) => added += accounts.len(),
            Some(other) => panic!("an add was refused: {other:?}"),
            None => {}
        }
    }
    assert_eq!(added, joiners.len(), "each joiner is added once");
    for (&conversation, &joiner) in channels.iter().zip(joiners) {
        let members: Vec<AccountId> =
            db.store.members(conversation).await?.iter().map(|m| m.account_id).collect();
        assert_eq!(members.len(), 2);
        assert!(members.contains(&joiner) && members.contains(&owner));
    }
    Ok(())
}
