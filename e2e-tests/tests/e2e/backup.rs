//! Key backup (`KeyBackupService`), tested from outside against the real `kitsulan` binary on
//! SQLite and PostgreSQL: a person backs up, rotates the recovery key on another device, a
//! device that missed the rotation is refused and catches up, a new device reads everything
//! back (also after a restart), and backup is turned off. Around it, the attacks: another
//! account's token cannot read, put into or delete someone's backup; oversized or malformed
//! input is refused with its documented reason and changes nothing; a flood of new versions
//! hits the rate limit, and an account that keeps old versions cannot pile up more than 3.
//!
//! The blobs are opaque to the server, so these tests use made-up bytes; the crypto of the
//! blobs is the crypto crate's (crypto/FORMAT.md, "Key backup").

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use kitsulan_client::people::{signed_in, signed_up, start, start_with};
use kitsulan_client::{Client, Database, Options, TestServer, assert_refused};
use kitsulan_proto::v1::{BackupSession, BackupVersion};
use uuid::Uuid;

/// backup.proto's limits.
const MAX_BLOB: usize = 1024;
const MAX_SESSION: usize = 4 * 1024;
const MAX_SESSION_ID: usize = 128;
const MAX_PER_PUT: usize = 100;
const MAX_PAGE: u32 = 500;
/// `KITSULAN_RATE_LIMIT_BACKUP_VERSIONS`'s default: new versions per account per hour.
const VERSIONS_PER_HOUR: usize = 10;
/// Versions an account keeps (the current one and older ones not yet deleted).
const MAX_VERSIONS: usize = 3;

fn is_uuid_v7(id: &str) -> bool {
    Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
}

/// A session key as a device would back it up: `data` stands for the encrypted entry.
fn entry(session_id: &str, tag: u8) -> BackupSession {
    let mut data = vec![tag; 200];
    data.extend_from_slice(session_id.as_bytes());
    BackupSession { session_id: session_id.to_owned(), data }
}

/// Megolm-like session ids (base64, upper and lower case), `n` of them.
fn session_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{}sess{i:04}/x+", if i % 2 == 0 { "A" } else { "a" })).collect()
}

/// Puts `entries` into `version` in batches of 100; returns the last count.
async fn put_all(device: &Client, version: &str, entries: &[BackupSession]) -> u64 {
    let mut count = 0;
    for batch in entries.chunks(MAX_PER_PUT) {
        count = device.put_backup_sessions(version, batch.to_vec()).await.expect("put");
    }
    count
}

fn sorted_by_bytes(mut entries: Vec<BackupSession>) -> Vec<BackupSession> {
    entries.sort_by(|a, b| a.session_id.as_bytes().cmp(b.session_id.as_bytes()));
    entries
}

async fn backup_and_recovery(database: Database) {
    let mut server = start(database).await;
    let laptop = signed_up(&server, "alice").await;
    let phone = signed_in(&server, "alice").await;
    assert_refused(laptop.get_backup().await, "BACKUP_NOT_FOUND");

    // Set-up on the laptop.
    let before = kitsulan_client::e2ee::now_ms();
    let first = laptop.create_backup_version(b"auth data 1".to_vec(), b"identity 1".to_vec()).await.unwrap();
    assert!(is_uuid_v7(&first.version), "{first:?}");
    assert_eq!((first.session_count, first.auth_data.as_slice()), (0, &b"auth data 1"[..]));
    assert!(first.created_at_ms >= before - 1000, "{first:?}");
    assert_eq!(phone.get_backup().await.unwrap(), first, "every device of the account sees it");

    let ids = session_ids(250);
    let entries: Vec<BackupSession> = ids.iter().map(|id| entry(id, 1)).collect();
    assert_eq!(put_all(&laptop, &first.version, &entries).await, 250);
    // A better copy of one session replaces its entry; the count stays.
    let better = entry(&ids[7], 9);
    assert_eq!(laptop.put_backup_sessions(&first.version, vec![better.clone()]).await.unwrap(), 250);
    let mut expected = entries.clone();
    expected[7] = better;
    let expected = sorted_by_bytes(expected);
    assert_eq!(laptop.get_backup().await.unwrap().session_count, 250);

    // Pages in session-id byte order, with `more` until the last.
    let page = laptop.list_backup_sessions(&first.version, "", 100).await.unwrap();
    assert_eq!((page.sessions.len(), page.more), (100, true));
    assert_eq!(page.sessions, expected[..100]);
    let last = laptop.list_backup_sessions(&first.version, &expected[199].session_id, 100).await.unwrap();
    assert_eq!((last.sessions.as_slice(), last.more), (&expected[200..], false));
    assert_eq!(laptop.all_backup_sessions(&first.version, 0).await.unwrap(), expected);
    assert_eq!(laptop.all_backup_sessions(&first.version, 7).await.unwrap(), expected);

    // The phone rotates the recovery key: a new current version, re-encrypted from the old one.
    let second = phone.create_backup_version(b"auth data 2".to_vec(), b"identity 2".to_vec()).await.unwrap();
    assert_ne!(second.version, first.version);
    // The laptop missed it: its next put is refused, nothing stored anywhere.
    let late = vec![entry("late session", 3)];
    assert_refused(laptop.put_backup_sessions(&first.version, late.clone()).await, "BACKUP_VERSION_STALE");
    assert_eq!(laptop.all_backup_sessions(&first.version, 0).await.unwrap(), expected);
    // The old version is still readable while the phone re-encrypts it.
    let old = phone.all_backup_sessions(&first.version, MAX_PAGE).await.unwrap();
    let reencrypted: Vec<BackupSession> = old.iter().map(|s| entry(&s.session_id, 2)).collect();
    assert_eq!(put_all(&phone, &second.version, &reencrypted).await, 250);
    // The laptop catches up and puts into the current version.
    let current = laptop.get_backup().await.unwrap();
    assert_eq!((current.version.as_str(), current.session_count), (second.version.as_str(), 250));
    assert_eq!(laptop.put_backup_sessions(&current.version, late.clone()).await.unwrap(), 251);
    // Rotation done: the old version goes.
    phone.delete_backup_version(&first.version, false).await.unwrap();
    assert_refused(phone.list_backup_sessions(&first.version, "", 0).await, "BACKUP_NOT_FOUND");
    assert_refused(phone.delete_backup_version(&first.version, false).await, "BACKUP_NOT_FOUND");

    // A new device, after a restart (on a new port: the other devices' connections are gone):
    // everything is there.
    server.restart().await.unwrap();
    let tablet = signed_in(&server, "alice").await;
    let backup = tablet.get_backup().await.unwrap();
    assert_eq!(
        (
            backup.version.as_str(),
            backup.auth_data.as_slice(),
            backup.identity.as_slice(),
            backup.session_count
        ),
        (second.version.as_str(), &b"auth data 2"[..], &b"identity 2"[..], 251)
    );
    let mut restored_expected = reencrypted;
    restored_expected.extend(late);
    assert_eq!(
        tablet.all_backup_sessions(&backup.version, 0).await.unwrap(),
        sorted_by_bytes(restored_expected)
    );

    // Turning backup off: the current version only with delete_current.
    assert_refused(tablet.delete_backup_version(&backup.version, false).await, "BACKUP_VERSION_CURRENT");
    assert_eq!(tablet.get_backup().await.unwrap().session_count, 251);
    tablet.delete_backup_version(&backup.version, true).await.unwrap();
    assert_refused(tablet.get_backup().await, "BACKUP_NOT_FOUND");
    assert_refused(
        tablet.put_backup_sessions(&backup.version, vec![entry("x", 1)]).await,
        "BACKUP_NOT_FOUND",
    );
}

on_both_databases!(backup_and_recovery: backup_and_recovery_on_sqlite, backup_and_recovery_on_postgres);

/// Alice's laptop with a backup of two versions (the older one still there), 3 session keys in
/// the current one.
async fn alice_with_a_backup(server: &TestServer) -> (Client, BackupVersion, BackupVersion) {
    let alice = signed_up(server, "alice").await;
    let old = alice.create_backup_version(b"old auth".to_vec(), b"old identity".to_vec()).await.unwrap();
    alice.put_backup_sessions(&old.version, vec![entry("o", 1)]).await.unwrap();
    let current = alice.create_backup_version(b"auth".to_vec(), b"identity".to_vec()).await.unwrap();
    let sessions = vec![entry("s1", 1), entry("s2", 1), entry("s3", 1)];
    assert_eq!(alice.put_backup_sessions(&current.version, sessions).await.unwrap(), 3);
    (alice, old, current)
}

/// Everything alice's backup holds: the current version and every version's sessions.
async fn snapshot(alice: &Client, versions: &[&BackupVersion]) -> (BackupVersion, Vec<Vec<BackupSession>>) {
    let mut sessions = Vec::new();
    for version in versions {
        sessions.push(alice.all_backup_sessions(&version.version, 0).await.unwrap());
    }
    (alice.get_backup().await.unwrap(), sessions)
}

#[tokio::test]
async fn another_accounts_token_cannot_read_put_or_delete_a_backup() {
    let server = start(Database::Sqlite).await;
    let (alice, old, current) = alice_with_a_backup(&server).await;
    let before = snapshot(&alice, &[&old, &current]).await;

    let mallory = signed_up(&server, "mallory").await;
    // Alice's backup does not exist for Mallory: the same answer as a version nobody has.
    assert_refused(mallory.get_backup().await, "BACKUP_NOT_FOUND");
    for version in [&old, &current] {
        assert_refused(mallory.list_backup_sessions(&version.version, "", 0).await, "BACKUP_NOT_FOUND");
        let overwrite = vec![entry("s1", 66), entry("planted", 66)];
        assert_refused(mallory.put_backup_sessions(&version.version, overwrite).await, "BACKUP_NOT_FOUND");
        for delete_current in [false, true] {
            assert_refused(
                mallory.delete_backup_version(&version.version, delete_current).await,
                "BACKUP_NOT_FOUND",
            );
        }
    }
    let nobodys = Uuid::now_v7().to_string();
    assert_refused(mallory.list_backup_sessions(&nobodys, "", 0).await, "BACKUP_NOT_FOUND");

    // Mallory's own backup is hers alone and changes nothing of Alice's.
    let own = mallory.create_backup_version(b"m".to_vec(), b"m".to_vec()).await.unwrap();
    assert_eq!(mallory.get_backup().await.unwrap().version, own.version);
    assert_refused(alice.list_backup_sessions(&own.version, "", 0).await, "BACKUP_NOT_FOUND");

    // Without a token, or with a signed-out one: no access at all.
    let stranger = Client::connect(&server.url()).await.unwrap();
    assert_refused(stranger.get_backup().await, "SESSION_INVALID");
    assert_refused(stranger.list_backup_sessions(&current.version, "", 0).await, "SESSION_INVALID");
    let mut thief = signed_in(&server, "alice").await;
    let copied = thief.session().cloned();
    thief.sign_out().await.unwrap();
    thief.set_session(copied);
    assert_refused(thief.list_backup_sessions(&current.version, "", 0).await, "SESSION_INVALID");
    assert_refused(thief.delete_backup_version(&current.version, true).await, "SESSION_INVALID");

    assert_eq!(snapshot(&alice, &[&old, &current]).await, before, "Alice's backup changed");
}

#[tokio::test]
async fn oversize_and_malformed_input_is_refused_and_changes_nothing() {
    // Three new versions an hour (`alice_with_a_backup` makes two), so refused creates that
    // counted would show.
    let server =
        start_with(Options::new(Database::Sqlite).env("KITSULAN_RATE_LIMIT_BACKUP_VERSIONS", "3/1h")).await;
    let (alice, old, current) = alice_with_a_backup(&server).await;
    let before = snapshot(&alice, &[&old, &current]).await;
    let v = current.version.as_str();

    let blob = |n: usize| vec![5u8; n];
    let creates = [
        (blob(MAX_BLOB + 1), blob(10), "BACKUP_AUTH_DATA_INVALID", "auth_data"),
        (Vec::new(), blob(10), "BACKUP_AUTH_DATA_INVALID", "auth_data"),
        (blob(10), blob(MAX_BLOB + 1), "BACKUP_IDENTITY_INVALID", "identity"),
        (blob(10), Vec::new(), "BACKUP_IDENTITY_INVALID", "identity"),
    ];
    for (auth_data, identity, reason, field) in creates {
        let refusal = assert_refused(alice.create_backup_version(auth_data, identity).await, reason);
        assert_eq!(refusal.field(), Some(field));
    }

    let many = |n: usize| (0..n).map(|i| entry(&format!("n{i:03}"), 4)).collect::<Vec<_>>();
    let with = |last: BackupSession| {
        let mut batch = many(MAX_PER_PUT - 1);
        batch.push(last);
        batch
    };
    let long_id = "é".repeat(MAX_SESSION_ID / 2 + 1); // 130 bytes in 65 characters
    let puts = [
        (many(MAX_PER_PUT + 1), "BACKUP_BATCH_INVALID", "sessions"),
        (Vec::new(), "BACKUP_BATCH_INVALID", "sessions"),
        (
            with(BackupSession { session_id: "big".into(), data: blob(MAX_SESSION + 1) }),
            "BACKUP_SESSION_INVALID",
            "sessions.data",
        ),
        (
            with(BackupSession { session_id: "empty".into(), data: Vec::new() }),
            "BACKUP_SESSION_INVALID",
            "sessions.data",
        ),
        (with(entry(&long_id, 1)), "SESSION_ID_INVALID", "sessions.session_id"),
        (with(entry("", 1)), "SESSION_ID_INVALID", "sessions.session_id"),
        (with(entry("n000", 1)), "SESSION_ID_INVALID", "sessions.session_id"),
    ];
    for (sessions, reason, field) in puts {
        let refusal = assert_refused(alice.put_backup_sessions(v, sessions).await, reason);
        assert_eq!(refusal.field(), Some(field), "{reason}");
    }
    // The largest of everything is fine (and goes into a version of its own below).
    let longest_id = "x".repeat(MAX_SESSION_ID);
    let largest = BackupSession { session_id: longest_id.clone(), data: blob(MAX_SESSION) };

    assert_refused(alice.list_backup_sessions(v, "", MAX_PAGE + 1).await, "LIMIT_INVALID");
    assert_refused(alice.list_backup_sessions(v, &long_id, 10).await, "SESSION_ID_INVALID");
    for bad in ["", "not-a-uuid", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"] {
        let refusal = assert_refused(alice.put_backup_sessions(bad, vec![entry("a", 1)]).await, "ID_INVALID");
        assert_eq!(refusal.field(), Some("version"));
        assert_refused(alice.list_backup_sessions(bad, "", 0).await, "ID_INVALID");
        assert_refused(alice.delete_backup_version(bad, true).await, "ID_INVALID");
    }

    assert_eq!(snapshot(&alice, &[&old, &current]).await, before, "a refused call changed the backup");

    // None of the refused creates counted: the third new version of the hour is still allowed.
    let biggest = alice.create_backup_version(blob(MAX_BLOB), blob(MAX_BLOB)).await.unwrap();
    assert_eq!((biggest.auth_data.len(), biggest.identity.len()), (MAX_BLOB, MAX_BLOB));
    assert_eq!(alice.put_backup_sessions(&biggest.version, vec![largest.clone()]).await.unwrap(), 1);
    assert_eq!(alice.all_backup_sessions(&biggest.version, 1).await.unwrap(), vec![largest]);
    assert_refused(alice.create_backup_version(blob(1), blob(1)).await, "RATE_LIMITED");
}

#[tokio::test]
async fn a_flood_of_new_versions_hits_the_rate_limit() {
    let server = start(Database::Sqlite).await;
    let alice = signed_up(&server, "alice").await;
    let mut last: Option<BackupVersion> = None;
    for i in 0..VERSIONS_PER_HOUR {
        let version = alice.create_backup_version(vec![1; 100], vec![2; 100]).await;
        let version = version.unwrap_or_else(|e| panic!("version {i}: {e:?}"));
        // Each rotation deletes the version before it, so only the rate limit stops the flood.
        if let Some(previous) = last.replace(version) {
            alice.delete_backup_version(&previous.version, false).await.unwrap();
        }
    }
    let last = last.unwrap();
    // The flood goes on from another device of the same account: the limit is per account.
    let other_device = signed_in(&server, "alice").await;
    for device in [&alice, &other_device] {
        let refusal =
            assert_refused(device.create_backup_version(vec![1; 100], vec![2; 100]).await, "RATE_LIMITED");
        assert!(refusal.retry_after.unwrap_or(0) >= 1, "{refusal:?}");
    }
    // The last version made is still the current one and takes puts; other accounts are unaffected.
    assert_eq!(alice.get_backup().await.unwrap().version, last.version);
    assert_eq!(alice.put_backup_sessions(&last.version, vec![entry("s", 1)]).await.unwrap(), 1);
    let bob = signed_up(&server, "bob").await;
    bob.create_backup_version(vec![1; 10], vec![2; 10]).await.unwrap();
}

/// The attack: new versions without deleting the old ones, each able to hold 200,000 session
/// keys of 4 KiB, to fill the server's disk over days within the rate limit.
async fn old_versions_cannot_pile_up(database: Database) {
    // Five new versions an hour: the three kept, one after a deletion and one after turning
    // backup off fit only if the refused creates did not count.
    let server = start_with(Options::new(database).env("KITSULAN_RATE_LIMIT_BACKUP_VERSIONS", "5/1h")).await;
    let laptop = signed_up(&server, "alice").await;
    let phone = signed_in(&server, "alice").await;
    let mut kept = Vec::new();
    for i in 0..MAX_VERSIONS {
        let tag = u8::try_from(i).unwrap();
        let version = laptop.create_backup_version(vec![tag; 100], vec![tag; 100]).await.unwrap();
        laptop.put_backup_sessions(&version.version, vec![entry("s", tag)]).await.unwrap();
        kept.push(version);
    }
    let before = snapshot(&laptop, &kept.iter().collect::<Vec<_>>()).await;

    // A fourth, from either device of the account: refused, and nothing changed.
    for device in [&laptop, &phone, &laptop] {
        let refusal = assert_refused(
            device.create_backup_version(vec![9; 100], vec![9; 100]).await,
            "BACKUP_TOO_MANY_VERSIONS",
        );
        assert!(refusal.message.contains('3'), "{refusal:?}");
    }
    assert_eq!(
        snapshot(&laptop, &kept.iter().collect::<Vec<_>>()).await,
        before,
        "a refused create changed the backup"
    );
    // Another account is not affected.
    let bob = signed_up(&server, "bob").await;
    bob.create_backup_version(vec![1; 10], vec![2; 10]).await.unwrap();

    // A rotation that deletes the version before it makes room again.
    laptop.delete_backup_version(&kept[0].version, false).await.unwrap();
    let fourth = phone.create_backup_version(vec![4; 100], vec![4; 100]).await.unwrap();
    assert_eq!(laptop.get_backup().await.unwrap().version, fourth.version);
    assert_refused(
        laptop.create_backup_version(vec![9; 100], vec![9; 100]).await,
        "BACKUP_TOO_MANY_VERSIONS",
    );

    // Turning backup off deletes every version, so the account is never stuck at the limit.
    laptop.delete_backup_version(&fourth.version, true).await.unwrap();
    for gone in kept.iter().chain([&fourth]) {
        assert_refused(laptop.list_backup_sessions(&gone.version, "", 0).await, "BACKUP_NOT_FOUND");
    }
    assert_refused(laptop.get_backup().await, "BACKUP_NOT_FOUND");
    let fresh = laptop.create_backup_version(vec![5; 100], vec![5; 100]).await.unwrap();
    assert_eq!(laptop.get_backup().await.unwrap().version, fresh.version);
    // That was the fifth new version of the hour.
    assert_refused(laptop.create_backup_version(vec![6; 100], vec![6; 100]).await, "RATE_LIMITED");
}

on_both_databases!(old_versions_cannot_pile_up: old_versions_cannot_pile_up_on_sqlite, old_versions_cannot_pile_up_on_postgres);

#[tokio::test]
async fn a_put_to_an_old_version_after_a_rotation_is_refused() {
    let server = start(Database::FreshPostgres).await;
    let laptop = signed_up(&server, "alice").await;
    let phone = signed_in(&server, "alice").await;
    let first = laptop.create_backup_version(b"a1".to_vec(), b"i1".to_vec()).await.unwrap();
    laptop.put_backup_sessions(&first.version, vec![entry("s1", 1)]).await.unwrap();
    let second = phone.create_backup_version(b"a2".to_vec(), b"i2".to_vec()).await.unwrap();

    // The laptop, not knowing, puts a new session and a replacement into the old version.
    let refused = laptop.put_backup_sessions(&first.version, vec![entry("s1", 7), entry("s2", 7)]).await;
    assert_refused(refused, "BACKUP_VERSION_STALE");
    assert_eq!(laptop.all_backup_sessions(&first.version, 0).await.unwrap(), vec![entry("s1", 1)]);
    assert_eq!(laptop.all_backup_sessions(&second.version, 0).await.unwrap(), Vec::new());
    assert_eq!(laptop.get_backup().await.unwrap().version, second.version);
    // The device that rotated cannot put into the old version either.
    assert_refused(
        phone.put_backup_sessions(&first.version, vec![entry("s3", 1)]).await,
        "BACKUP_VERSION_STALE",
    );
    assert_eq!(laptop.put_backup_sessions(&second.version, vec![entry("s2", 7)]).await.unwrap(), 1);
}
