//! The one fetch path: [`Fetcher`] holds the sources, bounds how many calls
//! run at once ([`Limiter`]), gives each call its deadline ([`Budget`], the
//! one place deadlines are computed) and renders what it fetched. `init`'s
//! cycle, the sidecar's rounds and the proxy's `refreshNow` (which the
//! sidecar's engine serves) all call the backends through it.
//!
//! The bound applies to sources that make one request per fetch (Vault, file).
//! AWS Secrets Manager fetches are all started at once: the source queues them
//! and batches them, 20 per BatchGetSecretValue call, and bounds its own calls.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::backoff::Pace;
use crate::config::{Address, Config};
use crate::exit::{Exit, ExitCode};
use crate::output;
use crate::render::format::{self, Rendered};
use crate::secret::{Fetched, Lease};
use crate::source::{self, Source};
use crate::telemetry::metrics::Metrics;

/// Why one secret failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The backend read failed.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// The secret could not be rendered.
    #[error(transparent)]
    Render(#[from] format::Error),
    /// Its files could not be written (the output directory is full,
    /// read-only, gone): the backend answered, so this is no fetch error.
    /// Shared by every secret of the write that failed.
    #[error(transparent)]
    Output(Arc<output::Error>),
}

impl SecretError {
    /// Whether the secret failed on its way from the backend (a fetch,
    /// renewal or render), as opposed to on its way to disk.
    pub fn is_fetch(&self) -> bool {
        !matches!(self, SecretError::Output(_))
    }
}

impl ExitCode for SecretError {
    fn exit(&self) -> Exit {
        match self {
            SecretError::Source(e) => e.exit(),
            SecretError::Render(e) => e.exit(),
            SecretError::Output(e) => e.exit(),
        }
    }
}

/// A group's fetch, rendered for each of its secrets; or every secret of the
/// group that failed, by index.
pub type GroupResult = Result<(Fetched, Vec<Vec<Rendered>>), Vec<(usize, SecretError)>>;

/// Secrets that read the same address of the same source, as indices into
/// `config.secrets` in config order: each group is fetched once per round
/// and its files are written together.
pub fn groups(config: &Config) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut at: HashMap<(usize, &Address), usize> = HashMap::with_capacity(config.secrets.len());
    for (i, s) in config.secrets.iter().enumerate() {
        match at.entry((s.source, &s.address)) {
            Entry::Occupied(g) => groups[*g.get()].push(i),
            Entry::Vacant(slot) => {
                slot.insert(groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups
}

/// Renders one fetch for every secret of a group; on failure, every secret
/// that failed, by index.
pub fn render_group(
    config: &Config,
    members: &[usize],
    fetched: &Fetched,
) -> Result<Vec<Vec<Rendered>>, Vec<(usize, SecretError)>> {
    let mut files = Vec::with_capacity(members.len());
    let mut failed = Vec::new();
    for &i in members {
        match format::render_fetched(&config.secrets[i], fetched) {
            Ok(r) => files.push(r),
            Err(e) => failed.push((i, SecretError::Render(e))),
        }
    }
    if failed.is_empty() {
        Ok(files)
    } else {
        Err(failed)
    }
}

/// Bounds how many fetches run at once, except for sources that batch
/// concurrent fetches themselves: holding those back would shrink their batches.
pub struct Limiter(Semaphore);

impl Limiter {
    /// At most `n` (at least 1) fetches at once.
    pub fn new(n: usize) -> Self {
        Limiter(Semaphore::new(n.max(1)))
    }

    /// Waits for a turn to fetch from `source`; hold the result while fetching.
    pub async fn enter(&self, source: &dyn Source) -> Option<SemaphorePermit<'_>> {
        if source.batches() {
            None
        } else {
            // Never fails: the semaphore is never closed.
            self.0.acquire().await.ok()
        }
    }
}

/// How long a call may take.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// Until this instant (`init`, the sidecar's first cycle: one timeout
    /// for the whole run).
    Until(Instant),
    /// The source's budget for one refresh, retries included, from when
    /// the call gets its turn (the sidecar's rounds).
    Request,
}

/// Each source's name and [`Budget::Request`] budget.
fn budgets(config: &Config) -> Vec<(String, Duration)> {
    config
        .sources
        .iter()
        .map(|s| (s.name.clone(), s.request_budget()))
        .collect()
}

/// The sources of one config, called through one limiter with deadlines.
pub struct Fetcher {
    sources: Vec<Arc<dyn Source>>,
    /// Each source's name and [`Budget::Request`] budget.
    budgets: Vec<(String, Duration)>,
    limiter: Limiter,
    /// Where call durations are counted (the sidecar's rounds).
    metrics: Option<Arc<Metrics>>,
}

impl Fetcher {
    /// Calls `sources`, built for `config`, at most `concurrency` at once.
    pub fn new(config: &Config, sources: Vec<Arc<dyn Source>>, concurrency: usize) -> Self {
        Fetcher {
            budgets: budgets(config),
            sources,
            limiter: Limiter::new(concurrency),
            metrics: None,
        }
    }

    /// Calls the sources of a reloaded `config` from now on, through the same limiter.
    pub fn replace(&mut self, config: &Config, sources: Vec<Arc<dyn Source>>) {
        self.budgets = budgets(config);
        self.sources = sources;
    }

    /// Counts the duration of every call from now on.
    pub fn count_into(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// The sources, by index into `config.sources`.
    pub fn sources(&self) -> &[Arc<dyn Source>] {
        &self.sources
    }

    /// Each source's pacing as the scheduler sees it, by index.
    pub fn paces(&self) -> Vec<Pace> {
        self.sources.iter().map(|s| s.pace()).collect()
    }

    /// When a call to `source` that starts now must be done.
    pub fn deadline(&self, source: usize, budget: Budget) -> Instant {
        match budget {
            Budget::Until(at) => at,
            Budget::Request => Instant::now() + self.budgets[source].1,
        }
    }

    /// Runs `call` on `source` in its turn, with its deadline, counted.
    async fn call<T>(
        &self,
        source: usize,
        budget: Budget,
        call: impl AsyncFnOnce(&dyn Source, Instant) -> T,
    ) -> T {
        let src = &*self.sources[source];
        let _turn = self.limiter.enter(src).await;
        let started = std::time::Instant::now();
        let out = call(src, self.deadline(source, budget)).await;
        if let Some(m) = &self.metrics {
            m.request(&self.budgets[source].0, started);
        }
        out
    }

    /// Fetches a group's address once and renders it for every secret of the
    /// group; on failure, every secret that failed, by index.
    pub async fn fetch_group(
        &self,
        config: &Config,
        members: &[usize],
        budget: Budget,
    ) -> GroupResult {
        let secret = &config.secrets[members[0]];
        let fetched = self
            .call(secret.source, budget, async |src, deadline| {
                tokio::time::timeout_at(deadline, src.fetch(secret, deadline))
                    .await
                    .unwrap_or_else(|_| {
                        Err(source::Error::unavailable(format!(
                            "`{}`: no answer before the deadline",
                            secret.address.key()
                        )))
                    })
            })
            .await
            .map_err(|e| {
                members
                    .iter()
                    .map(|&i| (i, SecretError::Source(e.clone())))
                    .collect::<Vec<_>>()
            })?;
        let files = render_group(config, members, &fetched)?;
        Ok((fetched, files))
    }

    /// Extends `lease` of `source`.
    pub async fn renew(&self, source: usize, lease: &Lease) -> Result<Lease, source::Error> {
        self.call(source, Budget::Request, async |src, deadline| {
            src.renew(lease, deadline).await
        })
        .await
    }

    /// Whether the lease or certificate `fetched` for secret `secret` still holds.
    pub async fn still_valid(
        &self,
        config: &Config,
        secret: usize,
        fetched: &Fetched,
    ) -> Result<bool, source::Error> {
        let secret = &config.secrets[secret];
        self.call(secret.source, Budget::Request, async |src, deadline| {
            src.still_valid(secret, fetched, deadline).await
        })
        .await
    }

    /// Keeps the token of `source` alive; returns when to do so again.
    /// Not held back by the limiter, and not counted: it is not a secret's call.
    pub async fn maintain(&self, source: usize, renew_at: f64) -> Result<Duration, source::Error> {
        let deadline = self.deadline(source, Budget::Request);
        self.sources[source].maintain(renew_at, deadline).await
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::source::fake::Counting;

    fn config() -> Config {
        let yaml = "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    kv: { mount: secret, path: db }\n";
        Config::parse(yaml, Path::new("/")).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_come_from_the_run_or_the_sources_budget() {
        let config = config();
        let fetcher = Fetcher::new(&config, vec![Arc::new(Counting::default())], 1);
        let now = Instant::now();
        let until = now + Duration::from_secs(3);
        assert_eq!(fetcher.deadline(0, Budget::Until(until)), until);
        let budget = config.sources[0].request_budget();
        assert_eq!(fetcher.deadline(0, Budget::Request), now + budget);
    }

    #[tokio::test]
    async fn calls_are_counted_only_once_asked() {
        let config = config();
        let source = Arc::new(Counting::default());
        source.set("one");
        let mut fetcher = Fetcher::new(&config, vec![source.clone()], 1);
        let metrics = Arc::new(Metrics::new(false));
        let count = |m: &Metrics| {
            m.render().lines().any(|l| {
                l == "ramsecrets_backend_request_duration_seconds_count{source=\"file\"} 1"
            })
        };
        let (fetched, files) = fetcher
            .fetch_group(&config, &[0], Budget::Request)
            .await
            .unwrap();
        assert_eq!(fetched.fields["password"].expose(), b"one");
        assert_eq!(files.len(), 1);
        fetcher.count_into(metrics.clone());
        assert!(!count(&metrics));
        fetcher
            .fetch_group(&config, &[0], Budget::Request)
            .await
            .unwrap();
        assert_eq!(source.fetches(), 2);
        assert!(count(&metrics), "{}", metrics.render());
    }
}
