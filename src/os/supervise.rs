//! `exec` mode's child: started after the first render, sent TERM, INT, HUP,
//! QUIT, USR1 and USR2 as ramsecrets receives them, restarted (TERM, KILL
//! after the grace period, start again) or signalled when a secret changes,
//! and reaped; when ramsecrets is PID 1 it also reaps orphans. The child's exit
//! code (128 + signal when killed) becomes ramsecrets' own.
//!
//! Without a terminal the child leads its own process group, and the signals
//! that end a process (TERM, INT, QUIT, KILL) go to that whole group, so a
//! shell's children stop with it; HUP, USR1 and USR2 go to the child alone.
//! On a terminal the child stays in the terminal's foreground group, which
//! Ctrl-C (INT) and Ctrl-\\ (QUIT) already reach as a whole: those are not
//! sent a second time, so an app that reads a second Ctrl-C as "force quit"
//! still shuts down gracefully.
//!
//! After TERM, INT or QUIT, at shutdown as at a restart, a child still
//! running when `exec.grace` has passed is killed (KILL).
//!
//! When ramsecrets is PID 1 it reaps every child, so `exec` actions that
//! `on_change` runs may lose their exit status there (they are still killed
//! on timeout).

use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::{signal_name, ChildOnChange, Exec};

/// Finds `command` as the child's start will (a path, else a search of
/// `PATH`), so a missing one (127) or one that cannot run (126) is said
/// before any login or fetch.
pub fn locate(command: &str) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<std::path::PathBuf> = if command.contains('/') {
        vec![command.into()]
    } else {
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(command))
                    .collect()
            })
            .unwrap_or_default()
    };
    let found: Vec<std::fs::Metadata> = candidates
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .collect();
    if found
        .iter()
        .any(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    {
        Ok(())
    } else if found.is_empty() {
        Err(Error::new(
            ErrorKind::NotFound,
            "no such executable (searched PATH unless the name has a /)",
        ))
    } else {
        Err(Error::new(
            ErrorKind::PermissionDenied,
            "not an executable file",
        ))
    }
}

/// The signals passed on to the child.
const FORWARDED: [(SignalKind, Signal); 6] = [
    (SignalKind::terminate(), Signal::TERM),
    (SignalKind::interrupt(), Signal::INT),
    (SignalKind::hangup(), Signal::HUP),
    (SignalKind::quit(), Signal::QUIT),
    (SignalKind::user_defined1(), Signal::USR1),
    (SignalKind::user_defined2(), Signal::USR2),
];

/// Whether the terminal already delivered `sig` to the child: it shares the
/// terminal's foreground group, where Ctrl-C and Ctrl-\\ land.
fn from_terminal(child: Child, sig: Signal) -> bool {
    !child.group && matches!(sig, Signal::INT | Signal::QUIT)
}

/// Whether `sig` asks the child to end.
fn ends(sig: Signal) -> bool {
    matches!(sig, Signal::TERM | Signal::INT | Signal::QUIT)
}

/// A started child: its pid, and whether it leads its own process group.
#[derive(Clone, Copy)]
struct Child {
    pid: Pid,
    group: bool,
}

impl Child {
    /// Sends `sig` to the child, or to its whole group for signals that end a process.
    fn signal(self, sig: Signal) {
        let ends = matches!(
            sig,
            Signal::TERM | Signal::INT | Signal::QUIT | Signal::KILL
        );
        let _ = if ends && self.group {
            rustix::process::kill_process_group(self.pid, sig)
        } else {
            rustix::process::kill_process(self.pid, sig)
        };
    }
}

fn spawn(argv: &[String]) -> std::io::Result<Child> {
    use std::io::IsTerminal;
    use std::os::unix::process::CommandExt;
    let group = !std::io::stdin().is_terminal();
    let mut command = std::process::Command::new(&argv[0]);
    command.args(&argv[1..]);
    if group {
        command.process_group(0);
    }
    let child = command.spawn()?;
    let pid = Pid::from_raw(child.id() as i32)
        .ok_or_else(|| std::io::Error::other("child has no pid"))?;
    // The std handle is dropped without waiting: this module reaps the child itself.
    drop(child);
    tracing::info!(pid = pid.as_raw_nonzero(), command = %argv[0], "child started");
    Ok(Child { pid, group })
}

fn code(status: WaitStatus) -> i32 {
    status
        .exit_status()
        .or_else(|| status.terminating_signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Reaps what has exited; returns the child's exit code if it is among them.
/// As PID 1 that is every child, whatever its process group (orphans too).
fn reap(child: Pid) -> Option<i32> {
    let everyone = rustix::process::getpid().is_init();
    let mut exited = None;
    loop {
        // `waitpid(None)` is wait4(0): our own process group only, which the
        // child (a group leader of its own) and its orphans are not in.
        let reaped = if everyone {
            rustix::process::wait(WaitOptions::NOHANG)
        } else {
            rustix::process::waitpid(Some(child), WaitOptions::NOHANG)
        };
        match reaped {
            Ok(Some((pid, status))) if pid == child => exited = Some(code(status)),
            Ok(Some(_)) => continue,
            _ => return exited,
        }
    }
}

/// Waits up to `grace` for `child` to exit; returns its code if it did.
async fn wait_exit(child: Pid, grace: Duration) -> Option<i32> {
    let until = tokio::time::Instant::now() + grace;
    loop {
        if let Some(c) = reap(child) {
            return Some(c);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the child (and its group) that outlived its `grace`.
fn kill(child: Child, grace: Duration) {
    tracing::warn!(
        pid = child.pid.as_raw_nonzero(),
        grace_s = grace.as_secs(),
        "child did not stop in time; killing it"
    );
    child.signal(Signal::KILL);
}

/// TERM, then KILL after `grace`; returns the exit code.
async fn stop(child: Child, grace: Duration) -> i32 {
    child.signal(Signal::TERM);
    if let Some(c) = wait_exit(child.pid, grace).await {
        return c;
    }
    kill(child, grace);
    wait_exit(child.pid, Duration::from_secs(5))
        .await
        .unwrap_or(128 + 9)
}

/// Runs `argv` until it exits on its own or after a forwarded TERM/INT;
/// returns its exit code.
pub async fn supervise(
    argv: Vec<String>,
    exec: Exec,
    mut changes: mpsc::UnboundedReceiver<String>,
) -> std::io::Result<i32> {
    let mut streams = Vec::with_capacity(FORWARDED.len());
    for (kind, sig) in FORWARDED {
        streams.push((signal(kind)?, sig));
    }
    let mut sigchld = signal(SignalKind::child())?;
    let mut child = spawn(&argv)?;
    // When the child is killed if it has not ended after a signal that ends it.
    let mut kill_at: Option<tokio::time::Instant> = None;
    loop {
        let killing = async {
            match kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let forwarded = futures::future::select_all(
            streams
                .iter_mut()
                .map(|(s, sig)| Box::pin(async move { s.recv().await.map(|_| *sig) })),
        );
        tokio::select! {
            (Some(sig), _, _) = forwarded => {
                if from_terminal(child, sig) {
                    tracing::info!(signal = %signal_name(sig), "the terminal sent the child this signal too");
                } else {
                    tracing::info!(signal = %signal_name(sig), "forwarding signal to the child");
                    child.signal(sig);
                }
                if ends(sig) && kill_at.is_none() {
                    kill_at = tokio::time::Instant::now().checked_add(exec.grace);
                }
            }
            () = killing => {
                kill_at = None;
                kill(child, exec.grace);
            }
            Some(mut what) = changes.recv() => {
                while let Ok(more) = changes.try_recv() {
                    what.push_str(", ");
                    what.push_str(&more);
                }
                match exec.on_change {
                    ChildOnChange::Signal(sig) => {
                        tracing::info!(signal = %signal_name(sig), "{what} changed; signalling the child");
                        child.signal(sig);
                    }
                    ChildOnChange::Restart => {
                        tracing::info!("{what} changed; restarting the child");
                        stop(child, exec.grace).await;
                        child = spawn(&argv)?;
                        kill_at = None;
                    }
                }
            }
            _ = sigchld.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Some(code) = reap(child.pid) {
            tracing::info!(code, "child exited");
            return Ok(code);
        }
    }
}
