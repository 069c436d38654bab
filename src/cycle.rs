//! One render cycle: fetch every secret concurrently (bounded), render each,
//! then write them all or none. `init` is one cycle; the sidecar repeats it.
//!
//! The bound applies to sources that make one request per fetch (Vault, file).
//! AWS Secrets Manager fetches are all started at once: the source queues them
//! and batches them, 20 per BatchGetSecretValue call, and bounds its own calls.

use std::fmt;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{Config, Secret, SourceKind};
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

/// What a successful cycle did.
#[derive(Debug)]
pub struct Report {
    /// Per secret, in config order: what was fetched.
    pub fetched: Vec<Fetched>,
    /// Number of files written.
    pub files: usize,
}

/// Fetches and renders one secret, giving up at `deadline`.
async fn one(
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

/// Runs one cycle over every secret of `config`.
pub async fn run(
    config: &Config,
    sources: &[Arc<dyn Source>],
    dir: &OutputDir,
    deadline: Instant,
    concurrency: usize,
) -> Result<Report, Error> {
    let started = std::time::Instant::now();
    let permits = Semaphore::new(concurrency.max(1));
    let permits = &permits;
    let mut results: Vec<_> = stream::iter(config.secrets.iter().enumerate())
        .map(|(i, secret)| async move {
            let batched = matches!(
                config.sources[secret.source].kind,
                SourceKind::AwsSecretsManager(_)
            );
            // Never fails: the semaphore is not closed.
            let _permit = if batched {
                None
            } else {
                permits.acquire().await.ok()
            };
            let r = one(secret, &*sources[secret.source], deadline).await;
            match &r {
                Ok((f, files)) => tracing::debug!(secret = %secret.name, version = ?f.version, files = files.len(), "fetched"),
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
    let mut files = Vec::new();
    for (i, r) in results {
        match r {
            Ok((f, rendered)) => {
                fetched.push(f);
                files.extend(rendered);
            }
            Err(e) => failed.push((config.secrets[i].name.clone(), e)),
        }
    }
    if !failed.is_empty() {
        return Err(Error::Secrets(failed));
    }
    // Stage everything first: a failure drops the staged files, leaving the old ones.
    let staged = files
        .iter()
        .map(|r| dir.stage(&r.file, &r.bytes, r.mode))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Output)?;
    let count = staged.len();
    for s in staged {
        dir.commit(s).map_err(Error::Output)?;
    }
    tracing::info!(
        secrets = config.secrets.len(),
        files = count,
        dir = %dir.path().display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "all secrets written"
    );
    Ok(Report {
        fetched,
        files: count,
    })
}
