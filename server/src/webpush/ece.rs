//! Web Push message encryption (RFC 8291): the payload is encrypted to the browser's P-256 key
//! and authentication secret with the `aes128gcm` content coding of RFC 8188, in one record.
//!
//! For each message: a fresh P-256 key pair and a random 16-byte salt; ECDH with the browser's
//! key; HKDF-SHA-256 first with the auth secret (info `"WebPush: info" 0 ua_public as_public`)
//! and then with the salt, giving a 16-byte AES-128-GCM key and a 12-byte nonce. The body is
//! `salt ‖ record size ‖ 65 ‖ as_public ‖ AES-GCM(plaintext ‖ 0x02 ‖ padding)`. The push service
//! sees only its length; [`encrypt`] pads every payload to the same length, so not even that
//! says anything.

use ring::agreement::{self, ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::SecureRandom;
use ring::{aead, hkdf};

/// Bytes of an uncompressed P-256 public key.
pub const PUBLIC_KEY_LEN: usize = 65;
/// Bytes of the browser's authentication secret.
pub const AUTH_LEN: usize = 16;
/// The plaintext of every push is padded to this many bytes (its delimiter included), so all
/// pushes have one size.
pub const PADDED_LEN: usize = 256;
/// The record size written in the header (one record is ever sent; 4096 is what browsers expect).
const RECORD_SIZE: u32 = 4096;

/// Why a payload could not be encrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EceError {
    /// The browser's key is not a P-256 point, or its secret not 16 bytes.
    #[error("the subscription's keys are not a P-256 public key and a 16-byte secret")]
    BadKeys,
    /// The payload does not fit the padded size.
    #[error("the payload is over {} bytes", PADDED_LEN - 1)]
    TooLong,
    /// The system's random number generator failed.
    #[error("no randomness")]
    Random,
}

/// Checks that `p256dh` is a point on P-256 and `auth` a 16-byte secret, as a subscription's
/// keys must be (by doing an ECDH with them).
pub fn check_keys(p256dh: &[u8], auth: &[u8]) -> Result<(), EceError> {
    if p256dh.len() != PUBLIC_KEY_LEN || p256dh[0] != 4 || auth.len() != AUTH_LEN {
        return Err(EceError::BadKeys);
    }
    let rng = ring::rand::SystemRandom::new();
    let key = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| EceError::Random)?;
    agreement::agree_ephemeral(key, &UnparsedPublicKey::new(&ECDH_P256, p256dh), |_| ())
        .map_err(|_| EceError::BadKeys)
}

/// Encrypts `plaintext` (at most [`PADDED_LEN`] - 1 bytes) to a subscription's keys, padded to
/// [`PADDED_LEN`]: the request body of a push.
pub fn encrypt(plaintext: &[u8], p256dh: &[u8], auth: &[u8]) -> Result<Vec<u8>, EceError> {
    if plaintext.len() >= PADDED_LEN {
        return Err(EceError::TooLong);
    }
    let rng = ring::rand::SystemRandom::new();
    let key = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| EceError::Random)?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| EceError::Random)?;
    encrypt_with(key, salt, plaintext, PADDED_LEN - 1 - plaintext.len(), p256dh, auth)
}

/// [`encrypt`] with the sender's key pair, the salt and the padding given (the RFC's test vector
/// fixes them).
fn encrypt_with(
    key: EphemeralPrivateKey,
    salt: [u8; 16],
    plaintext: &[u8],
    padding: usize,
    p256dh: &[u8],
    auth: &[u8],
) -> Result<Vec<u8>, EceError> {
    if p256dh.len() != PUBLIC_KEY_LEN || auth.len() != AUTH_LEN {
        return Err(EceError::BadKeys);
    }
    let as_public = key.compute_public_key().map_err(|_| EceError::BadKeys)?;
    let as_public = as_public.as_ref().to_vec();
    // IKM = HKDF(auth, ecdh_secret, "WebPush: info" 0 ua_public as_public, 32)
    let ikm = agreement::agree_ephemeral(key, &UnparsedPublicKey::new(&ECDH_P256, p256dh), |secret| {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, auth).extract(secret);
        expand::<32>(&prk, &[b"WebPush: info\0", p256dh, &as_public])
    })
    .map_err(|_| EceError::BadKeys)??;
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&ikm);
    let cek = expand::<16>(&prk, &[b"Content-Encoding: aes128gcm\0"])?;
    let nonce = expand::<12>(&prk, &[b"Content-Encoding: nonce\0"])?;

    let mut record = Vec::with_capacity(plaintext.len() + 1 + padding + aead::AES_128_GCM.tag_len());
    record.extend_from_slice(plaintext);
    record.push(2); // the delimiter of the last (and only) record
    record.resize(plaintext.len() + 1 + padding, 0);
    let cek = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_128_GCM, &cek).map_err(|_| EceError::BadKeys)?,
    );
    cek.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::empty(), &mut record)
        .map_err(|_| EceError::TooLong)?;

    let mut body = Vec::with_capacity(16 + 4 + 1 + PUBLIC_KEY_LEN + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(PUBLIC_KEY_LEN as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// An HKDF output length for ring.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand<const N: usize>(prk: &hkdf::Prk, info: &[&[u8]]) -> Result<[u8; N], EceError> {
    let mut out = [0u8; N];
    prk.expand(info, Len(N)).and_then(|okm| okm.fill(&mut out)).map_err(|_| EceError::BadKeys)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    /// RFC 8291, Appendix A: the sender's key pair and salt fixed, no padding, gives exactly the
    /// RFC's body.
    #[test]
    #[allow(deprecated)] // ring's fixed "random" source, the only way to give it a known key
    fn the_rfc_8291_test_vector() {
        let as_private = b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw");
        let fixed = ring::test::rand::FixedSliceRandom { bytes: &as_private };
        let key = EphemeralPrivateKey::generate(&ECDH_P256, &fixed).unwrap();
        assert_eq!(
            key.compute_public_key().unwrap().as_ref(),
            b64("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8")
        );
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let ua_public =
            b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let body =
            encrypt_with(key, salt, b"When I grow up, I want to be a watermelon", 0, &ua_public, &auth)
                .unwrap();
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzA\
             C8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn every_push_has_one_size_and_bad_keys_are_refused() {
        let ua_public =
            b64("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let short = encrypt(b"{}", &ua_public, &auth).unwrap();
        let long = encrypt(&[b'x'; 200], &ua_public, &auth).unwrap();
        assert_eq!(short.len(), long.len());
        assert_eq!(short.len(), 16 + 4 + 1 + 65 + PADDED_LEN + 16);
        assert_ne!(short[..16], long[..16], "a fresh salt each time");
        assert_eq!(encrypt(&[0; PADDED_LEN], &ua_public, &auth), Err(EceError::TooLong));

        assert_eq!(check_keys(&ua_public, &auth), Ok(()));
        assert_eq!(check_keys(&ua_public, &auth[..15]), Err(EceError::BadKeys));
        let mut off_curve = ua_public.clone();
        off_curve[40] ^= 1;
        assert_eq!(check_keys(&off_curve, &auth), Err(EceError::BadKeys), "not a point on P-256");
        assert_eq!(check_keys(&ua_public[..33], &auth), Err(EceError::BadKeys), "compressed");
    }
}
