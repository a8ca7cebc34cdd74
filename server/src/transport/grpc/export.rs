//! The JSON document of `AccountService.ExportAccount`, written piece by piece as the service
//! hands over the parts (docs/admin.md, "Deleting accounts and exports", shows its shape).

use kitsulan_content::content::Body;
use prost::Message as _;
use serde_json::{Value, json};

use crate::services::account_data::ExportPart;
use crate::store::{ConversationKind, MessageRecord, Role, now_ms};

/// Writes the document: `{"format", "exported_at_ms", "account", "devices", "guilds",
/// "conversations": [{…, "members", "messages": […]}]}`.
#[derive(Default)]
pub struct ExportWriter {
    /// A conversation's `messages` array is open.
    conversation_open: bool,
    /// How many conversations were written.
    conversations: usize,
    /// Messages written in the open conversation.
    messages: usize,
}

fn role(r: Role) -> &'static str {
    r.as_str()
}

fn message(m: &MessageRecord) -> Value {
    let mut fields = serde_json::Map::new();
    fields.insert("id".into(), m.id.to_string().into());
    fields.insert("seq".into(), m.seq.into());
    fields.insert("sender_account_id".into(), m.sender_account_id.to_string().into());
    fields.insert("sent_at_ms".into(), m.sent_at_ms.into());
    if m.edited_at_ms != 0 {
        fields.insert("edited_at_ms".into(), m.edited_at_ms.into());
    }
    if m.deleted_at_ms != 0 {
        fields.insert("deleted_at_ms".into(), m.deleted_at_ms.into());
    }
    if let Some(reply) = m.reply_to {
        fields.insert("reply_to".into(), reply.to_string().into());
    }
    if let Some(system) = &m.system {
        fields.insert("system".into(), system.kind().into());
    }
    if let Some(content) = m.content.as_deref().and_then(|b| kitsulan_content::Content::decode(b).ok()) {
        match content.body {
            Some(Body::Text(t)) => {
                fields.insert("text".into(), t.body.into());
                if !t.mentions.is_empty() {
                    let ids: Vec<String> = t.mentions.into_iter().map(|m| m.account_id).collect();
                    fields.insert("mentions".into(), ids.into());
                }
            }
            Some(Body::File(f)) => {
                fields.insert(
                    "file".into(),
                    json!({ "name": f.name, "media_type": f.media_type, "size": f.size }),
                );
            }
            _ => {}
        }
        if let Some(quote) = content.reply.map(|r| r.quote).filter(|q| !q.is_empty()) {
            fields.insert("quote".into(), quote.into());
        }
        if let Some(forwarded) = content.forwarded {
            fields.insert(
                "forwarded".into(),
                json!({ "from_account_id": forwarded.from_account_id, "sent_at_ms": forwarded.sent_at_ms }),
            );
        }
    }
    if !m.reactions.is_empty() {
        let reactions: Vec<Value> =
            m.reactions.iter().map(|g| json!({ "emoji": g.emoji, "count": g.count })).collect();
        fields.insert("reactions".into(), reactions.into());
    }
    if m.pinned_at_ms != 0 {
        fields.insert("pinned_at_ms".into(), m.pinned_at_ms.into());
    }
    Value::Object(fields)
}

impl ExportWriter {
    /// The text for one part.
    pub fn write(&mut self, part: ExportPart) -> String {
        match part {
            ExportPart::Account(a) => {
                let account = json!({
                    "id": a.id.to_string(),
                    "username": a.username,
                    "display_name": a.display_name,
                    "email": a.email,
                    "email_verified": a.email_verified,
                    "totp_enabled": a.totp_secret.is_some(),
                    "created_at_ms": a.created_at_ms,
                });
                format!(
                    "{{\"format\":\"kitsulan-export/1\",\"exported_at_ms\":{},\"account\":{account}",
                    now_ms()
                )
            }
            ExportPart::Devices(devices) => {
                let devices: Vec<Value> = devices
                    .into_iter()
                    .map(|d| {
                        json!({
                            "id": d.id.to_string(),
                            "name": d.name,
                            "created_at_ms": d.created_at_ms,
                            "last_seen_at_ms": d.last_seen_at_ms,
                        })
                    })
                    .collect();
                format!(",\"devices\":{}", Value::from(devices))
            }
            ExportPart::Guilds(guilds) => {
                let guilds: Vec<Value> = guilds
                    .into_iter()
                    .map(|g| {
                        json!({
                            "id": g.guild.id.to_string(),
                            "name": g.guild.name,
                            "description": g.guild.description,
                            "owner": g.guild.owner.to_string(),
                            "joined_at_ms": g.joined_at_ms,
                            "roles": g.roles,
                        })
                    })
                    .collect();
                format!(",\"guilds\":{},\"conversations\":[", Value::from(guilds))
            }
            ExportPart::Conversation(c, members) => {
                let mut text = self.close_conversation();
                if self.conversations > 0 {
                    text.push(',');
                }
                let members: Vec<Value> = members
                    .into_iter()
                    .map(|m| json!({ "account_id": m.account_id.to_string(), "role": role(m.role), "joined_at_ms": m.joined_at_ms }))
                    .collect();
                let head = json!({
                    "id": c.id.to_string(),
                    "kind": match c.kind {
                        ConversationKind::Direct => "direct",
                        ConversationKind::Group => "group",
                        ConversationKind::Channel => "channel",
                    },
                    "mode": if c.e2ee { "e2ee" } else { "cloud" },
                    "title": c.title,
                    "created_at_ms": c.created_at_ms,
                    "members": members,
                });
                // The object without its closing brace, then the messages array.
                let head = head.to_string();
                text.push_str(&head[..head.len() - 1]);
                text.push_str(",\"messages\":[");
                self.conversation_open = true;
                self.conversations += 1;
                self.messages = 0;
                text
            }
            ExportPart::Messages(messages) => {
                let mut text = String::new();
                for m in &messages {
                    if self.messages > 0 {
                        text.push(',');
                    }
                    text.push_str(&message(m).to_string());
                    self.messages += 1;
                }
                text
            }
        }
    }

    fn close_conversation(&mut self) -> String {
        if std::mem::take(&mut self.conversation_open) { "]}".to_owned() } else { String::new() }
    }

    /// The end of the document.
    pub fn finish(&mut self) -> String {
        let mut text = self.close_conversation();
        text.push_str("]}");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountId, ConversationId, DeviceId, GuildId, MessageId};
    use crate::services::account_data::ExportedGuild;
    use crate::store::{AccountRecord, ConversationRecord, GuildRecord, MemberRecord};

    #[test]
    fn the_pieces_make_one_json_document() {
        let account = AccountId::generate();
        let record = AccountRecord {
            id: account,
            username: "alice".into(),
            display_name: "Alice".into(),
            password_hash: "secret hash".into(),
            ..parsed_account()
        };
        let conversation = |e2ee| ConversationRecord {
            id: ConversationId::generate(),
            kind: ConversationKind::Group,
            e2ee,
            title: Some("LAN".into()),
            last_seq: 1,
            last_change: 1,
            last_activity_at_ms: 1,
            created_at_ms: 1,
            avatar_id: None,
            avatar_version: 0,
            message_timer_s: 0,
        };
        let member = MemberRecord {
            account_id: account,
            role: Role::Owner,
            joined_at_ms: 1,
            read_seq: 0,
            delivered_seq: 0,
            request: false,
            added_by: None,
        };
        let text = kitsulan_content::Content {
            version: 1,
            body: Some(Body::Text(kitsulan_content::TextContent {
                body: "привет".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let cloud = conversation(false);
        let m = MessageRecord {
            id: MessageId::generate(),
            conversation_id: cloud.id,
            seq: 1,
            sender_account_id: account,
            sender_device_id: DeviceId::generate(),
            ciphertext: None,
            session_id: Vec::new(),
            reply_to: None,
            sent_at_ms: 2,
            edited_at_ms: 0,
            deleted_at_ms: 0,
            change_seq: 1,
            system: None,
            content: Some(text.encode_to_vec()),
            expires_at_ms: 0,
            pinned_at_ms: 0,
            pinned_by: None,
            reactions: Vec::new(),
            updated_at_ms: 0,
        };
        let mut writer = ExportWriter::default();
        let mut doc = String::new();
        doc.push_str(&writer.write(ExportPart::Account(record)));
        doc.push_str(&writer.write(ExportPart::Devices(Vec::new())));
        let guild = GuildRecord {
            id: GuildId::generate(),
            name: "LAN party".into(),
            description: String::new(),
            owner: account,
            icon_id: None,
            icon_version: 0,
            created_at_ms: 1,
            member_count: 3,
        };
        let roles = vec!["Moderators".to_owned()];
        doc.push_str(&writer.write(ExportPart::Guilds(vec![ExportedGuild {
            guild,
            joined_at_ms: 1,
            roles,
        }])));
        doc.push_str(&writer.write(ExportPart::Conversation(conversation(true), vec![member.clone()])));
        doc.push_str(&writer.write(ExportPart::Conversation(cloud, vec![member])));
        doc.push_str(&writer.write(ExportPart::Messages(vec![m.clone(), m])));
        doc.push_str(&writer.finish());
        let parsed: Value = serde_json::from_str(&doc).expect(&doc);
        assert_eq!(parsed["account"]["username"], "alice");
        assert!(!doc.contains("secret hash"), "no password hash in an export");
        assert_eq!(parsed["guilds"][0]["name"], "LAN party");
        assert_eq!(parsed["guilds"][0]["roles"], json!(["Moderators"]));
        assert_eq!(parsed["conversations"].as_array().unwrap().len(), 2);
        assert_eq!(parsed["conversations"][0]["messages"].as_array().unwrap().len(), 0);
        assert_eq!(parsed["conversations"][1]["messages"][1]["text"], "привет");
        let mut empty = ExportWriter::default();
        let doc = [
            empty.write(ExportPart::Account(AccountRecord { username: "bob".into(), ..parsed_account() })),
            empty.write(ExportPart::Devices(Vec::new())),
            empty.write(ExportPart::Guilds(Vec::new())),
            empty.finish(),
        ]
        .concat();
        assert_eq!(serde_json::from_str::<Value>(&doc).unwrap()["conversations"], json!([]));
    }

    fn parsed_account() -> AccountRecord {
        AccountRecord {
            id: AccountId::generate(),
            username: String::new(),
            display_name: String::new(),
            email: None,
            email_verified: false,
            password_hash: String::new(),
            totp_secret: None,
            totp_pending_secret: None,
            disabled: false,
            created_at_ms: 0,
            avatar_id: None,
            avatar_version: 0,
        }
    }
}
