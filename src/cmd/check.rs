//! `ramsecrets check` ([`command`]), and what it verifies beyond the config
//! file without contacting a server:
//! the output directory exists and is in memory, CA bundles load, and every
//! secret a `file` source serves is there and renders, and so is every
//! template over such secrets. These are the local
//! facts `init` would otherwise reject. Credential files (tokens, JWTs,
//! AppRole ids) are left alone: they are read at login, and a projected
//! service-account token exists only in the pod.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::cli::CheckArgs;
use crate::config::Config;
use crate::engine::cycle;
use crate::engine::fetch::{self, Budget, Fetcher};
use crate::exit::{Exit, ExitCode, Failure};
use crate::os::process::{print, runtime};
use crate::output::OutputDir;
use crate::render::template;
use crate::source;

/// Time allowed to read a `file` source.
const FILE_BUDGET: Duration = Duration::from_secs(10);

/// Every local fact that `init` would reject, in the order found.
#[derive(Debug)]
pub struct Error {
    path: PathBuf,
    problems: Vec<(String, Exit)>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config {} is valid, but `init` would fail:",
            self.path.display()
        )?;
        for (message, _) in &self.problems {
            write!(f, "\n  - {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        self.problems.first().map_or(Exit::Software, |(_, e)| *e)
    }
}

/// `ramsecrets check`: prints the summary of the config (the "plan" of its
/// help), then checks its local facts (unless `--config-only`) and with
/// `--online` what each source lets it read; returns the exit code.
pub fn command(args: &CheckArgs) -> Result<u8, Failure> {
    let path = &args.config.config;
    let config = args.config.load()?;
    print(&config.to_string())?;
    if args.config_only {
        print(&format!("config {} is valid\n", path.display()))?;
    } else {
        runtime()?.block_on(local(&config, path))?;
        print(&format!(
            "config {} is valid, and its local files and directories are ready\n",
            path.display()
        ))?;
    }
    if !args.online {
        return Ok(Exit::Ok.code());
    }
    let report = runtime()?.block_on(async {
        let deadline = Instant::now() + args.timeout;
        crate::cmd::online::check(&config, deadline, 16).await
    })?;
    print(&format!("online check:\n{report}"))?;
    Ok(report.exit().code())
}

/// Checks the local facts of `config`, read from `path`.
pub async fn local(config: &Config, path: &Path) -> Result<(), Error> {
    let mut problems = Vec::new();
    // A proxy-only config has no directory: its secrets stay in memory.
    if let Some(Err(e)) = config.output.as_ref().map(OutputDir::check) {
        problems.push((e.to_string(), e.exit()));
    }
    // The injector's own file: its certificate files load.
    if let Some(Err(e)) = config.inject.as_ref().map(crate::inject::check) {
        problems.push((e.to_string(), e.exit()));
    }
    let sources = match source::build(config) {
        Ok(s) => s,
        Err(e) => {
            problems.push((e.to_string(), e.exit()));
            return Err(Error {
                path: path.to_owned(),
                problems,
            });
        }
    };
    let deadline = Instant::now() + FILE_BUDGET;
    let fetcher = Fetcher::new(config, sources, 1);
    let mut failed = Vec::new();
    let mut fetched = vec![None; config.secrets.len()];
    for members in fetch::groups(config) {
        let source = config.secrets[members[0]].source;
        if config.sources[source].kind.local_file().is_none() {
            continue;
        }
        match fetcher
            .fetch_group(config, &members, Budget::Until(deadline))
            .await
        {
            Ok((f, _)) => members.iter().for_each(|&i| fetched[i] = Some(f.clone())),
            Err(e) => failed.extend(e),
        }
    }
    failed.sort_by_key(|(i, _)| *i);
    let named = failed
        .iter()
        .map(|(i, e)| (config.secrets[*i].name.as_str(), e));
    for cause in cycle::by_cause(named) {
        problems.push((cause.line(), cause.first.exit()));
    }
    // Templates whose secrets all come from `file` sources.
    for t in &config.templates {
        if t.inputs.iter().all(|&i| fetched[i].is_some()) {
            if let Err(e) = template::render(t, &config.secrets, |i| fetched[i].as_ref()) {
                problems.push((format!("template `{}`: {e}", t.file), e.exit()));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error {
            path: path.to_owned(),
            problems,
        })
    }
}
