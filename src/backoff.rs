//! Retries with exponential backoff and jitter, for backend calls that failed
//! in a way worth retrying (connection errors, 5xx, 429), bounded by a deadline.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// Backoff schedule: `base · 2ⁿ` capped at `cap`, each wait drawn from its upper half.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The first wait.
    pub base: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (from 0), with jitter.
    pub fn wait(&self, attempt: u32) -> Duration {
        let full = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.cap);
        let half = full / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=half)
    }

    /// Runs `op` until it succeeds, fails in a way `retryable` rejects, or the
    /// next wait would pass `deadline`; returns the last result.
    pub async fn retry<T, E, F, Fut>(
        &self,
        deadline: Instant,
        retryable: impl Fn(&E) -> bool,
        mut op: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if retryable(&e) => {
                    let wait = self.wait(attempt);
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    attempt += 1;
                    tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stay_under_the_cap() {
        let b = Backoff::default();
        for attempt in 0..40 {
            let w = b.wait(attempt);
            assert!(w <= b.cap);
        }
        let first = b.wait(0);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_what_is_retryable_until_the_deadline() {
        let b = Backoff::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut calls = 0;
        let r: Result<(), &str> = b
            .retry(
                deadline,
                |e| *e == "again",
                || {
                    calls += 1;
                    async { Err("again") }
                },
            )
            .await;
        assert_eq!(r, Err("again"));
        assert!(calls > 3, "{calls}");
        let mut calls = 0;
        let r: Result<(), &str> = b
            .retry(
                deadline,
                |e| *e == "again",
                || {
                    calls += 1;
                    async { Err("fatal") }
                },
            )
            .await;
        assert_eq!((r, calls), (Err("fatal"), 1));
    }
}
