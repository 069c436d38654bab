//! The engine's life around its rounds: writing back files changed behind its
//! back, and shutting down (revoke, clear the hand-off state, wipe).

use super::Engine;
use crate::engine::handoff::State;
use crate::render::format::Rendered;

impl Engine {
    /// Writes the files of these secrets that differ from disk, each
    /// secret's files together; returns the secrets whose files changed. A
    /// secret that cannot be written is logged and skipped.
    pub(super) fn write_back<'a>(
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
                    let name = &self.plan.config.secrets[i].name;
                    tracing::warn!(secret = %name, error = %e, "cannot write");
                    self.metrics.write_error(name);
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
            tracing::warn!(secret = %self.plan.config.secrets[i].name, "a file was deleted or altered outside ramsecrets; written back");
        }
        self.restore_templates();
    }

    /// On shutdown: revokes what the sources with `revoke_on_exit` hold
    /// (their leases, and a Vault token they logged in for) and removes the
    /// files where `wipe_on_exit` is set.
    pub async fn shutdown(self) {
        let mut revoked = false;
        let sources = &self.plan.config.sources;
        for (source, s) in sources.iter().enumerate() {
            if !s.revoke_on_exit() {
                continue;
            }
            let held: Vec<_> = self
                .plan
                .groups
                .iter()
                .filter(|g| self.plan.config.secrets[g.members[0]].source == source)
                .filter_map(|g| Some((g, g.fetched.as_ref()?.lease.as_ref()?)))
                .collect();
            let leases: Vec<_> = held.iter().map(|(_, lease)| *lease).collect();
            let results = self.fetcher.sources()[source].revoke(&leases).await;
            for ((group, _), result) in held.iter().zip(results) {
                let secrets = self.names(&group.members);
                match result {
                    Ok(()) => {
                        revoked = true;
                        tracing::info!(secrets = %secrets, "lease revoked")
                    }
                    Err(e) => {
                        tracing::warn!(secrets = %secrets, error = %e, "cannot revoke lease")
                    }
                }
            }
        }
        // A sidecar that starts after this one must not adopt a revoked lease.
        if let (Some(dir), true) = (&self.state_dir, revoked) {
            if let Err(e) = State::clear(dir) {
                tracing::warn!(error = %e, "cannot remove the hand-off state");
            }
        }
        let wipe = self
            .plan
            .config
            .output
            .as_ref()
            .is_some_and(|o| o.wipe_on_exit);
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
