//! A flood of sign-ins: each costs an Argon2id hash (19 MiB, tens of milliseconds of CPU).
//! Before the bounded hashing pool, a burst of 200 left the server at 560–900 MiB resident.
//! The attack: hundreds of sign-ins at once from many connections, with the pool at one thread
//! and a queue of two. The server must keep its memory bounded, keep answering other calls,
//! refuse the excess with a clear "busy, try again", and still sign people in afterwards.

use std::time::{Duration, Instant};

use kitsulan_client::attachments::memory_kib;
use kitsulan_client::people::{PASSWORD, signed_up};
use kitsulan_client::{Client, Database, Options, TestServer};
use kitsulan_proto::v1::GetServerInfoRequest;
use kitsulan_proto::v1::server_info_service_client::ServerInfoServiceClient;
use tokio::task::JoinSet;

const MIB: u64 = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_flood_neither_grows_memory_nor_starves_other_calls() {
    let options = Options::new(Database::Sqlite)
        .env("KITSULAN_PASSWORD_HASH_THREADS", "1")
        .env("KITSULAN_PASSWORD_HASH_QUEUE", "2")
        // The per-address limits would stop one attacker address long before the pool; this
        // is the flood from many addresses (a LAN full of phones, or a botnet).
        .env("KITSULAN_RATE_LIMIT_SIGN_IN", "1000000/1h")
        .env("KITSULAN_RATE_LIMIT_SIGN_IN_FAILURES", "1000000/1h")
        .env("KITSULAN_RATE_LIMIT_ACCOUNT_FAILURES", "1000000/1h");
    let server = TestServer::start_with(options).await.unwrap();
    let pid = server.pid().unwrap();
    let victim = signed_up(&server, "flood-victim").await;
    drop(victim);
    let (_, before_kib) = memory_kib(pid).unwrap();

    // 300 sign-ins at once over 60 connections, each for another name (guesses at one account
    // wait for each other before hashing; names that do not exist cost a hash all the same).
    let mut connections = Vec::new();
    for _ in 0..60 {
        connections.push(Client::connect(&server.url()).await.unwrap());
    }
    let mut flood = JoinSet::new();
    for n in 0..300 {
        let mut client = connections[n % connections.len()].another_device();
        flood.spawn(async move { client.sign_in(&format!("ghost-{n}"), "a guess").await });
    }

    // Meanwhile, other calls keep being answered quickly.
    let mut bystander = ServerInfoServiceClient::new(server.channel().await.unwrap());
    let mut slowest = Duration::ZERO;
    let mut answered = 0;
    while !flood.is_empty() && answered < 1000 {
        let started = Instant::now();
        bystander.get_server_info(GetServerInfoRequest {}).await.unwrap();
        slowest = slowest.max(started.elapsed());
        answered += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Drain finished sign-ins without waiting.
        while let Some(done) = flood.try_join_next() {
            record(done.unwrap());
        }
    }
    while let Some(done) = flood.join_next().await {
        record(done.unwrap());
    }
    let (peak_kib, _) = memory_kib(pid).unwrap();

    let (wrong, busy) = counts();
    assert_eq!(wrong + busy, 300, "every attempt got one of the two answers");
    assert!(busy > 0, "a full queue must turn callers away, not grow ({wrong} hashed)");
    assert!(wrong >= 3, "the queue's places are served ({wrong} hashed)");
    assert!(answered >= 5, "only {answered} bystander calls during the flood");
    assert!(slowest < Duration::from_millis(750), "a bystander's call took {slowest:?} during the flood");
    // One hashing thread: 19 MiB of Argon2 memory, plus the connections' buffers.
    let grown = peak_kib.saturating_sub(before_kib) / MIB;
    assert!(grown <= 48, "the flood grew the server by {grown} MiB (before {} MiB)", before_kib / MIB);

    // The pool is still there for people: a right password signs in.
    let mut owner = Client::connect(&server.url()).await.unwrap();
    owner.sign_in("flood-victim", PASSWORD).await.unwrap();
    // And the hashing memory is given back once the pool is idle.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, after_kib) = memory_kib(pid).unwrap();
    assert!(
        after_kib <= before_kib + 24 * MIB,
        "the server kept {} MiB after the flood (before {} MiB)",
        after_kib / MIB,
        before_kib / MIB
    );
}

static WRONG: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static BUSY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn record(result: Result<kitsulan_proto::v1::Session, tonic::Status>) {
    use std::sync::atomic::Ordering::Relaxed;
    let status = result.expect_err("a name that does not exist signed in");
    match status.code() {
        tonic::Code::Unauthenticated => WRONG.fetch_add(1, Relaxed),
        tonic::Code::ResourceExhausted => {
            assert_eq!(status.message(), "the server is busy; try again in 1 s");
            BUSY.fetch_add(1, Relaxed)
        }
        other => panic!("unexpected answer {other:?}: {}", status.message()),
    };
}

fn counts() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    (WRONG.load(Relaxed), BUSY.load(Relaxed))
}
