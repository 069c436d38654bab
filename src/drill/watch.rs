//! What the drill watches on the sidecar's side: the secret's output files
//! (through the one watcher, [`crate::os::watch::Files`], each change timed
//! as it is reported; a change is a new file stamp, so no file is ever read), and the
//! sidecar's `/metrics`, sampled every [`SAMPLE_EVERY`]: its on_change
//! actions, its refreshes, and the version and lease it holds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::os::watch;
use crate::source::rotator::Held;

/// How often the sidecar's metrics are read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A watch on a secret's files; changes are recorded until it is dropped.
pub struct Files {
    _files: watch::Files,
    changes: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Files {
    /// Watches `files` (relative to `dir`) from now on.
    pub fn start(dir: &Path, files: &[String]) -> notify::Result<Files> {
        let dir = std::fs::canonicalize(dir)?;
        let watched: Vec<(PathBuf, String)> =
            files.iter().map(|f| (dir.join(f), f.clone())).collect();
        let watched: Vec<(&Path, String)> = watched
            .iter()
            .map(|(p, f)| (p.as_path(), f.clone()))
            .collect();
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = changes.clone();
        let files = watch::Files::start(&watched, None, move |name: &String| {
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((name.clone(), Instant::now()));
        })?;
        Ok(Files {
            _files: files,
            changes,
        })
    }

    /// The first change at or after `since`: the file and when.
    pub fn first_since(&self, since: Instant) -> Option<(String, Instant)> {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(_, at)| *at >= since)
            .cloned()
    }
}

/// One read of the sidecar's metrics, for one secret.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// on_change actions run, ok and failed.
    pub actions: u64,
    /// on_change actions that failed.
    pub action_errors: u64,
    /// Unix time of the last successful refresh.
    pub last_success: Option<f64>,
    /// Times the files were written.
    pub writes: u64,
    /// What the secret holds.
    pub held: Held,
}

/// Reads one secret's figures out of Prometheus text.
pub fn parse(text: &str, secret: &str) -> Sample {
    let mut s = Sample::default();
    let ours = format!("secret=\"{secret}\"");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        if !labels.split(',').any(|l| l == ours) {
            continue;
        }
        let label = |key: &str| {
            labels.split(',').find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.strip_prefix("=\""))
                    .and_then(|v| v.strip_suffix('"'))
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            })
        };
        let number = value.trim().parse::<f64>().unwrap_or(0.0);
        match name {
            "ramsecrets_on_change_actions_total" => {
                s.actions += number as u64;
                if label("result").as_deref() == Some("error") {
                    s.action_errors += number as u64;
                }
            }
            "ramsecrets_secret_last_success_timestamp_seconds" => s.last_success = Some(number),
            "ramsecrets_secret_writes_total" => s.writes = number as u64,
            "ramsecrets_secret_version" if number > 0.0 => {
                s.held = Held {
                    version: label("version"),
                    lease: label("lease"),
                }
            }
            _ => {}
        }
    }
    s
}

/// Samples of the sidecar's metrics, taken until the token is cancelled.
#[derive(Clone)]
pub struct Sidecar {
    /// Where they are read.
    pub url: reqwest::Url,
    samples: Arc<Mutex<Vec<(Instant, Sample)>>>,
}

impl Sidecar {
    /// Starts sampling `url` for `secret`.
    pub fn start(url: reqwest::Url, secret: &str, stop: CancellationToken) -> Sidecar {
        let me = Sidecar {
            url,
            samples: Arc::new(Mutex::new(Vec::new())),
        };
        let (task, secret) = (me.clone(), secret.to_owned());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let got = http
                    .get(task.url.clone())
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                let Ok(resp) = got else { continue };
                if !resp.status().is_success() {
                    continue;
                }
                let Ok(text) = resp.text().await else {
                    continue;
                };
                let sample = parse(&text, &secret);
                task.lock().push((Instant::now(), sample));
            }
        });
        me
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, Sample)>> {
        self.samples.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<Sample> {
        self.lock().last().map(|(_, s)| s.clone())
    }

    /// Waits up to `limit` for a first sample.
    pub async fn first(&self, limit: Duration) -> Option<Sample> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(s) = self.latest() {
                return Some(s);
            }
            tokio::time::sleep(SAMPLE_EVERY / 2).await;
        }
        None
    }

    /// The last sample taken before `at`.
    pub fn before(&self, at: Instant) -> Option<Sample> {
        self.lock()
            .iter()
            .rev()
            .find(|(t, _)| *t < at)
            .map(|(_, s)| s.clone())
    }

    /// When `wanted` more actions than before `since` had run: the first sample showing them.
    pub fn actions_after(&self, since: Instant, wanted: u64) -> Option<(Instant, u64)> {
        let base = self.before(since).map_or(0, |s| s.actions);
        let base_errors = self.before(since).map_or(0, |s| s.action_errors);
        self.lock()
            .iter()
            .find(|(t, s)| *t >= since && s.actions >= base + wanted)
            .map(|(t, s)| (*t, s.action_errors - base_errors.min(s.action_errors)))
    }

    /// The sidecar's refreshes of the secret after `since` up to the first
    /// sample at or after `upto` that shows the files written: how many, and
    /// the gap between the last of them and the one before (seconds).
    pub fn refreshes(&self, since: Instant, upto: Instant) -> (u32, Option<f64>) {
        let samples = self.lock();
        let base = samples
            .iter()
            .rev()
            .find(|(t, _)| *t < since)
            .map(|(_, s)| s.clone());
        let base_writes = base.as_ref().map_or(0, |s| s.writes);
        let mut seen: Vec<f64> = base.and_then(|s| s.last_success).into_iter().collect();
        let mut count = 0;
        for (t, s) in samples.iter().filter(|(t, _)| *t >= since) {
            if let Some(ls) = s.last_success {
                if seen.last() != Some(&ls) {
                    seen.push(ls);
                    count += 1;
                }
            }
            if *t >= upto && s.writes > base_writes {
                break;
            }
        }
        let gap = match seen.as_slice() {
            [.., a, b] => Some(b - a),
            _ => None,
        };
        (count, gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP ramsecrets_on_change_actions_total on_change actions run.
ramsecrets_on_change_actions_total{secret=\"db\",action=\"signal\",result=\"ok\"} 2
ramsecrets_on_change_actions_total{secret=\"db\",action=\"http\",result=\"error\"} 1
ramsecrets_on_change_actions_total{secret=\"other\",action=\"signal\",result=\"ok\"} 7
ramsecrets_secret_last_success_timestamp_seconds{secret=\"db\"} 1700000000.25
ramsecrets_secret_writes_total{secret=\"db\"} 3
ramsecrets_secret_version{secret=\"db\",version=\"\",lease=\"database/creds/app/x1\"} 1
";

    #[test]
    fn metrics_of_one_secret_are_read() {
        let s = parse(TEXT, "db");
        assert_eq!((s.actions, s.action_errors, s.writes), (3, 1, 3));
        assert_eq!(s.last_success, Some(1700000000.25));
        assert_eq!(s.held.lease.as_deref(), Some("database/creds/app/x1"));
        assert_eq!(s.held.version, None);
        assert_eq!(parse(TEXT, "other").actions, 7);
        assert_eq!(parse(TEXT, "none"), Sample::default());
    }

    #[test]
    fn refreshes_count_distinct_polls_until_the_write() {
        let side = Sidecar {
            url: "http://127.0.0.1:1/metrics".parse().unwrap(),
            samples: Arc::new(Mutex::new(Vec::new())),
        };
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let sample = |ls: f64, writes| Sample {
            last_success: Some(ls),
            writes,
            ..Sample::default()
        };
        *side.lock() = vec![
            (at(0), sample(100.0, 1)),
            (at(100), sample(100.0, 1)),
            (at(200), sample(101.0, 1)),
            (at(300), sample(102.0, 2)),
            (at(400), sample(103.0, 2)),
        ];
        let (count, gap) = side.refreshes(at(50), at(250));
        assert_eq!(count, 2);
        assert_eq!(gap, Some(1.0));
    }

    #[test]
    fn a_replaced_file_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "1").unwrap();
        let files = Files::start(dir.path(), &["f".to_owned()]).unwrap();
        let t0 = Instant::now();
        std::fs::write(dir.path().join("f.tmp"), "22").unwrap();
        std::fs::rename(dir.path().join("f.tmp"), dir.path().join("f")).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while files.first_since(t0).is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(files.first_since(t0).map(|(f, _)| f).as_deref(), Some("f"));
    }
}
