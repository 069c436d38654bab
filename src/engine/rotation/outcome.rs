//! What a round's outcomes do besides the files: new values and renewals
//! recorded (in the plan, the snapshot and the metrics), revoked leases read
//! anew, failures scheduled for a retry and said once per cause.

use std::sync::Arc;
use std::time::Duration;

use super::plan::Waits;
use super::schedule::{Now, Step};
use super::Engine;
use crate::engine::cycle;
use crate::engine::fetch::SecretError;
use crate::render::format::Rendered;
use crate::secret::{Fetched, Lease};
use crate::telemetry::metrics::Metrics;

/// What a round gathers from its outcomes for its end.
#[derive(Default)]
pub(super) struct Round {
    /// The secrets fetched (whose templates are rendered again).
    pub(super) fresh: Vec<usize>,
    /// The secrets whose files (or, without files, values) changed.
    pub(super) changed: Vec<usize>,
    /// The failed groups, to be said once per cause.
    pub(super) failures: Vec<Failure>,
    /// The wait chosen for each cause.
    pub(super) waits: Waits,
}

impl Engine {
    /// `` `a`, `b` `` for the secrets at these indices.
    pub(super) fn names(&self, members: &[usize]) -> String {
        let names: Vec<&str> = members
            .iter()
            .map(|&i| self.plan.config.secrets[i].name.as_str())
            .collect();
        cycle::names(&names)
    }

    /// Records the new value of group `g` whose files are written (`changed`:
    /// the secrets among them whose files changed) and schedules it.
    pub(super) fn written(
        &mut self,
        g: usize,
        fetched: Fetched,
        rendered: Vec<Vec<Rendered>>,
        changed: &[usize],
    ) {
        let members = self.plan.groups[g].members.clone();
        let fetched = Arc::new(fetched);
        for (&i, files) in members.iter().zip(rendered) {
            let secret = &self.plan.config.secrets[i];
            let version = fetched.version.as_deref().unwrap_or("none");
            if changed.contains(&i) && self.dir.is_some() {
                tracing::info!(secret = %secret.name, version = %version, "secret changed; files written");
                self.metrics.wrote(&secret.name);
            } else if changed.contains(&i) {
                tracing::info!(secret = %secret.name, version = version, "secret changed");
            }
            Arc::make_mut(&mut self.held).put(i, &fetched);
            self.metrics.success(&secret.name);
            self.rendered[i] = files;
        }
        self.plan
            .fetched(g, fetched, &self.fetcher.paces(), Now::read());
        self.record(g);
    }

    /// Records whether group `g`'s lease or certificate still holds (if not,
    /// it is read anew).
    pub(super) fn revalidated(&mut self, g: usize, good: bool) {
        if !good {
            tracing::info!(secrets = %self.names(&self.plan.groups[g].members), "revoked in the backend; reading anew");
        }
        self.plan
            .revalidated(g, good, &self.fetcher.paces(), Now::read());
        self.record(g);
    }

    /// Records a failed step of group `g`; a lease that cannot be renewed or
    /// checked for good (not a retryable failure) is read anew.
    pub(super) fn step_failed(
        &mut self,
        g: usize,
        errors: Vec<(usize, SecretError)>,
        waits: &mut Waits,
    ) -> Failure {
        let renewing = self.plan.groups[g].step != Step::Fetch;
        let retryable = errors
            .iter()
            .all(|(_, e)| matches!(e, SecretError::Source(s) if s.retryable()));
        if renewing && !retryable {
            tracing::info!(secrets = %self.names(&self.plan.groups[g].members), error = %errors[0].1, "lease cannot be renewed; reading new credentials");
            self.plan.read_anew(g, None);
        }
        self.failed(g, errors, waits)
    }

    /// Records a renewal of group `g`'s lease.
    pub(super) fn renewed(&mut self, g: usize, lease: Lease) {
        let ttl_s = lease.duration.as_secs();
        let capped = self
            .plan
            .renewed(g, lease, &self.fetcher.paces(), Now::read());
        let members = &self.plan.groups[g].members;
        tracing::info!(secrets = %self.names(members), ttl_s, capped, "lease renewed");
        for &i in members {
            self.metrics.renewed(&self.plan.config.secrets[i].name);
            self.metrics.success(&self.plan.config.secrets[i].name);
        }
        self.record(g);
    }

    /// Records a failure of group `g` and schedules its retry (the same
    /// wait for every group that failed for one cause in this round).
    pub(super) fn failed(
        &mut self,
        g: usize,
        errors: Vec<(usize, SecretError)>,
        waits: &mut Waits,
    ) -> Failure {
        for (i, e) in &errors {
            count(&self.metrics, &self.plan.config.secrets[*i].name, e);
        }
        let errors: Vec<(usize, String)> = errors
            .into_iter()
            .map(|(i, e)| (i, e.to_string()))
            .collect();
        let paces = self.fetcher.paces();
        let retry = self
            .plan
            .failed(g, &errors[0].1, waits, &paces, Now::read());
        let members = &self.plan.groups[g].members;
        if let Some(left) = retry.expiring {
            tracing::error!(secrets = %self.names(members), expires_in_s = left.as_secs(), error = %errors[0].1, "lease or certificate about to expire and the backend is still failing");
        }
        Failure {
            failures: retry.failures,
            retry: retry.retry,
            errors,
        }
    }

    /// Logs the failures of a round, one line per cause.
    pub(super) fn log_failures(&self, failures: Vec<Failure>) {
        let all = failures.iter().flat_map(|f| {
            f.errors.iter().map(move |(i, message)| {
                (
                    self.plan.config.secrets[*i].name.as_str(),
                    Said { message, of: f },
                )
            })
        });
        let kept = match self.dir {
            Some(_) => "files left as they are",
            None => "the values held are kept",
        };
        for cause in cycle::by_cause(all) {
            tracing::warn!(
                secrets = %cycle::names(&cause.secrets),
                failures = cause.first.of.failures,
                retry_in_ms = cause.first.of.retry.as_millis() as u64,
                error = %cause.message,
                "refresh failed; {kept}"
            );
        }
    }
}

/// Counts a failure of secret `name` where it belongs: a fetch error, or a
/// write error of the output directory (the backend answered).
fn count(metrics: &Metrics, name: &str, e: &SecretError) {
    if e.is_fetch() {
        metrics.error(name);
    } else {
        metrics.write_error(name);
    }
}

/// One failure message of a group, for [`cycle::by_cause`].
struct Said<'a> {
    message: &'a str,
    of: &'a Failure,
}

impl std::fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}

/// One failed group of a round, for the log.
pub(super) struct Failure {
    failures: u32,
    retry: Duration,
    /// `(secret index, message)`.
    errors: Vec<(usize, String)>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::exit::{Exit, ExitCode};
    use crate::{output, source};

    fn full_disk() -> SecretError {
        SecretError::Output(Arc::new(output::Error::Write {
            dir: "/run/secrets".into(),
            file: "db".into(),
            source: std::io::Error::from_raw_os_error(28),
        }))
    }

    #[test]
    fn a_write_failure_is_an_output_error_not_a_fetch_error() {
        let write = full_disk();
        assert!(!write.is_fetch());
        assert_eq!(write.exit(), Exit::CantCreate);
        let shown = write.to_string();
        assert!(
            shown.starts_with("cannot write db in /run/secrets: "),
            "{shown}"
        );
        assert!(!shown.contains("bad data"), "{shown}");
        let fetch = SecretError::Source(source::Error::unavailable("kv `secret/db`"));
        assert!(fetch.is_fetch());

        let metrics = Metrics::new(false);
        count(&metrics, "db", &write);
        let text = metrics.render();
        assert!(
            text.contains("ramsecrets_secret_write_errors_total{secret=\"db\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("ramsecrets_secret_fetch_errors_total{secret=\"db\"} 1"),
            "{text}"
        );
        count(&metrics, "db", &fetch);
        let text = metrics.render();
        assert!(
            text.contains("ramsecrets_secret_fetch_errors_total{secret=\"db\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ramsecrets_secret_write_errors_total{secret=\"db\"} 1"),
            "{text}"
        );
    }
}
