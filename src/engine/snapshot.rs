//! What the sidecar holds, as snapshots: the running config, its sources and
//! the latest good value of every secret. The scheduler publishes a new
//! [`Snapshot`] on a `tokio::sync::watch` channel after each round that
//! fetched something and after a reload; the proxy reads the latest one per
//! request: one process, one refreshed state, no backend call per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::Config;
use crate::secret::Fetched;
use crate::source::Source;

/// One secret's latest value.
#[derive(Debug)]
pub struct Entry {
    /// What was fetched, shared with the scheduler's copy.
    pub fetched: Arc<Fetched>,
    /// When it changed last (not when it was last confirmed).
    pub changed_at: SystemTime,
    /// Counts changes of the value, from 1: a version for sources without one.
    pub revision: u64,
}

/// The sidecar's state at one moment.
#[derive(Clone)]
pub struct Snapshot {
    /// The running config.
    pub config: Arc<Config>,
    /// Its sources, to tell when their login fails.
    pub sources: Vec<Arc<dyn Source>>,
    /// Secret name → latest entry.
    entries: HashMap<String, Arc<Entry>>,
}

/// Where the proxy reads snapshots from.
pub type Snapshots = watch::Receiver<Arc<Snapshot>>;

impl Snapshot {
    /// A snapshot of `config` holding no value yet.
    pub fn new(config: Arc<Config>, sources: Vec<Arc<dyn Source>>) -> Self {
        Snapshot {
            config,
            sources,
            entries: HashMap::new(),
        }
    }

    /// The same values under a reloaded `config`.
    pub fn reconfigured(&self, config: Arc<Config>, sources: Vec<Arc<dyn Source>>) -> Self {
        Snapshot {
            config,
            sources,
            entries: self.entries.clone(),
        }
    }

    /// The latest entry of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.entries.get(name).cloned()
    }

    /// Records a fetch of `name` (shared, not copied); the revision moves
    /// only when the fields or version changed.
    pub fn put(&mut self, name: &str, fetched: &Arc<Fetched>) {
        let (revision, changed_at) = match self.entries.get(name) {
            Some(old)
                if old.fetched.fields == fetched.fields
                    && old.fetched.version == fetched.version =>
            {
                (old.revision, old.changed_at)
            }
            Some(old) => (old.revision + 1, SystemTime::now()),
            None => (1, SystemTime::now()),
        };
        self.entries.insert(
            name.to_owned(),
            Arc::new(Entry {
                fetched: Arc::clone(fetched),
                changed_at,
                revision,
            }),
        );
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
        let yaml = "sources:\n  - file: { path: x }\noutput: { dir: /x }\nsecrets:\n  - name: a\n    kv: { mount: secret, path: db }\n";
        Arc::new(Config::parse(yaml, Path::new("/")).unwrap())
    }

    #[test]
    fn revisions_move_only_on_change() {
        let mut s = Snapshot::new(config(), Vec::new());
        s.put("a", &fetched("1"));
        s.put("a", &fetched("1"));
        assert_eq!(s.get("a").unwrap().revision, 1);
        s.put("a", &fetched("2"));
        assert_eq!(s.get("a").unwrap().revision, 2);
        assert!(s.get("b").is_none());
    }

    #[test]
    fn a_reloaded_config_keeps_the_values_and_their_revisions() {
        let mut s = Snapshot::new(config(), Vec::new());
        s.put("a", &fetched("1"));
        s.put("a", &fetched("2"));
        let next = config();
        let r = s.reconfigured(next.clone(), Vec::new());
        assert!(Arc::ptr_eq(&r.config, &next));
        assert_eq!(r.get("a").unwrap().revision, 2);
    }
}
