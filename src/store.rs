//! The latest good value of every secret, shared by the sidecar's scheduler
//! (which fills it) and the proxy (which serves it): one process, one
//! refreshed state, no backend call per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::secret::Fetched;

/// One secret's latest value.
#[derive(Debug)]
pub struct Entry {
    /// What was fetched.
    pub fetched: Fetched,
    /// When it changed last (not when it was last confirmed).
    pub changed_at: SystemTime,
    /// Counts changes of the value, from 1: a version for sources without one.
    pub revision: u64,
}

/// Secret name → latest entry.
#[derive(Debug, Default)]
pub struct Store {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl Store {
    /// The latest entry of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Records a fetch of `name`; the revision moves only when the fields or version changed.
    pub fn put(&self, name: &str, fetched: &Fetched) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let (revision, changed_at) = match entries.get(name) {
            Some(old)
                if old.fetched.fields == fetched.fields
                    && old.fetched.version == fetched.version =>
            {
                (old.revision, old.changed_at)
            }
            Some(old) => (old.revision + 1, SystemTime::now()),
            None => (1, SystemTime::now()),
        };
        entries.insert(
            name.to_owned(),
            Arc::new(Entry {
                fetched: fetched.clone(),
                changed_at,
                revision,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{Fields, SecretBytes};

    fn fetched(v: &str) -> Fetched {
        let mut f = Fields::new();
        f.insert("k".into(), SecretBytes::copy_from(v));
        Fetched::fields(f)
    }

    #[test]
    fn revisions_move_only_on_change() {
        let s = Store::default();
        s.put("a", &fetched("1"));
        s.put("a", &fetched("1"));
        assert_eq!(s.get("a").unwrap().revision, 1);
        s.put("a", &fetched("2"));
        assert_eq!(s.get("a").unwrap().revision, 2);
        assert!(s.get("b").is_none());
    }
}
