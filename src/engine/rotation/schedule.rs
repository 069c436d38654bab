//! The rotation schedule as pure functions of what was fetched and when: the
//! next step of a group of secrets and its time, the wait after a failure,
//! and what a round does with each group. The engine only calls them, with
//! the clock and the jitter draws `u` (in `[0, 1)`) passed in, so that a
//! fleet's timing can be reasoned about and tested without a clock.
//!
//! - **First poll** after start: anywhere in the first interval (not in the
//!   first second). Sidecars started in the same second (a rollout) are spread
//!   over the interval from their first refresh on, instead of drifting apart
//!   over hundreds of polls.
//! - **Later polls**: the interval, stretched by the source's pushback factor
//!   (see [`crate::backoff`]), ±10 %.
//! - **A failed poll** is retried after about 1 s, doubling, but never later
//!   than the stretched interval (each wait drawn from ×0.5 to ×1.5). During a
//!   long outage each group tries about once an interval, and the source's gate
//!   lets only one request at a time out; when the server is back the fleet's
//!   retries arrive at the steady rate. Leases and certificates back off up to
//!   5 minutes, never past half of what is left.
//! - **Missed or held back**: a polled group whose time was missed by more
//!   than the coalescing horizon (the sidecar or its source was stuck, for
//!   example on a request to a stopped server), or whose source is holding
//!   requests back, is not fetched together with every other such group: it
//!   moves to a point spread over its next interval. One group of a held-back
//!   source still goes, as its probe; a group is moved for being late only
//!   once in a row, so a slow machine never starves it.
//! - **Coalescing**: groups due within the horizon (1 s, or a tenth of a
//!   short interval) join the round that is starting.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::secret::Fetched;

/// The shortest time between two steps of one group.
const FLOOR: Duration = Duration::from_secs(1);
/// Groups due within this much of a round join it (capped at a tenth of
/// their interval), so that jittered schedules share wake-ups.
pub const COALESCE: Duration = Duration::from_secs(1);

/// What to do when a group is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Read the address again.
    Fetch,
    /// Extend the lease.
    Renew,
    /// Ask the backend whether the held lease or certificate was revoked.
    Revalidate,
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
/// anything else polled `poll` later ([`first_poll`] or [`next_poll`]).
/// Until a lease or certificate is due, it is checked for revocation at that
/// poll interval; a value the backend rotates by itself (a static role) is
/// read again a moment after that rotation, when that comes first.
pub fn next(
    fetched: &Fetched,
    at: Instant,
    poll: Duration,
    renew_at: f64,
    now: Now,
) -> (Instant, Step) {
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
        (check, Step::Revalidate)
    } else {
        due
    }
}

/// The first poll after start: anywhere in the interval, but not within the
/// first second.
pub fn first_poll(interval: Duration, u: f64) -> Duration {
    let room = interval.saturating_sub(FLOOR);
    FLOOR.min(interval) + room.mul_f64(u.clamp(0.0, 1.0))
}

/// A later poll: the interval times `stretch`, ±10 %.
pub fn next_poll(interval: Duration, stretch: f64, u: f64) -> Duration {
    interval.mul_f64(stretch * (0.9 + 0.2 * u.clamp(0.0, 1.0)))
}

/// The retry of a polled group after `failures` (from 1) failed polls: the
/// one [`Backoff`] doubling from a second, capped at the stretched
/// interval, ±50 %.
pub fn poll_retry(failures: u32, interval: Duration, stretch: f64, u: f64) -> Duration {
    let cap = interval.mul_f64(stretch).max(FLOOR);
    let full = Backoff { base: FLOOR, cap }.full(failures.saturating_sub(1));
    full.mul_f64(0.5 + u.clamp(0.0, 1.0))
}

/// A point spread over the next (stretched) interval, for a group that is
/// not fetched now with the others.
pub fn spread(interval: Duration, stretch: f64, u: f64) -> Duration {
    interval.mul_f64(stretch * u.clamp(0.0, 1.0)).max(FLOOR)
}

/// How far ahead a round gathers groups that are nearly due.
pub fn horizon(interval: Duration) -> Duration {
    COALESCE.min(interval / 10)
}

/// Jitter draws of one round: one per batching source (its groups stay in
/// one round, so in one batch call), a fresh one per group otherwise.
pub struct Draws(Vec<Option<f64>>);

impl Draws {
    /// Draws for sources that batch (`true`) or not, by source index.
    pub fn new(batching: impl Iterator<Item = bool>) -> Self {
        Draws(batching.map(|b| b.then(rand::random)).collect())
    }

    /// The same draw `u` for every group of `sources` sources, for tests.
    #[cfg(test)]
    pub fn fixed(u: f64, sources: usize) -> Self {
        Draws(vec![Some(u); sources])
    }

    /// The draw for a group of source `source`.
    pub fn get(&self, source: usize) -> f64 {
        self.0
            .get(source)
            .copied()
            .flatten()
            .unwrap_or_else(rand::random)
    }
}

/// What a round does with one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not due yet.
    Wait,
    /// Fetch (or renew) it in this round.
    Fetch,
    /// Move it to a point spread over its next interval.
    Spread,
}

/// One group's place in the round starting now.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    /// Its source (index).
    pub source: usize,
    /// How long ago it was due (zero when it is due later).
    pub late: Duration,
    /// How long until it is due (zero when it is already due).
    pub early: Duration,
    /// The coalescing horizon of its interval ([`horizon`]).
    pub horizon: Duration,
    /// Polled, rather than a lease or certificate with an end.
    pub polled: bool,
    /// It was moved for being late last time, and not fetched since.
    pub moved: bool,
    /// Its source holds requests back (pushed back, or down and probing).
    pub held: bool,
}

/// Decides what the round does with each group, in order: the first due
/// group of a held-back source goes as its probe.
pub fn plan(slots: &[Slot]) -> Vec<Decision> {
    let mut probing: Vec<usize> = Vec::new();
    slots
        .iter()
        .map(|s| {
            let d = decide(s, probing.contains(&s.source));
            if d == Decision::Fetch && s.held {
                probing.push(s.source);
            }
            d
        })
        .collect()
}

fn decide(slot: &Slot, probe_taken: bool) -> Decision {
    if slot.early > slot.horizon {
        return Decision::Wait;
    }
    if !slot.polled {
        return Decision::Fetch;
    }
    if slot.held && probe_taken {
        return Decision::Spread;
    }
    if slot.late > slot.horizon.max(COALESCE) && !slot.moved && !slot.held {
        return Decision::Spread;
    }
    Decision::Fetch
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
            next(&f, now.at, S(270), 0.67, now),
            (now.at + S(270), Step::Fetch)
        );
        assert_eq!(next(&f, now.at, S(3), 0.67, now).0, now.at + S(3));
    }

    #[test]
    fn static_roles_are_read_again_after_vaults_rotation() {
        let now = Now::read();
        let mut f = Fetched::fields(Fields::new());
        f.rotates = Some(now.wall + S(10));
        assert_eq!(
            next(&f, now.at, S(300), 0.67, now),
            (now.at + S(11), Step::Fetch)
        );
        // The poll interval, when it comes first.
        assert_eq!(next(&f, now.at, S(5), 0.67, now).0, now.at + S(5));
        // A rotation overdue: a second from now.
        f.rotates = Some(now.wall - S(10));
        assert_eq!(next(&f, now.at, S(300), 0.67, now).0, now.at + S(1));
    }

    #[test]
    fn leases_and_certificates_are_checked_at_the_poll_interval() {
        let now = Now::read();
        assert_eq!(
            next(&leased(100, true), now.at, S(10), 0.5, now),
            (now.at + S(10), Step::Revalidate)
        );
        let mut f = Fetched::fields(Fields::new());
        f.expires = Some(now.wall + S(3600));
        assert_eq!(
            next(&f, now.at, S(10), 0.5, now),
            (now.at + S(10), Step::Revalidate)
        );
    }

    #[test]
    fn leases_are_renewed_or_read_again_at_renew_at() {
        let now = Now::read();
        assert_eq!(
            next(&leased(100, true), now.at, S(300), 0.5, now),
            (now.at + S(50), Step::Renew)
        );
        assert_eq!(
            next(&leased(100, false), now.at, S(300), 0.5, now),
            (now.at + S(50), Step::Fetch)
        );
        // Never sooner than a second.
        assert_eq!(
            next(&leased(1, true), now.at, S(300), 0.5, now).0,
            now.at + S(1)
        );
    }

    #[test]
    fn certificates_are_reissued_at_renew_at_of_their_validity() {
        let now = Now::read();
        let mut f = Fetched::fields(Fields::new());
        f.expires = Some(now.wall + S(40));
        assert_eq!(
            next(&f, now.at, S(300), 0.5, now),
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

    #[test]
    fn first_polls_cover_the_interval_later_ones_stay_within_ten_percent() {
        assert_eq!(first_poll(S(10), 0.0), S(1));
        assert_eq!(first_poll(S(11), 0.5), S(6));
        assert!(first_poll(S(10), 0.999_999) < S(10));
        assert_eq!(
            first_poll(Duration::from_millis(500), 0.3),
            Duration::from_millis(500)
        );
        assert_eq!(next_poll(S(10), 1.0, 0.0), S(9));
        assert_eq!(next_poll(S(10), 1.0, 0.5), S(10));
        assert!(next_poll(S(10), 1.0, 0.999_999) < S(11));
        assert_eq!(next_poll(S(10), 4.0, 0.5), S(40));
    }

    #[test]
    fn sidecars_started_in_the_same_second_poll_spread_over_the_interval() {
        // 300 sidecars, 10 secrets each, all started at t = 0; the draws are
        // an even grid standing in for uniform randomness.
        let n = 3000;
        let mut per_second = [0u32; 10];
        for k in 0..n {
            let at = first_poll(S(10), (k as f64 + 0.5) / n as f64);
            per_second[at.as_secs() as usize] += 1;
        }
        // Nothing in the first second (init has just fetched), then an even share.
        assert_eq!(per_second[0], 0);
        let share = n as f64 / 9.0;
        assert!(
            per_second[1..]
                .iter()
                .all(|&c| (f64::from(c) - share).abs() <= 1.0),
            "{per_second:?}"
        );
    }

    #[test]
    fn poll_retries_double_up_to_the_stretched_interval() {
        assert_eq!(poll_retry(1, S(10), 1.0, 0.5), S(1));
        assert_eq!(poll_retry(2, S(10), 1.0, 0.5), S(2));
        assert_eq!(poll_retry(4, S(10), 1.0, 0.5), S(8));
        assert_eq!(poll_retry(5, S(10), 1.0, 0.5), S(10));
        assert_eq!(poll_retry(50, S(10), 1.0, 0.0), S(5));
        assert_eq!(poll_retry(50, S(10), 1.0, 0.999_999).as_secs(), 14);
        assert_eq!(poll_retry(50, S(10), 3.0, 0.5), S(30));
        // At the cap the mean wait is the interval: a fleet retrying through
        // an outage arrives at its steady rate when the outage ends.
        let draws = 1000;
        let mean: f64 = (0..draws)
            .map(|k| poll_retry(50, S(10), 1.0, (k as f64 + 0.5) / draws as f64).as_secs_f64())
            .sum::<f64>()
            / draws as f64;
        assert!((mean - 10.0).abs() < 0.01, "{mean}");
    }

    #[test]
    fn spread_points_cover_the_next_interval() {
        assert_eq!(spread(S(10), 1.0, 0.0), S(1));
        assert_eq!(spread(S(10), 1.0, 0.5), S(5));
        assert_eq!(spread(S(10), 2.0, 0.5), S(10));
        assert_eq!(horizon(S(300)), COALESCE);
        assert_eq!(horizon(S(2)), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_fetch_what_is_due_spread_what_was_missed_and_probe_once() {
        let due = |at: Instant, now: Instant| Slot {
            source: 0,
            late: now.saturating_duration_since(at),
            early: at.saturating_duration_since(now),
            horizon: S(1),
            polled: true,
            moved: false,
            held: false,
        };
        let t0 = Instant::now();
        let on_time = due(t0, t0);
        let soon = due(t0 + Duration::from_millis(900), t0);
        let later = due(t0 + S(2), t0);
        assert_eq!(
            plan(&[on_time, soon, later]),
            [Decision::Fetch, Decision::Fetch, Decision::Wait]
        );
        // The sidecar was stuck for 30 s (say, on a stopped server): what it
        // missed is spread, once; a group moved before goes however late.
        tokio::time::advance(S(30)).await;
        let now = Instant::now();
        let missed = due(t0, now);
        let moved = Slot {
            moved: true,
            ..missed
        };
        let lease = Slot {
            polled: false,
            ..missed
        };
        assert_eq!(
            plan(&[missed, moved, lease]),
            [Decision::Spread, Decision::Fetch, Decision::Fetch]
        );
        // Late by less than a second (a busy machine) is on time.
        let busy = Slot {
            horizon: Duration::from_millis(200),
            ..due(now - Duration::from_millis(800), now)
        };
        assert_eq!(plan(&[busy]), [Decision::Fetch]);
        // A held-back source: its first due group goes as the probe, late or
        // not; its other groups are spread, another source's are not.
        let held = Slot {
            held: true,
            ..missed
        };
        let other = Slot {
            source: 1,
            ..due(now, now)
        };
        assert_eq!(
            plan(&[
                held,
                held,
                Slot {
                    held: true,
                    ..on_time
                },
                other,
                lease
            ]),
            [
                Decision::Fetch,
                Decision::Spread,
                Decision::Spread,
                Decision::Fetch,
                Decision::Fetch
            ]
        );
    }
}
