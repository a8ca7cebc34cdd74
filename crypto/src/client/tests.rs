//! Several real machines in one test; the "server" only moves bytes between them (published
//! account keys and certificates, claimed one-time keys, to-device inboxes, stored messages).
//! Every scenario runs twice: once with the machines kept in memory, once restored from their
//! stores after every step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use super::*;
use crate::OsRng;
use crate::device::{ClaimedKey, SignedFallbackKey, SignedOneTimeKey};
use crate::olm::OlmSession;

struct ServerDevice {
    account: Id,
    certificate: Vec<u8>,
    one_time_keys: Vec<SignedOneTimeKey>,
    fallback: Option<SignedFallbackKey>,
}

struct Dev {
    machine: Option<Machine>,
    store: MemoryStore,
    pickle_key: PickleKey,
}

#[derive(Clone, Debug)]
struct Msg {
    id: Id,
    conversation: Id,
    sender_account: Id,
    sender_device: Id,
    session_id: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Msg {
    fn group(&self) -> GroupMessage<'_> {
        GroupMessage {
            message_id: self.id,
            conversation_id: self.conversation,
            sender_account_id: self.sender_account,
            sender_device_id: self.sender_device,
            session_id: &self.session_id,
            ciphertext: &self.ciphertext,
        }
    }
}

type Inbox = Vec<(Id, Id, Id, Vec<u8>)>;

struct World {
    now: u64,
    restore: bool,
    config: Config,
    account_keys: BTreeMap<Id, [u8; 32]>,
    devices: BTreeMap<Id, ServerDevice>,
    inbox: BTreeMap<Id, Inbox>,
    devs: Vec<Dev>,
}

impl World {
    fn new(restore: bool) -> Self {
        Self::with_config(restore, Config::default())
    }

    fn with_config(restore: bool, config: Config) -> Self {
        Self {
            now: 1_760_000_000_000,
            restore,
            config,
            account_keys: BTreeMap::new(),
            devices: BTreeMap::new(),
            inbox: BTreeMap::new(),
            devs: Vec::new(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.now += 1;
        self.now
    }

    fn m(&mut self, i: usize) -> &mut Machine {
        self.devs[i].machine.as_mut().unwrap()
    }

    fn account(&mut self, i: usize) -> Id {
        self.m(i).account_id()
    }

    fn device(&mut self, i: usize) -> Id {
        self.m(i).device_id()
    }

    /// Persists what changed; when restoring, rebuilds the machine from its store.
    fn step(&mut self, i: usize) {
        let config = self.config;
        let dev = &mut self.devs[i];
        let machine = dev.machine.as_mut().unwrap();
        let changes = machine.take_changes();
        assert!(!machine.has_changes());
        dev.store.apply(&changes).unwrap();
        if self.restore {
            let restored =
                Machine::restore(dev.pickle_key.clone(), config, dev.store.load_all().unwrap()).unwrap();
            dev.machine = Some(restored);
        }
    }

    fn new_device(&mut self, account: Id, account_key: AccountKey) -> usize {
        let pickle_key = PickleKey::generate(&mut OsRng::new());
        let device = Id::new_v7(self.tick());
        let machine = Machine::new(pickle_key.clone(), self.config, account, device, Some(account_key));
        self.account_keys.entry(account).or_insert(machine.account_public_key().unwrap());
        self.devs.push(Dev { machine: Some(machine), store: MemoryStore::new(), pickle_key });
        let i = self.devs.len() - 1;
        self.step(i);
        self.upload(i);
        i
    }

    fn sign_up(&mut self) -> usize {
        let account = Id::new_v7(self.tick());
        self.new_device(account, AccountKey::generate(&mut OsRng::new()))
    }

    fn add_device(&mut self, of: usize) -> usize {
        let account = self.account(of);
        let secret = self.m(of).account_key_secret().unwrap();
        self.new_device(account, AccountKey::from_secret_bytes(&secret))
    }

    fn upload(&mut self, i: usize) {
        let now = self.tick();
        let (account, device) = (self.account(i), self.device(i));
        let upload = self.m(i).keys_to_upload(5, now).unwrap();
        let entry = self.devices.entry(device).or_insert(ServerDevice {
            account,
            certificate: Vec::new(),
            one_time_keys: Vec::new(),
            fallback: None,
        });
        if let Some(cert) = upload.certificate {
            entry.certificate = cert;
        }
        entry.one_time_keys.extend(upload.one_time_keys);
        if upload.fallback_key.is_some() {
            entry.fallback = upload.fallback_key;
        }
        self.m(i).keys_uploaded();
        self.step(i);
    }

    /// `QueryKeys` for `accounts`, given to the machine.
    fn sync(&mut self, i: usize, accounts: &[Id]) -> Vec<Result<DeviceListChange, Error>> {
        let mut out = Vec::new();
        for account in accounts {
            let key = self.account_keys.get(account).map(|k| k.to_vec()).unwrap_or_default();
            let listed: Vec<(Id, Vec<u8>)> = self
                .devices
                .iter()
                .filter(|(_, d)| d.account == *account)
                .map(|(id, d)| (*id, d.certificate.clone()))
                .collect();
            let listed: Vec<(Id, &[u8])> = listed.iter().map(|(id, c)| (*id, c.as_slice())).collect();
            out.push(self.m(i).receive_keys(*account, &key, &listed));
        }
        self.step(i);
        out
    }

    /// `ClaimKeys` for the devices the machine lacks a session with.
    fn claim(&mut self, i: usize, devices: &[Id]) {
        for device in self.m(i).devices_missing_olm(devices) {
            let Some(server) = self.devices.get_mut(&device) else { continue };
            let claimed = if server.one_time_keys.is_empty() {
                ClaimedKey::Fallback(server.fallback.unwrap())
            } else {
                ClaimedKey::OneTime(server.one_time_keys.remove(0))
            };
            self.m(i).receive_claimed_key(device, &claimed).unwrap();
        }
        self.step(i);
    }

    fn deliver(&mut self, from: usize, messages: &[OutgoingToDevice]) {
        let (account, device) = (self.account(from), self.device(from));
        for m in messages {
            self.inbox.entry(m.recipient_device_id).or_default().push((
                account,
                device,
                m.message_id,
                m.ciphertext.clone(),
            ));
        }
    }

    /// What an app does to post: refresh devices, open Olm sessions, share, send the shares,
    /// encrypt.
    fn send(
        &mut self,
        i: usize,
        conversation: Id,
        members: &[Id],
        text: &str,
    ) -> (Msg, RoomKeyShare, Encrypted) {
        let mut all = members.to_vec();
        all.push(self.account(i));
        for r in self.sync(i, &all) {
            r.unwrap();
        }
        let devices: Vec<Id> =
            all.iter().flat_map(|a| self.m(i).devices_of(*a)).map(|p| p.device_id).collect();
        self.claim(i, &devices);
        let now = self.tick();
        let share = self.m(i).share_room_key(conversation, members, now).unwrap();
        self.step(i);
        self.deliver(i, &share.messages);
        self.m(i).confirm_room_key_share(&share);
        self.step(i);
        let encrypted = self.m(i).encrypt(conversation, text.as_bytes()).unwrap();
        self.step(i);
        let msg = Msg {
            id: Id::new_v7(self.tick()),
            conversation,
            sender_account: self.account(i),
            sender_device: self.device(i),
            session_id: encrypted.session_id.clone().into_bytes(),
            ciphertext: encrypted.ciphertext.clone(),
        };
        (msg, share, encrypted)
    }

    /// Takes the device's inbox (looking up unknown senders and answering key requests).
    fn receive(&mut self, i: usize) -> Vec<Received> {
        let device = self.device(i);
        let messages = self.inbox.remove(&device).unwrap_or_default();
        let mut out = Vec::new();
        for (account, sender, id, ciphertext) in messages {
            let now = self.tick();
            let mut result = self.m(i).receive_to_device(account, sender, id, &ciphertext, now);
            if matches!(result, Err(Error::UnknownDevice(_))) {
                self.sync(i, &[account]);
                result = self.m(i).receive_to_device(account, sender, id, &ciphertext, now);
            }
            let received = result.unwrap();
            if let Received::KeyRequest { answer, .. } = &received {
                self.deliver(i, std::slice::from_ref(answer));
            }
            self.step(i);
            out.push(received);
        }
        out
    }

    fn read(&mut self, i: usize, msg: &Msg) -> Result<String, Undecryptable> {
        let result = self.m(i).decrypt(&msg.group());
        self.step(i);
        result.map(|d| String::from_utf8(d.plaintext.to_vec()).unwrap())
    }

    /// A to-device message made by hand (what a modified client could send).
    fn craft(&mut self, from: usize, to: Id, plaintext: &[u8]) -> OutgoingToDevice {
        let now = self.tick();
        let out = self.m(from).olm_message(to, plaintext, now).unwrap();
        self.step(from);
        out
    }
}

fn both(test: impl Fn(bool)) {
    test(false);
    test(true);
}

fn room_keys(received: &[Received]) -> usize {
    received.iter().filter(|r| matches!(r, Received::RoomKey { .. })).count()
}

#[test]
fn ids_parse_print_and_v7() {
    let id = Id::parse("0192F3A4-5B6C-7D8E-9F01-23456789ABCD").unwrap();
    assert_eq!(id.to_string(), "0192f3a4-5b6c-7d8e-9f01-23456789abcd");
    assert_eq!(Id::parse(&id.to_string()).unwrap(), id);
    for bad in [
        "",
        "0192f3a4-5b6c-7d8e-9f01-23456789abc",
        "0192f3a4x5b6c-7d8e-9f01-23456789abcd",
        "0192f3a4-5b6c-7d8e-9f01-23456789abcg",
    ] {
        assert_eq!(Id::parse(bad), Err(Error::InvalidId), "{bad}");
    }
    let v7 = Id::new_v7(0x0192_f3a4_5b6c);
    assert_eq!(&v7.as_bytes()[..6], &[0x01, 0x92, 0xf3, 0xa4, 0x5b, 0x6c]);
    assert_eq!(v7.as_bytes()[6] >> 4, 7);
    assert_eq!(v7.as_bytes()[8] >> 6, 0b10);
    assert_ne!(Id::new_v7(1), Id::new_v7(1));
}

#[test]
fn group_conversation_both_ways() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob, carol) = (w.sign_up(), w.sign_up(), w.sign_up());
        let members = [w.account(alice), w.account(bob), w.account(carol)];
        let conversation = Id::new_v7(w.tick());

        let (hello, share, encrypted) = w.send(alice, conversation, &members, "hello all");
        assert!(share.rotated);
        assert_eq!(share.messages.len(), 2);
        assert!(share.unreadable_by.is_empty() && encrypted.unreadable_by.is_empty());
        assert_eq!(room_keys(&w.receive(bob)), 1);
        assert_eq!(room_keys(&w.receive(carol)), 1);
        assert_eq!(w.read(bob, &hello).unwrap(), "hello all");
        assert_eq!(w.read(carol, &hello).unwrap(), "hello all");
        // The sender reads its own message in the history.
        assert_eq!(w.read(alice, &hello).unwrap(), "hello all");

        let (reply, _, _) = w.send(bob, conversation, &members, "hi alice");
        w.receive(alice);
        w.receive(carol);
        assert_eq!(w.read(alice, &reply).unwrap(), "hi alice");
        assert_eq!(w.read(carol, &reply).unwrap(), "hi alice");

        // A second message on the same session needs no new share.
        let (again, share, _) = w.send(alice, conversation, &members, "again");
        assert!(!share.rotated && share.messages.is_empty());
        assert_eq!(again.session_id, hello.session_id);
        assert_eq!(w.read(bob, &again).unwrap(), "again");
        // Reading history twice is fine.
        assert_eq!(w.read(bob, &hello).unwrap(), "hello all");
    });
}

#[test]
fn member_removed_rotates_and_cannot_read_new_messages() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob, carol) = (w.sign_up(), w.sign_up(), w.sign_up());
        let (a, b, c) = (w.account(alice), w.account(bob), w.account(carol));
        let conversation = Id::new_v7(w.tick());
        let (first, _, _) = w.send(alice, conversation, &[a, b, c], "before");
        w.receive(carol);
        assert_eq!(w.read(carol, &first).unwrap(), "before");

        // Carol is removed: the next message is on a new session carol never gets.
        let (after, share, _) = w.send(alice, conversation, &[a, b], "after");
        assert!(share.rotated);
        assert_ne!(after.session_id, first.session_id);
        assert_eq!(share.messages.len(), 1);
        assert_eq!(share.messages[0].recipient_device_id, w.device(bob));
        assert!(w.receive(carol).is_empty());
        let refused = w.read(carol, &after).unwrap_err();
        assert_eq!(refused.reason, UndecryptableReason::MissingKey);
        w.receive(bob);
        assert_eq!(w.read(bob, &after).unwrap(), "after");
        // Carol asking her own devices is all she can do: she has none, so nothing goes out.
        let missing = refused.missing.unwrap();
        let now = w.tick();
        assert!(w.m(carol).request_missing_key(&missing, now).unwrap().is_empty());
    });
}

#[test]
fn a_signed_out_device_no_longer_gets_keys() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob) = (w.sign_up(), w.sign_up());
        let bob2 = w.add_device(bob);
        let (a, b) = (w.account(alice), w.account(bob));
        let conversation = Id::new_v7(w.tick());
        let (first, share, _) = w.send(alice, conversation, &[a, b], "one");
        assert_eq!(share.messages.len(), 2);
        // bob2 signs out: the server lists it no more.
        let gone = w.device(bob2);
        w.devices.remove(&gone);
        w.m(alice).device_list_changed(b);
        assert_eq!(w.m(alice).devices_to_query(&[a, b]), vec![b]);
        let (second, share, _) = w.send(alice, conversation, &[a, b], "two");
        assert!(share.rotated);
        assert_ne!(second.session_id, first.session_id);
        assert!(share.messages.iter().all(|m| m.recipient_device_id != gone));
        assert!(!w.m(alice).has_olm_session(gone));
    });
}

#[test]
fn a_new_device_gets_keys_for_new_messages_and_asks_its_own_devices_for_old_ones() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob) = (w.sign_up(), w.sign_up());
        let (a, b) = (w.account(alice), w.account(bob));
        let conversation = Id::new_v7(w.tick());
        let (old, _, _) = w.send(alice, conversation, &[a, b], "before the new device");
        w.receive(bob);
        assert_eq!(w.read(bob, &old).unwrap(), "before the new device");

        let bob2 = w.add_device(bob);
        let (new, share, _) = w.send(alice, conversation, &[a, b], "after the new device");
        assert!(share.rotated, "the recipient devices changed after use");
        assert!(share.messages.iter().any(|m| m.recipient_device_id == w.device(bob2)));
        assert_eq!(room_keys(&w.receive(bob2)), 1);
        assert_eq!(room_keys(&w.receive(bob)), 1);
        assert_eq!(w.read(bob2, &new).unwrap(), "after the new device");

        // The old message: bob2 has no key; it asks bob's other device, which answers.
        let missing = w.read(bob2, &old).unwrap_err().missing.unwrap();
        assert_eq!(missing.sender_device_id, w.device(alice));
        w.sync(bob2, &[b]);
        let own: Vec<Id> = w.m(bob2).own_devices().iter().map(|p| p.device_id).collect();
        assert_eq!(own, vec![w.device(bob)]);
        w.claim(bob2, &own);
        let now = w.tick();
        let requests = w.m(bob2).request_missing_key(&missing, now).unwrap();
        w.step(bob2);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].recipient_device_id, w.device(bob));
        assert_eq!(w.m(bob2).pending_key_requests(), vec![missing.clone()]);
        // Asked again at once: nobody is asked twice.
        let now = w.tick();
        assert!(w.m(bob2).request_missing_key(&missing, now).unwrap().is_empty());
        w.deliver(bob2, &requests);
        let answered = w.receive(bob);
        assert!(
            matches!(&answered[..], [Received::KeyRequest { from, .. }] if from.device_id == w.device(bob2))
        );
        let got = w.receive(bob2);
        match &got[..] {
            [Received::ForwardedKey { from, key }] => {
                assert_eq!(from.device_id, w.device(bob));
                assert_eq!(*key, missing);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.read(bob2, &old).unwrap(), "before the new device");
        assert!(w.m(bob2).pending_key_requests().is_empty());
    });
}

#[test]
fn key_requests_from_another_persons_device_are_refused() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, mallory) = (w.sign_up(), w.sign_up());
        let (a, m) = (w.account(alice), w.account(mallory));
        let conversation = Id::new_v7(w.tick());
        let (msg, _, _) = w.send(alice, conversation, &[a, m], "for mallory too");
        w.receive(mallory);
        // Mallory asks alice for alice's own session (as if mallory had lost it).
        let plaintext =
            wire::key_request(conversation, msg.sender_device, std::str::from_utf8(&msg.session_id).unwrap());
        let alice_device = w.device(alice);
        let request = w.craft(mallory, alice_device, &plaintext);
        w.deliver(mallory, &[request]);
        assert_eq!(w.receive(alice), vec![Received::Refused(Refusal::RequestFromAnotherPerson)]);
        let mallory_device = w.device(mallory);
        assert!(w.inbox.get(&mallory_device).is_none_or(Vec::is_empty), "no answer went out");
    });
}

#[test]
fn forwarded_keys_nobody_asked_for_are_refused() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob, carol) = (w.sign_up(), w.sign_up(), w.sign_up());
        let (a, b, c) = (w.account(alice), w.account(bob), w.account(carol));
        let conversation = Id::new_v7(w.tick());
        let (msg, _, _) = w.send(alice, conversation, &[a, b, c], "secret");
        w.receive(bob);
        w.receive(carol);
        // bob's new device comes after the message.
        let bob2 = w.add_device(bob);
        let session_id = std::str::from_utf8(&msg.session_id).unwrap().to_owned();
        let exported = w
            .m(bob)
            .inbound
            .get(&(msg.sender_device, session_id.clone()))
            .unwrap()
            .session
            .export_at_first_known_index();
        let forwarded = wire::forwarded_key(conversation, a, msg.sender_device, &exported);
        let bob2_device = w.device(bob2);
        w.sync(bob, &[b]);
        w.claim(bob, &[bob2_device]);
        w.sync(carol, &[b]);
        w.claim(carol, &[bob2_device]);

        // bob2 never asked: its own device's forward is refused.
        let unasked = w.craft(bob, bob2_device, &forwarded);
        w.deliver(bob, &[unasked]);
        assert_eq!(w.receive(bob2), vec![Received::Refused(Refusal::Unrequested)]);

        // bob2 asks bob; carol (another person) forwards first: refused.
        let missing = MissingKey {
            conversation_id: conversation,
            sender_account_id: a,
            sender_device_id: msg.sender_device,
            session_id: session_id.clone(),
        };
        let own = [w.device(bob)];
        w.sync(bob2, &[b]);
        w.claim(bob2, &own);
        let now = w.tick();
        assert_eq!(w.m(bob2).request_missing_key(&missing, now).unwrap().len(), 1);
        w.step(bob2);
        let foreign = w.craft(carol, bob2_device, &forwarded);
        w.deliver(carol, &[foreign]);
        assert_eq!(w.receive(bob2), vec![Received::Refused(Refusal::ForwardedByAnotherPerson)]);

        // Its own device forwards another session than the one asked for: no request matches.
        let mut other = crate::megolm::OutboundGroupSession::new();
        let _ = other.encrypt(b"x");
        let other_inbound = InboundGroupSession::from_session_key(&other.session_key()).unwrap();
        let wrong_session = wire::forwarded_key(
            conversation,
            a,
            msg.sender_device,
            &other_inbound.export_at_first_known_index(),
        );
        let m1 = w.craft(bob, bob2_device, &wrong_session);
        // The right session, named for another conversation.
        let wrong_conversation = wire::forwarded_key(Id::new_v7(w.tick()), a, msg.sender_device, &exported);
        let m2 = w.craft(bob, bob2_device, &wrong_conversation);
        // The right session, with another sending account.
        let wrong_sender = wire::forwarded_key(conversation, c, msg.sender_device, &exported);
        let m3 = w.craft(bob, bob2_device, &wrong_sender);
        w.deliver(bob, &[m1, m2, m3]);
        assert_eq!(
            w.receive(bob2),
            vec![
                Received::Refused(Refusal::Unrequested),
                Received::Refused(Refusal::ForwardedKeyMismatch),
                Received::Refused(Refusal::ForwardedKeyMismatch),
            ]
        );
        assert_eq!(w.read(bob2, &msg).unwrap_err().reason, UndecryptableReason::MissingKey);

        // A device that was not asked (carol's is not ours anyway; here: a forward from bob
        // before bob was asked is covered above). The real answer is taken.
        let right = w.craft(bob, bob2_device, &forwarded);
        w.deliver(bob, &[right]);
        assert!(matches!(&w.receive(bob2)[..], [Received::ForwardedKey { .. }]));
        assert_eq!(w.read(bob2, &msg).unwrap(), "secret");
    });
}

#[test]
fn replayed_messages_are_refused() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob) = (w.sign_up(), w.sign_up());
        let (a, b) = (w.account(alice), w.account(bob));
        let conversation = Id::new_v7(w.tick());
        let (msg, _, _) = w.send(alice, conversation, &[a, b], "pay 10");
        w.receive(bob);
        assert_eq!(w.read(bob, &msg).unwrap(), "pay 10");
        // The server stores the same ciphertext again under another id.
        let mut copy = msg.clone();
        copy.id = Id::new_v7(w.tick());
        assert_eq!(w.read(bob, &copy).unwrap_err().reason, UndecryptableReason::Replayed);
        // The same message read again is history, not a replay.
        assert_eq!(w.read(bob, &msg).unwrap(), "pay 10");
        // Moved to another conversation or attributed to another account: refused.
        let mut moved = msg.clone();
        moved.conversation = Id::new_v7(w.tick());
        assert_eq!(w.read(bob, &moved).unwrap_err().reason, UndecryptableReason::SharedForSomethingElse);
        let mut reattributed = msg.clone();
        reattributed.sender_account = b;
        assert_eq!(
            w.read(bob, &reattributed).unwrap_err().reason,
            UndecryptableReason::SharedForSomethingElse
        );
        let mut bad_id = msg.clone();
        bad_id.session_id = vec![0xff];
        assert_eq!(w.read(bob, &bad_id).unwrap_err().reason, UndecryptableReason::BadSessionId);
        // A to-device message taken twice (same id) is a duplicate.
        let elsewhere = Id::new_v7(w.tick());
        let (_, share, _) = w.send(alice, elsewhere, &[a, b], "x");
        w.deliver(alice, &share.messages);
        let first = w.receive(bob);
        assert_eq!(room_keys(&first), 1);
        assert_eq!(first[1], Received::Duplicate);
    });
}

#[test]
fn call_payloads_are_bound_to_their_call_and_action() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob, eve) = (w.sign_up(), w.sign_up(), w.sign_up());
        let (a, b, e) = (w.account(alice), w.account(bob), w.account(eve));
        w.sync(alice, &[b, e]);
        let (bob_device, eve_device) = (w.device(bob), w.device(eve));
        w.claim(alice, &[bob_device, eve_device]);
        let context =
            CallContext { conversation_id: Id::new_v7(w.tick()), call_id: Id::new_v7(w.tick()), action: 1 };
        // Eve is no member of the conversation.
        assert_eq!(
            w.m(alice).encrypt_call_payload(&[a, b], eve_device, &context, b"sdp"),
            Err(Error::NotAMember(eve_device))
        );
        let offer = w.m(alice).encrypt_call_payload(&[a, b], bob_device, &context, b"v=0 offer").unwrap();
        w.step(alice);
        let alice_device = w.device(alice);
        w.sync(bob, &[a]);
        // Moved to another action: refused (and that Olm message is used up).
        let answer_context = CallContext { action: 2, ..context };
        assert_eq!(
            w.m(bob).decrypt_call_payload(a, alice_device, &answer_context, &offer),
            Err(Error::CallPayloadMismatch)
        );
        w.step(bob);
        let offer = w.m(alice).encrypt_call_payload(&[a, b], bob_device, &context, b"v=0 offer").unwrap();
        w.step(alice);
        let other_call = CallContext { call_id: Id::new_v7(w.tick()), ..context };
        assert_eq!(
            w.m(bob).decrypt_call_payload(a, alice_device, &other_call, &offer),
            Err(Error::CallPayloadMismatch)
        );
        let offer = w.m(alice).encrypt_call_payload(&[a, b], bob_device, &context, b"v=0 offer").unwrap();
        w.step(alice);
        assert_eq!(w.m(bob).decrypt_call_payload(a, alice_device, &context, &offer).unwrap(), b"v=0 offer");
        w.step(bob);
        // Named as another account's device: refused before decrypting.
        assert_eq!(
            w.m(bob).decrypt_call_payload(e, alice_device, &context, &offer),
            Err(Error::DeviceOfAnotherAccount { account_id: e, device_id: alice_device })
        );
        // A call payload sent as a to-device message is not taken for anything.
        let plaintext = wire::call_signal(&context.to_bytes(), b"x");
        let stray = w.craft(alice, bob_device, &plaintext);
        w.deliver(alice, &[stray]);
        assert_eq!(w.receive(bob), vec![Received::Refused(Refusal::CallSignalOutsideCall)]);
    });
}

#[test]
fn voice_keys_reach_only_participants_and_open_their_frames() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob, eve) = (w.sign_up(), w.sign_up(), w.sign_up());
        let (a, b, e) = (w.account(alice), w.account(bob), w.account(eve));
        w.sync(alice, &[b, e]);
        let (bob_device, eve_device) = (w.device(bob), w.device(eve));
        let room = Id::new_v7(w.tick());
        let base = [0xA5u8; 16];
        // Before an Olm session: nothing sent, the device named.
        let now = w.tick();
        let share =
            w.m(alice).share_voice_key(room, &[a, b], &[bob_device], 0xA1B2_C3D4, &base, now).unwrap();
        assert!(share.messages.is_empty());
        assert_eq!(share.without_olm, vec![bob_device]);
        w.claim(alice, &[bob_device, eve_device]);
        // Eve is not in the room: the whole share is refused, nothing sent to Bob either.
        let now = w.tick();
        assert_eq!(
            w.m(alice).share_voice_key(room, &[a, b], &[bob_device, eve_device], 1, &base, now),
            Err(Error::NotAMember(eve_device))
        );
        let now = w.tick();
        let share =
            w.m(alice).share_voice_key(room, &[a, b], &[bob_device], 0xA1B2_C3D4, &base, now).unwrap();
        assert!(share.without_olm.is_empty());
        w.step(alice);
        w.deliver(alice, &share.messages);
        let received = w.receive(bob);
        let [Received::VoiceKey { sender, conversation_id, kid, key }] = &received[..] else {
            panic!("{received:?}")
        };
        assert_eq!((sender.device_id, *conversation_id, *kid), (w.device(alice), room, 0xA1B2_C3D4));
        assert_eq!(*key.0, base);
        assert!(!format!("{received:?}").contains("165, 165, 165"), "the key is never printed");
        // What Alice seals with it, Bob opens.
        let sealing = crate::sframe::FrameKey::derive(&base, 0xA1B2_C3D4);
        let frame = sealing.seal(1, &[], b"opus frame");
        let opening = crate::sframe::FrameKey::derive(&key.0[..], u64::from(*kid));
        let (_, _, plain) =
            crate::sframe::open(|k| (k == u64::from(*kid)).then_some(&opening), &[], &frame).unwrap();
        assert_eq!(plain, b"opus frame");
        // Truncated: refused, taken all the same.
        let mut short = wire::voice_key(room, 1, &base).to_vec();
        short.pop();
        let stray = w.craft(alice, bob_device, &short);
        w.deliver(alice, &[stray]);
        assert_eq!(w.receive(bob), vec![Received::Refused(Refusal::Malformed)]);
    });
}

#[test]
fn verification_messages_travel_as_0x03() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob) = (w.sign_up(), w.sign_up());
        let b = w.account(bob);
        w.sync(alice, &[b]);
        let bob_device = w.device(bob);
        w.claim(alice, &[bob_device]);
        let now = w.tick();
        let message = w.m(alice).encrypt_verification(bob_device, b"verification bytes", now).unwrap();
        w.step(alice);
        w.deliver(alice, &[message]);
        match &w.receive(bob)[..] {
            [Received::Verification { sender, bytes }] => {
                assert_eq!(sender.device_id, w.device(alice));
                assert_eq!(bytes, b"verification bytes");
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn rotation_after_n_messages_and_after_t_ms() {
    both(|restore| {
        let config = Config { rotate_after_messages: 2, rotate_after_ms: 1000 };
        let mut w = World::with_config(restore, config);
        let (alice, bob) = (w.sign_up(), w.sign_up());
        let (a, b) = (w.account(alice), w.account(bob));
        let conversation = Id::new_v7(w.tick());
        let (m1, s1, _) = w.send(alice, conversation, &[a, b], "1");
        let (m2, s2, _) = w.send(alice, conversation, &[a, b], "2");
        assert!(s1.rotated && !s2.rotated);
        assert_eq!(m1.session_id, m2.session_id);
        // Two messages: encrypting a third without sharing again is refused.
        assert_eq!(w.m(alice).encrypt(conversation, b"3"), Err(Error::RotationDue(conversation)));
        let (m3, s3, _) = w.send(alice, conversation, &[a, b], "3");
        assert!(s3.rotated);
        assert_ne!(m3.session_id, m2.session_id);
        w.now += 1001;
        let (m4, s4, _) = w.send(alice, conversation, &[a, b], "4");
        assert!(s4.rotated);
        assert_ne!(m4.session_id, m3.session_id);
        w.receive(bob);
        for (m, t) in [(&m1, "1"), (&m2, "2"), (&m3, "3"), (&m4, "4")] {
            assert_eq!(w.read(bob, m).unwrap(), t);
        }
    });
}

#[test]
fn account_keys_are_pinned_and_certificates_checked() {
    let mut w = World::new(false);
    let (alice, bob) = (w.sign_up(), w.sign_up());
    let b = w.account(bob);
    w.sync(alice, &[b]).pop().unwrap().unwrap();
    let pinned = w.m(alice).pinned_account_key(b).unwrap();
    assert!(w.m(alice).mark_verified(b, pinned));
    assert!(w.m(alice).is_verified(b));
    assert!(!w.m(alice).mark_verified(b, [9; 32]));

    // A certificate of another device listed under a new id, and a device listed twice.
    let bob_device = w.device(bob);
    let cert = w.devices[&bob_device].certificate.clone();
    let impostor = Id::new_v7(w.tick());
    let key = w.account_keys[&b];
    let change = w
        .m(alice)
        .receive_keys(b, &key, &[(bob_device, &cert), (impostor, &cert), (bob_device, &cert)])
        .unwrap();
    assert_eq!(change.refused.len(), 2);
    assert_eq!(change.refused[0].0, impostor);
    assert_eq!(w.m(alice).devices_of(b).len(), 1);
    // Garbage certificate: refused with a reason, the rest unchanged.
    let change = w.m(alice).receive_keys(b, &key, &[(bob_device, &cert), (impostor, b"junk")]).unwrap();
    assert_eq!(change.refused.len(), 1);
    assert!(change.added.is_empty() && change.removed.is_empty());

    // Bob's key changes (a new identity): refused, and the verification no longer counts.
    let new_key = AccountKey::generate(&mut OsRng::new()).public_key();
    w.account_keys.insert(b, new_key);
    assert_eq!(
        w.sync(alice, &[b]).pop().unwrap(),
        Err(Error::AccountKeyChanged { account_id: b, verified_before: true })
    );
    assert!(!w.m(alice).is_verified(b));
    assert!(w.m(alice).changed_after_verification(b));
    assert_eq!(w.m(alice).pinned_account_key(b), Some(pinned));
    // The changed key is still refused after a restore.
    let store = w.devs[alice].store.load_all().unwrap();
    let mut restored = Machine::restore(w.devs[alice].pickle_key.clone(), Config::default(), store).unwrap();
    assert!(matches!(restored.receive_keys(b, &new_key, &[]), Err(Error::AccountKeyChanged { .. })));
    assert!(restored.changed_after_verification(b));
    // Wrong length or not a point: an error, nothing pinned.
    let stranger = Id::new_v7(w.tick());
    assert!(w.m(alice).receive_keys(stranger, &[1; 31], &[]).is_err());
    assert_eq!(w.m(alice).pinned_account_key(stranger), None);
}

#[test]
fn unknown_senders_are_looked_up_and_the_message_offered_again() {
    let mut w = World::new(false);
    let (alice, bob) = (w.sign_up(), w.sign_up());
    let (a, b) = (w.account(alice), w.account(bob));
    let conversation = Id::new_v7(w.tick());
    let (_, share, _) = w.send(alice, conversation, &[a, b], "hi");
    let message = &share.messages[0];
    let alice_device = w.device(alice);
    let now = w.tick();
    assert_eq!(
        w.m(bob).receive_to_device(a, alice_device, message.message_id, &message.ciphertext, now),
        Err(Error::UnknownDevice(alice_device))
    );
    // Named as someone else's device once known: refused, not taken.
    w.sync(bob, &[a]);
    assert!(matches!(
        w.m(bob).receive_to_device(b, alice_device, message.message_id, &message.ciphertext, now),
        Err(Error::DeviceOfAnotherAccount { .. })
    ));
    assert!(matches!(
        w.m(bob).receive_to_device(a, alice_device, message.message_id, &message.ciphertext, now),
        Ok(Received::RoomKey { .. })
    ));
    // Not an Olm envelope: taken and refused.
    let junk = Id::new_v7(now);
    assert_eq!(
        w.m(bob).receive_to_device(a, alice_device, junk, &[0x02, 1, 2], now),
        Ok(Received::Refused(Refusal::UnknownEnvelope))
    );
    assert_eq!(
        w.m(bob).receive_to_device(a, alice_device, junk, &[0x02, 1, 2], now),
        Ok(Received::Duplicate)
    );
}

#[test]
fn the_0x02_share_is_the_bytes_engine_ts_sends_and_reads() {
    let mut w = World::new(false);
    let (alice, bob) = (w.sign_up(), w.sign_up());
    let (a, b) = (w.account(alice), w.account(bob));
    let conversation = Id::parse("01930000-0000-7000-8000-000000000042").unwrap();
    let (msg, share, _) = w.send(alice, conversation, &[a, b], "hello");
    // What the machine sends: 0x01 || Olm, whose plaintext is 0x02 || conversation (16) || key.
    let sent = &share.messages[0];
    assert_eq!(sent.ciphertext[0], 0x01);
    w.sync(bob, &[a]);
    let alice_device = w.device(alice);
    let peer = w.m(bob).peer(alice_device).unwrap();
    let plaintext = w.m(bob).olm_decrypt(&peer, &sent.ciphertext[1..]).unwrap();
    assert_eq!(plaintext[0], 0x02);
    assert_eq!(&plaintext[1..17], conversation.as_bytes());
    let session = InboundGroupSession::from_session_key(&plaintext[17..]).unwrap();
    assert_eq!(session.session_id(), share.session_id);
    assert_eq!(msg.session_id, share.session_id.as_bytes());

    // What an engine.ts device sends (built here from the primitives as engine.ts does):
    // a claimed one-time key, an Olm session, 0x01 || Olm(0x02 || conversation || session key),
    // then a Megolm message with the session id as ASCII.
    let legacy_account = crate::DeviceAccount::new();
    let legacy_key = AccountKey::generate(&mut OsRng::new());
    let (legacy_account_id, legacy_device) = (Id::new_v7(w.tick()), Id::new_v7(w.tick()));
    let cert = legacy_key
        .certify(&legacy_account.certificate_fields(legacy_account_id.0, legacy_device.0, 1_760_000_000))
        .to_bytes();
    let bob_device = w.device(bob);
    let otk = w.devices.get_mut(&bob_device).unwrap().one_time_keys.remove(0);
    let mut olm: OlmSession = legacy_account
        .create_outbound_session(
            &w.m(bob).ed25519_key(),
            &w.m(bob).curve25519_key(),
            &ClaimedKey::OneTime(otk),
        )
        .unwrap();
    let mut outbound = crate::megolm::OutboundGroupSession::new();
    let mut share = vec![0x02];
    share.extend_from_slice(conversation.as_bytes());
    share.extend_from_slice(&outbound.session_key());
    let mut envelope = vec![0x01];
    envelope.extend_from_slice(&olm.encrypt(&share).unwrap());
    w.m(bob).receive_keys(legacy_account_id, &legacy_key.public_key(), &[(legacy_device, &cert)]).unwrap();
    let now = w.tick();
    let received = w
        .m(bob)
        .receive_to_device(legacy_account_id, legacy_device, Id::new_v7(now), &envelope, now)
        .unwrap();
    assert!(matches!(received, Received::RoomKey { conversation_id: Some(c), .. } if c == conversation));
    let megolm = outbound.encrypt(b"from the browser");
    let session_id = outbound.session_id();
    let message = GroupMessage {
        message_id: Id::new_v7(now),
        conversation_id: conversation,
        sender_account_id: legacy_account_id,
        sender_device_id: legacy_device,
        session_id: session_id.as_bytes(),
        ciphertext: &megolm,
    };
    assert_eq!(&*w.m(bob).decrypt(&message).unwrap().plaintext, b"from the browser");
}

#[test]
fn wire_layouts_of_key_requests_and_forwarded_keys() {
    let conversation = Id::from_bytes([1; 16]);
    let device = Id::from_bytes([2; 16]);
    let account = Id::from_bytes([3; 16]);
    let request = wire::key_request(conversation, device, "sessionid");
    assert_eq!(request[0], 0x05);
    assert_eq!(&request[1..17], &[1; 16]);
    assert_eq!(&request[17..33], &[2; 16]);
    assert_eq!(&request[33..], b"sessionid");
    let forwarded = wire::forwarded_key(conversation, account, device, b"exported");
    assert_eq!(&forwarded[..], &[&[0x06][..], &[1; 16], &[3; 16], &[2; 16], b"exported"].concat()[..]);
    // Truncated or unknown: refused, never a panic.
    for bad in [&[][..], &[0x02, 1], &[0x05; 33], &[0x06; 49][..48], &[0x07]] {
        assert!(wire::parse(bad).is_err(), "{bad:?}");
    }
    let mut long = vec![0x05];
    long.extend_from_slice(&[0; 32]);
    long.extend_from_slice(&[b'a'; MAX_SESSION_ID + 1]);
    assert_eq!(wire::parse(&long).unwrap_err(), Refusal::Malformed);
    assert_eq!(wire::parse(&[0x09]).unwrap_err(), Refusal::UnknownKind(9));
}

#[test]
fn records_are_sealed_bound_to_their_names_and_restore_refuses_tampering() {
    let mut w = World::new(true);
    let (alice, bob) = (w.sign_up(), w.sign_up());
    let (a, b) = (w.account(alice), w.account(bob));
    let conversation = Id::new_v7(w.tick());
    let (msg, _, _) = w.send(alice, conversation, &[a, b], "stored");
    w.receive(bob);
    w.read(bob, &msg).unwrap();
    let store = w.devs[bob].store.clone();
    let names = store.names();
    assert!(names.iter().any(|n| n == "identity"));
    assert!(names.iter().any(|n| n.starts_with("in:")));
    assert!(names.iter().any(|n| n.starts_with("olm:")));
    assert!(names.iter().any(|n| n.starts_with("person:")));
    assert!(names.iter().any(|n| n == "taken"));
    // No plaintext in any record.
    for (_, value) in store.load_all().unwrap() {
        assert!(!value.contains("stored"));
    }
    let pk = w.devs[bob].pickle_key.clone();
    // A record moved to another name does not open.
    let inbound = names.iter().find(|n| n.starts_with("in:")).unwrap().clone();
    let person = names.iter().find(|n| n.starts_with("person:")).unwrap().clone();
    let mut moved = store.clone();
    let value = moved.get(&person).unwrap().to_owned();
    moved.put_raw(&format!("person:{}", Id::new_v7(1)), &value);
    assert!(matches!(
        Machine::restore(pk.clone(), Config::default(), moved.load_all().unwrap()),
        Err(Error::MalformedRecord(_))
    ));
    // A tampered record, a wrong pickle key, no identity: errors.
    let mut tampered = store.clone();
    tampered.put_raw(&inbound, "KLPKAQMAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        Machine::restore(pk.clone(), Config::default(), tampered.load_all().unwrap()).unwrap_err(),
        Error::MalformedRecord(inbound.clone())
    );
    let other = PickleKey::from_bytes([9; 32]);
    assert!(Machine::restore(other, Config::default(), store.load_all().unwrap()).is_err());
    let mut headless = store.clone();
    headless.apply(&[Change { name: "identity".into(), value: None }]).unwrap();
    assert_eq!(
        Machine::restore(pk.clone(), Config::default(), headless.load_all().unwrap()).unwrap_err(),
        Error::NoIdentity
    );
    // Names of a newer build are left alone.
    let mut newer = store.clone();
    newer.put_raw("backup:whatever", "x");
    let mut restored = Machine::restore(pk, Config::default(), newer.load_all().unwrap()).unwrap();
    assert_eq!(&*restored.decrypt(&msg.group()).unwrap().plaintext, b"stored");
    // The replay record survived the restore.
    let mut copy = msg.clone();
    copy.id = Id::new_v7(7);
    assert_eq!(restored.decrypt(&copy.group()).unwrap_err().reason, UndecryptableReason::Replayed);
}

#[test]
fn a_device_without_the_account_key_cannot_share_or_upload() {
    let pk = PickleKey::generate(&mut OsRng::new());
    let mut m = Machine::new(pk, Config::default(), Id::new_v7(1), Id::new_v7(2), None);
    assert!(!m.is_ready());
    assert_eq!(m.keys_to_upload(5, 1).unwrap_err(), Error::NoAccountKey);
    assert_eq!(m.share_room_key(Id::new_v7(3), &[], 1).unwrap_err(), Error::NoAccountKey);
    assert_eq!(m.account_key_secret().unwrap_err(), Error::NoAccountKey);
    m.set_account_key(AccountKey::generate(&mut OsRng::new())).unwrap();
    assert_eq!(
        m.set_account_key(AccountKey::generate(&mut OsRng::new())).unwrap_err(),
        Error::AccountKeyHeld
    );
    assert_eq!(m.share_room_key(Id::new_v7(3), &[], 1).unwrap_err(), Error::NotReady);
    let upload = m.keys_to_upload(5, 1_760_000_000_000).unwrap();
    assert!(upload.certificate.is_some() && upload.fallback_key.is_some());
    assert_eq!(upload.one_time_keys.len(), 5);
    m.keys_uploaded();
    assert!(m.is_ready());
    let again = m.keys_to_upload(5, 1_760_000_000_000).unwrap();
    assert!(again.certificate.is_none() && again.fallback_key.is_none());
    assert_eq!(m.one_time_keys_needed(100), 0);
    assert_eq!(m.one_time_keys_needed(3), UPLOAD_ONE_TIME_KEYS);
}

#[test]
fn a_share_made_but_not_confirmed_still_rotates_when_a_member_leaves() {
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob, carol) = (w.sign_up(), w.sign_up(), w.sign_up());
        let (a, b, c) = (w.account(alice), w.account(bob), w.account(carol));
        let conversation = Id::new_v7(w.tick());
        w.sync(alice, &[a, b, c]);
        let devices = [w.device(bob), w.device(carol)];
        w.claim(alice, &devices);
        let now = w.tick();
        // The shares go out, but the app stops before confirming them (and before any message).
        let first = w.m(alice).share_room_key(conversation, &[b, c], now).unwrap();
        w.step(alice);
        w.deliver(alice, &first.messages);
        w.receive(carol);
        // Carol is removed: the session carol may hold is not used again.
        let (msg, second, _) = w.send(alice, conversation, &[b], "without carol");
        assert!(second.rotated);
        assert_ne!(second.session_id, first.session_id);
        assert_eq!(w.read(carol, &msg).unwrap_err().reason, UndecryptableReason::MissingKey);
    });
}

/// What the old engine.ts would have stored for device `i`, made from the machine's own state
/// (the pickles are the same crate objects the old engine pickled), with the old names and keys.
fn legacy_of(w: &mut World, i: usize, drop_list_of: Option<Id>) -> Legacy {
    let pk = w.devs[i].pickle_key.clone();
    let m = w.m(i);
    let mut legacy = Legacy {
        account_id: Some(m.account_id),
        device_id: Some(m.device_id),
        device_pickle: m.account.pickle(&pk),
        account_key_pickle: m.account_key.as_ref().map(|k| k.pickle(&pk, &mut OsRng::new())),
        certificate_uploaded: m.certificate_uploaded,
        ..Legacy::default()
    };
    for (account, person) in &m.people {
        if let Some(k) = person.pinned {
            legacy.pinned.push((*account, k.to_vec()));
        }
        if let Some(k) = person.verified {
            legacy.verified.push((*account, k.to_vec()));
        }
        if person.changed_after_verification {
            legacy.verified_then_changed.push(*account);
        }
        if let Some(devices) = &person.devices
            && drop_list_of != Some(*account)
        {
            legacy.devices.push((*account, devices.clone()));
        }
    }
    legacy.peers = m.peers.values().copied().collect();
    for (device, sessions) in &m.olm {
        legacy.olm.push((*device, sessions.iter().map(|s| s.pickle(&pk)).collect()));
    }
    for (conversation, o) in &m.outbound {
        legacy.outbound.push(LegacyOutbound {
            conversation_id: *conversation,
            pickle: o.session.pickle(&pk),
            shared_with: o.shared_with.iter().copied().collect(),
            created_at_ms: o.created_at_ms,
        });
    }
    for ((device, session_id), i) in &m.inbound {
        legacy.inbound.push(LegacyInbound {
            key: format!("{device}|{session_id}"),
            pickle: i.session.pickle(&pk, &mut OsRng::new()),
            sender_account_id: i.sender_account,
            conversation_id: i.conversation,
        });
        for (index, message) in &i.seen {
            legacy.seen.push((format!("{device}|{session_id}|{index}"), *message));
        }
    }
    legacy.taken = m.taken.iter().copied().collect();
    legacy
}

#[test]
fn the_old_engines_state_is_imported_once_and_keeps_working() {
    let mut w = World::new(true);
    let (alice, bob) = (w.sign_up(), w.sign_up());
    let (a, b) = (w.account(alice), w.account(bob));
    let conversation = Id::new_v7(w.tick());
    let (from_alice, _, _) = w.send(alice, conversation, &[a, b], "before the update");
    w.receive(bob);
    let (from_bob, _, _) = w.send(bob, conversation, &[a, b], "hi alice");
    w.receive(alice);
    assert_eq!(w.read(alice, &from_bob).unwrap(), "hi alice");
    let pinned = w.m(alice).pinned_account_key(b).unwrap();
    assert!(w.m(alice).mark_verified(b, pinned));

    // Alice's browser updates: the old records become the machine's (Bob's list was dropped by
    // an announced change, so it is kept but listed again before the next share).
    let legacy = legacy_of(&mut w, alice, Some(b));
    let pk = w.devs[alice].pickle_key.clone();
    let mut imported = Machine::import_legacy(pk.clone(), Config::default(), legacy.clone()).unwrap();
    let mut store = MemoryStore::new();
    store.apply(&imported.take_changes()).unwrap();
    w.devs[alice].store = store;
    w.devs[alice].machine = Some(
        Machine::restore(pk.clone(), Config::default(), w.devs[alice].store.load_all().unwrap()).unwrap(),
    );

    let m = w.m(alice);
    assert!(m.is_ready());
    assert!(m.is_verified(b));
    assert_eq!(m.devices_to_query(&[a, b]), vec![b]);
    assert_eq!(m.devices_of(b).len(), 1);
    // History reads, the replay record came along.
    assert_eq!(w.read(alice, &from_alice).unwrap(), "before the update");
    assert_eq!(w.read(alice, &from_bob).unwrap(), "hi alice");
    let mut replay = from_bob.clone();
    replay.id = Id::new_v7(w.tick());
    assert_eq!(w.read(alice, &replay).unwrap_err().reason, UndecryptableReason::Replayed);
    // The same Olm and Megolm sessions go on: no new share for the same devices.
    let (next, share, _) = w.send(alice, conversation, &[a, b], "after the update");
    assert!(!share.rotated && share.messages.is_empty());
    assert_eq!(w.read(bob, &next).unwrap(), "after the update");
    let (reply, _, _) = w.send(bob, conversation, &[a, b], "still here");
    assert_eq!(w.read(alice, &reply).unwrap(), "still here");
    // Bob's key changing is still refused, with the stronger warning.
    let new_key = AccountKey::generate(&mut OsRng::new()).public_key();
    w.account_keys.insert(b, new_key);
    assert_eq!(
        w.sync(alice, &[b]).pop().unwrap(),
        Err(Error::AccountKeyChanged { account_id: b, verified_before: true })
    );

    // Anything that does not open: an error naming the old record, no machine.
    let mut broken = legacy.clone();
    broken.inbound[0].pickle.push('x');
    assert!(matches!(
        Machine::import_legacy(pk.clone(), Config::default(), broken),
        Err(Error::MalformedRecord(name)) if name.starts_with("legacy in:")
    ));
    let mut foreign = legacy.clone();
    let other = foreign.inbound[1].key.clone();
    foreign.inbound[0].key = other;
    assert!(Machine::import_legacy(pk.clone(), Config::default(), foreign).is_err());
    let mut wrong_key = legacy.clone();
    wrong_key.pinned[0].1.pop();
    assert!(Machine::import_legacy(pk.clone(), Config::default(), wrong_key).is_err());
    assert_eq!(
        Machine::import_legacy(PickleKey::generate(&mut OsRng::new()), Config::default(), legacy)
            .unwrap_err(),
        Error::MalformedRecord("legacy device".into())
    );
}

#[test]
fn legacy_olm_lists_keep_the_first_and_the_latest_sessions() {
    let kept = legacy::keep_olm((0..12).collect());
    assert_eq!(kept, vec![0, 5, 6, 7, 8, 9, 10, 11]);
    assert_eq!(legacy::keep_olm(vec![1, 2]), vec![1, 2]);
}

/// The session entries the device has not backed up yet, as a server would store them (by
/// session id), marked as backed up.
fn back_up(w: &mut World, i: usize, key: &crate::backup::BackupKey, server: &mut BTreeMap<String, Vec<u8>>) {
    loop {
        let batch = w.m(i).sessions_to_back_up(key, 2);
        if batch.is_empty() {
            break;
        }
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        server.extend(batch);
        w.m(i).mark_backed_up(&ids);
        w.step(i);
    }
}

#[test]
fn a_device_restored_from_the_backup_reads_the_history() {
    use crate::backup::BackupKey;
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob) = (w.sign_up(), w.sign_up());
        let (a, b) = (w.account(alice), w.account(bob));
        let conversation = Id::new_v7(w.tick());
        let key = BackupKey::generate(&mut OsRng::new());
        let identity =
            key.encrypt_identity(a.as_bytes(), &w.m(alice).account_key_secret().unwrap(), &mut OsRng::new());
        let mut server = BTreeMap::new();

        let (first, _, _) = w.send(alice, conversation, &[a, b], "from alice");
        let (second, _, _) = w.send(bob, conversation, &[a, b], "from bob");
        w.receive(alice);
        w.receive(bob);
        back_up(&mut w, alice, &key, &mut server);
        assert_eq!(server.len(), 2, "alice's own session and bob's");
        assert_eq!(w.m(alice).sessions_not_backed_up(), 0);
        assert!(w.m(alice).sessions_to_back_up(&key, 10).is_empty(), "marked sessions do not go again");

        // A new session later: only it goes.
        let other = Id::new_v7(w.tick());
        let (third, _, _) = w.send(bob, other, &[a, b], "elsewhere");
        w.receive(alice);
        let batch = w.m(alice).sessions_to_back_up(&key, 10);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].0.as_bytes(), third.session_id.as_slice());
        // Handed out, then the key rotated before the upload finished: not marked.
        w.m(alice).reset_backed_up();
        w.m(alice).mark_backed_up(&[batch[0].0.clone()]);
        w.step(alice);
        assert_eq!(w.m(alice).sessions_not_backed_up(), 3, "after a reset everything goes again");
        back_up(&mut w, alice, &key, &mut server);
        assert_eq!(server.len(), 3);

        // A brand-new device of alice: the account key from the identity blob, then every entry.
        let secret = key.decrypt_identity(a.as_bytes(), &identity).unwrap();
        let restored = w.new_device(a, AccountKey::from_secret_bytes(&secret));
        for m in [&first, &second] {
            assert_eq!(w.read(restored, m).unwrap_err().reason, UndecryptableReason::MissingKey);
        }
        for (session_id, entry) in &server {
            let imported = w.m(restored).import_backed_up(&key, session_id, entry).unwrap();
            assert!(imported.stored);
            assert_eq!(imported.session_id, *session_id);
            w.step(restored);
        }
        assert_eq!(w.read(restored, &first).unwrap(), "from alice");
        assert_eq!(w.read(restored, &second).unwrap(), "from bob");
        assert_eq!(w.read(restored, &third).unwrap(), "elsewhere");
        // Imported sessions are in the backup already.
        assert_eq!(w.m(restored).sessions_not_backed_up(), 0);
        // The binding came along: moved to another conversation, refused.
        let mut moved = second.clone();
        moved.conversation = Id::new_v7(w.tick());
        assert_eq!(w.read(restored, &moved).unwrap_err().reason, UndecryptableReason::SharedForSomethingElse);
        // Importing again keeps what is held.
        let (session_id, entry) = server.iter().next().unwrap();
        let again = w.m(restored).import_backed_up(&key, session_id, entry).unwrap();
        assert!(!again.stored);
    });
}

#[test]
fn backup_entries_of_another_account_or_session_or_key_are_refused_and_change_nothing() {
    use crate::backup::BackupKey;
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob) = (w.sign_up(), w.sign_up());
        let (a, b) = (w.account(alice), w.account(bob));
        let conversation = Id::new_v7(w.tick());
        let key = BackupKey::generate(&mut OsRng::new());
        let mut server = BTreeMap::new();
        let (msg, _, _) = w.send(alice, conversation, &[a, b], "one");
        let other = Id::new_v7(w.tick());
        w.send(alice, other, &[a, b], "two");
        back_up(&mut w, alice, &key, &mut server);
        let mut entries = server.iter();
        let (id1, entry1) = entries.next().unwrap();
        let (id2, _) = entries.next().unwrap();

        // Bob's device (another account) with the very key: the entry does not open.
        assert_eq!(
            w.m(bob).import_backed_up(&key, id1, entry1),
            Err(Error::Crypto(crate::Error::BackupDecryption))
        );
        assert!(!w.m(bob).has_changes());
        assert_eq!(w.read(bob, &msg).unwrap_err().reason, UndecryptableReason::MissingKey);

        let alice2 = w.add_device(alice);
        // Stored under another session id (the server swapped entries): refused.
        assert_eq!(
            w.m(alice2).import_backed_up(&key, id2, entry1),
            Err(Error::Crypto(crate::Error::BackupDecryption))
        );
        // Another backup key: refused.
        let wrong = BackupKey::generate(&mut OsRng::new());
        assert_eq!(
            w.m(alice2).import_backed_up(&wrong, id1, entry1),
            Err(Error::Crypto(crate::Error::BackupDecryption))
        );
        // Truncated or flipped: refused.
        assert!(w.m(alice2).import_backed_up(&key, id1, &entry1[..entry1.len() - 1]).is_err());
        let mut flipped = entry1.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(w.m(alice2).import_backed_up(&key, id1, &flipped).is_err());
        assert!(!w.m(alice2).has_changes());
        assert_eq!(w.m(alice2).sessions_not_backed_up(), 0);
    });
}

#[test]
fn a_backed_up_session_never_rebinds_a_session_held() {
    use crate::backup::{BackupKey, SessionOrigin};
    both(|restore| {
        let mut w = World::new(restore);
        let (alice, bob) = (w.sign_up(), w.sign_up());
        let (a, b) = (w.account(alice), w.account(bob));
        let conversation = Id::new_v7(w.tick());
        let (msg, _, _) = w.send(alice, conversation, &[a, b], "bound");
        w.receive(bob);
        let key = BackupKey::generate(&mut OsRng::new());
        let session_id = String::from_utf8(msg.session_id.clone()).unwrap();
        let (alice_device, bob_device) = (w.device(alice), w.device(bob));
        // Bob's backup, written by a modified client: alice's session claimed for another
        // conversation, or claimed as sent by bob's account from alice's device.
        let held = &w.m(bob).inbound[&(alice_device, session_id.clone())].session;
        let mut rng = OsRng::new();
        let elsewhere = SessionOrigin {
            sender_account_id: a.0,
            sender_device_id: alice_device.0,
            conversation_id: Some(Id::new_v7(1).0),
        };
        let moved = key.encrypt_session(b.as_bytes(), held, &elsewhere, &mut rng);
        let wrong_owner = SessionOrigin {
            sender_account_id: b.0,
            sender_device_id: alice_device.0,
            conversation_id: Some(conversation.0),
        };
        let reattributed = key.encrypt_session(b.as_bytes(), held, &wrong_owner, &mut rng);
        let own_device = SessionOrigin {
            sender_account_id: a.0,
            sender_device_id: bob_device.0,
            conversation_id: Some(conversation.0),
        };
        let as_own = key.encrypt_session(b.as_bytes(), held, &own_device, &mut rng);
        let _ = w.m(bob).take_changes();
        assert_eq!(w.m(bob).import_backed_up(&key, &session_id, &moved), Err(Error::BackupSessionConflict));
        assert!(matches!(
            w.m(bob).import_backed_up(&key, &session_id, &reattributed),
            Err(Error::DeviceOfAnotherAccount { .. })
        ));
        assert!(matches!(
            w.m(bob).import_backed_up(&key, &session_id, &as_own),
            Err(Error::DeviceOfAnotherAccount { .. })
        ));
        assert!(!w.m(bob).has_changes());
        assert_eq!(w.read(bob, &msg).unwrap(), "bound");
    });
}
