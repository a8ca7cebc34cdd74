//! End-to-end encryption, tested from outside: real devices (`kitsulan-crypto` on the client
//! side, as the PWA and the load generator run it) talking to the real `kitsulan` binary over
//! native gRPC. What is checked is what a person relies on: the other devices decrypt what was
//! sent; a newly linked device reads new messages; a removed device reads nothing sent after
//! its removal; and afterwards the server's database and data dir hold no plaintext and no
//! private key. Around that: the key directory (KeyService), the to-device inbox
//! (ToDeviceService), linking devices (PairingService), with their documented refusals, and
//! verifying a contact with SAS emoji over Olm to-device messages.
//!
//! Megolm messages travel in direct conversations here (each device's protocol machine shares
//! the conversation's session over Olm to-device messages); see `kitsulan_client::e2ee`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::collections::HashSet;

use kitsulan_client::client::Refusal;
use kitsulan_client::conversations::Content;
use kitsulan_client::e2ee::{
    E2eeDevice, ExistingDeviceLink, NewDeviceLink, PAIRING_ACCOUNT_KEY, PAIRING_HELLO,
    PAIRING_SAS_COMMITMENT, PAIRING_SAS_KEY, PAIRING_SAS_MAC, PeerDevice, fallback_key_proto, find_pairing,
    link_new_device_by_pin, link_new_device_by_qr, made_up_one_time_keys, now_ms, one_time_key_proto,
    uuid_bytes, verify_claimed,
};
use kitsulan_client::people::{self, PASSWORD, start};
use kitsulan_client::scan::{scan_database_rows, scan_for_plaintexts, scan_for_secrets};
use kitsulan_client::verification::{ContactVerification, wait_for_request};
use kitsulan_client::{Client, Database, Options, TestServer, assert_refused, assert_refused_with};
use kitsulan_crypto::pairing::{NewDevicePairing, PairingChannel};
use kitsulan_crypto::sas::{self, SasVerification};
use kitsulan_crypto::verification::{CancelReason, Identity, State as VerificationState};
use kitsulan_crypto::{AccountKey, DeviceAccount, OsRng, verify_one_time_key};
use kitsulan_proto::v1::{
    AckToDeviceRequest, CancelPairingRequest, ClaimKeysRequest, CreatePairingRequest, GetPairingRequest,
    ListDevicesRequest, OutgoingToDeviceMessage, PairingState, PostPairingMessageRequest,
    PublishAccountKeyRequest, SendToDeviceRequest, SignOutDeviceRequest, SignUpRequest, SignedKey,
    UploadKeysRequest,
};
use tonic::Status;
use uuid::Uuid;

const FIVE_MINUTES_MS: i64 = 5 * 60 * 1000;
const MAX_CIPHERTEXT: usize = 64 * 1024;

async fn connect(server: &TestServer) -> Client {
    Client::connect(&server.url()).await.unwrap()
}

/// A new account `username`, signed in on a device called `device_name`.
async fn signed_up(server: &TestServer, username: &str, device_name: &str) -> Client {
    let mut client = connect(server).await;
    client
        .sign_up_with(SignUpRequest {
            username: username.into(),
            password: PASSWORD.into(),
            device_name: device_name.into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("sign-up of {username}: {:?}", Refusal::of(&status)));
    client
}

/// Another device of `username`, signed in with the password.
async fn signed_in(server: &TestServer, username: &str, device_name: &str) -> Client {
    let mut client = connect(server).await;
    client
        .sign_in_as(username, PASSWORD, device_name)
        .await
        .unwrap_or_else(|status| panic!("sign-in of {username}: {:?}", Refusal::of(&status)));
    client
}

/// A person's first device: signed up, account key published, keys uploaded.
async fn first_device(server: &TestServer, username: &str, device_name: &str) -> E2eeDevice {
    let mut device = E2eeDevice::first_device(signed_up(server, username, device_name).await);
    device.publish_account_key().await.unwrap();
    device.upload_keys(10).await.unwrap();
    device
}

fn to_device(recipient: &str, ciphertext: &[u8]) -> OutgoingToDeviceMessage {
    OutgoingToDeviceMessage {
        message_id: Uuid::now_v7().to_string(),
        recipient_device_id: recipient.to_owned(),
        ciphertext: ciphertext.to_vec(),
    }
}

async fn send(from: &Client, messages: Vec<OutgoingToDeviceMessage>) -> Result<(), Status> {
    from.to_device().send_to_device(SendToDeviceRequest { messages }).await.map(|_| ())
}

/// A direct conversation `from` opens with `to`'s person, accepted by `to`.
async fn direct(from: &E2eeDevice, to: &E2eeDevice) -> String {
    let conversation = from.client.open_direct(to.account_id()).await.unwrap().conversation.unwrap();
    to.client.accept_if_request(&conversation.id).await.unwrap();
    conversation.id
}

/// Reads the history of `chat` and checks that its last messages are exactly `texts`, each
/// from `sender` and decrypted (what came before them may be anything).
async fn expect_texts(device: &mut E2eeDevice, sender: &E2eeDevice, chat: &str, texts: &[&str]) {
    let history = device.read_history(chat).await.unwrap();
    let messages: Vec<_> = history.iter().filter(|e| e.message.system.is_none()).collect();
    assert!(messages.len() >= texts.len(), "{} sees {} messages", device.device_id(), messages.len());
    let tail = &messages[messages.len() - texts.len()..];
    for (entry, text) in tail.iter().zip(texts) {
        assert_eq!(
            entry.content,
            Content::Text(text.as_bytes().to_vec()),
            "what {} decrypted of message {}",
            device.device_id(),
            entry.message.id
        );
        assert_eq!(
            (entry.message.sender_account_id.as_str(), entry.message.sender_device_id.as_str()),
            (sender.account_id(), sender.device_id())
        );
    }
}

/// `devices`' ids, sorted (as `conversation_shared_with` lists them).
fn sorted_ids(devices: &[&E2eeDevice]) -> Vec<String> {
    let mut ids = device_ids(devices);
    ids.sort();
    ids
}

fn device_ids(devices: &[&E2eeDevice]) -> Vec<String> {
    devices.iter().map(|d| d.device_id().to_owned()).collect()
}

fn listed_devices(accounts: &[kitsulan_proto::v1::AccountKeys], account_id: &str) -> (Vec<String>, u64) {
    let account = accounts.iter().find(|a| a.account_id == account_id).expect("account listed");
    (account.devices.iter().map(|d| d.device_id.clone()).collect(), account.device_list_version)
}

// ---------------------------------------------------------------------------------------------
// The scenario

#[tokio::test]
async fn alice_and_bob_talk_end_to_end_on_sqlite() {
    two_people_three_devices(Database::Sqlite).await;
}

#[tokio::test]
async fn alice_and_bob_talk_end_to_end_on_postgres() {
    two_people_three_devices(Database::FreshPostgres).await;
}

async fn two_people_three_devices(database: Database) {
    let server = start(database).await;

    // Alice's laptop makes her account key; her phone gets a copy (linking by pairing is
    // tested below with her tablet). Bob has one device.
    let mut laptop = E2eeDevice::first_device(signed_up(&server, "alice", "Laptop").await);
    laptop.publish_account_key().await.unwrap();
    let mut phone = E2eeDevice::new(signed_in(&server, "alice", "Phone").await, laptop.account_key_copy());
    phone.publish_account_key().await.unwrap(); // the same key again is fine
    let mut bob = first_device(&server, "bob", "Bob's laptop").await;
    let alice_id = laptop.account_id().to_owned();
    let bob_id = bob.account_id().to_owned();

    // Before uploading keys, Alice's account key is published but she has no devices listed.
    let accounts = bob.query_keys(&[&alice_id]).await.unwrap();
    assert_eq!(accounts[0].account_key, laptop.account_key().public_key());
    let (listed, version_before_devices) = listed_devices(&accounts, &alice_id);
    assert!(listed.is_empty(), "{listed:?}");

    let uploaded = laptop.upload_keys(10).await.unwrap();
    assert_eq!((uploaded.one_time_key_count, uploaded.has_fallback_key), (10, true));
    let uploaded = phone.upload_keys(10).await.unwrap();
    assert_eq!((uploaded.one_time_key_count, uploaded.has_fallback_key), (10, true));
    let counts = phone.key_counts().await.unwrap();
    assert_eq!((counts.one_time_key_count, counts.has_fallback_key), (10, true));

    // Bob sees both of Alice's devices, certified by her account key, oldest first.
    let change = bob.sync_devices(&[&alice_id]).await.unwrap();
    assert_eq!(change.added, device_ids(&[&laptop, &phone]));
    assert!(change.versions[&alice_id] > version_before_devices, "{change:?}");

    // A direct conversation between them: every device of both is a member device.
    let chat = direct(&laptop, &bob).await;

    // Messages both ways; every device of the other side (and the sender's own other devices)
    // decrypts them.
    let hello = laptop.send_to_conversation(&chat, b"hello from alice").await.unwrap();
    assert_eq!(laptop.conversation_shared_with(&chat), sorted_ids(&[&phone, &bob]));
    expect_texts(&mut bob, &laptop, &chat, &["hello from alice"]).await;
    expect_texts(&mut phone, &laptop, &chat, &["hello from alice"]).await;

    bob.send_to_conversation(&chat, b"hello from bob").await.unwrap();
    expect_texts(&mut laptop, &bob, &chat, &["hello from bob"]).await;
    expect_texts(&mut phone, &bob, &chat, &["hello from bob"]).await;

    phone.send_to_conversation(&chat, b"hello from alice's phone").await.unwrap();
    expect_texts(&mut laptop, &phone, &chat, &["hello from alice's phone"]).await;
    expect_texts(&mut bob, &phone, &chat, &["hello from alice's phone"]).await;

    // The same session goes on while the devices stay the same.
    let second = laptop.send_to_conversation(&chat, b"how are you, bob?").await.unwrap();
    assert_eq!(
        (second.encrypted.session_id.as_str(), second.encrypted.message_index),
        (hello.encrypted.session_id.as_str(), 1)
    );
    expect_texts(&mut bob, &laptop, &chat, &["how are you, bob?"]).await;
    expect_texts(&mut phone, &laptop, &chat, &["how are you, bob?"]).await;

    // A message replayed (the same ciphertext under another id, as a server could) is refused
    // by the receiver, and counted as undecryptable.
    assert_eq!(bob.undecryptable(), 0, "{:?}", bob.undecryptable_reasons());
    let mut replay = second.encrypted.clone();
    replay.message_id = Uuid::now_v7().to_string();
    laptop.client.send_message(replay.send_request("")).await.unwrap();
    let history = bob.read_history(&chat).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.message.id, replay.message_id);
    assert!(
        matches!(&last.content, Content::Undecryptable(why) if why.contains("replay")),
        "{:?}",
        last.content
    );
    assert_eq!(bob.undecryptable(), 1, "{:?}", bob.undecryptable_reasons());

    // Alice links her tablet by PIN from her laptop; both screens show the same emoji.
    let alice_version = bob.device_list_version(&alice_id).unwrap();
    let linked =
        link_new_device_by_pin(&laptop, connect(&server).await, &server.url(), "Tablet").await.unwrap();
    assert_eq!(linked.new_device_sas, linked.existing_device_sas);
    assert_eq!(linked.new_device_sas.emoji().len(), 7);
    assert_eq!(linked.new_device_code, linked.existing_device_code);
    assert!((10..=99).contains(&linked.new_device_code.number()));
    let mut tablet = linked.device;
    assert_eq!(tablet.device_id(), linked.approved_device_id);
    assert_eq!(tablet.account_id(), alice_id);
    assert_eq!(tablet.account_key().public_key(), laptop.account_key().public_key());
    let devices =
        laptop.client.devices().list_devices(ListDevicesRequest {}).await.unwrap().into_inner().devices;
    let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["Laptop", "Phone", "Tablet"]);

    // The tablet appears in QueryKeys with a higher device list version.
    let change = bob.sync_devices(&[&alice_id]).await.unwrap();
    assert_eq!(change.added, device_ids(&[&tablet]));
    assert!(change.versions[&alice_id] > alice_version, "{change:?} after {alice_version}");

    // It has no key from before it was linked: nothing in its inbox, and the history so far
    // does not decrypt (until its own devices answer its key requests).
    let inbox = tablet.receive().await.unwrap();
    assert!(inbox.room_keys.is_empty() && inbox.failures.is_empty(), "{inbox:?}");
    assert!(matches!(tablet.decrypt_message(&hello.message), Content::Undecryptable(_)));

    // New messages: the senders see a new device, rotate, and share the new session with it.
    let welcome = bob.send_to_conversation(&chat, b"welcome, tablet").await.unwrap();
    assert_eq!(bob.conversation_shared_with(&chat), sorted_ids(&[&laptop, &phone, &tablet]));
    for device in [&mut laptop, &mut phone, &mut tablet] {
        expect_texts(device, &bob, &chat, &["welcome, tablet"]).await;
    }
    laptop.send_to_conversation(&chat, b"hello from alice, tablet too").await.unwrap();
    for device in [&mut phone, &mut tablet, &mut bob] {
        expect_texts(device, &laptop, &chat, &["hello from alice, tablet too"]).await;
    }
    tablet.send_to_conversation(&chat, b"hello from alice's tablet").await.unwrap();
    for device in [&mut laptop, &mut phone, &mut bob] {
        expect_texts(device, &tablet, &chat, &["hello from alice's tablet"]).await;
    }

    // Alice removes her phone from her laptop. Its token is dead at once.
    let alice_version = bob.device_list_version(&alice_id).unwrap();
    let bob_session_before = bob.conversation_session_id(&chat).unwrap();
    laptop
        .client
        .devices()
        .sign_out_device(SignOutDeviceRequest { device_id: phone.device_id().into() })
        .await
        .unwrap();
    assert_refused(phone.fetch(0).await, "SESSION_INVALID");
    assert_refused(phone.query_keys(&[&bob_id]).await, "SESSION_INVALID");

    // The directory drops it: no longer listed, no keys to claim, no inbox to send to.
    let change = bob.sync_devices(&[&alice_id]).await.unwrap();
    assert_eq!(change.removed, device_ids(&[&phone]));
    assert!(change.versions[&alice_id] > alice_version, "{change:?} after {alice_version}");
    let claimed = bob
        .client
        .keys()
        .claim_keys(ClaimKeysRequest { device_ids: vec![phone.device_id().into()] })
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert!(claimed.is_empty(), "{claimed:?}");
    assert_refused(
        send(&bob.client, vec![to_device(phone.device_id(), b"still there?")]).await,
        "DEVICE_NOT_FOUND",
    );

    // The senders rotate and share only with the devices left.
    let after_bob = bob.send_to_conversation(&chat, b"after the phone was removed").await.unwrap();
    assert_ne!(after_bob.encrypted.session_id, bob_session_before, "Bob rotated");
    assert_eq!(bob.conversation_shared_with(&chat), sorted_ids(&[&laptop, &tablet]));
    for device in [&mut laptop, &mut tablet] {
        expect_texts(device, &bob, &chat, &["after the phone was removed"]).await;
    }
    let after_alice = laptop.send_to_conversation(&chat, b"alice without the phone").await.unwrap();
    assert_eq!(laptop.conversation_shared_with(&chat), sorted_ids(&[&tablet, &bob]));
    for device in [&mut tablet, &mut bob] {
        expect_texts(device, &laptop, &chat, &["alice without the phone"]).await;
    }

    // Even handed the ciphertexts, the phone's old sessions do not open them. (They do open
    // what was sent before its removal: the check is real.)
    let welcome_ciphertext = &welcome.encrypted.ciphertext;
    assert_eq!(phone.decrypt_with_any_session(welcome_ciphertext).as_deref(), Some(&b"welcome, tablet"[..]));
    assert_eq!(phone.decrypt_with_any_session(&after_bob.encrypted.ciphertext), None);
    assert_eq!(phone.decrypt_with_any_session(&after_alice.encrypted.ciphertext), None);
    assert!(matches!(phone.decrypt_message(&after_bob.message), Content::Undecryptable(_)));

    // Every device that was there all along read every message meant for it: nothing is
    // undecryptable but the replay (which Alice's laptop, whose session it used, refuses too).
    for device in [&bob, &laptop] {
        let reasons = device.undecryptable_reasons();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert_eq!(reasons[0].0, replay.message_id);
    }

    // The server holds no plaintext and no private key: not in the database, its files
    // (including the WAL and free pages), nor anywhere else in its data dir.
    let plaintexts: [&[u8]; 9] = [
        b"hello from alice",
        b"hello from bob",
        b"hello from alice's phone",
        b"how are you, bob?",
        b"welcome, tablet",
        b"hello from alice, tablet too",
        b"hello from alice's tablet",
        b"after the phone was removed",
        b"alice without the phone",
    ];
    let found = scan_for_plaintexts(&server, &plaintexts).await.unwrap();
    assert!(found.is_empty(), "plaintext on the server: {}", list(&found));
    let mut secrets = Vec::new();
    for device in [&laptop, &phone, &tablet, &bob] {
        secrets.extend(device.secrets());
    }
    let found = scan_for_secrets(&server, &secrets).await.unwrap();
    assert!(found.is_empty(), "private keys on the server: {}", list(&found));
    // And the scan does see what the server must hold: public keys and certificates.
    let public: [&[u8]; 2] = [&laptop.account_key().public_key(), &tablet.curve25519_key()];
    let found = scan_for_plaintexts(&server, &public).await.unwrap();
    let needles: HashSet<usize> = found.iter().map(|f| f.needle).collect();
    assert_eq!(needles.len(), 2, "the scan missed public keys the server must hold: {found:?}");
}

fn list(findings: &[kitsulan_client::scan::Finding]) -> String {
    findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// `of` as `device` knows it (after syncing its account).
async fn peer(device: &mut E2eeDevice, of: &E2eeDevice) -> PeerDevice {
    device.sync_devices(&[of.account_id()]).await.unwrap();
    device.peer(of.device_id()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// KeyService

#[tokio::test]
async fn one_time_keys_go_to_one_claimer_each_then_the_fallback_key() {
    for database in [Database::Sqlite, Database::FreshPostgres] {
        let server = start(database).await;
        let mut bob = E2eeDevice::first_device(signed_up(&server, "bob", "Laptop").await);
        bob.publish_account_key().await.unwrap();
        let uploaded = bob.upload_keys(5).await.unwrap();
        assert_eq!((uploaded.one_time_key_count, uploaded.has_fallback_key), (5, true));
        let mut alice = first_device(&server, "alice", "Laptop").await;
        let carol = signed_up(&server, "carol", "Laptop").await;
        let ed25519 = peer(&mut alice, &bob).await.ed25519;

        // 20 claimers at once, on connections of their own, from two accounts.
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..20 {
            let mut claimer = connect(&server).await;
            let session = if n % 2 == 0 { alice.client.session() } else { carol.session() };
            claimer.set_session(session.cloned());
            let device_id = bob.device_id().to_owned();
            tasks.spawn(async move {
                claimer.keys().claim_keys(ClaimKeysRequest { device_ids: vec![device_id] }).await
            });
        }
        let mut one_time = Vec::new();
        let mut fallback = Vec::new();
        while let Some(result) = tasks.join_next().await {
            let keys = result.unwrap().unwrap().into_inner().keys;
            assert_eq!(keys.len(), 1, "{keys:?}");
            let claimed = &keys[0];
            assert_eq!(claimed.device_id, bob.device_id());
            let key = claimed.key.clone().unwrap();
            verify_claimed(&ed25519, &key, claimed.fallback).unwrap();
            if claimed.fallback { fallback.push(key) } else { one_time.push(key) }
        }
        let ids: HashSet<u64> = one_time.iter().map(|k| k.key_id).collect();
        let public: HashSet<&[u8]> = one_time.iter().map(|k| k.public_key.as_slice()).collect();
        assert_eq!((one_time.len(), ids.len(), public.len()), (5, 5, 5), "each one-time key exactly once");
        assert_eq!(fallback.len(), 15);
        assert!(fallback.iter().all(|k| *k == fallback[0]), "one fallback key");
        assert!(!public.contains(fallback[0].public_key.as_slice()));
        let counts = bob.key_counts().await.unwrap();
        assert_eq!((counts.one_time_key_count, counts.has_fallback_key), (0, true));

        // The fallback key is not used up, and an Olm session on it works.
        let chat = direct(&alice, &bob).await;
        alice.send_to_conversation(&chat, b"via the fallback key").await.unwrap();
        expect_texts(&mut bob, &alice, &chat, &["via the fallback key"]).await;

        // New one-time keys are handed out before the fallback key again.
        assert_eq!(bob.upload_keys(3).await.unwrap().one_time_key_count, 3);
        let claimed = alice
            .client
            .keys()
            .claim_keys(ClaimKeysRequest { device_ids: vec![bob.device_id().into()] })
            .await
            .unwrap()
            .into_inner()
            .keys;
        assert!(!claimed[0].fallback, "{claimed:?}");
        assert!(!ids.contains(&claimed[0].key.as_ref().unwrap().key_id));

        // Devices without keys and unknown devices are left out; a bad id is refused.
        let claim = |ids: Vec<String>| {
            let mut keys = alice.client.keys();
            async move { keys.claim_keys(ClaimKeysRequest { device_ids: ids }).await }
        };
        let none = claim(vec![carol.device_id().into(), Uuid::now_v7().to_string()]).await.unwrap();
        assert!(none.into_inner().keys.is_empty());
        assert_refused(claim(vec!["not-a-device".into()]).await, "ID_INVALID");
        assert_refused(claim((0..101).map(|_| Uuid::now_v7().to_string()).collect()).await, "TOO_MANY_ITEMS");
    }
}

#[tokio::test]
async fn the_account_key_is_set_once() {
    let server = start(Database::Sqlite).await;
    let alice = E2eeDevice::first_device(signed_up(&server, "alice", "Laptop").await);
    let bob = signed_up(&server, "bob", "Laptop").await;
    let publish = |key: Vec<u8>, replace: bool| {
        let mut keys = alice.client.keys();
        async move { keys.publish_account_key(PublishAccountKeyRequest { account_key: key, replace }).await }
    };
    // Not a key: wrong lengths, and 32 bytes that are not an Ed25519 point.
    assert_refused(publish(vec![], false).await, "ACCOUNT_KEY_INVALID");
    assert_refused(publish(vec![7; 31], false).await, "ACCOUNT_KEY_INVALID");
    assert_refused(publish(vec![7; 33], false).await, "ACCOUNT_KEY_INVALID");
    assert_refused(publish(not_a_point().to_vec(), false).await, "ACCOUNT_KEY_INVALID");

    alice.publish_account_key().await.unwrap();
    alice.publish_account_key().await.unwrap();
    let other = AccountKey::generate(&mut OsRng::new());
    let refusal = assert_refused(publish(other.public_key().to_vec(), false).await, "ACCOUNT_KEY_EXISTS");
    assert_eq!(refusal.code, tonic::Code::FailedPrecondition);

    // Anyone signed in sees it; unknown accounts are left out; bad ids are refused.
    let mut keys = bob.keys();
    let query = |ids: Vec<String>| {
        let mut keys = keys.clone();
        async move { keys.query_keys(kitsulan_proto::v1::QueryKeysRequest { account_ids: ids }).await }
    };
    let answer = query(vec![
        Uuid::now_v7().to_string(),
        alice.account_id().into(),
        bob.session().unwrap().account_id.clone(),
    ])
    .await
    .unwrap()
    .into_inner()
    .accounts;
    let seen: Vec<(&str, usize)> =
        answer.iter().map(|a| (a.account_id.as_str(), a.account_key.len())).collect();
    assert_eq!(
        seen,
        [(alice.account_id(), 32), (bob.session().unwrap().account_id.as_str(), 0)],
        "in the order asked"
    );
    assert_eq!(answer[0].account_key, alice.account_key().public_key());
    assert_refused(query(vec!["alice".into()]).await, "ID_INVALID");
    assert_refused(query((0..101).map(|_| Uuid::now_v7().to_string()).collect()).await, "TOO_MANY_ITEMS");
    // Without a session, nothing.
    let mut anonymous = connect(&server).await.keys();
    assert_refused(
        anonymous
            .query_keys(kitsulan_proto::v1::QueryKeysRequest { account_ids: vec![alice.account_id().into()] })
            .await,
        "SESSION_INVALID",
    );
    // Nothing uploaded: no keys.
    let counts = keys.get_key_counts(kitsulan_proto::v1::GetKeyCountsRequest {}).await.unwrap().into_inner();
    assert_eq!((counts.one_time_key_count, counts.has_fallback_key), (0, false));
}

/// 32 bytes that are not a valid Ed25519 public key (found with the crate's own check).
fn not_a_point() -> [u8; 32] {
    let key = DeviceAccount::new().generate_one_time_keys(1)[0];
    (0..=255u8)
        .map(|b| {
            let mut k = [b; 32];
            k[31] &= 0x7f;
            k
        })
        .find(|k| matches!(verify_one_time_key(k, &key), Err(kitsulan_crypto::Error::InvalidPublicKey(_))))
        .expect("some y is off the curve")
}

#[tokio::test]
async fn bad_key_uploads_are_refused_whole() {
    let server = start(Database::Sqlite).await;
    let mut alice = E2eeDevice::first_device(signed_up(&server, "alice", "Laptop").await);
    let alice_phone = signed_in(&server, "alice", "Phone").await;
    let bob = first_device(&server, "bob", "Laptop").await;
    let account_id = uuid_bytes(alice.account_id()).unwrap();
    let device_id = uuid_bytes(alice.device_id()).unwrap();
    let now = u64::try_from(now_ms() / 1000).unwrap();
    let otks: Vec<SignedKey> =
        alice.account_mut().generate_one_time_keys(5).iter().map(one_time_key_proto).collect();
    let fallback = fallback_key_proto(&alice.account_mut().generate_fallback_key().unwrap());
    let certificate = |key: &AccountKey, account: [u8; 16], device: [u8; 16]| {
        key.certify(&alice.account().certificate_fields(account, device, now)).to_bytes()
    };
    let good = certificate(&alice.account_key(), account_id, device_id);
    let upload =
        |device_certificate: Vec<u8>, one_time_keys: Vec<SignedKey>, fallback_key: Option<SignedKey>| {
            let mut keys = alice.client.keys();
            async move {
                keys.upload_keys(UploadKeysRequest { device_certificate, one_time_keys, fallback_key }).await
            }
        };
    let counts = || {
        let mut keys = alice.client.keys();
        async move {
            let c =
                keys.get_key_counts(kitsulan_proto::v1::GetKeyCountsRequest {}).await.unwrap().into_inner();
            (c.one_time_key_count, c.has_fallback_key)
        }
    };

    // No account key published yet.
    assert_refused(upload(good.clone(), otks.clone(), Some(fallback.clone())).await, "NO_ACCOUNT_KEY");
    alice.publish_account_key().await.unwrap();

    // Certificates: missing, garbage, signed by another key, naming another device or account.
    let stranger = AccountKey::generate(&mut OsRng::new());
    let phone_id = uuid_bytes(alice_phone.device_id()).unwrap();
    let bob_account = uuid_bytes(bob.account_id()).unwrap();
    assert_refused(upload(vec![], otks.clone(), Some(fallback.clone())).await, "KEYS_CERTIFICATE_REQUIRED");
    let mut tampered = good.clone();
    tampered[100] ^= 1;
    let cases: [(&str, Vec<u8>); 6] = [
        ("garbage", vec![1, 2, 3]),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("tampered", tampered),
        ("another account key", certificate(&stranger, account_id, device_id)),
        ("another device of the account", certificate(&alice.account_key(), account_id, phone_id)),
        ("another account", certificate(&alice.account_key(), bob_account, device_id)),
    ];
    for (case, cert) in cases {
        let refusal =
            assert_refused(upload(cert, otks.clone(), Some(fallback.clone())).await, "CERTIFICATE_INVALID");
        assert_eq!(refusal.field(), Some("device_certificate"), "{case}: {refusal:?}");
    }
    assert_eq!(counts().await, (0, false), "nothing was stored");
    let listed = bob.query_keys(&[alice.account_id()]).await.unwrap();
    assert!(listed[0].devices.is_empty(), "{listed:?}");

    // Keys whose signatures do not check out, in an otherwise good first upload.
    let mut bad_otk = otks.clone();
    bad_otk[3].signature[0] ^= 1;
    let other_device = DeviceAccount::new();
    let mut foreign = otks.clone();
    foreign[0].signature = other_device
        .sign(&kitsulan_crypto::device::one_time_key_payload(foreign[0].key_id, &key32(&foreign[0])))
        .to_vec();
    // A fallback-key signature presented as a one-time key's (the domains differ).
    let mut crossed = otks.clone();
    crossed.push(SignedKey {
        key_id: fallback.key_id,
        public_key: fallback.public_key.clone(),
        signature: fallback.signature.clone(),
    });
    let mut renumbered = otks.clone();
    renumbered[1].key_id += 100;
    for (case, keys) in [
        ("tampered", bad_otk),
        ("another device", foreign),
        ("fallback", crossed),
        ("renumbered", renumbered),
    ] {
        let refusal =
            assert_refused(upload(good.clone(), keys, Some(fallback.clone())).await, "KEY_SIGNATURE_INVALID");
        assert_eq!(refusal.field(), Some("one_time_keys"), "{case}: {refusal:?}");
    }
    let mut bad_fallback = fallback.clone();
    bad_fallback.public_key[0] ^= 1;
    let refusal =
        assert_refused(upload(good.clone(), otks.clone(), Some(bad_fallback)).await, "KEY_SIGNATURE_INVALID");
    assert_eq!(refusal.field(), Some("fallback_key"));
    assert_eq!(counts().await, (0, false), "nothing was stored");

    // The good upload, then the same keys again (ignored), then refused batches.
    let response = upload(good.clone(), otks.clone(), Some(fallback.clone())).await.unwrap().into_inner();
    assert_eq!((response.one_time_key_count, response.has_fallback_key), (5, true));
    let again = upload(vec![], otks.clone(), None).await.unwrap().into_inner();
    assert_eq!(again.one_time_key_count, 5, "re-uploading a key id is ignored");
    let mut next = made_up_one_time_keys(alice.account(), 1_000, 4);
    let mut forged = made_up_one_time_keys(&other_device, 2_000, 1);
    next.append(&mut forged);
    assert_refused(upload(vec![], next, None).await, "KEY_SIGNATURE_INVALID");
    assert_refused(
        upload(vec![], made_up_one_time_keys(alice.account(), 3_000, 101), None).await,
        "TOO_MANY_KEYS",
    );
    let mut wrong_cert = good.clone();
    wrong_cert[200] ^= 1;
    assert_refused(
        upload(wrong_cert, made_up_one_time_keys(alice.account(), 4_000, 1), None).await,
        "CERTIFICATE_INVALID",
    );
    assert_eq!(counts().await, (5, true), "refused uploads left the count as it was");

    // Up to 1000 held, not one more.
    for batch in 0..10u64 {
        let n = if batch == 9 { 95 } else { 100 };
        upload(vec![], made_up_one_time_keys(alice.account(), 10_000 + batch * 1000, n), None).await.unwrap();
    }
    assert_eq!(counts().await, (1000, true));
    assert_refused(
        upload(vec![], made_up_one_time_keys(alice.account(), 90_000, 1), None).await,
        "TOO_MANY_KEYS",
    );
    assert_eq!(counts().await, (1000, true));

    // The device is listed now, with the certificate as uploaded.
    let listed = bob.query_keys(&[alice.account_id()]).await.unwrap();
    assert_eq!(listed[0].devices.len(), 1);
    assert_eq!(listed[0].devices[0].certificate, good);
    alice.sync_devices(&[bob.account_id()]).await.unwrap();
}

fn key32(key: &SignedKey) -> [u8; 32] {
    key.public_key.as_slice().try_into().unwrap()
}

// ---------------------------------------------------------------------------------------------
// ToDeviceService

#[tokio::test]
async fn to_device_messages_wait_until_acked() {
    let server = start(Database::Sqlite).await;
    let alice = signed_up(&server, "alice", "Laptop").await;
    let alice_phone = signed_in(&server, "alice", "Phone").await;
    let bob =
        E2eeDevice::new(signed_up(&server, "bob", "Laptop").await, AccountKey::generate(&mut OsRng::new()));
    let bob_id = bob.device_id().to_owned();

    // Three messages; the first one sent again (a retry) is not duplicated.
    let payloads: [&[u8]; 3] = [b"to-device number one", b"to-device number two", b"to-device number three"];
    let messages: Vec<_> = payloads.iter().map(|p| to_device(&bob_id, p)).collect();
    let before = now_ms();
    send(&alice, messages.clone()).await.unwrap();
    send(&alice, vec![messages[0].clone()]).await.unwrap();
    let (inbox, more) = bob.fetch(0).await.unwrap();
    assert!(!more);
    let got: Vec<(&str, &[u8])> =
        inbox.iter().map(|m| (m.message_id.as_str(), m.ciphertext.as_slice())).collect();
    let want: Vec<(&str, &[u8])> =
        messages.iter().map(|m| (m.message_id.as_str(), m.ciphertext.as_slice())).collect();
    assert_eq!(got, want, "oldest first, once each");
    for message in &inbox {
        assert_eq!(message.sender_account_id, alice.session().unwrap().account_id);
        assert_eq!(message.sender_device_id, alice.device_id());
        assert!((before - 5_000..=now_ms() + 5_000).contains(&message.sent_at_ms), "{message:?}");
    }
    // Retried while waiting: still once.
    send(&alice, vec![messages[1].clone()]).await.unwrap();
    assert_eq!(bob.fetch(0).await.unwrap().0.len(), 3);
    let (first_two, more) = bob.fetch(2).await.unwrap();
    assert_eq!((first_two.len(), more), (2, true));

    // Acking deletes; unknown ids are fine. Another device's acks do not touch Bob's inbox.
    let found = scan_database_rows(&server, &payloads).await.unwrap();
    assert_eq!(found.len(), 3, "the waiting messages are in the database: {found:?}");
    let all_ids: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
    alice.to_device().ack_to_device(AckToDeviceRequest { message_ids: all_ids }).await.unwrap();
    assert_eq!(bob.fetch(0).await.unwrap().0.len(), 3, "Alice acked Bob's messages away");
    bob.ack(vec![messages[0].message_id.clone(), Uuid::now_v7().to_string()]).await.unwrap();
    let left: Vec<String> = bob.fetch(0).await.unwrap().0.into_iter().map(|m| m.message_id).collect();
    assert_eq!(left, [messages[1].message_id.clone(), messages[2].message_id.clone()]);
    bob.ack(messages.iter().map(|m| m.message_id.clone()).collect()).await.unwrap();
    assert!(bob.fetch(0).await.unwrap().0.is_empty());
    let found = scan_database_rows(&server, &payloads).await.unwrap();
    assert!(found.is_empty(), "acked messages are still stored: {}", list(&found));

    // Refusals, each all-or-nothing: nothing of a refused batch is delivered.
    let ok = to_device(&bob_id, b"part of a refused batch");
    let cases: Vec<(&str, Vec<OutgoingToDeviceMessage>, &str)> = vec![
        (
            "unknown device",
            vec![ok.clone(), to_device(&Uuid::now_v7().to_string(), b"x")],
            "DEVICE_NOT_FOUND",
        ),
        ("bad device id", vec![ok.clone(), to_device("bob", b"x")], "ID_INVALID"),
        (
            "bad message id",
            vec![ok.clone(), OutgoingToDeviceMessage { message_id: "1".into(), ..to_device(&bob_id, b"x") }],
            "ID_INVALID",
        ),
        (
            "too large",
            vec![ok.clone(), to_device(&bob_id, &vec![7; MAX_CIPHERTEXT + 1])],
            "MESSAGE_TOO_LARGE",
        ),
        ("too many", (0..101).map(|_| to_device(&bob_id, b"x")).collect(), "TOO_MANY_MESSAGES"),
        ("empty", vec![ok.clone(), to_device(&bob_id, b"")], "MESSAGE_EMPTY"),
    ];
    for (case, batch, reason) in cases {
        let refusal = assert_refused(send(&alice, batch).await, reason);
        assert!(bob.fetch(0).await.unwrap().0.is_empty(), "{case}: {refusal:?} but something was delivered");
    }
    // The limits themselves are fine: 100 messages, 64 KiB each.
    send(&alice, (0..100).map(|_| to_device(&bob_id, b"x")).collect()).await.unwrap();
    send(&alice, vec![to_device(&bob_id, &vec![7; MAX_CIPHERTEXT])]).await.unwrap();
    let (waiting, more) = bob.fetch(500).await.unwrap();
    assert_eq!((waiting.len(), more), (101, false));
    assert_eq!(waiting[100].ciphertext.len(), MAX_CIPHERTEXT);
    bob.ack(waiting.into_iter().map(|m| m.message_id).collect()).await.unwrap();

    // A signed-out device's inbox goes with it: signed out from another device, or by itself.
    let mut tablet = signed_in(&server, "alice", "Tablet").await;
    let tablet_id = tablet.device_id().to_owned();
    send(&bob.client, vec![to_device(&tablet_id, b"for the tablet, never read")]).await.unwrap();
    tablet.sign_out().await.unwrap();
    let found = scan_database_rows(&server, &[b"for the tablet, never read"]).await.unwrap();
    assert!(found.is_empty(), "the signed-out device's inbox is still there: {}", list(&found));
    assert_refused(send(&bob.client, vec![to_device(&tablet_id, b"x")]).await, "DEVICE_NOT_FOUND");
    let doomed: [&[u8]; 2] = [b"for the phone, never read", b"for the phone, also unread"];
    send(&bob.client, doomed.iter().map(|p| to_device(alice_phone.device_id(), p)).collect()).await.unwrap();
    assert_eq!(scan_database_rows(&server, &doomed).await.unwrap().len(), 2);
    alice
        .devices()
        .sign_out_device(SignOutDeviceRequest { device_id: alice_phone.device_id().into() })
        .await
        .unwrap();
    let found = scan_database_rows(&server, &doomed).await.unwrap();
    assert!(found.is_empty(), "the signed-out device's inbox is still there: {}", list(&found));
    assert_refused(
        alice_phone.to_device().fetch_to_device(kitsulan_proto::v1::FetchToDeviceRequest { limit: 0 }).await,
        "SESSION_INVALID",
    );
    assert_refused(
        send(&bob.client, vec![to_device(alice_phone.device_id(), b"x")]).await,
        "DEVICE_NOT_FOUND",
    );
}

#[tokio::test]
async fn a_full_inbox_takes_no_more() {
    // A contact without a quota of its own fills the inbox (by default one sender may fill 500,
    // and strangers only a tenth: tests/security/keys.rs).
    let server = people::start_with(
        Options::new(Database::Sqlite).env("KITSULAN_TO_DEVICE_PENDING_PER_SENDER", "1000000"),
    )
    .await;
    let alice = signed_up(&server, "alice", "Laptop").await;
    let bob =
        E2eeDevice::new(signed_up(&server, "bob", "Laptop").await, AccountKey::generate(&mut OsRng::new()));
    // Alice is a contact once she accepted Bob's conversation (a request alone is not enough).
    let direct = bob.client.open_direct(&alice.session().unwrap().account_id).await.unwrap();
    alice.accept_request(&direct.conversation.unwrap().id).await.unwrap();
    for _ in 0..100 {
        send(&alice, (0..100).map(|_| to_device(bob.device_id(), b"filler")).collect()).await.unwrap();
    }
    let refusal =
        assert_refused(send(&alice, vec![to_device(bob.device_id(), b"one too many")]).await, "INBOX_FULL");
    assert_eq!(refusal.code, tonic::Code::ResourceExhausted);
    let (page, more) = bob.fetch(500).await.unwrap();
    assert_eq!((page.len(), more), (500, true));
    bob.ack(page.into_iter().map(|m| m.message_id).collect()).await.unwrap();
    send(&alice, vec![to_device(bob.device_id(), b"room again")]).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// PairingService

#[tokio::test]
async fn a_device_is_linked_by_qr_code_and_approved_once() {
    let server = start(Database::Sqlite).await;
    let mut laptop = first_device(&server, "alice", "Laptop").await;
    let bob = first_device(&server, "bob", "Laptop").await;
    let linked =
        link_new_device_by_qr(&laptop, connect(&server).await, &server.url(), "Phone").await.unwrap();
    assert_eq!(linked.new_device_sas, linked.existing_device_sas);
    assert_eq!(linked.new_device_code, linked.existing_device_code);
    let mut phone = linked.device;

    // The pairing is done: the session was handed out once, and it cannot be approved again.
    let alice_id = laptop.account_id().to_owned();
    let change = laptop.sync_devices(&[&alice_id]).await.unwrap();
    assert_eq!(change.added, [phone.device_id().to_owned()]);
    let request = kitsulan_proto::v1::ApprovePairingRequest {
        pairing_id: linked.pairing_id.clone(),
        device_name: "Phone again".into(),
    };
    assert_refused(laptop.client.pairing().approve_pairing(request).await, "PAIRING_ALREADY_APPROVED");

    // The new device is an ordinary device: it talks to Bob.
    let chat = direct(&phone, &bob).await;
    phone.send_to_conversation(&chat, b"hello from the linked phone").await.unwrap();
    let mut bob = bob;
    expect_texts(&mut bob, &phone, &chat, &["hello from the linked phone"]).await;
    bob.send_to_conversation(&chat, b"hello, linked phone").await.unwrap();
    expect_texts(&mut phone, &bob, &chat, &["hello, linked phone"]).await;
    expect_texts(&mut laptop, &bob, &chat, &["hello, linked phone"]).await;
}

#[tokio::test]
async fn pairing_step_by_step_with_its_refusals() {
    let server = start(Database::Sqlite).await;
    let laptop = first_device(&server, "alice", "Laptop").await;
    let bob = first_device(&server, "bob", "Laptop").await;
    let url = server.url();

    // Opening: the id must be a UUIDv7.
    let anonymous = connect(&server).await;
    let create = |id: String| {
        let mut pairing = anonymous.pairing();
        async move {
            pairing.create_pairing(CreatePairingRequest { pairing_id: id, public_key: vec![9; 32] }).await
        }
    };
    assert_refused(create("pairing".into()).await, "ID_INVALID");
    assert_refused(create("4f3c1c52-7d3a-4c3b-9d3e-8a2b1c0d9e8f".into()).await, "ID_INVALID");
    let short_key = CreatePairingRequest { pairing_id: Uuid::now_v7().to_string(), public_key: vec![9; 31] };
    assert_refused(anonymous.pairing().create_pairing(short_key).await, "PUBLIC_KEY_INVALID");

    let before = now_ms();
    let mut fresh = NewDeviceLink::open(connect(&server).await, &url).await.unwrap();
    let created = fresh.created.clone();
    assert!(created.pin.len() == 8 && created.pin.bytes().all(|b| b.is_ascii_digit()), "{created:?}");
    assert!(created.secret.len() >= 16, "{created:?}");
    // Pairings last 5 minutes (expiry itself is for the server's unit tests: 5 minutes is
    // longer than a test may run).
    assert!(
        (before + FIVE_MINUTES_MS - 30_000..=now_ms() + FIVE_MINUTES_MS + 30_000)
            .contains(&created.expires_at_ms),
        "{created:?}"
    );
    let (state, _) = fresh.poll().await.unwrap();
    assert_eq!((state.state(), state.messages.len()), (PairingState::Open, 0));
    assert_eq!(state.expires_at_ms, created.expires_at_ms);
    let same_id = CreatePairingRequest { pairing_id: fresh.pairing_id.clone(), public_key: vec![9; 32] };
    assert_refused(anonymous.pairing().create_pairing(same_id).await, "PAIRING_EXISTS");

    // A wrong secret or an unknown pairing is not found.
    let get = |id: &str, secret: &str| {
        let mut pairing = anonymous.pairing();
        let request = GetPairingRequest { pairing_id: id.into(), secret: secret.into(), after_index: 0 };
        async move { pairing.get_pairing(request).await }
    };
    assert_refused(get(&fresh.pairing_id, "wrong secret").await, "PAIRING_NOT_FOUND");
    // No secret means the signed-in side, which needs a session.
    assert_refused(get(&fresh.pairing_id, "").await, "SESSION_INVALID");
    assert_refused(get(&Uuid::now_v7().to_string(), &created.secret).await, "PAIRING_NOT_FOUND");
    let post_as_new = PostPairingMessageRequest {
        pairing_id: fresh.pairing_id.clone(),
        secret: "wrong secret".into(),
        payload: b"x".to_vec(),
    };
    assert_refused(anonymous.pairing().post_pairing_message(post_as_new).await, "PAIRING_NOT_FOUND");
    let cancel = CancelPairingRequest { pairing_id: fresh.pairing_id.clone(), secret: "wrong secret".into() };
    assert_refused(anonymous.pairing().cancel_pairing(cancel).await, "PAIRING_NOT_FOUND");

    // Finding it by PIN: a wrong PIN is not found; typed with spaces or dashes, it is.
    assert_refused(find_pairing(&laptop.client, &wrong_pin(&created.pin, 0)).await, "PAIRING_NOT_FOUND");
    let typed = format!("{}-{} ", &created.pin[..4], &created.pin[4..]);
    let found = find_pairing(&laptop.client, &typed).await.unwrap();
    assert_eq!(
        (found.pairing_id.as_str(), found.public_key.as_slice()),
        (fresh.pairing_id.as_str(), &fresh.public_key[..])
    );
    assert_eq!(found.expires_at_ms, created.expires_at_ms);
    // Only signed-in devices may look.
    assert_refused(find_pairing(&anonymous, &created.pin).await, "SESSION_INVALID");
    assert_refused(find_pairing(&laptop.client, "1234").await, "PIN_INVALID");
    // Approving needs the channel open first; a message needs content.
    let early = kitsulan_proto::v1::ApprovePairingRequest {
        pairing_id: fresh.pairing_id.clone(),
        device_name: "Too early".into(),
    };
    assert_refused(laptop.client.pairing().approve_pairing(early).await, "PAIRING_NOT_CLAIMED");
    let empty = PostPairingMessageRequest {
        pairing_id: fresh.pairing_id.clone(),
        secret: String::new(),
        payload: vec![],
    };
    assert_refused(laptop.client.pairing().post_pairing_message(empty).await, "PAYLOAD_INVALID");

    // Alice's laptop takes it; Bob cannot then.
    let mut old =
        ExistingDeviceLink::connect(&laptop.client, &found.pairing_id, &found.public_key).await.unwrap();
    let bob_post = PostPairingMessageRequest {
        pairing_id: fresh.pairing_id.clone(),
        secret: String::new(),
        payload: b"let me in".to_vec(),
    };
    assert_refused(bob.client.pairing().post_pairing_message(bob_post).await, "PAIRING_TAKEN");
    let bob_approve = kitsulan_proto::v1::ApprovePairingRequest {
        pairing_id: fresh.pairing_id.clone(),
        device_name: "Bob's now".into(),
    };
    assert_refused_with(
        bob.client.pairing().approve_pairing(bob_approve).await,
        &["PAIRING_TAKEN", "PAIRING_NOT_FOUND"],
    );

    // The new device reads the opening message (once) and commits to its SAS key.
    let (state, plaintexts) = fresh.poll().await.unwrap();
    assert_eq!((state.state(), plaintexts.len()), (PairingState::Claimed, 0));
    assert!(state.session.is_none());
    assert_eq!(fresh.check_code(), Some(old.check_code()));
    let (again, _) = fresh.poll().await.unwrap();
    assert!(again.messages.is_empty(), "after_index skips what was read: {again:?}");
    // The SAS: the laptop answers the commitment with its key, the new device reveals its own,
    // the laptop checks it against the commitment; both show the same emoji.
    let (_, heard) = old.poll(&laptop.client).await.unwrap();
    assert_eq!(kinds(&heard), [(PAIRING_SAS_COMMITMENT, 33)]);
    assert!(old.short_auth_string().is_none());
    let (_, heard) = fresh.poll().await.unwrap();
    assert_eq!(kinds(&heard), [(PAIRING_SAS_KEY, 33)]);
    let (_, heard) = old.poll(&laptop.client).await.unwrap();
    assert_eq!(kinds(&heard), [(PAIRING_SAS_KEY, 33)]);
    let emoji = old.short_auth_string().unwrap();
    assert_eq!(fresh.short_auth_string(), Some(emoji));
    // The account key goes only after the person confirmed here and the new device's MAC came.
    assert!(old.send_account_key(&laptop.client, &laptop.account_key()).await.is_err());
    old.confirm(&laptop.client).await.unwrap();
    assert!(old.send_account_key(&laptop.client, &laptop.account_key()).await.is_err());
    fresh.confirm().await.unwrap();
    let (_, heard) = old.poll(&laptop.client).await.unwrap();
    assert_eq!(kinds(&heard), [(PAIRING_SAS_MAC, 33)]);
    assert!(old.verified());

    // Approval: once; the new device gets its session once. The key-backup key may follow the
    // account key (not before it, not twice).
    assert!(old.send_backup_key(&laptop.client, &[0x5a; 32]).await.is_err());
    old.send_account_key(&laptop.client, &laptop.account_key()).await.unwrap();
    old.send_backup_key(&laptop.client, &[0x5a; 32]).await.unwrap();
    assert!(old.send_backup_key(&laptop.client, &[0x5a; 32]).await.is_err());
    let device_id = old.approve(&laptop.client, "Tablet").await.unwrap();
    assert_refused(old.approve(&laptop.client, "Tablet").await, "PAIRING_ALREADY_APPROVED");
    let (session, account_key) = fresh.finish().await.unwrap();
    assert_eq!(
        (session.account_id.as_str(), session.device_id.as_str()),
        (laptop.account_id(), device_id.as_str())
    );
    assert_eq!(account_key.public_key(), laptop.account_key().public_key());
    assert_eq!(fresh.take_backup_key(), Some([0x5a; 32]));
    assert_eq!(fresh.take_backup_key(), None, "taken once");
    let later = fresh.get_raw(0).await.unwrap();
    assert_eq!(later.state(), PairingState::Completed);
    assert!(later.session.is_none(), "the session is handed out once");
    assert_eq!(fresh.client.my_account().await.unwrap().id, laptop.account_id());

    // Cancelling, from the new device's side and from the existing device's side.
    for by_new_device in [true, false] {
        let other = NewDeviceLink::open(connect(&server).await, &url).await.unwrap();
        let found = find_pairing(&laptop.client, &other.created.pin).await.unwrap();
        let old =
            ExistingDeviceLink::connect(&laptop.client, &found.pairing_id, &found.public_key).await.unwrap();
        let request = if by_new_device {
            CancelPairingRequest {
                pairing_id: other.pairing_id.clone(),
                secret: other.created.secret.clone(),
            }
        } else {
            CancelPairingRequest { pairing_id: other.pairing_id.clone(), secret: String::new() }
        };
        let canceller = if by_new_device { &other.client } else { &laptop.client };
        canceller.pairing().cancel_pairing(request).await.unwrap();
        assert_eq!(
            other.get_raw(0).await.unwrap().state(),
            PairingState::Cancelled,
            "by new device: {by_new_device}"
        );
        let approved = old.approve(&laptop.client, "Cancelled").await;
        assert!(approved.is_err(), "a cancelled pairing was approved: {approved:?}");
    }
}

/// `(kind, length)` of each channel plaintext.
fn kinds(plaintexts: &[Vec<u8>]) -> Vec<(u8, usize)> {
    plaintexts.iter().map(|p| (p[0], p.len())).collect()
}

/// A new device that speaks the pairing channel by hand, to send what an honest one would not
/// (or what a middleman would).
struct HandMadeNewDevice {
    client: Client,
    pairing_id: String,
    secret: String,
    pin: String,
    ecies: Option<NewDevicePairing>,
    channel: Option<PairingChannel>,
    after_index: u32,
}

impl HandMadeNewDevice {
    async fn open(server: &TestServer) -> Self {
        let client = connect(server).await;
        let id = Uuid::now_v7();
        let ecies = NewDevicePairing::new(*id.as_bytes(), &server.url()).unwrap();
        let request =
            CreatePairingRequest { pairing_id: id.to_string(), public_key: ecies.public_key().to_vec() };
        let created = client.pairing().create_pairing(request).await.unwrap().into_inner();
        Self {
            client,
            pairing_id: id.to_string(),
            secret: created.secret,
            pin: created.pin,
            ecies: Some(ecies),
            channel: None,
            after_index: 0,
        }
    }

    /// The other side's plaintexts since the last call (HELLO opens the channel).
    async fn read(&mut self) -> (PairingState, Vec<Vec<u8>>) {
        let request = GetPairingRequest {
            pairing_id: self.pairing_id.clone(),
            secret: self.secret.clone(),
            after_index: self.after_index,
        };
        let response = self.client.pairing().get_pairing(request).await.unwrap().into_inner();
        let mut out = Vec::new();
        for message in &response.messages {
            self.after_index = message.index;
            match self.channel.as_mut() {
                Some(channel) => out.push(channel.decrypt(&message.payload).unwrap()),
                None => {
                    let (channel, hello) = self.ecies.take().unwrap().accept(&message.payload).unwrap();
                    assert_eq!(hello, PAIRING_HELLO);
                    self.channel = Some(channel);
                }
            }
        }
        (response.state(), out)
    }

    async fn post(&mut self, kind: u8, body: &[u8]) {
        let payload = self.channel.as_mut().unwrap().encrypt(&[&[kind][..], body].concat());
        let request = PostPairingMessageRequest {
            pairing_id: self.pairing_id.clone(),
            secret: self.secret.clone(),
            payload,
        };
        self.client.pairing().post_pairing_message(request).await.unwrap();
    }
}

#[tokio::test]
async fn a_tampered_sas_key_or_mac_stops_the_pairing_before_the_account_key() {
    let server = start(Database::Sqlite).await;
    let laptop = first_device(&server, "alice", "Laptop").await;
    let url = server.url();

    // 1. The new side commits to one SAS key and reveals another (a middleman that chose its
    //    key after seeing the laptop's): the laptop stops and cancels.
    let mut mallory = HandMadeNewDevice::open(&server).await;
    let found = find_pairing(&laptop.client, &mallory.pin).await.unwrap();
    let mut old =
        ExistingDeviceLink::connect(&laptop.client, &found.pairing_id, &found.public_key).await.unwrap();
    mallory.read().await;
    let committed = SasVerification::new();
    mallory.post(PAIRING_SAS_COMMITMENT, &sas::commitment(&committed.public_key())).await;
    old.poll(&laptop.client).await.unwrap();
    let (_, heard) = mallory.read().await;
    assert_eq!(kinds(&heard), [(PAIRING_SAS_KEY, 33)]);
    mallory.post(PAIRING_SAS_KEY, &SasVerification::new().public_key()).await;
    let error = old.poll(&laptop.client).await.unwrap_err();
    assert!(format!("{error:#}").contains("commitment"), "{error:#}");
    assert!(old.short_auth_string().is_none(), "no emoji to compare after a broken commitment");
    assert!(old.confirm(&laptop.client).await.is_err());
    assert!(old.send_account_key(&laptop.client, &laptop.account_key()).await.is_err());
    let (state, heard) = mallory.read().await;
    assert_eq!((state, heard.len()), (PairingState::Cancelled, 0), "nothing more came: {heard:?}");

    // 2. The new side sends a MAC that does not verify (as a middleman's would, over other
    //    channel keys): the laptop stops before the account key.
    let mut mallory = HandMadeNewDevice::open(&server).await;
    let found = find_pairing(&laptop.client, &mallory.pin).await.unwrap();
    let mut old =
        ExistingDeviceLink::connect(&laptop.client, &found.pairing_id, &found.public_key).await.unwrap();
    mallory.read().await;
    let ours = SasVerification::new();
    let key = ours.public_key();
    mallory.post(PAIRING_SAS_COMMITMENT, &sas::commitment(&key)).await;
    old.poll(&laptop.client).await.unwrap();
    let (_, heard) = mallory.read().await;
    let established = ours.establish(&heard[0][1..]).unwrap();
    mallory.post(PAIRING_SAS_KEY, &key).await;
    old.poll(&laptop.client).await.unwrap();
    assert_eq!(old.short_auth_string(), Some(established.short_auth_string(&found.pairing_id)));
    old.confirm(&laptop.client).await.unwrap();
    let wrong_keys = [7u8; 64];
    let mac = established.mac(&found.pairing_id, "pairing_channel", &wrong_keys);
    mallory.post(PAIRING_SAS_MAC, &mac).await;
    let error = old.poll(&laptop.client).await.unwrap_err();
    assert!(format!("{error:#}").contains("MAC"), "{error:#}");
    assert!(!old.verified());
    assert!(old.send_account_key(&laptop.client, &laptop.account_key()).await.is_err());
    let (state, heard) = mallory.read().await;
    assert_eq!(kinds(&heard), [(PAIRING_SAS_MAC, 33)], "only the laptop's MAC, no account key");
    assert_eq!(state, PairingState::Cancelled);

    // 3. The existing side sends a bad MAC: the new device stops, cancels, and would not take an
    //    account key.
    let mut fresh = NewDeviceLink::open(connect(&server).await, &url).await.unwrap();
    let found = find_pairing(&laptop.client, &fresh.created.pin).await.unwrap();
    let mut old =
        ExistingDeviceLink::connect(&laptop.client, &found.pairing_id, &found.public_key).await.unwrap();
    fresh.poll().await.unwrap();
    old.poll(&laptop.client).await.unwrap();
    fresh.poll().await.unwrap();
    old.poll(&laptop.client).await.unwrap();
    assert_eq!(fresh.short_auth_string(), old.short_auth_string());
    fresh.confirm().await.unwrap();
    old.post(&laptop.client, &[&[PAIRING_SAS_MAC][..], &[0; 32]].concat()).await.unwrap();
    let error = fresh.poll().await.unwrap_err();
    assert!(format!("{error:#}").contains("MAC"), "{error:#}");
    assert!(fresh.poll().await.is_err(), "a stopped pairing stays stopped");
    assert_eq!(fresh.get_raw(0).await.unwrap().state(), PairingState::Cancelled);

    // 4. An account key before the MACs is refused by the new device.
    let mut fresh = NewDeviceLink::open(connect(&server).await, &url).await.unwrap();
    let found = find_pairing(&laptop.client, &fresh.created.pin).await.unwrap();
    let mut old =
        ExistingDeviceLink::connect(&laptop.client, &found.pairing_id, &found.public_key).await.unwrap();
    fresh.poll().await.unwrap();
    old.post(
        &laptop.client,
        &[&[PAIRING_ACCOUNT_KEY][..], &*laptop.account_key().to_secret_bytes()].concat(),
    )
    .await
    .unwrap();
    let error = fresh.poll().await.unwrap_err();
    assert!(format!("{error:#}").contains("before both SAS MACs"), "{error:#}");
    assert!(fresh.finish().await.is_err());
}

/// An 8-digit PIN that is not `real`.
fn wrong_pin(real: &str, n: u32) -> String {
    let real: u32 = real.parse().unwrap();
    format!("{:08}", (real + 1 + n * 7_919) % 100_000_000)
}

#[tokio::test]
async fn guessing_pins_is_stopped_per_account() {
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_TRUST_FORWARDED_FOR", "true")
            .env("KITSULAN_RATE_LIMIT_SIGN_UP", "1000/1h"),
    )
    .await
    .unwrap();
    let fresh = NewDeviceLink::open(connect(&server).await, &server.url()).await.unwrap();
    let mallory = signed_up(&server, "mallory", "Laptop").await;
    // Each guess from another address, so only the per-account limit can stop them.
    let from = |n: u32| {
        let url = server.url();
        let session = mallory.session().cloned();
        async move {
            let mut client = Client::connect(&url)
                .await
                .unwrap()
                .with_header("x-forwarded-for", &format!("192.0.2.{}", n + 1))
                .unwrap();
            client.set_session(session);
            client
        }
    };
    let mut wrong = 0;
    let mut limited = None;
    for n in 0..40 {
        match find_pairing(&from(n).await, &wrong_pin(&fresh.created.pin, n)).await {
            Err(status) if Refusal::of(&status).reason == "RATE_LIMITED" => {
                limited = Some(assert_refused(Err::<(), _>(status), "RATE_LIMITED"));
                break;
            }
            result => {
                assert_refused(result, "PAIRING_NOT_FOUND");
                wrong += 1;
            }
        }
    }
    let limited = limited.expect("40 wrong PINs in a row were never limited");
    println!("an account gets {wrong} PIN guesses, then waits {:?} s", limited.retry_after);
    assert_eq!(wrong, 10, "10 guesses per 10 minutes per account");
    assert!(limited.retry_after.unwrap() <= 600, "{limited:?}");
    // The right PIN does not get through either, while limited.
    assert_refused(find_pairing(&from(100).await, &fresh.created.pin).await, "RATE_LIMITED");
    // The limit is the guesser's: Alice finds her pairing.
    let alice = signed_up(&server, "alice", "Laptop").await;
    let found = find_pairing(&alice, &fresh.created.pin).await.unwrap();
    assert_eq!(found.pairing_id, fresh.pairing_id);
}

// ---------------------------------------------------------------------------------------------
// Verifying a contact with SAS emoji (docs/e2ee.md, "Verifying a contact")

#[tokio::test]
async fn contacts_verify_each_other_with_sas_emoji() {
    let server = start(Database::Sqlite).await;
    let mut alice = people::person(&server, "alice").await;
    let mut bob = people::person(&server, "bob").await;
    let mut bob_phone = people::another_device(&server, &bob, "bob", "Phone").await;
    let (alice_id, bob_id) = (alice.account_id().to_owned(), bob.account_id().to_owned());

    // Alice asks; both of Bob's devices get the request over Olm.
    let mut a = ContactVerification::start(&mut alice, &bob_id).await.unwrap();
    let request = wait_for_request(&mut bob, &alice_id).await.unwrap();
    let on_phone = wait_for_request(&mut bob_phone, &alice_id).await.unwrap();
    assert_eq!(request.sender.device_id, alice.device_id());
    let mut phone = ContactVerification::from_request(&bob_phone, &on_phone).unwrap();
    assert_eq!(phone.state(), VerificationState::Requested);

    // Bob accepts on his laptop: ready (commitment), Alice's key, Bob's reveal.
    let mut b = ContactVerification::from_request(&bob, &request).unwrap();
    b.accept(&mut bob).await.unwrap();
    assert_eq!(a.receive(&mut alice).await.unwrap(), 1);
    assert_eq!(a.their_device_id.as_deref(), Some(bob.device_id()));
    assert_eq!(a.state(), VerificationState::Ready);
    assert_eq!(b.receive(&mut bob).await.unwrap(), 1);
    assert_eq!(a.receive(&mut alice).await.unwrap(), 1);
    assert_eq!((a.state(), b.state()), (VerificationState::Compare, VerificationState::Compare));

    // The phone is told another device accepted.
    assert_eq!(phone.receive(&mut bob_phone).await.unwrap(), 1);
    assert_eq!(
        phone.state(),
        VerificationState::Cancelled { reason: CancelReason::AcceptedElsewhere, by_them: true }
    );

    // Both screens show the same seven emoji; Bob confirms first, then Alice.
    let emoji = a.short_auth_string().unwrap();
    assert_eq!(Some(emoji), b.short_auth_string());
    assert_eq!(emoji.emoji().len(), 7);
    b.confirm(&mut bob).await.unwrap();
    assert_eq!(a.receive(&mut alice).await.unwrap(), 1); // Bob's MACs verify
    assert_eq!(a.state(), VerificationState::Compare);
    a.confirm(&mut alice).await.unwrap(); // Alice's MACs and done
    assert_eq!(b.receive(&mut bob).await.unwrap(), 2);
    assert_eq!(b.state(), VerificationState::Done);
    assert_eq!(a.receive(&mut alice).await.unwrap(), 1); // Bob's done
    assert_eq!(a.state(), VerificationState::Done);
    assert!(alice.is_verified(&bob_id));
    assert!(bob.is_verified(&alice_id));
    assert!(!bob_phone.is_verified(&alice_id));

    // Bob's account key changes (a new key replaces the published one): Alice refuses it and
    // no longer counts Bob as verified.
    let new_key = AccountKey::generate(&mut OsRng::new());
    let replace = PublishAccountKeyRequest { account_key: new_key.public_key().to_vec(), replace: true };
    bob.client.keys().publish_account_key(replace).await.unwrap();
    let refused = alice.sync_devices(&[bob_id.as_str()]).await.unwrap_err();
    assert!(format!("{refused:#}").contains("changed"), "{refused:#}");
    assert!(!alice.is_verified(&bob_id));
}

/// Alice asks Bob (whose device vouches for `bob_keys`, by default its own) and both get as far
/// as the emoji.
async fn verification_up_to_the_emoji(
    alice: &mut E2eeDevice,
    bob: &mut E2eeDevice,
    bob_keys: Option<Identity>,
) -> (ContactVerification, ContactVerification) {
    let mut a = ContactVerification::start(alice, bob.account_id()).await.unwrap();
    let request = wait_for_request(bob, alice.account_id()).await.unwrap();
    let mut b = match bob_keys {
        Some(keys) => ContactVerification::from_request_as(bob, &request, keys).unwrap(),
        None => ContactVerification::from_request(bob, &request).unwrap(),
    };
    b.accept(bob).await.unwrap();
    a.receive(alice).await.unwrap();
    b.receive(bob).await.unwrap();
    a.receive(alice).await.unwrap();
    assert_eq!((a.state(), b.state()), (VerificationState::Compare, VerificationState::Compare));
    (a, b)
}

#[tokio::test]
async fn a_tampered_mac_or_a_mismatching_key_is_refused() {
    let server = start(Database::Sqlite).await;
    let mut alice = people::person(&server, "alice").await;
    let mut bob = people::person(&server, "bob").await;
    let bob_id = bob.account_id().to_owned();
    let alice_device = alice.device_id().to_owned();
    let cancelled = |reason, by_them| VerificationState::Cancelled { reason, by_them };

    // 1. Bob's MAC is altered on the way: Alice refuses it and tells Bob.
    let (mut a, mut b) = verification_up_to_the_emoji(&mut alice, &mut bob, None).await;
    b.inner.confirm().unwrap();
    let mut mac = b.take_outgoing().unwrap();
    let last = mac.len() - 1;
    mac[last] ^= 0x01;
    bob.send_verification(&[(alice_device.clone(), mac)]).await.unwrap();
    a.receive(&mut alice).await.unwrap();
    assert_eq!(a.state(), cancelled(CancelReason::MacMismatch, false));
    assert!(a.short_auth_string().is_none());
    b.receive(&mut bob).await.unwrap();
    assert_eq!(b.state(), cancelled(CancelReason::MacMismatch, true));
    assert!(!alice.is_verified(&bob_id));

    // 2. Bob's device vouches for an account key other than the one Alice pinned for him (as a
    //    device of an impostor would): the emoji match, but its MAC does not verify.
    let other = AccountKey::generate(&mut OsRng::new());
    let impostor = Identity { device_ed25519: bob.ed25519_key(), account_key: other.public_key() };
    let (mut a, mut b) = verification_up_to_the_emoji(&mut alice, &mut bob, Some(impostor)).await;
    assert_eq!(a.short_auth_string(), b.short_auth_string());
    b.confirm(&mut bob).await.unwrap();
    a.receive(&mut alice).await.unwrap();
    assert_eq!(a.state(), cancelled(CancelReason::MacMismatch, false));
    assert!(a.inner.confirm().is_err(), "nothing to confirm after a refused MAC");
    b.receive(&mut bob).await.unwrap();
    assert_eq!(b.state(), cancelled(CancelReason::MacMismatch, true));
    assert!(!alice.is_verified(&bob_id));

    // 3. Alice says the emoji differ: both stop, nobody is verified.
    let (mut a, mut b) = verification_up_to_the_emoji(&mut alice, &mut bob, None).await;
    a.cancel(&mut alice, CancelReason::Mismatch).await.unwrap();
    b.receive(&mut bob).await.unwrap();
    assert_eq!(b.state(), cancelled(CancelReason::Mismatch, true));
    assert!(b.inner.confirm().is_err());
    assert!(!alice.is_verified(&bob_id) && !bob.is_verified(alice.account_id()));
}
