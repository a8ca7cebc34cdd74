//! `chat_peer`: Rust devices (the crypto crate natively, through [`kitsulan_client`]) that a
//! browser test drives, so one conversation holds a browser (the crate as WebAssembly) and Rust
//! clients at once (pwa/e2e/mixed.spec.ts).
//!
//! It reads one JSON command per line on stdin and answers each with one JSON line on stdout:
//! `{"ok": {...}}` or `{"error": "..."}`. Every command names the device it acts as (`as`, a
//! name the test chose when it made it). Commands:
//!
//! | cmd | fields | answer |
//! |---|---|---|
//! | `sign_up` | `as`, `url`, `username`, `password` | `account_id`, `device_id` |
//! | `add_device` | `as` (new name), `of` (an existing device's name), `password` | `device_id` (the person's next device, holding the same account key) |
//! | `accept` | `as`, `conversation_id` | `{}` (accepts a request to join, if there is one) |
//! | `conversations` | `as` | `conversations`: `[{id, title}]` |
//! | `send` | `as`, `conversation_id`, `text` | `message_id` (a typed Content text) |
//! | `edit` | `as`, `conversation_id`, `message_id`, `text` | `{}` (an Edit bound to `message_id`) |
//! | `react` | `as`, `conversation_id`, `message_id`, `emoji` | `message_id` (a Reaction) |
//! | `send_file` | `as`, `conversation_id`, `name`, `size` | `message_id`, `sha256` (hex of the plaintext: bytes made from a seed, encrypted and streamed up, the key in a FileContent) |
//! | `download` | `as`, `conversation_id`, `message_id` | `name`, `size`, `sha256` (the file of that message, downloaded, its ciphertext hash checked, decrypted) |
//! | `read_as` | `as`, `via` (another device), `conversation_id`, `message_id` | `text` or `undecryptable`: the message as `via` listed it, decrypted by `as` (a removed member trying the ciphertext) |
//! | `history` | `as`, `conversation_id` | `messages`: `[{id, sender_account_id, sender_device_id, session_id, edited, text?, file?: {name, size}, reaction?: {message_id, emoji, remove}, unsupported?, undecryptable?, system?, deleted?}]`, `undecryptable_count` |
//! | `undecryptable` | `as` | `count`, `reasons`: `[[message_id, why]]` (the messages this device could not decrypt, and has not since: `E2eeDevice::undecryptable`) |
//!
//! Stderr carries errors' detail; the process ends at the end of stdin.

use std::collections::HashMap;

use anyhow::{Context as _, anyhow};
use kitsulan_client::attachments::{FileSource, blob_url, download_decrypt, upload_encrypted};
use kitsulan_client::content::{self, Body, FileContent};
use kitsulan_client::conversations::{Content, HistoryEntry};
use kitsulan_client::e2ee::E2eeDevice;
use kitsulan_crypto::attachment::AttachmentSecrets;
use kitsulan_proto::v1::HistoryDirection;
use serde_json::{Value, json};
use std::io::{BufRead as _, Write as _};

/// One-time keys each device uploads.
const ONE_TIME_KEYS: usize = 20;

struct Peer {
    devices: HashMap<String, Device>,
}

struct Device {
    url: String,
    username: String,
    device: E2eeDevice,
}

fn field<'a>(command: &'a Value, name: &str) -> anyhow::Result<&'a str> {
    command.get(name).and_then(Value::as_str).ok_or_else(|| anyhow!("missing string field {name:?}"))
}

impl Peer {
    fn device(&mut self, command: &Value) -> anyhow::Result<&mut Device> {
        let name = field(command, "as")?;
        self.devices.get_mut(name).ok_or_else(|| anyhow!("no device named {name:?}"))
    }

    async fn run(&mut self, command: &Value) -> anyhow::Result<Value> {
        match field(command, "cmd")? {
            "sign_up" => {
                let url = field(command, "url")?;
                let username = field(command, "username")?;
                let device = E2eeDevice::sign_up(
                    url,
                    username,
                    field(command, "password")?,
                    "chat_peer",
                    ONE_TIME_KEYS,
                )
                .await?;
                let answer = json!({ "account_id": device.account_id(), "device_id": device.device_id() });
                let device = Device { url: url.to_owned(), username: username.to_owned(), device };
                self.devices.insert(field(command, "as")?.to_owned(), device);
                Ok(answer)
            }
            "add_device" => {
                let of = field(command, "of")?;
                let existing = self.devices.get(of).ok_or_else(|| anyhow!("no device named {of:?}"))?;
                let (url, username) = (existing.url.clone(), existing.username.clone());
                let key = existing.device.account_key_copy();
                let device = E2eeDevice::sign_in(
                    &url,
                    &username,
                    field(command, "password")?,
                    "chat_peer 2",
                    key,
                    ONE_TIME_KEYS,
                )
                .await?;
                let answer = json!({ "device_id": device.device_id() });
                self.devices.insert(field(command, "as")?.to_owned(), Device { url, username, device });
                Ok(answer)
            }
            "accept" => {
                let conversation_id = field(command, "conversation_id")?.to_owned();
                self.device(command)?.device.client.accept_if_request(&conversation_id).await?;
                Ok(json!({}))
            }
            "conversations" => {
                let list = self.device(command)?.device.client.list_conversations().await?;
                let list: Vec<Value> = list.iter().map(|c| json!({ "id": c.id, "title": c.title })).collect();
                Ok(json!({ "conversations": list }))
            }
            "send" => {
                let conversation_id = field(command, "conversation_id")?.to_owned();
                let text = field(command, "text")?.to_owned();
                let device = &mut self.device(command)?.device;
                device.receive().await?;
                let plaintext = content::text(&text, "").map_err(|e| anyhow!("{e}"))?;
                let posted = device.send_to_conversation(&conversation_id, &plaintext).await?;
                Ok(json!({ "message_id": posted.message.id }))
            }
            "react" => {
                let conversation_id = field(command, "conversation_id")?.to_owned();
                let plaintext =
                    content::reaction(field(command, "message_id")?, field(command, "emoji")?, false)
                        .map_err(|e| anyhow!("{e}"))?;
                let device = &mut self.device(command)?.device;
                device.receive().await?;
                let posted = device.send_to_conversation(&conversation_id, &plaintext).await?;
                Ok(json!({ "message_id": posted.message.id }))
            }
            "send_file" => {
                let conversation_id = field(command, "conversation_id")?.to_owned();
                let name = field(command, "name")?.to_owned();
                let size =
                    command.get("size").and_then(Value::as_u64).ok_or_else(|| anyhow!("missing size"))?;
                let Device { url, device, .. } = self.device(command)?;
                let source = FileSource::new(size, size);
                let sha256 = hex(&source.clone().sha256());
                let created = device.client.create_upload(&conversation_id, size, 0).await?;
                let attachment = created.attachment.context("CreateUpload gave no attachment")?;
                let request = created.upload.context("CreateUpload gave no upload")?;
                let uploaded = upload_encrypted(url, &request, source).await?;
                anyhow::ensure!(uploaded.status == 200, "PUT of the ciphertext: HTTP {}", uploaded.status);
                device.client.complete_upload(&attachment.id).await?;
                let secrets = uploaded.secrets.context("no secrets")?;
                let file = FileContent {
                    attachment_id: attachment.id.clone(),
                    secrets: secrets.to_bytes().to_vec(),
                    name,
                    media_type: "application/octet-stream".to_owned(),
                    size,
                    ..FileContent::default()
                };
                device.receive().await?;
                device.refresh_conversation(&conversation_id).await?;
                let plaintext = content::file(file, "").map_err(|e| anyhow!("{e}"))?;
                let encrypted = device.prepare_message(&conversation_id, &plaintext).await?;
                let mut request = encrypted.send_request("");
                request.attachment_ids = vec![attachment.id];
                let message = device.client.send_message(request).await?;
                Ok(json!({ "message_id": message.id, "sha256": sha256 }))
            }
            "download" => {
                let conversation_id = field(command, "conversation_id")?.to_owned();
                let message_id = field(command, "message_id")?.to_owned();
                let Device { url, device, .. } = self.device(command)?;
                let history = device.read_history(&conversation_id).await?;
                let entry = history.iter().find(|e| e.message.id == message_id).context("no such message")?;
                let decoded = entry.decoded().context("not decrypted")?.map_err(|e| anyhow!("{e}"))?;
                let file = decoded.file().context("not a file message")?;
                let secrets = AttachmentSecrets::from_bytes(&file.secrets).map_err(|e| anyhow!("{e}"))?;
                let download = device.client.download_url(&file.attachment_id).await?.download;
                let got =
                    download_decrypt(&blob_url(url, &download.context("no download")?), &secrets).await?;
                Ok(json!({ "name": file.name, "size": got.len, "sha256": hex(&got.plaintext_sha256) }))
            }
            "edit" => {
                let conversation_id = field(command, "conversation_id")?.to_owned();
                let message_id = field(command, "message_id")?.to_owned();
                let text = field(command, "text")?.to_owned();
                let device = &mut self.device(command)?.device;
                let (_, result) =
                    device.edit_in_conversation(&conversation_id, &message_id, text.as_bytes()).await?;
                result.context("EditMessage")?;
                Ok(json!({}))
            }
            "read_as" => {
                let conversation_id = field(command, "conversation_id")?.to_owned();
                let message_id = field(command, "message_id")?;
                let via = field(command, "via")?;
                let via = self.devices.get(via).ok_or_else(|| anyhow!("no device named {via:?}"))?;
                let messages =
                    via.device.client.all_messages(&conversation_id, HistoryDirection::Forward, 100).await?;
                let message = messages
                    .into_iter()
                    .find(|m| m.id == message_id)
                    .ok_or_else(|| anyhow!("no message {message_id}"))?;
                let device = &mut self.device(command)?.device;
                device.receive().await?;
                Ok(match device.decrypt_message(&message) {
                    Content::Text(bytes) => json!({ "text": String::from_utf8_lossy(&bytes) }),
                    Content::Undecryptable(why) => json!({ "undecryptable": why }),
                    other => json!({ "other": format!("{other:?}") }),
                })
            }
            "history" => {
                let conversation_id = field(command, "conversation_id")?.to_owned();
                let device = &mut self.device(command)?.device;
                let history = device.read_history(&conversation_id).await?;
                let messages: Vec<Value> = history.iter().map(entry_json).collect();
                Ok(json!({ "messages": messages, "undecryptable_count": device.undecryptable() }))
            }
            "undecryptable" => {
                let device = &self.device(command)?.device;
                Ok(json!({ "count": device.undecryptable(), "reasons": device.undecryptable_reasons() }))
            }
            other => Err(anyhow!("unknown command {other:?}")),
        }
    }
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One message of a history as the test reads it.
fn entry_json(entry: &HistoryEntry) -> Value {
    let m = &entry.message;
    let mut v = json!({
        "id": m.id,
        "sender_account_id": m.sender_account_id,
        "sender_device_id": m.sender_device_id,
        "session_id": String::from_utf8_lossy(&m.session_id),
        "edited": m.edited_at_ms != 0,
    });
    match &entry.content {
        Content::Text(_) => match entry.decoded() {
            Some(Ok(decoded)) => match decoded.body {
                Body::Text { text, .. } => v["text"] = json!(text),
                Body::File(file) => v["file"] = json!({ "name": file.name, "size": file.size }),
                Body::Reaction { message_id, emoji, remove } => {
                    v["reaction"] = json!({ "message_id": message_id, "emoji": emoji, "remove": remove });
                }
                Body::Deletion { message_id } => v["deletion"] = json!(message_id),
                Body::Unsupported => v["unsupported"] = json!(true),
            },
            Some(Err(e)) => v["undecryptable"] = json!(e.to_string()),
            None => v["undecryptable"] = json!("not decrypted"),
        },
        Content::Undecryptable(why) => v["undecryptable"] = json!(why),
        Content::Deleted => v["deleted"] = json!(true),
        Content::System(event) => v["system"] = json!(event.kind),
    }
    v
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Lines come from a plain thread (blocking stdin), one command at a time.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut peer = Peer { devices: HashMap::new() };
    let mut stdout = std::io::stdout();
    while let Some(line) = rx.recv().await {
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(command) => match peer.run(&command).await {
                Ok(ok) => json!({ "ok": ok }),
                Err(e) => {
                    eprintln!("chat_peer: {line}: {e:#}");
                    json!({ "error": format!("{e:#}") })
                }
            },
            Err(e) => json!({ "error": format!("not JSON: {e}") }),
        };
        writeln!(stdout, "{answer}")?;
        stdout.flush()?;
    }
    Ok(())
}
