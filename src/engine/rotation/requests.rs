//! `refreshNow` through the engine, so that the proxy and the files never
//! disagree and no credential is minted outside the engine's care: a static
//! secret's group is fetched in the next round (its files written, its
//! actions run) and the proxy waits for that round; a leased or issued secret
//! is not fetched again (a new lease or certificate nobody renews or revokes),
//! and the proxy serves what the engine holds, which its renewals and
//! re-issues keep current.

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::plan::Refresh;
use super::Engine;

/// How a `refreshNow` went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// Fetched again in a round: whether that worked.
    Fetched(bool),
    /// A leased or issued secret: served as the engine holds it.
    Held,
    /// No such secret in the running config (it was just reloaded).
    Unknown,
}

/// Asks the engine to fetch a secret now, and says how it went.
#[derive(Debug)]
pub struct RefreshNow {
    /// The secret's name.
    pub secret: String,
    /// Gets the answer.
    pub done: oneshot::Sender<Refreshed>,
}

impl Engine {
    /// Makes the secret's group due now, to be answered after the round; a
    /// leased or issued one is answered at once.
    pub(super) fn refresh_now(&mut self, request: RefreshNow) {
        match self.plan.refresh_now(&request.secret, Instant::now()) {
            Refresh::Unknown => {
                let _ = request.done.send(Refreshed::Unknown);
            }
            Refresh::Held => {
                let _ = request.done.send(Refreshed::Held);
            }
            Refresh::Due(g) => self.waiting.push((g, request.done)),
        }
    }

    /// Answers every `refreshNow` waiting for the round that just ended.
    pub(super) fn answer_waiting(&mut self) {
        for (g, done) in self.waiting.drain(..) {
            let ok = self.plan.groups.get(g).is_some_and(|g| g.failures == 0);
            let _ = done.send(Refreshed::Fetched(ok));
        }
    }
}
