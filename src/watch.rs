//! File watching (notify/inotify) for the sidecar: the config file, whose
//! valid changes are reloaded, and the output directory, where a file deleted
//! or altered by someone else is written back. Credential files (tokens,
//! JWTs, AppRole ids) need no watch: they are read afresh at every login.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The config file (or the directory entry it hangs off, as with a ConfigMap).
    Config,
    /// Something in the output directory.
    Output,
}

/// Watches until dropped.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
}

/// Starts watching `config` and `output`; events arrive on the returned
/// channel, debounced (a burst becomes one event of each kind).
pub fn start(config: &Path, output: &Path) -> notify::Result<(Watch, mpsc::Receiver<Event>)> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<Event>();
    // Events carry the watched path joined with the entry's name: watch canonical paths.
    let config_dir = std::fs::canonicalize(
        config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )?;
    let config_name = config.file_name().map(|n| n.to_os_string());
    let output_dir: PathBuf = std::fs::canonicalize(output)?;
    let (watch_config, watch_output) = (config_dir.clone(), output_dir.clone());
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        // Reads (our own comparisons) are not changes.
        if !matches!(
            ev.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) {
            return;
        }
        for path in &ev.paths {
            let name = path.file_name();
            if path.starts_with(&output_dir) {
                let tmp = name
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(".ramsecrets-tmp"));
                if !tmp {
                    let _ = raw_tx.send(Event::Output);
                }
            } else if path.parent() == Some(config_dir.as_path())
                && (name == config_name.as_deref()
                    || name
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("..")))
            {
                let _ = raw_tx.send(Event::Config);
            }
        }
    })?;
    watcher.watch(&watch_config, RecursiveMode::NonRecursive)?;
    watcher.watch(&watch_output, RecursiveMode::Recursive)?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(first) = raw_rx.recv().await {
            let (mut config, mut output) = (first == Event::Config, first == Event::Output);
            tokio::time::sleep(Duration::from_millis(200)).await;
            while let Ok(more) = raw_rx.try_recv() {
                config |= more == Event::Config;
                output |= more == Event::Output;
            }
            for (hit, ev) in [(config, Event::Config), (output, Event::Output)] {
                if hit && tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok((Watch { _watcher: watcher }, rx))
}
