//! `kitsulan admin backup` and `kitsulan admin restore` (docs/admin.md, "Backup and restore"),
//! against the real binary on SQLite.
//!
//! Two people exchange E2EE messages and a file; the backup is taken while the server runs and
//! a sender keeps sending; the server stops, the backup is restored into a new data dir and a
//! server started there. The same devices (the test kept their client state) sign back in with
//! their refresh tokens and read the history as the server stores it: every message
//! acknowledged before the backup began is there, byte for byte (the whole `Message`), the
//! history has no gap, and the attachment downloads byte-identical and decrypts. Around it, bad
//! input: restore into a data dir that is not empty refuses and changes nothing, a backup with
//! one file changed, one file added, or its manifest removed is refused before anything is
//! written, and a backup made by a newer schema than the binary knows is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kitsulan_client::admin::{Output, run};
use kitsulan_client::attachments::{FileSource, blob_url, download_decrypt, upload_encrypted};
use kitsulan_client::content::{self, FileContent};
use kitsulan_client::conversations::Content;
use kitsulan_client::e2ee::E2eeDevice;
use kitsulan_client::people::{person, start, start_with};
use kitsulan_client::{Client, Database, Options};
use kitsulan_proto::v1::{HistoryDirection, Message};

/// The attachment: big enough that copying the files takes a while.
const FILE_LEN: u64 = 4_000_000;
/// A week: nothing expires while the test runs.
const TTL: u32 = 604_800;

/// `kitsulan admin restore` (or any command) with only `KITSULAN_DATA_DIR` set.
async fn kitsulan(args: &[&str], data_dir: &Path) -> Output {
    let env = vec![("KITSULAN_DATA_DIR".to_owned(), data_dir.display().to_string())];
    let cwd = data_dir.parent().unwrap();
    run(args, &env, cwd, None).await.unwrap()
}

/// Every file under `dir` with its bytes: what "changes nothing" is checked against.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_owned(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// The same device, connected to another server (the restored one) with its session; its
/// refresh token (in the restored database) gets it a new access token.
async fn reconnect(device: &mut E2eeDevice, url: &str) {
    let session = device.client.session().cloned();
    let mut client = Client::connect(url).await.unwrap();
    client.set_session(session);
    client.refresh().await.unwrap_or_else(|s| panic!("refresh on the restored server: {s:?}"));
    device.client = client;
}

fn failed_with(output: &Output, words: &str) {
    assert!(!output.success(), "`kitsulan {}` should have failed:\n{}", output.args.join(" "), output.stdout);
    let line = output.stderr.trim();
    assert_eq!(line.lines().count(), 1, "one line:\n{line}");
    assert!(line.contains(words), "{line:?} should say {words:?}");
}

#[tokio::test]
async fn a_backup_taken_while_messages_flow_restores_every_acknowledged_message() {
    let work = tempfile::tempdir().unwrap();
    let server = start(Database::Sqlite).await;
    let mut alice = person(&server, "alice").await;
    let mut bob = person(&server, "bob").await;
    let conversation = alice.client.open_direct(bob.account_id()).await.unwrap().conversation.unwrap().id;
    bob.client.accept_request(&conversation).await.unwrap();

    // They talk; everything acknowledged is kept as the server answered it.
    let mut acknowledged: Vec<Message> = Vec::new();
    for i in 0..4 {
        let text = format!("alice {i}");
        acknowledged.push(alice.send_to_conversation(&conversation, text.as_bytes()).await.unwrap().message);
        let text = format!("bob {i}");
        acknowledged.push(bob.send_to_conversation(&conversation, text.as_bytes()).await.unwrap().message);
    }
    // Alice sends a file.
    let file = FileSource::new(0x6b69_7473, FILE_LEN);
    let created = alice.client.create_upload(&conversation, FILE_LEN, TTL).await.unwrap();
    let (attachment, upload) = (created.attachment.unwrap(), created.upload.unwrap());
    let uploaded = upload_encrypted(&server.url(), &upload, file.clone()).await.unwrap();
    assert_eq!(uploaded.status, 200);
    alice.client.complete_upload(&attachment.id).await.unwrap();
    let secrets = uploaded.secrets.unwrap();
    let plaintext = content::file(
        FileContent {
            attachment_id: attachment.id.clone(),
            secrets: secrets.to_bytes().to_vec(),
            name: "party.bin".into(),
            media_type: "application/octet-stream".into(),
            ..FileContent::default()
        },
        "",
    )
    .unwrap();
    let encrypted = alice.prepare_message(&conversation, &plaintext).await.unwrap();
    let mut request = encrypted.send_request("");
    request.attachment_ids = vec![attachment.id.clone()];
    acknowledged.push(alice.client.send_message(request).await.unwrap());
    let download = bob.client.download_url(&attachment.id).await.unwrap().download.unwrap();
    let blob =
        reqwest::get(blob_url(&server.url(), &download)).await.unwrap().bytes().await.unwrap().to_vec();
    assert_eq!(blob.len() as u64, FILE_LEN);

    // The backup, while Bob keeps sending: each message with when its answer came.
    let dest = work.path().join("backup-1");
    let dest_arg = dest.display().to_string();
    let backup_done = AtomicBool::new(false);
    let mut during: Vec<(Instant, Message)> = Vec::new();
    let mut backup_window = (Instant::now(), Instant::now());
    let backup = async {
        // Bob is sending before the backup starts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let output = server.admin(&["backup", &dest_arg]).await.unwrap();
        backup_window = (started, Instant::now());
        backup_done.store(true, Ordering::SeqCst);
        output
    };
    let sending = async {
        let mut after = 0;
        let mut n = 0;
        // Until a few more have gone through after the backup finished.
        while after < 3 {
            let text = format!("during {n}");
            let posted = bob.send_prepared(&conversation, text.as_bytes(), "").await.unwrap();
            during.push((Instant::now(), posted.message));
            n += 1;
            if backup_done.load(Ordering::SeqCst) {
                after += 1;
            }
        }
    };
    let (output, ()) = tokio::join!(backup, sending);
    let output = output.ok().unwrap();
    assert!(output.stdout.contains("Backed up to"), "{}", output.stdout);
    let (started, finished) = backup_window;
    let before: Vec<&Message> = during.iter().filter(|(at, _)| *at < started).map(|(_, m)| m).collect();
    let overlapping = during.iter().filter(|(at, _)| *at >= started && *at <= finished).count();
    let later = during.iter().filter(|(at, _)| *at > finished).count();
    assert!(!before.is_empty() && later >= 3, "the sender ran before and after the backup");
    println!(
        "backup took {} ms; {} messages sent before it, {overlapping} while it ran, {later} after",
        finished.duration_since(started).as_millis(),
        before.len()
    );
    acknowledged.extend(before.into_iter().cloned());
    let all_sent: BTreeMap<String, Message> =
        acknowledged.iter().chain(during.iter().map(|(_, m)| m)).map(|m| (m.id.clone(), m.clone())).collect();

    // The manifest lists the database and the data dir's keys and the blob.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("manifest.json")).unwrap()).unwrap();
    let paths: Vec<&str> =
        manifest["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    for expected in ["kitsulan.db", "files/blob-key", "files/totp-key", "files/turn-secret"] {
        assert!(paths.contains(&expected), "{expected} in {paths:?}");
    }
    let blob_path = format!("files/blobs/attachments/{}", attachment.id);
    assert!(paths.iter().any(|p| *p == blob_path), "{blob_path} in {paths:?}");
    assert!(manifest["database"]["schema_version"].as_i64().unwrap() > 0);
    assert!(
        !paths.iter().any(|p| p.contains("-wal") || p.contains("-shm") || p.contains(".tmp")),
        "{paths:?}"
    );

    // The server stops; the backup goes into a new data dir, and a server starts there.
    drop(server);
    let restored_dir = work.path().join("restored");
    let output = kitsulan(&["admin", "restore", &dest_arg], &restored_dir).await.ok().unwrap();
    assert!(output.stdout.contains("Restored"), "{}", output.stdout);
    let restored = start_with(
        Options::new(Database::Sqlite).env("KITSULAN_DATA_DIR", &restored_dir.display().to_string()),
    )
    .await;
    reconnect(&mut alice, &restored.url()).await;
    reconnect(&mut bob, &restored.url()).await;

    // The history as the server stores it: no gap, only what was sent, and everything
    // acknowledged before the backup began, identical.
    let history = alice.client.all_messages(&conversation, HistoryDirection::Forward, 100).await.unwrap();
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=history.len() as u64).collect::<Vec<_>>(), "a consistent snapshot has no gap");
    for message in &history {
        assert_eq!(Some(message), all_sent.get(&message.id), "a restored message is one that was sent");
    }
    let restored_ids: Vec<&str> = history.iter().map(|m| m.id.as_str()).collect();
    for message in &acknowledged {
        assert!(
            restored_ids.contains(&message.id.as_str()),
            "message {} (seq {}) lost",
            message.id,
            message.seq
        );
    }
    println!(
        "restored {} of {} messages sent ({} acknowledged before the backup)",
        history.len(),
        all_sent.len(),
        acknowledged.len()
    );
    // And Bob's device still reads them: texts and the file.
    let read = bob.read_history(&conversation).await.unwrap();
    assert_eq!(read.len(), history.len());
    let unreadable: Vec<_> = read.iter().filter(|e| !matches!(e.content, Content::Text(_))).collect();
    assert!(unreadable.is_empty(), "Bob cannot read {unreadable:?}");
    assert_eq!(read[0].content, Content::Text(b"alice 0".to_vec()));
    let file_message =
        read.iter().find_map(|e| e.decoded()?.ok()?.file().cloned()).expect("the file message");
    assert_eq!(file_message.attachment_id, attachment.id);

    // The attachment: the same ciphertext, and it decrypts to the same file.
    let download = bob.client.download_url(&attachment.id).await.unwrap().download.unwrap();
    let url = blob_url(&restored.url(), &download);
    let again = reqwest::get(&url).await.unwrap().bytes().await.unwrap().to_vec();
    assert!(again == blob, "the attachment's ciphertext differs after restore");
    let decrypted = download_decrypt(&url, &secrets).await.unwrap();
    assert_eq!(decrypted.plaintext_sha256, file.sha256());

    // A second backup of the running restored server, for the refusals below.
    let dest2 = work.path().join("backup-2");
    restored.admin(&["backup", &dest2.display().to_string()]).await.unwrap().ok().unwrap();

    // Restore into a data dir that is not empty: refused, nothing changed.
    let before = contents(&restored_dir);
    let output = kitsulan(&["admin", "restore", &dest2.display().to_string()], &restored_dir).await;
    failed_with(&output, "is not empty");
    assert!(output.stderr.contains("--force"), "{}", output.stderr);
    assert!(contents(&restored_dir) == before, "a refused restore changed the data dir");
    drop(restored);

    // A backup with one byte changed: refused before anything is written.
    let tampered = work.path().join("tampered");
    copy_dir(&dest2, &tampered);
    let key = tampered.join("files/totp-key");
    let mut bytes = std::fs::read(&key).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&key, bytes).unwrap();
    let target = work.path().join("target-1");
    let output = kitsulan(&["admin", "restore", &tampered.display().to_string()], &target).await;
    failed_with(&output, "does not match its manifest");
    assert!(!target.exists(), "a refused restore made the data dir");
    // Even with --force over a data dir that has something in it: nothing changes.
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep-me"), b"old").unwrap();
    let output = kitsulan(&["admin", "restore", "--force", &tampered.display().to_string()], &target).await;
    failed_with(&output, "does not match its manifest");
    assert_eq!(contents(&target).into_keys().collect::<Vec<_>>(), vec![PathBuf::from("keep-me")]);

    // A file the manifest does not list, a missing manifest, a schema from the future.
    let extra = work.path().join("extra");
    copy_dir(&dest2, &extra);
    std::fs::write(extra.join("files/planted"), b"x").unwrap();
    failed_with(
        &kitsulan(&["admin", "restore", &extra.display().to_string()], &work.path().join("t2")).await,
        "does not list",
    );
    let partial = work.path().join("partial");
    copy_dir(&dest2, &partial);
    std::fs::remove_file(partial.join("manifest.json")).unwrap();
    failed_with(
        &kitsulan(&["admin", "restore", &partial.display().to_string()], &work.path().join("t3")).await,
        "manifest.json",
    );
    let future = work.path().join("future");
    copy_dir(&dest2, &future);
    let text = std::fs::read_to_string(future.join("manifest.json")).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    manifest["database"]["schema_version"] = serde_json::json!(9999);
    std::fs::write(future.join("manifest.json"), serde_json::to_string(&manifest).unwrap()).unwrap();
    failed_with(
        &kitsulan(&["admin", "restore", &future.display().to_string()], &work.path().join("t4")).await,
        "newer than this kitsulan knows",
    );
    for dir in ["t2", "t3", "t4"] {
        assert!(!work.path().join(dir).exists(), "{dir}: a refused restore made the data dir");
    }

    // --force over a non-empty dir with a good backup: replaced, and it says what it replaced.
    let output =
        kitsulan(&["admin", "restore", "--force", &dest2.display().to_string()], &target).await.ok().unwrap();
    assert!(output.stdout.contains("replacing keep-me"), "{}", output.stdout);
    assert!(!target.join("keep-me").exists());
    assert!(target.join("kitsulan.db").is_file() && target.join("totp-key").is_file());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[tokio::test]
async fn backup_refuses_postgres_and_bad_destinations() {
    let work = tempfile::tempdir().unwrap();
    let server = start(Database::FreshPostgres).await;
    let dest = work.path().join("pg");
    let output = server.admin(&["backup", &dest.display().to_string()]).await.unwrap();
    failed_with(&output, "pg_dump");
    assert!(!dest.exists());
    // --files-only: the keys, no database.
    let output =
        server.admin(&["backup", "--files-only", &dest.display().to_string()]).await.unwrap().ok().unwrap();
    assert!(output.stdout.contains("pg_dump"), "{}", output.stdout);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest["database"].is_null());
    assert!(manifest["files"].as_array().unwrap().iter().any(|f| f["path"] == "files/totp-key"));
    // Such a backup does not make a Lite server: restore says what to do.
    failed_with(
        &kitsulan(&["admin", "restore", &dest.display().to_string()], &work.path().join("lite")).await,
        "pg_restore",
    );

    // On SQLite: a destination that is not empty, or inside the data dir.
    let lite = start_with(Options::new(Database::Sqlite)).await;
    let full = work.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("something"), b"x").unwrap();
    failed_with(&lite.admin(&["backup", &full.display().to_string()]).await.unwrap(), "is not empty");
    let inside = lite.data_dir().join("backups/today");
    failed_with(
        &lite.admin(&["backup", &inside.display().to_string()]).await.unwrap(),
        "inside the data dir",
    );
    assert!(!inside.exists());
}
