//! The `ramsecrets` binary: parse the command line, set up logging and
//! hardening, run the command, and map its error to a sysexits code.

use std::process::ExitCode as ProcessExit;

use clap::Parser;
use ramsecrets::cli::{Cli, Command, DrillArgs, LogFormat, ProxyArgs, RunArgs};
use ramsecrets::config::{self, Config};
use ramsecrets::exit::{Exit, Failure};
use ramsecrets::{check, drill, harden, init, inject, proxy, sidecar, telemetry};

fn main() -> ProcessExit {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ProcessExit::from(if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Ok.code()
            });
        }
    };
    telemetry::init(cli.log_format, cli.log_level);
    match run(cli.command, cli.log_format) {
        Ok(code) => ProcessExit::from(code),
        Err(f) => {
            let code = f.exit.code();
            let message = describe(&f.error);
            match cli.log_format {
                LogFormat::Text => {
                    use std::io::Write;
                    let _ = writeln!(std::io::stderr(), "ramsecrets: error: {message}");
                }
                LogFormat::Json => tracing::error!(exit_code = code, "{message}"),
            }
            ProcessExit::from(code)
        }
    }
}

/// The error and its causes, each said once: module errors already name
/// their cause in their message, so a cause whose text is there is left out.
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Writes `text` to stdout. A reader that went away (`| head -1`) is no
/// error: the rest is dropped quietly.
fn print(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure {
            exit: Exit::OsErr,
            error: anyhow::Error::new(e).context("cannot write to stdout"),
        }),
        _ => Ok(()),
    }
}

/// Runs `command`; returns the exit code.
fn run(command: Command, log_format: LogFormat) -> Result<u8, Failure> {
    match command {
        Command::Schema => {
            print(&format!("{:#}\n", config::schema()))?;
            Ok(Exit::Ok.code())
        }
        Command::Check(args) => {
            let path = &args.config.config;
            let config = Config::load(path)?;
            print(&config.to_string())?;
            if args.config_only {
                print(&format!("config {} is valid\n", path.display()))?;
            } else {
                runtime()?.block_on(check::local(&config, path))?;
                print(&format!(
                    "config {} is valid, and its local files and directories are ready\n",
                    path.display()
                ))?;
            }
            if !args.online {
                return Ok(Exit::Ok.code());
            }
            let report = runtime()?.block_on(async {
                let deadline = tokio::time::Instant::now() + args.timeout;
                ramsecrets::online::check(&config, deadline, 16).await
            })?;
            print(&format!("online check:\n{report}"))?;
            Ok(report.exit().code())
        }
        Command::Init(args) => {
            let config = Config::load(&args.config.config)?;
            let ready = init::prepare(&config, &args.config.config)?;
            let opts = init::Options {
                timeout: args.timeout,
                concurrency: usize::from(args.concurrency),
            };
            runtime()?.block_on(init::run(&config, ready, opts))
        }
        Command::Run(args) => sidecar(args, None, false, log_format),
        Command::Exec(args) => sidecar(args.run, Some(args.command), false, log_format),
        Command::Proxy(ProxyArgs {
            run,
            print_env: true,
        }) => print_env(&run.config.config),
        Command::Proxy(args) => sidecar(args.run, None, true, log_format),
        Command::Inject(args) => {
            let config = Config::load(&args.config)?;
            runtime()?.block_on(inject::server::run(config))?;
            Ok(Exit::Ok.code())
        }
        Command::Drill(args) => drill(*args),
    }
}

/// `proxy --print-env`: the lines an app's shell evaluates to reach the proxy.
fn print_env(path: &std::path::Path) -> Result<u8, Failure> {
    let config = Config::load(path)?;
    let cfg = needs_proxy(&config, path)?;
    print(&proxy::env::for_config(&config).unwrap_or_default())?;
    if !cfg.token_file.exists() {
        eprintln!(
            "ramsecrets: {} does not exist yet: the proxy creates it when it starts",
            cfg.token_file.display()
        );
    }
    Ok(Exit::Ok.code())
}

/// The proxy section, which `ramsecrets proxy` needs.
fn needs_proxy<'c>(
    config: &'c Config,
    path: &std::path::Path,
) -> Result<&'c config::Proxy, Failure> {
    config.proxy.as_ref().ok_or_else(|| Failure {
        exit: Exit::Config,
        error: anyhow::anyhow!(
            "config {} has no `proxy:` section, which `ramsecrets proxy` needs",
            path.display()
        ),
    })
}

/// `drill`: returns 0 when the app survived the rotation, else the drill's code.
fn drill(args: DrillArgs) -> Result<u8, Failure> {
    let config = Config::load(&args.config.config)?;
    harden::harden(config.mlock)?;
    let opts = drill::Options {
        secret: args.secret,
        sets: args.set,
        check_url: args.check_url,
        check: args.check,
        check_interval: args.check_interval,
        load: args.load,
        rps: args.rps,
        deadline: args.deadline,
        settle: args.settle,
        max_failures: args.max_failures,
        restore: args.restore,
        json: args.json,
        metrics: args.metrics,
    };
    Ok(runtime()?.block_on(drill::run(&config, opts))?)
}

/// A single-threaded runtime: the work is I/O-bound, one thread keeps memory
/// low, and on a small node it leaves the other cores to the app (the proxy
/// measured faster this way beside its client on 2 cores).
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            exit: Exit::OsErr,
            error: anyhow::Error::new(e).context("cannot start the async runtime"),
        })
}

/// `run`, `exec` (with `child`) and `proxy` (which needs a `proxy:` section);
/// returns the exit code: 0, or in `exec` mode the child's.
fn sidecar(
    args: RunArgs,
    child: Option<Vec<String>>,
    proxy: bool,
    log_format: LogFormat,
) -> Result<u8, Failure> {
    let config = Config::load(&args.config.config)?;
    if proxy {
        needs_proxy(&config, &args.config.config)?;
    }
    harden::harden(config.mlock)?;
    let opts = sidecar::Options {
        config_path: args.config.config,
        timeout: args.timeout,
        child,
        print_env: log_format == LogFormat::Text,
    };
    let code = runtime()?.block_on(sidecar::run(config, opts))?;
    Ok(u8::try_from(code).unwrap_or(1))
}
