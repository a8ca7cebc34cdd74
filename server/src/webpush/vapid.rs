//! VAPID (RFC 8292): the server signs a short JWT (ES256) for each push, so a push service can
//! tell which application server sends and refuse others for a subscription made with this
//! key. The key pair is ECDSA P-256, made at first start and kept in the data dir
//! (`vapid-key`, PKCS#8 in PEM, 0600); the browser subscribes with its public half.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

const B64: base64::engine::general_purpose::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const PEM_LABEL: &str = "PRIVATE KEY";
/// How long a token is valid (RFC 8292 allows at most 24 hours).
pub const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// The server's VAPID key pair.
pub struct VapidKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey").field("public", &self.public_key_b64()).finish_non_exhaustive()
    }
}

impl VapidKey {
    /// Reads the key at `path`, or makes one there (0600) if there is none. `Ok((key, true))`
    /// when it was made now.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(Self, bool)> {
        use anyhow::Context as _;
        let rng = SystemRandom::new();
        match crate::data_dir::read_private_file(path) {
            Ok(text) => {
                let der = pem_decode(&text).with_context(|| {
                    format!(
                        "{}: not a PEM private key; delete it to make a new one (subscriptions then end)",
                        path.display()
                    )
                })?;
                let pair =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng).map_err(|e| {
                        anyhow::anyhow!(
                            "{}: not an ECDSA P-256 key ({e}); delete it to make a new one",
                            path.display()
                        )
                    })?;
                Ok((Self { pair, rng }, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| anyhow::anyhow!("cannot make a VAPID key"))?;
                crate::data_dir::write_private_file(path, pem_encode(der.as_ref()).as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng)
                    .map_err(|_| anyhow::anyhow!("cannot read back the VAPID key just made"))?;
                Ok((Self { pair, rng }, true))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The public key, uncompressed (65 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key as base64url without padding: `applicationServerKey` and VAPID's `k`.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.public_key())
    }

    /// The `Authorization` header of a push to `endpoint_origin` (`https://host[:port]`):
    /// `vapid t=<JWT>, k=<public key>`, the JWT naming the origin (`aud`), an expiry
    /// [`TOKEN_TTL`] from now (`exp`) and the admin's contact (`sub`).
    pub fn authorization(&self, endpoint_origin: &str, contact: &str) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let exp = (now + TOKEN_TTL).as_secs();
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = B64.encode(serde_json::to_vec(&serde_json::json!({
            "aud": endpoint_origin,
            "exp": exp,
            "sub": contact,
        }))?);
        let signing_input = format!("{header}.{claims}");
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("cannot sign the VAPID token"))?;
        Ok(format!("vapid t={signing_input}.{}, k={}", B64.encode(signature.as_ref()), self.public_key_b64()))
    }
}

fn pem_encode(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {PEM_LABEL}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    text
}

fn pem_decode(text: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let start = text.find(&begin).ok_or_else(|| anyhow::anyhow!("no BEGIN line"))? + begin.len();
    let stop = text[start..].find(&end).ok_or_else(|| anyhow::anyhow!("no END line"))? + start;
    let body: String = text[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body)?)
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    use super::*;

    #[test]
    fn the_key_is_made_once_and_tokens_verify_with_its_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vapid-key");
        let (made, new) = VapidKey::load_or_create(&path).unwrap();
        assert!(new);
        let (read, new) = VapidKey::load_or_create(&path).unwrap();
        assert!(!new);
        assert_eq!(made.public_key(), read.public_key());
        assert_eq!(made.public_key().len(), 65);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }

        let header = read.authorization("https://push.example:8443", "mailto:admin@example.org").unwrap();
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (jwt, k) = rest.split_once(", k=").unwrap();
        assert_eq!(k, made.public_key_b64());
        let (signed, signature) = jwt.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, made.public_key())
            .verify(signed.as_bytes(), &B64.decode(signature).unwrap())
            .expect("the signature verifies");
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(signed.split_once('.').unwrap().1).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example:8443");
        assert_eq!(claims["sub"], "mailto:admin@example.org");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp > now && exp <= now + 24 * 3600);

        std::fs::write(dir.path().join("bad"), "not a key").unwrap();
        assert!(VapidKey::load_or_create(&dir.path().join("bad")).is_err());
    }
}
