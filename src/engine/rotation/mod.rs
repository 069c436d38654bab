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
//!
//! To follow one refresh, read this file and [`crate::engine::fetch`]: [`Engine::run`]
//! sleeps until the [`plan`]'s next due time; [`Engine::round`] picks the due
//! groups, fetches each through the [`Fetcher`], writes each group's files
//! together ([`OutputDir::write_all`]), publishes the snapshot the proxy
//! reads, and runs the notices. The state and its rules are in [`plan`] and
//! [`schedule`] (pure); what outcomes do in `outcome`, reloads in `reload`.

mod lifecycle;
mod outcome;
mod plan;
mod reload;
mod requests;
mod schedule;
mod templates;

pub use requests::{RefreshNow, Refreshed};

use std::sync::Arc;
use std::time::SystemTime;

use futures::stream::{self, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Action, Config};
use crate::engine::cycle;
use crate::engine::fetch::{self, Budget, Fetcher, SecretError};
use crate::engine::handoff::{self, State};
use crate::engine::snapshot::{Snapshot, Snapshots};
use crate::os::actions::{Batch, Runner};
use crate::output::OutputDir;
use crate::render::format::Rendered;
use crate::render::template::Rendering;
use crate::secret::{Fetched, Lease};
use crate::source::Source;
use crate::telemetry::metrics::Metrics;
use outcome::Round;
use plan::{Group, Plan};
use schedule::{Draws, Now, Step};

/// Secrets worked on at once.
const CONCURRENCY: usize = 16;

/// What one step of a group came to.
enum Outcome {
    Fetched(Fetched, Vec<Vec<Rendered>>),
    Renewed(Lease),
    /// Whether the held lease or certificate is still good.
    Revalidated(bool),
    /// Every secret of the group that failed, with why.
    Failed(Vec<(usize, SecretError)>),
}

/// Keeps the files of one configuration fresh.
pub struct Engine {
    /// The groups and tokens, when each is due, and the running config.
    plan: Plan,
    /// Every backend call goes through it.
    fetcher: Fetcher,
    /// `None` in a proxy-only config: values are served from the snapshots, never written.
    dir: Option<Arc<OutputDir>>,
    /// `output.state_dir`, where the engine leaves its tokens and leases for a sidecar
    /// that starts after it (the kubelet restarting a killed one).
    state_dir: Option<OutputDir>,
    metrics: Arc<Metrics>,
    /// The values as of the last write, published to `snapshots` after each
    /// change: the same snapshot as the published one until a round changes
    /// it (then copied), so that between rounds one is held, not two.
    held: Arc<Snapshot>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    /// Runs `on_change` actions off this task.
    actions: Runner,
    /// The files of each secret as last written, by index into `config.secrets`.
    rendered: Vec<Vec<Rendered>>,
    /// The file of each template as last written.
    templates: Rendering,
    /// The child of `exec`, told what changed (`secret `db`, template `app.conf``).
    changes: Option<mpsc::UnboundedSender<String>>,
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
        changes: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<Engine, cycle::Error> {
        let (state, state_dir) = match (&config.output, &dir) {
            (Some(output), Some(dir)) => {
                let state_dir = handoff::prepare(output, dir).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "no hand-off state is kept for a restarted sidecar");
                    None
                });
                (State::load(output, dir), state_dir)
            }
            _ => (State::default(), None),
        };
        for (i, (s, source)) in config.sources.iter().zip(&sources).enumerate() {
            if let Some(token) = state.tokens.get(&s.name) {
                source.adopt(token.clone(), state.leases_of(&config, i));
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
        // One copy of each value, shared by the schedule and the snapshots.
        let mut fetched: Vec<Option<Arc<Fetched>>> = report
            .fetched
            .into_iter()
            .map(|f| f.map(Arc::new))
            .collect();
        for (i, secret) in config.secrets.iter().enumerate() {
            // A secret waiting for a login is fetched by the first round.
            let Some(fetched) = &fetched[i] else {
                continue;
            };
            metrics.success(&secret.name);
            held.put(i, fetched);
            if report.changed[i] {
                metrics.wrote(&secret.name);
            }
        }
        let mut plan = Plan::new(config, draws(&fetcher), fetcher.sources().len(), started);
        let paces = fetcher.paces();
        for members in fetch::groups(&plan.config) {
            let age = members.iter().find_map(|&i| ages[i]).unwrap_or_default();
            let mut group = Group::new(members, started);
            group.fetched = fetched[group.members[0]].take();
            group.at = started.checked_sub(age).unwrap_or(started);
            plan.groups.push(group);
            plan.schedule(plan.groups.len() - 1, &paces, true, Now::read());
        }
        let held = Arc::new(held);
        let engine = Engine {
            plan,
            rendered: report.rendered,
            templates: Rendering::new(report.templates),
            fetcher,
            dir,
            state_dir,
            metrics: metrics.clone(),
            snapshots: watch::Sender::new(Arc::clone(&held)),
            held,
            actions: Runner::new(metrics.clone()),
            changes,
            waiting: Vec::new(),
        };
        for g in 0..engine.plan.groups.len() {
            engine.record(g);
        }
        engine.hand_off().await;
        engine.metrics.set_ready(true);
        engine.count_calls();
        Ok(engine)
    }

    /// Leaves the tokens and the leases and certificates held now in the state
    /// directory, for a sidecar that starts after this one.
    async fn hand_off(&self) {
        let Some(dir) = &self.state_dir else {
            return;
        };
        let held = self.plan.groups.iter().flat_map(|g| {
            let at = wall(g.at);
            g.fetched
                .iter()
                .flat_map(move |f| g.members.iter().map(move |&i| (i, &**f, at)))
        });
        let state = State::collect(&self.plan.config, self.fetcher.sources(), held).await;
        if state.is_empty() {
            return;
        }
        if let Err(e) = state.save(dir) {
            tracing::warn!(error = %e, "cannot keep the hand-off state for a restarted sidecar");
        }
    }

    /// The snapshots the engine publishes: the first cycle's, then one
    /// after each round that fetched and after each reload.
    pub fn subscribe(&self) -> Snapshots {
        self.snapshots.subscribe()
    }

    /// Runs until `stop`, a change of the config file or a `reload` request
    /// (SIGHUP), writing back output files changed behind its back, reading
    /// a changed `file` source at once, and fetching what the proxy's
    /// `refreshNow` asks for; returns the engine and whether to reload (then
    /// [`Engine::reload`], else [`Engine::shutdown`]).
    pub async fn run(
        mut self,
        stop: &CancellationToken,
        events: &mut mpsc::Receiver<crate::os::watch::Event>,
        reload: &tokio::sync::Notify,
        refresh: &mut mpsc::Receiver<RefreshNow>,
    ) -> (Engine, bool) {
        loop {
            let next = self.plan.next_due(Instant::now());
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
                    crate::os::watch::Event::Output => self.restore(),
                    crate::os::watch::Event::Config => return (self, true),
                    crate::os::watch::Event::Source(i) => {
                        tracing::debug!(source = %self.plan.config.sources[i].name, "source file changed");
                        self.plan.source_changed(i, Instant::now());
                    }
                },
            }
        }
    }

    /// Works on every due group and token, writes the files of every change,
    /// publishes the new values, then notifies once.
    async fn round(&mut self) {
        let now = Now::read();
        self.plan.start_round(draws(&self.fetcher));
        self.maintain_tokens(now.at).await;
        let due = self.plan.pick(now, &self.fetcher.paces());
        if due.is_empty() {
            return;
        }
        let this = &*self;
        let outcomes: Vec<(usize, Outcome)> = stream::iter(due)
            .map(|g| async move { (g, this.step(g).await) })
            .buffer_unordered(this.plan.groups.len().max(1))
            .collect()
            .await;
        let mut round = Round::default();
        for (g, outcome) in outcomes {
            match outcome {
                Outcome::Fetched(fetched, rendered) => match self.write(g, &rendered) {
                    Ok(wrote) => {
                        round.fresh.extend(&self.plan.groups[g].members);
                        self.written(g, fetched, rendered, &wrote);
                        round.changed.extend(wrote);
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        let members = &self.plan.groups[g].members;
                        let errors = members
                            .iter()
                            .map(|&i| (i, SecretError::Output(e.clone())))
                            .collect();
                        let failure = self.failed(g, errors, &mut round.waits);
                        round.failures.push(failure);
                    }
                },
                Outcome::Renewed(lease) => self.renewed(g, lease),
                Outcome::Revalidated(good) => self.revalidated(g, good),
                Outcome::Failed(errors) => {
                    let failure = self.step_failed(g, errors, &mut round.waits);
                    round.failures.push(failure);
                }
            }
        }
        round.changed.sort_unstable();
        // Before any notice: an app told of a change reads the new value.
        if !round.fresh.is_empty() {
            self.publish();
        }
        self.log_failures(round.failures);
        let templates = self.write_templates(Some(&round.fresh));
        self.notify(&round.changed, &templates);
        self.hand_off().await;
        self.count_calls();
    }

    /// Renews, checks or fetches group `g`, as its step says.
    async fn step(&self, g: usize) -> Outcome {
        let group = &self.plan.groups[g];
        let config = &self.plan.config;
        let lease = group.fetched.as_ref().and_then(|f| f.lease.as_ref());
        match (group.step, lease, &group.fetched) {
            (Step::Renew, Some(lease), _) => {
                match self.fetcher.renew(self.plan.source_of(group), lease).await {
                    Ok(l) => Outcome::Renewed(l),
                    Err(e) => Outcome::Failed(group.all_failed(e)),
                }
            }
            (Step::Revalidate, _, Some(f)) => {
                match self.fetcher.still_valid(config, group.members[0], f).await {
                    Ok(good) => Outcome::Revalidated(good),
                    Err(e) => Outcome::Failed(group.all_failed(e)),
                }
            }
            (Step::Revalidate, _, None) => Outcome::Revalidated(false),
            _ => match self
                .fetcher
                .fetch_group(config, &group.members, Budget::Request)
                .await
            {
                Ok((f, r)) => Outcome::Fetched(f, r),
                Err(e) => Outcome::Failed(e),
            },
        }
    }

    /// Writes the files of group `g`'s secrets that differ from what was
    /// written last, all together; returns the secrets whose files changed
    /// (without an output directory, whose value changed: the change for
    /// `on_change` and the child).
    fn write(&self, g: usize, rendered: &[Vec<Rendered>]) -> crate::output::Result<Vec<usize>> {
        // The same files as last time need no look at the disk: the watch
        // catches files changed behind our back.
        let (fresh, files): (Vec<usize>, Vec<&Vec<Rendered>>) = self.plan.groups[g]
            .members
            .iter()
            .zip(rendered)
            .filter(|(&i, files)| **files != self.rendered[i])
            .map(|(&i, files)| (i, files))
            .unzip();
        let Some(dir) = &self.dir else {
            return Ok(fresh);
        };
        let wrote = dir.write_all(files.iter().copied().flatten())?;
        Ok(fresh
            .into_iter()
            .zip(wrote.per_set(files.iter().map(|f| f.len())))
            .filter_map(|(i, changed)| changed.then_some(i))
            .collect())
    }

    /// Publishes what the engine holds now.
    fn publish(&self) {
        self.snapshots.send_replace(Arc::clone(&self.held));
    }

    /// Starts the `on_change` actions of changed secrets and templates, each
    /// distinct action once, on a task of their own; the child is told once
    /// they have run, and what changed.
    fn notify(&self, changed: &[usize], templates: &[usize]) {
        let config = &self.plan.config;
        let secrets = changed.iter().map(|&i| {
            let s = &config.secrets[i];
            (s.name.as_str(), &s.on_change)
        });
        let templates = templates.iter().map(|&i| {
            let t = &config.templates[i];
            (t.file.as_str(), &t.on_change)
        });
        let what = changed
            .iter()
            .map(|&i| format!("secret `{}`", config.secrets[i].name))
            .chain(
                templates
                    .clone()
                    .map(|(file, _)| format!("template `{file}`")),
            )
            .collect::<Vec<_>>()
            .join(", ");
        let mut done: Vec<&Action> = Vec::new();
        let mut batch: Batch = Vec::new();
        for (name, actions) in secrets.chain(templates) {
            let fresh: Vec<Action> = actions
                .iter()
                .filter(|a| !done.contains(a))
                .cloned()
                .collect();
            done.extend(actions);
            batch.push((name.to_owned(), fresh));
        }
        if batch.is_empty() {
            return;
        }
        let changes = self.changes.clone();
        self.actions.spawn(batch, move || {
            if let Some(tx) = changes {
                let _ = tx.send(what);
            }
        });
    }

    /// Keeps each due token alive.
    async fn maintain_tokens(&mut self, now: Instant) {
        let renew_at = self.plan.config.refresh.renew_at;
        for i in self.plan.tokens_due(now) {
            let wait = match self.fetcher.maintain(i, renew_at).await {
                Ok(wait) => Some(wait),
                Err(e) => {
                    tracing::warn!(source = %self.plan.config.sources[i].name, error = %e, "cannot keep the token alive");
                    None
                }
            };
            self.plan.token_kept(i, wait, Instant::now());
        }
    }

    /// Puts group `g`'s version and the end of its lease or certificate in the metrics.
    fn record(&self, g: usize) {
        let group = &self.plan.groups[g];
        let Some(f) = &group.fetched else {
            return;
        };
        let lease = f.lease.as_ref().map(|l| l.id.as_str());
        for &i in &group.members {
            let name = &self.plan.config.secrets[i].name;
            self.metrics.version(name, f.version.as_deref(), lease);
        }
        if let Some(end) = group.expiry(Now::read()) {
            for &i in &group.members {
                self.metrics
                    .expires(&self.plan.config.secrets[i].name, wall(end));
            }
        }
    }

    /// Copies the sources' API call counts into the metrics.
    fn count_calls(&self) {
        let config = &self.plan.config;
        for (s, source) in config.sources.iter().zip(self.fetcher.sources()) {
            for (operation, total) in source.api_calls() {
                self.metrics.api_calls(&s.name, operation, total);
            }
        }
    }
}

/// The jitter draws of a round over these sources.
fn draws(fetcher: &Fetcher) -> Draws {
    Draws::new(fetcher.sources().iter().map(|s| s.batches()))
}

#[cfg(test)]
mod tests;
