//! Attachments (docs/attachments.md), tested from outside against the real `kitsulan` binary,
//! on both blob stores: the Lite disk store (files in the data dir behind HMAC-signed URLs the
//! binary serves) on SQLite, and a real S3 server (s3s-fs, presigned URLs) on PostgreSQL.
//!
//! Alice's device encrypts a file with kitsulan-crypto's `AttachmentEncryptor`, streams the
//! ciphertext to the upload URL and sends the key inside an E2EE message; Bob's device decrypts
//! the message, downloads, checks the hash, decrypts and gets the original; Alice's device hears
//! that Bob downloaded it. Around that: the per-file limit and the quota, an oversized upload,
//! expired and tampered URLs, a non-member, TTL expiry and orphan clean-up (blob gone from the
//! disk or the bucket, row gone), a 200 MB file with the server's peak RSS reported, and the
//! plaintext scan of the database and the blob storage.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kitsulan_client::assert_refused;
use kitsulan_client::attachments::{
    BlobServer, FileSource, Store, blob_url, download_decrypt, files_named, get_status, memory_kib, put,
    put_bytes, upload_encrypted,
};
use kitsulan_client::content::{self, FileContent};
use kitsulan_client::e2ee::E2eeDevice;
use kitsulan_client::gateway::LiveInbox;
use kitsulan_client::people::person;
use kitsulan_client::scan::scan_for_plaintexts_with;
use kitsulan_crypto::attachment::AttachmentSecrets;
use kitsulan_proto::v1::event::Body;
use kitsulan_proto::v1::{AttachmentChange, BlobRequest, Event};

/// How long a live event or a sweep may take.
const WAIT: Duration = Duration::from_secs(15);
const MIB: u64 = 1024 * 1024;
const BUCKET: &str = "kitsulan-attachments";

async fn direct(alice: &E2eeDevice, bob: &E2eeDevice) -> String {
    let opened = alice.client.open_direct(bob.account_id()).await.unwrap();
    let id = opened.conversation.unwrap().id;
    // Bob accepts Alice's request, as a person would before they talk.
    bob.client.accept_request(&id).await.unwrap();
    id
}

async fn gateway(setup: &BlobServer, device: &E2eeDevice) -> LiveInbox {
    let mut inbox = LiveInbox::new();
    inbox.connect(&setup.url(), device.client.access_token(), false).await.unwrap();
    inbox.sync(WAIT).await.unwrap();
    inbox
}

fn attachment_event(event: &Event, id: &str, change: AttachmentChange) -> bool {
    matches!(&event.body, Some(Body::Attachment(a)) if a.attachment_id == id && a.change() == change)
}

/// An uploaded attachment: its id and the secrets the sender keeps for the message.
struct Sent {
    id: String,
    secrets: AttachmentSecrets,
}

/// Alice's app: reserve, encrypt and stream, complete.
async fn upload(
    setup: &BlobServer,
    alice: &E2eeDevice,
    conversation: &str,
    file: &FileSource,
    len: u64,
    ttl: u32,
) -> Sent {
    let created = alice.client.create_upload(conversation, len, ttl).await.unwrap();
    let (attachment, request) = (created.attachment.unwrap(), created.upload.unwrap());
    assert_eq!((attachment.size, attachment.uploaded_at_ms, request.method.as_str()), (len, 0, "PUT"));
    let uploaded = upload_encrypted(&setup.url(), &request, file.clone()).await.unwrap();
    assert_eq!(uploaded.status, 200, "PUT of the ciphertext");
    let done = alice.client.complete_upload(&attachment.id).await.unwrap();
    assert!(done.uploaded_at_ms > 0, "{done:?}");
    Sent { id: attachment.id, secrets: uploaded.secrets.unwrap() }
}

/// Alice's app: the message that carries the attachment, its key inside the E2EE content (a
/// typed FileContent, as the PWA writes it).
async fn send_with(alice: &mut E2eeDevice, conversation: &str, sent: &Sent) -> String {
    let file = FileContent {
        attachment_id: sent.id.clone(),
        secrets: sent.secrets.to_bytes().to_vec(),
        name: "holiday photos.bin".to_owned(),
        media_type: "application/octet-stream".to_owned(),
        ..FileContent::default()
    };
    let plaintext = content::file(file, "").unwrap();
    let encrypted = alice.prepare_message(conversation, &plaintext).await.unwrap();
    let mut request = encrypted.send_request("");
    request.attachment_ids = vec![sent.id.clone()];
    alice.client.send_message(request).await.unwrap().id
}

/// Bob's app: the newest message's attachment id and secrets, decrypted.
async fn received(bob: &mut E2eeDevice, conversation: &str) -> (String, AttachmentSecrets) {
    let history = bob.read_history(conversation).await.unwrap();
    let decoded = history.last().and_then(|e| e.decoded()).expect("a decrypted message").unwrap();
    let file = decoded.file().expect("a file message");
    assert_eq!(file.name, "holiday photos.bin");
    (file.attachment_id.clone(), AttachmentSecrets::from_bytes(&file.secrets).unwrap())
}

/// An older client's attachment message: the JSON of docs/attachments.md, no typed Content
/// (naming the attachment already sent, so without `attachment_ids`: an attachment goes with
/// one message only; reading it needs no more).
async fn send_legacy(alice: &mut E2eeDevice, conversation: &str, sent: &Sent) -> String {
    let json = format!(
        "{{\"attachment\":\"{}\",\"secrets\":\"{}\",\"name\":\"old.bin\"}}",
        sent.id,
        STANDARD.encode(&*sent.secrets.to_bytes())
    );
    let encrypted = alice.prepare_message(conversation, json.as_bytes()).await.unwrap();
    alice.client.send_message(encrypted.send_request("")).await.unwrap().id
}

/// The same URL with one character of the signature changed.
fn tamper_signature(url: &str) -> String {
    let at = ["sig=", "X-Amz-Signature="].iter().find_map(|p| url.find(p).map(|i| i + p.len())).unwrap();
    let mut bytes = url.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------

async fn round_trip(store: Store) {
    let setup = BlobServer::start(
        store,
        BUCKET,
        &[
            ("KITSULAN_ATTACHMENT_URL_TTL_SECONDS", "5"),
            ("KITSULAN_ATTACHMENT_DOWNLOAD_URL_TTL_SECONDS", "5"),
        ],
    )
    .await;
    let url = setup.url();
    let mut alice = person(&setup.server, "alice").await;
    let mut bob = person(&setup.server, "bob").await;
    let carol = person(&setup.server, "carol").await;
    let conversation = direct(&alice, &bob).await;
    let mut alice_live = gateway(&setup, &alice).await;

    let len = 3 * MIB + 123;
    let file = FileSource::new(7, len);
    let created = alice.client.create_upload(&conversation, len, 0).await.unwrap();
    let (pending, request) = (created.attachment.unwrap(), created.upload.unwrap());
    assert_refused(alice.client.complete_upload(&pending.id).await, "UPLOAD_INCOMPLETE");
    assert_refused(bob.client.download_url(&pending.id).await, "ATTACHMENT_NOT_UPLOADED");
    let uploaded = upload_encrypted(&url, &request, file.clone()).await.unwrap();
    assert_eq!(uploaded.status, 200);
    if store == Store::Disk {
        // An acknowledged blob is never replaced: 409 (or the connection is closed while the
        // body is still being sent); Bob's hash check below shows the blob is Alice's.
        let replaced = put_bytes(&url, &request, vec![0; len as usize]).await;
        assert!(matches!(replaced, Ok(409) | Err(_)), "{replaced:?}");
    }
    alice.client.complete_upload(&pending.id).await.unwrap();
    let sent = Sent { id: pending.id.clone(), secrets: uploaded.secrets.unwrap() };
    // Bob cannot send Alice's attachment as his.
    let mut theft = bob.prepare_message(&conversation, b"mine now").await.unwrap().send_request("");
    theft.attachment_ids = vec![sent.id.clone()];
    assert_refused(bob.client.send_message(theft).await, "ATTACHMENT_NOT_LINKABLE");
    send_with(&mut alice, &conversation, &sent).await;

    // Bob's device: decrypt the message, download, check the hash, decrypt the file.
    let (id, secrets) = received(&mut bob, &conversation).await;
    assert_eq!(id, sent.id);
    // What an older client sent still reads as the same file; a text that looks like that
    // JSON, sent as a typed text, is text (and names no attachment).
    let legacy = send_legacy(&mut alice, &conversation, &sent).await;
    let json = format!("{{\"attachment\":\"{}\",\"secrets\":\"AQ==\"}}", sent.id);
    let looks_like =
        alice.send_to_conversation(&conversation, &content::text(&json, &legacy).unwrap()).await.unwrap();
    let history = bob.read_history(&conversation).await.unwrap();
    let [.., old, text] = history.as_slice() else { panic!("two more messages") };
    let old = old.decoded().unwrap().unwrap();
    assert_eq!(
        (old.file().unwrap().attachment_id.as_str(), old.reply_to.as_deref()),
        (sent.id.as_str(), None)
    );
    assert_eq!(old.file().unwrap().secrets, sent.secrets.to_bytes().to_vec());
    assert_eq!(text.message.id, looks_like.message.id);
    let text = text.decoded().unwrap().unwrap();
    assert_eq!((text.text(), text.reply_to.as_deref()), (Some(json.as_str()), Some(legacy.as_str())));
    // An edit names the message it edits: put on another message it is refused there.
    let text_id = looks_like.message.id.clone();
    let (_, moved) = alice
        .edit_in_conversation(&conversation, &text_id, &content::edit(&legacy, "moved").unwrap())
        .await
        .unwrap();
    moved.unwrap();
    let history = bob.read_history(&conversation).await.unwrap();
    let edited = history.iter().find(|e| e.message.id == text_id).unwrap();
    assert_eq!(edited.decoded().unwrap(), Err(content::ContentError::EditForAnotherMessage));
    let (_, fixed) = alice
        .edit_in_conversation(&conversation, &text_id, &content::edit(&text_id, "fixed").unwrap())
        .await
        .unwrap();
    fixed.unwrap();
    let history = bob.read_history(&conversation).await.unwrap();
    assert_eq!(history.iter().find(|e| e.message.id == text_id).unwrap().text().as_deref(), Some("fixed"));
    let download = bob.client.download_url(&id).await.unwrap().download.unwrap();
    assert_eq!(download.method, "GET");
    let got = download_decrypt(&blob_url(&url, &download), &secrets).await.unwrap();
    assert_eq!((got.len, got.plaintext_sha256), (len, file.clone().sha256()), "Bob got Alice's file");
    bob.client.report_downloaded(&id).await.unwrap();
    let event = alice_live
        .wait_event(WAIT, "Bob's download report", |e| attachment_event(e, &id, AttachmentChange::Downloaded))
        .await
        .unwrap();
    let Some(Body::Attachment(report)) = event.body else { unreachable!() };
    assert_eq!(
        (report.account_id.as_str(), report.conversation_id.as_str()),
        (bob.account_id(), conversation.as_str())
    );
    let downloads = alice.client.list_downloads(&id).await.unwrap();
    assert_eq!(downloads.iter().map(|d| d.account_id.clone()).collect::<Vec<_>>(), [bob.account_id()]);
    assert_refused(bob.client.list_downloads(&id).await, "NOT_ALLOWED");
    assert_refused(bob.client.delete_attachment(&id).await, "NOT_ALLOWED");

    // Carol is not a member: she learns nothing and can put nothing there.
    assert_refused(carol.client.download_url(&id).await, "ATTACHMENT_NOT_FOUND");
    assert_refused(carol.client.report_downloaded(&id).await, "ATTACHMENT_NOT_FOUND");
    assert_refused(carol.client.list_downloads(&id).await, "ATTACHMENT_NOT_FOUND");
    assert_refused(carol.client.create_upload(&conversation, 10, 0).await, "CONVERSATION_NOT_FOUND");

    // Tampered URLs are refused by whoever serves them (our binary or S3).
    let good = blob_url(&url, &download);
    assert_eq!(get_status(&tamper_signature(&good)).await.unwrap(), 403, "tampered signature");
    let other = alice.client.create_upload(&conversation, 10, 0).await.unwrap().attachment.unwrap();
    let elsewhere = good.replace(&id, &other.id);
    assert_eq!(get_status(&elsewhere).await.unwrap(), 403, "the signature of another blob");
    let longer = match store {
        Store::Disk => {
            let expires = good.split(['?', '&']).find_map(|kv| kv.strip_prefix("expires=")).unwrap();
            good.replace(
                &format!("expires={expires}"),
                &format!("expires={}", expires.parse::<i64>().unwrap() + 3600),
            )
        }
        Store::S3 => good.replace("X-Amz-Expires=5", "X-Amz-Expires=3600"),
    };
    assert_ne!(longer, good);
    assert_eq!(get_status(&longer).await.unwrap(), 403, "an extended expiry");
    // An expired URL is refused (the attachment itself is fine: a new URL works).
    let wait = u64::try_from(download.expires_at_ms - now_ms()).unwrap_or(0) + 1500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(get_status(&good).await.unwrap(), 403, "an expired URL");
    let fresh = bob.client.download_url(&id).await.unwrap().download.unwrap();
    assert_eq!(get_status(&blob_url(&url, &fresh)).await.unwrap(), 200);

    // Neither the file nor its key is anywhere on the server or in the bucket.
    let plain = FileSource::new(7, 2 * MIB).collect();
    let key = secrets.to_bytes();
    let needles: [&[u8]; 4] =
        [&plain[..64], &plain[MIB as usize..MIB as usize + 64], &plain[2 * MIB as usize - 64..], &key];
    let extra = setup.s3.as_ref().map(|s3| s3.dir().to_owned());
    let extra: Vec<&std::path::Path> = extra.iter().map(PathBuf::as_path).collect();
    let findings = scan_for_plaintexts_with(&setup.server, &extra, &needles).await.unwrap();
    assert!(findings.is_empty(), "plaintext or key found: {findings:?}");
    assert!(
        !files_named(&setup.blob_dir(), &id).is_empty(),
        "the scan covered the blob ({:?})",
        setup.blob_dir()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_encrypted_file_goes_from_alice_to_bob_on_disk() {
    round_trip(Store::Disk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_encrypted_file_goes_from_alice_to_bob_through_s3() {
    round_trip(Store::S3).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---------------------------------------------------------------------------------------------

async fn limits(store: Store) {
    let setup = BlobServer::start(
        store,
        BUCKET,
        &[("KITSULAN_ATTACHMENT_MAX_BYTES", "1048576"), ("KITSULAN_ATTACHMENT_QUOTA_BYTES", "3145728")],
    )
    .await;
    let url = setup.url();
    let alice = person(&setup.server, "alice").await;
    let bob = person(&setup.server, "bob").await;
    let conversation = direct(&alice, &bob).await;

    assert_refused(alice.client.create_upload(&conversation, 0, 0).await, "SIZE_INVALID");
    assert_refused(alice.client.create_upload(&conversation, MIB + 1, 0).await, "ATTACHMENT_TOO_LARGE");
    assert_refused(alice.client.create_upload(&conversation, 10, 31 * 86_400).await, "TTL_INVALID");
    let mut reserved = Vec::new();
    for _ in 0..3 {
        reserved
            .push(alice.client.create_upload(&conversation, MIB, 0).await.unwrap().attachment.unwrap().id);
    }
    assert_refused(alice.client.create_upload(&conversation, 1, 0).await, "QUOTA_EXCEEDED");
    // The quota is Alice's: Bob still has his.
    bob.client.create_upload(&conversation, MIB, 0).await.unwrap();
    // Deleting gives the quota back.
    alice.client.delete_attachment(&reserved[0]).await.unwrap();
    assert_refused(alice.client.complete_upload(&reserved[0]).await, "ATTACHMENT_NOT_FOUND");
    let small = alice.client.create_upload(&conversation, 1000, 0).await.unwrap();
    let (attachment, request) = (small.attachment.unwrap(), small.upload.unwrap());

    // More bytes than declared never become a blob.
    let status = put_bytes(&url, &request, vec![1; 1001]).await.unwrap();
    match store {
        Store::Disk => assert_eq!(status, 413, "declared too long"),
        Store::S3 => {
            assert!((400..500).contains(&status), "S3 took 1001 bytes for a 1000-byte URL: {status}")
        }
    }
    if store == Store::Disk {
        // Without a length, the stream is cut at the signed size.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1; 600]), Ok(vec![2; 600])];
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let response = reqwest::Client::new().put(blob_url(&url, &request)).body(body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 413, "streamed past the signed size");
        assert_eq!(put_bytes(&url, &request, vec![1; 999]).await.unwrap(), 400, "short");
        let unsigned = BlobRequest { url: request.url.replace("size=1000", "size=2000"), ..request.clone() };
        assert_eq!(
            put_bytes(&url, &unsigned, vec![1; 2000]).await.unwrap(),
            403,
            "a size the URL is not signed for"
        );
    }
    assert!(files_named(&setup.blob_dir(), &attachment.id).is_empty(), "nothing stored");
    assert_refused(alice.client.complete_upload(&attachment.id).await, "UPLOAD_INCOMPLETE");
    // The right size goes through.
    let body = reqwest::Body::from(vec![3u8; 1000]);
    assert_eq!(put(&url, &request, body).await.unwrap(), 200);
    alice.client.complete_upload(&attachment.id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sizes_and_quotas_are_enforced_on_disk() {
    limits(Store::Disk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sizes_and_quotas_are_enforced_with_s3() {
    limits(Store::S3).await;
}

// ---------------------------------------------------------------------------------------------

async fn expiry(store: Store) {
    let setup = BlobServer::start(
        store,
        BUCKET,
        &[("KITSULAN_ATTACHMENT_SWEEP_SECONDS", "1"), ("KITSULAN_ATTACHMENT_ORPHAN_GRACE_SECONDS", "4")],
    )
    .await;
    let url = setup.url();
    let mut alice = person(&setup.server, "alice").await;
    let bob = person(&setup.server, "bob").await;
    let conversation = direct(&alice, &bob).await;
    let mut bob_live = gateway(&setup, &bob).await;
    let file = FileSource::new(11, 100_000);

    let with_ttl = upload(&setup, &alice, &conversation, &file, 100_000, 6).await;
    let old_url = blob_url(&url, &bob.client.download_url(&with_ttl.id).await.unwrap().download.unwrap());
    send_with(&mut alice, &conversation, &with_ttl).await;
    let kept = upload(&setup, &alice, &conversation, &file, 100_000, 0).await;
    send_with(&mut alice, &conversation, &kept).await;
    let unsent = upload(&setup, &alice, &conversation, &file, 100_000, 0).await;
    let of_deleted = upload(&setup, &alice, &conversation, &file, 100_000, 0).await;
    let deleted_message = send_with(&mut alice, &conversation, &of_deleted).await;
    for sent in [&with_ttl, &kept, &unsent, &of_deleted] {
        assert!(!files_named(&setup.blob_dir(), &sent.id).is_empty(), "{} is stored", sent.id);
    }
    alice.client.delete_message(&conversation, &deleted_message).await.unwrap();

    // Both members hear that the TTL'd one and the deleted message's one are gone (in either
    // order: the deleted message's is due at once).
    let mut heard = std::collections::HashSet::new();
    while heard.len() < 2 {
        let event = bob_live
            .wait_event(WAIT, "an expired attachment", |e| {
                [&with_ttl, &of_deleted].iter().any(|g| attachment_event(e, &g.id, AttachmentChange::Expired))
            })
            .await
            .unwrap();
        let Some(Body::Attachment(a)) = event.body else { unreachable!() };
        heard.insert(a.attachment_id);
    }
    for gone in [&with_ttl, &of_deleted] {
        assert!(files_named(&setup.blob_dir(), &gone.id).is_empty(), "blob of {} deleted", gone.id);
        // The row is gone too: not "expired" any more, but unknown.
        assert_refused(bob.client.download_url(&gone.id).await, "ATTACHMENT_NOT_FOUND");
    }
    assert_eq!(get_status(&old_url).await.unwrap(), 404, "the blob is gone from the {store:?} store");
    // The unsent one goes after the grace period.
    wait_until("the unsent attachment deleted", async || {
        files_named(&setup.blob_dir(), &unsent.id).is_empty()
    })
    .await;
    wait_until("its row deleted", async || alice.client.complete_upload(&unsent.id).await.is_err()).await;
    assert_refused(alice.client.complete_upload(&unsent.id).await, "ATTACHMENT_NOT_FOUND");
    // The one without TTL in a live message stays, and still decrypts.
    let download = bob.client.download_url(&kept.id).await.unwrap().download.unwrap();
    let got = download_decrypt(&blob_url(&url, &download), &kept.secrets).await.unwrap();
    assert_eq!(got.plaintext_sha256, file.sha256());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_deleted_messages_and_orphans_are_cleaned_up_on_disk() {
    expiry(Store::Disk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttl_deleted_messages_and_orphans_are_cleaned_up_in_s3() {
    expiry(Store::S3).await;
}

// ---------------------------------------------------------------------------------------------

async fn big_file(store: Store) {
    let len: u64 = 200 * 1000 * 1000;
    let setup = BlobServer::start(
        store,
        BUCKET,
        &[("KITSULAN_ATTACHMENT_MAX_BYTES", "300000000"), ("KITSULAN_ATTACHMENT_QUOTA_BYTES", "1000000000")],
    )
    .await;
    let url = setup.url();
    let pid = setup.server.pid().unwrap();
    let alice = person(&setup.server, "alice").await;
    let bob = person(&setup.server, "bob").await;
    let conversation = direct(&alice, &bob).await;
    let (before, _) = memory_kib(pid).unwrap();
    let file = FileSource::new(200, len);
    let started = std::time::Instant::now();
    let sent = upload(&setup, &alice, &conversation, &file, len, 0).await;
    let uploaded = started.elapsed();
    let download = alice.client.download_url(&sent.id).await.unwrap().download.unwrap();
    let got = download_decrypt(&blob_url(&url, &download), &sent.secrets).await.unwrap();
    assert_eq!((got.len, got.plaintext_sha256), (len, file.sha256()));
    let (after, rss) = memory_kib(pid).unwrap();
    println!(
        "200 MB through the {store:?} store: upload {:.1} s, download {:.1} s; server peak RSS (VmHWM) \
         {:.1} MiB before, {:.1} MiB after (RSS now {:.1} MiB)",
        uploaded.as_secs_f64(),
        (started.elapsed() - uploaded).as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    assert!(after < 150 * 1024, "the server's peak RSS grew to {after} KiB moving 200 MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_200_mb_file_streams_with_flat_server_memory_on_disk() {
    big_file(Store::Disk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_200_mb_file_goes_through_s3_without_touching_the_server() {
    big_file(Store::S3).await;
}
