//! What the drill asks of the app: a health check polled all along
//! (`--check-url`: an HTTP GET answered 2xx; `--check`: a shell command that
//! exits 0), and optional steady load (`--load URL --rps N`), each request
//! timed and counted. Bodies and command output are never kept or shown.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Time one check or one load request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How the app is checked.
#[derive(Clone, Debug)]
pub enum Check {
    /// GET, healthy on 2xx.
    Url(reqwest::Url),
    /// `sh -c CMD`, healthy on exit 0.
    Command(String),
}

/// One check or request: when it started, how long it took, whether it passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// When it was sent.
    pub start: Instant,
    /// How long until the answer (or the failure).
    pub took: Duration,
    /// Whether it passed.
    pub ok: bool,
}

/// Probes recorded by a task until its token is cancelled.
#[derive(Clone, Default)]
pub struct Record(Arc<Mutex<Vec<Probe>>>);

impl Record {
    fn push(&self, p: Probe) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(p);
    }

    /// Everything so far, in the order the answers came.
    pub fn all(&self) -> Vec<Probe> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default()
}

async fn get(http: &reqwest::Client, url: &reqwest::Url) -> bool {
    match http.get(url.clone()).send().await {
        // The body is read to free the connection, and dropped.
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn command(cmd: &str) -> bool {
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(tokio::time::timeout(REQUEST_TIMEOUT, child).await, Ok(Ok(s)) if s.success())
}

impl Check {
    /// Runs the check once.
    pub async fn once(&self, http: &reqwest::Client) -> Probe {
        let start = Instant::now();
        let ok = match self {
            Check::Url(u) => get(http, u).await,
            Check::Command(c) => command(c).await,
        };
        Probe {
            start,
            took: start.elapsed(),
            ok,
        }
    }

    /// Checks every `every` until `stop`, one at a time.
    pub fn start(self, every: Duration, stop: CancellationToken) -> Record {
        let record = Record::default();
        let out = record.clone();
        tokio::spawn(async move {
            let http = client();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let p = self.once(&http).await;
                out.push(p);
            }
        });
        record
    }
}

/// Steady load: `rps` GETs of `url` a second, each on its own, until `stop`;
/// requests still out then are waited for (up to their timeout).
pub fn load(
    url: reqwest::Url,
    rps: u32,
    stop: CancellationToken,
) -> (Record, tokio::task::JoinHandle<()>) {
    let record = Record::default();
    let out = record.clone();
    let handle = tokio::spawn(async move {
        let http = client();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rps.max(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flying = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let (http, url, out) = (http.clone(), url.clone(), out.clone());
            flying.spawn(async move {
                let start = Instant::now();
                let ok = get(&http, &url).await;
                out.push(Probe {
                    start,
                    took: start.elapsed(),
                    ok,
                });
            });
            // Reap what finished, so the set stays small.
            while flying.try_join_next().is_some() {}
        }
        while flying.join_next().await.is_some() {}
    });
    (record, handle)
}

/// The first passing check that started at or after `from` and was followed
/// by passing checks only: the start of the app's last healthy streak.
pub fn healthy_since(checks: &[Probe], from: Instant) -> Option<Instant> {
    let mut streak = None;
    for p in checks.iter().filter(|p| p.start >= from) {
        match (p.ok, streak) {
            (true, None) => streak = Some(p.start),
            (false, _) => streak = None,
            _ => {}
        }
    }
    streak
}

/// The `q` quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &mut [Duration], q: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(t0: Instant, ms: u64, ok: bool) -> Probe {
        Probe {
            start: t0 + Duration::from_millis(ms),
            took: Duration::from_millis(1),
            ok,
        }
    }

    #[test]
    fn a_streak_restarts_after_a_failure() {
        let t0 = Instant::now();
        let checks = [
            probe(t0, 0, true),
            probe(t0, 100, false),
            probe(t0, 200, true),
            probe(t0, 300, true),
        ];
        assert_eq!(
            healthy_since(&checks, t0),
            Some(t0 + Duration::from_millis(200))
        );
        assert_eq!(
            healthy_since(&checks, t0 + Duration::from_millis(250)),
            Some(t0 + Duration::from_millis(300))
        );
        let failing = [probe(t0, 0, true), probe(t0, 100, false)];
        assert_eq!(healthy_since(&failing, t0), None);
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&mut v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(quantile(&mut v, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&mut v, 1.0), Some(Duration::from_millis(100)));
        assert_eq!(quantile(&mut [], 0.99), None);
    }

    #[tokio::test]
    async fn commands_pass_on_exit_zero() {
        let http = client();
        assert!(Check::Command("true".into()).once(&http).await.ok);
        assert!(!Check::Command("exit 3".into()).once(&http).await.ok);
        let nowhere: reqwest::Url = "http://127.0.0.1:9/".parse().unwrap();
        assert!(!Check::Url(nowhere).once(&http).await.ok);
    }
}
