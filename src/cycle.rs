//! One render cycle: fetch every secret concurrently (bounded), render each,
//! then write them all or none. `init` is one cycle; the sidecar repeats it.
//!
//! The bound applies to sources that make one request per fetch (Vault, file).
//! AWS Secrets Manager fetches are all started at once: the source queues them
//! and batches them, 20 per BatchGetSecretValue call, and bounds its own calls.

use std::fmt;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::config::{Config, Secret};
use crate::exit::{Exit, ExitCode};
use crate::output::{self, OutputDir};
use crate::render::{self, Rendered};
use crate::secret::Fetched;
use crate::source::{self, Source};

/// Why one secret failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The backend read failed.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// The secret could not be rendered.
    #[error(transparent)]
    Render(#[from] render::Error),
}

impl ExitCode for SecretError {
    fn exit(&self) -> Exit {
        match self {
            SecretError::Source(e) => e.exit(),
            SecretError::Render(e) => e.exit(),
        }
    }
}

/// Why a cycle wrote nothing.
#[derive(Debug)]
pub enum Error {
    /// These secrets failed (in config order); no file of this cycle was written.
    Secrets(Vec<(String, SecretError)>),
    /// Writing failed; no file of this cycle was written.
    Output(output::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Secrets(failed) => {
                write!(f, "{} secret(s) failed, no file was written:", failed.len())?;
                for (name, e) in failed {
                    write!(f, "\n  - secret `{name}`: {e}")?;
                }
                Ok(())
            }
            Error::Output(e) => write!(f, "{e}; no file of this run was written"),
        }
    }
}

impl std::error::Error for Error {}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Secrets(failed) => failed.first().map_or(Exit::Software, |(_, e)| e.exit()),
            Error::Output(e) => e.exit(),
        }
    }
}

/// What a successful cycle did, per secret in config order.
#[derive(Debug)]
pub struct Report {
    /// What was fetched (or adopted).
    pub fetched: Vec<Fetched>,
    /// The files rendered from it.
    pub rendered: Vec<Vec<Rendered>>,
    /// Whether any of its files changed on disk.
    pub changed: Vec<bool>,
    /// When the cycle started: lease durations count from here.
    pub started: std::time::SystemTime,
}

/// Fetches and renders one secret, giving up at `deadline`.
pub async fn fetch_render(
    secret: &Secret,
    source: &dyn Source,
    deadline: Instant,
) -> Result<(Fetched, Vec<Rendered>), SecretError> {
    let fetched = tokio::time::timeout_at(deadline, source.fetch(secret, deadline))
        .await
        .map_err(|_| {
            source::Error::Unavailable(format!(
                "`{}`: no answer before the deadline",
                secret.address.key()
            ))
        })??;
    let files = render::render_fetched(secret, &fetched)?;
    Ok((fetched, files))
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

/// Runs one all-or-nothing cycle over every secret of `config`. Secrets with
/// an `adopted` fetch (by index) are rendered from it instead of fetched.
/// Files that already hold their content and mode are left alone.
pub async fn run(
    config: &Config,
    sources: &[Arc<dyn Source>],
    dir: &OutputDir,
    deadline: Instant,
    concurrency: usize,
    mut adopted: Vec<Option<Fetched>>,
) -> Result<Report, Error> {
    let started = std::time::SystemTime::now();
    let clock = std::time::Instant::now();
    adopted.resize_with(config.secrets.len(), || None);
    let limiter = Limiter::new(concurrency);
    let limiter = &limiter;
    let mut results: Vec<_> = stream::iter(config.secrets.iter().zip(adopted).enumerate())
        .map(|(i, (secret, adopted))| async move {
            let r = match adopted {
                Some(f) => render::render_fetched(secret, &f)
                    .map(|files| (f, files))
                    .map_err(SecretError::from),
                None => {
                    let source = &*sources[secret.source];
                    let _turn = limiter.enter(source).await;
                    fetch_render(secret, source, deadline).await
                }
            };
            match &r {
                Ok((f, files)) => {
                    tracing::debug!(secret = %secret.name, version = ?f.version, files = files.len(), "fetched")
                }
                Err(e) => tracing::warn!(secret = %secret.name, error = %e, "failed"),
            }
            (i, r)
        })
        .buffer_unordered(config.secrets.len().max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    let mut failed = Vec::new();
    let mut fetched = Vec::with_capacity(results.len());
    let mut rendered = Vec::with_capacity(results.len());
    for (i, r) in results {
        match r {
            Ok((f, files)) => {
                fetched.push(f);
                rendered.push(files);
            }
            Err(e) => failed.push((config.secrets[i].name.clone(), e)),
        }
    }
    if !failed.is_empty() {
        return Err(Error::Secrets(failed));
    }
    // Stage everything first: a failure drops the staged files, leaving the old ones.
    let mut staged = Vec::new();
    let mut changed = Vec::with_capacity(rendered.len());
    for files in &rendered {
        let before = staged.len();
        for r in files {
            if let Some(s) = dir
                .stage_if_changed(&r.file, &r.bytes, r.mode)
                .map_err(Error::Output)?
            {
                staged.push(s);
            }
        }
        changed.push(staged.len() > before);
    }
    let written = staged.len();
    for s in staged {
        dir.commit(s).map_err(Error::Output)?;
    }
    tracing::info!(
        secrets = config.secrets.len(),
        written,
        dir = %dir.path().display(),
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "all secrets rendered"
    );
    Ok(Report {
        fetched,
        rendered,
        changed,
        started,
    })
}
