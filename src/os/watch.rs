//! File watching: [`Files`] is the one watcher (notify/inotify) of the crate,
//! used by the drill and the injector's certificate files too. For the
//! sidecar ([`start`]): the config file and the template files it reads,
//! whose valid changes are reloaded; the files of `file` sources, whose edits
//! are read at once; and the output directory, where a file deleted or
//! altered by someone else is written back. Files are watched through their
//! directory, so an editor or a ConfigMap that swaps in a new inode is seen too.
//! Credential files (tokens, JWTs, AppRole ids) need no watch: they are read
//! afresh at every login.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::Config;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// The config file or a template file it reads (or the directory entry
    /// it hangs off, as with a ConfigMap).
    Config,
    /// The file of the `file` source at this index of `config.sources`.
    Source(usize),
    /// Something in the output directory.
    Output,
}

/// Watches until dropped.
pub struct Watch {
    _files: Option<Files>,
    /// Without a watcher: keeps the event channel open (and silent).
    _idle: Option<mpsc::Sender<Event>>,
}

impl Watch {
    /// No watching: a channel that never says anything.
    pub fn none() -> (Watch, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(1);
        let watch = Watch {
            _files: None,
            _idle: Some(tx),
        };
        (watch, rx)
    }
}

/// Whether `e` is the kernel's inotify limit for this user (instances or
/// watches), which a node with many pods running as one uid reaches.
pub fn limit_reached(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        notify::ErrorKind::Io(io) => {
            let limit = [rustix::io::Errno::MFILE, rustix::io::Errno::NOSPC];
            limit
                .iter()
                .any(|l| io.raw_os_error() == Some(l.raw_os_error()))
        }
        _ => false,
    }
}

/// A file watched through its directory, reported as `key`.
struct Target<K> {
    dir: PathBuf,
    name: Option<OsString>,
    key: K,
    /// The stamp last seen, to report a change once.
    seen: Option<Stamp>,
}

impl<K> Target<K> {
    /// Events carry the watched path joined with the entry's name: watch canonical paths.
    fn new(file: &Path, key: K) -> std::io::Result<Target<K>> {
        let dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Ok(Target {
            dir: std::fs::canonicalize(dir)?,
            name: file.file_name().map(|n| n.to_os_string()),
            key,
            seen: Stamp::at(file),
        })
    }

    /// Whether a change at `path` may be a change of this file (or of the
    /// `..data` link a Kubernetes volume swaps).
    fn hit(&self, path: &Path) -> bool {
        let name = path.file_name();
        path.parent() == Some(self.dir.as_path())
            && (name == self.name.as_deref()
                || name
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("..")))
    }

    /// The file's path as watched.
    fn path(&self) -> PathBuf {
        match &self.name {
            Some(name) => self.dir.join(name),
            None => self.dir.clone(),
        }
    }
}

/// The one file watcher of the crate (the sidecar's config, template, source
/// and output files, the drill's view of the output, the injector's
/// certificate files), on notify (inotify). Each file is watched through its
/// directory, so an editor or a volume that swaps in a new inode (or a new
/// `..data` link) is seen, and is reported once each time its [`Stamp`]
/// changes to that of an existing file; a tree is watched whole, every change
/// under it reported except the writer's own staging files. Watches until
/// dropped.
pub struct Files {
    _watcher: notify::RecommendedWatcher,
}

impl Files {
    /// Watches `files` (each reported as its key) and `tree` (a directory and
    /// its key), calling `changed` on notify's thread for each change.
    pub fn start<K, F>(
        files: &[(&Path, K)],
        tree: Option<(&Path, K)>,
        mut changed: F,
    ) -> notify::Result<Files>
    where
        K: Clone + Send + 'static,
        F: FnMut(&K) + Send + 'static,
    {
        let mut targets = files
            .iter()
            .map(|(path, key)| Target::new(path, key.clone()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let tree = match tree {
            Some((dir, key)) => Some((std::fs::canonicalize(dir)?, key)),
            None => None,
        };
        let dirs: BTreeSet<PathBuf> = targets.iter().map(|t| t.dir.clone()).collect();
        let tree_dir = tree.as_ref().map(|(dir, _)| dir.clone());
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                let Ok(ev) = res else { return };
                // Reads (our own comparisons) are not changes.
                if !matches!(
                    ev.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                ) {
                    return;
                }
                for path in &ev.paths {
                    if let Some((_, key)) = tree.as_ref().filter(|(d, _)| path.starts_with(d)) {
                        let staged = path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.ends_with(".ramsecrets-tmp"));
                        if !staged {
                            changed(key);
                        }
                        continue;
                    }
                    for t in targets.iter_mut().filter(|t| t.hit(path)) {
                        let now = Stamp::at(&t.path());
                        if now.is_some() && now != t.seen {
                            t.seen = now;
                            changed(&t.key);
                        }
                    }
                }
            })?;
        for dir in &dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        if let Some(dir) = &tree_dir {
            watcher.watch(dir, RecursiveMode::Recursive)?;
        }
        Ok(Files { _watcher: watcher })
    }
}

/// The `file` sources' files of `config`, by source index: what a watch of
/// it covers besides the config file and the output directory.
pub fn source_files(config: &Config) -> Vec<(usize, &Path)> {
    config
        .sources
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.kind.local_file().map(|path| (i, path)))
        .collect()
}

/// Starts watching the config file at `config_path`, the files of the `file`
/// sources and the template files of `config`, and `output` (when there is
/// one); events arrive on the returned channel, debounced (a burst becomes one
/// event of each kind).
pub fn start(
    config_path: &Path,
    config: &Config,
    output: Option<&Path>,
) -> notify::Result<(Watch, mpsc::Receiver<Event>)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<Event>();
    let mut files = vec![(config_path, Event::Config)];
    for path in &config.template_files {
        files.push((path.as_path(), Event::Config));
    }
    for (i, path) in source_files(config) {
        files.push((path, Event::Source(i)));
    }
    let tree = output.map(|dir| (dir, Event::Output));
    let watcher = Files::start(&files, tree, move |event| {
        let _ = raw_tx.send(*event);
    })?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(first) = raw_rx.recv().await {
            let mut seen = BTreeSet::from([first]);
            tokio::time::sleep(Duration::from_millis(200)).await;
            while let Ok(more) = raw_rx.try_recv() {
                seen.insert(more);
            }
            for ev in seen {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
    });
    let watch = Watch {
        _files: Some(watcher),
        _idle: None,
    };
    Ok((watch, rx))
}

/// What tells one version of a file from the next without reading it: an
/// editor that saves twice within a clock tick, or swaps in a new file,
/// changes one of these. The one file stamp of the crate (the `file` source's
/// cache, and [`Files`], which reports a file when its stamp changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    inode: u64,
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            inode: m.ino(),
            len: m.len(),
            modified: (m.mtime(), m.mtime_nsec()),
            changed: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// The stamp of the file at `path` (symlinks followed), if there is one.
    pub fn at(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::Stamp;

    #[test]
    fn a_rewrite_or_a_swap_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let first = Stamp::at(&path).unwrap();
        assert_eq!(Stamp::at(&path), Some(first));
        // Rewritten in place.
        std::fs::write(&path, "three").unwrap();
        let second = Stamp::at(&path).unwrap();
        assert_ne!(first, second);
        // Swapped in by a rename, as editors and ConfigMaps do: a new inode
        // even with the same length and content.
        let new = dir.path().join("f.new");
        std::fs::write(&new, "three").unwrap();
        std::fs::rename(&new, &path).unwrap();
        let third = Stamp::at(&path).unwrap();
        assert_ne!(second.inode, third.inode);
        assert_eq!(Stamp::at(&dir.path().join("none")), None);
    }
}

#[cfg(test)]
mod files_tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::Files;

    #[test]
    fn each_change_is_reported_once_by_its_key_and_reads_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let out = dir.path().join("out");
        std::fs::write(&a, "1").unwrap();
        std::fs::create_dir(&out).unwrap();
        let (tx, rx) = mpsc::channel();
        let files = [(a.as_path(), "a"), (b.as_path(), "b")];
        let _watch = Files::start(&files, Some((out.as_path(), "out")), move |k: &&str| {
            tx.send(*k).unwrap();
        })
        .unwrap();
        let next = || rx.recv_timeout(Duration::from_secs(30)).unwrap();
        // A read and the writer's staging file are not changes; the change
        // after them is the first thing reported.
        std::fs::read(&a).unwrap();
        std::fs::write(out.join("x.ramsecrets-tmp"), "s").unwrap();
        // Files swapped in by a rename (as an editor or a ConfigMap does):
        // one change each, a file created too.
        let swap = |path: &std::path::Path, text: &str| {
            let new = path.with_extension("new");
            std::fs::write(&new, text).unwrap();
            std::fs::rename(&new, path).unwrap();
        };
        swap(&b, "new");
        assert_eq!(next(), "b");
        swap(&a, "2");
        assert_eq!(next(), "a");
        std::fs::write(out.join("x"), "y").unwrap();
        assert_eq!(next(), "out");
    }
}
