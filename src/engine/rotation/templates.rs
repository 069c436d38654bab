//! The engine's templates: rendered again when a secret they read was
//! fetched, written when their bytes changed, written back when altered.

use super::Engine;
use crate::render::format::Rendered;
use crate::secret::Fetched;

impl Engine {
    /// What the group holding secret `i` fetched last.
    fn fetched_of(&self, i: usize) -> Option<&Fetched> {
        self.plan
            .groups
            .iter()
            .find(|g| g.members.contains(&i))
            .and_then(|g| g.fetched.as_deref())
    }

    /// Renders the templates that read a secret of `fresh` (every template
    /// when `None`) and writes those whose bytes changed; returns their indices.
    pub(super) fn write_templates(&mut self, fresh: Option<&[usize]>) -> Vec<usize> {
        let rendered = self
            .templates
            .render(&self.plan.config, fresh, |i| self.fetched_of(i));
        let mut changed = Vec::new();
        for (i, r) in rendered {
            match self.write_template(&r) {
                Ok(wrote) => {
                    if wrote {
                        tracing::info!(template = %r.file, "template changed; file written");
                        changed.push(i);
                    }
                    self.templates.keep(i, r);
                }
                Err(e) => tracing::warn!(template = %r.file, error = %e, "cannot write"),
            }
        }
        changed
    }

    /// Writes one template's file when it differs from disk; true when it did
    /// (a config without an output directory has no templates).
    fn write_template(&self, r: &Rendered) -> crate::output::Result<bool> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        dir.write_all([r]).map(|w| w.any())
    }

    /// Writes back template files that were deleted or altered outside ramsecrets.
    pub(super) fn restore_templates(&self) {
        for r in self.templates.files() {
            match self.write_template(r) {
                Ok(true) => {
                    tracing::warn!(template = %r.file, "a file was deleted or altered outside ramsecrets; written back")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(template = %r.file, error = %e, "cannot write back a file")
                }
            }
        }
    }
}
