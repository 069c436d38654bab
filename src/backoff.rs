//! Retries and pacing of backend calls, so that a fleet of sidecars never
//! turns a slow or throttling server into a retry storm.
//!
//! [`Backoff`] is the exponential schedule with jitter. A [`Gate`], one per
//! source, sits in front of every call to it:
//!
//! - **Pushback.** A 429, or a 503 with `Retry-After`, doubles the source's
//!   *stretch* (at most [`MAX_STRETCH`]), which the sidecar applies to its
//!   poll intervals, and closes the gate for at least the server's
//!   `Retry-After` and at least one second per unit of stretch (OpenBao's
//!   rate-limit quotas send no `Retry-After` by default, and `0` within the
//!   last second of a window), plus up to half of that again as jitter. Every
//!   answered request eases the stretch back by 5 %. Sidecars sharing a quota
//!   thus slow down together (additive increase, multiplicative decrease)
//!   instead of retrying into it.
//! - **Down.** A call that gets no answer, or a 5xx, closes the gate for the
//!   backoff of the consecutive failures (failures while it is closed are
//!   the same outage and do not count again), and from then on lets one
//!   request at a time through (a probe) until one is answered.
//! - **Budget.** A fetch makes at most [`MAX_ATTEMPTS`] attempts within its
//!   deadline; per source, a retry spends a token and each first attempt
//!   earns a fifth of one (at most [`TOKENS`] saved), so retries stay under
//!   20 % of requests beyond a burst of ten.
//!
//! The state changes ([`Pacing`]) are plain functions of `now` and a jitter
//! draw `u` in `[0, 1)`, tested under paused time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

/// Attempts of one fetch, retries included.
pub const MAX_ATTEMPTS: u32 = 10;
/// Retries a source saves at most (and starts with).
pub const TOKENS: u32 = 10;
/// First attempts that earn one retry.
const EARN_PER: u32 = 5;
/// The largest factor a source's poll intervals are stretched by.
pub const MAX_STRETCH: f64 = 8.0;
/// What each answered request keeps of the stretch above 1.
const EASE: f64 = 0.95;
/// The shortest wait after a pushback.
const MIN_PUSHBACK: Duration = Duration::from_secs(1);

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
    /// The wait before retry number `attempt` (from 0) without jitter.
    pub fn full(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.cap)
    }

    /// The wait before retry number `attempt`, for a jitter draw `u` in `[0, 1)`.
    pub fn jittered(&self, attempt: u32, u: f64) -> Duration {
        let half = self.full(attempt) / 2;
        half + half.mul_f64(u.clamp(0.0, 1.0))
    }
}

/// Reads a `Retry-After` value: delta-seconds or an HTTP-date (RFC 9110).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(crate::clock::secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(crate::clock::bounded(
        at.duration_since(now).unwrap_or_default(),
    ))
}

/// How long to hold back after a pushback: at least `retry_after`, and at
/// least a second times the source's `stretch` (so a source pushed back
/// again and again probes less and less often), plus up to half of that
/// again for a draw `u` in `[0, 1)`.
pub fn pushback_wait(retry_after: Option<Duration>, stretch: f64, u: f64) -> Duration {
    let least = retry_after
        .unwrap_or_default()
        .max(MIN_PUSHBACK.mul_f64(stretch.max(1.0)));
    least + least.mul_f64(u.clamp(0.0, 1.0) / 2.0)
}

/// What one attempt's outcome tells the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The server answered (whether or not the answer was an error).
    Answered,
    /// No answer, or a server error: worth retrying.
    Failed,
    /// The server asked to slow down (429, or 503 with `Retry-After`).
    PushedBack(Option<Duration>),
}

/// The pacing state of one source.
#[derive(Clone, Debug)]
pub struct Pacing {
    not_before: Instant,
    failures: u32,
    stretch: f64,
    /// Saved retries, in fifths.
    fifths: u32,
    /// Whether the backend itself asked for the current wait (a pushback),
    /// rather than failed attempts.
    pushed: bool,
}

impl Pacing {
    /// Open, unstretched, with a full retry budget.
    pub fn new(now: Instant) -> Self {
        Pacing {
            not_before: now,
            failures: 0,
            stretch: 1.0,
            fifths: TOKENS * EARN_PER,
            pushed: false,
        }
    }

    /// No request is sent before this.
    pub fn ready_at(&self) -> Instant {
        self.not_before
    }

    /// Whether requests go one at a time (after a failure, until an answer).
    pub fn probing(&self) -> bool {
        self.failures > 0
    }

    /// The factor poll intervals are stretched by (1 unless pushed back).
    pub fn stretch(&self) -> f64 {
        self.stretch
    }

    /// Whether the backend asked for the current wait, rather than failures.
    pub fn pushed(&self) -> bool {
        self.pushed
    }

    /// Records an outcome at `now`; `u` in `[0, 1)` draws the jitter.
    pub fn record(&mut self, signal: Signal, now: Instant, backoff: &Backoff, u: f64) {
        match signal {
            Signal::Answered => {
                self.failures = 0;
                self.pushed = false;
                self.stretch = 1.0 + (self.stretch - 1.0) * EASE;
            }
            // A failure while closed is the same outage, seen by another request.
            Signal::Failed if now < self.not_before => {}
            Signal::Failed => {
                self.failures += 1;
                self.pushed = false;
                self.not_before = now + backoff.jittered(self.failures - 1, u);
            }
            Signal::PushedBack(retry_after) => {
                if now >= self.not_before {
                    self.stretch = (self.stretch * 2.0).min(MAX_STRETCH);
                    self.failures += 1;
                }
                let wait = pushback_wait(retry_after, self.stretch, u);
                self.not_before = self.not_before.max(now + wait);
                self.pushed = true;
            }
        }
    }

    /// Books an attempt: a first one earns a fifth of a retry token, a retry
    /// spends one; false when a retry finds none left.
    pub fn book(&mut self, retry: bool) -> bool {
        if !retry {
            self.fifths = (self.fifths + 1).min(TOKENS * EARN_PER);
            true
        } else if let Some(left) = self.fifths.checked_sub(EARN_PER) {
            self.fifths = left;
            true
        } else {
            false
        }
    }
}

/// A source's pacing as the scheduler sees it.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// The factor its poll intervals are stretched by.
    pub stretch: f64,
    /// Until when it holds requests back; or, while it is probing, `now`.
    pub closed_until: Option<Instant>,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            stretch: 1.0,
            closed_until: None,
        }
    }
}

/// Why a gate did not let an attempt through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It will not open before the deadline; it opens in `wait`. `pushed`:
    /// the backend asked for the wait (else failed attempts closed it).
    Closed {
        /// How long until it opens.
        wait: Duration,
        /// Whether the backend asked for it.
        pushed: bool,
    },
    /// The source's retry budget is spent.
    Budget,
}

/// Paces every call to one source (see the module docs).
pub struct Gate {
    pacing: std::sync::Mutex<Pacing>,
    probe: Arc<tokio::sync::Mutex<()>>,
    backoff: Backoff,
}

impl Gate {
    /// An open gate whose failures back off by `backoff`.
    pub fn new(backoff: Backoff) -> Self {
        Gate {
            pacing: std::sync::Mutex::new(Pacing::new(Instant::now())),
            probe: Arc::new(tokio::sync::Mutex::new(())),
            backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pacing> {
        self.pacing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pacing as the scheduler sees it now.
    pub fn pace(&self) -> Pace {
        let p = self.lock();
        let now = Instant::now();
        let closed_until = if p.ready_at() > now {
            Some(p.ready_at())
        } else {
            p.probing().then_some(now)
        };
        Pace {
            stretch: p.stretch(),
            closed_until,
        }
    }

    /// Waits until an attempt may go; holding the result makes it the probe
    /// while the source is down.
    async fn admit(
        &self,
        deadline: Instant,
        retry: bool,
    ) -> Result<Option<OwnedMutexGuard<()>>, Refusal> {
        loop {
            let (ready, probing, pushed) = {
                let p = self.lock();
                (p.ready_at(), p.probing(), p.pushed())
            };
            let now = Instant::now();
            if ready > now {
                if ready >= deadline {
                    return Err(Refusal::Closed {
                        wait: ready - now,
                        pushed,
                    });
                }
                tokio::time::sleep_until(ready).await;
            }
            let probe = if probing {
                let turn = tokio::time::timeout_at(deadline, self.probe.clone().lock_owned());
                match turn.await {
                    Ok(guard) => Some(guard),
                    Err(_) => {
                        let p = self.lock();
                        return Err(Refusal::Closed {
                            wait: p.ready_at().saturating_duration_since(now),
                            pushed: p.pushed(),
                        });
                    }
                }
            } else {
                None
            };
            let mut p = self.lock();
            // Closed again while this one waited (the probe failed): wait anew.
            if p.ready_at() > Instant::now() {
                continue;
            }
            return if p.book(retry) {
                Ok(probe)
            } else {
                Err(Refusal::Budget)
            };
        }
    }

    /// Runs `op` through the gate until it succeeds, fails in a way `signal`
    /// calls [`Signal::Answered`], runs out of attempts or budget, or would
    /// have to wait past `deadline`. Returns the last error; an attempt that
    /// could not even start gets `refused`.
    pub async fn run<T, E, F, Fut>(
        &self,
        deadline: Instant,
        signal: impl Fn(&E) -> Signal,
        refused: impl Fn(Refusal) -> E,
        mut op: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut last = None;
        for attempt in 0..MAX_ATTEMPTS {
            let probe = match self.admit(deadline, attempt > 0).await {
                Ok(p) => p,
                Err(why) => return Err(last.unwrap_or_else(|| refused(why))),
            };
            let result = op().await;
            let s = match &result {
                Ok(_) => Signal::Answered,
                Err(e) => signal(e),
            };
            let u = rand::thread_rng().gen();
            self.lock().record(s, Instant::now(), &self.backoff, u);
            drop(probe);
            match result {
                Err(e) if s != Signal::Answered => {
                    tracing::debug!(attempt, signal = ?s, "attempt failed; retrying through the gate");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| refused(Refusal::Budget)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn a_gate_closed_by_failures_is_not_said_to_be_pushed_back() {
        let (now, b) = (Instant::now(), Backoff::default());
        let mut p = Pacing::new(now);
        p.record(Signal::Failed, now, &b, 0.5);
        assert!(!p.pushed());
        p.record(
            Signal::PushedBack(Some(Duration::from_secs(5))),
            now,
            &b,
            0.5,
        );
        assert!(p.pushed());
        p.record(Signal::Answered, now, &b, 0.5);
        assert!(!p.pushed());
    }

    #[test]
    fn a_retry_after_near_u64_max_is_ten_years_not_an_abort() {
        let now = SystemTime::now();
        for text in ["18446744073709551615", "Fri, 31 Dec 9999 23:59:59 GMT"] {
            let asked = parse_retry_after(text, now);
            assert_eq!(asked, Some(crate::clock::MAX_SPAN), "{text}");
            assert!(pushback_wait(asked, 1.0, 0.999) >= crate::clock::MAX_SPAN);
        }
    }

    #[test]
    fn waits_grow_and_stay_under_the_cap() {
        let b = Backoff::default();
        for attempt in 0..40 {
            assert!(b.jittered(attempt, 0.999_999) <= b.cap);
        }
        assert_eq!(b.jittered(0, 0.0), Duration::from_millis(100));
        assert!(b.jittered(0, 0.999_999) < Duration::from_millis(200));
        assert_eq!(b.full(3), Duration::from_millis(1600));
        assert_eq!(b.full(30), b.cap);
    }

    #[test]
    fn retry_after_is_seconds_or_a_date_and_a_pushback_waits_at_least_that() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 8 ", now), Some(Duration::from_secs(8)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);

        let s = Duration::from_secs;
        assert_eq!(pushback_wait(Some(s(8)), 1.0, 0.0), s(8));
        assert_eq!(pushback_wait(Some(s(8)), 2.0, 0.999_999).as_secs(), 11);
        // OpenBao's `Retry-After: 0`, or none at all: still a second.
        assert_eq!(pushback_wait(Some(s(0)), 1.0, 0.0), s(1));
        assert_eq!(pushback_wait(None, 1.0, 0.5), Duration::from_millis(1250));
        // Pushed back again and again: a second per unit of stretch.
        assert_eq!(pushback_wait(Some(s(0)), 8.0, 0.0), s(8));
        assert_eq!(pushback_wait(Some(s(3)), 2.0, 0.0), s(3));
    }

    #[tokio::test(start_paused = true)]
    async fn pushbacks_close_the_source_and_stretch_it_answers_ease_it() {
        let b = Backoff::default();
        let t0 = Instant::now();
        let mut p = Pacing::new(t0);
        p.record(
            Signal::PushedBack(Some(Duration::from_secs(5))),
            t0,
            &b,
            0.0,
        );
        assert_eq!(p.ready_at(), t0 + Duration::from_secs(5));
        assert_eq!(p.stretch(), 2.0);
        assert!(p.probing());
        // More 429s from requests already in flight: the same pushback.
        p.record(Signal::PushedBack(None), t0, &b, 0.0);
        assert_eq!(
            (p.stretch(), p.ready_at()),
            (2.0, t0 + Duration::from_secs(5))
        );
        // Pushed back again once open: doubles, up to the cap.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(60)).await;
            p.record(Signal::PushedBack(None), Instant::now(), &b, 0.0);
            assert!(p.ready_at() >= Instant::now() + MIN_PUSHBACK);
        }
        assert_eq!(p.stretch(), MAX_STRETCH);
        let mut answered = 0;
        while p.stretch() > 1.01 {
            p.record(Signal::Answered, Instant::now(), &b, 0.0);
            answered += 1;
        }
        assert!(!p.probing());
        // 7 × 0.95ⁿ ≤ 0.01: about 128 answers, a dozen rounds of a 10-secret sidecar.
        assert!((120..135).contains(&answered), "{answered}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_of_one_outage_count_once() {
        let b = Backoff::default();
        let t0 = Instant::now();
        let mut p = Pacing::new(t0);
        p.record(Signal::Failed, t0, &b, 0.0);
        let first = p.ready_at();
        assert_eq!(first, t0 + Duration::from_millis(100));
        for _ in 0..9 {
            p.record(Signal::Failed, t0, &b, 0.0);
        }
        assert_eq!(p.ready_at(), first);
        tokio::time::advance(Duration::from_millis(100)).await;
        p.record(Signal::Failed, Instant::now(), &b, 0.0);
        assert_eq!(p.ready_at(), Instant::now() + Duration::from_millis(200));
        assert_eq!(p.stretch(), 1.0);
    }

    #[test]
    fn retries_spend_a_budget_that_first_attempts_refill() {
        let mut p = Pacing::new(Instant::now());
        let retries = (0..100).take_while(|_| p.book(true)).count();
        assert_eq!(retries, TOKENS as usize);
        assert!(!p.book(true));
        for _ in 0..10 {
            assert!(p.book(false));
        }
        assert!(p.book(true) && p.book(true));
        assert!(!p.book(true));
    }

    fn signal(e: &&str) -> Signal {
        match *e {
            "again" => Signal::Failed,
            "slow" => Signal::PushedBack(Some(Duration::from_secs(3))),
            _ => Signal::Answered,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pushback_holds_every_call_of_the_source_at_least_retry_after() {
        let gate = Gate::new(Backoff::default());
        let far = Instant::now() + Duration::from_secs(600);
        let t0 = Instant::now();
        let calls = AtomicU32::new(0);
        let r: Result<(), &str> = gate
            .run(
                far,
                signal,
                |_| "refused",
                || async {
                    if calls.fetch_add(1, Ordering::Relaxed) == 0 {
                        Err("slow")
                    } else {
                        Ok(())
                    }
                },
            )
            .await;
        assert_eq!(r, Ok(()));
        assert!(Instant::now() >= t0 + Duration::from_secs(3));
        // Another secret of the same source, told nothing itself, waits too.
        let mut p = gate.lock().clone();
        p.record(Signal::PushedBack(None), Instant::now(), &gate.backoff, 0.0);
        *gate.lock() = p;
        let t1 = Instant::now();
        let r: Result<(), &str> = gate
            .run(far, signal, |_| "refused", || async { Ok(()) })
            .await;
        assert_eq!(r, Ok(()));
        assert!(Instant::now() >= t1 + MIN_PUSHBACK);
        // A wait past the deadline is not waited: the call is refused unsent.
        let mut p = gate.lock().clone();
        p.record(
            Signal::PushedBack(Some(Duration::from_secs(60))),
            Instant::now(),
            &gate.backoff,
            0.0,
        );
        *gate.lock() = p;
        let sent = AtomicU32::new(0);
        let r: Result<(), String> = gate
            .run(
                Instant::now() + Duration::from_secs(10),
                |_| Signal::Failed,
                |why| format!("{why:?}"),
                || async {
                    sent.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                },
            )
            .await;
        assert!(r.unwrap_err().starts_with("Closed"));
        assert_eq!(sent.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_source_gets_one_probe_at_a_time_and_bounded_retries() {
        let gate = Arc::new(Gate::new(Backoff::default()));
        let retrying = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let sent = Arc::new(AtomicU32::new(0));
        let deadline = Instant::now() + Duration::from_secs(60);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (gate, retrying, most, sent) =
                    (gate.clone(), retrying.clone(), most.clone(), sent.clone());
                let mine = Arc::new(AtomicU32::new(0));
                tokio::spawn(async move {
                    let op = || {
                        let (retrying, most, sent, mine) =
                            (retrying.clone(), most.clone(), sent.clone(), mine.clone());
                        async move {
                            sent.fetch_add(1, Ordering::Relaxed);
                            let retry = mine.fetch_add(1, Ordering::Relaxed) > 0;
                            if retry {
                                let now = retrying.fetch_add(1, Ordering::Relaxed) + 1;
                                most.fetch_max(now, Ordering::Relaxed);
                            }
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            if retry {
                                retrying.fetch_sub(1, Ordering::Relaxed);
                            }
                            Err::<(), _>("again")
                        }
                    };
                    gate.run(deadline, signal, |_| "refused", op).await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Err("again"));
        }
        // Once the first attempts had failed, retries went one at a time...
        assert_eq!(most.load(Ordering::Relaxed), 1);
        // ...and stopped when the source's budget was spent: ten first
        // attempts (the budget was full, so they earned nothing) and ten retries.
        assert_eq!(sent.load(Ordering::Relaxed), 10 + TOKENS);
        assert!(gate.pace().closed_until.is_some());
    }
}
