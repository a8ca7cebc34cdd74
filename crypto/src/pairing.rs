//! Linking a new device to an existing one: the QR payload, the 8-digit PIN, and the secure
//! channel (vodozemac ECIES: X25519, HKDF-SHA-512, ChaCha20-Poly1305) between the two.
//!
//! # Flow
//!
//! 1. The new device asks the server for a pairing; the server returns a pairing id (and the
//!    PIN it will accept, or the device proposes one with [`generate_pin`]). The new device
//!    creates a [`NewDevicePairing`] and shows [`NewDevicePairing::qr`] (server URL, pairing
//!    id, its public key) and the PIN, and uploads its public key to the server under the
//!    pairing id.
//! 2. The existing device either scans the QR ([`PairingQr::from_text`]), or the person types
//!    the PIN and the existing device asks the server for the public key stored under it.
//! 3. The existing device calls [`connect`] with that key and sends the returned initial
//!    message through the server; the new device calls [`NewDevicePairing::accept`] with it.
//! 4. Inside the channel both devices run a SAS verification with a commitment
//!    ([`crate::sas`]): the person compares the same 7 emoji on both screens, each device sends
//!    a MAC over the channel keys it saw, and only after both MACs verify does the existing
//!    device send the account key with [`PairingChannel::encrypt`]. The message kinds and their
//!    order are in `docs/e2ee.md` ("Channel messages") and `FORMAT.md`. The server relays only
//!    opaque bytes. ([`PairingChannel::check_code`] is kept for clients of the first version.)
//!
//! Wire formats are in `FORMAT.md` ("Pairing"). Channel messages must be decrypted in the
//! order they were sent (the nonce is a counter); a lost message ends the pairing.
//!
//! # Security
//!
//! **QR.** The existing device learns the new device's key from the camera, not from the
//! server, so only the new device can read what the existing device sends. The server can
//! still try to pose as the existing device towards the new one (ECIES does not authenticate
//! the initiator); it does not know the real channel's secret, so its check code matches the
//! real one with probability 1/90 per attempt. The new device accepts one initial message per
//! pairing ([`NewDevicePairing::accept`] consumes it), and a mismatch must end the pairing.
//!
//! **PIN.** Here the server hands out the new device's public key, so a malicious server can
//! substitute its own key and sit in the middle of both channels. The check code detects a
//! naive middleman, but it has only 90 values and the server knows both of its channels'
//! secrets before it must commit to the second one, so a server that grinds ephemeral keys
//! (about 90 tries, milliseconds) makes both screens show the same code. That is why the flow
//! (step 4) runs a SAS inside the channel with [`crate::sas::commitment`] sent before the
//! keys, compares its emoji instead of the check code, and MACs the channel keys: a middleman
//! must commit to its SAS key before it sees the other's, and cannot make the MACs of two
//! different channels agree.

use rand_core::CryptoRng;
use vodozemac::ecies::{Ecies, EstablishedEcies, InitialMessage, Message};

use crate::encoding::{Reader, b64url, curve25519_key, unb64url};
use crate::{Error, Result};

/// The ECIES application info: domain separation for keys and check codes.
pub const PAIRING_INFO: &str = "KITSULAN_PAIRING_V1";
/// Version byte of the QR payload.
pub const QR_VERSION: u8 = 1;
/// Text prefix of the QR payload.
pub const QR_TEXT_PREFIX: &str = "KITSULAN-PAIR:";
/// Longest server URL a QR payload may carry, in bytes.
pub const MAX_SERVER_URL_LEN: usize = 512;
/// Number of digits in a pairing PIN.
pub const PIN_DIGITS: usize = 8;

/// What the new device shows as a QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingQr {
    /// The pairing id the server issued (UUID bytes).
    pub pairing_id: [u8; 16],
    /// The new device's ephemeral Curve25519 public key.
    pub public_key: [u8; 32],
    /// The server's base URL, so a device of another server is never confused with ours.
    pub server_url: String,
}

impl PairingQr {
    /// `version (1) | pairing id (16) | public key (32) | url length (u16 BE) | url (UTF-8)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let url = self.server_url.as_bytes();
        let mut out = Vec::with_capacity(51 + url.len());
        out.push(QR_VERSION);
        out.extend_from_slice(&self.pairing_id);
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&u16::try_from(url.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(url);
        out
    }

    /// Parses [`PairingQr::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, Error::MalformedPairingData);
        if r.u8()? != QR_VERSION {
            return Err(Error::MalformedPairingData);
        }
        let pairing_id = r.array()?;
        let public_key = r.array()?;
        let len = usize::from(r.u16()?);
        if len > MAX_SERVER_URL_LEN {
            return Err(Error::MalformedPairingData);
        }
        let server_url =
            std::str::from_utf8(r.take(len)?).map_err(|_| Error::MalformedPairingData)?.to_owned();
        r.finish()?;
        Ok(Self { pairing_id, public_key, server_url })
    }

    /// The text put into the QR code: `KITSULAN-PAIR:` + unpadded base64url of the bytes.
    pub fn to_text(&self) -> String {
        format!("{QR_TEXT_PREFIX}{}", b64url(&self.to_bytes()))
    }

    /// Parses [`PairingQr::to_text`].
    pub fn from_text(text: &str) -> Result<Self> {
        let body = text.trim().strip_prefix(QR_TEXT_PREFIX).ok_or(Error::MalformedPairingData)?;
        Self::from_bytes(&unb64url(body).map_err(|_| Error::MalformedPairingData)?)
    }
}

/// A random 8-digit PIN, uniformly distributed.
pub fn generate_pin<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    // Rejection sampling: 4_200_000_000 is the largest multiple of 10^8 below 2^32.
    loop {
        let v = rng.next_u32();
        if v < 4_200_000_000 {
            return format!("{:08}", v % 100_000_000);
        }
    }
}

/// Normalizes a typed PIN: spaces and dashes are dropped; exactly 8 ASCII digits must remain.
pub fn normalize_pin(typed: &str) -> Result<String> {
    let pin: String = typed.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if pin.len() == PIN_DIGITS && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(pin)
    } else {
        Err(Error::MalformedPairingData)
    }
}

/// The new device's side before the channel exists. Holds an ephemeral secret key.
pub struct NewDevicePairing {
    ecies: Ecies,
    pairing_id: [u8; 16],
    server_url: String,
}

impl NewDevicePairing {
    /// A fresh ephemeral key for the pairing `pairing_id` on `server_url`.
    pub fn new(pairing_id: [u8; 16], server_url: &str) -> Result<Self> {
        if server_url.len() > MAX_SERVER_URL_LEN {
            return Err(Error::MalformedPairingData);
        }
        Ok(Self { ecies: Ecies::with_info(PAIRING_INFO), pairing_id, server_url: server_url.to_owned() })
    }

    /// Our ephemeral public key (what the server relays in the PIN variant).
    pub fn public_key(&self) -> [u8; 32] {
        self.ecies.public_key().to_bytes()
    }

    /// The QR payload to show.
    pub fn qr(&self) -> PairingQr {
        PairingQr {
            pairing_id: self.pairing_id,
            public_key: self.public_key(),
            server_url: self.server_url.clone(),
        }
    }

    /// Opens the channel from the existing device's initial message; returns the channel and
    /// the initial plaintext.
    pub fn accept(self, initial_message: &[u8]) -> Result<(PairingChannel, Vec<u8>)> {
        if initial_message.len() < 32 {
            return Err(Error::MalformedPairingData);
        }
        let (key, ciphertext) = initial_message.split_at(32);
        let message = InitialMessage { public_key: curve25519_key(key)?, ciphertext: ciphertext.to_vec() };
        let result = self.ecies.establish_inbound_channel(&message).map_err(|e| match e {
            vodozemac::ecies::Error::NonContributoryKey => Error::PairingKeyAgreement,
            vodozemac::ecies::Error::Decryption => Error::PairingDecryption,
        })?;
        Ok((PairingChannel { inner: result.ecies }, result.message))
    }
}

impl std::fmt::Debug for NewDevicePairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDevicePairing").field("server_url", &self.server_url).finish_non_exhaustive()
    }
}

/// The existing device's side: opens the channel to the new device's public key and returns
/// the channel and the initial message (`our ephemeral key (32) || ciphertext`) to relay.
pub fn connect(new_device_public_key: &[u8], initial_plaintext: &[u8]) -> Result<(PairingChannel, Vec<u8>)> {
    let theirs = curve25519_key(new_device_public_key)?;
    let result = Ecies::with_info(PAIRING_INFO)
        .establish_outbound_channel(theirs, initial_plaintext)
        .map_err(|_| Error::PairingKeyAgreement)?;
    let mut message = result.message.public_key.to_bytes().to_vec();
    message.extend_from_slice(&result.message.ciphertext);
    Ok((PairingChannel { inner: result.ecies }, message))
}

/// The check code both screens show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckCode {
    bytes: [u8; 2],
}

impl CheckCode {
    /// The raw two bytes.
    pub const fn as_bytes(&self) -> [u8; 2] {
        self.bytes
    }

    /// The two-digit number to show, 10 to 99 (no leading zero, as in MSC4388).
    pub const fn number(&self) -> u8 {
        (self.bytes[0] % 9 + 1) * 10 + self.bytes[1] % 10
    }

    /// [`CheckCode::number`] as text, e.g. `"47"`.
    pub fn digits(&self) -> String {
        format!("{:02}", self.number())
    }
}

/// An established pairing channel. Holds the channel keys; `Debug` shows nothing secret.
pub struct PairingChannel {
    inner: EstablishedEcies,
}

impl PairingChannel {
    /// The code to compare on both screens.
    pub fn check_code(&self) -> CheckCode {
        CheckCode { bytes: *self.inner.check_code().as_bytes() }
    }

    /// Encrypts the next channel message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.inner.encrypt(plaintext).ciphertext
    }

    /// Decrypts the next channel message (in order).
    pub fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>> {
        self.inner.decrypt(&Message { ciphertext: message.to_vec() }).map_err(|_| Error::PairingDecryption)
    }
}

impl std::fmt::Debug for PairingChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairingChannel")
            .field("check_code", &self.check_code().digits())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng as _;

    use super::*;

    #[test]
    fn qr_pairing_round_trip() {
        let new_device = NewDevicePairing::new([4; 16], "https://chat.lan:8080").unwrap();
        let text = new_device.qr().to_text();
        let scanned = PairingQr::from_text(&text).unwrap();
        assert_eq!(scanned, new_device.qr());
        let (mut existing, initial) = connect(&scanned.public_key, b"hello").unwrap();
        let (mut fresh, first) = new_device.accept(&initial).unwrap();
        assert_eq!(first, b"hello");
        assert_eq!(existing.check_code(), fresh.check_code());
        assert!((10..=99).contains(&fresh.check_code().number()));
        assert_eq!(fresh.check_code().digits().len(), 2);
        let m = existing.encrypt(b"account key");
        assert_eq!(fresh.decrypt(&m).unwrap(), b"account key");
        let r = fresh.encrypt(b"ack");
        assert_eq!(existing.decrypt(&r).unwrap(), b"ack");
        // Replayed or tampered messages fail.
        assert_eq!(fresh.decrypt(&m).unwrap_err(), Error::PairingDecryption);
        let mut t = existing.encrypt(b"x");
        t[0] ^= 1;
        assert_eq!(fresh.decrypt(&t).unwrap_err(), Error::PairingDecryption);
    }

    #[test]
    fn a_substituted_key_gives_a_different_check_code() {
        // A non-grinding middleman matches with probability 1/90 per try; 20 tries all
        // matching would be a bug (p = 90^-20).
        let mut differed = false;
        for _ in 0..20 {
            let new_device = NewDevicePairing::new([0; 16], "x").unwrap();
            let mallory = NewDevicePairing::new([0; 16], "x").unwrap();
            let (existing, _to_mallory) = connect(&mallory.public_key(), b"").unwrap();
            let (_mallory_channel, to_new) = connect(&new_device.public_key(), b"").unwrap();
            let (fresh, _) = new_device.accept(&to_new).unwrap();
            differed |= existing.check_code() != fresh.check_code();
        }
        assert!(differed);
    }

    #[test]
    fn malformed_inputs() {
        let qr = NewDevicePairing::new([1; 16], "https://x").unwrap().qr();
        let bytes = qr.to_bytes();
        assert_eq!(
            PairingQr::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err(),
            Error::MalformedPairingData
        );
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(PairingQr::from_bytes(&v2).unwrap_err(), Error::MalformedPairingData);
        assert_eq!(PairingQr::from_text("KITSULAN-PAIR:***").unwrap_err(), Error::MalformedPairingData);
        assert_eq!(PairingQr::from_text("other").unwrap_err(), Error::MalformedPairingData);
        assert!(NewDevicePairing::new([1; 16], &"u".repeat(600)).is_err());
        let n = NewDevicePairing::new([1; 16], "https://x").unwrap();
        assert_eq!(n.accept(&[1; 10]).unwrap_err(), Error::MalformedPairingData);
        let n = NewDevicePairing::new([1; 16], "https://x").unwrap();
        assert_eq!(n.accept(&[0; 40]).unwrap_err(), Error::PairingKeyAgreement);
        let n = NewDevicePairing::new([1; 16], "https://x").unwrap();
        let (_c, mut initial) = connect(&n.public_key(), b"x").unwrap();
        let last = initial.len() - 1;
        initial[last] ^= 1;
        assert_eq!(n.accept(&initial).unwrap_err(), Error::PairingDecryption);
        assert_eq!(connect(&[0; 32], b"x").unwrap_err(), Error::PairingKeyAgreement);
    }

    #[test]
    fn pins() {
        let mut rng = ChaCha20Rng::from_seed([5; 32]);
        for _ in 0..100 {
            let pin = generate_pin(&mut rng);
            assert_eq!(normalize_pin(&pin).unwrap(), pin);
        }
        assert_eq!(normalize_pin("1234 5678").unwrap(), "12345678");
        assert_eq!(normalize_pin("1234-567").unwrap_err(), Error::MalformedPairingData);
        assert_eq!(normalize_pin("1234567a").unwrap_err(), Error::MalformedPairingData);
        assert_eq!(normalize_pin("１２３４５６７８").unwrap_err(), Error::MalformedPairingData);
    }
}
