//! The rotation schedule as pure functions of what was fetched and when: the
//! next step of a group of secrets and its time, and the wait after a failure.
//! The engine only calls them, with the clock and the jitter passed in.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::secret::Fetched;

/// The shortest time between two steps of one group.
const FLOOR: Duration = Duration::from_secs(1);

/// What to do when a group is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Read the address again.
    Fetch,
    /// Extend the lease.
    Renew,
    /// Ask the backend whether the held lease or certificate was revoked.
    Check,
}

/// The clock a decision is made at: monotonic and wall time, read together.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Monotonic time.
    pub at: Instant,
    /// Wall-clock time (certificates end at a wall-clock time).
    pub wall: SystemTime,
}

impl Now {
    /// The clock as it reads now.
    pub fn read() -> Self {
        Now {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// When the lease or certificate of `fetched`, read at `at`, ends, if it does.
pub fn expiry(fetched: &Fetched, at: Instant, now: Now) -> Option<Instant> {
    match (&fetched.lease, fetched.expires) {
        (Some(l), _) => Some(at + l.duration),
        (None, Some(end)) => Some(now.at + end.duration_since(now.wall).unwrap_or_default()),
        (None, None) => None,
    }
}

/// The next step for `fetched`, read (or renewed) at `at`, and when: a lease
/// is renewed (or, when it cannot be, read anew) at `renew_at` of its
/// duration, a certificate re-issued at `renew_at` of its validity, and
/// anything else polled every `every` times `jitter` (drawn from 0.9..1.1).
/// Until a lease or certificate is due, it is checked for revocation at that
/// poll interval; a value the backend rotates by itself (a static role) is
/// read again a moment after that rotation, when that comes first.
pub fn next(
    fetched: &Fetched,
    at: Instant,
    every: Duration,
    renew_at: f64,
    jitter: f64,
    now: Now,
) -> (Instant, Step) {
    let poll = every.mul_f64(jitter);
    let due = if let Some(l) = &fetched.lease {
        let step = if l.renewable {
            Step::Renew
        } else {
            Step::Fetch
        };
        (at + l.duration.mul_f64(renew_at).max(FLOOR), step)
    } else if let Some(end) = expiry(fetched, at, now) {
        let life = end.saturating_duration_since(at);
        (at + life.mul_f64(renew_at).max(FLOOR), Step::Fetch)
    } else {
        let mut due = at + poll;
        if let Some(rotates) = fetched.rotates {
            let left = rotates.duration_since(now.wall).unwrap_or_default();
            due = due.min(now.at + left + FLOOR);
        }
        return (due, Step::Fetch);
    };
    let check = now.at + poll;
    if check < due.0 {
        (check, Step::Check)
    } else {
        due
    }
}

/// The wait after a failure: the backoff's `wait`, but never past half of
/// what is `left` of a lease or certificate (and never under a second then).
pub fn retry_in(wait: Duration, left: Option<Duration>) -> Duration {
    match left {
        Some(left) => wait.min(left / 2).max(FLOOR),
        None => wait,
    }
}

/// Whether a lease or certificate of `life` with `left` to go is close enough
/// to its end that a failing backend is an emergency.
pub fn about_to_expire(left: Duration, life: Duration) -> bool {
    left < life / 4 || left < Duration::from_secs(60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Fields, Lease};

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn leased(secs: u64, renewable: bool) -> Fetched {
        let mut f = Fetched::fields(Fields::new());
        f.lease = Some(Lease {
            id: "l".into(),
            duration: S(secs),
            renewable,
        });
        f
    }

    #[test]
    fn static_secrets_poll_every_interval_with_jitter() {
        let now = Now::read();
        let f = Fetched::fields(Fields::new());
        assert_eq!(
            next(&f, now.at, S(300), 0.67, 0.9, now),
            (now.at + S(270), Step::Fetch)
        );
        assert_eq!(next(&f, now.at, S(3), 0.67, 1.0, now).0, now.at + S(3));
    }

    #[test]
    fn static_roles_are_read_again_after_vaults_rotation() {
        let now = Now::read();
        let mut f = Fetched::fields(Fields::new());
        f.rotates = Some(now.wall + S(10));
        assert_eq!(
            next(&f, now.at, S(300), 0.67, 1.0, now),
            (now.at + S(11), Step::Fetch)
        );
        // The poll interval, when it comes first.
        assert_eq!(next(&f, now.at, S(5), 0.67, 1.0, now).0, now.at + S(5));
        // A rotation overdue: a second from now.
        f.rotates = Some(now.wall - S(10));
        assert_eq!(next(&f, now.at, S(300), 0.67, 1.0, now).0, now.at + S(1));
    }

    #[test]
    fn leases_and_certificates_are_checked_at_the_poll_interval() {
        let now = Now::read();
        assert_eq!(
            next(&leased(100, true), now.at, S(10), 0.5, 1.0, now),
            (now.at + S(10), Step::Check)
        );
        let mut f = Fetched::fields(Fields::new());
        f.expires = Some(now.wall + S(3600));
        assert_eq!(
            next(&f, now.at, S(10), 0.5, 1.0, now),
            (now.at + S(10), Step::Check)
        );
    }

    #[test]
    fn leases_are_renewed_or_read_again_at_renew_at() {
        let now = Now::read();
        assert_eq!(
            next(&leased(100, true), now.at, S(300), 0.5, 1.0, now),
            (now.at + S(50), Step::Renew)
        );
        assert_eq!(
            next(&leased(100, false), now.at, S(300), 0.5, 1.0, now),
            (now.at + S(50), Step::Fetch)
        );
        // Never sooner than a second.
        assert_eq!(
            next(&leased(1, true), now.at, S(300), 0.5, 1.0, now).0,
            now.at + S(1)
        );
    }

    #[test]
    fn certificates_are_reissued_at_renew_at_of_their_validity() {
        let now = Now::read();
        let mut f = Fetched::fields(Fields::new());
        f.expires = Some(now.wall + S(40));
        assert_eq!(
            next(&f, now.at, S(300), 0.5, 1.0, now),
            (now.at + S(20), Step::Fetch)
        );
        assert_eq!(expiry(&f, now.at, now), Some(now.at + S(40)));
    }

    #[test]
    fn retries_stop_short_of_an_expiry() {
        assert_eq!(retry_in(S(300), None), S(300));
        assert_eq!(retry_in(S(300), Some(S(60))), S(30));
        assert_eq!(retry_in(S(300), Some(Duration::ZERO)), S(1));
        assert!(about_to_expire(S(59), S(3600)));
        assert!(about_to_expire(S(100), S(1000)));
        assert!(!about_to_expire(S(600), S(1000)));
    }
}
