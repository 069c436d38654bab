//! `run` and `exec`: the first cycle (adopting what `init` handed over), then
//! the scheduler, the health endpoint and the file watch, until SIGTERM/SIGINT
//! (`run`) or until the child exits (`exec`). Shutdown stops scheduling,
//! lets in-flight writes finish, revokes and wipes where configured, all
//! within a grace period.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::{LogFormat, RunArgs};
use crate::config::{Config, Pin};
use crate::engine::cycle;
use crate::engine::rotation::Engine;
use crate::exit::{Exit, ExitCode, Failure};
use crate::os::signals::{self, Signals};
use crate::os::{supervise, watch};
use crate::output::OutputDir;
use crate::telemetry::{health, metrics::Metrics};
use crate::{output, proxy, source};

/// Time allowed for revocation and wiping at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the sidecar could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source could not be set up.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// The output directory is unusable.
    #[error(transparent)]
    Output(#[from] output::Error),
    /// The first cycle failed.
    #[error(transparent)]
    Cycle(#[from] cycle::Error),
    /// The health endpoint could not listen.
    #[error(transparent)]
    Health(#[from] crate::http::CannotListen),
    /// The files could not be watched.
    #[error("cannot watch the config and output files: {0}")]
    Watch(#[from] notify::Error),
    /// The proxy could not start.
    #[error(transparent)]
    Proxy(#[from] proxy::Error),
    /// The signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The child could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command (first word of argv).
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Source(e) => e.exit(),
            Error::Output(e) => e.exit(),
            Error::Cycle(e) => e.exit(),
            Error::Health(e) => e.exit(),
            Error::Watch(_) | Error::Signals(_) => Exit::OsErr,
            Error::Proxy(e) => e.exit(),
            Error::Spawn { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => Exit::CommandNotFound,
                _ => Exit::CannotExecute,
            },
        }
    }
}

/// How to run.
pub struct Options {
    /// The config file, watched for changes.
    pub config_path: PathBuf,
    /// The SHA-256 a reloaded config must have (`--config-sha256`).
    pub config_pin: Option<Pin>,
    /// Deadline of the first cycle.
    pub timeout: Duration,
    /// `exec` mode: the child's argv.
    pub child: Option<Vec<String>>,
    /// Print what an app needs to reach the proxy to stderr as shell lines,
    /// once it listens (text logs); JSON logs get one event instead.
    pub print_env: bool,
}

/// Tells the user, once, how an app reaches the proxy; never the token itself.
fn announce(config: &Config, opts: &Options) {
    let Some(lines) = proxy::env::for_config(config) else {
        return;
    };
    if opts.print_env {
        eprint!(
            "The proxy is ready. In an app's shell, paste these lines or run\n  eval \"$(ramsecrets proxy --config {} --print-env)\"\n{lines}",
            opts.config_path.display()
        );
    } else {
        tracing::info!(env = %lines, "the environment an app needs to reach the proxy");
    }
}

/// `run`, `exec` (with `child`) and `proxy` (which needs a `proxy:` section):
/// loads the config, hardens the process and runs the sidecar; returns the
/// exit code: 0, or in `exec` mode the child's.
pub fn command(
    args: RunArgs,
    child: Option<Vec<String>>,
    proxy: bool,
    log_format: LogFormat,
) -> Result<u8, Failure> {
    if let Some(command) = child.as_ref().and_then(|argv| argv.first()) {
        supervise::locate(command).map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    }
    let config = args.config.load()?;
    if proxy {
        proxy::command::section(&config, &args.config.config)?;
    }
    crate::os::harden::harden(config.mlock)?;
    let opts = Options {
        config_pin: args.config.config_sha256,
        config_path: args.config.config,
        timeout: args.timeout,
        child,
        print_env: log_format == LogFormat::Text,
    };
    let code = crate::os::process::runtime()?.block_on(run(config, opts))?;
    Ok(u8::try_from(code).unwrap_or(1))
}

/// Runs the sidecar; returns the process exit code (the child's in `exec` mode).
pub async fn run(config: Config, opts: Options) -> Result<i32, Error> {
    let exec_mode = opts.child.is_some();
    // Before any backend call; in `exec` mode SIGHUP is the child's.
    let signals = Signals::install(!exec_mode).map_err(Error::Signals)?;
    let config = Arc::new(config);
    let sources = source::build(&config)?;
    // Without `output:` the secrets live in memory and go out through the proxy only.
    let dir = match &config.output {
        Some(o) => Some(Arc::new(OutputDir::open(o)?)),
        None => None,
    };
    // Watching from before the first cycle: nothing changed meanwhile is missed.
    let (mut watch, mut events) = match watch::start(
        &opts.config_path,
        &config,
        dir.as_ref().map(|d| d.path()),
    ) {
        Ok(w) => w,
        // Keeping secrets fresh matters more than watching files.
        Err(e) if watch::limit_reached(&e) => {
            tracing::warn!(error = %e, "the kernel's inotify limit for this user is reached (fs.inotify.max_user_instances or max_user_watches; raise it on the node): running without watching, so config changes are not reloaded and output files deleted by others are not written back");
            watch::Watch::none()
        }
        Err(e) => return Err(e.into()),
    };
    let metrics = Arc::new(Metrics::of(&config));
    metrics.declare(&config);
    let stop = CancellationToken::new();
    // A token file that cannot be trusted stops the run before any backend call.
    let proxy_token = match &config.proxy {
        Some(cfg) => Some(proxy::load_token(&cfg.token_file)?),
        None => None,
    };
    let health = match config.health {
        Some(addr) => Some(health::serve(addr, metrics.clone(), stop.clone()).await?),
        None => None,
    };
    let (changes_tx, changes_rx) = mpsc::unbounded_channel();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let start = Engine::start(
        config.clone(),
        sources,
        dir.clone(),
        metrics.clone(),
        deadline,
        exec_mode.then_some(changes_tx),
    );
    let mut engine = tokio::select! {
        engine = start => engine?,
        sig = signals.stopped() => return Ok(signals::interrupted(sig)),
    };
    // The proxy's refreshNow goes through the engine.
    let (refresh_tx, mut refresh_rx) = mpsc::channel(64);
    let proxy = match (&config.proxy, proxy_token) {
        (Some(cfg), Some(token)) => {
            let shared = Arc::new(proxy::Proxy::new(
                engine.subscribe(),
                metrics.clone(),
                token,
                refresh_tx,
            ));
            let handle = proxy::serve(shared.clone(), cfg, stop.clone()).await?;
            announce(&config, &opts);
            Some((shared, handle))
        }
        _ => None,
    };
    let trimmed = crate::os::memory::trim();
    tracing::debug!(bytes = trimmed, "start-up code pages given back");
    tracing::info!(
        secrets = config.secrets.len(),
        "ready; keeping secrets fresh"
    );

    // The end: SIGTERM/SIGINT in `run`; the child's exit in `exec`, which gets those signals.
    let child = match opts.child {
        Some(argv) => {
            let command = argv[0].clone();
            let stop = stop.clone();
            let exec = config.exec;
            let handle = tokio::spawn(async move {
                let code = supervise::supervise(argv, exec, changes_rx).await;
                stop.cancel();
                code
            });
            Some((command, handle))
        }
        None => {
            let (stop, signals) = (stop.clone(), signals.clone());
            tokio::spawn(async move {
                signals.stopped().await;
                tracing::info!("stopping");
                stop.cancel();
            });
            None
        }
    };

    loop {
        let (e, reload) = engine
            .run(&stop, &mut events, signals.reloads(), &mut refresh_rx)
            .await;
        engine = e;
        if !reload {
            break;
        }
        engine = engine
            .reload_file(&opts.config_path, opts.config_pin, &mut watch, &mut events)
            .await;
    }
    drop(watch);
    if tokio::time::timeout(SHUTDOWN_GRACE, engine.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown tasks did not finish within the grace period");
    }
    stop.cancel();
    if let Some(h) = health {
        let _ = h.await;
    }
    if let Some((_, h)) = proxy {
        let _ = h.await;
    }
    match child {
        Some((command, handle)) => match handle.await {
            Ok(Ok(code)) => Ok(code),
            Ok(Err(source)) => Err(Error::Spawn { command, source }),
            Err(join) => Err(Error::Spawn {
                command,
                source: std::io::Error::other(join.to_string()),
            }),
        },
        None => Ok(0),
    }
}
