//! Password and one-time-code hashing with Argon2id. The parameters live here and only here.
//!
//! Hashing is deliberately slow and memory-hungry (each hash fills [`MEMORY_KIB`] KiB), so it
//! runs on a small pool of dedicated threads, never on the async workers or tokio's blocking
//! pool. Each thread allocates its Argon2 memory on its first hash, reuses it for every hash
//! while work keeps coming and gives it back to the system after [`IDLE_RELEASE`] without
//! work. So hashing never takes more than `threads × 19 MiB`, however many people sign in at
//! once, and nothing of it stays once the burst is over. (On tokio's blocking pool, each hash
//! ran on whichever of up to 512 threads was free, and the freed 19 MiB blocks stayed cached in
//! those threads' malloc arenas: 560–900 MiB resident after 200 sign-ups.)
//!
//! In front of the threads is a bounded queue. When it is full, a caller waits up to
//! [`QUEUE_WAIT`] for a place and then gets [`Error::Busy`] ("the server is busy; try again"),
//! so a flood of sign-ins from many connections costs a bounded amount of memory and time.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, oneshot};
use zeroize::{Zeroize as _, Zeroizing};

use super::Error;

/// Argon2id memory cost: OWASP's minimum recommendation (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
pub const ITERATIONS: u32 = 2;
/// Argon2id lanes.
pub const PARALLELISM: u32 = 1;
/// Length of the hash output, bytes (the argon2 crate's default, as stored so far).
const OUTPUT_LEN: usize = 32;
/// Salt length, bytes.
const SALT_LEN: usize = 16;
/// How long a caller waits for a place in a full queue before being told to try again.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// A hashing thread idle this long gives its memory blocks back.
pub const IDLE_RELEASE: Duration = Duration::from_secs(2);
/// Capacity reserved for a thread's memory blocks: above glibc's largest dynamic mmap
/// threshold (32 MiB on 64-bit), so the buffer is always its own `mmap` and dropping it really
/// returns it to the system (a 19 MiB block would otherwise stay cached in the thread's malloc
/// arena). Only the 19 MiB that Argon2 touches become resident.
const RESERVED_BLOCKS: usize = 33 * 1024;
/// The highest memory cost a stored hash may ask for (a hash made with other parameters is
/// verified with a one-off buffer; this bounds it).
const MAX_STORED_MEMORY_KIB: u32 = 256 * 1024;

/// How many threads hash and how many hashes may wait for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashPoolSize {
    /// Dedicated hashing threads (each holds [`MEMORY_KIB`] KiB while busy).
    pub threads: usize,
    /// Hashes waiting for a thread, beyond those being computed.
    pub queue: usize,
}

impl HashPoolSize {
    /// One thread per CPU, at most 4; a queue of 16 per thread.
    pub fn default_for_this_machine() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let threads = cpus.clamp(1, 4);
        Self { threads, queue: threads * 16 }
    }
}

/// Hashes and verifies secrets people type (passwords, one-time codes).
#[derive(Clone)]
pub struct SecretHasher {
    size: HashPoolSize,
    jobs: flume::Sender<Job>,
    /// A hash of a random secret, verified against when the account does not exist, so an
    /// unknown username costs the same time as a wrong password.
    decoy: Arc<OnceCell<String>>,
}

impl Default for SecretHasher {
    fn default() -> Self {
        Self::new(HashPoolSize::default_for_this_machine())
    }
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretHasher").field("size", &self.size).finish_non_exhaustive()
    }
}

/// Work for a hashing thread: given the thread's memory blocks, do it and answer.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

impl SecretHasher {
    /// A hasher with `size.threads` dedicated threads (started now; they end when the last
    /// clone of this hasher is dropped).
    pub fn new(size: HashPoolSize) -> Self {
        let size = HashPoolSize { threads: size.threads.max(1), queue: size.queue };
        let (jobs, receiver) = flume::bounded::<Job>(size.queue);
        for n in 0..size.threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&receiver));
            if let Err(e) = spawned {
                // Fewer threads only makes hashing slower; with none, calls fail (not hang):
                // the receiver is gone with the last thread and sends fail.
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        Self { size, jobs, decoy: Arc::new(OnceCell::new()) }
    }

    /// The pool's size.
    pub fn size(&self) -> HashPoolSize {
        self.size
    }

    fn params() -> Result<Params, Error> {
        Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(OUTPUT_LEN))
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `secret`, with a random salt.
    pub async fn hash(&self, secret: &str) -> Result<String, Error> {
        let secret = zeroizing(secret);
        self.run(move |blocks| hash_with(&secret, blocks)).await
    }

    /// Whether `secret` matches the PHC string `hash`.
    pub async fn verify(&self, secret: &str, hash: &str) -> Result<bool, Error> {
        let secret = zeroizing(secret);
        let hash = hash.to_owned();
        self.run(move |blocks| verify_with(&secret, &hash, blocks)).await
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
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            // The caller went away (its connection closed): skip the work.
            if !answer.is_closed() {
                let _ = answer.send(work(blocks));
            }
        });
        match tokio::time::timeout(QUEUE_WAIT, self.jobs.send_async(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Error::Internal("no password-hashing thread is running".into())),
            Err(_) => return Err(Error::Busy { retry_after: Duration::from_secs(1) }),
        }
        answered.await.map_err(|_| Error::Internal("a password-hashing thread failed".into()))?
    }
}

/// A hashing thread: takes jobs until the hasher is dropped. Its memory blocks are allocated
/// on the first job, reused while jobs keep coming, and given back after [`IDLE_RELEASE`]
/// without work.
fn hashing_thread(jobs: &flume::Receiver<Job>) {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = match jobs.recv_timeout(IDLE_RELEASE) {
            Ok(job) => job,
            Err(flume::RecvTimeoutError::Timeout) => {
                // Idle: give the memory back (see `blocks_for` for why it really goes back).
                blocks = Vec::new();
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
            Err(flume::RecvTimeoutError::Disconnected) => return,
        };
        // A panic in one job must not take the thread down with it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut blocks)));
        if outcome.is_err() {
            tracing::error!("a password hash panicked");
        }
        // The memory held the secret's derived state: wipe it, keep the allocation.
        wipe(&mut blocks);
    }
}

fn wipe(blocks: &mut [Block]) {
    for block in blocks {
        *block = Block::new();
    }
}

/// `blocks` with at least `count` blocks: the thread's own buffer, made on first use with
/// [`RESERVED_BLOCKS`] of capacity and grown only for a stored hash with a larger memory cost.
fn blocks_for(blocks: &mut Vec<Block>, count: usize) -> &mut [Block] {
    if blocks.capacity() == 0 {
        *blocks = Vec::with_capacity(RESERVED_BLOCKS.max(count));
    }
    if blocks.len() < count {
        blocks.resize(count, Block::new());
    }
    &mut blocks[..count]
}

fn hash_with(secret: &str, blocks: &mut Vec<Block>) -> Result<String, Error> {
    let params = SecretHasher::params()?;
    let salt: [u8; SALT_LEN] = argon2::password_hash::try_generate_salt()
        .map_err(|e| Error::Internal(format!("random salt: {e}")))?;
    let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
    let count = params.block_count();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(secret.as_bytes(), &salt, &mut out[..], blocks_for(blocks, count))
        .map_err(|e| Error::Internal(format!("argon2 hash: {e}")))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)
            .map_err(|e| Error::Internal(format!("argon2 params: {e}")))?,
        salt: Some(Salt::new(&salt).map_err(|e| Error::Internal(format!("argon2 salt: {e}")))?),
        hash: Some(Output::new(&out[..]).map_err(|e| Error::Internal(format!("argon2 output: {e}")))?),
    };
    Ok(phc.to_string())
}

fn verify_with(secret: &str, stored: &str, blocks: &mut Vec<Block>) -> Result<bool, Error> {
    // A stored hash that does not parse, or asks for something we would not make, matches nothing.
    let Ok(phc) = PasswordHash::new(stored) else { return Ok(false) };
    let (Ok(algorithm), Some(salt), Some(expected)) =
        (Algorithm::try_from(phc.algorithm.as_str()), &phc.salt, &phc.hash)
    else {
        return Ok(false);
    };
    let version = match phc.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return Ok(false),
    };
    let Ok(params) = Params::try_from(&phc) else { return Ok(false) };
    if params.m_cost() > MAX_STORED_MEMORY_KIB {
        return Err(Error::Internal(format!("a stored password hash asks for {} KiB", params.m_cost())));
    }
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let count = params.block_count();
    if Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(secret.as_bytes(), salt, &mut out[..], blocks_for(blocks, count))
        .is_err()
    {
        return Ok(false);
    }
    let computed = Output::new(&out).map_err(|e| Error::Internal(format!("argon2 output: {e}")))?;
    // `Output`'s equality is constant-time.
    let matches = computed == *expected;
    out.zeroize();
    Ok(matches)
}

fn zeroizing(secret: &str) -> Zeroizing<String> {
    Zeroizing::new(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Made by the reference C implementation (Python's argon2-cffi 25.1) with our parameters:
    /// `PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16)`.
    const REFERENCE_HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$YcwUyCSJK/fscyKYkS4d7w$cu5H5Pa1DAlRJ3WSNKr9lvm5MUYfzgHHqYZFANarffo";

    fn small() -> SecretHasher {
        SecretHasher::new(HashPoolSize { threads: 2, queue: 4 })
    }

    #[tokio::test]
    async fn hashes_verify_and_carry_the_parameters() {
        let hasher = small();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse battery", &hash).await.unwrap());
        assert!(!hasher.verify("wrong horse battery", &hash).await.unwrap());
        assert_ne!(hash, hasher.hash("correct horse battery").await.unwrap(), "salts must differ");
        assert!(!hasher.verify_decoy("anything").await.unwrap());
    }

    #[tokio::test]
    async fn hashes_stored_before_and_by_other_implementations_still_verify() {
        let hasher = small();
        assert!(hasher.verify("correct horse battery staple", REFERENCE_HASH).await.unwrap());
        assert!(!hasher.verify("correct horse battery stapler", REFERENCE_HASH).await.unwrap());
        // What the argon2 crate's own PasswordHasher makes (how hashes were made before the
        // pool) verifies with the pool, and the pool's hashes verify with the crate's verifier.
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let crate_made = Argon2::new(Algorithm::Argon2id, Version::V0x13, SecretHasher::params().unwrap())
            .hash_password(b"hunter2")
            .unwrap()
            .to_string();
        assert!(hasher.verify("hunter2", &crate_made).await.unwrap());
        let ours = hasher.hash("hunter2").await.unwrap();
        let argon2 = Argon2::default();
        assert!(argon2.verify_password(b"hunter2", ours.as_str()).is_ok());
        assert!(argon2.verify_password(b"hunter3", ours.as_str()).is_err());
        // Other parameters (a stronger hash) verify too, with a one-off buffer.
        let other =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8 * 1024, 3, 1, None).unwrap())
                .hash_password(b"hunter2")
                .unwrap()
                .to_string();
        assert!(hasher.verify("hunter2", &other).await.unwrap());
        assert!(!hasher.verify("hunter", &other).await.unwrap());
    }

    #[tokio::test]
    async fn malformed_stored_hashes_match_nothing() {
        let hasher = small();
        for stored in [
            "",
            "plain",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$bcrypt$v=19$m=19456,t=2,p=1$YcwUyCSJK/fscyKYkS4d7w$cu5H5Pa1DAlRJ3WSNKr9lvm5MUYfzgHHqYZFANarffo",
        ] {
            assert!(!hasher.verify("", stored).await.unwrap(), "{stored}");
        }
        let huge = "$argon2id$v=19$m=4194304,t=2,p=1$YcwUyCSJK/fscyKYkS4d7w$cu5H5Pa1DAlRJ3WSNKr9lvm5MUYfzgHHqYZFANarffo";
        assert!(hasher.verify("x", huge).await.is_err(), "a stored hash may not ask for 4 GiB");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_waits_in_a_bounded_queue_and_the_rest_are_told_to_try_again() {
        let hasher = SecretHasher::new(HashPoolSize { threads: 1, queue: 2 });
        let started = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let hasher = hasher.clone();
            calls.spawn(async move { hasher.hash("flood").await });
        }
        let (mut hashed, mut busy) = (0, 0);
        while let Some(done) = calls.join_next().await {
            match done.unwrap() {
                Ok(_) => hashed += 1,
                Err(Error::Busy { .. }) => busy += 1,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert!(busy > 0, "a full queue must refuse, not grow ({hashed} hashed)");
        assert!(hashed >= 3, "the queue's places were served ({hashed} hashed)");
        assert_eq!(hashed + busy, 200);
        // Refusals come after QUEUE_WAIT, not after all 200 were hashed one by one.
        assert!(started.elapsed() < QUEUE_WAIT * 10, "took {:?}", started.elapsed());
        // The pool still works after the flood.
        assert!(hasher.verify("correct horse battery staple", REFERENCE_HASH).await.unwrap());
    }

    #[tokio::test]
    async fn the_thread_reuses_one_buffer() {
        let mut blocks = Vec::new();
        let first = hash_with("a", &mut blocks).unwrap();
        let pointer = blocks.as_ptr();
        assert_eq!(blocks.len(), (MEMORY_KIB) as usize);
        assert!(verify_with("a", &first, &mut blocks).unwrap());
        assert_eq!(blocks.as_ptr(), pointer, "the buffer is reused, not reallocated");
    }
}
