//! Short authentication strings (SAS): two people compare seven emoji or three numbers to
//! verify each other's keys in person or over a call.
//!
//! Both devices create a [`SasVerification`], exchange public keys (over Olm to-device
//! messages), and call [`SasVerification::establish`]. Each side shows
//! [`EstablishedSas::short_auth_string`]; if the people confirm they match, each side sends
//! [`EstablishedSas::mac`] of the keys it vouches for (its device Ed25519 key, its account
//! key), and the other side checks them with [`EstablishedSas::verify_mac`] before recording
//! the verification.
//!
//! The emoji are the standard table of 64 used by Matrix clients ([`SAS_EMOJI`]).
//!
//! # Security
//!
//! The string binds both public keys and a transaction id (`FORMAT.md`, "SAS info strings"),
//! so a man in the middle who substitutes keys gets different strings on the two screens. To
//! stop such an attacker from choosing its key after seeing yours, the side that starts the
//! verification sends [`commitment`] to its public key first and reveals the key only after
//! receiving the other side's; the other side checks it with [`check_commitment`].

use sha2::{Digest as _, Sha256};
use vodozemac::sas::{EstablishedSas as VodozemacEstablished, Mac, Sas};

use crate::encoding::{b64, curve25519_key};
use crate::{Error, Result};

/// One emoji of the SAS table: the character(s) and its English name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SasEmoji {
    /// The emoji as a string (some carry the variation selector U+FE0F).
    pub emoji: &'static str,
    /// The English name shown under it.
    pub name: &'static str,
}

const fn e(emoji: &'static str, name: &'static str) -> SasEmoji {
    SasEmoji { emoji, name }
}

/// The standard SAS emoji table, indexed by the 6-bit values of the short auth string.
pub const SAS_EMOJI: [SasEmoji; 64] = [
    e("🐶", "Dog"),
    e("🐱", "Cat"),
    e("🦁", "Lion"),
    e("🐎", "Horse"),
    e("🦄", "Unicorn"),
    e("🐷", "Pig"),
    e("🐘", "Elephant"),
    e("🐰", "Rabbit"),
    e("🐼", "Panda"),
    e("🐓", "Rooster"),
    e("🐧", "Penguin"),
    e("🐢", "Turtle"),
    e("🐟", "Fish"),
    e("🐙", "Octopus"),
    e("🦋", "Butterfly"),
    e("🌷", "Flower"),
    e("🌳", "Tree"),
    e("🌵", "Cactus"),
    e("🍄", "Mushroom"),
    e("🌏", "Globe"),
    e("🌙", "Moon"),
    e("☁️", "Cloud"),
    e("🔥", "Fire"),
    e("🍌", "Banana"),
    e("🍎", "Apple"),
    e("🍓", "Strawberry"),
    e("🌽", "Corn"),
    e("🍕", "Pizza"),
    e("🎂", "Cake"),
    e("❤️", "Heart"),
    e("😀", "Smiley"),
    e("🤖", "Robot"),
    e("🎩", "Hat"),
    e("👓", "Glasses"),
    e("🔧", "Spanner"),
    e("🎅", "Santa"),
    e("👍", "Thumbs Up"),
    e("☂️", "Umbrella"),
    e("⌛", "Hourglass"),
    e("⏰", "Clock"),
    e("🎁", "Gift"),
    e("💡", "Light Bulb"),
    e("📕", "Book"),
    e("✏️", "Pencil"),
    e("📎", "Paperclip"),
    e("✂️", "Scissors"),
    e("🔒", "Lock"),
    e("🔑", "Key"),
    e("🔨", "Hammer"),
    e("☎️", "Telephone"),
    e("🏁", "Flag"),
    e("🚂", "Train"),
    e("🚲", "Bicycle"),
    e("✈️", "Aeroplane"),
    e("🚀", "Rocket"),
    e("🏆", "Trophy"),
    e("⚽", "Ball"),
    e("🎸", "Guitar"),
    e("🎺", "Trumpet"),
    e("🔔", "Bell"),
    e("⚓", "Anchor"),
    e("🎧", "Headphones"),
    e("📁", "Folder"),
    e("📌", "Pin"),
];

/// The commitment to a SAS public key: `SHA-256("kitsulan/sas-commitment/v1" || key)`.
pub fn commitment(public_key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kitsulan/sas-commitment/v1");
    h.update(public_key);
    h.finalize().into()
}

/// Whether `public_key` matches an earlier [`commitment`] (constant-time is not needed: both
/// values are public once revealed).
pub fn check_commitment(public_key: &[u8; 32], expected: &[u8]) -> bool {
    commitment(public_key).as_slice() == expected
}

/// One side of a SAS verification before the other side's key is known.
pub struct SasVerification {
    inner: Sas,
}

impl SasVerification {
    /// A new ephemeral key pair.
    pub fn new() -> Self {
        Self { inner: Sas::new() }
    }

    /// Our ephemeral public key, to send to the other side.
    pub fn public_key(&self) -> [u8; 32] {
        self.inner.public_key().to_bytes()
    }

    /// Completes the key agreement with the other side's public key.
    pub fn establish(self, their_public_key: &[u8]) -> Result<EstablishedSas> {
        let theirs = curve25519_key(their_public_key).map_err(|_| Error::SasKeyAgreement)?;
        let inner = self.inner.diffie_hellman(theirs).map_err(|_| Error::SasKeyAgreement)?;
        Ok(EstablishedSas { inner })
    }
}

impl Default for SasVerification {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SasVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SasVerification")
            .field("public_key", &b64(&self.public_key()))
            .finish_non_exhaustive()
    }
}

/// What the two people compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortAuthString {
    /// Seven indices into [`SAS_EMOJI`].
    pub emoji_indices: [u8; 7],
    /// Three numbers between 1000 and 9191.
    pub decimals: [u16; 3],
}

impl ShortAuthString {
    /// The seven emoji.
    pub fn emoji(&self) -> [SasEmoji; 7] {
        self.emoji_indices.map(|i| SAS_EMOJI[usize::from(i & 63)])
    }
}

/// A SAS after key agreement.
pub struct EstablishedSas {
    inner: VodozemacEstablished,
}

impl EstablishedSas {
    fn keys_sorted(&self) -> (String, String) {
        let ours = self.inner.our_public_key().to_base64();
        let theirs = self.inner.their_public_key().to_base64();
        if ours <= theirs { (ours, theirs) } else { (theirs, ours) }
    }

    /// The emoji and decimals for `transaction_id` (any string both sides agreed on, such as
    /// the verification request id). Equal on both sides only if no one is in the middle.
    pub fn short_auth_string(&self, transaction_id: &str) -> ShortAuthString {
        let (low, high) = self.keys_sorted();
        let bytes = self.inner.bytes(&format!("KITSULAN_SAS_V1|{transaction_id}|{low}|{high}"));
        let (a, b, c) = bytes.decimals();
        ShortAuthString { emoji_indices: bytes.emoji_indices(), decimals: [a, b, c] }
    }

    fn mac_info(&self, transaction_id: &str, key_id: &str, from_us: bool) -> String {
        let ours = self.inner.our_public_key().to_base64();
        let theirs = self.inner.their_public_key().to_base64();
        let (from, to) = if from_us { (ours, theirs) } else { (theirs, ours) };
        format!("KITSULAN_SAS_MAC_V1|{transaction_id}|{key_id}|{from}|{to}")
    }

    /// Our MAC (32 bytes) over a key we vouch for, named by `key_id` (for example
    /// `"device_ed25519"` or `"account"`), to send after the people confirmed the match.
    pub fn mac(&self, transaction_id: &str, key_id: &str, key: &[u8]) -> Vec<u8> {
        let info = self.mac_info(transaction_id, key_id, true);
        self.inner.calculate_mac(&b64(key), &info).as_bytes().to_vec()
    }

    /// Checks the other side's MAC over its key `key` named `key_id`.
    pub fn verify_mac(&self, transaction_id: &str, key_id: &str, key: &[u8], mac: &[u8]) -> Result<()> {
        let info = self.mac_info(transaction_id, key_id, false);
        self.inner.verify_mac(&b64(key), &info, &Mac::from_slice(mac)).map_err(|_| Error::SasMacMismatch)
    }
}

impl std::fmt::Debug for EstablishedSas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EstablishedSas { shared_secret: [redacted] }")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn both_sides_agree_and_macs_verify() {
        let alice = SasVerification::new();
        let bob = SasVerification::new();
        let (a_pk, b_pk) = (alice.public_key(), bob.public_key());
        let commit = commitment(&a_pk);
        let alice = alice.establish(&b_pk).unwrap();
        let bob = bob.establish(&a_pk).unwrap();
        assert!(check_commitment(&a_pk, &commit));
        let (sa, sb) = (alice.short_auth_string("txn1"), bob.short_auth_string("txn1"));
        assert_eq!(sa, sb);
        assert!(sa.decimals.iter().all(|d| (1000..=9191).contains(d)));
        assert_eq!(sa.emoji().len(), 7);
        assert_ne!(sa, alice.short_auth_string("txn2"));

        let key = [9u8; 32];
        let mac = alice.mac("txn1", "device_ed25519", &key);
        bob.verify_mac("txn1", "device_ed25519", &key, &mac).unwrap();
        assert_eq!(bob.verify_mac("txn1", "account", &key, &mac).unwrap_err(), Error::SasMacMismatch);
        assert_eq!(
            bob.verify_mac("txn1", "device_ed25519", &[8; 32], &mac).unwrap_err(),
            Error::SasMacMismatch
        );
        // A MAC reflected back to its sender does not verify.
        assert_eq!(
            alice.verify_mac("txn1", "device_ed25519", &key, &mac).unwrap_err(),
            Error::SasMacMismatch
        );
    }

    #[test]
    fn a_man_in_the_middle_shows_different_strings() {
        let alice = SasVerification::new();
        let bob = SasVerification::new();
        let mallory_a = SasVerification::new();
        let mallory_b = SasVerification::new();
        let (a_pk, b_pk) = (alice.public_key(), bob.public_key());
        let alice = alice.establish(&mallory_a.public_key()).unwrap();
        let bob = bob.establish(&mallory_b.public_key()).unwrap();
        let _ = (mallory_a.establish(&a_pk).unwrap(), mallory_b.establish(&b_pk).unwrap());
        assert_ne!(alice.short_auth_string("t"), bob.short_auth_string("t"));
        assert!(!check_commitment(&b_pk, &commitment(&a_pk)));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(SasVerification::new().establish(&[0; 32]).unwrap_err(), Error::SasKeyAgreement);
        assert_eq!(SasVerification::new().establish(&[1; 5]).unwrap_err(), Error::SasKeyAgreement);
    }

    #[test]
    fn emoji_table_is_the_standard_one() {
        assert_eq!(SAS_EMOJI[0], e("🐶", "Dog"));
        assert_eq!(SAS_EMOJI[34], e("🔧", "Spanner"));
        assert_eq!(SAS_EMOJI[63], e("📌", "Pin"));
        let names: std::collections::HashSet<_> = SAS_EMOJI.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 64);
    }
}
