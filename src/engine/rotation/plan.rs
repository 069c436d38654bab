//! The scheduler's state and what a round's outcomes do to it, without I/O:
//! each group of secrets with what it holds, its next step and when that is
//! due, and each source's token upkeep. The engine reads the clock and the
//! sources' pacing, passes them in, and makes the calls, writes and notices
//! these decide on; the timing rules themselves are in [`super::schedule`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::schedule::{self, Decision, Draws, Now, Slot, Step};
use crate::backoff::{Backoff, Pace};
use crate::config::Config;
use crate::engine::fetch::SecretError;
use crate::secret::{Fetched, Lease};
use crate::source;

/// Longest wait between retries of leases, certificates and tokens after failures.
const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// The secrets that read one address: fetched once per round, with one
/// schedule and one lease.
pub(super) struct Group {
    /// Indices into `config.secrets`, in config order.
    pub(super) members: Vec<usize>,
    pub(super) fetched: Option<Arc<Fetched>>,
    /// When `fetched` was read (or its lease last renewed).
    pub(super) at: Instant,
    pub(super) due: Instant,
    pub(super) step: Step,
    pub(super) failures: u32,
    /// Moved for being late, and not fetched since.
    pub(super) moved: bool,
}

impl Group {
    /// A group holding nothing yet, to be fetched at `now`.
    pub(super) fn new(members: Vec<usize>, now: Instant) -> Self {
        Group {
            members,
            fetched: None,
            at: now,
            due: now,
            step: Step::Fetch,
            failures: 0,
            moved: false,
        }
    }

    /// When the lease or certificate ends, if it does.
    pub(super) fn expiry(&self, now: Now) -> Option<Instant> {
        schedule::expiry(self.fetched.as_ref()?, self.at, now)
    }

    /// `e` as the failure of every member.
    pub(super) fn all_failed(&self, e: source::Error) -> Vec<(usize, SecretError)> {
        self.members
            .iter()
            .map(|&i| (i, SecretError::Source(e.clone())))
            .collect()
    }
}

/// What a failure did to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retry {
    /// Failures in a row.
    pub(super) failures: u32,
    /// When the group is tried again.
    pub(super) retry: Duration,
    /// What is left of its lease or certificate, when that is about to end.
    pub(super) expiring: Option<Duration>,
}

/// The wait chosen for each cause of failure in one round: groups that fail
/// for one cause are retried together, so that their next failure is said
/// once too.
pub(super) type Waits = Vec<(String, Duration)>;

/// What a `refreshNow` of a secret does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresh {
    /// No such secret in the running config.
    Unknown,
    /// A leased or issued secret: served as held, never fetched again.
    Held,
    /// Its group (index) is due now.
    Due(usize),
}

/// Every group and token of one config, and when each is due.
pub(super) struct Plan {
    pub(super) config: Arc<Config>,
    pub(super) groups: Vec<Group>,
    /// When each source's token is next kept alive.
    token_due: Vec<Instant>,
    backoff: Backoff,
    /// The jitter draws of the current round.
    draws: Draws,
}

impl Plan {
    /// A plan of `config` with no group yet, its `sources` tokens due at `now`.
    pub(super) fn new(config: Arc<Config>, draws: Draws, sources: usize, now: Instant) -> Self {
        Plan {
            config,
            groups: Vec::new(),
            token_due: vec![now; sources],
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: BACKOFF_CAP,
            },
            draws,
        }
    }

    /// Takes the tokens of `sources` new sources as due at `now`.
    pub(super) fn new_sources(&mut self, sources: usize, now: Instant) {
        self.token_due = vec![now; sources];
    }

    /// A group polls at the shortest interval of its secrets.
    pub(super) fn interval(&self, group: &Group) -> Duration {
        group
            .members
            .iter()
            .filter_map(|&i| self.config.secrets[i].refresh)
            .min()
            .unwrap_or(self.config.refresh.interval)
    }

    /// The source (index) a group reads.
    pub(super) fn source_of(&self, group: &Group) -> usize {
        self.config.secrets[group.members[0]].source
    }

    /// When the next group or token is due (an hour from `now` when nothing is).
    pub(super) fn next_due(&self, now: Instant) -> Instant {
        self.groups
            .iter()
            .map(|g| g.due)
            .chain(self.token_due.iter().copied())
            .min()
            .unwrap_or(now + Duration::from_secs(3600))
    }

    /// Starts a round with these jitter draws.
    pub(super) fn start_round(&mut self, draws: Draws) {
        self.draws = draws;
    }

    /// The sources whose token is due at `now`.
    pub(super) fn tokens_due(&self, now: Instant) -> Vec<usize> {
        (0..self.token_due.len())
            .filter(|&i| self.token_due[i] <= now)
            .collect()
    }

    /// Records the upkeep of source `i`'s token: the wait the source asked
    /// for (at least a second), or after a failure (`None`) a backoff.
    pub(super) fn token_kept(&mut self, i: usize, wait: Option<Duration>, now: Instant) {
        let wait = match wait {
            Some(w) => w.max(Duration::from_secs(1)),
            None => self.backoff.jittered(3, self.draws.get(i)),
        };
        self.token_due[i] = now + wait;
    }

    /// Sets group `g`'s next step and its time from what it holds; `first`:
    /// after the start-up cycle. A group holding nothing is fetched now.
    pub(super) fn schedule(&mut self, g: usize, paces: &[Pace], first: bool, now: Now) {
        let every = self.interval(&self.groups[g]);
        let source = self.source_of(&self.groups[g]);
        let u = self.draws.get(source);
        let renew_at = self.config.refresh.renew_at;
        let group = &mut self.groups[g];
        let Some(f) = &group.fetched else {
            group.due = now.at;
            group.step = Step::Fetch;
            return;
        };
        let poll = if first {
            schedule::first_poll(every, u)
        } else {
            schedule::next_poll(every, paces[source].stretch, u)
        };
        (group.due, group.step) = schedule::next(f, group.at, poll, renew_at, now);
    }

    /// Records a new value of group `g`, read at `now`, and schedules it.
    pub(super) fn fetched(&mut self, g: usize, fetched: Arc<Fetched>, paces: &[Pace], now: Now) {
        let group = &mut self.groups[g];
        group.fetched = Some(fetched);
        group.at = now.at;
        group.failures = 0;
        self.schedule(g, paces, false, now);
    }

    /// Records a renewal of group `g`'s lease at `now` and schedules the
    /// next; returns whether the lease came back shorter than asked (its max
    /// TTL is near) or not renewable, so that new credentials are read next.
    pub(super) fn renewed(&mut self, g: usize, lease: Lease, paces: &[Pace], now: Now) -> bool {
        let group = &mut self.groups[g];
        let asked = group
            .fetched
            .as_ref()
            .and_then(|f| f.lease.as_ref())
            .map_or(lease.duration, |l| l.duration);
        let capped = lease.duration < asked.mul_f64(0.9) || !lease.renewable;
        if let Some(f) = group.fetched.as_mut() {
            Arc::make_mut(f).lease = Some(lease);
        }
        group.at = now.at;
        group.failures = 0;
        self.schedule(g, paces, false, now);
        let group = &mut self.groups[g];
        if capped && group.step == Step::Renew {
            group.step = Step::Fetch;
        }
        capped
    }

    /// Records whether group `g`'s lease or certificate still holds: if so
    /// it is scheduled as before, else read anew now.
    pub(super) fn revalidated(&mut self, g: usize, good: bool, paces: &[Pace], now: Now) {
        if good {
            self.schedule(g, paces, false, now);
        } else {
            self.read_anew(g, Some(now.at));
        }
    }

    /// Makes group `g` read its address anew: at `at` when given, else
    /// when it is next due.
    pub(super) fn read_anew(&mut self, g: usize, at: Option<Instant>) {
        let group = &mut self.groups[g];
        group.step = Step::Fetch;
        if let Some(at) = at {
            group.due = at;
        }
    }

    /// Records a failure of group `g` for `cause` at `now` and schedules its
    /// retry: a polled group after [`schedule::poll_retry`], a lease or
    /// certificate after a backoff that stops short of its end; groups that
    /// failed for the same cause in this round (`waits`) wait as long.
    pub(super) fn failed(
        &mut self,
        g: usize,
        cause: &str,
        waits: &mut Waits,
        paces: &[Pace],
        now: Now,
    ) -> Retry {
        let source = self.source_of(&self.groups[g]);
        let every = self.interval(&self.groups[g]);
        let u = self.draws.get(source);
        let group = &mut self.groups[g];
        let failures = group.failures + 1;
        let left = group
            .expiry(now)
            .map(|end| end.saturating_duration_since(now.at));
        let wait = match waits.iter().find(|(c, _)| c == cause) {
            Some((_, w)) => *w,
            None => {
                let w = match left {
                    Some(_) => self.backoff.jittered(failures, u),
                    None => schedule::poll_retry(failures, every, paces[source].stretch, u),
                };
                waits.push((cause.to_owned(), w));
                w
            }
        };
        let retry = schedule::retry_in(wait, left);
        let expiring = left.filter(|&left| {
            let life = group
                .fetched
                .as_ref()
                .and_then(|f| f.lease.as_ref().map(|l| l.duration))
                .unwrap_or(left);
            schedule::about_to_expire(left, life)
        });
        group.failures = failures;
        group.due = now.at + retry;
        Retry {
            failures,
            retry,
            expiring,
        }
    }

    /// The groups the round starting at `now` works on; polled groups whose
    /// time was missed, or whose source holds requests back (but for one
    /// probe), are moved to a point spread over their next interval instead
    /// ([`schedule::plan`]).
    pub(super) fn pick(&mut self, now: Now, paces: &[Pace]) -> Vec<usize> {
        let at = now.at;
        let slots: Vec<Slot> = self
            .groups
            .iter()
            .map(|g| Slot {
                source: self.source_of(g),
                late: at.saturating_duration_since(g.due),
                early: g.due.saturating_duration_since(at),
                horizon: schedule::horizon(self.interval(g)),
                polled: g.expiry(now).is_none(),
                moved: g.moved,
                held: paces[self.source_of(g)].closed_until.is_some(),
            })
            .collect();
        let mut due = Vec::new();
        for (g, (decision, slot)) in schedule::plan(&slots).into_iter().zip(&slots).enumerate() {
            match decision {
                Decision::Wait => {}
                Decision::Fetch => {
                    self.groups[g].moved = false;
                    due.push(g);
                }
                Decision::Spread => {
                    let pace = paces[slot.source];
                    let from = pace.closed_until.map_or(at, |c| c.max(at));
                    let every = self.interval(&self.groups[g]);
                    let u = self.draws.get(slot.source);
                    let group = &mut self.groups[g];
                    group.due = from + schedule::spread(every, pace.stretch, u);
                    group.moved = !slot.held;
                    tracing::debug!(
                        held = slot.held,
                        late_ms = slot.late.as_millis() as u64,
                        in_ms = (group.due - at).as_millis() as u64,
                        "poll moved"
                    );
                }
            }
        }
        due
    }

    /// The group of the secret named `secret`, made due now when its value
    /// is one the backend can be asked for again.
    pub(super) fn refresh_now(&mut self, secret: &str, now: Instant) -> Refresh {
        let found = self.groups.iter().position(|g| {
            g.members
                .iter()
                .any(|&i| self.config.secrets[i].name == secret)
        });
        let Some(g) = found else {
            return Refresh::Unknown;
        };
        let lead = &self.config.secrets[self.groups[g].members[0]];
        if lead.address.mints() {
            return Refresh::Held;
        }
        self.read_anew(g, Some(now));
        Refresh::Due(g)
    }

    /// Makes every group that reads source `source` due by `now`.
    pub(super) fn source_changed(&mut self, source: usize, now: Instant) {
        let config = &self.config;
        for g in &mut self.groups {
            if config.secrets[g.members[0]].source == source {
                g.due = g.due.min(now);
            }
        }
    }
}

#[cfg(test)]
mod tests;
