//! coturn's tools (`turnutils_uclient`, `turnserver`) for these tests: the one implementation
//! in the shared test kit (`kitsulan_testkit::coturn`), wrapped to fail the test loudly with
//! uclient's output. The tools come from Debian's `coturn` package; without them the tests fail
//! saying so, never skip.

#![allow(dead_code, unused_imports)] // Each test file uses a part.

use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

pub use kitsulan_testkit::coturn::{REFUSED_BY_COTURN, REFUSED_BY_EMBEDDED};

/// What uclient prints when a relay is full (508 Insufficient Capacity).
pub const RELAY_FULL: &str = "error 508";

const UCLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// One `turnutils_uclient` run.
pub struct Uclient(kitsulan_testkit::coturn::Uclient);

impl Deref for Uclient {
    type Target = kitsulan_testkit::coturn::Uclient;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Uclient {
    /// Runs uclient with `extra` flags (`-y`: the sessions send to each other's relayed
    /// addresses); fails the test if it does not finish in 30 s.
    pub async fn run(server: SocketAddr, username: &str, password: &str, extra: &[&str]) -> Self {
        let run = Self::run_for(server, username, password, extra, UCLIENT_TIMEOUT).await;
        assert!(
            run.exit_code.is_some(),
            "turnutils_uclient did not finish in {UCLIENT_TIMEOUT:?}:\n{}",
            run.output
        );
        run
    }

    /// Like [`Uclient::run`], but kills uclient after `limit` (then `exit_code` is `None`).
    pub async fn run_for(
        server: SocketAddr,
        username: &str,
        password: &str,
        extra: &[&str],
        limit: Duration,
    ) -> Self {
        Self(
            kitsulan_testkit::coturn::Uclient::run_with(server, username, password, extra, limit)
                .await
                .unwrap(),
        )
    }

    /// Asserts the run allocated, sent packets through the relay and got every one back.
    pub fn assert_relayed(&self) {
        assert!(
            self.relayed(),
            "expected turnutils_uclient to relay every packet; exit {:?}, totals (sent, received, lost) \
             {:?}, output:\n{}",
            self.exit_code,
            self.totals(),
            self.output
        );
    }

    /// Asserts the server refused the allocation with `marker`.
    pub fn assert_refused(&self, marker: &str) {
        assert!(
            self.refused(marker),
            "expected the allocation to be refused with {marker:?}; exit {:?}, output:\n{}",
            self.exit_code,
            self.output
        );
    }
}

/// `len` consecutive free UDP ports on loopback, starting at an even one.
pub async fn free_port_range(len: u16) -> (u16, u16) {
    kitsulan_testkit::coturn::free_port_range(len).await.unwrap()
}

/// Whether `server` answers a STUN Binding request within `limit`.
pub async fn wait_for_stun(server: SocketAddr, limit: Duration) -> bool {
    kitsulan_testkit::coturn::wait_for_stun(server, limit).await.unwrap()
}

/// A real coturn on loopback with `use-auth-secret` and the realm `kitsulan`.
pub struct Coturn(kitsulan_testkit::coturn::Coturn);

impl Deref for Coturn {
    type Target = kitsulan_testkit::coturn::Coturn;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Coturn {
    pub async fn start(secret: &str) -> Self {
        Self(kitsulan_testkit::coturn::Coturn::start(secret).await.unwrap())
    }
}
