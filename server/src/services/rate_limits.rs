//! Rate limits on everything that guesses or spends: sign-up, sign-in, one-time codes, claims
//! of other devices' one-time keys, new key backup versions.
//! Limits are "N per period" (GCRA, see `store::rate_limits`), kept in the database so every
//! node sharing it enforces the same budget.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Error;
use crate::store::{Store, now_ms};

/// "At most `count` per `period`" (the settings write it `10/1h`, `30/10m`, `5/30s`, `100/1d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// How many in one period (also the largest burst).
    pub count: u32,
    /// The period.
    pub period: Duration,
}

impl Limit {
    /// `count` per `period`.
    pub const fn new(count: u32, period: Duration) -> Self {
        Self { count, period }
    }

    fn period_ms(&self) -> i64 {
        i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX)
    }

    fn interval_ms(&self) -> i64 {
        (self.period_ms() / i64::from(self.count.max(1))).max(1)
    }
}

/// Every limit the server enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sign-ups per client address on the public internet.
    pub sign_up: Limit,
    /// Sign-ups per client address on a private network ([`is_private_network`]): a LAN party
    /// signs up from behind one NAT address.
    pub sign_up_private: Limit,
    /// Sign-in attempts (any kind) per client address.
    pub sign_in: Limit,
    /// Failed password, TOTP or code checks per username and client address.
    pub sign_in_failures: Limit,
    /// Failed password, TOTP or code checks per username, from every address together.
    pub account_failures: Limit,
    /// Refresh-token exchanges per client address.
    pub refresh: Limit,
    /// Emailed codes per client address and per email address or account.
    pub code_requests: Limit,
    /// One-time code checks per client address.
    pub code_checks: Limit,
    /// Pairing PIN lookups per account and per client address.
    pub pairing_lookups: Limit,
    /// Devices named in key claims, per claiming account (see `services::keys`).
    pub key_claims: Limit,
    /// One-time keys one account takes from one device (then: its fallback key).
    pub key_claims_per_device: Limit,
    /// One-time keys all accounts sharing no conversation with a device's owner take from that
    /// device together (then: its fallback key).
    pub stranger_key_claims: Limit,
    /// What may wait in one device's to-device inbox.
    pub inbox: super::to_device::InboxLimits,
    /// New key backup versions per account (first set-up and every recovery-key rotation).
    pub backup_versions: Limit,
}

impl Default for Limits {
    fn default() -> Self {
        const MIN: u64 = 60;
        Self {
            sign_up: Limit::new(10, Duration::from_secs(3600)),
            sign_up_private: Limit::new(50, Duration::from_secs(3600)),
            sign_in: Limit::new(30, Duration::from_secs(10 * MIN)),
            sign_in_failures: Limit::new(10, Duration::from_secs(15 * MIN)),
            account_failures: Limit::new(100, Duration::from_secs(60 * MIN)),
            refresh: Limit::new(120, Duration::from_secs(MIN)),
            code_requests: Limit::new(5, Duration::from_secs(3600)),
            code_checks: Limit::new(20, Duration::from_secs(10 * MIN)),
            pairing_lookups: Limit::new(10, Duration::from_secs(10 * MIN)),
            key_claims: Limit::new(2000, Duration::from_secs(3600)),
            key_claims_per_device: Limit::new(10, Duration::from_secs(3600)),
            stranger_key_claims: Limit::new(20, Duration::from_secs(3600)),
            inbox: super::to_device::InboxLimits::default(),
            backup_versions: Limit::new(10, Duration::from_secs(3600)),
        }
    }
}

/// The key for a client address. IPv6 clients are limited per /64, the block one subscriber
/// usually gets, so rotating through its addresses buys nothing.
pub fn address_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Whether `addr` is on a private network, where many people share one address (a LAN party
/// behind one NAT router): IPv4 RFC 1918 (10/8, 172.16/12, 192.168/16) and link-local
/// (169.254/16), IPv6 unique-local (fc00::/7) and link-local (fe80::/10), and those written as
/// IPv4-mapped IPv6.
///
/// # Security
/// Not loopback: a reverse proxy on the same host makes every internet client look like
/// 127.0.0.1 (unless `KITSULAN_TRUST_FORWARDED_FOR` is set), so loopback keeps the strict limit.
/// Not carrier-grade NAT (100.64/10): there, one address is shared by strangers on the internet.
pub fn is_private_network(addr: IpAddr) -> bool {
    let v4 = match addr {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => {
                let first = v6.segments()[0];
                return (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80;
            }
        },
    };
    v4.is_private() || v4.is_link_local()
}

/// Checks and counts requests against [`Limit`]s.
#[derive(Clone)]
pub struct RateLimiter {
    store: Arc<dyn Store>,
}

impl RateLimiter {
    /// A limiter keeping its counts in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Counts one request against `key`, or fails with [`Error::RateLimited`].
    pub async fn take(&self, limit: &Limit, key: &str) -> Result<(), Error> {
        let wait = self.store.rate_limit_take(key, now_ms(), limit.interval_ms(), limit.period_ms()).await?;
        refuse_if(wait)
    }

    /// Counts `n` requests at once against `key` (all or none), or fails with
    /// [`Error::RateLimited`]. More than `limit.count` at once never fit.
    pub async fn take_n(&self, limit: &Limit, key: &str, n: u32) -> Result<(), Error> {
        if n > limit.count {
            // The store would let it through on a key it has not seen yet.
            return Err(Error::RateLimited { retry_after: limit.period });
        }
        let interval = limit.interval_ms().saturating_mul(i64::from(n.max(1)));
        let wait = self.store.rate_limit_take(key, now_ms(), interval, limit.period_ms()).await?;
        refuse_if(wait)
    }

    /// Counts one request against `key` if it fits: `true` if it was counted, `false` if the
    /// limit is reached (for limits that change what is answered rather than refuse).
    pub async fn try_take(&self, limit: &Limit, key: &str) -> Result<bool, Error> {
        let wait = self.store.rate_limit_take(key, now_ms(), limit.interval_ms(), limit.period_ms()).await?;
        Ok(wait.is_none())
    }

    /// Gives back one request counted by [`RateLimiter::try_take`] that did not use what it
    /// reserved, so reserving first keeps racing requests within the limit.
    pub async fn give_back(&self, limit: &Limit, key: &str) -> Result<(), Error> {
        Ok(self.store.rate_limit_give_back(key, limit.interval_ms()).await?)
    }

    /// Fails with [`Error::RateLimited`] if a request to `key` would not fit now, without
    /// counting one (for limits on failures, counted later with [`RateLimiter::take`]).
    pub async fn check(&self, limit: &Limit, key: &str) -> Result<(), Error> {
        let wait = self.store.rate_limit_peek(key, now_ms(), limit.interval_ms(), limit.period_ms()).await?;
        refuse_if(wait)
    }

    /// Counts a failure against `key`; going over only matters for the next [`check`].
    ///
    /// [`check`]: RateLimiter::check
    pub async fn record_failure(&self, limit: &Limit, key: &str) -> Result<(), Error> {
        match self.take(limit, key).await {
            Ok(()) | Err(Error::RateLimited { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn refuse_if(wait_ms: Option<i64>) -> Result<(), Error> {
    match wait_ms {
        None => Ok(()),
        Some(ms) => Err(Error::RateLimited {
            retry_after: Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1)),
        }),
    }
}

/// Lets checks of one account's secrets run one at a time on this node.
///
/// # Security
/// A failure limit is checked before a secret is compared and counted after; without this, a
/// burst of parallel guesses would all pass the check before the first failure is counted, and
/// get many times the limit. Held per key (the account), so other accounts are not slowed.
#[derive(Clone, Default)]
pub struct OneAtATime {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// The turn of one key; the next waiter goes when it drops.
pub struct Turn {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    key: String,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl OneAtATime {
    /// Waits for `key`'s turn.
    pub async fn turn(&self, key: &str) -> Turn {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            locks.entry(key.to_owned()).or_default().clone()
        };
        Turn { guard: Some(lock.lock_owned().await), key: key.to_owned(), locks: self.locks.clone() }
    }

    /// Keys with a turn held or waited for (0 when idle: the map does not grow).
    #[cfg(test)]
    fn busy_keys(&self) -> usize {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Only this map and no waiter hold the lock: forget it.
        if locks.get(&self.key).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_at_a_time_and_forgotten_when_idle() {
        let gate = OneAtATime::default();
        let first = gate.turn("alice").await;
        // Another key is not held up.
        let other = gate.turn("bob").await;
        drop(other);
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move {
                let _turn = gate.turn("alice").await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a second turn of one key ran while the first was held");
        drop(first);
        waiting.await.unwrap();
        assert_eq!(gate.busy_keys(), 0);
    }

    #[test]
    fn private_networks_are_the_lan_and_not_loopback_or_the_internet() {
        let private = |a: &str| is_private_network(a.parse().unwrap());
        for lan in [
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.254",
            "192.168.1.20",
            "169.254.3.3",
            "fd12:3456::1",
            "fc00::1",
            "fe80::1",
            "febf::1",
            "::ffff:192.168.0.9",
        ] {
            assert!(private(lan), "{lan} is on a LAN");
        }
        for other in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "172.32.0.1",
            "8.8.8.8",
            "203.0.113.7",
            "2001:db8::1",
            "fec0::1",
            "::ffff:8.8.8.8",
            "0.0.0.0",
            "::",
        ] {
            assert!(!private(other), "{other} is not a LAN address");
        }
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(address_key("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(address_key("192.168.1.7".parse().unwrap()), "192.168.1.7");
    }
}
