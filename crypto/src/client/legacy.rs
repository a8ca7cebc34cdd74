//! Importing, once, what the PWA's `engine.ts` kept before this machine existed (its IndexedDB
//! records `device`, `accountKey`, `certificateUploaded`, `pinned`, `verified`,
//! `verifiedThenChanged`, `peers`, `devices`, `olm:*`, `out:*`, `in:*`, `seen`, `taken`; listed
//! in `FORMAT.md`, "Client records", "Before the machine"), so a browser updated in place keeps
//! its device, the keys it pinned, its Olm and Megolm sessions and its replay record.
//!
//! The glue hands the old values over as they were stored (pickles under the same pickle key,
//! ids as text, the old `"device|session"` map keys); every rule of how they become the
//! machine's state is here. Anything that does not open or parse is an error naming the old
//! record, and no machine is made: the old records stay as they were.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::records::RecordKey;
use super::{
    Config, Error, Id, Inbound, MAX_OLM_SESSIONS, MAX_SESSION_ID, MAX_TAKEN, Machine, Outbound, Peer, Person,
};
use crate::PickleKey;
use crate::certificate::AccountKey;
use crate::device::DeviceAccount;
use crate::megolm::{InboundGroupSession, MAX_TRACKED_INDICES, OutboundGroupSession};
use crate::olm::OlmSession;

/// An old outbound session record (`out:<conversation id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyOutbound {
    /// The conversation.
    pub conversation_id: Id,
    /// The session's pickle.
    pub pickle: String,
    /// The devices it was shared with.
    pub shared_with: Vec<Id>,
    /// When it was made (milliseconds).
    pub created_at_ms: u64,
}

/// An old inbound session record (`in:<sender device id>|<session id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyInbound {
    /// The old map key, `"<sender device id>|<session id>"`.
    pub key: String,
    /// The session's pickle.
    pub pickle: String,
    /// The account that shared it.
    pub sender_account_id: Id,
    /// The conversation it was shared for (none: an old to-device room key).
    pub conversation_id: Option<Id>,
}

/// Everything the old engine kept, as it kept it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Legacy {
    /// This device's account.
    pub account_id: Option<Id>,
    /// This device.
    pub device_id: Option<Id>,
    /// `device`: the Olm account's pickle.
    pub device_pickle: String,
    /// `accountKey`: the account key's pickle, when the device held it.
    pub account_key_pickle: Option<String>,
    /// `certificateUploaded`.
    pub certificate_uploaded: bool,
    /// `pinned`: account id -> pinned account key.
    pub pinned: Vec<(Id, Vec<u8>)>,
    /// `verified`: account id -> account key verified with SAS.
    pub verified: Vec<(Id, Vec<u8>)>,
    /// `verifiedThenChanged`.
    pub verified_then_changed: Vec<Id>,
    /// `peers`: every device known with its certified keys.
    pub peers: Vec<Peer>,
    /// `devices`: account id -> the devices last listed (absent once a change was announced).
    pub devices: Vec<(Id, Vec<Id>)>,
    /// `olm:<device id>`: the Olm session pickles, the one the old engine encrypted with first.
    pub olm: Vec<(Id, Vec<String>)>,
    /// `out:*`.
    pub outbound: Vec<LegacyOutbound>,
    /// `in:*`.
    pub inbound: Vec<LegacyInbound>,
    /// `seen`: `"<sender device id>|<session id>|<index>"` -> the message id that used it.
    pub seen: Vec<(String, Id)>,
    /// `taken`: the to-device message ids taken, oldest first.
    pub taken: Vec<Id>,
}

fn bad(record: &str) -> Error {
    Error::MalformedRecord(format!("legacy {record}"))
}

fn key32(bytes: &[u8], record: &str) -> Result<[u8; 32], Error> {
    bytes.try_into().map_err(|_| bad(record))
}

/// `"<device id>|<session id>"` -> (device, session id).
fn inbound_key(key: &str) -> Option<(Id, String)> {
    let (device, session) = key.split_once('|')?;
    if session.is_empty() || session.len() > MAX_SESSION_ID || session.contains('|') {
        return None;
    }
    Some((Id::parse(device).ok()?, session.to_owned()))
}

/// The Olm sessions to keep of an old list: the first (the old engine always encrypted with it)
/// and the most recent ones (what the peer may be using now), at most [`MAX_OLM_SESSIONS`].
pub(super) fn keep_olm<T>(mut sessions: Vec<T>) -> Vec<T> {
    if sessions.len() <= MAX_OLM_SESSIONS {
        return sessions;
    }
    let tail = sessions.split_off(sessions.len() - (MAX_OLM_SESSIONS - 1));
    sessions.truncate(1);
    sessions.extend(tail);
    sessions
}

impl Machine {
    /// Builds a machine from the old engine's state ([`Legacy`]); every record is changed (write
    /// them all, then delete the old ones). Nothing is made when anything does not open.
    pub fn import_legacy(pickle_key: PickleKey, config: Config, legacy: Legacy) -> Result<Self, Error> {
        let account_id = legacy.account_id.ok_or_else(|| bad("account id"))?;
        let device_id = legacy.device_id.ok_or_else(|| bad("device id"))?;
        let account =
            DeviceAccount::from_pickle(&legacy.device_pickle, &pickle_key).map_err(|_| bad("device"))?;
        let account_key = match &legacy.account_key_pickle {
            Some(p) => Some(AccountKey::from_pickle(p, &pickle_key).map_err(|_| bad("accountKey"))?),
            None => None,
        };
        let own_key = account_key.as_ref().map(AccountKey::public_key);

        // People: pinned and verified keys, and their devices.
        let mut people: BTreeMap<Id, Person> = BTreeMap::new();
        for (account, key) in &legacy.pinned {
            people.entry(*account).or_default().pinned = Some(key32(key, "pinned")?);
        }
        if let Some(own) = own_key {
            // The key this device holds is the one pinned for its own account.
            people.entry(account_id).or_default().pinned = Some(own);
        }
        for (account, key) in &legacy.verified {
            people.entry(*account).or_default().verified = Some(key32(key, "verified")?);
        }
        for account in &legacy.verified_then_changed {
            people.entry(*account).or_default().changed_after_verification = true;
        }
        let mut peers: BTreeMap<Id, Peer> = BTreeMap::new();
        for peer in &legacy.peers {
            // A device is known only with the key pinned for its account (as the old engine
            // listed it); this device is never its own peer.
            let pinned = people.get(&peer.account_id).is_some_and(|p| p.pinned.is_some());
            if peer.device_id != device_id && pinned {
                peers.insert(peer.device_id, *peer);
            }
        }
        let listed: BTreeMap<Id, &Vec<Id>> = legacy.devices.iter().map(|(a, ds)| (*a, ds)).collect();
        let accounts: BTreeSet<Id> = people.keys().copied().chain(listed.keys().copied()).collect();
        for account in accounts {
            let person = people.entry(account).or_default();
            let of_account: Vec<Id> =
                peers.values().filter(|p| p.account_id == account).map(|p| p.device_id).collect();
            match listed.get(&account) {
                Some(list) => {
                    let mut devices: Vec<Id> = Vec::new();
                    for d in list.iter() {
                        if of_account.contains(d) && !devices.contains(d) {
                            devices.push(*d);
                        }
                    }
                    person.devices = Some(devices);
                }
                // The list was dropped when a change was announced: keep the devices (and their
                // sessions), to be listed again before the next share.
                None if !of_account.is_empty() => {
                    person.devices = Some(of_account);
                    person.stale = true;
                }
                None => {}
            }
        }
        // Peers in no list are not kept (the machine keeps devices per person).
        let kept: BTreeSet<Id> =
            people.values().filter_map(|p| p.devices.as_ref()).flatten().copied().collect();
        peers.retain(|d, _| kept.contains(d));

        let mut olm = BTreeMap::new();
        for (device, pickles) in &legacy.olm {
            if !peers.contains_key(device) || pickles.is_empty() {
                continue;
            }
            let sessions = keep_olm(pickles.clone())
                .iter()
                .map(|p| OlmSession::from_pickle(p, &pickle_key).map_err(|_| bad(&format!("olm:{device}"))))
                .collect::<Result<Vec<_>, _>>()?;
            olm.insert(*device, sessions);
        }

        let mut outbound = BTreeMap::new();
        for o in &legacy.outbound {
            let session = OutboundGroupSession::from_pickle(&o.pickle, &pickle_key)
                .map_err(|_| bad(&format!("out:{}", o.conversation_id)))?;
            let shared: BTreeSet<Id> = o.shared_with.iter().copied().collect();
            outbound.insert(
                o.conversation_id,
                Outbound {
                    session,
                    created_at_ms: o.created_at_ms,
                    members: Vec::new(),
                    recipients: shared.clone(),
                    shared_with: shared.clone(),
                    offered: shared,
                },
            );
        }

        let mut inbound = BTreeMap::new();
        for i in &legacy.inbound {
            let name = format!("in:{}", i.key);
            let key = inbound_key(&i.key).ok_or_else(|| bad(&name))?;
            let session = InboundGroupSession::from_pickle(&i.pickle, &pickle_key).map_err(|_| bad(&name))?;
            if session.session_id() != key.1 {
                return Err(bad(&name));
            }
            inbound.insert(
                key,
                Inbound {
                    session,
                    sender_account: i.sender_account_id,
                    conversation: i.conversation_id,
                    seen: BTreeMap::new(),
                    backed_up: false,
                },
            );
        }
        for (key, message) in &legacy.seen {
            let (session_key, index) = key.rsplit_once('|').ok_or_else(|| bad("seen"))?;
            let index: u32 = index.parse().map_err(|_| bad("seen"))?;
            let session_key = inbound_key(session_key).ok_or_else(|| bad("seen"))?;
            // The replay record of a session no longer held has nothing to guard.
            if let Some(i) = inbound.get_mut(&session_key) {
                i.seen.insert(index, *message);
            }
        }
        for i in inbound.values_mut() {
            // The machine keeps at most this many indices per session: the latest ones.
            while i.seen.len() > MAX_TRACKED_INDICES {
                i.seen.pop_first();
            }
        }

        let skip = legacy.taken.len().saturating_sub(MAX_TAKEN);
        let taken: VecDeque<Id> = legacy.taken.iter().skip(skip).copied().collect();

        let mut dirty = BTreeSet::new();
        dirty.insert(RecordKey::Identity);
        if !taken.is_empty() {
            dirty.insert(RecordKey::Taken);
        }
        dirty.extend(people.keys().map(|a| RecordKey::Person(*a)));
        dirty.extend(olm.keys().map(|d| RecordKey::Olm(*d)));
        dirty.extend(outbound.keys().map(|c| RecordKey::Outbound(*c)));
        dirty.extend(inbound.keys().map(|(d, s)| RecordKey::Inbound(*d, s.clone())));
        Ok(Machine {
            pickle_key,
            config,
            account_id,
            device_id,
            account,
            account_key,
            certificate_uploaded: legacy.certificate_uploaded,
            people,
            peers,
            olm,
            outbound,
            inbound,
            requests: BTreeMap::new(),
            taken,
            dirty,
            backup_pending: BTreeMap::new(),
        })
    }
}
