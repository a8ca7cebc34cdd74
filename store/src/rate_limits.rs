//! Rate-limit state (`rate_limits`), shared by every node on the same database.
//!
//! Each key holds one number, its GCRA "theoretical arrival time" (TAT): a limit of `n` per
//! `period` spaces requests `interval = period / n` apart and allows a burst of `n`. A request
//! at `now` fits if `max(tat, now) + interval - now <= period`; then `tat` moves on by one
//! interval. One conditional upsert does check and update at once, so racing requests (from
//! any node) cannot slip past the limit.

use async_trait::async_trait;

use super::StoreError;

/// Rate-limit counters.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts a request against `key` if it fits. `None` when it fits (and was counted),
    /// `Some(ms)` to wait before the next one would fit.
    async fn rate_limit_take(
        &self,
        key: &str,
        now_ms: i64,
        interval_ms: i64,
        period_ms: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Whether a request would fit now, without counting it: `None` or `Some(ms to wait)`.
    async fn rate_limit_peek(
        &self,
        key: &str,
        now_ms: i64,
        interval_ms: i64,
        period_ms: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Takes back one request counted against `key` (its TAT moves back by `interval_ms`).
    /// Unknown keys are left alone.
    async fn rate_limit_give_back(&self, key: &str, interval_ms: i64) -> Result<(), StoreError>;
    /// Deletes keys whose state no longer limits anything. Returns how many.
    async fn prune_rate_limits(&self, now_ms: i64) -> Result<u64, StoreError>;
}

/// How long until a request fits, given the stored TAT; `None` if it fits now.
fn wait_ms(tat_ms: i64, now_ms: i64, interval_ms: i64, period_ms: i64) -> Option<i64> {
    let wait = tat_ms.max(now_ms) + interval_ms - now_ms - period_ms;
    (wait > 0).then_some(wait)
}

impl_for_backends! {
    impl RateLimitStore {
        async fn rate_limit_take(
            &self,
            key: &str,
            now_ms: i64,
            interval_ms: i64,
            period_ms: i64,
        ) -> Result<Option<i64>, StoreError> {
            let taken: Option<i64> = sqlx::query_scalar(
                "INSERT INTO rate_limits (key, tat_ms) VALUES ($1, $2 + $3) \
                 ON CONFLICT (key) DO UPDATE \
                 SET tat_ms = (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) + $3 \
                 WHERE (CASE WHEN rate_limits.tat_ms > $2 THEN rate_limits.tat_ms ELSE $2 END) + $3 - $2 <= $4 \
                 RETURNING tat_ms",
            )
            .bind(key)
            .bind(now_ms)
            .bind(interval_ms)
            .bind(period_ms)
            .fetch_optional(&self.pool)
            .await?;
            if taken.is_some() {
                return Ok(None);
            }
            self.rate_limit_peek(key, now_ms, interval_ms, period_ms).await.map(|wait| Some(wait.unwrap_or(1)))
        }

        async fn rate_limit_peek(
            &self,
            key: &str,
            now_ms: i64,
            interval_ms: i64,
            period_ms: i64,
        ) -> Result<Option<i64>, StoreError> {
            let tat: Option<i64> = sqlx::query_scalar("SELECT tat_ms FROM rate_limits WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
            Ok(tat.and_then(|tat| wait_ms(tat, now_ms, interval_ms, period_ms)))
        }

        async fn rate_limit_give_back(&self, key: &str, interval_ms: i64) -> Result<(), StoreError> {
            // A TAT moved into the past means "no debt", the same as `now`.
            sqlx::query("UPDATE rate_limits SET tat_ms = tat_ms - $2 WHERE key = $1")
                .bind(key)
                .bind(interval_ms)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn prune_rate_limits(&self, now_ms: i64) -> Result<u64, StoreError> {
            let done = sqlx::query("DELETE FROM rate_limits WHERE tat_ms <= $1")
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wait_ms;

    /// Plays requests against the arithmetic the SQL implements; returns which were allowed.
    fn simulate(times_ms: &[i64], interval: i64, period: i64) -> Vec<bool> {
        let mut tat = None::<i64>;
        times_ms
            .iter()
            .map(|&now| {
                let fits = tat.is_none_or(|t| wait_ms(t, now, interval, period).is_none());
                if fits {
                    tat = Some(tat.unwrap_or(now).max(now) + interval);
                }
                fits
            })
            .collect()
    }

    #[test]
    fn gcra_allows_a_burst_then_one_per_interval() {
        // 3 per 30 s: a burst of 3, then one more every 10 s.
        let (interval, period) = (10_000, 30_000);
        let allowed = simulate(&[0, 1, 2, 3, 9_999, 10_000, 10_001, 20_000, 60_000], interval, period);
        assert_eq!(allowed, [true, true, true, false, false, true, false, true, true]);
        assert_eq!(wait_ms(30_000, 0, interval, period), Some(10_000));
        assert_eq!(wait_ms(0, 0, interval, period), None);
    }
}
