//! `exec` mode's child: started after the first render, sent TERM, INT, HUP,
//! QUIT, USR1 and USR2 as ramsecrets receives them, restarted (TERM, KILL
//! after the grace period, start again) or signalled when a secret changes,
//! and reaped; when ramsecrets is PID 1 it also reaps orphans. The child's exit
//! code (128 + signal when killed) becomes ramsecrets' own.
//!
//! When ramsecrets is PID 1 it reaps every child, so `exec` actions that
//! `on_change` runs may lose their exit status there (they are still killed
//! on timeout).

use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::config::{ChildOnChange, Exec};

/// The signals passed on to the child.
const FORWARDED: [(SignalKind, Signal); 6] = [
    (SignalKind::terminate(), Signal::TERM),
    (SignalKind::interrupt(), Signal::INT),
    (SignalKind::hangup(), Signal::HUP),
    (SignalKind::quit(), Signal::QUIT),
    (SignalKind::user_defined1(), Signal::USR1),
    (SignalKind::user_defined2(), Signal::USR2),
];

fn spawn(argv: &[String]) -> std::io::Result<Pid> {
    let child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .spawn()?;
    let pid = Pid::from_raw(child.id() as i32)
        .ok_or_else(|| std::io::Error::other("child has no pid"))?;
    // The std handle is dropped without waiting: this module reaps the child itself.
    drop(child);
    tracing::info!(pid = pid.as_raw_nonzero(), command = %argv[0], "child started");
    Ok(pid)
}

fn code(status: WaitStatus) -> i32 {
    status
        .exit_status()
        .or_else(|| status.terminating_signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Reaps what has exited; returns the child's exit code if it is among them.
fn reap(child: Pid) -> Option<i32> {
    let everyone = rustix::process::getpid().is_init();
    let mut exited = None;
    loop {
        let target = if everyone { None } else { Some(child) };
        match rustix::process::waitpid(target, WaitOptions::NOHANG) {
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

/// TERM, then KILL after `grace`; returns the exit code.
async fn stop(child: Pid, grace: Duration) -> i32 {
    let _ = rustix::process::kill_process(child, Signal::TERM);
    if let Some(c) = wait_exit(child, grace).await {
        return c;
    }
    tracing::warn!(
        pid = child.as_raw_nonzero(),
        grace_s = grace.as_secs(),
        "child did not stop in time; killing it"
    );
    let _ = rustix::process::kill_process(child, Signal::KILL);
    wait_exit(child, Duration::from_secs(5))
        .await
        .unwrap_or(128 + 9)
}

/// Runs `argv` until it exits on its own or after a forwarded TERM/INT;
/// returns its exit code.
pub async fn supervise(
    argv: Vec<String>,
    exec: Exec,
    mut changes: mpsc::UnboundedReceiver<()>,
) -> std::io::Result<i32> {
    let mut streams = Vec::with_capacity(FORWARDED.len());
    for (kind, sig) in FORWARDED {
        streams.push((signal(kind)?, sig));
    }
    let mut sigchld = signal(SignalKind::child())?;
    let mut child = spawn(&argv)?;
    loop {
        let forwarded = futures::future::select_all(
            streams
                .iter_mut()
                .map(|(s, sig)| Box::pin(async move { s.recv().await.map(|_| *sig) })),
        );
        tokio::select! {
            (Some(sig), _, _) = forwarded => {
                tracing::info!(signal = ?sig, "forwarding signal to the child");
                let _ = rustix::process::kill_process(child, sig);
            }
            Some(()) = changes.recv() => {
                while changes.try_recv().is_ok() {}
                match exec.on_change {
                    ChildOnChange::Signal(sig) => {
                        tracing::info!(signal = ?sig, "secrets changed; signalling the child");
                        let _ = rustix::process::kill_process(child, sig);
                    }
                    ChildOnChange::Restart => {
                        tracing::info!("secrets changed; restarting the child");
                        stop(child, exec.grace).await;
                        child = spawn(&argv)?;
                    }
                }
            }
            _ = sigchld.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        if let Some(code) = reap(child) {
            tracing::info!(code, "child exited");
            return Ok(code);
        }
    }
}
