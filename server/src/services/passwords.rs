//! Password and one-time-code hashing with Argon2id. The parameters live here and only here.
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on the blocking pool and at most
//! a few at a time: a burst of sign-ins cannot starve the async workers or run a Raspberry Pi
//! out of memory (each hash takes [`MEMORY_KIB`] KiB).

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use super::Error;

/// Argon2id memory cost: OWASP's minimum recommendation (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ITERATIONS: u32 = 2;
/// Argon2id lanes.
pub const PARALLELISM: u32 = 1;

/// Hashes and verifies secrets people type (passwords, one-time codes).
#[derive(Clone)]
pub struct SecretHasher {
    permits: Arc<Semaphore>,
    /// A hash of a random secret, verified against when the account does not exist, so an
    /// unknown username costs the same time as a wrong password.
    decoy: Arc<OnceCell<String>>,
}

impl Default for SecretHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretHasher {
    /// A hasher allowing as many concurrent hashes as there are CPUs (at least 2).
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self { permits: Arc::new(Semaphore::new(cpus.max(2))), decoy: Arc::new(OnceCell::new()) }
    }

    fn argon2() -> Result<Argon2<'static>, Error> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `secret`, with a random salt.
    pub async fn hash(&self, secret: &str) -> Result<String, Error> {
        let secret = zeroizing(secret);
        self.run(move || {
            Self::argon2()?
                .hash_password(secret.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| Error::Internal(format!("argon2 hash: {e}")))
        })
        .await
    }

    /// Whether `secret` matches the PHC string `hash`.
    pub async fn verify(&self, secret: &str, hash: &str) -> Result<bool, Error> {
        let secret = zeroizing(secret);
        let hash = hash.to_owned();
        self.run(move || Ok(Self::argon2()?.verify_password(secret.as_bytes(), hash.as_str()).is_ok())).await
    }

    /// Spends the time of one verification and returns `false`: for accounts that do not exist.
    pub async fn verify_decoy(&self, secret: &str) -> Result<bool, Error> {
        let decoy = self
            .decoy
            .get_or_try_init(|| async { self.hash(&super::tokens::random_token("decoy_")).await })
            .await?
            .clone();
        self.verify(secret, &decoy).await.map(|_| false)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Internal("hasher closed".into()))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(format!("hash task: {e}")))?
    }
}

fn zeroizing(secret: &str) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_carry_the_parameters() {
        let hasher = SecretHasher::new();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse battery", &hash).await.unwrap());
        assert!(!hasher.verify("wrong horse battery", &hash).await.unwrap());
        assert_ne!(hash, hasher.hash("correct horse battery").await.unwrap(), "salts must differ");
        assert!(!hasher.verify_decoy("anything").await.unwrap());
    }
}
