//! `ramsecrets init`: fetch every secret once, write them all or none, and
//! hand off to the sidecar what it should adopt rather than take again (its
//! tokens, leases and certificates, in `output.state_dir`; the file's format
//! and the sidecar's side are in [`crate::engine::handoff`]). [`prepare`] runs before the
//! async runtime starts, [`run`] on it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::InitArgs;
use crate::config::Config;
use crate::engine::cycle;
use crate::engine::fetch::Fetcher;
use crate::engine::handoff::{self, State};
use crate::exit::{Exit, Failure};
use crate::os::signals::{self, Signals};
use crate::output::OutputDir;
use crate::source::{self, Source};

/// `init`'s command-line settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long the whole run may take.
    pub timeout: Duration,
    /// Secrets fetched at once.
    pub concurrency: usize,
}

/// What [`prepare`] set up: the sources, the output directory and the state
/// directory (when `output.state_dir` is set).
pub struct Ready {
    sources: Vec<Arc<dyn Source>>,
    dir: OutputDir,
    state_dir: Option<OutputDir>,
}

/// `ramsecrets init`: loads the config, prepares and runs; returns the exit code.
pub fn command(args: &InitArgs) -> Result<u8, Failure> {
    let config = args.config.load()?;
    let ready = prepare(&config, &args.config.config)?;
    let opts = Options {
        timeout: args.timeout,
        concurrency: usize::from(args.concurrency),
    };
    crate::os::process::runtime()?.block_on(run(&config, ready, opts))
}

/// Checks that `config` (read from `path`) can be written, hardens the
/// process, builds the sources and opens the output and state directories,
/// so that a bad one fails the run before anything is fetched.
pub fn prepare(config: &Config, path: &Path) -> Result<Ready, Failure> {
    let Some(output) = &config.output else {
        return Err(Failure {
            exit: Exit::Config,
            error: anyhow::anyhow!(
                "config {} has no `output:` section, which `ramsecrets init` needs to write files; its secrets are served from memory by `ramsecrets proxy`",
                path.display()
            ),
        });
    };
    crate::os::harden::harden(config.mlock)?;
    let sources = source::build(config)?;
    let dir = OutputDir::open(output)?;
    let state_dir = handoff::prepare(output, &dir)?;
    // What parsing and set-up touched is not needed to fetch and write.
    crate::os::memory::trim();
    Ok(Ready {
        sources,
        dir,
        state_dir,
    })
}

/// Fetches and writes every secret, then hands off; returns the exit code:
/// 0, or 128 + the signal that stopped it.
pub async fn run(config: &Config, ready: Ready, opts: Options) -> Result<u8, Failure> {
    let signals = Signals::install(false).map_err(|e| Failure {
        exit: Exit::OsErr,
        error: anyhow::Error::new(e).context("cannot install signal handlers"),
    })?;
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let fetcher = Fetcher::new(config, ready.sources, opts.concurrency);
    let work = async {
        let report = cycle::run(config, &fetcher, Some(&ready.dir), deadline, Vec::new()).await?;
        hand_off(config, fetcher.sources(), &report, ready.state_dir.as_ref()).await?;
        Ok(Exit::Ok.code())
    };
    tokio::select! {
        done = work => done,
        sig = signals.stopped() => Ok(u8::try_from(signals::interrupted(sig)).unwrap_or(1)),
    }
}

/// Leaves the tokens and the leased or issued secrets of `init` in `dir`
/// for the sidecar; without a state directory, says once that it will not.
async fn hand_off(
    config: &Config,
    sources: &[Arc<dyn Source>],
    report: &cycle::Report,
    dir: Option<&OutputDir>,
) -> Result<(), handoff::Error> {
    let held = report
        .fetched
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, f.as_ref()?, report.started)));
    let state = State::collect(config, sources, held).await;
    match dir {
        _ if state.is_empty() => Ok(()),
        Some(dir) => state.save(dir),
        None => {
            tracing::info!("output.state_dir is not set: nothing is handed over, so the sidecar will log in and fetch afresh");
            Ok(())
        }
    }
}
