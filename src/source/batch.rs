//! The queue under batched reads (AWS Secrets Manager, Parameter Store):
//! fetches queue their key; the first starts the source's collector, which
//! waits [`WINDOW`] for more, [`Queue::take`]s the distinct keys and answers
//! every waiter from one set of calls.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Error, Result};
use crate::secret::Fetched;

/// How long a collector waits for more fetches before it calls.
pub(crate) const WINDOW: Duration = Duration::from_millis(3);

/// The fetches waiting for the next batch, by key.
pub(crate) struct Queue<K> {
    waiting: Vec<Waiter<K>>,
    collecting: bool,
}

impl<K> Default for Queue<K> {
    fn default() -> Self {
        Queue {
            waiting: Vec::new(),
            collecting: false,
        }
    }
}

struct Waiter<K> {
    key: K,
    deadline: Instant,
    reply: oneshot::Sender<Result<Fetched>>,
}

/// What a collector took: the distinct keys, in order of arrival, and the
/// latest deadline of their fetches.
pub(crate) struct Taken<K> {
    /// Each key once.
    pub keys: Vec<K>,
    /// The latest deadline of the fetches.
    pub deadline: Instant,
    waiters: Vec<Waiter<K>>,
}

/// The queue; a panic elsewhere while it was held leaves it usable.
fn lock<K>(q: &Mutex<Queue<K>>) -> std::sync::MutexGuard<'_, Queue<K>> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K: Clone + PartialEq> Queue<K> {
    /// Queues `key`; `start` runs when no collector is waiting yet, and
    /// must spawn one. The answer comes when the collector has it, or an
    /// error at `deadline`; `what` names the key in errors.
    pub(crate) async fn fetch(
        q: &Mutex<Self>,
        key: K,
        deadline: Instant,
        what: &str,
        start: impl FnOnce(),
    ) -> Result<Fetched> {
        let (reply, answer) = oneshot::channel();
        let first = {
            let mut q = lock(q);
            q.waiting.push(Waiter {
                key,
                deadline,
                reply,
            });
            !std::mem::replace(&mut q.collecting, true)
        };
        if first {
            start();
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::unavailable(format!(
                "{what}: the batch ended without an answer"
            ))),
            Err(_) => Err(Error::unavailable(format!(
                "{what}: no answer before the deadline"
            ))),
        }
    }

    /// After [`WINDOW`]: takes what was queued; `None` when nothing was.
    pub(crate) async fn take(q: &Mutex<Self>) -> Option<Taken<K>> {
        tokio::time::sleep(WINDOW).await;
        let waiters = {
            let mut q = lock(q);
            q.collecting = false;
            std::mem::take(&mut q.waiting)
        };
        let deadline = waiters.iter().map(|w| w.deadline).max()?;
        let mut keys: Vec<K> = Vec::new();
        for w in &waiters {
            if !keys.contains(&w.key) {
                keys.push(w.key.clone());
            }
        }
        Some(Taken {
            keys,
            deadline,
            waiters,
        })
    }
}

impl<K: PartialEq> Taken<K> {
    /// Answers every waiter with `answers` (one per key, in the order of
    /// [`Taken::keys`]); a key without one gets `unanswered(key)`.
    pub(crate) fn answer(self, answers: Vec<Result<Fetched>>, unanswered: impl Fn(&K) -> Error) {
        for w in self.waiters {
            let answer = self
                .keys
                .iter()
                .position(|k| *k == w.key)
                .and_then(|i| answers.get(i).cloned())
                .unwrap_or_else(|| Err(unanswered(&w.key)));
            // The fetch may have given up at its deadline; nobody is left to tell.
            let _ = w.reply.send(answer);
        }
    }
}
