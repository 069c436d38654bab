//! `ramsecrets drill`: performs a real rotation of one secret in the backend
//! while the app runs under the sidecar, and measures whether and when the
//! app follows: the secret's files ([`watch::Files`]), the sidecar's metrics
//! ([`watch::Sidecar`]), the app's health and optional load ([`probe`]), then
//! a report ([`report`]) with an exit code that says whether the app survived.
//!
//! The order: watch and check the app (it must be healthy first), start the
//! load, rotate (the backend's [`rotator::Rotator`]), wait until the files changed, the
//! on_change actions ran and the app is healthy for `--settle`, or until
//! `--deadline`; stop the load; put the old value back when the drill
//! invented the new one (unless `--keep`), with `--restore`, and always when
//! SIGINT or SIGTERM cut the drill short; report. Without a check or load of
//! the app the verdict is [`NOT_VERIFIED`], never passed.

mod probe;
mod report;
mod watch;

use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::cli::DrillArgs;
use crate::config::{Config, Secret};
use crate::exit::{Exit, ExitCode, Failure};
use crate::source::{self, rotator};
pub use report::{FAILED, INTERRUPTED, NOT_VERIFIED};

/// Why a drill could not be run (as opposed to a drill the app failed).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad options for this secret.
    #[error("{0}")]
    Usage(String),
    /// A backend call failed.
    #[error(transparent)]
    Source(#[from] source::Error),
    /// The rotation, or putting the old value back, failed.
    #[error(transparent)]
    Rotation(#[from] rotator::Error),
    /// The files could not be watched.
    #[error("cannot watch the files of secret `{secret}`: {source}")]
    Watch {
        /// The secret.
        secret: String,
        /// Why.
        #[source]
        source: notify::Error,
    },
    /// The app failed its check before anything was rotated.
    #[error("the app is not healthy before the drill ({0}): nothing was rotated")]
    NotHealthy(String),
}

impl ExitCode for Error {
    fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Source(e) => e.exit(),
            Error::Watch { .. } => Exit::OsErr,
            Error::Rotation(e) => e.exit(),
            Error::NotHealthy(_) => Exit::Unavailable,
        }
    }
}

/// The deadline of one backend call of the drill, retries included.
const CALL_BUDGET: Duration = Duration::from_secs(60);
/// How often the drill looks at what it measures.
const TICK: Duration = Duration::from_millis(50);
/// How long the sidecar's metrics get to answer before the drill goes without.
const METRICS_WAIT: Duration = Duration::from_secs(5);

/// Cancels `interrupt` on SIGINT or SIGTERM.
fn on_signals(interrupt: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    tokio::spawn(async move {
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            tracing::warn!("interrupted: stopping the drill");
            interrupt.cancel();
        }
    });
}

/// The metrics URL of a sidecar listening on `addr` (an unspecified address is reached on loopback).
fn metrics_url(addr: std::net::SocketAddr) -> Option<reqwest::Url> {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!(
        "http://{}/metrics",
        std::net::SocketAddr::new(ip, addr.port())
    )
    .parse()
    .ok()
}

/// A URL for the report, without credentials.
fn shown(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// `ramsecrets drill`: loads the config, hardens the process and runs the
/// drill; returns its exit code.
pub fn command(args: &DrillArgs) -> Result<u8, Failure> {
    let config = args.config.load()?;
    crate::os::harden::harden(config.mlock)?;
    Ok(crate::os::process::runtime()?.block_on(run(&config, args))?)
}

/// Runs the drill as `opts` say; returns the exit code: 0 passed,
/// [`FAILED`], [`NOT_VERIFIED`] or [`INTERRUPTED`].
pub async fn run(config: &Config, opts: &DrillArgs) -> Result<u8, Error> {
    let secret = find(config, &opts.secret)?;
    let sets = opts
        .set
        .iter()
        .map(|a| rotator::shape::parse_set(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Usage)?;
    let sources = source::build(config)?;
    let usage = |why: &str| Error::Usage(format!("secret `{}`: {why}", secret.name));
    let target = sources[secret.source]
        .rotator(secret)
        .map_err(|why| usage(&why))?;
    if !sets.is_empty() && !target.takes_sets() {
        return Err(usage(&format!(
            "--set does not apply to a {}: the backend makes its new value",
            target.describe()
        )));
    }
    if opts.restore && !target.restorable() {
        return Err(Error::Usage(format!(
            "--restore cannot put back a {}: its old value is revoked or gone",
            target.describe()
        )));
    }
    let stop = CancellationToken::new();
    let interrupt = CancellationToken::new();
    on_signals(interrupt.clone());
    let output = config.output.as_ref().ok_or_else(|| {
        Error::Usage(
            "the config has no `output:`: the drill watches the secret's files, and there are none"
                .into(),
        )
    })?;
    let files = watch::Files::start(&output.dir, &files_of(config, secret)?).map_err(|source| {
        Error::Watch {
            secret: secret.name.clone(),
            source,
        }
    })?;
    let mut sidecar = None;
    if let Some(url) = opts
        .metrics
        .clone()
        .or_else(|| config.health.and_then(metrics_url))
    {
        let s = watch::Sidecar::start(url.clone(), &secret.name, stop.clone());
        if s.first(METRICS_WAIT).await.is_some() {
            sidecar = Some(s);
        } else {
            tracing::warn!(url = %shown(&url), "the sidecar's metrics do not answer: on_change actions will not be timed");
        }
    }
    let held = sidecar
        .as_ref()
        .and_then(|s| s.latest())
        .map(|s| s.held)
        .unwrap_or_default();
    let check = match (&opts.check_url, &opts.check) {
        (Some(u), _) => Some(probe::Check::Url(u.clone())),
        (None, Some(c)) => Some(probe::Check::Command(c.clone())),
        (None, None) => None,
    };
    let checks = check
        .clone()
        .map(|c| c.start(opts.check_interval, stop.clone()));
    if let Some(record) = &checks {
        if !preflight(record, opts.deadline, &interrupt).await {
            stop.cancel();
            if interrupt.is_cancelled() {
                tracing::warn!("interrupted before the rotation: nothing was changed");
                return Ok(INTERRUPTED);
            }
            let how = if opts.check_url.is_some() {
                "--check-url"
            } else {
                "--check"
            };
            return Err(Error::NotHealthy(format!(
                "{how} never passed within --deadline"
            )));
        }
    }
    let load_stop = CancellationToken::new();
    let load = opts
        .load
        .clone()
        .map(|u| probe::load(u, opts.rps, load_stop.clone()));

    let started_wall = SystemTime::now();
    let t0 = Instant::now();
    tracing::info!(secret = %secret.name, kind = target.describe(), "rotating");
    let job = rotator::Job {
        sets: &sets,
        held: &held,
        interrupt: &interrupt,
        deadline: tokio::time::Instant::now() + CALL_BUDGET,
    };
    let rotated = match target.rotate(&job).await {
        Ok(r) => r,
        Err(e) => {
            load_stop.cancel();
            stop.cancel();
            if interrupt.is_cancelled() {
                tracing::warn!(secret = %secret.name, "{e}");
                return Ok(INTERRUPTED);
            }
            return Err(e.into());
        }
    };
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    tracing::info!(secret = %secret.name, action = rotated.action, from = %shown(&rotated.from), to = %shown(&rotated.to), "backend written");
    let expected_actions = match &sidecar {
        Some(_) => secret.on_change.len() as u64,
        None => 0,
    };
    let outcome = wait(&Waiting {
        files: &files,
        sidecar: sidecar.as_ref(),
        checks: checks.as_ref(),
        expected_actions,
        since: t0,
        deadline: t0 + opts.deadline,
        settle: opts.settle,
        interrupt: &interrupt,
    })
    .await;
    load_stop.cancel();
    let load_record = match load {
        Some((record, task)) => {
            let _ = task.await;
            Some(record)
        }
        None => None,
    };
    stop.cancel();
    let interrupted = interrupt.is_cancelled();
    // Invented values are known to nothing else: they go back unless --keep.
    let restoring = interrupted || opts.restore || (rotated.invented && !opts.keep);
    let restored = match &rotated.undo {
        Some(undo) if restoring => match target
            .restore(undo, tokio::time::Instant::now() + CALL_BUDGET)
            .await
        {
            Ok(rotator::Restored::Done(done)) => {
                tracing::info!(secret = %secret.name, "{done}");
                Some(done)
            }
            Ok(rotator::Restored::Left(why)) => {
                tracing::warn!(secret = %secret.name, "the old value is not put back: {why}");
                Some(format!("not put back: {why}"))
            }
            Err(e) => {
                tracing::error!(secret = %secret.name, error = %e, "cannot put the old value back");
                Some(format!("failed: {e}"))
            }
        },
        _ => None,
    };
    let mut report = build(Built {
        config,
        secret,
        kind: target.describe(),
        opts,
        rotated: &rotated,
        outcome: &outcome,
        t0,
        started_wall,
        checks: checks.as_ref(),
        load: load_record.as_ref(),
        sidecar: sidecar.as_ref(),
    });
    report.restored = restored;
    report.interrupted = interrupted;
    report.judge();
    if opts.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(report.exit_code)
}

/// The files a change of `secret` rewrites: its own, and those of the
/// templates that read it.
fn files_of(config: &Config, secret: &Secret) -> Result<Vec<String>, Error> {
    let index = config.secrets.iter().position(|s| s.name == secret.name);
    let mut files = secret.files();
    for t in &config.templates {
        if t.dynamic || index.is_some_and(|i| t.inputs.contains(&i)) {
            files.push(t.file.clone());
        }
    }
    if files.is_empty() {
        return Err(Error::Usage(format!(
            "secret `{}` writes no file and no template reads it: there is nothing to watch",
            secret.name
        )));
    }
    Ok(files)
}

fn find<'a>(config: &'a Config, name: &str) -> Result<&'a Secret, Error> {
    config
        .secrets
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = config.secrets.iter().map(|s| s.name.as_str()).collect();
            Error::Usage(format!(
                "--secret {name}: the config has no such secret (it has: {})",
                names.join(", ")
            ))
        })
}

/// Waits until a check passes; false at the deadline or on interrupt.
async fn preflight(record: &probe::Record, limit: Duration, interrupt: &CancellationToken) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until && !interrupt.is_cancelled() {
        if record.all().iter().any(|p| p.ok) {
            return true;
        }
        tokio::time::sleep(TICK).await;
    }
    false
}

/// What the wait looks at.
struct Waiting<'a> {
    files: &'a watch::Files,
    sidecar: Option<&'a watch::Sidecar>,
    checks: Option<&'a probe::Record>,
    expected_actions: u64,
    since: Instant,
    deadline: Instant,
    settle: Duration,
    interrupt: &'a CancellationToken,
}

/// What happened after the rotation.
#[derive(Default)]
struct Outcome {
    file: Option<(String, Instant)>,
    actions: Option<(Instant, u64)>,
    healthy: Option<Instant>,
    recovered: bool,
}

/// Waits for the file change, the actions and a settled healthy app, or the
/// deadline, or an interrupt.
async fn wait(w: &Waiting<'_>) -> Outcome {
    let mut out = Outcome::default();
    loop {
        let now = Instant::now();
        out.file = w.files.first_since(w.since);
        if let (Some(side), true) = (w.sidecar, w.expected_actions > 0) {
            out.actions = side.actions_after(w.since, w.expected_actions);
        }
        let delivered = match (&out.file, w.expected_actions) {
            (Some((_, at)), 0) => Some(*at),
            (Some((_, at)), _) => out.actions.map(|(a, _)| a.max(*at)),
            (None, _) => None,
        };
        out.healthy = delivered.and_then(|d| match w.checks {
            Some(c) => probe::healthy_since(&c.all(), d),
            None => Some(d),
        });
        match out.healthy {
            Some(h) if h <= w.deadline && now >= h + w.settle => {
                out.recovered = true;
                return out;
            }
            Some(h) if h <= w.deadline => {}
            _ if now >= w.deadline => return out,
            _ => {}
        }
        if w.interrupt.is_cancelled() {
            return out;
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Everything the report is made of.
struct Built<'a> {
    config: &'a Config,
    secret: &'a Secret,
    kind: &'static str,
    opts: &'a DrillArgs,
    rotated: &'a rotator::Rotated,
    outcome: &'a Outcome,
    t0: Instant,
    started_wall: SystemTime,
    checks: Option<&'a probe::Record>,
    load: Option<&'a probe::Record>,
    sidecar: Option<&'a watch::Sidecar>,
}

fn build(b: Built<'_>) -> report::Report {
    use report::{ms, Event};
    let at = |i: Instant| ms(i.saturating_duration_since(b.t0));
    let event = |name: &str, i: Instant, detail: Option<String>| Event {
        event: name.to_owned(),
        at_ms: at(i),
        detail,
    };
    let mut timeline = vec![event("rotation started", b.t0, None)];
    for (name, i) in &b.rotated.steps {
        timeline.push(event(name, *i, None));
    }
    timeline.push(event(
        "backend written",
        b.rotated.written,
        Some(b.rotated.action.to_owned()),
    ));
    let o = b.outcome;
    if let Some((file, i)) = &o.file {
        timeline.push(event("file changed", *i, Some(file.clone())));
    }
    if let Some((i, errors)) = o.actions {
        let n = b.secret.on_change.len();
        let detail = match errors {
            0 => format!("{n} on_change action(s)"),
            e => format!("{n} on_change action(s), {e} failed"),
        };
        timeline.push(event("action delivered", i, Some(detail)));
    }
    if let (Some(i), true) = (o.healthy, b.checks.is_some()) {
        timeline.push(event("app healthy", i, None));
    }
    if !o.recovered {
        timeline.push(event("deadline", b.t0 + b.opts.deadline, None));
    }
    timeline.sort_by(|a, c| a.at_ms.total_cmp(&c.at_ms));
    let interval = b.secret.refresh.unwrap_or(b.config.refresh.interval);
    let bound = interval.mul_f64(1.1);
    let lag = o.file.as_ref().map(|(_, i)| {
        let lag = i.saturating_duration_since(b.rotated.written);
        let (refreshes, gap) = match b.sidecar {
            Some(s) => {
                let (n, gap) = s.refreshes(b.rotated.written, *i);
                (Some(n), gap.map(|g| (g * 10_000.0).round() / 10.0))
            }
            None => (None, None),
        };
        report::Lag {
            ms: ms(lag),
            refresh_interval_ms: interval.as_millis() as u64,
            bound_ms: bound.as_millis() as u64,
            within_bound: lag <= bound,
            sidecar_refreshes: refreshes,
            sidecar_gap_ms: gap,
        }
    });
    let checks = b.checks.map(|c| {
        let after: Vec<_> = c.all().into_iter().filter(|p| p.start >= b.t0).collect();
        report::Checks {
            how: match &b.opts.check_url {
                Some(u) => format!("GET {}", shown(u)),
                None => "command".into(),
            },
            sent: after.len(),
            failed: after.iter().filter(|p| !p.ok).count(),
        }
    });
    let load = b.load.zip(b.opts.load.as_ref()).map(|(r, url)| {
        let all = r.all();
        let mut took: Vec<Duration> = all.iter().map(|p| p.took).collect();
        let mut q = |x| probe::quantile(&mut took, x).map(ms);
        report::Load {
            url: shown(url),
            rps: b.opts.rps,
            sent: all.len(),
            failed: all.iter().filter(|p| !p.ok).count(),
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            max_ms: q(1.0),
        }
    });
    report::Report {
        secret: b.secret.name.clone(),
        kind: b.kind,
        source: b.config.sources[b.secret.source].name.clone(),
        started: humantime::format_rfc3339_millis(b.started_wall).to_string(),
        rotation: report::Rotation {
            action: b.rotated.action,
            from: b.rotated.from.clone(),
            to: b.rotated.to.clone(),
            fields: b.rotated.fields.clone(),
        },
        timeline,
        lag,
        checks,
        load,
        sidecar_metrics: b.sidecar.map(|s| shown(&s.url)),
        deadline_ms: b.opts.deadline.as_millis() as u64,
        settle_ms: b.opts.settle.as_millis() as u64,
        max_failures: b.opts.max_failures,
        recovered: o.recovered,
        verified: b.checks.is_some() || b.load.is_some(),
        restored: None,
        interrupted: false,
        passed: false,
        reasons: Vec::new(),
        exit_code: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
sources: [ { file: { path: dev.yaml } } ]
output: { dir: /dev/shm, allow_disk: true }
secrets:
  - { name: db, kv: { mount: secret, path: app/db }, write: false }
  - { name: api, kv: { mount: secret, path: app/api }, key: token }
  - { name: alone, kv: { mount: secret, path: app/alone }, write: false }
templates:
  - file: app.properties
    template: "{{ secrets.db.password }}"
"#;

    #[test]
    fn a_secret_is_watched_in_its_files_and_in_the_templates_that_read_it() {
        let config = Config::parse(CONFIG, std::path::Path::new("/tmp")).unwrap();
        let files = |name| files_of(&config, find(&config, name).unwrap());
        assert_eq!(files("db").unwrap(), vec!["app.properties"]);
        assert_eq!(files("api").unwrap(), vec!["api"]);
        let e = files("alone").unwrap_err().to_string();
        assert!(e.contains("alone") && e.contains("nothing to watch"), "{e}");
        let e = find(&config, "nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("db, api, alone"), "{e}");
    }

    #[test]
    fn the_metrics_of_a_sidecar_on_any_address_are_read_on_loopback() {
        let url = |a: &str| metrics_url(a.parse().unwrap()).unwrap().to_string();
        assert_eq!(url("0.0.0.0:8099"), "http://127.0.0.1:8099/metrics");
        assert_eq!(url("[::]:8099"), "http://[::1]:8099/metrics");
        assert_eq!(url("10.1.2.3:8099"), "http://10.1.2.3:8099/metrics");
        let with_creds: reqwest::Url = "http://u:p@127.0.0.1:1/x".parse().unwrap();
        assert_eq!(shown(&with_creds), "http://127.0.0.1:1/x");
    }
}
