//! Spans and times that come from outside (a token's TTL, a lease's
//! duration, a static role's `ttl`, a certificate's `expiration`, a
//! `Retry-After`), bounded before any arithmetic: a number near `u64::MAX`
//! would overflow `Instant` or `SystemTime` and abort the process. Every such
//! number becomes a [`Duration`] or [`SystemTime`] here, and only here.

#![deny(clippy::arithmetic_side_effects)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest span taken from outside (ten years); anything longer is read
/// as this.
pub const MAX_SPAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `secs` seconds, at most [`MAX_SPAN`].
pub fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs.min(MAX_SPAN.as_secs()))
}

/// `span`, at most [`MAX_SPAN`].
pub fn bounded(span: Duration) -> Duration {
    span.min(MAX_SPAN)
}

/// `span` (at most [`MAX_SPAN`]) after `now`.
pub fn wall_after(now: SystemTime, span: Duration) -> SystemTime {
    now.checked_add(bounded(span)).unwrap_or(now)
}

/// The time `secs` seconds after the epoch, at most [`MAX_SPAN`] after `now`.
pub fn since_epoch(secs: u64, now: SystemTime) -> SystemTime {
    let latest = wall_after(now, MAX_SPAN);
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .map_or(latest, |t| t.min(latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_near_the_top_of_u64_become_ten_years() {
        let now = SystemTime::now();
        assert_eq!(secs(u64::MAX), MAX_SPAN);
        assert_eq!(secs(30), Duration::from_secs(30));
        assert_eq!(bounded(Duration::MAX), MAX_SPAN);
        assert_eq!(wall_after(now, Duration::MAX), now + MAX_SPAN);
        assert_eq!(since_epoch(u64::MAX, now), now + MAX_SPAN);
        assert_eq!(since_epoch(60, now), UNIX_EPOCH + Duration::from_secs(60));
    }
}
