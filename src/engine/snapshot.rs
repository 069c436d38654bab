//! What the sidecar holds, as snapshots: the running config, its sources and
//! the latest good value of every secret. The scheduler publishes a new
//! [`Snapshot`] on a `tokio::sync::watch` channel after each round that
//! fetched something and after a reload; the proxy reads the latest one per
//! request: one process, one refreshed state, no backend call per request.
//! Entries are kept by the secret's index in the config, not under a copy of
//! its name: the engine holds a snapshot and publishes a copy of it, each a
//! pointer per secret.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::Config;
use crate::secret::Fetched;
use crate::source::proxy_api::Entry;
use crate::source::Source;

/// The sidecar's state at one moment.
#[derive(Clone)]
pub struct Snapshot {
    /// The running config.
    pub config: Arc<Config>,
    /// Its sources, to tell when their login fails.
    pub sources: Vec<Arc<dyn Source>>,
    /// The latest entry of each secret, by index into `config.secrets`.
    entries: Vec<Option<Arc<Entry>>>,
}

/// Where the proxy reads snapshots from.
pub type Snapshots = watch::Receiver<Arc<Snapshot>>;

impl Snapshot {
    /// A snapshot of `config` holding no value yet.
    pub fn new(config: Arc<Config>, sources: Vec<Arc<dyn Source>>) -> Self {
        Snapshot {
            entries: vec![None; config.secrets.len()],
            config,
            sources,
        }
    }

    /// The same values under a reloaded `config`, by secret name.
    pub fn reconfigured(&self, config: Arc<Config>, sources: Vec<Arc<dyn Source>>) -> Self {
        let held: HashMap<&str, &Arc<Entry>> = self
            .config
            .secrets
            .iter()
            .zip(&self.entries)
            .filter_map(|(s, e)| Some((s.name.as_str(), e.as_ref()?)))
            .collect();
        let entries = config
            .secrets
            .iter()
            .map(|s| held.get(s.name.as_str()).map(|&e| e.clone()))
            .collect();
        Snapshot {
            config,
            sources,
            entries,
        }
    }

    /// The latest entry of the secret named `name` (a look through the
    /// config: [`Snapshot::of`] where the index is known).
    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        let i = self.config.secrets.iter().position(|s| s.name == name)?;
        self.entries[i].clone()
    }

    /// The latest entry of secret `i` of `config`: by index when this
    /// snapshot runs that config, else (a reload came between) by name.
    pub fn of(&self, config: &Arc<Config>, i: usize) -> Option<Arc<Entry>> {
        if Arc::ptr_eq(&self.config, config) {
            self.entries.get(i)?.clone()
        } else {
            self.get(&config.secrets.get(i)?.name)
        }
    }

    /// Records a fetch of secret `i` of the config (shared, not copied); the
    /// revision moves only when the fields or version changed.
    pub fn put(&mut self, i: usize, fetched: &Arc<Fetched>) {
        let Some(slot) = self.entries.get_mut(i) else {
            return;
        };
        let (revision, changed_at) = match slot {
            Some(old)
                if old.fetched.fields == fetched.fields
                    && old.fetched.version == fetched.version =>
            {
                (old.revision, old.changed_at)
            }
            Some(old) => (old.revision + 1, SystemTime::now()),
            None => (1, SystemTime::now()),
        };
        *slot = Some(Arc::new(Entry {
            fetched: Arc::clone(fetched),
            changed_at,
            revision,
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::secret::{Fields, SecretBytes};

    fn fetched(v: &str) -> Arc<Fetched> {
        let mut f = Fields::new();
        f.insert("k".into(), SecretBytes::copy_from(v));
        Arc::new(Fetched::fields(f))
    }

    fn config() -> Arc<Config> {
        let yaml = "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    kv: { mount: secret, path: db }\n  - name: b\n    kv: { mount: secret, path: db }\n";
        Arc::new(Config::parse(yaml, Path::new("/")).unwrap())
    }

    #[test]
    fn revisions_move_only_on_change() {
        let mut s = Snapshot::new(config(), Vec::new());
        s.put(0, &fetched("1"));
        s.put(0, &fetched("1"));
        assert_eq!(s.get("a").unwrap().revision, 1);
        s.put(0, &fetched("2"));
        assert_eq!(s.get("a").unwrap().revision, 2);
        assert!(s.get("b").is_none());
        assert!(s.get("c").is_none());
    }

    #[test]
    fn a_reloaded_config_keeps_the_values_and_their_revisions() {
        let mut s = Snapshot::new(config(), Vec::new());
        s.put(0, &fetched("1"));
        s.put(0, &fetched("2"));
        s.put(1, &fetched("3"));
        // The reloaded config has b first, a second, and a new c.
        let yaml = "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: b\n    kv: { mount: secret, path: db }\n  - name: a\n    kv: { mount: secret, path: db }\n  - name: c\n    kv: { mount: secret, path: db }\n";
        let next = Arc::new(Config::parse(yaml, Path::new("/")).unwrap());
        let r = s.reconfigured(next.clone(), Vec::new());
        assert!(Arc::ptr_eq(&r.config, &next));
        assert_eq!(r.get("a").unwrap().revision, 2);
        assert_eq!(r.of(&next, 1).unwrap().revision, 2);
        assert!(r.of(&next, 2).is_none());
        // Asked by the index of the config before the reload: found by name.
        assert_eq!(r.of(&s.config, 0).unwrap().revision, 2);
        assert_eq!(r.of(&s.config, 1).unwrap().revision, 1);
    }
}
