//! What a round's outcomes do: the files of each changed group written
//! together; renewals recorded; failures scheduled for a
//! retry and said once per cause; and the notices (`on_change` actions, the
//! `exec` child) given once, after all files are written.

use std::time::Duration;

use tokio::time::Instant;

use super::schedule::{self, Step};
use super::{Engine, Group};
use crate::config::Action;
use crate::cycle;
use crate::render::Rendered;
use crate::secret::{Fetched, Lease};

impl Engine {
    /// `` `a`, `b` `` for the secrets at these indices.
    pub(super) fn names(&self, members: &[usize]) -> String {
        let names: Vec<&str> = members
            .iter()
            .map(|&i| self.config.secrets[i].name.as_str())
            .collect();
        cycle::names(&names)
    }

    /// Writes the files of `members` that differ from what was written last,
    /// all together; returns the secrets whose files changed (without an
    /// output directory, whose value changed: the change for `on_change`
    /// and the child).
    pub(super) fn write(
        &self,
        members: &[usize],
        rendered: &[Vec<Rendered>],
    ) -> crate::output::Result<Vec<usize>> {
        // The same files as last time need no look at the disk: the watch
        // catches files changed behind our back.
        let (fresh, files): (Vec<usize>, Vec<&Vec<Rendered>>) = members
            .iter()
            .zip(rendered)
            .filter(|(&i, files)| **files != self.rendered[i])
            .map(|(&i, files)| (i, files))
            .unzip();
        let Some(dir) = &self.dir else {
            return Ok(fresh);
        };
        let wrote = dir.write_all(files.iter().copied().flatten())?;
        Ok(fresh
            .into_iter()
            .zip(wrote.per_set(files.iter().map(|f| f.len())))
            .filter_map(|(i, changed)| changed.then_some(i))
            .collect())
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
        let members = self.groups[g].members.clone();
        for (&i, files) in members.iter().zip(rendered) {
            let secret = &self.config.secrets[i];
            if changed.contains(&i) && self.dir.is_some() {
                tracing::info!(secret = %secret.name, version = %fetched.version.as_deref().unwrap_or("none"), "secret changed; files written");
                self.metrics.wrote(&secret.name);
            } else if changed.contains(&i) {
                tracing::info!(secret = %secret.name, version = fetched.version.as_deref().unwrap_or("none"), "secret changed");
            }
            self.held.put(&secret.name, &fetched);
            self.metrics.success(&secret.name);
            self.rendered[i] = files;
        }
        let mut group = std::mem::replace(&mut self.groups[g], Group::new(Vec::new()));
        group.fetched = Some(fetched);
        group.at = Instant::now();
        group.failures = 0;
        self.schedule(&mut group);
        self.groups[g] = group;
    }

    pub(super) fn renewed(&mut self, g: usize, lease: Lease) {
        let mut group = std::mem::replace(&mut self.groups[g], Group::new(Vec::new()));
        let asked = group
            .fetched
            .as_ref()
            .and_then(|f| f.lease.as_ref())
            .map_or(lease.duration, |l| l.duration);
        // Less than asked: the max TTL is near, so read new credentials next time.
        let capped = lease.duration < asked.mul_f64(0.9) || !lease.renewable;
        tracing::info!(secrets = %self.names(&group.members), ttl_s = lease.duration.as_secs(), capped, "lease renewed");
        if let Some(f) = group.fetched.as_mut() {
            f.lease = Some(lease);
        }
        group.at = Instant::now();
        group.failures = 0;
        for &i in &group.members {
            self.metrics.renewed(&self.config.secrets[i].name);
            self.metrics.success(&self.config.secrets[i].name);
        }
        self.schedule(&mut group);
        if capped && group.step == Step::Renew {
            group.step = Step::Fetch;
        }
        self.groups[g] = group;
    }

    /// Records a failure of group `g` and schedules its retry.
    /// Groups that fail for one cause in a round are retried together (one
    /// wait per cause in `waits`), so that their next failure is said once too.
    pub(super) fn failed(
        &mut self,
        g: usize,
        errors: Vec<(usize, String)>,
        waits: &mut Vec<(String, Duration)>,
    ) -> Failure {
        let failures = self.groups[g].failures + 1;
        let left = self.groups[g]
            .expiry()
            .map(|end| end.saturating_duration_since(Instant::now()));
        let cause = &errors[0].1;
        let wait = match waits.iter().find(|(c, _)| c == cause) {
            Some((_, w)) => *w,
            None => {
                let group = &self.groups[g];
                let w = match left {
                    Some(_) => self.backoff.wait(failures),
                    None => schedule::poll_retry(
                        failures,
                        self.interval(group),
                        self.fetcher.sources()[self.source_of(group)].pace().stretch,
                        self.draws.get(self.source_of(group)),
                    ),
                };
                waits.push((cause.clone(), w));
                w
            }
        };
        let retry = schedule::retry_in(wait, left);
        if let Some(left) = left {
            let life = self.groups[g]
                .fetched
                .as_ref()
                .and_then(|f| f.lease.as_ref().map(|l| l.duration))
                .unwrap_or(left);
            if schedule::about_to_expire(left, life) {
                tracing::error!(secrets = %self.names(&self.groups[g].members), expires_in_s = left.as_secs(), error = %errors[0].1, "lease or certificate about to expire and the backend is still failing");
            }
        }
        let group = &mut self.groups[g];
        group.failures = failures;
        group.due = Instant::now() + retry;
        for &i in &group.members {
            self.metrics.error(&self.config.secrets[i].name);
        }
        Failure {
            failures,
            retry,
            errors,
        }
    }

    /// Logs the failures of a round, one line per cause.
    pub(super) fn log_failures(&self, failures: Vec<Failure>) {
        let all = failures.iter().flat_map(|f| {
            f.errors.iter().map(move |(i, message)| {
                (
                    self.config.secrets[*i].name.as_str(),
                    Said { message, of: f },
                )
            })
        });
        for cause in cycle::by_cause(all) {
            tracing::warn!(
                secrets = %cycle::names(&cause.secrets),
                failures = cause.first.of.failures,
                retry_in_ms = cause.first.of.retry.as_millis() as u64,
                error = %cause.message,
                "refresh failed; files left as they are"
            );
        }
    }

    /// Runs the `on_change` actions of changed secrets and templates, each
    /// distinct action once, then tells the child.
    pub(super) async fn notify(&self, changed: &[usize], templates: &[usize]) {
        let secrets = changed.iter().map(|&i| {
            let s = &self.config.secrets[i];
            (s.name.as_str(), &s.on_change)
        });
        let templates = templates.iter().map(|&i| {
            let t = &self.config.templates[i];
            (t.file.as_str(), &t.on_change)
        });
        let mut done: Vec<&Action> = Vec::new();
        let mut any = false;
        for (name, actions) in secrets.chain(templates) {
            any = true;
            let fresh: Vec<Action> = actions
                .iter()
                .filter(|a| !done.contains(a))
                .cloned()
                .collect();
            done.extend(actions);
            crate::notify::run(name, &fresh, &self.http, &self.metrics).await;
        }
        if let (Some(tx), true) = (&self.changes, any) {
            let _ = tx.send(());
        }
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
