//! `on_change` actions, run once per change after all files of a cycle are
//! written: a signal to a process (by pid file, or by name in a shared PID
//! namespace), a command (argv, no shell) with a time limit, or an HTTP POST.
//! Failures are logged and counted, never retried. Actions run on tasks of
//! their own ([`Runner`]), so one that hangs never holds up renewals, health,
//! the proxy or shutdown; the file and `/proc` reads of a signal run on the
//! blocking pool, never on the runtime's thread.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::sync::Semaphore;

use crate::config::{Action, SignalTarget};
use crate::telemetry::metrics::Metrics;

/// Batches of actions that run at once; later ones wait for a free slot.
const CONCURRENCY: usize = 4;

/// The actions of one round: each secret's or template's name with the
/// actions it still has to run.
pub type Batch = Vec<(String, Vec<Action>)>;

/// Runs batches of actions off the caller's task, at most [`CONCURRENCY`] at
/// once, each action within its own time limit.
pub struct Runner {
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
}

impl Runner {
    /// A runner that counts each action's result in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Runner {
        Runner {
            http: reqwest::Client::new(),
            metrics,
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
        }
    }

    /// Starts `batch` on a task of its own and returns at once: its actions
    /// run in order, then `done` is called.
    pub fn spawn(&self, batch: Batch, done: impl FnOnce() + Send + 'static) {
        let (http, metrics, slots) = (self.http.clone(), self.metrics.clone(), self.slots.clone());
        tokio::spawn(async move {
            // The semaphore is never closed.
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            for (name, actions) in &batch {
                run(name, actions, &http, &metrics).await;
            }
            done();
        });
    }
}

/// Runs `actions` of secret `secret` in order.
async fn run(secret: &str, actions: &[Action], http: &reqwest::Client, metrics: &Metrics) {
    for action in actions {
        let kind = action.kind();
        let result = match action {
            Action::Signal { target, signal } => {
                let (target, signal) = (target.clone(), *signal);
                tokio::task::spawn_blocking(move || send(&target, signal))
                    .await
                    .unwrap_or_else(|e| Err(format!("the signal task failed: {e}")))
            }
            Action::Exec { argv, timeout } => exec(argv, *timeout).await,
            Action::Http { url, timeout } => post(http, url, *timeout).await,
        };
        match &result {
            Ok(what) => tracing::info!(secret, action = kind, "{what}"),
            Err(why) => {
                tracing::warn!(secret, action = kind, error = %why, "on_change action failed")
            }
        }
        metrics.action(secret, kind, result.is_ok());
    }
}

fn send(target: &SignalTarget, signal: Signal) -> Result<String, String> {
    let pids = match target {
        SignalTarget::PidFile(path) => vec![pid_from(path)?],
        SignalTarget::Process(name) => {
            let pids = by_name(name);
            if pids.is_empty() {
                return Err(format!(
                    "no process named `{name}` (is the PID namespace shared?)"
                ));
            }
            pids
        }
    };
    for pid in &pids {
        rustix::process::kill_process(*pid, signal)
            .map_err(|e| format!("cannot signal pid {}: {e}", pid.as_raw_nonzero()))?;
    }
    Ok(format!(
        "sent {} to {} process(es)",
        crate::config::signal_name(signal),
        pids.len()
    ))
}

/// The process a pid file names: a pid above 1 that is not ramsecrets' own
/// (pid 1 is init or the container's entrypoint, and 0 or a negative number
/// would signal whole process groups). The file must be a regular file, not
/// a symlink (a FIFO would block the open); at most 64 bytes are read.
fn pid_from(path: &Path) -> Result<Pid, String> {
    use std::io::Read;
    let shown = path.display();
    let mut text = String::new();
    open_regular(path)
        .and_then(|f| f.take(64).read_to_string(&mut text))
        .map_err(|e| format!("pid_file {shown}: {e}"))?;
    let raw: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("pid_file {shown} does not hold a process id"))?;
    if raw == 1 {
        return Err(format!(
            "pid_file {shown} holds pid 1 (init, or the container's entrypoint): refusing to signal it"
        ));
    }
    if raw == rustix::process::getpid().as_raw_nonzero().get() {
        return Err(format!(
            "pid_file {shown} holds ramsecrets' own pid {raw}: refusing to signal itself"
        ));
    }
    (raw > 1)
        .then(|| Pid::from_raw(raw))
        .flatten()
        .ok_or_else(|| {
            format!("pid_file {shown} holds {raw}, not a process id above 1: refusing to signal it")
        })
}

/// Opens `path` for reading without blocking (a FIFO with no writer) and
/// without following a symlink, and refuses anything but a regular file.
fn open_regular(path: &Path) -> std::io::Result<File> {
    use rustix::fs::{FileType, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(File::from(fd))
}

/// Processes whose `/proc/<pid>/comm` is `name`, except this one.
fn by_name(name: &str) -> Vec<Pid> {
    let me = rustix::process::getpid();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(Pid::from_raw)
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{}/comm", pid.as_raw_nonzero()))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

async fn exec(argv: &[String], timeout: Duration) -> Result<String, String> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(format!("ran {}", argv[0])),
        Ok(Ok(status)) => Err(format!("{} exited with {status}", argv[0])),
        Ok(Err(e)) => Err(format!("{}: {e}", argv[0])),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "{} did not finish within {}s; killed",
                argv[0],
                timeout.as_secs()
            ))
        }
    }
}

async fn post(
    http: &reqwest::Client,
    url: &reqwest::Url,
    timeout: Duration,
) -> Result<String, String> {
    let resp = http
        .post(url.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    if resp.status().is_success() {
        Ok(format!("POST {url}: {}", resp.status()))
    } else {
        Err(format!("POST {url}: {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_processes_by_name_and_by_pid_file() {
        // A `sleep` under a name no other process has.
        let dir = tempfile::tempdir().unwrap();
        let name = format!("rs-sleep-{:04x}", rand::random::<u16>());
        let bin = dir.path().join(&name);
        std::fs::copy("/bin/sleep", &bin).unwrap();
        let mut child = std::process::Command::new(&bin).arg("30").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let target = SignalTarget::Process(name.clone());
        assert!(send(&target, Signal::TERM).unwrap().contains("1 process"));
        assert!(!child.wait().unwrap().success());
        assert!(send(&target, Signal::TERM)
            .unwrap_err()
            .contains("no process named"));
        let pid_file = dir.path().join("pid");
        std::fs::write(&pid_file, "not a pid").unwrap();
        let e = send(&SignalTarget::PidFile(pid_file.clone()), Signal::HUP).unwrap_err();
        assert!(e.contains("does not hold a process id"), "{e}");
        // Never pid 1, ramsecrets itself, or a process group (0, negative).
        let me = std::process::id().to_string();
        for (text, says) in [
            ("1", "holds pid 1"),
            (me.as_str(), "own pid"),
            ("0", "not a process id above 1"),
            ("-1", "not a process id above 1"),
            ("-42", "not a process id above 1"),
        ] {
            std::fs::write(&pid_file, text).unwrap();
            let e = pid_from(&pid_file).unwrap_err();
            assert!(e.contains(says) && e.contains("refusing"), "{text}: {e}");
        }
    }

    #[test]
    fn pid_files_that_are_fifos_symlinks_or_dirs_are_refused_without_blocking() {
        use rustix::fs::{FileType, Mode, CWD};
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(CWD, &fifo, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "4242").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        for (path, says) in [
            (fifo, "not a regular file"),
            (dir.path().to_path_buf(), "not a regular file"),
            (link, "symbolic links"),
        ] {
            // On a thread: a blocking open must fail the test, not hang it.
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || tx.send(pid_from(&p)));
            let got = rx.recv_timeout(Duration::from_secs(60));
            let e = got.expect("pid_from blocked").unwrap_err();
            assert!(e.contains(says), "{}: {e}", path.display());
        }
    }
}
