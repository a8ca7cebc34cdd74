//! Setting up people for tests: a server that lets a test make the accounts and sign-ins it
//! needs, and E2EE devices ready to talk.

use crate::client::{Client, Refusal};
use crate::e2ee::E2eeDevice;
use crate::server::{Database, Options, TestServer};
use kitsulan_proto::v1::SignUpRequest;

/// The password test people sign up with.
pub const PASSWORD: &str = "correct horse battery staple";
/// One-time keys each device uploads when it is set up.
const ONE_TIME_KEYS: usize = 20;

/// Sign-up and sign-in limits out of the way, for tests that make many people quickly.
pub fn roomy(options: Options) -> Options {
    options.env("KITSULAN_RATE_LIMIT_SIGN_UP", "1000/1h").env("KITSULAN_RATE_LIMIT_SIGN_IN", "1000/10m")
}

/// A server on `database` with [`roomy`] limits. Panics if it does not start.
pub async fn start(database: Database) -> TestServer {
    start_with(Options::new(database)).await
}

/// A server with `options` and [`roomy`] limits. Panics if it does not start.
pub async fn start_with(options: Options) -> TestServer {
    TestServer::start_with(roomy(options)).await.unwrap_or_else(|e| panic!("starting the server: {e:#}"))
}

/// A person's first device ("Laptop"): signed up, account key published, keys uploaded.
pub async fn person(server: &TestServer, username: &str) -> E2eeDevice {
    E2eeDevice::sign_up(&server.url(), username, PASSWORD, "Laptop", ONE_TIME_KEYS)
        .await
        .unwrap_or_else(|e| panic!("setting up {username}: {e:#}"))
}

/// Another device of the person `first` belongs to, holding the same account key.
pub async fn another_device(
    server: &TestServer,
    first: &E2eeDevice,
    username: &str,
    name: &str,
) -> E2eeDevice {
    E2eeDevice::sign_in(&server.url(), username, PASSWORD, name, first.account_key_copy(), ONE_TIME_KEYS)
        .await
        .unwrap_or_else(|e| panic!("setting up {username}'s {name}: {e:#}"))
}

/// A new account `username` (password [`PASSWORD`]) signed in on a device called "Laptop",
/// with no keys: for tests about accounts and sessions, not messages.
pub async fn signed_up(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap_or_else(|e| panic!("connecting: {e:#}"));
    client
        .sign_up_with(SignUpRequest {
            username: username.into(),
            password: PASSWORD.into(),
            device_name: "Laptop".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("sign-up of {username}: {:?}", Refusal::of(&status)));
    client
}

/// Another device of `username`, signed in with [`PASSWORD`] (no keys).
pub async fn signed_in(server: &TestServer, username: &str) -> Client {
    let mut client = Client::connect(&server.url()).await.unwrap_or_else(|e| panic!("connecting: {e:#}"));
    client
        .sign_in(username, PASSWORD)
        .await
        .unwrap_or_else(|status| panic!("sign-in of {username}: {:?}", Refusal::of(&status)));
    client
}
