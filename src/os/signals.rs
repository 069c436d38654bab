//! The process's own signals, installed before any backend call so that a
//! pod being deleted stops at once even while start-up waits on a backend
//! (as PID 1, a signal without a handler is ignored): SIGTERM and SIGINT
//! become one stop, and in `run` SIGHUP asks for a config reload.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use rustix::process::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Handlers for this process's signals; they stay installed for its life.
#[derive(Clone)]
pub struct Signals {
    stop: CancellationToken,
    by: Arc<AtomicI32>,
    reload: Arc<Notify>,
}

impl Signals {
    /// Installs handlers for SIGTERM and SIGINT, and for SIGHUP when
    /// `hup_reloads` (otherwise SIGHUP is left to whoever else handles it).
    /// Must be called inside the runtime.
    pub fn install(hup_reloads: bool) -> std::io::Result<Signals> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = match hup_reloads {
            true => Some(signal(SignalKind::hangup())?),
            false => None,
        };
        let signals = Signals {
            stop: CancellationToken::new(),
            by: Arc::new(AtomicI32::new(0)),
            reload: Arc::new(Notify::new()),
        };
        let s = signals.clone();
        tokio::spawn(async move {
            loop {
                let hup_next = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let by = tokio::select! {
                    _ = term.recv() => Signal::TERM,
                    _ = int.recv() => Signal::INT,
                    _ = hup_next => {
                        tracing::info!("SIGHUP: reloading the config");
                        s.reload.notify_one();
                        continue;
                    }
                };
                let _ =
                    s.by.compare_exchange(0, by.as_raw(), Ordering::AcqRel, Ordering::Acquire);
                s.stop.cancel();
            }
        });
        Ok(signals)
    }

    /// Resolves with the signal once SIGTERM or SIGINT has arrived.
    pub async fn stopped(&self) -> Signal {
        self.stop.cancelled().await;
        Signal::from_named_raw(self.by.load(Ordering::Acquire)).unwrap_or(Signal::TERM)
    }

    /// Notified when SIGHUP asks for a reload (one that comes while nobody
    /// waits is kept for the next waiter).
    pub fn reloads(&self) -> &Notify {
        &self.reload
    }
}

/// Says that `sig` stopped start-up and returns the exit code for it (128 +
/// the signal number, as a shell reports it).
pub fn interrupted(sig: Signal) -> i32 {
    let name = if sig == Signal::INT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    tracing::info!(
        signal = name,
        "stopped during start-up; nothing more is written"
    );
    128 + sig.as_raw()
}
