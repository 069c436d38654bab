//! The drill's report: the timeline (rotation started → backend written →
//! file changed → action delivered → app healthy), the lag against the
//! refresh interval, the app's checks and load, and the verdict, as text or
//! JSON. It holds names, times, versions, lease ids and serials: never a value.

use std::fmt::Write as _;

use serde::Serialize;

/// Exit code of a drill the app did not survive.
pub const FAILED: u8 = 1;
/// Exit code of a drill that nothing checked the app in (no `--check-url`,
/// `--check` or `--load`): the files changed, but whether the app works with
/// the new value is unknown.
pub const NOT_VERIFIED: u8 = 2;
/// Exit code of a drill stopped by SIGINT or SIGTERM (after restoring).
pub const INTERRUPTED: u8 = 130;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The secret drilled.
    pub secret: String,
    /// Its kind, e.g. `kv`.
    pub kind: &'static str,
    /// Its source's name.
    pub source: String,
    /// Wall-clock time of the rotation's start (RFC 3339).
    pub started: String,
    /// What was rotated.
    pub rotation: Rotation,
    /// Events in time order, in milliseconds from the rotation's start.
    pub timeline: Vec<Event>,
    /// How long the sidecar took, against its refresh interval.
    pub lag: Option<Lag>,
    /// The app's health checks.
    pub checks: Option<Checks>,
    /// The load driven at the app.
    pub load: Option<Load>,
    /// Where the sidecar's metrics were read, when they were.
    pub sidecar_metrics: Option<String>,
    /// `--deadline`, ms.
    pub deadline_ms: u64,
    /// `--settle`, ms.
    pub settle_ms: u64,
    /// `--max-failures`.
    pub max_failures: u64,
    /// Whether the files changed and the app (when checked) became and stayed healthy.
    pub recovered: bool,
    /// Whether a check or load looked at the app; without, the drill is not verified.
    pub verified: bool,
    /// What `--restore` (or an interrupted drill) put back.
    pub restored: Option<String>,
    /// Whether SIGINT or SIGTERM cut the drill short.
    pub interrupted: bool,
    /// Whether the drill passed.
    pub passed: bool,
    /// Why it did not.
    pub reasons: Vec<String>,
    /// The exit code.
    pub exit_code: u8,
}

/// What was rotated.
#[derive(Debug, Serialize)]
pub struct Rotation {
    /// What was done, e.g. `kv write`.
    pub action: &'static str,
    /// The version, lease id or serial before.
    pub from: Option<String>,
    /// The version after, when there is one.
    pub to: Option<String>,
    /// The fields given new values.
    pub fields: Vec<String>,
}

/// One point of the timeline.
#[derive(Debug, Serialize, PartialEq)]
pub struct Event {
    /// `rotation started`, `backend written`, `file changed`, `action delivered`, `app healthy`, …
    pub event: String,
    /// Milliseconds from the rotation's start.
    pub at_ms: f64,
    /// More about it: the file, the number of actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The sidecar's lag: from the backend write to the file change.
#[derive(Debug, Serialize)]
pub struct Lag {
    /// Milliseconds from the backend write to the file change.
    pub ms: f64,
    /// The secret's refresh interval.
    pub refresh_interval_ms: u64,
    /// The interval plus its 10% jitter.
    pub bound_ms: u64,
    /// Whether the lag was within the bound.
    pub within_bound: bool,
    /// Refreshes the sidecar completed after the write up to the one that
    /// wrote the change (1: the next refresh; 2: one was already running).
    pub sidecar_refreshes: Option<u32>,
    /// Time between that refresh and the one before it, by the sidecar's own
    /// clock: its real interval under the load of the moment.
    pub sidecar_gap_ms: Option<f64>,
}

/// The app's health checks.
#[derive(Debug, Serialize)]
pub struct Checks {
    /// `url URL` or `command`.
    pub how: String,
    /// Checks after the rotation started.
    pub sent: usize,
    /// Of which failed.
    pub failed: usize,
}

/// The load driven at the app during the window.
#[derive(Debug, Serialize)]
pub struct Load {
    /// The URL (without credentials).
    pub url: String,
    /// Requests a second asked.
    pub rps: u32,
    /// Requests sent.
    pub sent: usize,
    /// Requests that failed (not 2xx, refused, or timed out).
    pub failed: usize,
    /// Median latency.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency.
    pub p99_ms: Option<f64>,
    /// Slowest request.
    pub max_ms: Option<f64>,
}

/// Milliseconds, to a tenth.
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

impl Report {
    /// Works out the verdict and exit code from what was measured.
    pub fn judge(&mut self) {
        if self.interrupted {
            self.reasons.push("interrupted".into());
        }
        if !self.recovered {
            self.reasons.push(format!(
                "the app did not recover within the deadline ({} ms)",
                self.deadline_ms
            ));
        }
        let failed = self.load.as_ref().map_or(0, |l| l.failed as u64);
        if failed > self.max_failures {
            self.reasons.push(format!(
                "{failed} request(s) failed, more than --max-failures {}",
                self.max_failures
            ));
        }
        let clean = self.reasons.is_empty();
        self.passed = clean && self.verified;
        self.exit_code = match (self.interrupted, clean, self.verified) {
            (true, ..) => INTERRUPTED,
            (false, false, _) => FAILED,
            (false, true, false) => NOT_VERIFIED,
            (false, true, true) => 0,
        };
    }

    /// The report as JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "ramsecrets drill: secret `{}` ({}, source {})",
            self.secret, self.kind, self.source
        );
        let r = &self.rotation;
        let _ = write!(t, "rotation: {}", r.action);
        match (&r.from, &r.to) {
            (Some(f), Some(to)) => {
                let _ = write!(t, ", {f} -> {to}");
            }
            (Some(f), None) => {
                let _ = write!(t, ", {f}");
            }
            _ => {}
        }
        if !r.fields.is_empty() {
            let _ = write!(t, " (new values for: {})", r.fields.join(", "));
        }
        let _ = writeln!(t);
        let _ = writeln!(t, "timeline (0 = {}):", self.started);
        for e in &self.timeline {
            let _ = write!(t, "  {:>9.1} ms  {}", e.at_ms, e.event);
            if let Some(d) = &e.detail {
                let _ = write!(t, " ({d})");
            }
            let _ = writeln!(t);
        }
        if let Some(l) = &self.lag {
            let _ = write!(
                t,
                "lag: {:.1} ms from the write to the file; refresh interval {} ms, with jitter {} ms: {}",
                l.ms,
                l.refresh_interval_ms,
                l.bound_ms,
                if l.within_bound { "within" } else { "over" }
            );
            if let (Some(n), Some(gap)) = (l.sidecar_refreshes, l.sidecar_gap_ms) {
                let _ = write!(
                    t,
                    "; sidecar refreshes until the change: {n}, last gap {gap:.1} ms"
                );
            }
            let _ = writeln!(t);
        }
        if let Some(c) = &self.checks {
            let _ = writeln!(t, "app: {} checks ({}), {} failed", c.sent, c.how, c.failed);
        }
        if let Some(l) = &self.load {
            let q = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
            let _ = writeln!(
                t,
                "load: {} requests at {}/s to {}, {} failed; p50 {}, p99 {}, max {}",
                l.sent,
                l.rps,
                l.url,
                l.failed,
                q(l.p50_ms),
                q(l.p99_ms),
                q(l.max_ms)
            );
        }
        if let Some(m) = &self.sidecar_metrics {
            let _ = writeln!(t, "sidecar metrics: {m}");
        }
        if let Some(r) = &self.restored {
            let _ = writeln!(t, "restored: {r}");
        }
        if self.passed {
            let _ = writeln!(t, "result: PASSED");
        } else if self.exit_code == NOT_VERIFIED {
            let _ = writeln!(t, "result: NOT VERIFIED: the files changed, but no --check-url, --check or --load looked at the app");
        } else {
            let _ = writeln!(t, "result: FAILED: {}", self.reasons.join("; "));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            secret: "db".into(),
            kind: "kv",
            source: "vault".into(),
            started: "2026-11-29T10:00:00.000Z".into(),
            rotation: Rotation {
                action: "kv write",
                from: Some("3".into()),
                to: Some("4".into()),
                fields: vec!["password".into()],
            },
            timeline: vec![
                Event {
                    event: "rotation started".into(),
                    at_ms: 0.0,
                    detail: None,
                },
                Event {
                    event: "file changed".into(),
                    at_ms: 1500.0,
                    detail: Some("db.json".into()),
                },
            ],
            lag: Some(Lag {
                ms: 1490.0,
                refresh_interval_ms: 2000,
                bound_ms: 2200,
                within_bound: true,
                sidecar_refreshes: Some(1),
                sidecar_gap_ms: Some(2010.0),
            }),
            checks: None,
            load: Some(Load {
                url: "http://127.0.0.1:8080/healthz".into(),
                rps: 50,
                sent: 100,
                failed: 0,
                p50_ms: Some(1.0),
                p99_ms: Some(3.0),
                max_ms: Some(4.0),
            }),
            sidecar_metrics: None,
            deadline_ms: 60_000,
            settle_ms: 3000,
            max_failures: 0,
            recovered: true,
            verified: true,
            restored: None,
            interrupted: false,
            passed: false,
            reasons: Vec::new(),
            exit_code: 0,
        }
    }

    #[test]
    fn verdicts_and_exit_codes() {
        let mut r = report();
        r.judge();
        assert!(r.passed);
        assert_eq!(r.exit_code, 0);
        let mut r = report();
        r.load.as_mut().unwrap().failed = 2;
        r.judge();
        assert_eq!(r.exit_code, FAILED);
        assert!(
            r.reasons[0].contains("2 request(s) failed"),
            "{:?}",
            r.reasons
        );
        let mut r = report();
        r.recovered = false;
        r.judge();
        assert_eq!(r.exit_code, FAILED);
        let mut r = report();
        r.interrupted = true;
        r.judge();
        assert_eq!(r.exit_code, INTERRUPTED);
    }

    #[test]
    fn a_drill_without_an_app_check_is_never_passed() {
        let mut r = report();
        r.verified = false;
        r.judge();
        assert!(!r.passed);
        assert_eq!(r.exit_code, NOT_VERIFIED);
        assert!(r.text().contains("result: NOT VERIFIED"), "{}", r.text());
        let mut r = report();
        r.verified = false;
        r.recovered = false;
        r.judge();
        assert_eq!(r.exit_code, FAILED);
    }

    #[test]
    fn text_and_json_carry_the_timeline() {
        let mut r = report();
        r.judge();
        let text = r.text();
        assert!(text.contains("1500.0 ms  file changed (db.json)"), "{text}");
        assert!(text.contains("result: PASSED"), "{text}");
        assert!(text.contains("3 -> 4"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["timeline"][1]["event"], "file changed");
        assert_eq!(v["lag"]["within_bound"], true);
        assert_eq!(v["exit_code"], 0);
    }
}
