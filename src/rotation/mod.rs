//! The sidecar's scheduler. After the first cycle it keeps each secret fresh:
//! static secrets are polled every interval (±10% jitter, the first poll
//! anywhere in the first interval, stretched while the source pushes back)
//! and rewritten only when they changed; leases are renewed at `renew_at` of their duration and,
//! once they cannot be extended, replaced by a new read; certificates are
//! re-issued at `renew_at` of their validity; each source's token is kept
//! alive. Secrets that read the same address form one group: fetched once per
//! round, their files written together. Failures leave files as they are and
//! back off with jitter, never past a lease's expiry; polls missed or held
//! back by the source are spread over the next interval ([`schedule`]). The
//! groups of a batching source (AWS) share one jitter draw per round, so they
//! stay in one round and one batch call. Templates that read a secret fetched
//! in a round are rendered again and written when their bytes changed. After
//! all the files of a round are written, each changed secret's and template's
//! `on_change` actions run once (an action listed by several of them runs
//! once), and `exec`'s child hears of it once.

mod lifecycle;
mod outcome;
mod requests;
mod schedule;
mod templates;

pub use requests::{RefreshNow, Refreshed};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::cycle;
use crate::fetch::{self, Fetcher, SecretError};
use crate::output::OutputDir;
use crate::render::Rendered;
use crate::secret::{Fetched, Lease};
use crate::source::{self, Source};
use crate::state::State;
use crate::store::{Snapshot, Snapshots};
use crate::telemetry::metrics::Metrics;
use crate::template::Rendering;
use schedule::{Decision, Draws, Now, Slot, Step};

/// Longest wait between retries of leases and certificates after failures.
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Secrets worked on at once.
const CONCURRENCY: usize = 16;

/// The secrets that read one address: fetched once per round, with one
/// schedule and one lease.
struct Group {
    /// Indices into `config.secrets`, in config order.
    members: Vec<usize>,
    fetched: Option<Fetched>,
    /// When `fetched` was read (or its lease last renewed).
    at: Instant,
    due: Instant,
    step: Step,
    failures: u32,
    /// Moved for being late, and not fetched since.
    moved: bool,
}

impl Group {
    fn new(members: Vec<usize>) -> Self {
        Group {
            members,
            fetched: None,
            at: Instant::now(),
            due: Instant::now(),
            step: Step::Fetch,
            failures: 0,
            moved: false,
        }
    }

    /// When the lease or certificate ends, if it does.
    fn expiry(&self) -> Option<Instant> {
        schedule::expiry(self.fetched.as_ref()?, self.at, Now::read())
    }

    /// `e` as the failure of every member.
    fn all_failed(&self, e: source::Error) -> Vec<(usize, SecretError)> {
        self.members
            .iter()
            .map(|&i| (i, SecretError::Source(e.clone())))
            .collect()
    }
}

enum Outcome {
    Fetched(Fetched, Vec<Vec<Rendered>>),
    Renewed(Lease),
    /// Whether the held lease or certificate is still good.
    Checked(bool),
    /// Every secret of the group that failed, with why.
    Failed(Vec<(usize, SecretError)>),
}

/// Keeps the files of one configuration fresh.
pub struct Engine {
    config: Arc<Config>,
    /// Every backend call goes through it.
    fetcher: Fetcher,
    /// `None` in a proxy-only config: values are served from the snapshots, never written.
    dir: Option<Arc<OutputDir>>,
    metrics: Arc<Metrics>,
    /// The values as of the last write, published to `snapshots` after each change.
    held: Snapshot,
    snapshots: watch::Sender<Arc<Snapshot>>,
    http: reqwest::Client,
    groups: Vec<Group>,
    /// The files of each secret as last written, by index into `config.secrets`.
    rendered: Vec<Vec<Rendered>>,
    /// The file of each template as last written.
    templates: Rendering,
    token_due: Vec<Instant>,
    backoff: Backoff,
    /// The jitter draws of the current round.
    draws: Draws,
    changes: Option<mpsc::UnboundedSender<()>>,
    /// `refreshNow` requests waiting for the next round, by group.
    waiting: Vec<(usize, tokio::sync::oneshot::Sender<Refreshed>)>,
}

/// Converts a future instant to wall-clock time, for metrics and hand-off.
fn wall(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}

impl Engine {
    /// Runs the first cycle (all or nothing, adopting what `init` handed over)
    /// and returns the engine ready to keep the files fresh.
    pub async fn start(
        config: Arc<Config>,
        sources: Vec<Arc<dyn Source>>,
        dir: Option<Arc<OutputDir>>,
        metrics: Arc<Metrics>,
        deadline: Instant,
        changes: Option<mpsc::UnboundedSender<()>>,
    ) -> Result<Engine, cycle::Error> {
        let state = match (&config.output, &dir) {
            (Some(output), Some(dir)) => State::load(output, dir),
            _ => State::default(),
        };
        for (s, source) in config.sources.iter().zip(&sources) {
            if let Some(token) = state.tokens.get(&s.name) {
                source.adopt(token.clone());
            }
        }
        let now = SystemTime::now();
        let mut ages = vec![None; config.secrets.len()];
        let adopted: Vec<Option<Fetched>> = config
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let held = state.secrets.get(&s.name).filter(|h| h.usable(s, now))?;
                tracing::info!(secret = %s.name, "adopting the lease or certificate init took");
                ages[i] = Some(now.duration_since(held.fetched_at).unwrap_or_default());
                Some(held.fetched.clone())
            })
            .collect();
        let mut fetcher = Fetcher::new(&config, sources, CONCURRENCY);
        let report = cycle::run(&config, &fetcher, dir.as_deref(), deadline, adopted).await?;
        // The rounds' calls are counted: the first cycle's are not polls.
        fetcher.count_into(metrics.clone());
        let started = Instant::now();
        let mut held = Snapshot::new(config.clone(), fetcher.sources().to_vec());
        for (i, secret) in config.secrets.iter().enumerate() {
            metrics.success(&secret.name);
            held.put(&secret.name, &report.fetched[i]);
            if report.changed[i] {
                metrics.wrote(&secret.name);
            }
        }
        let draws = Draws::new(fetcher.sources().iter().map(|s| s.batches()));
        let mut engine = Engine {
            token_due: vec![Instant::now(); fetcher.sources().len()],
            groups: Vec::new(),
            rendered: report.rendered,
            templates: Rendering::new(report.templates),
            config,
            fetcher,
            dir,
            metrics,
            snapshots: watch::Sender::new(Arc::new(held.clone())),
            held,
            http: reqwest::Client::new(),
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: BACKOFF_CAP,
            },
            draws,
            changes,
            waiting: Vec::new(),
        };
        let mut fetched: Vec<Option<Fetched>> = report.fetched.into_iter().map(Some).collect();
        for members in fetch::groups(&engine.config) {
            let age = members.iter().find_map(|&i| ages[i]).unwrap_or_default();
            let mut group = Group::new(members);
            group.fetched = fetched[group.members[0]].take();
            group.at = started.checked_sub(age).unwrap_or(started);
            engine.schedule_next(&mut group, true);
            engine.groups.push(group);
        }
        engine.metrics.set_ready(true);
        engine.count_calls();
        Ok(engine)
    }

    /// The running config.
    pub fn config(&self) -> Arc<Config> {
        self.config.clone()
    }

    /// The snapshots the engine publishes: the first cycle's, then one
    /// after each round that fetched and after each reload.
    pub fn subscribe(&self) -> Snapshots {
        self.snapshots.subscribe()
    }

    /// Publishes what the engine holds now.
    fn publish(&self) {
        self.snapshots.send_replace(Arc::new(self.held.clone()));
    }

    /// Copies the sources' API call counts into the metrics.
    fn count_calls(&self) {
        for (s, source) in self.config.sources.iter().zip(self.fetcher.sources()) {
            for (operation, total) in source.api_calls() {
                self.metrics.api_calls(&s.name, operation, total);
            }
        }
    }

    /// A group polls at the shortest interval of its secrets.
    fn interval(&self, group: &Group) -> Duration {
        group
            .members
            .iter()
            .filter_map(|&i| self.config.secrets[i].refresh)
            .min()
            .unwrap_or(self.config.refresh.interval)
    }

    /// The source (index) a group reads.
    fn source_of(&self, group: &Group) -> usize {
        self.config.secrets[group.members[0]].source
    }

    /// Sets the group's next step and its time after a success.
    fn schedule(&self, group: &mut Group) {
        self.schedule_next(group, false)
    }

    /// As [`Engine::schedule`]; `first`: after the start-up cycle.
    fn schedule_next(&self, group: &mut Group, first: bool) {
        let Some(f) = &group.fetched else {
            group.due = Instant::now();
            group.step = Step::Fetch;
            return;
        };
        let lease = f.lease.as_ref().map(|l| l.id.as_str());
        for &i in &group.members {
            self.metrics
                .version(&self.config.secrets[i].name, f.version.as_deref(), lease);
        }
        let every = self.interval(group);
        let source = self.source_of(group);
        let u = self.draws.get(source);
        let poll = if first {
            schedule::first_poll(every, u)
        } else {
            schedule::next_poll(every, self.fetcher.sources()[source].pace().stretch, u)
        };
        (group.due, group.step) =
            schedule::next(f, group.at, poll, self.config.refresh.renew_at, Now::read());
        if let Some(end) = group.expiry() {
            for &i in &group.members {
                self.metrics
                    .expires(&self.config.secrets[i].name, wall(end));
            }
        }
    }

    /// When the next group or token is due.
    fn next_due(&self) -> Instant {
        self.groups
            .iter()
            .map(|g| g.due)
            .chain(self.token_due.iter().copied())
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Runs until `stop`, a change of the config file or a `reload` request
    /// (SIGHUP), writing back output files changed behind its back, reading
    /// a changed `file` source at once, and fetching what the proxy's
    /// `refreshNow` asks for; returns the engine and whether to reload (then
    /// [`Engine::reload`], else [`Engine::shutdown`]).
    pub async fn run(
        mut self,
        stop: &CancellationToken,
        events: &mut mpsc::Receiver<crate::watch::Event>,
        reload: &tokio::sync::Notify,
        refresh: &mut mpsc::Receiver<RefreshNow>,
    ) -> (Engine, bool) {
        loop {
            let next = self.next_due();
            tokio::select! {
                _ = stop.cancelled() => return (self, false),
                _ = reload.notified() => return (self, true),
                _ = tokio::time::sleep_until(next) => {
                    tokio::select! {
                        _ = stop.cancelled() => return (self, false),
                        _ = self.round() => self.answer_waiting(),
                    }
                }
                Some(request) = refresh.recv() => self.refresh_now(request),
                Some(event) = events.recv() => match event {
                    crate::watch::Event::Output => self.restore(),
                    crate::watch::Event::Config => return (self, true),
                    crate::watch::Event::Source(i) => self.source_changed(i),
                },
            }
        }
    }

    /// Makes every group that reads source `source` due now.
    fn source_changed(&mut self, source: usize) {
        let now = Instant::now();
        for g in &mut self.groups {
            if self.config.secrets[g.members[0]].source == source {
                tracing::debug!(source = %self.config.sources[source].name, "source file changed");
                g.due = g.due.min(now);
            }
        }
    }

    /// Renews, checks or fetches group `g`, as its step says.
    async fn step(&self, g: usize) -> Outcome {
        let group = &self.groups[g];
        let lease = group.fetched.as_ref().and_then(|f| f.lease.as_ref());
        match (group.step, lease, &group.fetched) {
            (Step::Renew, Some(lease), _) => {
                match self.fetcher.renew(self.source_of(group), lease).await {
                    Ok(l) => Outcome::Renewed(l),
                    Err(e) => Outcome::Failed(group.all_failed(e)),
                }
            }
            (Step::Check, _, Some(f)) => {
                match self.fetcher.check(&self.config, group.members[0], f).await {
                    Ok(good) => Outcome::Checked(good),
                    Err(e) => Outcome::Failed(group.all_failed(e)),
                }
            }
            (Step::Check, _, None) => Outcome::Checked(false),
            _ => {
                let budget = fetch::Budget::Request;
                match self
                    .fetcher
                    .fetch_group(&self.config, &group.members, budget)
                    .await
                {
                    Ok((f, r)) => Outcome::Fetched(f, r),
                    Err(e) => Outcome::Failed(e),
                }
            }
        }
    }

    /// Keeps each due token alive.
    async fn maintain_tokens(&mut self, now: Instant) {
        let renew_at = self.config.refresh.renew_at;
        for i in 0..self.fetcher.sources().len() {
            if self.token_due[i] <= now {
                self.token_due[i] = match self.fetcher.maintain(i, renew_at).await {
                    Ok(wait) => Instant::now() + wait.max(Duration::from_secs(1)),
                    Err(e) => {
                        tracing::warn!(source = %self.config.sources[i].name, error = %e, "cannot keep the token alive");
                        Instant::now() + self.backoff.wait(3)
                    }
                };
            }
        }
    }

    /// Works on every due group and token, writes the files of every change
    /// together, then notifies once.
    async fn round(&mut self) {
        let now = Instant::now();
        self.maintain_tokens(now).await;
        self.draws = Draws::new(self.fetcher.sources().iter().map(|s| s.batches()));
        let due = self.pick(now);
        if due.is_empty() {
            return;
        }
        let this = &*self;
        let outcomes: Vec<(usize, Outcome)> = stream::iter(due)
            .map(|g| async move { (g, this.step(g).await) })
            .buffer_unordered(this.groups.len().max(1))
            .collect()
            .await;
        let mut failures = Vec::new();
        let mut waits = Vec::new();
        let mut fresh = Vec::new();
        let mut changed = Vec::new();
        for (g, outcome) in outcomes {
            match outcome {
                Outcome::Fetched(fetched, rendered) => {
                    match self.write(&self.groups[g].members, &rendered) {
                        Ok(wrote) => {
                            fresh.extend(self.groups[g].members.iter().copied());
                            self.written(g, fetched, rendered, &wrote);
                            changed.extend(wrote);
                        }
                        Err(e) => {
                            let errors = self.groups[g]
                                .members
                                .iter()
                                .map(|&i| (i, e.to_string()))
                                .collect();
                            failures.push(self.failed(g, errors, &mut waits));
                        }
                    }
                }
                Outcome::Renewed(lease) => self.renewed(g, lease),
                Outcome::Checked(true) => {
                    let mut group = std::mem::replace(&mut self.groups[g], Group::new(Vec::new()));
                    self.schedule(&mut group);
                    self.groups[g] = group;
                }
                Outcome::Checked(false) => {
                    tracing::info!(secrets = %self.names(&self.groups[g].members), "revoked in the backend; reading anew");
                    self.groups[g].due = Instant::now();
                    self.groups[g].step = Step::Fetch;
                }
                Outcome::Failed(errors) => {
                    // A lease that cannot be renewed or checked is read anew.
                    let renewing = self.groups[g].step != Step::Fetch;
                    let retryable = errors
                        .iter()
                        .all(|(_, e)| matches!(e, SecretError::Source(s) if s.retryable()));
                    if renewing && !retryable {
                        tracing::info!(secrets = %self.names(&self.groups[g].members), error = %errors[0].1, "lease cannot be renewed; reading new credentials");
                        self.groups[g].step = Step::Fetch;
                    }
                    let errors = errors
                        .into_iter()
                        .map(|(i, e)| (i, e.to_string()))
                        .collect();
                    failures.push(self.failed(g, errors, &mut waits));
                }
            }
        }
        changed.sort_unstable();
        // Before any notice: an app told of a change reads the new value.
        if !fresh.is_empty() {
            self.publish();
        }
        self.log_failures(failures);
        let templates = self.write_templates(Some(&fresh));
        self.notify(&changed, &templates).await;
        self.count_calls();
    }

    /// The groups this round works on; polled groups whose time was missed,
    /// or whose source holds requests back (but for one probe), are moved to
    /// a point spread over their next interval instead ([`schedule::plan`]).
    fn pick(&mut self, now: Instant) -> Vec<usize> {
        let paces: Vec<_> = self.fetcher.sources().iter().map(|s| s.pace()).collect();
        let slots: Vec<Slot> = self
            .groups
            .iter()
            .map(|g| Slot {
                source: self.source_of(g),
                late: now.saturating_duration_since(g.due),
                early: g.due.saturating_duration_since(now),
                horizon: schedule::horizon(self.interval(g)),
                polled: g.expiry().is_none(),
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
                    let from = pace.closed_until.map_or(now, |c| c.max(now));
                    let every = self.interval(&self.groups[g]);
                    let u = self.draws.get(slot.source);
                    let group = &mut self.groups[g];
                    group.due = from + schedule::spread(every, pace.stretch, u);
                    group.moved = !slot.held;
                    tracing::debug!(
                        held = slot.held,
                        late_ms = slot.late.as_millis() as u64,
                        in_ms = (group.due - now).as_millis() as u64,
                        "poll moved"
                    );
                }
            }
        }
        due
    }
}

#[cfg(test)]
mod tests;
