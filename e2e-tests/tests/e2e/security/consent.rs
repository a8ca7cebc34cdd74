//! Point 7: consent before contact. A stranger (someone the person shares no accepted
//! conversation with) who opens a direct conversation, or adds the person to a group, makes a
//! request: until the person accepts it the stranger sees no presence, avatar or read receipt
//! of theirs, their phone does not ring, and the person sees a request, not a chat. Blocking
//! stops the stranger's messages, calls, requests and to-device messages without telling them.
//! One account cannot flood others with groups (a cap per hour and on members), and
//! `ListConversations` comes in pages.

use std::time::Duration;

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use kitsulan_client::calls::signal;
use kitsulan_client::gateway::LiveInbox;
use kitsulan_client::people::{PASSWORD, account_id, online, opaque, signed_up, start, start_with};
use kitsulan_client::{Client, Database, Options, TestServer, assert_refused};
use kitsulan_proto::v1::{
    CallAction, Conversation, ConversationFilter, Event, FetchToDeviceRequest, HistoryDirection,
    OutgoingToDeviceMessage, SendToDeviceRequest, event,
};
use uuid::Uuid;

/// How long a live event may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long to listen for events that must not come (they would have arrived by then).
const QUIET: Duration = Duration::from_millis(1500);

/// Another signed-in device of `username`.
async fn plain_device(server: &TestServer, username: &str, name: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap();
    client
        .sign_in_as(username, PASSWORD, name)
        .await
        .unwrap_or_else(|e| panic!("SignIn of {username}: {e:?}"));
    client
}

fn png() -> Vec<u8> {
    let image = RgbaImage::from_fn(32, 32, |x, y| Rgba([x as u8 * 8, 0, y as u8 * 8, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgba8(image).write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

fn presence_of(event: &Event, account_id: &str) -> Option<bool> {
    match &event.body {
        Some(event::Body::Presence(p)) if p.account_id == account_id => Some(p.online),
        _ => None,
    }
}

fn receipt_of(event: &Event, conversation_id: &str, account_id: &str) -> Option<u64> {
    match &event.body {
        Some(event::Body::Receipt(r))
            if r.conversation_id == conversation_id && r.account_id == account_id =>
        {
            Some(r.read_seq)
        }
        _ => None,
    }
}

/// A member event about `account_id` in `conversation_id`: (removed, request).
fn member_of(event: &Event, conversation_id: &str, account_id: &str) -> Option<(bool, bool)> {
    match &event.body {
        Some(event::Body::Member(m))
            if m.conversation_id == conversation_id && m.account_id == account_id =>
        {
            Some((m.removed, m.request))
        }
        _ => None,
    }
}

fn is_message_in(event: &Event, conversation_id: &str) -> bool {
    matches!(&event.body, Some(event::Body::Message(m))
        if m.message.as_ref().is_some_and(|m| m.conversation_id == conversation_id))
}

fn ids(conversations: &[Conversation]) -> Vec<&str> {
    conversations.iter().map(|c| c.id.as_str()).collect()
}

fn read_seq_of(conversation: &Conversation, account_id: &str) -> u64 {
    conversation.members.iter().find(|m| m.account_id == account_id).map_or(u64::MAX, |m| m.read_seq)
}

// ---------------------------------------------------------------------------------------------
// A stranger's direct message

#[tokio::test]
async fn a_strangers_direct_message_is_a_request_until_accepted_sqlite() {
    a_strangers_direct_message_is_a_request_until_accepted(Database::Sqlite).await;
}

#[tokio::test]
async fn a_strangers_direct_message_is_a_request_until_accepted_postgres() {
    a_strangers_direct_message_is_a_request_until_accepted(Database::FreshPostgres).await;
}

async fn a_strangers_direct_message_is_a_request_until_accepted(database: Database) {
    let server = start(database).await;
    let alice = signed_up(&server, "alice").await;
    let alice_phone = plain_device(&server, "alice", "Phone").await;
    let bob = signed_up(&server, "bob").await;
    let (alice_id, bob_id) = (account_id(&alice), account_id(&bob));
    alice.set_my_avatar(png()).await.unwrap();
    let mut bob_in = online(&server, &bob, "bob").await;

    // Bob, a stranger, writes to Alice.
    let direct = bob.open_direct(&alice_id).await.unwrap().conversation.unwrap();
    assert!(!direct.request, "the one who starts a conversation has accepted it");
    let first = bob.send_message(opaque(&direct.id, "hi alice, it's bob")).await.unwrap();

    // Alice sees a request, not a chat: not in her chat list, in her requests, from Bob.
    let accepted = alice.list_all_conversations(ConversationFilter::Accepted).await.unwrap();
    assert!(accepted.is_empty(), "a stranger's conversation in Alice's chat list: {:?}", ids(&accepted));
    let requests = alice.list_all_conversations(ConversationFilter::Requests).await.unwrap();
    assert_eq!(ids(&requests), [direct.id.as_str()], "Alice's requests");
    assert!(requests[0].request, "marked as a request");
    assert_eq!(requests[0].requested_by, bob_id, "the request names who made it");
    assert_eq!(requests[0].unread_count, 1);
    // She may look inside before deciding (as in Signal): the message is there.
    let preview = alice.all_messages(&direct.id, HistoryDirection::Forward, 50).await.unwrap();
    assert_eq!(preview.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), [first.id.as_str()]);

    // Alice comes online: Bob does not see it, and she does not see that Bob is online.
    let mut alice_in = LiveInbox::new();
    let ready = alice_in.connect(&server.url(), alice.access_token(), false).await.unwrap().clone();
    assert!(ready.online.is_empty(), "Alice's Ready.online lists a stranger: {:?}", ready.online);
    alice_in.sync(WAIT).await.unwrap();
    let own = alice_in.events().iter().find_map(|e| member_of(e, &direct.id, &alice_id));
    assert_eq!(own, Some((false, true)), "Alice's own member event says it is a request");
    bob_in
        .expect_none(QUIET, "Bob hears Alice's presence", |e| presence_of(e, &alice_id).is_some())
        .await
        .unwrap();
    // No avatar for the stranger either way.
    assert_refused(bob.account_avatar_url(&alice_id).await, "AVATAR_NOT_FOUND");
    // Alice reads the request: Bob gets no read receipt, and sees none in the member list.
    alice.mark_read(&direct.id, first.seq).await.unwrap();
    bob_in
        .expect_none(QUIET, "Bob gets Alice's receipt", |e| receipt_of(e, &direct.id, &alice_id).is_some())
        .await
        .unwrap();
    assert_eq!(read_seq_of(&bob.get_conversation(&direct.id).await.unwrap(), &alice_id), 0);
    // Bob's call does not ring Alice; Alice cannot call from a request.
    let call = Uuid::now_v7().to_string();
    bob_in.gateway().unwrap().call(signal(&direct.id, &call, CallAction::Invite)).unwrap();
    alice_in.expect_no_call(QUIET, "a stranger's call rings Alice").await.unwrap();
    bob_in.gateway().unwrap().call(signal(&direct.id, &call, CallAction::Cancel)).unwrap();
    let mut alice_phone_in = online(&server, &alice_phone, "alice's phone").await;
    alice_phone_in
        .gateway()
        .unwrap()
        .call(signal(&direct.id, &Uuid::now_v7().to_string(), CallAction::Invite))
        .unwrap();
    let error = alice_phone_in.gateway().unwrap().expect_error(WAIT).await.unwrap();
    assert_eq!((error.reason.as_str(), error.fatal), ("REQUEST_PENDING", false), "{error:?}");

    // Alice accepts: a normal conversation now, on all her devices.
    let now = alice.accept_request(&direct.id).await.unwrap();
    assert!(!now.request && now.requested_by == bob_id, "{now:?}");
    alice_phone_in
        .wait_event(WAIT, "Alice's phone hears she accepted", |e| {
            member_of(e, &direct.id, &alice_id) == Some((false, false))
        })
        .await
        .unwrap();
    let accepted = alice.list_all_conversations(ConversationFilter::Accepted).await.unwrap();
    assert_eq!(ids(&accepted), [direct.id.as_str()]);
    assert!(alice.list_all_conversations(ConversationFilter::Requests).await.unwrap().is_empty());
    assert_refused(alice.accept_request(&direct.id).await, "NOT_A_REQUEST");
    // Bob now gets her read mark, her avatar and her presence.
    bob_in
        .wait_event(WAIT, "Alice's read receipt at Bob", |e| {
            receipt_of(e, &direct.id, &alice_id) == Some(first.seq)
        })
        .await
        .unwrap();
    assert_eq!(read_seq_of(&bob.get_conversation(&direct.id).await.unwrap(), &alice_id), first.seq);
    bob.account_avatar_url(&alice_id).await.unwrap();
    alice_in.close().await;
    alice_phone_in.close().await;
    bob_in
        .wait_event(WAIT, "Alice offline, at Bob", |e| presence_of(e, &alice_id) == Some(false))
        .await
        .unwrap();
    let _alice_back = online(&server, &alice, "alice again").await;
    bob_in
        .wait_event(WAIT, "Alice online, at Bob", |e| presence_of(e, &alice_id) == Some(true))
        .await
        .unwrap();
    // And they talk.
    let reply = alice.send_message(opaque(&direct.id, "hi bob")).await.unwrap();
    bob_in
        .wait_event(WAIT, "Alice's reply at Bob", |e| {
            matches!(&e.body, Some(event::Body::Message(m)) if m.message.as_ref().is_some_and(|m| m.id == reply.id))
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_declined_request_leaves_the_history_to_the_sender() {
    let server = start(Database::Sqlite).await;
    let alice = signed_up(&server, "alice").await;
    let bob = signed_up(&server, "bob").await;
    let carol = signed_up(&server, "carol").await;
    let (alice_id, bob_id) = (account_id(&alice), account_id(&bob));

    let direct = bob.open_direct(&alice_id).await.unwrap().conversation.unwrap();
    bob.send_message(opaque(&direct.id, "buy my stuff")).await.unwrap();
    alice.decline_request(&direct.id).await.unwrap();
    assert_refused(alice.get_conversation(&direct.id).await, "CONVERSATION_NOT_FOUND");
    assert!(alice.list_conversations().await.unwrap().is_empty());
    let at_bob = bob.get_conversation(&direct.id).await.unwrap();
    assert_eq!(at_bob.members.iter().map(|m| m.account_id.as_str()).collect::<Vec<_>>(), [bob_id.as_str()]);
    assert_eq!(bob.all_messages(&direct.id, HistoryDirection::Forward, 50).await.unwrap().len(), 1);
    // Declining is not blocking: asking again makes a new request.
    bob.open_direct(&alice_id).await.unwrap();
    assert_eq!(
        ids(&alice.list_all_conversations(ConversationFilter::Requests).await.unwrap()),
        [direct.id.as_str()]
    );

    // Only a request can be declined; a conversation one started is not one.
    assert_refused(bob.decline_request(&direct.id).await, "NOT_A_REQUEST");
    // Replying accepts (as in WhatsApp): Carol's request becomes a chat when Alice answers.
    let from_carol = carol.open_direct(&alice_id).await.unwrap().conversation.unwrap();
    alice.send_message(opaque(&from_carol.id, "hello carol")).await.unwrap();
    assert!(!alice.get_conversation(&from_carol.id).await.unwrap().request);
}

// ---------------------------------------------------------------------------------------------
// Blocking

#[tokio::test]
async fn a_blocked_account_reaches_nobody_and_is_not_told() {
    let server = start(Database::Sqlite).await;
    let alice = signed_up(&server, "alice").await;
    let carol = signed_up(&server, "carol").await;
    let bob = signed_up(&server, "bob").await;
    let dave = signed_up(&server, "dave").await;
    let (alice_id, carol_id, bob_id) = (account_id(&alice), account_id(&carol), account_id(&bob));

    // Dave's group with Alice and Carol, accepted by both before anything happens.
    let group = dave.create_group("Dave's friends", &[&alice_id, &carol_id]).await.unwrap();
    alice.accept_request(&group.id).await.unwrap();
    carol.accept_request(&group.id).await.unwrap();
    let mut alice_in = online(&server, &alice, "alice").await;
    let mut carol_in = online(&server, &carol, "carol").await;
    let mut dave_in = online(&server, &dave, "dave").await;

    // Carol writes to Alice; Alice blocks her.
    let direct = carol.open_direct(&alice_id).await.unwrap().conversation.unwrap();
    carol.send_message(opaque(&direct.id, "you again")).await.unwrap();
    alice_in.wait_event(WAIT, "Carol's message at Alice", |e| is_message_in(e, &direct.id)).await.unwrap();
    assert_refused(alice.block(&alice_id).await, "CANNOT_BLOCK_SELF");
    assert_refused(alice.block(&Uuid::now_v7().to_string()).await, "ACCOUNT_NOT_FOUND");
    alice.block(&carol_id).await.unwrap();
    alice.block(&carol_id).await.unwrap();
    let blocked = alice.list_blocked().await.unwrap();
    assert_eq!(blocked.iter().map(|b| b.account_id.as_str()).collect::<Vec<_>>(), [carol_id.as_str()]);
    alice_in
        .wait_event(WAIT, "Alice's devices hear she left the request", |e| {
            member_of(e, &direct.id, &alice_id).is_some_and(|(removed, _)| removed)
        })
        .await
        .unwrap();
    assert_refused(alice.get_conversation(&direct.id).await, "CONVERSATION_NOT_FOUND");

    // Carol's later message "succeeds" but never reaches Alice.
    carol.send_message(opaque(&direct.id, "are you ignoring me")).await.unwrap();
    // Her new requests do not arrive: asking again, or a new group with Alice in it.
    let again = carol.open_direct(&alice_id).await.unwrap().conversation.unwrap();
    assert_eq!(again.id, direct.id);
    let trap = carol.create_group("Carol's trap", &[&alice_id]).await.unwrap();
    assert!(trap.members.iter().all(|m| m.account_id != alice_id), "Alice was added: {trap:?}");
    // Her to-device messages are dropped (the send still succeeds).
    let to_alice = |text: &str| SendToDeviceRequest {
        messages: vec![OutgoingToDeviceMessage {
            message_id: Uuid::now_v7().to_string(),
            recipient_device_id: alice.device_id().to_owned(),
            ciphertext: text.as_bytes().to_vec(),
        }],
    };
    carol.to_device().send_to_device(to_alice("an olm message from carol")).await.unwrap();
    // Her call in the group they share rings Dave, not Alice.
    let call = Uuid::now_v7().to_string();
    carol_in.gateway().unwrap().call(signal(&group.id, &call, CallAction::Invite)).unwrap();
    let invite = dave_in.next_call(WAIT, "Carol's INVITE at Dave").await.unwrap();
    assert_eq!(invite.call_id, call);
    alice_in
        .expect_none(QUIET, "anything from Carol reaches Alice", |e| match &e.body {
            Some(event::Body::Call(_)) => true,
            Some(event::Body::ToDevice(_)) => true,
            Some(event::Body::Member(m)) => m.account_id == alice_id && !m.removed,
            Some(event::Body::Message(m)) => {
                m.message.as_ref().is_some_and(|m| m.sender_account_id == carol_id)
            }
            _ => false,
        })
        .await
        .unwrap();
    let inbox = alice.to_device().fetch_to_device(FetchToDeviceRequest { limit: 0 }).await.unwrap();
    assert!(inbox.into_inner().messages.is_empty(), "a blocked account's to-device message arrived");
    assert!(alice.list_all_conversations(ConversationFilter::Requests).await.unwrap().is_empty());

    // Alice cannot write to someone she blocked until she unblocks them.
    assert_refused(alice.open_direct(&carol_id).await, "ACCOUNT_BLOCKED");

    // Everyone else still reaches her: Bob's request, message and to-device message.
    let from_bob = bob.open_direct(&alice_id).await.unwrap().conversation.unwrap();
    bob.send_message(opaque(&from_bob.id, "hello from bob")).await.unwrap();
    bob.to_device().send_to_device(to_alice("an olm message from bob")).await.unwrap();
    alice_in.wait_event(WAIT, "Bob's message at Alice", |e| is_message_in(e, &from_bob.id)).await.unwrap();
    alice_in
        .wait_event(
            WAIT,
            "Bob's to-device message at Alice",
            |e| matches!(&e.body, Some(event::Body::ToDevice(t)) if t.sender_account_id == bob_id),
        )
        .await
        .unwrap();

    // Unblocking lets Carol reach her again (they both accepted Dave's group: not a request).
    alice.unblock(&carol_id).await.unwrap();
    assert!(alice.list_blocked().await.unwrap().is_empty());
    carol.open_direct(&alice_id).await.unwrap();
    let back = alice.get_conversation(&direct.id).await.unwrap();
    assert!(!back.request, "contacts through Dave's group: {back:?}");
}

// ---------------------------------------------------------------------------------------------
// Caps

#[tokio::test]
async fn one_account_cannot_create_groups_without_end() {
    let server =
        start_with(Options::new(Database::Sqlite).env("KITSULAN_RATE_LIMIT_GROUP_CREATIONS", "3/1h")).await;
    let mallory = signed_up(&server, "mallory").await;
    let alice = signed_up(&server, "alice").await;
    let alice_id = account_id(&alice);
    // A refused group costs nothing.
    assert_refused(mallory.create_group("", &[&alice_id]).await, "TITLE_INVALID");
    for i in 0..3 {
        mallory.create_group(&format!("spam {i}"), &[&alice_id]).await.unwrap();
    }
    let refusal = assert_refused(mallory.create_group("spam 3", &[&alice_id]).await, "RATE_LIMITED");
    assert!(refusal.retry_after.unwrap_or(0) >= 60, "{refusal:?}");
    assert_eq!(alice.list_all_conversations(ConversationFilter::Requests).await.unwrap().len(), 3);
    // Someone else still creates groups.
    alice.create_group("Alice's book club", &[]).await.unwrap();
}

#[tokio::test]
async fn groups_hold_at_most_the_configured_number_of_members() {
    let server = start_with(Options::new(Database::Sqlite).env("KITSULAN_GROUP_MAX_MEMBERS", "4")).await;
    let owner = signed_up(&server, "owner").await;
    let mut others = Vec::new();
    for name in ["ann", "ben", "cat", "dan"] {
        others.push(account_id(&signed_up(&server, name).await));
    }
    let all: Vec<&str> = others.iter().map(String::as_str).collect();
    assert_refused(owner.create_group("Too big", &all).await, "TOO_MANY_MEMBERS");
    let group = owner.create_group("Just right", &all[..3]).await.unwrap();
    assert_eq!(group.members.len(), 4);
    assert_refused(owner.add_members(&group.id, &all[3..]).await, "GROUP_FULL");
    assert_eq!(owner.get_conversation(&group.id).await.unwrap().members.len(), 4, "nothing was added");
    owner.remove_member(&group.id, all[0]).await.unwrap();
    let now = owner.add_members(&group.id, &all[3..]).await.unwrap();
    assert_eq!(now.members.len(), 4);
}

#[tokio::test]
async fn the_conversation_list_comes_in_pages() {
    let server = start(Database::Sqlite).await;
    let alice = signed_up(&server, "alice").await;
    let bob = signed_up(&server, "bob").await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(alice.create_group(&format!("group {i}"), &[]).await.unwrap().id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let request = bob.open_direct(&account_id(&alice)).await.unwrap().conversation.unwrap();
    made.reverse();

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice.list_conversations_page(ConversationFilter::Accepted, 3, &token).await.unwrap();
        pages.push(ids(&page.conversations).iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1], "{pages:?}");
    assert_eq!(pages.concat(), made, "most recently active first, each once");
    let everything = alice.list_conversations().await.unwrap();
    assert_eq!(everything.len(), 8);
    assert_eq!(everything[0].id, request.id, "the newest first, requests included when asked for all");

    assert_refused(
        alice.list_conversations_page(ConversationFilter::Accepted, 101, "").await,
        "LIMIT_INVALID",
    );
    for bad in ["nonsense", "12.not-a-uuid", ".", "x.0190a000-0000-7000-8000-000000000000"] {
        assert_refused(
            alice.list_conversations_page(ConversationFilter::Accepted, 3, bad).await,
            "PAGE_TOKEN_INVALID",
        );
    }
}
