//! The sidecar's scheduler. After the first cycle it keeps each secret fresh:
//! static secrets are polled every interval (±10% jitter) and rewritten only
//! when they changed; leases are renewed at `renew_at` of their duration and,
//! once they cannot be extended, replaced by a new read; certificates are
//! re-issued at `renew_at` of their validity; each source's token is kept
//! alive. Failures leave files as they are and back off with jitter, never
//! past a lease's expiry. After the files of a round are written, each changed
//! secret's `on_change` actions run once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::{Config, Secret};
use crate::cycle::{self, SecretError};
use crate::output::OutputDir;
use crate::render::{self, Rendered};
use crate::secret::{Fetched, Lease};
use crate::source::{self, Source};
use crate::state::State;
use crate::store::Store;
use crate::telemetry::metrics::Metrics;

/// Longest wait between retries after failures.
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Secrets worked on at once.
const CONCURRENCY: usize = 16;
/// Secrets due within this much of a round join it, so that jittered
/// schedules share wake-ups (capped at a tenth of the refresh interval).
const COALESCE: Duration = Duration::from_secs(1);

/// What to do when a secret is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Fetch,
    Renew,
}

/// The schedule and last result of one secret.
struct Track {
    fetched: Option<Fetched>,
    /// When `fetched` was read (or its lease last renewed).
    at: Instant,
    rendered: Vec<Rendered>,
    due: Instant,
    step: Step,
    failures: u32,
}

impl Track {
    fn new() -> Self {
        Track {
            fetched: None,
            at: Instant::now(),
            rendered: Vec::new(),
            due: Instant::now(),
            step: Step::Fetch,
            failures: 0,
        }
    }

    /// When the lease or certificate ends, if it does.
    fn expiry(&self) -> Option<Instant> {
        let f = self.fetched.as_ref()?;
        match (&f.lease, f.expires) {
            (Some(l), _) => Some(self.at + l.duration),
            (None, Some(e)) => {
                let left = e.duration_since(SystemTime::now()).unwrap_or_default();
                Some(Instant::now() + left)
            }
            (None, None) => None,
        }
    }
}

enum Outcome {
    Fetched(Fetched, Vec<Rendered>),
    Renewed(Lease),
    Failed(SecretError),
}

/// Keeps the files of one configuration fresh.
pub struct Engine {
    config: Arc<Config>,
    sources: Vec<Arc<dyn Source>>,
    dir: Arc<OutputDir>,
    metrics: Arc<Metrics>,
    store: Arc<Store>,
    http: reqwest::Client,
    tracks: Vec<Track>,
    token_due: Vec<Instant>,
    backoff: Backoff,
    changes: Option<mpsc::UnboundedSender<()>>,
    limiter: cycle::Limiter,
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
        dir: Arc<OutputDir>,
        metrics: Arc<Metrics>,
        store: Arc<Store>,
        deadline: Instant,
        changes: Option<mpsc::UnboundedSender<()>>,
    ) -> Result<Engine, cycle::Error> {
        let state = State::load(&config);
        for (s, source) in config.sources.iter().zip(&sources) {
            if let Some(token) = state.tokens.get(&s.name) {
                source.adopt(token.clone());
            }
        }
        let now = SystemTime::now();
        let mut ages = Vec::with_capacity(config.secrets.len());
        let adopted: Vec<Option<Fetched>> = config
            .secrets
            .iter()
            .map(|s| {
                let held = state
                    .secrets
                    .get(&s.name)
                    .filter(|h| h.address == s.address.identity() && h.usable(now))?;
                tracing::info!(secret = %s.name, "adopting the lease or certificate init took");
                ages.push((
                    s.name.clone(),
                    now.duration_since(held.fetched_at).unwrap_or_default(),
                ));
                Some(held.fetched.clone())
            })
            .collect();
        let report = cycle::run(&config, &sources, &dir, deadline, CONCURRENCY, adopted).await?;
        let started = Instant::now();
        let mut engine = Engine {
            token_due: vec![Instant::now(); sources.len()],
            config,
            sources,
            dir,
            metrics,
            store,
            http: reqwest::Client::new(),
            tracks: Vec::new(),
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: BACKOFF_CAP,
            },
            changes,
            limiter: cycle::Limiter::new(CONCURRENCY),
        };
        let mut tracks = Vec::with_capacity(report.fetched.len());
        for (i, (fetched, rendered)) in report.fetched.into_iter().zip(report.rendered).enumerate()
        {
            let secret = &engine.config.secrets[i];
            let age = ages
                .iter()
                .find(|(n, _)| *n == secret.name)
                .map_or(Duration::ZERO, |(_, a)| *a);
            let at = started.checked_sub(age).unwrap_or(started);
            engine.metrics.success(&secret.name);
            engine.store.put(&secret.name, &fetched);
            if report.changed[i] {
                engine.metrics.wrote(&secret.name);
            }
            let mut track = Track {
                fetched: Some(fetched),
                at,
                rendered,
                due: at,
                step: Step::Fetch,
                failures: 0,
            };
            engine.schedule(secret, &mut track);
            tracks.push(track);
        }
        engine.tracks = tracks;
        engine.metrics.set_ready(true);
        engine.count_calls();
        Ok(engine)
    }

    /// The running config and its sources (for the proxy).
    pub fn view(&self) -> crate::proxy::View {
        crate::proxy::View {
            config: self.config.clone(),
            sources: self.sources.clone(),
            bodies: Default::default(),
        }
    }

    /// Copies the sources' API call counts into the metrics.
    fn count_calls(&self) {
        for (s, source) in self.config.sources.iter().zip(&self.sources) {
            for (operation, total) in source.api_calls() {
                self.metrics.api_calls(&s.name, operation, total);
            }
        }
    }

    /// Sets `track.due` and `track.step` after a success.
    fn schedule(&self, secret: &Secret, track: &mut Track) {
        let renew_at = self.config.refresh.renew_at;
        let floor = Duration::from_secs(1);
        let Some(f) = &track.fetched else {
            track.due = Instant::now();
            track.step = Step::Fetch;
            return;
        };
        if let Some(l) = &f.lease {
            track.due = track.at + l.duration.mul_f64(renew_at).max(floor);
            track.step = if l.renewable {
                Step::Renew
            } else {
                Step::Fetch
            };
        } else if let Some(end) = track.expiry() {
            let life = end.saturating_duration_since(track.at);
            track.due = track.at + life.mul_f64(renew_at).max(floor);
            track.step = Step::Fetch;
        } else {
            let every = secret.refresh.unwrap_or(self.config.refresh.interval);
            track.due = track.at + every.mul_f64(rand::thread_rng().gen_range(0.9..1.1));
            track.step = Step::Fetch;
        }
        if let Some(end) = track.expiry() {
            self.metrics.expires(&secret.name, wall(end));
        }
    }

    /// When the next secret or token is due.
    fn next_due(&self) -> Instant {
        self.tracks
            .iter()
            .map(|t| t.due)
            .chain(self.token_due.iter().copied())
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Runs until `stop` or a change of the config file, writing back output
    /// files changed behind its back meanwhile; returns the engine and whether
    /// the config changed (then [`Engine::reload`], else [`Engine::shutdown`]).
    pub async fn run(
        mut self,
        stop: &CancellationToken,
        events: &mut mpsc::Receiver<crate::watch::Event>,
    ) -> (Engine, bool) {
        loop {
            let next = self.next_due();
            tokio::select! {
                _ = stop.cancelled() => return (self, false),
                _ = tokio::time::sleep_until(next) => {
                    tokio::select! {
                        _ = stop.cancelled() => return (self, false),
                        _ = self.round() => {}
                    }
                }
                Some(event) = events.recv() => match event {
                    crate::watch::Event::Output => self.restore(),
                    crate::watch::Event::Config => return (self, true),
                },
            }
        }
    }

    async fn step(&self, i: usize) -> Outcome {
        let secret = &self.config.secrets[i];
        let track = &self.tracks[i];
        let source = &*self.sources[secret.source];
        let _turn = self.limiter.enter(source).await;
        let started = std::time::Instant::now();
        let deadline = Instant::now() + self.config.sources[secret.source].request_budget();
        let outcome = match (
            track.step,
            track.fetched.as_ref().and_then(|f| f.lease.as_ref()),
        ) {
            (Step::Renew, Some(lease)) => match source.renew(lease, deadline).await {
                Ok(l) => Outcome::Renewed(l),
                Err(e) => Outcome::Failed(e.into()),
            },
            _ => match cycle::fetch_render(secret, source, deadline).await {
                Ok((f, r)) => Outcome::Fetched(f, r),
                Err(e) => Outcome::Failed(e),
            },
        };
        self.metrics
            .request(&self.config.sources[secret.source].name, started);
        outcome
    }

    /// Works on every due secret and token, writes what changed, then notifies.
    async fn round(&mut self) {
        let now = Instant::now();
        let renew_at = self.config.refresh.renew_at;
        for (i, source) in self.sources.iter().enumerate() {
            if self.token_due[i] <= now {
                let deadline = now + self.config.sources[i].request_budget();
                self.token_due[i] = match source.maintain(renew_at, deadline).await {
                    Ok(wait) => Instant::now() + wait.max(Duration::from_secs(1)),
                    Err(e) => {
                        tracing::warn!(source = %self.config.sources[i].name, error = %e, "cannot keep the token alive");
                        Instant::now() + self.backoff.wait(3)
                    }
                };
            }
        }
        let horizon = now + COALESCE.min(self.config.refresh.interval / 10);
        let due: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].due <= horizon)
            .collect();
        if due.is_empty() {
            return;
        }
        let this = &*self;
        let outcomes: Vec<(usize, Outcome)> = stream::iter(due)
            .map(|i| async move { (i, this.step(i).await) })
            .buffer_unordered(this.tracks.len().max(1))
            .collect()
            .await;
        let mut changed: Vec<usize> = Vec::new();
        for (i, outcome) in outcomes {
            if self.apply(i, outcome) {
                changed.push(i);
            }
        }
        changed.sort_unstable();
        self.notify(&changed).await;
        self.count_calls();
    }

    /// Records one outcome; true when the secret's files changed.
    fn apply(&mut self, i: usize, outcome: Outcome) -> bool {
        let config = self.config.clone();
        let secret = &config.secrets[i];
        let mut track = std::mem::replace(&mut self.tracks[i], Track::new());
        let mut changed = false;
        match outcome {
            Outcome::Fetched(fetched, rendered) => {
                // The same files as last time need no look at the disk: the
                // watch catches files changed behind our back.
                let written = if rendered == track.rendered {
                    Ok(false)
                } else {
                    self.write(secret, &rendered)
                };
                match written {
                    Ok(c) => {
                        changed = c;
                        if c {
                            tracing::info!(secret = %secret.name, version = ?fetched.version, "secret changed; files written");
                        } else {
                            tracing::debug!(secret = %secret.name, "unchanged");
                        }
                        self.store.put(&secret.name, &fetched);
                        track.fetched = Some(fetched);
                        track.rendered = rendered;
                        track.at = Instant::now();
                        track.failures = 0;
                        self.metrics.success(&secret.name);
                        self.schedule(secret, &mut track);
                    }
                    Err(e) => self.failed(
                        secret,
                        &mut track,
                        &SecretError::Source(source::Error::Data(e.to_string())),
                    ),
                }
            }
            Outcome::Renewed(lease) => {
                let asked = track
                    .fetched
                    .as_ref()
                    .and_then(|f| f.lease.as_ref())
                    .map_or(lease.duration, |l| l.duration);
                // Less than asked: the max TTL is near, so read new credentials next time.
                let capped = lease.duration < asked.mul_f64(0.9) || !lease.renewable;
                tracing::info!(secret = %secret.name, ttl_s = lease.duration.as_secs(), capped, "lease renewed");
                if let Some(f) = track.fetched.as_mut() {
                    f.lease = Some(lease);
                }
                track.at = Instant::now();
                track.failures = 0;
                self.metrics.renewed(&secret.name);
                self.metrics.success(&secret.name);
                self.schedule(secret, &mut track);
                if capped {
                    track.step = Step::Fetch;
                }
            }
            Outcome::Failed(e) => {
                if track.step == Step::Renew
                    && !matches!(&e, SecretError::Source(s) if s.retryable())
                {
                    tracing::info!(secret = %secret.name, error = %e, "lease cannot be renewed; reading new credentials");
                    track.step = Step::Fetch;
                }
                self.failed(secret, &mut track, &e);
            }
        }
        self.tracks[i] = track;
        if changed {
            self.metrics.wrote(&secret.name);
        }
        changed
    }

    fn failed(&self, secret: &Secret, track: &mut Track, e: &dyn std::fmt::Display) {
        track.failures += 1;
        self.metrics.error(&secret.name);
        let mut wait = self.backoff.wait(track.failures);
        if let Some(end) = track.expiry() {
            let left = end.saturating_duration_since(Instant::now());
            wait = wait.min(left / 2).max(Duration::from_secs(1));
            let life = track
                .fetched
                .as_ref()
                .and_then(|f| f.lease.as_ref().map(|l| l.duration))
                .unwrap_or(left);
            if left < life / 4 || left < Duration::from_secs(60) {
                tracing::error!(secret = %secret.name, expires_in_s = left.as_secs(), error = %e, "lease or certificate about to expire and the backend is still failing");
            }
        }
        tracing::warn!(secret = %secret.name, failures = track.failures, retry_in_ms = wait.as_millis() as u64, error = %e, "refresh failed; files left as they are");
        track.due = Instant::now() + wait;
    }

    /// Writes the files of one secret that differ from what is on disk; true when any did.
    fn write(&self, secret: &Secret, files: &[Rendered]) -> crate::output::Result<bool> {
        let mut staged = Vec::new();
        for r in files {
            if let Some(s) = self.dir.stage_if_changed(&r.file, &r.bytes, r.mode)? {
                staged.push(s);
            }
        }
        let changed = !staged.is_empty();
        for s in staged {
            self.dir.commit(s)?;
        }
        if changed {
            tracing::debug!(secret = %secret.name, "files written");
        }
        Ok(changed)
    }

    /// Runs the `on_change` actions of changed secrets, then tells the child.
    async fn notify(&self, changed: &[usize]) {
        for &i in changed {
            let secret = &self.config.secrets[i];
            crate::notify::run(&secret.name, &secret.on_change, &self.http, &self.metrics).await;
        }
        if let (Some(tx), false) = (&self.changes, changed.is_empty()) {
            let _ = tx.send(());
        }
    }

    /// Writes back files that were deleted or altered outside ramsecrets.
    fn restore(&self) {
        for (secret, track) in self.config.secrets.iter().zip(&self.tracks) {
            match self.write(secret, &track.rendered) {
                Ok(true) => {
                    tracing::warn!(secret = %secret.name, "a file was deleted or altered outside ramsecrets; written back")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(secret = %secret.name, error = %e, "cannot write back a file")
                }
            }
        }
    }

    /// Takes over a new configuration: sources are kept when unchanged, and
    /// so is every secret whose name, source and address are unchanged (its
    /// files re-rendered with the new settings); new secrets are fetched now.
    pub async fn reload(mut self, config: Arc<Config>) -> Engine {
        let same_sources = format!("{:?}", self.config.sources) == format!("{:?}", config.sources);
        if !same_sources {
            match source::build(&config) {
                Ok(s) => {
                    self.sources = s;
                    self.token_due = vec![Instant::now(); self.sources.len()];
                }
                Err(e) => {
                    tracing::error!(error = %e, "new config refused: its sources cannot be built; keeping the old one");
                    return self;
                }
            }
        }
        let mut old: Vec<(String, String, String, Track)> = std::mem::take(&mut self.tracks)
            .into_iter()
            .zip(self.config.secrets.iter())
            .map(|(t, s)| {
                let src = self.config.sources[s.source].name.clone();
                (s.name.clone(), s.address.identity(), src, t)
            })
            .collect();
        let mut changed = Vec::new();
        let mut tracks = Vec::with_capacity(config.secrets.len());
        for (i, secret) in config.secrets.iter().enumerate() {
            let src = &config.sources[secret.source].name;
            let kept = old
                .iter()
                .position(|(n, a, s, _)| {
                    *n == secret.name && *a == secret.address.identity() && s == src && same_sources
                })
                .map(|p| old.swap_remove(p).3);
            let mut track = kept.unwrap_or_else(Track::new);
            if let Some(f) = &track.fetched {
                match render::render_fetched(secret, f) {
                    Ok(r) => track.rendered = r,
                    Err(e) => {
                        tracing::warn!(secret = %secret.name, error = %e, "cannot render with the new config");
                        track.due = Instant::now();
                    }
                }
                match self.write(secret, &track.rendered) {
                    Ok(true) => changed.push(i),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(secret = %secret.name, error = %e, "cannot write"),
                }
            }
            tracks.push(track);
        }
        self.config = config;
        self.tracks = tracks;
        tracing::info!(secrets = self.config.secrets.len(), "config reloaded");
        self.notify(&changed).await;
        self
    }

    /// On shutdown: revokes leases where `revoke_on_exit` is set and removes
    /// the files where `wipe_on_exit` is set.
    pub async fn shutdown(self) {
        for (secret, track) in self.config.secrets.iter().zip(&self.tracks) {
            let Some(lease) = track.fetched.as_ref().and_then(|f| f.lease.as_ref()) else {
                continue;
            };
            if self.config.sources[secret.source].revoke_on_exit() {
                match self.sources[secret.source].revoke(lease).await {
                    Ok(()) => tracing::info!(secret = %secret.name, "lease revoked"),
                    Err(e) => {
                        tracing::warn!(secret = %secret.name, error = %e, "cannot revoke lease")
                    }
                }
            }
        }
        if self.config.output.wipe_on_exit {
            for track in &self.tracks {
                for r in &track.rendered {
                    if let Err(e) = self.dir.remove(&r.file) {
                        tracing::warn!(error = %e, "cannot remove file");
                    }
                }
            }
            tracing::info!("files wiped");
        }
    }
}
