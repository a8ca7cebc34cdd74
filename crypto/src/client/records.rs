//! The machine's records: their names, their bodies, and restoring a machine from them.
//!
//! Each record is [`crate::pickle::seal_local`] under the pickle key, bound to its name, of a
//! body that starts with a version byte (1). Objects vodozemac pickles (the Olm account and
//! sessions, outbound Megolm sessions) and our own pickles (account key, inbound sessions) sit
//! inside as their pickle strings. Names (`FORMAT.md`, "Client records"):
//!
//! | name | holds |
//! |---|---|
//! | `identity` | account id, device id, certificate uploaded, the Olm account, the account key |
//! | `taken` | the ids of the to-device messages taken (the last [`super::MAX_TAKEN`]) |
//! | `person:<account id>` | pinned and verified account keys, the verified device list |
//! | `olm:<device id>` | the Olm sessions with that device |
//! | `out:<conversation id>` | the conversation's outbound session and who it was shared with |
//! | `in:<sender device id>:<session id>` | an inbound session, its binding, replay record and whether it is backed up |
//! | `req:<sender device id>:<session id>` | a key request sent to our own devices |

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use zeroize::Zeroizing;

use super::{Config, Error, Id, Inbound, KeyRequest, Machine, Outbound, Peer, Person};
use crate::OsRng;
use crate::certificate::AccountKey;
use crate::device::DeviceAccount;
use crate::encoding::Reader;
use crate::megolm::{InboundGroupSession, OutboundGroupSession};
use crate::olm::OlmSession;
use crate::pickle::{PickleKey, open_local, seal_local};

const VERSION: u8 = 1;

/// One record changed: its new sealed text, or `None` when it is to be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The record's name.
    pub name: String,
    /// The sealed record (base64 text), or `None`: delete it.
    pub value: Option<String>,
}

/// Which record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RecordKey {
    Identity,
    Taken,
    Person(Id),
    Olm(Id),
    Outbound(Id),
    Inbound(Id, String),
    Request(Id, String),
}

impl RecordKey {
    pub(crate) fn name(&self) -> String {
        match self {
            RecordKey::Identity => "identity".to_owned(),
            RecordKey::Taken => "taken".to_owned(),
            RecordKey::Person(id) => format!("person:{id}"),
            RecordKey::Olm(id) => format!("olm:{id}"),
            RecordKey::Outbound(id) => format!("out:{id}"),
            RecordKey::Inbound(device, session) => format!("in:{device}:{session}"),
            RecordKey::Request(device, session) => format!("req:{device}:{session}"),
        }
    }

    /// The key a name stands for; `None` for names this build does not know (left alone).
    fn parse(name: &str) -> Option<Result<Self, Error>> {
        let bad = || Error::MalformedRecord(name.to_owned());
        let (kind, rest) = name.split_once(':').unwrap_or((name, ""));
        let id = |text: &str| Id::parse(text).map_err(|_| bad());
        let pair = |text: &str| -> Result<(Id, String), Error> {
            let (device, session) = text.split_once(':').ok_or_else(bad)?;
            if session.is_empty() || session.len() > super::MAX_SESSION_ID {
                return Err(bad());
            }
            Ok((id(device)?, session.to_owned()))
        };
        Some(match (kind, rest.is_empty()) {
            ("identity", true) => Ok(RecordKey::Identity),
            ("taken", true) => Ok(RecordKey::Taken),
            ("person", false) => id(rest).map(RecordKey::Person),
            ("olm", false) => id(rest).map(RecordKey::Olm),
            ("out", false) => id(rest).map(RecordKey::Outbound),
            ("in", false) => pair(rest).map(|(d, s)| RecordKey::Inbound(d, s)),
            ("req", false) => pair(rest).map(|(d, s)| RecordKey::Request(d, s)),
            _ => return None,
        })
    }
}

/// A body being written.
struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    fn new() -> Self {
        Self(Zeroizing::new(vec![VERSION]))
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: usize) -> &mut Self {
        self.0.extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    fn id(&mut self, v: Id) -> &mut Self {
        self.raw(v.as_bytes())
    }
    fn str(&mut self, v: &str) -> &mut Self {
        self.u32(v.len()).raw(v.as_bytes())
    }
    fn opt32(&mut self, v: Option<[u8; 32]>) -> &mut Self {
        match v {
            Some(k) => self.u8(1).raw(&k),
            None => self.u8(0),
        }
    }
    fn ids<'a>(&mut self, v: impl ExactSizeIterator<Item = &'a Id>) -> &mut Self {
        self.u32(v.len());
        for id in v {
            self.id(*id);
        }
        self
    }
}

/// Reads a body; every read fails as the record's [`Error::MalformedRecord`].
struct Body<'a> {
    r: Reader<'a>,
    name: &'a str,
}

impl<'a> Body<'a> {
    fn new(bytes: &'a [u8], name: &'a str) -> Result<Self, Error> {
        let mut body = Self { r: Reader::new(bytes, crate::Error::MalformedPickle), name };
        if body.u8()? != VERSION {
            return Err(body.bad());
        }
        Ok(body)
    }
    fn bad(&self) -> Error {
        Error::MalformedRecord(self.name.to_owned())
    }
    fn u8(&mut self) -> Result<u8, Error> {
        self.r.u8().map_err(|_| self.bad())
    }
    fn flag(&mut self) -> Result<bool, Error> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.bad()),
        }
    }
    fn u32(&mut self) -> Result<u32, Error> {
        self.r.u32().map_err(|_| self.bad())
    }
    fn u64(&mut self) -> Result<u64, Error> {
        self.r.u64().map_err(|_| self.bad())
    }
    fn id(&mut self) -> Result<Id, Error> {
        self.r.array().map(Id::from_bytes).map_err(|_| self.bad())
    }
    fn key32(&mut self) -> Result<[u8; 32], Error> {
        self.r.array().map_err(|_| self.bad())
    }
    fn opt32(&mut self) -> Result<Option<[u8; 32]>, Error> {
        if self.flag()? { self.key32().map(Some) } else { Ok(None) }
    }
    fn str(&mut self) -> Result<&'a str, Error> {
        let len = self.u32()? as usize;
        let bytes = self.r.take(len).map_err(|_| self.bad())?;
        std::str::from_utf8(bytes).map_err(|_| self.bad())
    }
    fn count(&mut self, max: usize) -> Result<usize, Error> {
        let n = self.u32()? as usize;
        if n > max { Err(self.bad()) } else { Ok(n) }
    }
    fn ids(&mut self) -> Result<Vec<Id>, Error> {
        let n = self.count(1 << 20)?;
        (0..n).map(|_| self.id()).collect()
    }
    fn finish(self) -> Result<(), Error> {
        let bad = self.bad();
        self.r.finish().map_err(|_| bad)
    }
}

impl Machine {
    /// The record `key` as it is now: sealed, or `None` when the object is gone.
    pub(super) fn record(&self, key: &RecordKey) -> super::Change {
        let name = key.name();
        let body = self.body(key);
        let value = body.map(|b| seal_local(&self.pickle_key, &name, &b.0, &mut OsRng::new()));
        Change { name, value }
    }

    fn body(&self, key: &RecordKey) -> Option<Writer> {
        let pk = &self.pickle_key;
        let mut w = Writer::new();
        match key {
            RecordKey::Identity => {
                w.id(self.account_id).id(self.device_id).u8(u8::from(self.certificate_uploaded));
                w.str(&self.account.pickle(pk));
                match &self.account_key {
                    Some(k) => w.u8(1).str(&k.pickle(pk, &mut OsRng::new())),
                    None => w.u8(0),
                };
            }
            RecordKey::Taken => {
                if self.taken.is_empty() {
                    return None;
                }
                w.ids(self.taken.iter());
            }
            RecordKey::Person(id) => {
                let p = self.people.get(id)?;
                w.opt32(p.pinned).opt32(p.verified);
                w.u8(u8::from(p.changed_after_verification)).u8(u8::from(p.stale));
                match &p.devices {
                    None => w.u8(0),
                    Some(devices) => {
                        let peers: Vec<&Peer> = devices.iter().filter_map(|d| self.peers.get(d)).collect();
                        w.u8(1).u32(peers.len());
                        for peer in peers {
                            w.id(peer.device_id).raw(&peer.ed25519).raw(&peer.curve25519);
                        }
                        &mut w
                    }
                };
            }
            RecordKey::Olm(id) => {
                let sessions = self.olm.get(id).filter(|s| !s.is_empty())?;
                w.u32(sessions.len());
                for s in sessions {
                    w.str(&s.pickle(pk));
                }
            }
            RecordKey::Outbound(id) => {
                let o = self.outbound.get(id)?;
                w.u64(o.created_at_ms).str(&o.session.pickle(pk));
                w.ids(o.members.iter())
                    .ids(o.recipients.iter())
                    .ids(o.shared_with.iter())
                    .ids(o.offered.iter());
            }
            RecordKey::Inbound(device, session) => {
                let i = self.inbound.get(&(*device, session.clone()))?;
                w.id(i.sender_account).opt_id(i.conversation);
                w.str(&i.session.pickle(pk, &mut OsRng::new()));
                w.u32(i.seen.len());
                for (index, message) in &i.seen {
                    w.raw(&index.to_be_bytes()).id(*message);
                }
                w.u8(u8::from(i.backed_up));
            }
            RecordKey::Request(device, session) => {
                let r = self.requests.get(&(*device, session.clone()))?;
                w.id(r.conversation).id(r.sender_account).u64(r.created_at_ms).u32(r.asked.len());
                for (d, at) in &r.asked {
                    w.id(*d).u64(*at);
                }
            }
        }
        Some(w)
    }

    /// Rebuilds a machine from its records (all of them, as a [`super::Store`] loads them).
    /// Names this build does not know are left alone; a record that does not open under
    /// `pickle_key` (or under its name) or does not parse is an error.
    pub fn restore(
        pickle_key: PickleKey,
        config: Config,
        records: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Error> {
        let mut parsed = Vec::new();
        let mut identity = None;
        for (name, sealed) in records {
            let Some(key) = RecordKey::parse(&name) else { continue };
            let key = key?;
            let body =
                open_local(&pickle_key, &name, &sealed).map_err(|_| Error::MalformedRecord(name.clone()))?;
            if key == RecordKey::Identity {
                identity = Some((name, body));
            } else {
                parsed.push((key, name, body));
            }
        }
        let (name, body) = identity.ok_or(Error::NoIdentity)?;
        let mut b = Body::new(&body, &name)?;
        let account_id = b.id()?;
        let device_id = b.id()?;
        let certificate_uploaded = b.flag()?;
        let account = DeviceAccount::from_pickle(b.str()?, &pickle_key).map_err(|_| b.bad())?;
        let account_key = if b.flag()? {
            Some(AccountKey::from_pickle(b.str()?, &pickle_key).map_err(|_| b.bad())?)
        } else {
            None
        };
        b.finish()?;
        let mut m = Machine {
            pickle_key,
            config,
            account_id,
            device_id,
            account,
            account_key,
            certificate_uploaded,
            people: BTreeMap::new(),
            peers: BTreeMap::new(),
            olm: BTreeMap::new(),
            outbound: BTreeMap::new(),
            inbound: BTreeMap::new(),
            requests: BTreeMap::new(),
            taken: VecDeque::new(),
            dirty: BTreeSet::new(),
            backup_pending: BTreeMap::new(),
        };
        for (key, name, body) in &parsed {
            m.load(key, name, body)?;
        }
        Ok(m)
    }

    fn load(&mut self, key: &RecordKey, name: &str, body: &[u8]) -> Result<(), Error> {
        let pk = self.pickle_key.clone();
        let mut b = Body::new(body, name)?;
        match key {
            RecordKey::Identity => return Err(b.bad()),
            RecordKey::Taken => {
                self.taken = b.ids()?.into_iter().collect();
            }
            RecordKey::Person(account) => {
                let pinned = b.opt32()?;
                let verified = b.opt32()?;
                let changed_after_verification = b.flag()?;
                let stale = b.flag()?;
                let devices = if b.flag()? {
                    let n = b.count(1 << 16)?;
                    let mut list = Vec::with_capacity(n);
                    for _ in 0..n {
                        let device_id = b.id()?;
                        let peer = Peer {
                            account_id: *account,
                            device_id,
                            ed25519: b.key32()?,
                            curve25519: b.key32()?,
                        };
                        self.peers.insert(device_id, peer);
                        list.push(device_id);
                    }
                    Some(list)
                } else {
                    None
                };
                self.people.insert(
                    *account,
                    Person { pinned, verified, changed_after_verification, devices, stale },
                );
            }
            RecordKey::Olm(device) => {
                let n = b.count(1 << 10)?;
                let mut sessions = Vec::with_capacity(n);
                for _ in 0..n {
                    sessions.push(OlmSession::from_pickle(b.str()?, &pk).map_err(|_| b.bad())?);
                }
                self.olm.insert(*device, sessions);
            }
            RecordKey::Outbound(conversation) => {
                let created_at_ms = b.u64()?;
                let session = OutboundGroupSession::from_pickle(b.str()?, &pk).map_err(|_| b.bad())?;
                let members = b.ids()?;
                let recipients = b.ids()?.into_iter().collect();
                let shared_with = b.ids()?.into_iter().collect();
                let offered = b.ids()?.into_iter().collect();
                self.outbound.insert(
                    *conversation,
                    Outbound { session, created_at_ms, members, recipients, shared_with, offered },
                );
            }
            RecordKey::Inbound(device, session_id) => {
                let sender_account = b.id()?;
                let conversation = b.opt_id()?;
                let session = InboundGroupSession::from_pickle(b.str()?, &pk).map_err(|_| b.bad())?;
                if session.session_id() != *session_id {
                    return Err(b.bad());
                }
                let n = b.count(crate::megolm::MAX_TRACKED_INDICES)?;
                let mut seen = BTreeMap::new();
                for _ in 0..n {
                    let index = b.u32()?;
                    seen.insert(index, b.id()?);
                }
                // Records written before key backup end here.
                let backed_up = b.trailing_flag()?;
                self.inbound.insert(
                    (*device, session_id.clone()),
                    Inbound { session, sender_account, conversation, seen, backed_up },
                );
            }
            RecordKey::Request(device, session_id) => {
                let conversation = b.id()?;
                let sender_account = b.id()?;
                let created_at_ms = b.u64()?;
                let n = b.count(1 << 10)?;
                let mut asked = BTreeMap::new();
                for _ in 0..n {
                    let d = b.id()?;
                    asked.insert(d, b.u64()?);
                }
                self.requests.insert(
                    (*device, session_id.clone()),
                    KeyRequest { conversation, sender_account, created_at_ms, asked },
                );
            }
        }
        b.finish()
    }
}

impl Writer {
    fn opt_id(&mut self, v: Option<Id>) -> &mut Self {
        match v {
            Some(id) => self.u8(1).id(id),
            None => self.u8(0),
        }
    }
}

impl Body<'_> {
    /// A flag as the record's last byte, `false` when the record ends before it.
    fn trailing_flag(&mut self) -> Result<bool, Error> {
        match self.r.rest() {
            [] | [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(self.bad()),
        }
    }

    fn opt_id(&mut self) -> Result<Option<Id>, Error> {
        if self.flag()? { self.id().map(Some) } else { Ok(None) }
    }
}
