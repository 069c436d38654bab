//! One render cycle: fetch every address concurrently (bounded), once for all
//! the secrets that read it, render each secret and every template, then write
//! them all or none. `init` is one cycle; the sidecar starts with one.
//!
//! The bound applies to sources that make one request per fetch (Vault, file).
//! AWS Secrets Manager fetches are all started at once: the source queues them
//! and batches them, 20 per BatchGetSecretValue call, and bounds its own calls.

use std::fmt;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::config::{Address, Config, Secret};
use crate::exit::{Exit, ExitCode};
use crate::output::{self, OutputDir};
use crate::render::{self, Rendered};
use crate::secret::Fetched;
use crate::source::{self, Source};
use crate::template;

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
    /// These templates (by file) failed; no file of this cycle was written.
    Templates(Vec<(String, template::Error)>),
    /// Writing failed; no file of this cycle was written.
    Output(output::Error),
}

/// Secrets that failed for one cause.
pub struct Cause<'a, E> {
    /// The cause, as said.
    pub message: String,
    /// The secrets it hit.
    pub secrets: Vec<&'a str>,
    /// The first failure with this cause.
    pub first: E,
}

impl<E> Cause<'_, E> {
    /// `` secret `a`: … `` or `` secrets `a` and `b`: … ``.
    pub fn line(&self) -> String {
        let noun = if self.secrets.len() == 1 {
            "secret"
        } else {
            "secrets"
        };
        format!("{noun} {}: {}", names(&self.secrets), self.message)
    }
}

/// Failures `(secret name, error)` grouped so that each cause is said once,
/// in the order of their first secret.
pub fn by_cause<'a, E: fmt::Display>(
    failed: impl IntoIterator<Item = (&'a str, E)>,
) -> Vec<Cause<'a, E>> {
    let mut causes: Vec<Cause<'a, E>> = Vec::new();
    for (name, e) in failed {
        let message = e.to_string();
        match causes.iter_mut().find(|c| c.message == message) {
            Some(c) => c.secrets.push(name),
            None => causes.push(Cause {
                message,
                secrets: vec![name],
                first: e,
            }),
        }
    }
    causes
}

/// `` `a` `` or `` `a`, `b` and `c` ``.
pub fn names(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Secrets(failed) => {
                match failed.len() {
                    1 => write!(f, "1 secret failed, no file was written:")?,
                    n => write!(f, "{n} secrets failed, no file was written:")?,
                }
                for cause in by_cause(failed.iter().map(|(n, e)| (n.as_str(), e))) {
                    write!(f, "\n  - {}", cause.line())?;
                }
                Ok(())
            }
            Error::Templates(failed) => {
                match failed.len() {
                    1 => write!(f, "1 template failed, no file was written:")?,
                    n => write!(f, "{n} templates failed, no file was written:")?,
                }
                for (file, e) in failed {
                    write!(f, "\n  - template `{file}`: {e}")?;
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
            Error::Templates(failed) => failed.first().map_or(Exit::Software, |(_, e)| e.exit()),
            Error::Output(e) => e.exit(),
        }
    }
}

/// What a successful cycle did, per secret in config order.
#[derive(Debug)]
pub struct Report {
    /// What was fetched (or adopted); secrets of one address share one fetch.
    pub fetched: Vec<Fetched>,
    /// The files rendered from it.
    pub rendered: Vec<Vec<Rendered>>,
    /// Whether any of its files changed on disk.
    pub changed: Vec<bool>,
    /// The file of each template, in config order.
    pub templates: Vec<Rendered>,
    /// When the cycle started: lease durations count from here.
    pub started: std::time::SystemTime,
}

/// Secrets that read the same address of the same source, as indices into
/// `config.secrets` in config order: each group is fetched once per round
/// and its files are written together.
pub fn groups(config: &Config) -> Vec<Vec<usize>> {
    let mut groups: Vec<(usize, &Address, Vec<usize>)> = Vec::new();
    for (i, s) in config.secrets.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(src, address, _)| *src == s.source && **address == s.address)
        {
            Some((_, _, members)) => members.push(i),
            None => groups.push((s.source, &s.address, vec![i])),
        }
    }
    groups.into_iter().map(|(_, _, m)| m).collect()
}

/// Reads `secret`'s address, giving up at `deadline`.
pub async fn fetch(
    secret: &Secret,
    source: &dyn Source,
    deadline: Instant,
) -> Result<Fetched, source::Error> {
    tokio::time::timeout_at(deadline, source.fetch(secret, deadline))
        .await
        .map_err(|_| {
            source::Error::unavailable(format!(
                "`{}`: no answer before the deadline",
                secret.address.key()
            ))
        })?
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
        match render::render_fetched(&config.secrets[i], fetched) {
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

/// Fetches a group's address once and renders it for every secret of the
/// group; on failure, every secret that failed, by index.
pub async fn fetch_group(
    config: &Config,
    members: &[usize],
    source: &dyn Source,
    deadline: Instant,
) -> Result<(Fetched, Vec<Vec<Rendered>>), Vec<(usize, SecretError)>> {
    let fetched = fetch(&config.secrets[members[0]], source, deadline)
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

/// Runs one all-or-nothing cycle over every secret of `config`, one fetch per
/// address. Secrets with an `adopted` fetch (by index) are rendered from it
/// instead of fetched, with the rest of their group. Files that already hold
/// their content and mode are left alone; without a `dir` (a proxy-only
/// config) nothing is written.
pub async fn run(
    config: &Config,
    sources: &[Arc<dyn Source>],
    dir: Option<&OutputDir>,
    deadline: Instant,
    concurrency: usize,
    mut adopted: Vec<Option<Fetched>>,
) -> Result<Report, Error> {
    let started = std::time::SystemTime::now();
    let clock = std::time::Instant::now();
    adopted.resize_with(config.secrets.len(), || None);
    let limiter = Limiter::new(concurrency);
    let limiter = &limiter;
    let work: Vec<(Vec<usize>, Option<Fetched>)> = groups(config)
        .into_iter()
        .map(|members| {
            let held = members.iter().find_map(|&i| adopted[i].take());
            (members, held)
        })
        .collect();
    let results: Vec<_> = stream::iter(work)
        .map(|(members, held)| async move {
            let r = match held {
                Some(f) => render_group(config, &members, &f).map(|files| (f, files)),
                None => {
                    let source = &*sources[config.secrets[members[0]].source];
                    let _turn = limiter.enter(source).await;
                    fetch_group(config, &members, source, deadline).await
                }
            };
            if let Ok((f, files)) = &r {
                tracing::debug!(
                    secrets = members.len(),
                    version = %f.version.as_deref().unwrap_or("none"),
                    files = files.iter().map(Vec::len).sum::<usize>(),
                    "fetched"
                );
            }
            (members, r)
        })
        .buffer_unordered(config.secrets.len().max(1))
        .collect()
        .await;
    let mut failed = Vec::new();
    let mut done: Vec<Option<(Fetched, Vec<Rendered>)>> =
        (0..config.secrets.len()).map(|_| None).collect();
    for (members, r) in results {
        match r {
            Ok((f, files)) => {
                for (&i, files) in members.iter().zip(files) {
                    done[i] = Some((f.clone(), files));
                }
            }
            Err(e) => failed.extend(e),
        }
    }
    if !failed.is_empty() {
        failed.sort_by_key(|(i, _)| *i);
        return Err(Error::Secrets(
            failed
                .into_iter()
                .map(|(i, e)| (config.secrets[i].name.clone(), e))
                .collect(),
        ));
    }
    let (fetched, rendered): (Vec<Fetched>, Vec<Vec<Rendered>>) =
        done.into_iter().flatten().unzip();
    let mut templates = Vec::with_capacity(config.templates.len());
    let mut failed = Vec::new();
    for t in &config.templates {
        match template::render(t, &config.secrets, |i| fetched.get(i)) {
            Ok(r) => templates.push(r),
            Err(e) => {
                tracing::warn!(template = %t.file, error = %e, "failed");
                failed.push((t.file.clone(), e));
            }
        }
    }
    if !failed.is_empty() {
        return Err(Error::Templates(failed));
    }
    let Some(dir) = dir else {
        tracing::info!(
            secrets = config.secrets.len(),
            elapsed_ms = clock.elapsed().as_millis() as u64,
            "all secrets fetched; held in memory for the proxy, no file written"
        );
        return Ok(Report {
            changed: vec![false; fetched.len()],
            fetched,
            rendered,
            templates,
            started,
        });
    };
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
    for r in &templates {
        if let Some(s) = dir
            .stage_if_changed(&r.file, &r.bytes, r.mode)
            .map_err(Error::Output)?
        {
            staged.push(s);
        }
    }
    let written = staged.len();
    for s in staged {
        dir.commit(s).map_err(Error::Output)?;
    }
    tracing::info!(
        secrets = config.secrets.len(),
        templates = config.templates.len(),
        written,
        dir = %dir.path().display(),
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "all secrets rendered"
    );
    Ok(Report {
        fetched,
        rendered,
        changed,
        templates,
        started,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Output;
    use crate::source::fake::Counting;

    /// Three secrets of one address, one of another; a disk directory is allowed.
    pub(crate) fn setup() -> (Config, tempfile::TempDir, OutputDir) {
        let config = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    kv: { mount: secret, path: db }\n  - name: b\n    kv: { mount: secret, path: db }\n    key: password\n  - name: c\n    kv: { mount: secret, path: other }\n  - name: d\n    kv: { mount: secret, path: db }\n    template: \"{{ password }}\"\n",
            Path::new("/"),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open(&Output {
            dir: tmp.path().to_owned(),
            mode: 0o400,
            owner: None,
            allow_disk: true,
            state_dir: None,
            wipe_on_exit: false,
        })
        .unwrap();
        (config, tmp, dir)
    }

    #[tokio::test]
    async fn secrets_of_one_address_are_fetched_once() {
        let (config, tmp, dir) = setup();
        assert_eq!(groups(&config), [vec![0, 1, 3], vec![2]]);
        let source = Arc::new(Counting::default());
        source.set("one");
        let sources: Vec<Arc<dyn Source>> = vec![source.clone()];
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let report = run(&config, &sources, Some(&dir), deadline, 4, Vec::new())
            .await
            .unwrap();
        assert_eq!(source.fetches(), 2);
        assert_eq!(report.changed, [true; 4]);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("d")).unwrap(),
            "one"
        );
    }

    #[test]
    fn failures_with_one_cause_are_said_once() {
        let e = || SecretError::Source(source::Error::config("file source x: bad"));
        let failed = Error::Secrets(vec![
            ("a".into(), e()),
            ("b".into(), e()),
            (
                "c".into(),
                SecretError::Source(source::Error::not_found("y")),
            ),
        ]);
        assert_eq!(
            failed.to_string(),
            "3 secrets failed, no file was written:\n  - secrets `a` and `b`: file source x: bad\n  - secret `c`: not found: y"
        );
        assert_eq!(failed.exit(), Exit::Config);
    }
}
