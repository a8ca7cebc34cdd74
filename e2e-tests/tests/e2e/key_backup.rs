//! Key backup and recovery end to end (`kitsulan_client::key_backup`), on SQLite and
//! PostgreSQL: Alice backs up with a new recovery key, chats with Bob and Carol in a group, and a
//! brand-new device of hers, signed in with the password and restored with the recovery key
//! alone, reads the whole history; Bob's device accepts it (its certificate verifies under the
//! account key Bob pinned) and reads what it sends. A wrong or malformed recovery key is a clear
//! error and leaves the server's backup as it was. Afterwards the database and blob store hold
//! no recovery key, backup key, account key secret, session key or plaintext.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use kitsulan_client::conversations::{Content, HistoryEntry};
use kitsulan_client::e2ee::E2eeDevice;
use kitsulan_client::people::{PASSWORD, person, start};
use kitsulan_client::scan::{Finding, scan_for_plaintexts, scan_for_secrets};
use kitsulan_client::{Database, TestServer};
use kitsulan_crypto::OsRng;
use kitsulan_crypto::backup::BackupKey;

fn list(findings: &[Finding]) -> String {
    findings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The texts of a history, sender device first; an entry that did not decrypt shows why.
fn texts(history: &[HistoryEntry]) -> Vec<(String, String)> {
    history
        .iter()
        .filter(|e| e.message.system.is_none())
        .map(|e| {
            let text = match &e.content {
                Content::Text(p) => String::from_utf8_lossy(p).into_owned(),
                other => format!("<{other:?}>"),
            };
            (e.message.sender_device_id.clone(), text)
        })
        .collect()
}

/// The crypto error at the root of a restore's failure.
fn crypto_error(e: &anyhow::Error) -> Option<kitsulan_crypto::Error> {
    e.chain().find_map(|c| c.downcast_ref::<kitsulan_crypto::Error>()).cloned()
}

async fn restore(server: &TestServer, recovery_key: &str) -> anyhow::Result<E2eeDevice> {
    let (device, _, restored) =
        E2eeDevice::restore_from_backup(&server.url(), "alice", PASSWORD, "New laptop", recovery_key, 20)
            .await?;
    assert!(restored.refused.is_empty(), "entries refused: {:?}", restored.refused);
    Ok(device)
}

on_both_databases!(restore_with_the_recovery_key: restore_with_the_recovery_key_on_sqlite, restore_with_the_recovery_key_on_postgres);

async fn restore_with_the_recovery_key(database: Database) {
    let server = start(database).await;
    let mut laptop = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let mut carol = person(&server, "carol").await;

    // Alice sets a backup up before anything is said.
    let mut backup = laptop.set_up_key_backup(None).await.unwrap();
    let recovery_key = backup.recovery_key();
    assert_eq!(recovery_key.len(), 55 + 13, "55 characters in groups of 4: {recovery_key}");

    let group = laptop.client.create_group("Backup", &[bob.account_id(), carol.account_id()]).await.unwrap();
    bob.client.accept_if_request(&group.id).await.unwrap();
    carol.client.accept_if_request(&group.id).await.unwrap();
    let said = [
        (&mut laptop, "alice: my only device, for now"),
        (&mut bob, "bob: hello alice"),
        (&mut carol, "carol: and hello from carol"),
    ];
    let mut expected = Vec::new();
    let mut plaintexts: Vec<&'static str> = Vec::new();
    for (device, text) in said {
        device.send_to_conversation(&group.id, text.as_bytes()).await.unwrap();
        expected.push((device.device_id().to_owned(), text.to_owned()));
        plaintexts.push(text);
    }
    laptop.send_to_conversation(&group.id, b"alice: a second one").await.unwrap();
    expected.push((laptop.device_id().to_owned(), "alice: a second one".to_owned()));
    plaintexts.push("alice: a second one");
    // Everyone reads (Bob and Carol take the laptop's keys while it is there); the laptop
    // takes Bob's and Carol's keys, then backs up the new sessions (its own too).
    for device in [&mut laptop, &mut bob, &mut carol] {
        assert_eq!(texts(&device.read_history(&group.id).await.unwrap()), expected);
    }
    assert_eq!(laptop.back_up_sessions(&mut backup).await.unwrap(), 3, "alice's, bob's and carol's sessions");
    assert_eq!(laptop.back_up_sessions(&mut backup).await.unwrap(), 0, "nothing new");
    let stored = laptop.client.get_backup().await.unwrap();
    assert_eq!((stored.version.as_str(), stored.session_count), (backup.version(), 3));
    let entries = laptop.client.all_backup_sessions(backup.version(), 0).await.unwrap();

    // A wrong recovery key (another backup's) and a malformed one: clear errors, and the
    // backup on the server is as it was.
    let wrong = BackupKey::generate(&mut OsRng::new()).recovery_key().to_string();
    let e = restore(&server, &wrong).await.unwrap_err();
    assert_eq!(crypto_error(&e), Some(kitsulan_crypto::Error::WrongRecoveryKey), "{e:#}");
    let mut typo = recovery_key.clone();
    typo.replace_range(0..1, if typo.starts_with('A') { "B" } else { "A" });
    let e = restore(&server, &typo).await.unwrap_err();
    assert_eq!(crypto_error(&e), Some(kitsulan_crypto::Error::RecoveryKeyMalformed), "{e:#}");
    assert_eq!(laptop.client.get_backup().await.unwrap(), stored);
    assert_eq!(laptop.client.all_backup_sessions(backup.version(), 0).await.unwrap(), entries);

    // The laptop is lost. A brand-new device of Alice: password + recovery key alone.
    let lost_secrets = laptop.secrets();
    let laptop_device = laptop.device_id().to_owned();
    laptop.client.sign_out().await.unwrap();
    let mut restored = restore(&server, &recovery_key).await.unwrap();
    assert_ne!(restored.device_id(), laptop_device);
    assert_eq!(restored.account_key().public_key(), bob.pinned_account_key(restored.account_id()).unwrap());
    assert_eq!(texts(&restored.read_history(&group.id).await.unwrap()), expected, "the whole history");

    // Bob's device accepts it (its certificate verifies under the key Bob pinned) and shares
    // with it; the restored device's messages read on Bob's and Carol's.
    bob.send_to_conversation(&group.id, b"bob: welcome back").await.unwrap();
    assert!(bob.conversation_shared_with(&group.id).contains(&restored.device_id().to_owned()));
    expected.push((bob.device_id().to_owned(), "bob: welcome back".to_owned()));
    restored.send_to_conversation(&group.id, b"alice: restored, and writing").await.unwrap();
    expected.push((restored.device_id().to_owned(), "alice: restored, and writing".to_owned()));
    plaintexts.extend(["bob: welcome back", "alice: restored, and writing"]);
    for device in [&mut restored, &mut bob, &mut carol] {
        assert_eq!(texts(&device.read_history(&group.id).await.unwrap()), expected, "{}", device.device_id());
    }

    // The server holds no recovery key, backup key, account key secret, session key or
    // plaintext (database, WAL, free pages, blob store).
    let needles: Vec<&[u8]> = plaintexts.iter().map(|t| t.as_bytes()).collect();
    let found = scan_for_plaintexts(&server, &needles).await.unwrap();
    assert!(found.is_empty(), "plaintext on the server: {}", list(&found));
    let mut secrets = backup.secrets();
    secrets.extend(lost_secrets);
    for device in [&restored, &bob, &carol] {
        secrets.extend(device.secrets());
    }
    let found = scan_for_secrets(&server, &secrets).await.unwrap();
    assert!(found.is_empty(), "secrets on the server: {}", list(&found));
    // The scan does see what the server must hold: the backup's entries.
    let data: Vec<&[u8]> = entries.iter().map(|e| e.data.as_slice()).collect();
    let found = scan_for_plaintexts(&server, &data).await.unwrap();
    assert!(!found.is_empty(), "the scan missed the backup entries the server holds");
}
