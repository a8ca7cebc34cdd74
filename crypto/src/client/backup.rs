//! Key backup in the machine: which inbound sessions still go to the backup, and importing the
//! session entries of a backup (`FORMAT.md`, "Key backup v1"; the entries are made and opened
//! by [`crate::backup::BackupKey`]).
//!
//! Every inbound Megolm session carries a "backed up" flag, kept in its record. The glue asks
//! [`Machine::sessions_to_back_up`] for a batch, uploads it, and calls
//! [`Machine::mark_backed_up`]; a session that improved meanwhile (an earlier first index
//! arrived) is not marked and goes again. After a new backup key (rotation),
//! [`Machine::reset_backed_up`] makes every session go again.

use std::collections::BTreeMap;

use super::records::RecordKey;
use super::{Error, Id, Inbound, Machine, Refusal};
use crate::OsRng;
use crate::backup::{BackupKey, SessionOrigin};

/// A session entry imported by [`Machine::import_backed_up`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The session's id.
    pub session_id: String,
    /// The device that made the session (the sender of its messages).
    pub sender_device_id: Id,
    /// Its account.
    pub sender_account_id: Id,
    /// The conversation it was shared for (`None`: a session shared outside conversations).
    pub conversation_id: Option<Id>,
    /// Whether it was stored: `false` when the session held already was as good (the same or
    /// an earlier first known index), which is kept.
    pub stored: bool,
}

impl Machine {
    /// Up to `limit` inbound sessions not backed up yet, each as (session id, entry encrypted
    /// under `key` for this account). Upload them, then call [`Machine::mark_backed_up`] with
    /// the ids the server took.
    pub fn sessions_to_back_up(&mut self, key: &BackupKey, limit: usize) -> Vec<(String, Vec<u8>)> {
        let account = self.account_id.0;
        let mut rng = OsRng::new();
        let mut out = Vec::new();
        for ((device, session_id), inbound) in &self.inbound {
            if out.len() >= limit {
                break;
            }
            if inbound.backed_up {
                continue;
            }
            let origin = SessionOrigin {
                sender_account_id: inbound.sender_account.0,
                sender_device_id: device.0,
                conversation_id: inbound.conversation.map(|c| c.0),
            };
            let entry = key.encrypt_session(&account, &inbound.session, &origin, &mut rng);
            self.backup_pending.insert((*device, session_id.clone()), inbound.session.first_known_index());
            out.push((session_id.clone(), entry));
        }
        out
    }

    /// The server took the entries of these sessions (ids from [`Machine::sessions_to_back_up`]):
    /// they are not handed out again. A session whose first known index changed since it was
    /// handed out is left to go again.
    pub fn mark_backed_up(&mut self, session_ids: &[String]) {
        let pending: Vec<((Id, String), u32)> = self
            .backup_pending
            .iter()
            .filter(|((_, s), _)| session_ids.contains(s))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (key, first_index) in pending {
            self.backup_pending.remove(&key);
            let Some(inbound) = self.inbound.get_mut(&key) else { continue };
            if inbound.backed_up || inbound.session.first_known_index() != first_index {
                continue;
            }
            inbound.backed_up = true;
            self.dirty.insert(RecordKey::Inbound(key.0, key.1));
        }
    }

    /// Every session goes to the backup again (after a new backup key or a new backup version).
    pub fn reset_backed_up(&mut self) {
        self.backup_pending.clear();
        for (key, inbound) in &mut self.inbound {
            if inbound.backed_up {
                inbound.backed_up = false;
                self.dirty.insert(RecordKey::Inbound(key.0, key.1.clone()));
            }
        }
    }

    /// How many inbound sessions are not backed up yet.
    pub fn sessions_not_backed_up(&self) -> usize {
        self.inbound.values().filter(|i| !i.backed_up).count()
    }

    /// Imports a session entry of this account's backup, stored under `session_id`: decrypted
    /// with `key` (an entry of another account or stored under another session id does not
    /// open), bound to the sender device, account and conversation it names. A session held
    /// already for another sender or conversation is [`Error::BackupSessionConflict`]; one
    /// held with the same or an earlier first known index is kept. Nothing changes on an error.
    pub fn import_backed_up(
        &mut self,
        key: &BackupKey,
        session_id: &str,
        entry: &[u8],
    ) -> Result<Imported, Error> {
        let backed_up = key.decrypt_session(&self.account_id.0, session_id, entry)?;
        let origin = backed_up.origin;
        let sender_account = Id(origin.sender_account_id);
        let sender_device = Id(origin.sender_device_id);
        let conversation = origin.conversation_id.map(Id);
        if let Some(peer) = self.peers.get(&sender_device)
            && peer.account_id != sender_account
        {
            return Err(Error::DeviceOfAnotherAccount {
                account_id: sender_account,
                device_id: sender_device,
            });
        }
        if sender_device == self.device_id && sender_account != self.account_id {
            return Err(Error::DeviceOfAnotherAccount {
                account_id: sender_account,
                device_id: sender_device,
            });
        }
        let held_before =
            self.inbound.get(&(sender_device, session_id.to_owned())).map(|i| i.session.first_known_index());
        let inbound = Inbound {
            session: backed_up.session,
            sender_account,
            conversation,
            seen: BTreeMap::new(),
            backed_up: true,
        };
        self.store_inbound(sender_device, session_id.to_owned(), inbound)
            .map_err(|_: Refusal| Error::BackupSessionConflict)?;
        let now =
            self.inbound.get(&(sender_device, session_id.to_owned())).map(|i| i.session.first_known_index());
        let stored = held_before.is_none() || held_before != now;
        if stored {
            let request = (sender_device, session_id.to_owned());
            if let Some(r) = self.requests.get(&request)
                && r.sender_account == sender_account
                && Some(r.conversation) == conversation
            {
                self.requests.remove(&request);
                self.dirty.insert(RecordKey::Request(request.0, request.1));
            }
        }
        Ok(Imported {
            session_id: session_id.to_owned(),
            sender_device_id: sender_device,
            sender_account_id: sender_account,
            conversation_id: conversation,
            stored,
        })
    }
}
