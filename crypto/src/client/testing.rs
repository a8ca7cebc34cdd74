//! Test-only access to a [`Machine`] (cargo feature `testing`, enabled by the e2e tests only,
//! never by the WASM build or the server): what attack tests need to play a misbehaving device
//! (its Olm account, Olm messages with any plaintext) and what the plaintext scans need to know
//! (every secret the device holds).

use super::{Error, Id, Machine, wire};
use crate::device::DeviceAccount;
use crate::{OsRng, PickleKey};

impl Machine {
    /// This device's Olm account (its keys, for tests that upload or sign by hand).
    pub fn account(&self) -> &DeviceAccount {
        &self.account
    }

    /// This device's Olm account, mutable (tests that generate keys outside the protocol).
    pub fn account_mut(&mut self) -> &mut DeviceAccount {
        self.dirty.insert(super::records::RecordKey::Identity);
        &mut self.account
    }

    /// `0x01 || Olm(plaintext)` for `device` on the current Olm session, whatever `plaintext`
    /// says: a hostile payload (a forged share, a wrong binding) for an attack test.
    pub fn olm_encrypt_raw(&mut self, device: Id, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        self.olm_encrypt(device, plaintext)
    }

    /// `0x02 || conversation id || session key`: a room-key share plaintext, for attack tests
    /// that bind a key to something else than the protocol would.
    pub fn conversation_key_plaintext(conversation: Id, session_key: &[u8]) -> Vec<u8> {
        wire::conversation_key(conversation, session_key).to_vec()
    }

    /// Tries every inbound session this device holds, whoever shared it and for whatever, on a
    /// Megolm message (no binding, no replay record): what a device that kept its old keys
    /// could do with a ciphertext it got hold of.
    pub fn decrypt_with_any_session(&mut self, megolm: &[u8]) -> Option<Vec<u8>> {
        self.inbound.values_mut().find_map(|i| i.session.decrypt_history(megolm).ok().map(|d| d.plaintext))
    }

    /// The private material of this device a server must never hold, labelled: the account key
    /// secret, the session key and ratchet of every outbound Megolm session, the ratchet of
    /// every inbound one (own sessions included, from their first index), the device's pickle
    /// and the key it was pickled under, and the pickle key of the records.
    pub fn secrets_for_scan(&self) -> Vec<(String, Vec<u8>)> {
        let who = format!("{}…", self.device_id.to_string().get(..13).unwrap_or(""));
        let mut out = Vec::new();
        if let Some(key) = &self.account_key {
            out.push((format!("account key secret ({who})"), key.to_secret_bytes().to_vec()));
        }
        for (conversation, outbound) in &self.outbound {
            // Session key v2: version (1) || index (4) || ratchet (128) || public key (32) || signature.
            let key = outbound.session.session_key();
            out.push((format!("outbound Megolm session key of {conversation} ({who})"), key.to_vec()));
            if let Some(ratchet) = key.get(5..133) {
                out.push((format!("outbound Megolm ratchet of {conversation} ({who})"), ratchet.to_vec()));
            }
        }
        for ((from, id), inbound) in &self.inbound {
            // Exported key v1: version (1) || index (4) || ratchet (128) || public key (32).
            let exported = inbound.session.export_at_first_known_index();
            if let Some(ratchet) = exported.get(5..133) {
                out.push((format!("inbound Megolm ratchet {id} from {from} ({who})"), ratchet.to_vec()));
            }
        }
        let pickle_key = PickleKey::generate(&mut OsRng::new());
        out.push((format!("device pickle ({who})"), self.account.pickle(&pickle_key).into_bytes()));
        out.push((format!("pickle key ({who})"), pickle_key.as_bytes().to_vec()));
        out.push((format!("record pickle key ({who})"), self.pickle_key.as_bytes().to_vec()));
        out
    }
}
