//! One render cycle: fetch every address concurrently through the
//! [`Fetcher`], once for all the secrets that read it, render each secret and
//! every template, then write them all or none ([`OutputDir::write_all`]).
//! `init` is one cycle; the sidecar starts with one.

use std::fmt;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::config::Config;
use crate::engine::fetch::{self, Budget, Fetcher, SecretError};
use crate::exit::{Exit, ExitCode};
use crate::output::{self, OutputDir};
use crate::render::format::Rendered;
use crate::render::template;
use crate::secret::Fetched;

/// Why a cycle wrote nothing.
#[derive(Debug)]
pub enum Error {
    /// These secrets failed (in config order); no file of this cycle was
    /// written. `files`: whether the config writes any (else the message
    /// does not speak of files).
    Secrets {
        /// `(secret name, why)`.
        failed: Vec<(String, SecretError)>,
        /// Whether the config writes files.
        files: bool,
    },
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
            Error::Secrets { failed, files } => {
                let n = failed.len();
                let noun = if n == 1 { "secret" } else { "secrets" };
                let written = if *files { ", no file was written" } else { "" };
                write!(f, "{n} {noun} failed{written}:")?;
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
            // A partial write says itself which files are new.
            Error::Output(e @ crate::output::Error::Partial { .. }) => write!(f, "{e}"),
            Error::Output(e) => write!(f, "{e}; no file of this run was written"),
        }
    }
}

impl std::error::Error for Error {
    /// The output error is kept as the cause; failed secrets and templates
    /// are several, each said in the message.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Output(e) => Some(e),
            Error::Secrets { .. } | Error::Templates(_) => None,
        }
    }
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Secrets { failed, .. } => {
                failed.first().map_or(Exit::Software, |(_, e)| e.exit())
            }
            Error::Templates(failed) => failed.first().map_or(Exit::Software, |(_, e)| e.exit()),
            Error::Output(e) => e.exit(),
        }
    }
}

/// What a successful cycle did, per secret in config order.
#[derive(Debug)]
pub struct Report {
    /// What was fetched (or adopted); secrets of one address share one fetch.
    /// `None` only without files: the secret waits for its source's login.
    pub fetched: Vec<Option<Fetched>>,
    /// The files rendered from it.
    pub rendered: Vec<Vec<Rendered>>,
    /// Whether any of its files changed on disk.
    pub changed: Vec<bool>,
    /// The file of each template, in config order.
    pub templates: Vec<Rendered>,
    /// When the cycle started: lease durations count from here.
    pub started: std::time::SystemTime,
}

/// Runs one all-or-nothing cycle over every secret of `config`, one fetch per
/// address. Secrets with an `adopted` fetch (by index) are rendered from it
/// instead of fetched, with the rest of their group. Files that already hold
/// their content and mode are left alone; without a `dir` (a proxy-only
/// config) nothing is written.
pub async fn run(
    config: &Config,
    fetcher: &Fetcher,
    dir: Option<&OutputDir>,
    deadline: Instant,
    mut adopted: Vec<Option<Fetched>>,
) -> Result<Report, Error> {
    let started = std::time::SystemTime::now();
    let clock = std::time::Instant::now();
    adopted.resize_with(config.secrets.len(), || None);
    let work: Vec<(Vec<usize>, Option<Fetched>)> = fetch::groups(config)
        .into_iter()
        .map(|members| {
            let held = members.iter().find_map(|&i| adopted[i].take());
            (members, held)
        })
        .collect();
    let results: Vec<_> = stream::iter(work)
        .map(|(members, held)| async move {
            let r = match held {
                Some(f) => fetch::render_group(config, &members, &f).map(|files| (f, files)),
                None => {
                    fetcher
                        .fetch_group(config, &members, Budget::Until(deadline))
                        .await
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
    // With nothing to write, a secret whose source waits for the user to log
    // in does not stop the start: the proxy answers 503 for it with the way
    // to log in, and the sidecar fetches it once the login works.
    if dir.is_none() && config.templates.is_empty() {
        let sources = fetcher.sources();
        let (waiting, rest): (Vec<_>, Vec<_>) = failed
            .into_iter()
            .partition(|(i, _)| sources[config.secrets[*i].source].login_problem().is_some());
        failed = rest;
        let waiting = waiting
            .into_iter()
            .map(|(i, e)| (config.secrets[i].name.as_str(), e));
        for cause in by_cause(waiting) {
            tracing::warn!(
                secrets = %names(&cause.secrets),
                error = %cause.message,
                "waiting for a login: the proxy answers 503 for these secrets until it works"
            );
        }
    }
    if !failed.is_empty() {
        failed.sort_by_key(|(i, _)| *i);
        return Err(Error::Secrets {
            failed: failed
                .into_iter()
                .map(|(i, e)| (config.secrets[i].name.clone(), e))
                .collect(),
            files: dir.is_some(),
        });
    }
    let (fetched, rendered): (Vec<Option<Fetched>>, Vec<Vec<Rendered>>) = done
        .into_iter()
        .map(|d| d.map_or((None, Vec::new()), |(f, files)| (Some(f), files)))
        .unzip();
    let mut templates = Vec::with_capacity(config.templates.len());
    let mut failed = Vec::new();
    for t in &config.templates {
        match template::render(t, &config.secrets, |i| fetched.get(i)?.as_ref()) {
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
        let held = fetched.iter().flatten().count();
        tracing::info!(
            secrets = held,
            waiting = fetched.len() - held,
            elapsed_ms = clock.elapsed().as_millis() as u64,
            "secrets fetched; held in memory for the proxy, no file written"
        );
        return Ok(Report {
            changed: vec![false; fetched.len()],
            fetched,
            rendered,
            templates,
            started,
        });
    };
    // All or none: a file that cannot be staged leaves the old ones.
    let wrote = dir
        .write_all(rendered.iter().flatten().chain(&templates))
        .map_err(Error::Output)?;
    let changed = wrote.per_set(rendered.iter().map(Vec::len));
    let written = wrote.count();
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

    use std::sync::Arc;

    use super::*;
    use crate::source::fake::Counting;
    use crate::source::{self, Source};

    /// Three secrets of one address, one of another; a disk directory is allowed.
    pub(crate) fn setup() -> (Config, tempfile::TempDir, OutputDir) {
        let config = Config::parse(
            "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    kv: { mount: secret, path: db }\n  - name: b\n    kv: { mount: secret, path: db }\n    key: password\n  - name: c\n    kv: { mount: secret, path: other }\n  - name: d\n    kv: { mount: secret, path: db }\n    template: \"{{ password }}\"\n",
            Path::new("/"),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open(&crate::output::tests::output(tmp.path(), true)).unwrap();
        (config, tmp, dir)
    }

    #[tokio::test]
    async fn secrets_of_one_address_are_fetched_once() {
        let (config, tmp, dir) = setup();
        assert_eq!(fetch::groups(&config), [vec![0, 1, 3], vec![2]]);
        let source = Arc::new(Counting::default());
        source.set("one");
        let sources: Vec<Arc<dyn Source>> = vec![source.clone()];
        let fetcher = Fetcher::new(&config, sources, 4);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        let report = run(&config, &fetcher, Some(&dir), deadline, Vec::new())
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
        let failed = |files| Error::Secrets {
            failed: vec![
                ("a".into(), e()),
                ("b".into(), e()),
                (
                    "c".into(),
                    SecretError::Source(source::Error::not_found("y")),
                ),
            ],
            files,
        };
        assert_eq!(
            failed(true).to_string(),
            "3 secrets failed, no file was written:\n  - secrets `a` and `b`: file source x: bad\n  - secret `c`: not found: y"
        );
        assert_eq!(failed(true).exit(), Exit::Config);
        // A config that writes no files hears nothing about files.
        assert!(failed(false).to_string().starts_with("3 secrets failed:\n"));
    }

    #[test]
    fn a_write_failure_keeps_the_output_error_as_its_cause() {
        let e = Error::Output(crate::output::Error::Write {
            dir: "/run/secrets".into(),
            file: "db".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert_eq!(e.exit(), Exit::CantCreate);
        let shown = e.to_string();
        assert!(
            shown.starts_with("cannot write db in /run/secrets: ")
                && shown.ends_with("; no file of this run was written"),
            "{shown}"
        );
        let cause = std::error::Error::source(&e).expect("the output error");
        assert!(cause.downcast_ref::<crate::output::Error>().is_some());
        // A write that renamed some files never claims to have written none.
        let partial = Error::Output(crate::output::Error::Partial {
            dir: "/run/secrets".into(),
            file: "b".into(),
            new: vec!["a".into()],
            old: vec!["b".into()],
            source: std::io::Error::from_raw_os_error(21),
        });
        let shown = partial.to_string();
        assert!(
            !shown.contains("no file") && shown.ends_with("already new: a; still as before: b"),
            "{shown}"
        );
    }
}
