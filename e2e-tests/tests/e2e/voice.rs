//! Voice channels through the SFU in `kitsulan serve` (docs/calls.md), from outside: three
//! people join a guild's voice channel with real WebRTC sessions and hear each other through
//! the server's one UDP port. Each refusal is written as the attack it stops: a stranger joining
//! a channel of a guild they are not in, a member without CONNECT, a text channel used as a
//! voice room, malformed and oversized offers, a flood of joins.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use kitsulan_client::people::{PASSWORD, account_id, online, start_with};
use kitsulan_client::voice::{KeyRing, Speech, VoicePeer};
use kitsulan_client::{Client, Database, Options, TestServer, assert_refused};
use kitsulan_proto::v1::event::Body;
use kitsulan_proto::v1::{
    GuildChannelKind, KickMemberRequest, PermissionOverwrite, SetChannelOverwriteRequest,
    permission_overwrite,
};
use tokio::sync::{mpsc, watch};

const CONNECT: u64 = 1 << 12;
const PACKETS: u16 = 50;

async fn plain(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client.sign_up(username, PASSWORD).await.unwrap_or_else(|e| panic!("SignUp of {username}: {e:?}"));
    client
}

/// Who `client` sees in voice channel `channel` of `guild`, sorted.
async fn in_voice(client: &Client, guild: &str, channel: &str) -> Vec<String> {
    let channels = client.get_guild(guild).await.unwrap().channels;
    let mut ids = channels.into_iter().find(|c| c.id == channel).unwrap().voice_account_ids;
    ids.sort();
    ids
}

/// Waits until `client` sees exactly `expected` in the voice channel.
async fn until_in_voice(client: &Client, guild: &str, channel: &str, expected: &[String]) {
    let mut expected = expected.to_vec();
    expected.sort();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = in_voice(client, guild, channel).await;
        if now == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "in voice: {now:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_people_hear_each_other_in_a_voice_channel() {
    // Someone whose app vanishes is out after 2 s of silence.
    let server = start_with(Options::new(Database::Sqlite).env("KITSULAN_SFU_DROP_AFTER_SECONDS", "2")).await;
    let olga = plain(&server, "olga").await;
    let bob = plain(&server, "bob").await;
    let carol = plain(&server, "carol").await;
    let dave = plain(&server, "dave").await;
    let mallory = plain(&server, "mallory").await;
    let guild = olga.create_guild("LAN party").await.unwrap();
    let id = guild.id.as_str();
    let channels = olga.get_guild(id).await.unwrap().channels;
    let lobby = channels.iter().find(|c| c.kind() == GuildChannelKind::Voice).unwrap().id.clone();
    let general = channels.iter().find(|c| c.name == "general").unwrap().id.clone();
    let invite = olga.create_invite(id, 0, 0).await.unwrap();
    for client in [&bob, &carol, &dave] {
        client.join_guild(&invite.code).await.unwrap();
    }
    // Dave may see the lobby but not connect.
    let no_connect = PermissionOverwrite {
        target: Some(permission_overwrite::Target::AccountId(account_id(&dave))),
        allow: 0,
        deny: CONNECT,
    };
    olga.guilds()
        .set_channel_overwrite(SetChannelOverwriteRequest {
            channel_id: lobby.clone(),
            overwrite: Some(no_connect),
        })
        .await
        .unwrap();

    // Refusals, before anything is parsed or set up.
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (_, offer) = VoicePeer::offer(9, localhost, 2).await.unwrap();
    assert_refused(mallory.join_voice(&lobby, offer.clone()).await, "CONVERSATION_NOT_FOUND");
    assert_refused(dave.join_voice(&lobby, offer.clone()).await, "NOT_ALLOWED");
    assert_refused(olga.join_voice(&general, offer.clone()).await, "NOT_A_VOICE_CHANNEL");
    assert_refused(olga.join_voice("not-an-id", offer.clone()).await, "ID_INVALID");
    assert_refused(olga.join_voice(&lobby, "v=0\r\n".to_owned()).await, "OFFER_INVALID");
    assert_refused(olga.join_voice(&lobby, "x".repeat(33 * 1024)).await, "PAYLOAD_TOO_LARGE");

    // Olga, Bob and Carol join and speak.
    let (go, listening) = watch::channel(false);
    let (up, mut connected) = mpsc::channel(3);
    let mut people = Vec::new();
    for (who, client) in [&olga, &bob, &carol].into_iter().enumerate() {
        let (mut peer, offer) = VoicePeer::offer(who as u8, localhost, 2).await.unwrap();
        let answer = client.join_voice(&lobby, offer).await.unwrap();
        peer.accept(answer).unwrap();
        let speech = Speech {
            packets: PACKETS,
            crash_after: None,
            deadline: Duration::from_secs(40),
            room_key: Some([7; 16]),
        };
        people.push(tokio::spawn(peer.run(up.clone(), listening.clone(), speech)));
    }
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(30), connected.recv())
            .await
            .expect("every session comes up");
    }
    // Everyone in the guild sees who is in the lobby, and Dave's open app hears of changes.
    let (o, b, c) = (account_id(&olga), account_id(&bob), account_id(&carol));
    let mut dave_live = online(&server, &dave, "dave").await;
    until_in_voice(&dave, id, &lobby, &[o, b.clone(), c.clone()]).await;
    go.send(true).unwrap();
    for (who, person) in people.into_iter().enumerate() {
        let heard = person.await.unwrap().unwrap();
        assert!(!heard.contains_key(&(who as u8)), "{who} heard themselves");
        for other in (0..3u8).filter(|o| usize::from(*o) != who) {
            let got = heard.get(&other).map_or(0, BTreeSet::len);
            assert!(
                got >= usize::from(PACKETS) * 95 / 100,
                "{who} heard {got} of {other}'s {PACKETS} packets"
            );
        }
    }
    // Their apps closed their sessions: the SFU drops them, and the list empties.
    until_in_voice(&dave, id, &lobby, &[]).await;

    // Carol and Bob come back and stay (sessions up, speaking for a while).
    let stay =
        Speech { packets: 1_000, crash_after: None, deadline: Duration::from_secs(60), room_key: None };
    let (up, mut connected) = mpsc::channel(2);
    let mut back = Vec::new();
    for (who, client) in [(1u8, &bob), (2, &carol)] {
        let (mut peer, offer) = VoicePeer::offer(who, localhost, 2).await.unwrap();
        peer.accept(client.join_voice(&lobby, offer).await.unwrap()).unwrap();
        back.push(tokio::spawn(peer.run(up.clone(), listening.clone(), stay)));
    }
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(30), connected.recv()).await.expect("back in");
    }
    until_in_voice(&dave, id, &lobby, &[b.clone(), c.clone()]).await;
    // Olga takes CONNECT from Carol in the lobby: Carol is out at once.
    let no_connect = SetChannelOverwriteRequest {
        channel_id: lobby.clone(),
        overwrite: Some(PermissionOverwrite {
            target: Some(permission_overwrite::Target::AccountId(c.clone())),
            allow: 0,
            deny: CONNECT,
        }),
    };
    olga.guilds().set_channel_overwrite(no_connect).await.unwrap();
    assert_eq!(
        in_voice(&dave, id, &lobby).await,
        std::slice::from_ref(&b),
        "Carol stays in voice without CONNECT"
    );
    // Bob is kicked from the guild: out at once, and Dave's app hears the lobby changed.
    let kick = KickMemberRequest { guild_id: id.to_owned(), account_id: b.clone(), reason: String::new() };
    olga.guilds().kick_member(kick).await.unwrap();
    assert!(in_voice(&dave, id, &lobby).await.is_empty(), "a kicked member stays in voice");
    let lobby_changed =
        |e: &kitsulan_proto::v1::Event| matches!(&e.body, Some(Body::Guild(g)) if g.guild_id == id);
    dave_live.wait_event(Duration::from_secs(10), "the lobby changed", lobby_changed).await.unwrap();
    // Leaving a room one is no longer in changes nothing.
    carol.leave_voice(&lobby).await.unwrap();
    for task in back {
        task.abort();
    }
}

/// A member who floods JoinVoice (each join sets up a session and tells the whole guild) runs
/// out after 20 in a minute; someone else in the same channel still joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_joins_runs_dry() {
    let server = start_with(Options::new(Database::Sqlite)).await;
    let olga = plain(&server, "olga").await;
    let flooder = plain(&server, "flooder").await;
    let guild = olga.create_guild("LAN party").await.unwrap();
    let id = guild.id.as_str();
    let channels = olga.get_guild(id).await.unwrap().channels;
    let lobby = channels.iter().find(|c| c.kind() == GuildChannelKind::Voice).unwrap().id.clone();
    let invite = olga.create_invite(id, 0, 0).await.unwrap();
    flooder.join_guild(&invite.code).await.unwrap();
    // Offers the SFU refuses: the join is counted before the offer is parsed.
    for _ in 0..20 {
        assert_refused(flooder.join_voice(&lobby, "v=0\r\n".to_owned()).await, "OFFER_INVALID");
    }
    assert_refused(flooder.join_voice(&lobby, "v=0\r\n".to_owned()).await, "RATE_LIMITED");
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (_, offer) = VoicePeer::offer(1, localhost, 2).await.unwrap();
    assert_refused(flooder.join_voice(&lobby, offer.clone()).await, "RATE_LIMITED");
    olga.join_voice(&lobby, offer).await.expect("another member is not limited");
    until_in_voice(&olga, id, &lobby, &[account_id(&olga)]).await;
}

/// Takes in what reached `device` until `want` voice keys of room `room` have come, and gives
/// each to `ring` as the key of its sender (`who_of` names the sending device's participant).
async fn take_voice_keys(
    device: &mut kitsulan_client::e2ee::E2eeDevice,
    ring: &KeyRing,
    room: &str,
    who_of: &std::collections::HashMap<String, u8>,
    want: usize,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while got < want {
        assert!(std::time::Instant::now() < deadline, "{got} of {want} voice keys arrived");
        for (sender, conversation, kid, key) in device.receive().await.unwrap().voice_keys {
            assert_eq!(conversation, room, "a voice key for another room");
            ring.add_peer(who_of[&sender], kid, &key.0);
            got += 1;
        }
    }
}

/// Ten people in one voice channel through `kitsulan serve`, each with a key of its own sent
/// over Olm to the others' devices (to-device `0x07`, as the apps do): everyone hears everyone
/// under its sender's key, and the SFU forwards only ciphertext (a payload in the clear fails
/// the run). One of them vanishes and leaves: the nine others make new keys, share them with
/// each other only, and go on under them; the one who left is never sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_people_share_keys_over_olm_and_new_ones_when_one_leaves() {
    use kitsulan_client::people::person;
    const PEOPLE: u8 = 10;
    const GONE: u8 = 9;
    let first_kid = |who: u8| 1_000 + u32::from(who);
    let second_kid = |who: u8| 2_000 + u32::from(who);
    // Everyone hears all nine others at once (the SFU's default is the six loudest).
    let server = start_with(Options::new(Database::Sqlite).env("KITSULAN_SFU_VOICES", "9")).await;
    let mut people = Vec::new();
    for who in 0..PEOPLE {
        people.push(person(&server, &format!("guest{who}")).await);
    }
    let owner = people[0].client.clone();
    let guild = owner.create_guild("Party").await.unwrap();
    let id = guild.id.as_str();
    let channels = owner.get_guild(id).await.unwrap().channels;
    let lobby = channels.iter().find(|c| c.kind() == GuildChannelKind::Voice).unwrap().id.clone();
    let invite = owner.create_invite(id, 0, 0).await.unwrap();
    for guest in &people[1..] {
        guest.client.join_guild(&invite.code).await.unwrap();
    }
    let accounts: Vec<String> = people.iter().map(|p| p.account_id().to_owned()).collect();
    let who_of: std::collections::HashMap<String, u8> =
        people.iter().zip(0..).map(|(p, who)| (p.device_id().to_owned(), who)).collect();

    // Everyone joins with a real session and keys that change while it runs.
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let rings: Vec<KeyRing> = (0..PEOPLE).map(|_| KeyRing::default()).collect();
    let (go, listening) = watch::channel(false);
    let (up, mut connected) = mpsc::channel(usize::from(PEOPLE));
    let mut tasks = Vec::new();
    for who in 0..PEOPLE {
        let (mut peer, offer) = VoicePeer::offer(who, localhost, usize::from(PEOPLE) - 1).await.unwrap();
        peer.accept(people[usize::from(who)].client.join_voice(&lobby, offer).await.unwrap()).unwrap();
        // 500 packets (10 s); the one who goes vanishes after 80.
        let crash_after = (who == GONE).then_some(80);
        let speech = Speech { packets: 500, crash_after, deadline: Duration::from_secs(90), room_key: None };
        tasks.push(tokio::spawn(peer.run_keyed(
            up.clone(),
            listening.clone(),
            speech,
            rings[usize::from(who)].clone(),
        )));
    }
    for _ in 0..PEOPLE {
        tokio::time::timeout(Duration::from_secs(30), connected.recv())
            .await
            .expect("every session comes up");
    }

    // Each shares a key of its own with every device of the nine others; once all hold the
    // others' keys, each seals with its own.
    for who in 0..PEOPLE {
        let others: Vec<&str> = accounts
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != usize::from(who))
            .map(|(_, a)| a.as_str())
            .collect();
        let sent = people[usize::from(who)]
            .share_voice_key(&lobby, &others, first_kid(who), &[who; 16])
            .await
            .unwrap();
        assert_eq!(sent, usize::from(PEOPLE) - 1);
    }
    for who in 0..PEOPLE {
        let (device, ring) = (&mut people[usize::from(who)], &rings[usize::from(who)]);
        take_voice_keys(device, ring, &lobby, &who_of, usize::from(PEOPLE) - 1).await;
    }
    for who in 0..PEOPLE {
        rings[usize::from(who)].set_own(first_kid(who), &[who; 16]);
    }
    go.send(true).unwrap();

    // The last one vanishes after 80 packets and its app leaves the channel.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    people[usize::from(GONE)].client.leave_voice(&lobby).await.unwrap();
    let stayed: Vec<String> = accounts[..usize::from(GONE)].to_vec();
    until_in_voice(&owner, id, &lobby, &stayed).await;
    // The nine make new keys, for each other's devices only, then seal with them.
    let others_of = |who: u8| -> Vec<&str> {
        accounts[..usize::from(GONE)]
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != usize::from(who))
            .map(|(_, a)| a.as_str())
            .collect()
    };
    for who in 0..GONE {
        let sent = people[usize::from(who)]
            .share_voice_key(&lobby, &others_of(who), second_kid(who), &[0x80 | who; 16])
            .await
            .unwrap();
        assert_eq!(sent, usize::from(GONE) - 1);
    }
    for who in 0..GONE {
        let (device, ring) = (&mut people[usize::from(who)], &rings[usize::from(who)]);
        take_voice_keys(device, ring, &lobby, &who_of, usize::from(GONE) - 1).await;
    }
    for who in 0..GONE {
        rings[usize::from(who)].set_own(second_kid(who), &[0x80 | who; 16]);
    }

    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap());
    }
    for (who, outcome) in (0..PEOPLE).zip(&outcomes) {
        assert!(!outcome.heard.contains_key(&who), "{who} heard themselves");
        for other in (0..PEOPLE).filter(|o| *o != who) {
            let under = |kid: u32| outcome.by_key.get(&(other, u64::from(kid))).map_or(0, BTreeSet::len);
            // Everyone heard everyone under the first keys (the one who went, its 80 packets).
            assert!(
                under(first_kid(other)) >= 60,
                "{who} heard {} of {other} under its first key",
                under(first_kid(other))
            );
            if who != GONE && other != GONE {
                // The nine went on under their new keys for at least the last 2 s.
                assert!(
                    under(second_kid(other)) >= 100,
                    "{who} heard {} of {other} under its new key",
                    under(second_kid(other))
                );
            }
        }
        assert_eq!(rings[usize::from(who)].unopened(), 0, "{who} got frames under keys it did not hold");
    }
    // The one who left was never sent a new key.
    let late = people[usize::from(GONE)].receive().await.unwrap();
    assert!(late.voice_keys.is_empty(), "the one who left got {} new keys", late.voice_keys.len());
}
