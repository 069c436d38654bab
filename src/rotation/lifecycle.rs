//! The engine's life around its rounds: writing back files changed behind its
//! back, taking over a reloaded config, and shutting down (revoke, wipe).

use std::sync::Arc;

use tokio::time::Instant;

use super::{Engine, Group};
use crate::config::{Address, Config};
use crate::fetch;
use crate::render::Rendered;
use crate::source;

impl Engine {
    /// Writes the files of these secrets that differ from disk, each
    /// secret's files together; returns the secrets whose files changed. A
    /// secret that cannot be written is logged and skipped.
    fn write_back<'a>(
        &self,
        files: impl IntoIterator<Item = (usize, &'a [Rendered])>,
    ) -> Vec<usize> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for (i, rendered) in files {
            match dir.write_all(rendered) {
                Ok(wrote) if wrote.any() => changed.push(i),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(secret = %self.config.secrets[i].name, error = %e, "cannot write")
                }
            }
        }
        changed
    }

    /// Writes back files that were deleted or altered outside ramsecrets.
    pub(super) fn restore(&self) {
        let files = self
            .rendered
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.as_slice()));
        for i in self.write_back(files) {
            tracing::warn!(secret = %self.config.secrets[i].name, "a file was deleted or altered outside ramsecrets; written back");
        }
        self.restore_templates();
    }

    /// Takes over a new configuration: sources are kept when unchanged, and
    /// so is what every address still read from the same source holds (its
    /// secrets re-rendered with the new settings, its polls rescheduled at
    /// the new intervals); new addresses are fetched now.
    pub async fn reload(mut self, config: Arc<Config>) -> Engine {
        // Their groups are numbered anew: the proxy serves what it holds.
        for (_, done) in self.waiting.drain(..) {
            let _ = done.send(super::Refreshed::Unknown);
        }
        let same_sources = format!("{:?}", self.config.sources) == format!("{:?}", config.sources);
        if !same_sources {
            match source::build(&config) {
                Ok(s) => {
                    self.token_due = vec![Instant::now(); s.len()];
                    self.fetcher.replace(&config, s);
                }
                Err(e) => {
                    tracing::error!(error = %e, "new config refused: its sources cannot be built; keeping the old one");
                    return self;
                }
            }
        }
        let key = |c: &Config, i: usize| {
            let s = &c.secrets[i];
            (c.sources[s.source].name.clone(), s.address.clone())
        };
        let mut old: Vec<((String, Address), Group)> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|g| (key(&self.config, g.members[0]), g))
            .collect();
        let mut old_rendered: Vec<(String, Vec<Rendered>)> = std::mem::take(&mut self.rendered)
            .into_iter()
            .zip(&self.config.secrets)
            .map(|(r, s)| (s.name.clone(), r))
            .collect();
        self.config = config.clone();
        self.held = self
            .held
            .reconfigured(config.clone(), self.fetcher.sources().to_vec());
        self.metrics.declare(&config);
        self.rendered = config
            .secrets
            .iter()
            .map(|s| {
                old_rendered
                    .iter()
                    .position(|(n, _)| *n == s.name)
                    .map(|p| old_rendered.swap_remove(p).1)
                    .unwrap_or_default()
            })
            .collect();
        let mut fresh = Vec::new();
        for members in fetch::groups(&config) {
            let k = key(&config, members[0]);
            let kept = old
                .iter()
                .position(|(o, _)| same_sources && *o == k)
                .map(|p| old.swap_remove(p).1);
            let mut group = Group::new(members);
            if let Some(kept) = kept {
                group.fetched = kept.fetched;
                group.at = kept.at;
                group.failures = kept.failures;
                group.due = kept.due;
                group.step = kept.step;
            }
            if let Some(f) = &group.fetched {
                match fetch::render_group(&config, &group.members, f) {
                    Ok(files) => {
                        for (&i, files) in group.members.iter().zip(files) {
                            fresh.push((i, files));
                        }
                        // A poll planned at the old interval follows the new one.
                        if group.failures == 0 {
                            self.schedule(&mut group);
                        }
                    }
                    Err(failed) => {
                        for (i, e) in failed {
                            tracing::warn!(secret = %config.secrets[i].name, error = %e, "cannot render with the new config");
                        }
                        group.due = Instant::now();
                    }
                }
            }
            self.groups.push(group);
        }
        let changed = self.write_back(fresh.iter().map(|(i, f)| (*i, f.as_slice())));
        for (i, files) in fresh {
            self.rendered[i] = files;
        }
        self.templates.reload(&self.config.templates);
        let templates = self.write_templates(None);
        tracing::info!(secrets = self.config.secrets.len(), "config reloaded");
        self.publish();
        self.notify(&changed, &templates).await;
        self
    }

    /// On shutdown: revokes leases where `revoke_on_exit` is set and removes
    /// the files where `wipe_on_exit` is set.
    pub async fn shutdown(self) {
        for group in &self.groups {
            let Some(lease) = group.fetched.as_ref().and_then(|f| f.lease.as_ref()) else {
                continue;
            };
            let source = self.config.secrets[group.members[0]].source;
            if self.config.sources[source].revoke_on_exit() {
                let secrets = self.names(&group.members);
                match self.fetcher.sources()[source].revoke(lease).await {
                    Ok(()) => tracing::info!(secrets = %secrets, "lease revoked"),
                    Err(e) => {
                        tracing::warn!(secrets = %secrets, error = %e, "cannot revoke lease")
                    }
                }
            }
        }
        let wipe = self.config.output.as_ref().is_some_and(|o| o.wipe_on_exit);
        if let (Some(dir), true) = (&self.dir, wipe) {
            let files: Vec<&str> = self
                .rendered
                .iter()
                .flatten()
                .chain(self.templates.files())
                .map(|r| r.file.as_str())
                .collect();
            for file in &files {
                if let Err(e) = dir.remove(file) {
                    tracing::warn!(error = %e, "cannot remove file");
                }
            }
            // The subdirectories the files needed, once empty.
            for file in &files {
                dir.prune(file);
            }
            tracing::info!("files wiped");
        }
    }
}
