//! Taking over a reloaded config (a changed config file, or SIGHUP): the file
//! is read again and refused, keeping the running config, when it cannot be
//! read, is not the one pinned by `--config-sha256`, or adds or removes the
//! `output` section; the file watch follows the
//! new config's source and template files; the sources are kept when unchanged, and so is what each address still read
//! from the same source holds; its secrets are rendered again with the new
//! settings and their polls rescheduled, and new addresses are fetched in the
//! next round. The proxy hears of the new config by the snapshot published.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::plan::Group;
use super::schedule::Now;
use super::Engine;
use crate::config::{Address, Config, Pin};
use crate::engine::fetch;
use crate::os::watch::{self, Event, Watch};
use crate::render::format::Rendered;
use crate::source;

impl Engine {
    /// Reads the config file at `path` again and takes it over
    /// ([`Engine::reload`]), or says why not and keeps the running config;
    /// when the new config reads other source or template files, `watch`
    /// and its `events` start again over them.
    pub async fn reload_file(
        self,
        path: &Path,
        pin: Option<Pin>,
        watch: &mut Watch,
        events: &mut mpsc::Receiver<Event>,
    ) -> Engine {
        let new = match Config::load_pinned(path, pin) {
            Ok(new) => new,
            Err(err) => {
                tracing::error!(error = %err, "config change refused; keeping the running config");
                return self;
            }
        };
        if new.output.is_some() != self.dir.is_some() {
            tracing::error!("config change refused: adding or removing the `output` section needs a restart; keeping the running config");
            return self;
        }
        let running = &self.plan.config;
        if watch::source_files(&new) != watch::source_files(running)
            || new.template_files != running.template_files
        {
            let output = self.dir.as_ref().map(|d| d.path());
            match watch::start(path, &new, output) {
                Ok(w) => (*watch, *events) = w,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the new config's source or template files; source files are polled, template edits are not seen")
                }
            }
        }
        self.reload(Arc::new(new)).await
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
        let running = self.plan.config.clone();
        let same_sources = running.sources == config.sources;
        if !same_sources {
            match source::build(&config) {
                Ok(s) => {
                    self.plan.new_sources(s.len(), Instant::now());
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
        let mut old: Vec<((String, Address), Group)> = std::mem::take(&mut self.plan.groups)
            .into_iter()
            .map(|g| (key(&running, g.members[0]), g))
            .collect();
        let mut old_rendered: Vec<(String, Vec<Rendered>)> = std::mem::take(&mut self.rendered)
            .into_iter()
            .zip(&running.secrets)
            .map(|(r, s)| (s.name.clone(), r))
            .collect();
        self.plan.config = config.clone();
        self.held = Arc::new(
            self.held
                .reconfigured(config.clone(), self.fetcher.sources().to_vec()),
        );
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
        let paces = self.fetcher.paces();
        for members in fetch::groups(&config) {
            let k = key(&config, members[0]);
            let kept = old
                .iter()
                .position(|(o, _)| same_sources && *o == k)
                .map(|p| old.swap_remove(p).1);
            let mut group = Group::new(members, Instant::now());
            if let Some(kept) = kept {
                group.fetched = kept.fetched;
                group.at = kept.at;
                group.failures = kept.failures;
                group.due = kept.due;
                group.step = kept.step;
            }
            let rendered = group
                .fetched
                .as_ref()
                .map(|f| fetch::render_group(&config, &group.members, f));
            let (members, failures) = (group.members.clone(), group.failures);
            self.plan.groups.push(group);
            let g = self.plan.groups.len() - 1;
            match rendered {
                None => {}
                Some(Ok(files)) => {
                    fresh.extend(members.into_iter().zip(files));
                    // A poll planned at the old interval follows the new one.
                    if failures == 0 {
                        self.plan.schedule(g, &paces, false, Now::read());
                        self.record(g);
                    }
                }
                Some(Err(failed)) => {
                    for (i, e) in failed {
                        tracing::warn!(secret = %config.secrets[i].name, error = %e, "cannot render with the new config");
                    }
                    self.plan.groups[g].due = Instant::now();
                }
            }
        }
        let changed = self.write_back(fresh.iter().map(|(i, f)| (*i, f.as_slice())));
        for (i, files) in fresh {
            self.rendered[i] = files;
        }
        self.templates.reload(&self.plan.config.templates);
        let templates = self.write_templates(None);
        tracing::info!(secrets = self.plan.config.secrets.len(), "config reloaded");
        self.publish();
        self.notify(&changed, &templates);
        self
    }
}
